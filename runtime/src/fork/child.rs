//! One forked child as its parent sees it: the Caspian design's child object (`active?`,
//! `exists?`, `zombie?`, `wait`, `kill`, `term_kill`, `status`, `stdout`/`stderr`,
//! `detach`), with the value its closure returned.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use serde::de::DeserializeOwned;

use super::channel::{Channel, Report};
use super::tracked::Tracked;
use super::{
    bounded, describe_exit, die_with_parent, fork_child, panic_message, WorkerEnd, WorkerResult, EXIT_ERROR,
    EXIT_PANIC,
};
use crate::error::{Error, Result};

/// How a child process ended, as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this status (0: success).
    Exited(i32),
    /// It was killed by this signal (e.g. `SIGKILL`).
    Signaled(String),
    /// It was reaped by someone else (a `SIGCHLD` handler of the program's), so its
    /// status is unknown.
    Unknown,
}

impl ExitStatus {
    fn of(status: Option<WaitStatus>) -> ExitStatus {
        match status {
            Some(WaitStatus::Exited(_, code)) => ExitStatus::Exited(code),
            Some(WaitStatus::Signaled(_, signal, _)) => ExitStatus::Signaled(signal.as_str().to_owned()),
            _ => ExitStatus::Unknown,
        }
    }
}

/// A child that has ended and been reaped: its status, the value its closure returned
/// (or how it failed), and its captured output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended<T> {
    /// Index of the child (its work item's index for [`Manager::map`](super::Manager::map)).
    pub index: usize,
    /// Its process id (no longer in use by it).
    pub pid: u32,
    /// How the process ended.
    pub status: ExitStatus,
    /// What the closure returned, or how the child failed.
    pub value: std::result::Result<T, WorkerEnd>,
    /// Everything it wrote to stdout, when output was captured.
    pub stdout: Option<Vec<u8>>,
    /// Everything it wrote to stderr, when output was captured.
    pub stderr: Option<Vec<u8>>,
    /// Time from its fork until the parent saw it end.
    pub ran_for: Duration,
}

/// A tracked child process whose closure returns a `T`.
///
/// Tracked means: when the handle is dropped while the child still runs, the child gets
/// SIGTERM, then SIGKILL after the manager's grace, and is reaped; and the child gets
/// SIGKILL if this process dies (`PR_SET_PDEATHSIG`). So no child outlives its handle
/// and none is left a zombie. [`Child::detach`] gives that up.
#[derive(Debug)]
pub struct Child<T> {
    index: usize,
    tracked: Tracked,
    report: Channel,
    stdout: Option<Channel>,
    stderr: Option<Channel>,
    forked: Instant,
    ended: Option<Ended<T>>,
    _value: PhantomData<fn() -> T>,
}

/// How a child is set up, from its manager.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub grace: Duration,
    pub capture: bool,
    pub parent_death: Option<Signal>,
}

impl<T: DeserializeOwned> Child<T> {
    /// Forks a child that runs `body` and reports what it returns. The caller has checked
    /// that forking is safe (single-threaded, or opted out).
    pub(crate) fn fork<R>(setup: &Setup, index: usize, body: impl FnOnce() -> R) -> Result<Child<T>>
    where
        R: WorkerResult<Value = T>,
        T: serde::Serialize,
    {
        let report = Channel::new(c"caspian-ipc-result")?;
        let (stdout, stderr) = if setup.capture {
            (
                Some(Channel::new(c"caspian-ipc-stdout")?),
                Some(Channel::new(c"caspian-ipc-stderr")?),
            )
        } else {
            (None, None)
        };
        let parent = nix::unistd::getpid();
        let forked = Instant::now();
        let parent_death = setup.parent_death;
        let pid = fork_child(|| {
            if let Some(signal) = parent_death {
                if !die_with_parent(signal, parent) {
                    return EXIT_ERROR;
                }
            }
            for (channel, fd) in [(&stdout, 1), (&stderr, 2)] {
                if let Some(channel) = channel {
                    if !channel.redirect(fd) {
                        return EXIT_ERROR;
                    }
                }
            }
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body().into_outcome())) {
                Ok(Ok(value)) if report.send_value(&value) => 0,
                Ok(Ok(_)) => EXIT_ERROR,
                Ok(Err(message)) => {
                    report.send_failure(&WorkerEnd::Error {
                        message: bounded(message),
                    });
                    EXIT_ERROR
                }
                Err(payload) => {
                    report.send_failure(&WorkerEnd::Panic {
                        message: bounded(panic_message(payload.as_ref())),
                    });
                    EXIT_PANIC
                }
            }
        })?;
        Ok(Child {
            index,
            tracked: Tracked::new(pid, setup.grace),
            report,
            stdout,
            stderr,
            forked,
            ended: None,
            _value: PhantomData,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.tracked.pid().as_raw() as u32
    }

    /// Its index (its work item's, for [`Manager::map`](super::Manager::map)).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Still running: it has neither exited nor been killed.
    pub fn is_active(&self) -> bool {
        self.exists() && !self.is_zombie()
    }

    /// Exited but not reaped yet ([`Child::try_wait`] or [`Child::wait`] reaps it).
    pub fn is_zombie(&self) -> bool {
        self.tracked.is_zombie()
    }

    /// The process still exists: active or a zombie.
    pub fn exists(&self) -> bool {
        self.tracked.reaped().is_none()
    }

    /// Reaps the child if it has ended, without waiting; its [`Ended`] once it has.
    pub fn try_wait(&mut self) -> Option<&Ended<T>> {
        if self.ended.is_none() {
            let status = self.tracked.try_reap()?;
            self.ended = Some(self.read_end(status));
        }
        self.ended.as_ref()
    }

    /// Waits up to `timeout` for the child to end and reaps it. [`Error::Timeout`] when it
    /// is still running then (it is left running, still tracked).
    pub fn wait(&mut self, timeout: Duration) -> Result<&Ended<T>> {
        if self.ended.is_none() {
            let status = self
                .tracked
                .reap_within(timeout)
                .ok_or(Error::Timeout { after: timeout })?;
            self.ended = Some(self.read_end(status));
        }
        self.ended.as_ref().ok_or(Error::Timeout { after: timeout })
    }

    /// Sends `signal` (SIGTERM, SIGHUP, SIGSTOP, ...). A child already reaped gets nothing
    /// (its pid may belong to another process by now): `ESRCH`.
    pub fn kill(&self, signal: Signal) -> Result<()> {
        self.tracked
            .signal(signal)
            .map_err(|e| Error::os(format!("sending {signal} to child {}", self.pid()), e))
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL; reaps it and returns how it ended.
    pub fn term_kill(&mut self, grace: Duration) -> &Ended<T> {
        let ended = self.take_end(grace);
        self.ended.insert(ended)
    }

    /// How it ended, once reaped: the design's `status`, `stdout`, `stderr`.
    pub fn ended(&self) -> Option<&Ended<T>> {
        self.ended.as_ref()
    }

    /// Waits up to `timeout` for the child to end and returns its [`Ended`]; one still
    /// running then is stopped (SIGTERM, the grace, SIGKILL) and its value is
    /// [`WorkerEnd::Stopped`]. Always reaps.
    pub fn join(mut self, timeout: Duration) -> Ended<T> {
        if self.wait(timeout).is_ok() {
            return self.take_end(Duration::ZERO);
        }
        let grace = self.tracked.grace();
        let mut end = self.take_end(grace);
        if end.value.is_err() {
            end.value = Err(WorkerEnd::Stopped);
        }
        end
    }

    /// Its [`Ended`] once reaped, moved out (used after a wait or a stop).
    pub(crate) fn into_ended(mut self) -> Ended<T> {
        let grace = self.tracked.grace();
        self.take_end(grace)
    }

    /// The end already read, or the end of stopping it now.
    fn take_end(&mut self, grace: Duration) -> Ended<T> {
        match self.ended.take() {
            Some(ended) => ended,
            None => {
                let status = self.tracked.stop(grace);
                self.read_end(status)
            }
        }
    }

    /// Stops tracking the child: it is no longer stopped when this handle drops, and this
    /// process never reaps it, so once it exits it stays a zombie until this process
    /// ends (init then reaps it). Its parent-death signal stays set: it still dies with
    /// this process unless the manager was told [`Manager::parent_death_signal(None)`].
    /// Its value and captured output are lost.
    ///
    /// [`Manager::parent_death_signal(None)`]: super::Manager::parent_death_signal
    pub fn detach(self) -> Detached {
        let Child { tracked, .. } = self;
        Detached {
            pid: tracked.release().as_raw() as u32,
        }
    }

    /// The child's end, from its wait status and its report.
    fn read_end(&self, status: Option<WaitStatus>) -> Ended<T> {
        let value = match (status.and_then(describe_exit), self.report.receive::<T>()) {
            (None, Report::Value(value)) => Ok(value),
            (None, Report::Failed(end)) => Err(end),
            (None, Report::Missing) if status.is_some() => Err(WorkerEnd::BadValue {
                message: "the worker exited with status 0 without sending its value (did it call std::process::exit?)".to_owned(),
            }),
            (None, Report::Missing) => Err(WorkerEnd::Unknown),
            (Some(WorkerEnd::Exit { code }), Report::Failed(end)) if code == EXIT_ERROR || code == EXIT_PANIC => {
                Err(end)
            }
            (Some(end), _) => Err(end),
        };
        Ended {
            index: self.index,
            pid: self.pid(),
            status: ExitStatus::of(status),
            value,
            stdout: self.stdout.as_ref().map(Channel::contents),
            stderr: self.stderr.as_ref().map(Channel::contents),
            ran_for: self.forked.elapsed(),
        }
    }

    pub(crate) fn tracked(&self) -> &Tracked {
        &self.tracked
    }

    pub(crate) fn tracked_mut(&mut self) -> &mut Tracked {
        &mut self.tracked
    }

    /// After [`stop_together`](super::tracked::stop_together) reaped it: record its end.
    pub(crate) fn settle(&mut self) {
        if self.ended.is_none() {
            if let Some(status) = self.tracked.reaped() {
                self.ended = Some(self.read_end(status));
            }
        }
    }
}

/// A child given up by [`Child::detach`]: a pid and nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detached {
    pid: u32,
}

impl Detached {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }
}
