//! Fork orchestration shared by both flavours: server first, then the workers, then the
//! final state, then the server stops. Nothing is left behind on any path: children are
//! tracked by an RAII guard and the socket directory removes itself.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::{getpid, Pid};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::fork::{
    bounded, describe_exit, die_with_parent, ensure_single_threaded, fork_child, panic_message, Children,
    Report, Worker, WorkerEnd, WorkerFailure, WorkerOutcome, WorkerResult, EXIT_ERROR, EXIT_PANIC,
};
use crate::uds::{spawn_server, Client, ClientConfig, Handler, ServerConfig, SocketDir, Token};

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

        /// Calls `supervise` in the parent every few milliseconds while the workers run;
        /// it can watch progress or stop the run early ([`crate::Error::Stopped`]).
        pub fn supervise(
            mut self,
            supervise: impl FnMut(&crate::Progress) -> crate::Supervision + 'a,
        ) -> Self {
            self.supervisor = Some(Box::new(supervise));
            self
        }
    };
}
pub(crate) use run_option_setters;

/// What a supervisor sees while the workers run.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Indices of the workers still running.
    pub running: Vec<usize>,
    /// Indices of the workers that have failed so far.
    pub failed: Vec<usize>,
    /// Time since the workers were started.
    pub elapsed: Duration,
    /// Process id of the server.
    pub server_pid: u32,
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
pub type Supervisor<'a> = Box<dyn FnMut(&Progress) -> Supervision + 'a>;

struct Running {
    pid: Pid,
    report: Report,
    forked: Instant,
}

/// Runs `body` in `options.workers` forked workers against a server built by
/// `make_handler`, then returns what `collect` reads from the server, with every worker's
/// outcome (in index order) when all of them finished cleanly.
pub(crate) fn run<H, P, F, R>(
    options: &RunOptions,
    mut supervisor: Option<Supervisor<'_>>,
    make_handler: impl FnOnce() -> std::result::Result<H, String>,
    make_proxy: impl Fn(Client) -> P,
    body: F,
    collect: impl FnOnce(&Client) -> Result<Value>,
) -> Result<(Value, Vec<WorkerOutcome>)>
where
    H: Handler,
    F: Fn(Worker, P) -> R,
    R: WorkerResult,
{
    if !options.allow_threads {
        ensure_single_threaded()?;
    }
    let dir = SocketDir::create()?;
    let token = Token::generate().map_err(|e| Error::os("generating the token", e))?;
    let mut children = Children::new(options.grace);
    let server = spawn_server(
        &dir,
        Some(token.clone()),
        options.server.clone(),
        make_handler,
        options.startup,
    )?;
    children.track(server);

    let client = Client::new(dir.socket_path(), Some(token), options.client.clone());
    let parent = getpid();
    let mut running = BTreeMap::new();
    for index in 0..options.workers {
        let (report, write) = Report::pipe()?;
        let forked = Instant::now();
        let worker = Worker::new(index, options.workers, parent.as_raw() as u32);
        let proxy = make_proxy(client.clone());
        let body = &body;
        let pid = fork_child(move || {
            if !die_with_parent(Signal::SIGKILL, parent) {
                return EXIT_ERROR;
            }
            crate::uds::client::set_worker_index(index);
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                body(worker, proxy).into_outcome()
            })) {
                Ok(Ok(())) => 0,
                Ok(Err(message)) => {
                    Report::send(
                        write,
                        &WorkerEnd::Error {
                            message: bounded(message),
                        },
                    );
                    EXIT_ERROR
                }
                Err(payload) => {
                    Report::send(
                        write,
                        &WorkerEnd::Panic {
                            message: bounded(panic_message(payload.as_ref())),
                        },
                    );
                    EXIT_PANIC
                }
            }
        })?;
        children.track(pid);
        running.insert(index, Running { pid, report, forked });
    }

    let started = Instant::now();
    let mut failures = Vec::new();
    let mut finished = Vec::new();
    let mut server_end = None;
    let mut cut_short: Option<Supervision> = None;
    let mut timed_out = false;
    let mut pause = Duration::from_micros(100);
    while !running.is_empty() {
        let mut ended = Vec::new();
        for (index, worker) in &running {
            if let Some(status) = children.try_reap(worker.pid)? {
                ended.push((*index, status));
            }
        }
        for (index, status) in ended {
            let worker = running.remove(&index).expect("an ended worker was running");
            if let Some(end) = describe_exit(status) {
                let end = match end {
                    WorkerEnd::Exit { code } if code == EXIT_ERROR || code == EXIT_PANIC => {
                        worker.report.receive().unwrap_or(WorkerEnd::Exit { code })
                    }
                    other => other,
                };
                failures.push(failure(index, worker.pid, end));
            } else {
                finished.push(WorkerOutcome {
                    index,
                    pid: worker.pid.as_raw() as u32,
                    ran_for: worker.forked.elapsed(),
                });
            }
        }
        if running.is_empty() {
            break;
        }
        if server_end.is_none() {
            server_end = children.try_reap(server)?;
        }
        let expired = options.timeout.is_some_and(|t| started.elapsed() >= t);
        let verdict = match supervisor.as_mut() {
            Some(supervise) if !expired => supervise(&Progress {
                running: running.keys().copied().collect(),
                failed: failures.iter().map(|f: &WorkerFailure| f.index).collect(),
                elapsed: started.elapsed(),
                server_pid: server.as_raw() as u32,
            }),
            _ => Supervision::Continue,
        };
        if expired || verdict == Supervision::Stop {
            timed_out = expired;
            cut_short = Some(verdict);
            let pids: Vec<Pid> = running.values().map(|w| w.pid).collect();
            children.stop(&pids);
            failures.extend(
                running
                    .iter()
                    .map(|(index, w)| failure(*index, w.pid, WorkerEnd::Stopped)),
            );
            break;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
    failures.sort_by_key(|f| f.index);
    let stopped: Vec<usize> = failures
        .iter()
        .filter(|f| f.end == WorkerEnd::Stopped)
        .map(|f| f.index)
        .collect();

    if server_end.is_none() {
        server_end = children.try_reap(server)?;
    }
    let state = match server_end {
        Some(status) => Err(describe_server_end(status)),
        None => collect(&client).map_err(|error| match children.try_reap(server) {
            Ok(Some(status)) => describe_server_end(status),
            _ => format!("reading the final state failed: {error}"),
        }),
    };
    drop(client);
    children.stop(&[server]);
    drop(dir);
    let state = match state {
        Ok(state) => Box::new(state),
        Err(how) => return Err(Error::ServerDied { how, failures }),
    };
    match (timed_out, cut_short, failures.is_empty()) {
        (true, _, _) => Err(Error::TimedOut {
            after: options.timeout.unwrap_or_default(),
            state,
            still_running: stopped,
            failures,
        }),
        (false, Some(Supervision::Stop), _) => Err(Error::Stopped {
            state,
            still_running: stopped,
        }),
        (_, _, true) => {
            finished.sort_by_key(|w| w.index);
            Ok((*state, finished))
        }
        (_, _, false) => Err(Error::WorkersFailed { state, failures }),
    }
}

fn describe_server_end(status: nix::sys::wait::WaitStatus) -> String {
    match describe_exit(status) {
        Some(WorkerEnd::Signal { signal }) => format!("killed by {signal}"),
        Some(WorkerEnd::Exit { code }) => format!("exited with status {code}"),
        Some(other) => format!("{other:?}"),
        None => "exited before the run ended".to_owned(),
    }
}

fn failure(index: usize, pid: Pid, end: WorkerEnd) -> WorkerFailure {
    WorkerFailure {
        index,
        pid: pid.as_raw() as u32,
        end,
    }
}
