//! # caspian-ipc
//!
//! Caspian's shared-resource IPC for Rust: a small single-threaded server process holds
//! shared state behind an HTTP server on a Unix domain socket; forked workers each get a
//! proxy that looks like an ordinary data structure and turns every operation into one
//! HTTP request.
//!
//! - [`share()`] / [`Share`]: a shared hash (JSON-shaped scratch state).
//! - [`mikobase()`] / [`Mikobase`]: a shared Mikobase (Q0, class definitions, transactions)
//!   whose client and dispatch table are generated from `mikobase-spec/mikobase.yaml`.
//! - [`Record`](derive@Record): `#[derive(Record)]` makes a struct a Mikobase class with
//!   typed proxies (`db.records::<Officer>()`, `officer.rank().set(..)`): see
//!   [`mikobase::record`].
//! - [`mikobase_api!`]: the generated surface for a spec file of your own.
//! - [`uds`]: the toolbox: server, client, tokens, socket directory, and
//!   [`Router`](uds::Router) for a server of your own routes.
//! - [`fork`]: fork hygiene (single-thread guard, worker identity, failures).
//! - [`prefork`]: runs for programs with threads (a tokio runtime): a fork server
//!   started first thing in `main` runs the jobs.
//! - feature `tokio`: `uds::AsyncClient` and `share::AsyncHash` for async code.
//! - `testing` (feature `testing`): running your own jobs under `cargo test`.
//!
//! Features: `mikobase` (default) brings the shared mikobase and its macros, `cli`
//! (default) the `mikobase` binary; with `default-features = false` the crate is the shared
//! hash, the toolbox and the fork manager, without SQLite, the YAML parser or the code
//! generator (the README's "Features").
//!
//! ```no_run
//! let counts = caspian_ipc::share(4, |worker, hash| {
//!     hash.incr("total", 1)?;
//!     hash.at("by_worker").set(&worker.index().to_string(), &true)?;
//!     Ok::<_, caspian_ipc::Error>(())
//! })?;
//! println!("{counts}");
//! # Ok::<_, caspian_ipc::Error>(())
//! ```
//!
//! Linux only: the toolbox needs `SO_PEERCRED`, `signalfd`, `PR_SET_PDEATHSIG` and
//! `/proc/self/task` (the README's "Platforms and Rust version").

#![cfg_attr(docsrs, feature(doc_cfg))]

// Say so before the missing Linux interfaces do, in one line instead of a page of
// unresolved imports.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "caspian-ipc supports Linux only: it needs SO_PEERCRED, signalfd, PR_SET_PDEATHSIG and \
     /proc/self/task (see the README, \"Platforms and Rust version\")"
);

pub mod error;
pub mod fork;
mod limits;
#[cfg(feature = "mikobase")]
#[cfg_attr(docsrs, doc(cfg(feature = "mikobase")))]
pub mod mikobase;
pub mod prefork;
mod run;
pub mod share;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod uds;

/// The README's code, compiled as doc tests (`no_run` where it forks), so the README
/// cannot drift from the API. Needs the features its sections use.
#[cfg(all(doctest, feature = "mikobase", feature = "tokio", feature = "testing"))]
#[doc = include_str!("../../README.md")]
mod readme {}

// Shown inline on the crate page, where readers look first.
// The derive and the trait share the name `Record`, as serde's do.
#[cfg(feature = "mikobase")]
#[cfg_attr(docsrs, doc(cfg(feature = "mikobase")))]
#[doc(inline)]
pub use caspian_ipc_derive::{mikobase_api, OneOf, Record};
#[doc(inline)]
pub use error::{Error, Result, WorkerEnd, WorkerFailure};
#[doc(inline)]
pub use fork::{Worker, WorkerOutcome, WorkerResult};
#[cfg(feature = "mikobase")]
#[cfg_attr(docsrs, doc(cfg(feature = "mikobase")))]
#[doc(inline)]
pub use mikobase::record::{OneOf, Record};
#[cfg(feature = "mikobase")]
#[cfg_attr(docsrs, doc(cfg(feature = "mikobase")))]
#[doc(inline)]
pub use mikobase::{mikobase, Db, Mikobase};
#[doc(inline)]
pub use run::{Progress, Supervision, Supervisor};
#[doc(inline)]
pub use share::{share, Batch, Entry, Share, SharedArray, SharedHash, Swap};
