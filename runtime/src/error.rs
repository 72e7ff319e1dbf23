//! The one error type of the toolbox and the shared hash.
//!
//! Transport failures, server answers and orchestration failures are distinct variants so
//! that callers can match on what happened instead of parsing messages.
//!
//! How a worker failed ([`WorkerEnd`], [`WorkerFailure`]) is defined here too, because the
//! run errors carry it; [`crate::fork`] uses these types (and re-exports them), while this
//! module depends on no other module of the crate.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Everything that can go wrong in caspian-ipc.
///
/// Match on the variant rather than the message. A failed run still carries the final
/// state ([`Error::state`]) and names every failed worker ([`Error::failures`]):
///
/// ```no_run
/// use caspian_ipc::{share, Error, WorkerEnd};
///
/// let outcome = share(4, |worker, hash| -> Result<(), Box<dyn std::error::Error>> {
///     hash.incr("started", 1)?;
///     if worker.index() == 3 {
///         return Err("worker 3 found nothing to do".into());
///     }
///     Ok(())
/// });
/// match outcome {
///     Ok(state) => println!("every worker finished: {state}"),
///     Err(Error::WorkersFailed { state, failures, .. }) => {
///         assert_eq!(state["started"], 4); // the failed worker's writes are kept
///         for failure in &failures {
///             eprintln!("{failure}"); // worker 3 (pid ...) returned an error: ...
///         }
///         assert!(matches!(failures[0].end, WorkerEnd::Error { .. }));
///     }
///     Err(Error::ForkUnsafe { threads }) => eprintln!("fork before starting threads ({threads})"),
///     Err(other) => eprintln!("{other}"),
/// }
/// ```
///
/// A server's refusal is [`Error::Remote`], with the stable id of `docs/PROTOCOL.md`:
///
/// ```no_run
/// # caspian_ipc::share(1, |_, hash| {
/// hash.set("ratio", &0.5)?;
/// let now = match hash.incr("ratio", 1) {
///     Ok(n) => n as f64,
///     // A stored float: integer `incr` refuses it (409), nothing was changed.
///     Err(e) if e.remote_id() == Some("not_an_integer") => hash.incr_f64("ratio", 1.0)?,
///     Err(e) => return Err(e),
/// };
/// assert_eq!(now, 1.5);
/// # Ok::<_, caspian_ipc::Error>(())
/// # })?;
/// # Ok::<_, caspian_ipc::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Nobody accepted a connection on the socket within the connect budget (the server
    /// never came up, or the path is wrong).
    #[error("connection refused: no server accepted a connection on {path} within {waited:?} (is the server running? is the path right?)")]
    ConnectionRefused {
        /// The socket path that was tried.
        path: PathBuf,
        /// How long the client kept retrying.
        waited: Duration,
    },

    /// The server was reachable earlier and is gone now. Every later call fails the same
    /// way at once: there is no retry once the server has been seen to go away.
    #[error("server gone: the server on {path} stopped answering (it exited or was killed)")]
    ServerGone {
        /// The socket path of the vanished server.
        path: PathBuf,
    },

    /// The process listening on the socket runs as another user, so the client refused it
    /// right after connecting: nothing was sent, and the token never left this process.
    /// A caspian-ipc server serves only its own uid, so its clients trust only a server of
    /// their own (effective) uid (decision D-U15).
    #[error("untrusted server: the process listening on {path} runs as uid {server_uid}, not as us (uid {our_uid}), so the token was not sent; fix: check the socket path, and start the server as uid {our_uid} (a socket path in a directory other users can write can be taken over by them)")]
    UntrustedServer {
        /// The socket path.
        path: PathBuf,
        /// The uid of the listening process (SO_PEERCRED).
        server_uid: u32,
        /// Our effective uid.
        our_uid: u32,
    },

    /// The TLS server's certificate was not accepted, so the client stopped during the
    /// handshake: nothing was sent, and the token never left this process (D-N3).
    #[error("certificate not trusted: the server at {address} presented a certificate this client does not trust ({reason}), so the token was not sent; fix: {fix}")]
    CertificateNotTrusted {
        /// The server's URL (`caspian+tls://host:port`).
        address: String,
        /// What rustls said about the certificate.
        reason: String,
        /// What to do about it.
        fix: String,
    },

    /// The TLS handshake failed for a reason other than the certificate (the peer speaks
    /// no TLS, a protocol mismatch, the peer closed), or did not finish within its
    /// deadline. Nothing was sent.
    #[error("TLS handshake with {address} failed: {reason}; fix: {fix}")]
    TlsHandshake {
        /// The server's URL.
        address: String,
        /// What went wrong.
        reason: String,
        /// What to do about it.
        fix: String,
    },

    /// A TCP or TLS setting is unusable (a certificate, key, CA or token file that cannot
    /// be read or parsed, a token file others can read, a URL that is not
    /// `caspian+tls://host:port`, a plain-TCP listener not allowed): refused before any
    /// socket was opened.
    #[error("{what}: {problem}; fix: {fix}")]
    Config {
        /// What was being set up (the file or URL).
        what: String,
        /// What is wrong with it.
        problem: String,
        /// What to do about it.
        fix: String,
    },

    /// The server refused the request's bearer token (HTTP 401).
    #[error("unauthorized: the server refused the bearer token (wrong, missing or malformed token)")]
    Unauthorized,

    /// The server refused the connecting process itself (HTTP 403), e.g. another uid.
    #[error("forbidden: {reason}")]
    Forbidden {
        /// What the server said.
        reason: String,
    },

    /// A call did not finish within its deadline. The connection is dropped; whether the
    /// server applied the operation is unknown.
    #[error("timeout: no answer within {after:?}")]
    Timeout {
        /// The deadline that expired.
        after: Duration,
    },

    /// The server answered with an error body `{"error": id, "details": {...}}`.
    #[error("server error {status} `{id}`: {details}")]
    Remote {
        /// HTTP status code.
        status: u16,
        /// Stable error id, e.g. `no_such_pk`.
        id: String,
        /// Structured details saying what to fix.
        details: Value,
    },

    /// A value that is not JSON (NaN, an infinity, a map with non-string keys, ...) was
    /// refused before anything was sent.
    #[error("invalid value: {reason}")]
    InvalidValue {
        /// What is wrong and where.
        reason: String,
    },

    /// The connection broke in the middle of a call while the server stayed up; whether
    /// the operation was applied is unknown, so it is not retried.
    #[error("connection lost mid-call: {reason}")]
    ConnectionLost {
        /// The underlying transport error.
        reason: String,
    },

    /// The connection that held an open transaction is gone (the server rolls a
    /// transaction back when its connection closes), so the transaction's work is gone
    /// and later calls in it are refused rather than run outside it on a new connection.
    #[error("transaction lost: {reason}; its work was rolled back by the server; fix: end the transaction handle (drop it) and redo the work in a new transaction")]
    TransactionLost {
        /// What happened to the connection.
        reason: String,
    },

    /// The server sent something that is not the documented protocol.
    #[error("protocol error: {0}")]
    Protocol(String),

    /// Forking was refused because the process has more than one thread.
    #[error("refusing to fork: this process has {threads} threads, and fork() copies only the calling one (locks held by the others stay locked forever in the child). Fork before starting threads or runtimes (under `cargo test`, from a `harness = false` test: see `caspian_ipc::testing`), or opt out with `allow_threads(true)` if you know every other thread is idle")]
    ForkUnsafe {
        /// Number of threads seen in /proc/self/task.
        threads: usize,
    },

    /// A directory on the way to a socket could be changed by another user, who could
    /// then swap the socket (or its directory) for one of their own and collect the
    /// tokens clients send. Nothing was created or served. `path` is what was being set
    /// up (the socket to serve on, or the temp dir a socket directory was to be made in);
    /// `dir` is the directory or symbolic link that failed the check (decision D-U13).
    #[error("unsafe socket location {path}: {dir} {problem}; fix: {fix}")]
    UnsafeSocketDir {
        /// The socket path (or base directory) being set up.
        path: PathBuf,
        /// The directory or symbolic link that another user could change.
        dir: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// What to do about it.
        fix: String,
    },

    /// The server process could not start.
    #[error("server failed to start: {0}")]
    ServerStartup(String),

    /// At least one worker failed. The final state is still here: nothing written before
    /// the failure is lost.
    #[error("{} worker(s) failed: {}", failures.len(), describe_failures(failures))]
    WorkersFailed {
        /// The final state, collected after every worker ended.
        state: Box<Value>,
        /// One entry per failed worker.
        failures: Vec<WorkerFailure>,
        /// The workers that did finish, with the values they returned (as JSON).
        finished: Vec<WorkerOutcome<Value>>,
    },

    /// At least one child of a [`crate::fork::Manager`] run did not return a value.
    #[error("{} child(ren) failed: {}", failures.len(), describe_failures(failures))]
    ChildrenFailed {
        /// One entry per child that failed or never started.
        failures: Vec<WorkerFailure>,
    },

    /// The whole run exceeded its timeout. Workers still running were stopped; the state
    /// was still collected.
    #[error(
        "timed out after {after:?}; still running: {still_running:?}; failures: {}",
        describe_failures(failures)
    )]
    TimedOut {
        /// The configured timeout.
        after: Duration,
        /// The final state collected after stopping the workers.
        state: Box<Value>,
        /// Indices of the workers that were still running at expiry.
        still_running: Vec<usize>,
        /// Every worker that did not finish cleanly (including the stopped ones).
        failures: Vec<WorkerFailure>,
    },

    /// The server process died during the run, so the final state is unavailable.
    #[error(
        "server died during the run ({how}); worker failures: {}",
        describe_failures(failures)
    )]
    ServerDied {
        /// How the server process ended.
        how: String,
        /// Workers that failed (most fail because the server vanished).
        failures: Vec<WorkerFailure>,
    },

    /// The supervisor callback asked to stop the run early.
    #[error("stopped by the supervisor; still running were: {still_running:?}")]
    Stopped {
        /// The final state collected after stopping the workers.
        state: Box<Value>,
        /// Indices of the workers that were stopped.
        still_running: Vec<usize>,
    },

    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Os {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The final state carried by a failed run, if it could be collected.
    pub fn state(&self) -> Option<&Value> {
        match self {
            Error::WorkersFailed { state, .. }
            | Error::TimedOut { state, .. }
            | Error::Stopped { state, .. } => Some(state),
            _ => None,
        }
    }

    /// The per-worker failures of a failed run.
    pub fn failures(&self) -> &[WorkerFailure] {
        match self {
            Error::WorkersFailed { failures, .. }
            | Error::TimedOut { failures, .. }
            | Error::ServerDied { failures, .. }
            | Error::ChildrenFailed { failures } => failures,
            _ => &[],
        }
    }

    /// The error id of a server answer (`no_such_pk`, `version_conflict`, ...).
    pub fn remote_id(&self) -> Option<&str> {
        match self {
            Error::Remote { id, .. } => Some(id),
            _ => None,
        }
    }

    pub(crate) fn os(context: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Error::Os {
            context: context.into(),
            source: source.into(),
        }
    }
}

fn describe_failures(failures: &[WorkerFailure]) -> String {
    if failures.is_empty() {
        return "none".to_owned();
    }
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a worker ended when it did not end cleanly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum WorkerEnd {
    /// The closure returned an error.
    Error {
        /// The error's text.
        message: String,
    },
    /// The closure panicked.
    Panic {
        /// The panic message.
        message: String,
    },
    /// The process exited with a non-zero status without reporting (e.g. `exit(3)`).
    Exit {
        /// The exit status.
        code: i32,
    },
    /// The process was killed by a signal.
    Signal {
        /// Signal name, e.g. `SIGKILL`.
        signal: String,
    },
    /// The process was still running when the run was stopped (timeout, supervisor).
    Stopped,
    /// The work item was never started: the run was cut short first (pid 0).
    NotStarted,
    /// The worker's return value could not be sent (it does not serialise to JSON) or
    /// read back as the type the parent expects.
    BadValue {
        /// What went wrong.
        message: String,
    },
    /// The process was reaped by someone else (a `SIGCHLD` handler of the program's)
    /// before it could report, so how it ended is unknown.
    Unknown,
}

/// A worker that finished cleanly: which one, its pid, how long it ran (as seen by the
/// parent, which notices an exit within a few milliseconds), and the value it returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerOutcome<T = ()> {
    /// Worker index, `0..n`.
    pub index: usize,
    /// Its process id.
    pub pid: u32,
    /// Time from its fork to its exit.
    pub ran_for: Duration,
    /// What its closure returned (`()` for a closure that returns nothing or `Ok(())`).
    pub value: T,
}

/// One failed worker: which one, its pid and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerFailure {
    /// Worker index, `0..n`.
    pub index: usize,
    /// Its process id.
    pub pid: u32,
    /// How it ended.
    pub end: WorkerEnd,
}

impl fmt::Display for WorkerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "worker {} (pid {}) ", self.index, self.pid)?;
        match &self.end {
            WorkerEnd::Error { message } => write!(f, "returned an error: {message}"),
            WorkerEnd::Panic { message } => write!(f, "panicked: {message}"),
            WorkerEnd::Exit { code } => write!(f, "exited with status {code}"),
            WorkerEnd::Signal { signal } => write!(f, "was killed by {signal}"),
            WorkerEnd::Stopped => write!(f, "was still running and was stopped"),
            WorkerEnd::NotStarted => write!(f, "was never started (the run was cut short)"),
            WorkerEnd::BadValue { message } => write!(f, "returned a value that did not arrive: {message}"),
            WorkerEnd::Unknown => write!(f, "ended in an unknown way (reaped by someone else)"),
        }
    }
}
