//! Forking, as the Caspian forking design describes it, in Rust terms.
//!
//! - Hygiene, used by everything that forks: refuse to fork a multi-threaded process
//!   ([`ensure_single_threaded`]), leave children with `_exit`, never leave a child
//!   behind (every tracked child is stopped and reaped on every path).
//! - [`Manager`]: the public fork manager. [`Manager::spawn`] forks one child and hands
//!   back a [`Child`] (status, wait with a deadline, signals, TERM-then-KILL, captured
//!   output, detach); [`Manager::multiple`] and [`Manager::map`] run N workers or a queue
//!   of work items with at most [`Manager::max`] at once, and harvest every worker's
//!   return value in order ([`Harvest`]), as `multiprocessing.Pool` users expect.
//! - Return values travel back over a memory file each child writes before it exits
//!   (`channel.rs`): any size, read once the child is gone.
//!
//! `share` and `mikobase` runs are built on the same manager.
//!
//! ```no_run
//! use caspian_ipc::fork::Manager;
//!
//! let squares = Manager::new()
//!     .max(2) // at most two workers at once; the rest wait in the queue
//!     .map(1..=5u64, |_worker, n| Ok::<_, String>(n * n))?
//!     .values()?;
//! assert_eq!(squares, [1, 4, 9, 16, 25]);
//! # Ok::<_, caspian_ipc::Error>(())
//! ```

mod channel;
mod child;
mod manager;
mod tracked;

use std::fmt;
use std::io::Write;

pub use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::{fork, ForkResult, Pid};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use child::{Child, Detached, Ended, ExitStatus};
pub(crate) use manager::drive;
pub use manager::{Cut, Harvest, Manager};
pub(crate) use tracked::Tracked;

use crate::error::{Error, Result};
// How a worker failed is part of what the run's errors carry, so it lives with them.
pub use crate::error::{WorkerEnd, WorkerFailure, WorkerOutcome};

/// Exit code of a worker whose closure returned an error.
pub(crate) const EXIT_ERROR: i32 = 1;
/// Exit code of a worker whose closure panicked (the code Rust itself uses).
pub(crate) const EXIT_PANIC: i32 = 101;
/// Longest failure message a worker sends back; longer text is cut (see [`bounded`]).
const MAX_MESSAGE: usize = 4096;
/// Appended to a message [`bounded`] had to cut.
const TRUNCATED_MARK: &str = "… (truncated)";

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

    /// This worker's index, `0..count` (for [`Manager::map`], the work item's index).
    pub fn index(&self) -> usize {
        self.index
    }
    /// How many workers the run has (for [`Manager::map`], how many work items).
    pub fn count(&self) -> usize {
        self.count
    }
    /// The pid of the process that started the run.
    pub fn parent_pid(&self) -> u32 {
        self.parent_pid
    }
}

/// What a worker closure may return: `()`, or any `Result<T, E: Display>` whose `T`
/// serialises; the parent gets `T` back (decoded from JSON), or a failure with `E`'s text.
///
/// A closure that computes a plain value returns it as `Ok::<_, E>(value)`: the error
/// type says how a worker fails, which a bare value could not.
pub trait WorkerResult {
    /// The value the parent harvests.
    type Value: Serialize + DeserializeOwned;
    /// `Err(message)` when the worker failed.
    fn into_outcome(self) -> std::result::Result<Self::Value, String>;
}

impl WorkerResult for () {
    type Value = ();
    fn into_outcome(self) -> std::result::Result<(), String> {
        Ok(())
    }
}

impl<T: Serialize + DeserializeOwned, E: fmt::Display> WorkerResult for std::result::Result<T, E> {
    type Value = T;
    fn into_outcome(self) -> std::result::Result<T, String> {
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

/// The signal a tracked child gets when its parent dies, unless told otherwise.
pub(crate) const PARENT_DEATH_SIGNAL: Signal = Signal::SIGKILL;

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
