//! Testing your own jobs with `cargo test` (feature `testing`).
//!
//! A run forks, and forking is only safe from a single-threaded process. libtest runs
//! every `#[test]` on a thread of its own, even with `--test-threads=1`, so a `#[test]`
//! that calls [`share`](crate::share()) or [`mikobase`](crate::mikobase()) fails with
//! [`Error::ForkUnsafe`](crate::Error::ForkUnsafe). The supported way is a test target
//! with `harness = false` whose `main` runs the tests one after another on the main
//! thread, with libtest's arguments, filters and summary (through `libtest-mimic`):
//!
//! ```toml
//! # Cargo.toml
//! [dev-dependencies]
//! caspian-ipc = { version = "0.1", features = ["testing"] }
//!
//! [[test]]
//! name = "jobs"
//! harness = false
//! ```
//!
//! ```no_run
//! // tests/jobs.rs
//! use caspian_ipc::testing::{run_serially, Failed, Trial};
//!
//! fn counts_every_visit() -> Result<(), Failed> {
//!     let state = caspian_ipc::share(4, |_, hash| hash.incr("visits", 1).map(drop))?;
//!     if state["visits"] != 4 {
//!         return Err(format!("lost visits: {state}").into());
//!     }
//!     Ok(())
//! }
//!
//! fn main() {
//!     run_serially(vec![Trial::test("counts_every_visit", counts_every_visit)]);
//! }
//! ```
//!
//! `cargo test` then runs it with the other tests; `cargo test --test jobs visits` filters
//! as usual. The project's own fork-scenario tests (`tests/tests/share.rs`, ...) are
//! written this way.

pub use libtest_mimic::{Arguments, Failed, Trial};

/// Runs `trials` one after another on the main thread (never on a thread of their own, so
/// they may fork) with the command line's libtest arguments, then exits with libtest's
/// summary and exit code.
pub fn run_serially(trials: Vec<Trial>) -> ! {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    libtest_mimic::run(&args, trials).exit()
}
