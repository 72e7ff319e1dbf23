//! Runs for programs that have threads: a fork server forked at the top of `main`, while
//! the process is still single-threaded, runs named jobs on request (D-F20).
//!
//! A run forks, and forking a process with other threads is refused
//! ([`Error::ForkUnsafe`], D-F1): a thread holding a lock at the fork (the allocator's,
//! stdout's, a runtime's) leaves it held forever in the child. A program on a tokio
//! runtime has such threads from its first line of `async` code. [`Prefork`] forks once,
//! before any thread starts, a small process that stays single-threaded; the program's
//! jobs (closures registered before that fork) live in it. Each request forks a fresh
//! child of the fork server that runs the job (a [`share`](crate::share()), a
//! [`Mikobase`](crate::Mikobase) run, any fork-manager work) from a clean single-threaded
//! process, and its value comes back as JSON. The threaded program never forks.
//!
//! ```no_run
//! use caspian_ipc::prefork::Prefork;
//! use serde_json::Value;
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // First thing in main: no thread, no runtime yet.
//!     let jobs = Prefork::new()
//!         .job("count", |workers: usize| {
//!             caspian_ipc::share(workers, |_, hash| hash.incr("visits", 1).map(drop))
//!         })
//!         .start()?;
//!     let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//!     runtime.block_on(async {
//!         // The runtime's threads never fork: the fork server's child does. (With the
//!         // feature `tokio`, `jobs.run_async("count", &4).await` does this wait.)
//!         let state: Value = tokio::task::spawn_blocking(move || jobs.run("count", &4)).await??;
//!         assert_eq!(state["visits"], 4);
//!         Ok(())
//!     })
//! }
//! ```

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result, WorkerEnd, WorkerFailure};
use crate::fork::{die_with_parent, ensure_single_threaded, fork_child, Manager, Tracked, EXIT_ERROR};
use crate::share::to_json;

/// How long a job may run unless told otherwise ([`PreforkBuilder::timeout`]).
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a stopped job gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);
/// Beyond a job's timeout and grace, how long an answer may take to come back before the
/// fork server counts as wedged.
const ANSWER_MARGIN: Duration = Duration::from_secs(5);
/// Longest request or answer (a job's input or value as JSON).
const MAX_MESSAGE: usize = 1 << 30;

/// One registered job: its input as JSON to its value as JSON, or an error text.
type Job<'a> = Box<dyn Fn(Value) -> std::result::Result<Value, String> + 'a>;

/// The jobs of a fork server, registered before it starts ([`Prefork::new`]).
pub struct PreforkBuilder<'a> {
    jobs: Vec<(String, Job<'a>)>,
    timeout: Duration,
}

impl std::fmt::Debug for PreforkBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreforkBuilder")
            .field(
                "jobs",
                &self.jobs.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A fork server: runs the jobs registered before it started, each in a fresh child of
/// a single-threaded process. Cheap to clone; `Send` and `Sync`, so any thread or task
/// of the program may run jobs. Jobs run one at a time (a job is usually a whole run with
/// its own workers); concurrent calls wait their turn. The fork server ends when the
/// last clone is dropped, or when this process dies.
#[derive(Clone, Debug)]
pub struct Prefork {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    names: Vec<String>,
    timeout: Duration,
    link: Mutex<Link>,
    server: Mutex<Option<Tracked>>,
}

#[derive(Debug)]
struct Link {
    stream: Option<UnixStream>,
    /// Why the fork server can no longer be used (it died, or an answer was lost).
    broken: Option<String>,
}

/// A request to the fork server.
#[derive(Serialize, Deserialize)]
struct Request {
    job: String,
    input: Value,
}

/// The fork server's answer.
#[derive(Serialize, Deserialize)]
enum Answer {
    /// The job's value.
    Done(Value),
    /// The job's child failed (its error, panic, signal, or its timeout).
    Failed { pid: u32, end: WorkerEnd },
    /// The job could not be started.
    Refused(String),
}

impl Prefork {
    /// A fork server with no jobs yet and the default timeout
    /// ([`DEFAULT_JOB_TIMEOUT`]); register jobs with [`PreforkBuilder::job`], then
    /// [`PreforkBuilder::start`] it.
    #[allow(clippy::new_ret_no_self)]
    pub fn new<'a>() -> PreforkBuilder<'a> {
        PreforkBuilder {
            jobs: Vec::new(),
            timeout: DEFAULT_JOB_TIMEOUT,
        }
    }

    /// The names of the jobs it runs.
    pub fn jobs(&self) -> impl Iterator<Item = &str> {
        self.inner.names.iter().map(String::as_str)
    }

    /// The fork server's process id.
    pub fn pid(&self) -> Option<u32> {
        let server = self.inner.server.lock().unwrap_or_else(|p| p.into_inner());
        server.as_ref().map(|tracked| tracked.pid().as_raw() as u32)
    }

    /// Runs the job `name` on `input` in a fresh child of the fork server and returns
    /// its value. Blocks (within the job timeout, plus its grace and a margin) until the
    /// job ends; from async code use `Prefork::run_async` (feature `tokio`).
    ///
    /// Errors: an unknown job or an input that does not serialise →
    /// [`Error::InvalidValue`]; the job failed, panicked, was killed or ran past its
    /// timeout → [`Error::ChildrenFailed`] naming its child and how it ended; a value that
    /// does not read back as `O` → [`Error::InvalidValue`]; the fork server is gone →
    /// [`Error::ConnectionLost`].
    pub fn run<I: Serialize + ?Sized, O: DeserializeOwned>(&self, name: &str, input: &I) -> Result<O> {
        let input = to_json(input)?;
        let value = self.run_json(name, input)?;
        serde_json::from_value(value).map_err(|e| Error::InvalidValue {
            reason: format!("the value of job `{name}` does not fit the type asked for: {e}"),
        })
    }

    /// [`Prefork::run`] from async code (feature `tokio`): the wait happens on the
    /// runtime's blocking pool, so the runtime's own threads go on; this process still
    /// never forks.
    ///
    /// ```no_run
    /// use caspian_ipc::prefork::Prefork;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let jobs = Prefork::new()
    ///     .job("double", |n: i64| Ok::<_, String>(2 * n))
    ///     .start()?; // before the runtime
    /// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// let doubled: i64 = runtime.block_on(jobs.run_async("double", &21))?;
    /// assert_eq!(doubled, 42);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tokio")]
    pub async fn run_async<I: Serialize + ?Sized, O: DeserializeOwned + Send + 'static>(
        &self,
        name: &str,
        input: &I,
    ) -> Result<O> {
        let input = to_json(input)?;
        let (this, name) = (self.clone(), name.to_owned());
        tokio::task::spawn_blocking(move || {
            let value = this.run_json(&name, input)?;
            serde_json::from_value(value).map_err(|e| Error::InvalidValue {
                reason: format!("the value of job `{name}` does not fit the type asked for: {e}"),
            })
        })
        .await
        .map_err(|e| Error::Protocol(format!("the blocking task waiting for the job failed: {e}")))?
    }

    fn run_json(&self, name: &str, input: Value) -> Result<Value> {
        if !self.inner.names.iter().any(|known| known == name) {
            return Err(Error::InvalidValue {
                reason: format!(
                    "no job `{name}` was registered before the fork server started (it has: {})",
                    self.inner.names.join(", ")
                ),
            });
        }
        let request = serde_json::to_vec(&Request {
            job: name.to_owned(),
            input,
        })
        .map_err(|e| Error::InvalidValue {
            reason: e.to_string(),
        })?;
        let wait = self.inner.timeout + GRACE + ANSWER_MARGIN;
        let mut link = self.inner.link.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(reason) = &link.broken {
            return Err(lost(reason));
        }
        let Some(stream) = link.stream.as_mut() else {
            return Err(lost("it was stopped"));
        };
        let deadline = Instant::now() + wait;
        let answer = write_message(stream, &request, Some(deadline))
            .and_then(|()| read_message(stream, Some(deadline)));
        let answer = match answer {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err(self.broken(&mut link, "it closed its end (it died)".into())),
            Err(Failure::Timeout) => {
                let reason = format!("it did not answer within {wait:?}");
                let _ = self.broken(&mut link, reason);
                return Err(Error::Timeout { after: wait });
            }
            Err(Failure::Io(reason)) => return Err(self.broken(&mut link, reason)),
        };
        drop(link);
        match serde_json::from_slice::<Answer>(&answer) {
            Ok(Answer::Done(value)) => Ok(value),
            Ok(Answer::Failed { pid, end }) => Err(Error::ChildrenFailed {
                failures: vec![WorkerFailure { index: 0, pid, end }],
            }),
            Ok(Answer::Refused(reason)) => Err(Error::ServerStartup(format!(
                "the fork server could not start job `{name}`: {reason}"
            ))),
            Err(e) => Err(Error::Protocol(format!(
                "the fork server's answer is not one: {e}"
            ))),
        }
    }

    /// The link is no longer usable: say why from now on, and stop the fork server.
    fn broken(&self, link: &mut Link, reason: String) -> Error {
        link.stream = None;
        let error = lost(&reason);
        link.broken = Some(reason);
        let mut server = self.inner.server.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut tracked) = server.take() {
            tracked.stop(GRACE);
        }
        error
    }
}

fn lost(reason: &str) -> Error {
    Error::ConnectionLost {
        reason: format!("the fork server can no longer run jobs: {reason}"),
    }
}

impl Drop for Inner {
    /// Closes the link (an idle fork server exits at once when it sees that) and reaps
    /// the fork server, stopping it if it does not exit within a second (a job still
    /// running dies with it).
    fn drop(&mut self) {
        let link = self.link.get_mut().unwrap_or_else(|p| p.into_inner());
        link.stream = None;
        let server = self.server.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(tracked) = server.as_mut() {
            tracked.reap_within(Duration::from_secs(1));
        }
        // A `Tracked` not reaped yet is stopped (SIGTERM, grace, SIGKILL) as it drops.
    }
}

impl<'a> PreforkBuilder<'a> {
    /// Registers the job `name`: `body` runs in a fresh child of the fork server on the
    /// input a [`Prefork::run`] sends (as JSON, read back as `I`), and its `Ok` value is
    /// the run's answer (an `Err` fails the run with its text). A later job of the same
    /// name replaces it. The body may borrow from `main`: it is copied into the fork
    /// server at [`PreforkBuilder::start`].
    pub fn job<I, O, E, F>(mut self, name: &str, body: F) -> Self
    where
        I: DeserializeOwned,
        O: Serialize,
        E: std::fmt::Display,
        F: Fn(I) -> std::result::Result<O, E> + 'a,
    {
        let label = name.to_owned();
        let job: Job<'a> = Box::new(move |input: Value| {
            let input: I = serde_json::from_value(input)
                .map_err(|e| format!("the input of job `{label}` does not fit its type: {e}"))?;
            let value = body(input).map_err(|e| e.to_string())?;
            to_json(&value).map_err(|e| format!("the value of job `{label}`: {e}"))
        });
        self.jobs.retain(|(known, _)| known != name);
        self.jobs.push((name.to_owned(), job));
        self
    }

    /// How long one job may run (default [`DEFAULT_JOB_TIMEOUT`]); past it its child is
    /// stopped and the run fails with [`WorkerEnd::Stopped`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Forks the fork server. Call it first thing in `main`, before a runtime or any
    /// other thread starts: with other threads it is refused ([`Error::ForkUnsafe`];
    /// there is no opt-out, being single-threaded is the point).
    pub fn start(self) -> Result<Prefork> {
        ensure_single_threaded()?;
        let (ours, theirs) =
            UnixStream::pair().map_err(|e| Error::os("socketpair for the fork server", e))?;
        let parent = nix::unistd::getpid();
        let ours_fd = ours.as_raw_fd();
        let timeout = self.timeout;
        let names = self.jobs.iter().map(|(name, _)| name.clone()).collect();
        let jobs = self.jobs;
        let pid = fork_child(move || {
            // SAFETY: the parent's end is the parent's; this child never uses it (its
            // owner is never dropped here: the child leaves with `_exit`).
            unsafe { libc::close(ours_fd) };
            if !die_with_parent(nix::sys::signal::Signal::SIGTERM, parent) {
                return EXIT_ERROR;
            }
            serve_jobs(theirs, &jobs, timeout)
        })?;
        Ok(Prefork {
            inner: Arc::new(Inner {
                names,
                timeout,
                link: Mutex::new(Link {
                    stream: Some(ours),
                    broken: None,
                }),
                server: Mutex::new(Some(Tracked::new(pid, GRACE))),
            }),
        })
    }
}

/// The fork server's loop: one request, one job child, one answer, until the program
/// closes its end. Waiting for a request has no deadline: an idle fork server is what it
/// is for; it ends with the link or with its parent.
fn serve_jobs(mut stream: UnixStream, jobs: &[(String, Job<'_>)], timeout: Duration) -> i32 {
    let link = stream.as_raw_fd();
    loop {
        let request = match read_message(&mut stream, None) {
            Ok(Some(request)) => request,
            Ok(None) => return 0,
            Err(_) => return EXIT_ERROR,
        };
        let answer = match serde_json::from_slice::<Request>(&request) {
            Ok(request) => match jobs.iter().find(|(name, _)| *name == request.job) {
                Some((_, body)) => run_job(body, request.input, timeout, link),
                None => Answer::Refused(format!("no job `{}`", request.job)),
            },
            Err(e) => Answer::Refused(format!("a request that is not one: {e}")),
        };
        let answer = serde_json::to_vec(&answer).unwrap_or_default();
        if write_message(&mut stream, &answer, None).is_err() {
            return EXIT_ERROR;
        }
    }
}

fn run_job(body: &Job<'_>, input: Value, timeout: Duration, link: std::os::fd::RawFd) -> Answer {
    let child = Manager::new().grace(GRACE).spawn(|| {
        // SAFETY: the job child does not use the fork server's link, and its owner is
        // never dropped here (the child leaves with `_exit`); closed so that a job's own
        // children do not hold it open.
        unsafe { libc::close(link) };
        body(input)
    });
    match child {
        Ok(child) => {
            let ended = child.join(timeout);
            match ended.value {
                Ok(value) => Answer::Done(value),
                Err(end) => Answer::Failed { pid: ended.pid, end },
            }
        }
        Err(e) => Answer::Refused(e.to_string()),
    }
}

enum Failure {
    Timeout,
    Io(String),
}

/// Writes one message: its length (8 bytes, big-endian), then its bytes.
fn write_message(
    stream: &mut UnixStream,
    bytes: &[u8],
    deadline: Option<Instant>,
) -> std::result::Result<(), Failure> {
    let mut message = Vec::with_capacity(8 + bytes.len());
    message.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    message.extend_from_slice(bytes);
    let mut rest = &message[..];
    while !rest.is_empty() {
        stream
            .set_write_timeout(left(deadline)?)
            .map_err(|e| Failure::Io(e.to_string()))?;
        match nix::sys::socket::send(stream.as_raw_fd(), rest, nix::sys::socket::MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => rest = &rest[n..],
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(e) => return Err(Failure::Io(format!("sending to the fork server: {e}"))),
        }
    }
    Ok(())
}

/// Reads one message; `None` at the end of the stream before it.
fn read_message(
    stream: &mut UnixStream,
    deadline: Option<Instant>,
) -> std::result::Result<Option<Vec<u8>>, Failure> {
    let mut length = [0u8; 8];
    if !read_exact(stream, &mut length, deadline, true)? {
        return Ok(None);
    }
    let length = usize::try_from(u64::from_be_bytes(length))
        .ok()
        .filter(|&n| n <= MAX_MESSAGE)
        .ok_or_else(|| Failure::Io(format!("a message longer than {MAX_MESSAGE} bytes")))?;
    let mut bytes = vec![0u8; length];
    read_exact(stream, &mut bytes, deadline, false)?;
    Ok(Some(bytes))
}

/// Fills `buffer`; false when the stream ended before the first byte and `may_end`.
fn read_exact(
    stream: &mut UnixStream,
    buffer: &mut [u8],
    deadline: Option<Instant>,
    may_end: bool,
) -> std::result::Result<bool, Failure> {
    let mut filled = 0;
    while filled < buffer.len() {
        stream
            .set_read_timeout(left(deadline)?)
            .map_err(|e| Failure::Io(e.to_string()))?;
        match stream.read(&mut buffer[filled..]) {
            Ok(0) if filled == 0 && may_end => return Ok(false),
            Ok(0) => return Err(Failure::Io("the link closed mid-message".into())),
            Ok(n) => filled += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(Failure::Io(e.to_string())),
        }
    }
    Ok(true)
}

/// The time left to `deadline` as a socket timeout (`None`: no deadline); past it, a
/// timeout.
fn left(deadline: Option<Instant>) -> std::result::Result<Option<Duration>, Failure> {
    match deadline {
        None => Ok(None),
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                Err(Failure::Timeout)
            } else {
                Ok(Some(left))
            }
        }
    }
}
