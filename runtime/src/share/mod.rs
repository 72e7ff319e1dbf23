//! The shared hash: JSON-shaped state held by a server process, used by forked workers
//! through [`SharedHash`] proxies. Its runtime is written by hand.

#[cfg(feature = "tokio")]
mod async_proxy;
mod proxy;
pub(crate) mod server;
pub(crate) mod tree;
mod value;

use serde_json::Value;

#[cfg(feature = "tokio")]
pub use async_proxy::AsyncHash;
pub use proxy::{Batch, Entry, SharedArray, SharedHash, Swap};
pub use value::to_json;

use crate::error::Result;
use crate::fork::{Worker, WorkerOutcome, WorkerResult};
use crate::run::{run, RunOptions, Supervisor};

/// Header carrying the integer primary key of a shared-hash node.
pub(crate) const X_PK: &str = "x-pk";
/// Header carrying the version of a shared-hash node.
pub(crate) const X_VERSION: &str = "x-version";

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
///
/// ```no_run
/// use std::time::Duration;
/// use caspian_ipc::{Share, Supervision};
///
/// let state = Share::new(8)
///     .timeout(Duration::from_secs(60)) // the whole run; then TimedOut, with the state
///     .call_deadline(Duration::from_secs(5)) // each request a worker makes
///     .supervise(|progress| {
///         // Runs in the parent while it waits: give up at the first failed worker.
///         if progress.failed.is_empty() {
///             Supervision::Continue
///         } else {
///             Supervision::Stop
///         }
///     })
///     .run(|worker, hash| {
///         hash.at("done").set(&worker.index().to_string(), &true)?;
///         Ok::<_, caspian_ipc::Error>(())
///     })?;
/// assert_eq!(state["done"].as_object().map(|done| done.len()), Some(8));
/// # Ok::<_, caspian_ipc::Error>(())
/// ```
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

    crate::run::run_option_setters!();

    /// Runs `body` in every worker and returns the final state.
    pub fn run<F, R>(self, body: F) -> Result<Value>
    where
        F: Fn(Worker, SharedHash) -> R,
        R: WorkerResult,
    {
        self.run_with_values(body).map(|finished| finished.state)
    }

    /// Runs `body` in every worker and returns the final state with what each worker
    /// returned (a worker's `Ok(value)`, as JSON, decoded back into the closure's type).
    ///
    /// ```no_run
    /// let finished = caspian_ipc::Share::new(4).run_with_values(|worker, hash| {
    ///     let seen = hash.incr("calls", 1)?;
    ///     Ok::<_, caspian_ipc::Error>((worker.index(), seen))
    /// })?;
    /// assert_eq!(finished.state["calls"], 4);
    /// let indices: Vec<usize> = finished.values().map(|(index, _)| *index).collect();
    /// assert_eq!(indices, [0, 1, 2, 3]);
    /// # Ok::<_, caspian_ipc::Error>(())
    /// ```
    pub fn run_with_values<F, R>(self, body: F) -> Result<Finished<R::Value>>
    where
        F: Fn(Worker, SharedHash) -> R,
        R: WorkerResult,
    {
        let max_depth = self.options.server.max_depth;
        run(
            &self.options,
            self.supervisor,
            move || server::HashServer::router(max_depth).map_err(|e| e.to_string()),
            SharedHash::root,
            body,
            |client| SharedHash::root(client.clone()).snapshot(),
            "shared-hash",
        )
        .map(|(state, workers)| Finished { state, workers })
    }
}

/// What [`Share::run_with_values`] returns when every worker finished cleanly.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished<T = ()> {
    /// The final hash as plain JSON.
    pub state: Value,
    /// How each worker went and what it returned, in index order.
    pub workers: Vec<WorkerOutcome<T>>,
}

impl<T> Finished<T> {
    /// Each worker's value, in index order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.workers.iter().map(|worker| &worker.value)
    }
}
