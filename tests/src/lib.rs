//! Helpers for the fork-scenario tests.
//!
//! Forking needs a single-threaded process, so those tests run in `harness = false`
//! binaries through [`run_serially`], the crate's own `caspian_ipc::testing` helper that
//! users of the crate write their job tests with.

use std::path::PathBuf;

pub mod fixtures;
pub mod postgres;

pub use caspian_ipc::testing::{run_serially, Failed, Trial};

/// A server forked with `spawn_server` in a fresh socket directory, with a fresh token;
/// stopped (SIGTERM) and reaped on drop, so a failing scenario leaves nothing behind.
pub struct ForkedServer {
    /// Its socket directory.
    pub dir: caspian_ipc::uds::SocketDir,
    /// The token it checks.
    pub token: caspian_ipc::uds::Token,
    pid: Option<nix::unistd::Pid>,
}

impl ForkedServer {
    /// Forks a server serving what `make` builds (in the child).
    pub fn start<H: caspian_ipc::uds::Handler>(
        config: caspian_ipc::uds::ServerConfig,
        make: impl FnOnce() -> Result<H, String>,
    ) -> caspian_ipc::Result<ForkedServer> {
        let dir = caspian_ipc::uds::SocketDir::create()?;
        let token =
            caspian_ipc::uds::Token::generate().map_err(|e| caspian_ipc::Error::Protocol(e.to_string()))?;
        let pid = caspian_ipc::uds::spawn_server(
            &dir,
            Some(token.clone()),
            config,
            make,
            std::time::Duration::from_secs(5),
        )?;
        Ok(ForkedServer {
            dir,
            token,
            pid: Some(pid),
        })
    }

    /// Its process id, until it is stopped.
    pub fn pid(&self) -> Option<nix::unistd::Pid> {
        self.pid
    }

    /// A blocking client with `config` and the server's token.
    pub fn client(&self, config: caspian_ipc::uds::ClientConfig) -> caspian_ipc::uds::Client {
        caspian_ipc::uds::Client::new(self.dir.socket_path(), Some(self.token.clone()), config)
    }

    /// Sends `signal` and reaps the server; its wait status (`None` once already stopped).
    pub fn stop(&mut self, signal: nix::sys::signal::Signal) -> Option<nix::sys::wait::WaitStatus> {
        let pid = self.pid.take()?;
        let _ = nix::sys::signal::kill(pid, signal);
        nix::sys::wait::waitpid(pid, None).ok()
    }
}

impl Drop for ForkedServer {
    fn drop(&mut self) {
        self.stop(nix::sys::signal::Signal::SIGTERM);
    }
}

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
