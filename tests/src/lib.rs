//! Helpers for the fork-scenario tests.
//!
//! Forking needs a single-threaded process, so those tests run in `harness = false`
//! binaries through [`run_serially`], the crate's own `caspian_ipc::testing` helper that
//! users of the crate write their job tests with.

use std::path::PathBuf;

pub mod fixtures;

pub use caspian_ipc::testing::{run_serially, Failed, Trial};

/// Fails with `message` unless `condition` holds.
pub fn check(condition: bool, message: impl Into<String>) -> Result<(), Failed> {
    if condition {
        Ok(())
    } else {
        Err(message.into().into())
    }
}

/// Pids of this process's children that still exist (running or zombie).
pub fn live_children() -> Vec<u32> {
    let me = std::process::id();
    let mut kids = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{me}/task")) {
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                kids.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    kids
}

/// Socket directories this process created that still exist.
pub fn leftover_socket_dirs() -> Vec<PathBuf> {
    let prefix = format!("caspian-ipc-{}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .map(|dir| {
            dir.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts the process left nothing behind: no child, no zombie, no socket directory.
pub fn check_nothing_left() -> Result<(), Failed> {
    let kids = live_children();
    check(
        kids.is_empty(),
        format!("children (or zombies) left behind: {kids:?}"),
    )?;
    let dirs = leftover_socket_dirs();
    check(
        dirs.is_empty(),
        format!("socket directories left behind: {dirs:?}"),
    )
}

/// The envelope of a raw Q0 request the Mikobase refused (`q0` answers a refusal as
/// [`ClientError::Failed`](caspian_ipc::mikobase::ClientError::Failed)); panics on any
/// other outcome, naming it.
pub fn refused(answer: Result<serde_json::Value, caspian_ipc::mikobase::ClientError>) -> serde_json::Value {
    match answer {
        Err(caspian_ipc::mikobase::ClientError::Failed(failure)) => {
            caspian_ipc::mikobase::support::failure_envelope(&failure)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
