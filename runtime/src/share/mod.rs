//! The shared hash: JSON-shaped state held by a server process, used by forked workers
//! through [`SharedHash`] proxies. Its runtime is written by hand.

mod proxy;
pub(crate) mod server;
pub(crate) mod tree;
mod value;

use std::time::Duration;

use serde_json::Value;

pub use proxy::{Batch, Entry, SharedArray, SharedHash, Swap};
pub use value::to_json;

use crate::error::Result;
use crate::fork::{Worker, WorkerResult};
use crate::run::{run, Progress, RunOptions, Supervision, Supervisor};

/// Runs `body` in `workers` forked processes, each with a proxy of one shared hash, and
/// returns the final hash as plain JSON once every worker has finished.
///
/// See [`Share`] for options and for what happens when a worker fails.
///
/// ```no_run
/// let state = caspian_ipc::share(4, |worker, hash| {
///     hash.incr("visits", 1)?;
///     hash.set(&format!("worker-{}", worker.index()), &"done")?;
///     Ok::<_, caspian_ipc::Error>(())
/// })?;
/// assert_eq!(state["visits"], 4);
/// # Ok::<_, caspian_ipc::Error>(())
/// ```
pub fn share<F, R>(workers: usize, body: F) -> Result<Value>
where
    F: Fn(Worker, SharedHash) -> R,
    R: WorkerResult,
{
    Share::new(workers).run(body)
}

/// A shared-hash run with options.
///
/// Failure rules: if any worker returns an error, panics, exits non-zero or is killed,
/// the run returns [`crate::Error::WorkersFailed`] naming each failed worker *and carrying
/// the final state*. With a [`timeout`](Share::timeout), workers still running at expiry
/// are stopped and [`crate::Error::TimedOut`] carries the state. If the server dies, the
/// state is lost and [`crate::Error::ServerDied`] says so.
pub struct Share<'a> {
    options: RunOptions,
    supervisor: Option<Supervisor<'a>>,
}

impl<'a> Share<'a> {
    /// A run with `workers` workers and default options.
    pub fn new(workers: usize) -> Self {
        Share {
            options: RunOptions::new(workers),
            supervisor: None,
        }
    }

    /// Stops the workers still running after `timeout` (default: no timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// How long a worker's first connect retries while the server is not yet listening
    /// (default 500 ms).
    pub fn connect_budget(mut self, budget: Duration) -> Self {
        self.options.client.connect_budget = budget;
        self
    }

    /// Deadline of each call a worker makes (default 30 s).
    pub fn call_deadline(mut self, deadline: Duration) -> Self {
        self.options.client.call_deadline = deadline;
        self
    }

    /// Largest request body the server accepts (default 16 MiB).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.options.server.body_limit = bytes;
        self
    }

    /// Deepest JSON nesting the server stores (default 64, at most 128).
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.options.server.max_depth = depth.min(128);
        self
    }

    /// How long stopped children get between SIGTERM and SIGKILL (default 2 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.options.grace = grace;
        self
    }

    /// Forks even if this process has other threads. Only sound when every other thread
    /// holds no lock the children need (allocator, stdio, runtimes): the opt-out named by
    /// [`crate::Error::ForkUnsafe`].
    pub fn allow_threads(mut self, allow: bool) -> Self {
        self.options.allow_threads = allow;
        self
    }

    /// Calls `supervise` in the parent every few milliseconds while the workers run; it
    /// can watch progress or stop the run early.
    pub fn supervise(mut self, supervise: impl FnMut(&Progress) -> Supervision + 'a) -> Self {
        self.supervisor = Some(Box::new(supervise));
        self
    }

    /// Runs `body` in every worker and returns the final state.
    pub fn run<F, R>(self, body: F) -> Result<Value>
    where
        F: Fn(Worker, SharedHash) -> R,
        R: WorkerResult,
    {
        let max_depth = self.options.server.max_depth;
        run(
            &self.options,
            self.supervisor,
            move || Ok(server::HashServer::new(max_depth)),
            SharedHash::root,
            body,
            |client| SharedHash::root(client.clone()).snapshot(),
        )
        .map(|(state, _)| state)
    }
}
