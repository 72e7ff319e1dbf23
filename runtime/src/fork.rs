//! Fork hygiene: refuse to fork a multi-threaded process, leave children with `_exit`,
//! and never leave a child behind (stop, then reap, every tracked child).

use std::fmt;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::error::{Error, Result};
// How a worker failed is part of what the run's errors carry, so it lives with them.
pub use crate::error::{WorkerEnd, WorkerFailure};

/// Exit code of a worker whose closure returned an error.
pub(crate) const EXIT_ERROR: i32 = 1;
/// Exit code of a worker whose closure panicked (the code Rust itself uses).
pub(crate) const EXIT_PANIC: i32 = 101;
/// Longest outcome message a worker sends back; longer text is cut (see [`bounded`]).
const MAX_MESSAGE: usize = 4096;
/// Appended to a message [`bounded`] had to cut.
const TRUNCATED_MARK: &str = "… (truncated)";
/// Longest report read back: a bounded message even with every byte JSON-escaped (`\u00XX`)
/// stays far below it and below the 64 KiB pipe buffer, so the child's write never blocks.
const MAX_REPORT: usize = MAX_MESSAGE * 6 + 256;

/// What a worker knows about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Worker {
    index: usize,
    count: usize,
    parent_pid: u32,
}

impl Worker {
    pub(crate) fn new(index: usize, count: usize, parent_pid: u32) -> Self {
        Worker {
            index,
            count,
            parent_pid,
        }
    }

    /// This worker's index, `0..count`.
    pub fn index(&self) -> usize {
        self.index
    }
    /// How many workers the run has.
    pub fn count(&self) -> usize {
        self.count
    }
    /// The pid of the process that started the run.
    pub fn parent_pid(&self) -> u32 {
        self.parent_pid
    }
}

/// A worker that finished cleanly: which one, its pid, and how long it ran (as seen by
/// the parent, which notices an exit within a few milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerOutcome {
    /// Worker index, `0..n`.
    pub index: usize,
    /// Its process id.
    pub pid: u32,
    /// Time from its fork to its exit.
    pub ran_for: Duration,
}

/// What a worker closure may return: `()` or any `Result<(), E: Display>`.
pub trait WorkerResult {
    /// `Err(message)` when the worker failed.
    fn into_outcome(self) -> std::result::Result<(), String>;
}

impl WorkerResult for () {
    fn into_outcome(self) -> std::result::Result<(), String> {
        Ok(())
    }
}

impl<E: fmt::Display> WorkerResult for std::result::Result<(), E> {
    fn into_outcome(self) -> std::result::Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// Number of threads in this process, from `/proc/self/task`.
pub fn thread_count() -> Result<usize> {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| dir.count())
        .map_err(|e| Error::os("counting threads in /proc/self/task", e))
}

/// Refuses to go on when this process has other threads (see [`Error::ForkUnsafe`]).
pub fn ensure_single_threaded() -> Result<()> {
    match thread_count()? {
        1 => Ok(()),
        threads => Err(Error::ForkUnsafe { threads }),
    }
}

/// Forks; the child runs `body` and leaves with `_exit(code)`, never returning into the
/// caller's stack, so no parent destructor or atexit handler runs in the child.
pub(crate) fn fork_child(body: impl FnOnce() -> i32) -> Result<Pid> {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: the caller has checked that the process is single-threaded (or opted out),
    // and the child only runs `body` and then `_exit`s.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => Ok(child),
        Ok(ForkResult::Child) => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(EXIT_PANIC);
            let _ = std::io::stdout().flush();
            let _ = std::io::stderr().flush();
            // SAFETY: _exit is async-signal-safe and ends the process immediately.
            unsafe { libc::_exit(code) }
        }
        Err(e) => Err(Error::os("fork", e)),
    }
}

/// Asks the kernel to send `signal` to this process when its parent dies, then checks the
/// parent is still the expected one (it may have died before the request took effect).
/// `false` when it has: the caller cleans up what it must and leaves at once.
///
/// The kernel watches the *thread* that forked us: call [`fork_child`] from a thread that
/// lives as long as the child should (the run's own thread does).
#[must_use]
pub(crate) fn die_with_parent(signal: Signal, parent: Pid) -> bool {
    let _ = nix::sys::prctl::set_pdeathsig(Some(signal));
    nix::unistd::getppid() == parent
}

/// Turns a wait status into a failure description, `None` for a clean exit.
pub(crate) fn describe_exit(status: WaitStatus) -> Option<WorkerEnd> {
    match status {
        WaitStatus::Exited(_, 0) => None,
        WaitStatus::Exited(_, code) => Some(WorkerEnd::Exit { code }),
        WaitStatus::Signaled(_, signal, _) => Some(WorkerEnd::Signal {
            signal: signal.as_str().to_owned(),
        }),
        other => Some(WorkerEnd::Signal {
            signal: format!("{other:?}"),
        }),
    }
}

/// A child's report channel: the worker writes one JSON [`WorkerEnd`] before exiting.
pub(crate) struct Report {
    read: std::fs::File,
}

impl Report {
    /// Creates the pipe; returns the parent's reading end and the child's writing end.
    /// Close-on-exec, so a subprocess a worker starts does not hold the write end open
    /// (the parent would wait for the grandchild instead of the worker).
    pub(crate) fn pipe() -> Result<(Report, OwnedFd)> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::os("pipe", e))?;
        Ok((Report { read: read.into() }, write))
    }

    /// Writes the report from the child; its message is already [`bounded`], so the JSON
    /// fits the pipe and is never cut.
    pub(crate) fn send(write: OwnedFd, end: &WorkerEnd) {
        let text = serde_json::to_vec(end).unwrap_or_default();
        let _ = std::fs::File::from(write).write_all(&text);
    }

    /// Reads the report after the child has exited (its write end is closed by then).
    pub(crate) fn receive(mut self) -> Option<WorkerEnd> {
        let mut text = Vec::new();
        let _ = (&mut self.read).take(MAX_REPORT as u64).read_to_end(&mut text);
        serde_json::from_slice(&text).ok()
    }
}

/// Cuts a message to the bounded report size at a char boundary, marked with
/// [`TRUNCATED_MARK`]; the mark counts towards the bound.
pub(crate) fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE - TRUNCATED_MARK.len();
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str(TRUNCATED_MARK);
    }
    message
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Every child the parent started, stopped and reaped on drop (RAII), so an early return
/// or a panic in the parent leaves no running child and no zombie.
#[derive(Debug, Default)]
pub(crate) struct Children {
    live: Vec<Pid>,
    grace: Duration,
}

impl Children {
    pub(crate) fn new(grace: Duration) -> Self {
        Children {
            live: Vec::new(),
            grace,
        }
    }

    pub(crate) fn track(&mut self, pid: Pid) {
        self.live.push(pid);
    }

    /// Non-blocking check of one child; reaps and untracks it when it has ended.
    pub(crate) fn try_reap(&mut self, pid: Pid) -> Result<Option<WaitStatus>> {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => Ok(None),
            Ok(status) => {
                self.live.retain(|p| *p != pid);
                Ok(Some(status))
            }
            Err(e) => {
                self.live.retain(|p| *p != pid);
                Err(Error::os(format!("waitpid({pid})"), e))
            }
        }
    }

    /// SIGTERM to each of `pids`, up to `grace` for them to exit, then SIGKILL; always
    /// reaps. Returns each pid with its final status.
    pub(crate) fn stop(&mut self, pids: &[Pid]) -> Vec<(Pid, Option<WaitStatus>)> {
        for pid in pids {
            let _ = kill(*pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + self.grace;
        let mut pending: Vec<Pid> = pids.to_vec();
        let mut ended = Vec::with_capacity(pids.len());
        let mut pause = Duration::from_micros(200);
        while !pending.is_empty() && Instant::now() < deadline {
            pending.retain(|pid| match self.try_reap(*pid) {
                Ok(None) => true,
                Ok(Some(status)) => {
                    ended.push((*pid, Some(status)));
                    false
                }
                Err(_) => {
                    ended.push((*pid, None));
                    false
                }
            });
            if !pending.is_empty() {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
        for pid in pending {
            let _ = kill(pid, Signal::SIGKILL);
            ended.push((pid, waitpid(pid, None).ok()));
            self.live.retain(|p| *p != pid);
        }
        ended
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        let live = self.live.clone();
        self.stop(&live);
    }
}
