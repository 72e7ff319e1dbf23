//! One tracked child process: the single mechanism that stops (SIGTERM, a grace, then
//! SIGKILL) and reaps a child on every path, drop included, so no child outlives its
//! handle and none is left a zombie.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// A child this process forked and must reap. Dropping it stops and reaps the child.
#[derive(Debug)]
pub(crate) struct Tracked {
    pid: Pid,
    grace: Duration,
    /// Set once the child is reaped; `None` while it may still run.
    reaped: Option<Option<WaitStatus>>,
    /// Cleared by [`Tracked::release`]: the child is no longer ours to stop.
    owned: bool,
    /// Readable once the child exits (a pidfd), where the kernel has them.
    exit: Option<OwnedFd>,
}

impl Tracked {
    pub(crate) fn new(pid: Pid, grace: Duration) -> Self {
        Tracked {
            pid,
            grace,
            reaped: None,
            owned: true,
            exit: pidfd(pid),
        }
    }

    /// A descriptor that becomes readable when the child exits, to wait on with `poll`.
    pub(crate) fn exit_fd(&self) -> Option<BorrowedFd<'_>> {
        self.exit.as_ref().map(AsFd::as_fd)
    }

    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// How long [`Tracked::stop`] waits on drop before SIGKILL.
    pub(crate) fn grace(&self) -> Duration {
        self.grace
    }

    /// The wait status once reaped (`Some(None)`: reaped, status unknown).
    pub(crate) fn reaped(&self) -> Option<Option<WaitStatus>> {
        self.reaped
    }

    /// Non-blocking: reaps the child if it has ended. `Some` once it is reaped.
    pub(crate) fn try_reap(&mut self) -> Option<Option<WaitStatus>> {
        if self.reaped.is_none() {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(status) => self.reaped = Some(Some(status)),
                // ECHILD: someone else reaped it (a SIGCHLD handler of the program's).
                Err(_) => self.reaped = Some(None),
            }
        }
        self.reaped
    }

    /// Whether the child has exited but is not reaped yet (a zombie), without reaping it.
    pub(crate) fn is_zombie(&self) -> bool {
        self.reaped.is_none()
            && matches!(
                waitid(
                    Id::Pid(self.pid),
                    WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT
                ),
                Ok(status) if status != WaitStatus::StillAlive
            )
    }

    /// Sends `signal` unless the child is already reaped (its pid may be reused by then).
    pub(crate) fn signal(&self, signal: Signal) -> nix::Result<()> {
        match self.reaped {
            Some(_) => Err(nix::errno::Errno::ESRCH),
            None => kill(self.pid, signal),
        }
    }

    /// Waits up to `timeout` for the child to end; `Some` once it is reaped. Woken by the
    /// child's exit itself (a pidfd, Linux 5.3+), so a wait costs no polling latency;
    /// without pidfds it polls with a growing pause.
    pub(crate) fn reap_within(&mut self, timeout: Duration) -> Option<Option<WaitStatus>> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(100);
        loop {
            if let Some(status) = self.try_reap() {
                return Some(status);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let left = deadline - now;
            match self.exit_fd() {
                Some(fd) => wait_for_exits(&[fd], left),
                None => {
                    std::thread::sleep(pause.min(left));
                    pause = (pause * 2).min(Duration::from_millis(10));
                }
            }
        }
    }

    /// Stops the child: SIGTERM, up to `grace` to exit, then SIGKILL; always reaps.
    pub(crate) fn stop(&mut self, grace: Duration) -> Option<WaitStatus> {
        stop_together(&mut [self], grace);
        self.reaped.flatten()
    }

    /// SIGKILL and a blocking reap, unless already reaped; the wait status.
    pub(crate) fn kill(&mut self) -> Option<WaitStatus> {
        if self.reaped.is_none() {
            let _ = kill(self.pid, Signal::SIGKILL);
            self.reaped = Some(waitpid(self.pid, None).ok());
        }
        self.reaped.flatten()
    }

    /// Gives the child up: it is neither stopped nor reaped by us any more.
    pub(crate) fn release(mut self) -> Pid {
        self.owned = false;
        self.pid
    }
}

/// Blocks until one of `exits` (pidfds) is readable or `timeout` passes.
pub(crate) fn wait_for_exits(exits: &[BorrowedFd<'_>], timeout: Duration) {
    let millis = u16::try_from(timeout.as_millis().max(1)).unwrap_or(u16::MAX);
    let mut fds: Vec<PollFd<'_>> = exits
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    let _ = poll(&mut fds, PollTimeout::from(millis));
}

/// A descriptor that becomes readable when `pid` exits; `None` where the kernel has no
/// pidfds (before 5.3) or the child is gone.
fn pidfd(pid: Pid) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: the descriptor was just created for us and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Stops every child in `children` at once: SIGTERM to all, up to `grace` for all of
/// them to exit, then SIGKILL to the rest; every one is reaped on return.
pub(crate) fn stop_together(children: &mut [&mut Tracked], grace: Duration) {
    for child in children.iter() {
        let _ = child.signal(Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    let mut pause = Duration::from_micros(200);
    loop {
        let mut running = 0;
        for child in children.iter_mut() {
            if child.try_reap().is_none() {
                running += 1;
            }
        }
        let now = Instant::now();
        if running == 0 || now >= deadline {
            break;
        }
        // Woken by the first exit when every one left has a pidfd, as in `reap_within`.
        let exits: Vec<BorrowedFd<'_>> = children
            .iter()
            .filter(|c| c.reaped.is_none())
            .filter_map(|c| c.exit_fd())
            .collect();
        let wait = (deadline - now).min(Duration::from_millis(20));
        if exits.len() == running {
            wait_for_exits(&exits, wait);
        } else {
            std::thread::sleep(pause.min(wait));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
    for child in children.iter_mut() {
        child.kill();
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.owned && self.reaped.is_none() {
            let grace = self.grace;
            self.stop(grace);
        }
    }
}
