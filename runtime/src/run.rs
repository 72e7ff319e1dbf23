//! Fork orchestration shared by both flavours: server first, then the workers, then the
//! final state, then the server stops. Nothing is left behind on any path: children are
//! tracked by an RAII guard and the socket directory removes itself.

use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::fork::{
    describe_exit, drive, ensure_single_threaded, Cut, Manager, Tracked, Worker, WorkerEnd, WorkerOutcome,
    WorkerResult,
};
use crate::uds::monitor::STATS_PATH;
use crate::uds::{
    spawn_server_with, Client, ClientConfig, Exposure, Handler, ServerConfig, SocketDir, TcpListen, Token,
};

/// Options common to `share` and `mikobase` runs.
#[derive(Debug, Clone)]
pub(crate) struct RunOptions {
    pub workers: usize,
    pub timeout: Option<Duration>,
    pub client: ClientConfig,
    pub server: ServerConfig,
    pub allow_threads: bool,
    pub grace: Duration,
    pub startup: Duration,
    pub expose: Option<std::path::PathBuf>,
    /// Also serve on this TCP listener, with this token for every connection (D-N5).
    pub tcp: Option<(std::sync::Arc<TcpListen>, Token)>,
}

impl RunOptions {
    pub(crate) fn new(workers: usize) -> Self {
        RunOptions {
            workers,
            timeout: None,
            client: ClientConfig::default(),
            server: ServerConfig::default(),
            allow_threads: false,
            grace: Duration::from_secs(2),
            startup: Duration::from_secs(10),
            expose: None,
            tcp: None,
        }
    }
}

/// The options every flavour's run builder has (`Share`, `Mikobase`), defined once so the
/// builders cannot drift apart. The builder needs the fields `options: RunOptions` and
/// `supervisor: Option<Supervisor<'a>>`.
macro_rules! run_option_setters {
    () => {
        /// Stops the workers still running after `timeout` (default: no timeout); the
        /// final state is still collected and [`crate::Error::TimedOut`] names them.
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.options.timeout = Some(timeout);
            self
        }

        /// How long a worker's first connect retries while the server is not yet
        /// listening (default 500 ms).
        pub fn connect_budget(mut self, budget: std::time::Duration) -> Self {
            self.options.client.connect_budget = budget;
            self
        }

        /// Deadline of each call a worker makes (default 30 s). A call parked behind
        /// another worker's exclusive hold waits at most this long.
        pub fn call_deadline(mut self, deadline: std::time::Duration) -> Self {
            self.options.client.call_deadline = deadline;
            self
        }

        /// Largest request body the server accepts (default 16 MiB); larger ones get 413
        /// `request-too-large`.
        pub fn body_limit(mut self, bytes: usize) -> Self {
            self.options.server.body_limit = bytes;
            self
        }

        /// Deepest JSON nesting the server accepts (default 64, at most 128).
        pub fn max_depth(mut self, depth: usize) -> Self {
            self.options.server.max_depth = depth.min(128);
            self
        }

        /// How long stopped children get between SIGTERM and SIGKILL (default 2 s).
        pub fn grace(mut self, grace: std::time::Duration) -> Self {
            self.options.grace = grace;
            self
        }

        /// Forks even if this process has other threads. Only sound when every other
        /// thread holds no lock the children need (allocator, stdio, runtimes): the
        /// opt-out named by [`crate::Error::ForkUnsafe`].
        pub fn allow_threads(mut self, allow: bool) -> Self {
            self.options.allow_threads = allow;
            self
        }

        /// Lets other processes of your user watch the run while it goes: writes `path`
        /// (mode 0600; refused if it exists, or if another user can write its directory)
        /// with the run's socket and token, and removes it when the run ends. Attach with
        /// `caspian-ipc watch PATH` (the live state) or `caspian-ipc monitor PATH` (every
        /// operation as it happens), or [`crate::uds::Exposed::read`].
        pub fn expose(mut self, path: impl Into<std::path::PathBuf>) -> Self {
            self.options.expose = Some(path.into());
            self
        }

        /// Lets processes that were not forked by the run join it: the run's server also
        /// serves on `listen` (TCP+TLS: [`crate::uds::TcpListen::tls`]), and every
        /// connection, the forked workers' on the Unix socket too, must carry `token`
        /// (read it from a 0600 file: [`crate::uds::Token::from_file`]). A process
        /// elsewhere joins with the listener's URL and the same token (for the shared
        /// hash, [`crate::SharedHash::join`]). The server stays one process on this host,
        /// and the run still ends when its forked workers have (D-N5).
        pub fn listen(mut self, listen: crate::uds::TcpListen, token: crate::uds::Token) -> Self {
            self.options.tcp = Some((std::sync::Arc::new(listen), token));
            self
        }

        /// How long a TCP connection's TLS handshake may take (default 10 s); a peer that
        /// connects and sends nothing is cut then.
        pub fn handshake_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.options.server.handshake_timeout = timeout;
            self
        }

        /// Calls `supervise` in the parent every few milliseconds while the workers run;
        /// it can watch progress (and read the state: [`crate::Progress::state`]) or stop
        /// the run early ([`crate::Error::Stopped`]).
        pub fn supervise(
            mut self,
            supervise: impl FnMut(&crate::Progress<'_>) -> crate::Supervision + 'a,
        ) -> Self {
            self.supervisor = Some(Box::new(supervise));
            self
        }
    };
}
pub(crate) use run_option_setters;

/// What a supervisor sees while the workers run.
#[derive(Clone)]
pub struct Progress<'r> {
    /// Indices of the workers still running.
    pub running: Vec<usize>,
    /// Indices of the workers that have failed so far.
    pub failed: Vec<usize>,
    /// Time since the workers were started.
    pub elapsed: Duration,
    /// Process id of the server.
    pub server_pid: u32,
    client: &'r Client,
    read_state: &'r dyn Fn(&Client) -> Result<Value>,
}

impl Progress<'_> {
    /// Requests the server has answered so far (each a worker's operation; a batch is
    /// one). One request to the server: call it every so often, not on every tick.
    pub fn operations(&self) -> Result<u64> {
        let stats = self.client.get(STATS_PATH)?.json()?;
        stats["requests"]
            .as_u64()
            .ok_or_else(|| Error::Protocol(format!("the server's stats have no request count: {stats}")))
    }

    /// The shared state as it is now (the hash, or the store as a worldlet), read from
    /// the server like the final state is.
    pub fn state(&self) -> Result<Value> {
        (self.read_state)(self.client)
    }
}

impl std::fmt::Debug for Progress<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("running", &self.running)
            .field("failed", &self.failed)
            .field("elapsed", &self.elapsed)
            .field("server_pid", &self.server_pid)
            .finish_non_exhaustive()
    }
}

/// A supervisor's answer: keep going, or stop the workers now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervision {
    /// Keep waiting.
    Continue,
    /// Stop every running worker, collect the state, and return [`Error::Stopped`].
    Stop,
}

/// A callback run in the parent while it waits for the workers.
pub type Supervisor<'a> = Box<dyn FnMut(&Progress<'_>) -> Supervision + 'a>;

/// Runs `body` in `options.workers` forked workers against a server built by
/// `make_handler`, then returns what `collect` reads from the server, with every worker's
/// outcome and value (in index order) when all of them finished cleanly.
///
/// The workers are a [`crate::fork::Manager`] run ([`drive`]); the supervisor is its tick.
pub(crate) fn run<H, P, F, R>(
    options: &RunOptions,
    mut supervisor: Option<Supervisor<'_>>,
    make_handler: impl FnOnce() -> std::result::Result<H, String>,
    make_proxy: impl Fn(Client) -> P,
    body: F,
    collect: impl Fn(&Client) -> Result<Value>,
    flavour: &str,
) -> Result<(Value, Vec<WorkerOutcome<R::Value>>)>
where
    H: Handler,
    F: Fn(Worker, P) -> R,
    R: WorkerResult,
{
    if !options.allow_threads {
        ensure_single_threaded()?;
    }
    let dir = SocketDir::create()?;
    let token = match &options.tcp {
        Some((_, token)) => token.clone(),
        None => Token::generate().map_err(|e| Error::os("generating the token", e))?,
    };
    let server = spawn_server_with(
        &dir,
        options.tcp.as_ref().map(|(listen, _)| &**listen),
        Some(token.clone()),
        options.server.clone(),
        make_handler,
        options.startup,
    )?;
    let mut server = Tracked::new(server, options.grace);
    let server_pid = server.pid().as_raw() as u32;
    let _exposure = match &options.expose {
        Some(path) => Some(Exposure::write(path, dir.socket_path(), &token, flavour)?),
        None => None,
    };
    let client = Client::new(dir.socket_path(), Some(token), options.client.clone());

    let mut manager = Manager::new()
        .grace(options.grace)
        .allow_threads(options.allow_threads);
    if let Some(timeout) = options.timeout {
        manager = manager.timeout(timeout);
    }
    let mut server_end = None;
    let harvest = drive(
        &manager,
        0..options.workers,
        |worker, _| {
            crate::uds::client::set_worker_index(worker.index());
            body(worker, make_proxy(client.clone()))
        },
        |tick| {
            if server_end.is_none() {
                server_end = server.try_reap();
            }
            match supervisor.as_mut() {
                Some(supervise) => supervise(&Progress {
                    running: tick.running.clone(),
                    failed: tick.failed.clone(),
                    elapsed: tick.elapsed,
                    server_pid,
                    client: &client,
                    read_state: &collect,
                }),
                None => Supervision::Continue,
            }
        },
        |_| Supervision::Continue,
    )?;
    let failures = harvest.failures();
    let stopped: Vec<usize> = failures
        .iter()
        .filter(|f| f.end == WorkerEnd::Stopped)
        .map(|f| f.index)
        .collect();
    let finished: Vec<WorkerOutcome<R::Value>> = harvest
        .ended
        .into_iter()
        .filter_map(|end| {
            let value = end.value.ok()?;
            Some(WorkerOutcome {
                index: end.index,
                pid: end.pid,
                ran_for: end.ran_for,
                value,
            })
        })
        .collect();

    if server_end.is_none() {
        server_end = server.try_reap();
    }
    let state = match server_end {
        Some(status) => Err(describe_server_end(status)),
        None => collect(&client).map_err(|error| match server.try_reap() {
            Some(status) => describe_server_end(status),
            None => format!("reading the final state failed: {error}"),
        }),
    };
    drop(client);
    server.stop(options.grace);
    drop(dir);
    let state = match state {
        Ok(state) => Box::new(state),
        Err(how) => return Err(Error::ServerDied { how, failures }),
    };
    match harvest.cut {
        Some(Cut::TimedOut(after)) => Err(Error::TimedOut {
            after,
            state,
            still_running: stopped,
            failures,
        }),
        Some(Cut::Stopped) => Err(Error::Stopped {
            state,
            still_running: stopped,
        }),
        None if failures.is_empty() => Ok((*state, finished)),
        None => Err(Error::WorkersFailed {
            state,
            failures,
            finished: finished.into_iter().map(as_json).collect(),
        }),
    }
}

/// A finished worker's outcome with its value as JSON, for an error that is not generic.
fn as_json<T: serde::Serialize>(outcome: WorkerOutcome<T>) -> WorkerOutcome<Value> {
    WorkerOutcome {
        index: outcome.index,
        pid: outcome.pid,
        ran_for: outcome.ran_for,
        value: serde_json::to_value(&outcome.value).unwrap_or(Value::Null),
    }
}

fn describe_server_end(status: Option<nix::sys::wait::WaitStatus>) -> String {
    match status.and_then(describe_exit) {
        Some(WorkerEnd::Signal { signal }) => format!("killed by {signal}"),
        Some(WorkerEnd::Exit { code }) => format!("exited with status {code}"),
        Some(other) => format!("{other:?}"),
        None => "exited before the run ended".to_owned(),
    }
}
