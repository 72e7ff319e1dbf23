//! The async client (feature `tokio`): what [`Client`] does, for code that
//! runs on a tokio runtime, with a small pool of keep-alive connections so that many
//! calls can be in flight at once on one runtime.
//!
//! The guarantees are the blocking client's, from the same code where it can be shared:
//! the request is encoded and the answer parsed by `uds/exchange.rs` (the sans-I/O
//! `AnswerReader`), connecting is retried within the budget, the server's uid is
//! checked with SO_PEERCRED before a byte is sent, every call has a deadline (the
//! `X-Deadline-Ms` header tells the server), an idle connection is not reused near the
//! server's `Keep-Alive: timeout=N`, and failures are the same typed errors. A
//! connection is taken out of the pool for the whole call and goes back only after a
//! whole answer, so a call whose future is dropped half-way never leaves a half-read
//! connection behind.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::Method;
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::UnixStream;
use tokio::sync::Semaphore;
use tokio::time::timeout_at;

use super::client::{
    check_peer, checked, fixed_headers, inherited, keep_alive_timeout, lock_here, near_idle_close, Call,
    Connecting, PerProcess,
};
use super::exchange::{
    closed_or_dirty, reading_failed, send_some, sending_failed, Answer, AnswerReader, Failure, ReadBuffer,
    Step,
};
use super::{Client, ClientConfig, RawResponse, Token};
use crate::error::{Error, Result};

/// Connections an [`AsyncClient`] opens at most unless told otherwise
/// ([`AsyncClient::max_connections`]); a call past them waits for one, within its deadline.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// How long the check "is the server still there?" after a broken connection may take.
const GONE_CHECK: Duration = Duration::from_millis(200);

/// An async handle on a server: socket path, token, timing, and a pool of keep-alive
/// connections. Cheap to clone; clones share the pool. Calls must run on a tokio runtime
/// with I/O and time enabled (`Builder::enable_all`).
///
/// ```no_run
/// use caspian_ipc::uds::http::Method;
/// use caspian_ipc::uds::{AsyncClient, ClientConfig, Token};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let (path, token) = ("/tmp/caspian/s.sock", "0".repeat(64));
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// runtime.block_on(async {
///     let client = AsyncClient::new(path, Some(Token::from_string(&token)), ClientConfig::default());
///     // Many calls at once: each takes a pooled connection of its own.
///     let (a, b) = tokio::join!(
///         client.call(Method::GET, "/a", None),
///         client.call(Method::POST, "/b", Some(b"{}".to_vec())),
///     );
///     println!("{} {}", a?.status, b?.json()?);
///     Ok::<_, caspian_ipc::Error>(())
/// })?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AsyncClient {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncClient")
            .field("path", &self.shared.path)
            .field("max_connections", &self.shared.max_connections)
            .finish_non_exhaustive()
    }
}

struct Shared {
    path: PathBuf,
    /// The header lines every request carries: host, token, deadline.
    fixed_headers: Vec<u8>,
    config: ClientConfig,
    max_connections: usize,
    /// One permit per connection that may be open at once.
    permits: Semaphore,
    pool: Mutex<Pool>,
}

struct Pool {
    /// Process that owns the connections; a mismatch means we are in a forked child.
    pid: u32,
    idle: Vec<Conn>,
    ever_connected: bool,
    gone: bool,
}

impl PerProcess for Pool {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn fresh() -> Self {
        Pool {
            pid: std::process::id(),
            idle: Vec::new(),
            ever_connected: false,
            gone: false,
        }
    }
}

impl Drop for Pool {
    /// In a forked child the connections are the parent's: their fds were closed at the
    /// fork (`inherited`), and deregistering them would touch the reactor the child
    /// shares with its parent, so they are leaked instead.
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            for conn in self.idle.drain(..) {
                std::mem::forget(conn);
            }
        }
    }
}

struct Conn {
    stream: UnixStream,
    buffer: ReadBuffer,
    /// The request being written, kept to reuse its allocation.
    request: Vec<u8>,
    last_answer: Instant,
    idle_limit: Option<Duration>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        inherited::untrack(self.stream.as_raw_fd());
    }
}

impl AsyncClient {
    /// A client for the server on `path`, authenticating with `token` (if the server has
    /// auth on). Nothing is opened until the first call.
    pub fn new(path: impl Into<PathBuf>, token: Option<Token>, config: ClientConfig) -> Self {
        let fixed_headers = fixed_headers(token.as_ref(), &config);
        Self::with_headers(path.into(), fixed_headers, config)
    }

    /// Connects to a server given its path and token (an external process's entry point).
    pub fn connect(path: impl Into<PathBuf>, token: &str) -> Self {
        Self::new(path, Some(Token::from_string(token)), ClientConfig::default())
    }

    fn with_headers(path: PathBuf, fixed_headers: Vec<u8>, config: ClientConfig) -> Self {
        AsyncClient {
            shared: Arc::new(Shared {
                path,
                fixed_headers,
                config,
                max_connections: DEFAULT_MAX_CONNECTIONS,
                permits: Semaphore::new(DEFAULT_MAX_CONNECTIONS),
                pool: Mutex::new(Pool::fresh()),
            }),
        }
    }

    /// The same client with at most `max` connections open at once (at least 1; default
    /// [`DEFAULT_MAX_CONNECTIONS`]). A fresh pool: clones made before keep the old one.
    pub fn max_connections(self, max: usize) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        AsyncClient {
            shared: Arc::new(Shared {
                path: self.shared.path.clone(),
                fixed_headers: self.shared.fixed_headers.clone(),
                config: self.shared.config.clone(),
                max_connections: max,
                permits: Semaphore::new(max),
                pool: Mutex::new(Pool::fresh()),
            }),
        }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The client's timing.
    pub fn config(&self) -> &ClientConfig {
        &self.shared.config
    }

    /// Sends one request and returns the answer whatever its status. Only transport
    /// failures are errors here; see [`AsyncClient::call`] for status mapping.
    pub async fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<RawResponse> {
        let call = Call::new(&method, path, body, &self.shared.fixed_headers)?;
        if self.pool().gone {
            return Err(self.gone());
        }
        let call_deadline = self.shared.config.call_deadline;
        let deadline = Instant::now() + call_deadline;
        let timeout = Error::Timeout { after: call_deadline };
        let _permit = match timeout_at(deadline.into(), self.shared.permits.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(Error::Protocol("the client's connection pool is closed".into())),
            Err(_) => return Err(timeout),
        };
        // As in the blocking client: a reused connection that closed before a single byte
        // of an answer came back was closed while idle, so the request was not read: it
        // is sent once more on a fresh one (never on another idle one, which the server
        // may have closed at the same moment).
        for attempt in 0..2 {
            let idle = if attempt == 0 { self.take_idle() } else { None };
            let (mut conn, reused) = match idle {
                Some(conn) => (conn, true),
                None => (self.open(deadline).await?, false),
            };
            call.encode(&mut conn.request);
            let outcome = conn.exchange(deadline).await;
            match outcome {
                Ok(answer) => {
                    if !answer.closes {
                        conn.last_answer = Instant::now();
                        conn.idle_limit = keep_alive_timeout(&answer.headers);
                        self.put_back(conn);
                    }
                    return Ok(RawResponse {
                        status: answer.status,
                        headers: answer.headers,
                        body: answer.body,
                    });
                }
                Err(Failure::Broken {
                    answered_nothing: true,
                    ..
                }) if reused => continue,
                Err(Failure::Broken { reason, .. }) => return Err(self.after_break(reason).await),
                Err(Failure::Timeout) => return Err(timeout),
                Err(Failure::Garbled(reason)) => return Err(Error::Protocol(reason)),
            }
        }
        Err(self
            .after_break("the connection closed twice before the server read the request".into())
            .await)
    }

    /// Sends one request; a 2xx answer is returned, anything else becomes the blocking
    /// client's typed errors: 401 → [`Error::Unauthorized`], 403 → [`Error::Forbidden`],
    /// an error body → [`Error::Remote`] with its id and details.
    pub async fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<RawResponse> {
        checked(self.send(method, path, body).await?)
    }

    fn pool(&self) -> MutexGuard<'_, Pool> {
        lock_here(&self.shared.pool)
    }

    /// An idle connection the server has not closed and is not about to close.
    fn take_idle(&self) -> Option<Conn> {
        let mut pool = self.pool();
        while let Some(conn) = pool.idle.pop() {
            if !near_idle_close(conn.last_answer, conn.idle_limit)
                && !closed_or_dirty(conn.stream.as_raw_fd(), &conn.buffer)
            {
                return Some(conn);
            }
        }
        None
    }

    fn put_back(&self, conn: Conn) {
        let mut pool = self.pool();
        if pool.idle.len() < self.shared.max_connections {
            pool.idle.push(conn);
        }
    }

    /// Opens a connection: retried within the budget on the first connect, a single try
    /// once connected before; the server's uid is checked before anything is sent.
    async fn open(&self, deadline: Instant) -> Result<Conn> {
        let path = &self.shared.path;
        let ever_connected = self.pool().ever_connected;
        let budget = if ever_connected {
            Duration::ZERO
        } else {
            self.shared.config.connect_budget
        };
        let mut connecting = Connecting::new(path, budget, ever_connected);
        let stream = loop {
            let attempt = match timeout_at(deadline.into(), UnixStream::connect(path)).await {
                Ok(attempt) => attempt,
                Err(_) => {
                    return Err(Error::Timeout {
                        after: self.shared.config.call_deadline,
                    })
                }
            };
            match attempt {
                Ok(stream) => break stream,
                Err(e) => match connecting.failed(e) {
                    Ok(pause) => tokio::time::sleep(pause).await,
                    Err(e) => {
                        if matches!(e, Error::ServerGone { .. }) {
                            self.pool().gone = true;
                        }
                        return Err(e);
                    }
                },
            }
        };
        check_peer(&stream, path)?;
        inherited::track(stream.as_raw_fd());
        self.pool().ever_connected = true;
        Ok(Conn {
            stream,
            buffer: ReadBuffer::default(),
            request: Vec::new(),
            last_answer: Instant::now(),
            idle_limit: None,
        })
    }

    /// After a connection broke mid-call: is the server gone, or did just this
    /// connection break? One connect attempt tells.
    async fn after_break(&self, reason: String) -> Error {
        match tokio::time::timeout(GONE_CHECK, UnixStream::connect(&self.shared.path)).await {
            Ok(Err(_)) => {
                self.pool().gone = true;
                self.gone()
            }
            Ok(Ok(_)) | Err(_) => Error::ConnectionLost { reason },
        }
    }

    fn gone(&self) -> Error {
        Error::ServerGone {
            path: self.shared.path.clone(),
        }
    }
}

impl From<&Client> for AsyncClient {
    /// An async client for the server `client` talks to, with its token and timing (and
    /// a pool of its own): how a forked worker that runs a runtime reaches its run's
    /// server without blocking.
    fn from(client: &Client) -> Self {
        AsyncClient::with_headers(
            client.path().to_owned(),
            client.fixed_headers().to_vec(),
            client.config().clone(),
        )
    }
}

impl Conn {
    /// Sends `request` and reads the answer by `deadline`; as the blocking exchange, a
    /// server that answers before reading the whole body and closes is still heard.
    async fn exchange(&mut self, deadline: Instant) -> std::result::Result<Answer, Failure> {
        if let Err(failure) = send_all(&self.stream, &self.request, deadline).await {
            return match self.read_answer(deadline).await {
                Ok(answer) => Ok(Answer {
                    closes: true,
                    ..answer
                }),
                Err(_) => Err(failure),
            };
        }
        self.read_answer(deadline).await
    }

    async fn read_answer(&mut self, deadline: Instant) -> std::result::Result<Answer, Failure> {
        let mut reader = AnswerReader::default();
        let mut ended = false;
        loop {
            let want = match reader.step(&mut self.buffer, ended)? {
                Step::Done(answer) => return Ok(answer),
                Step::Read { want } => want,
            };
            match timeout_at(deadline.into(), self.stream.read(self.buffer.room(want))).await {
                Err(_) => return Err(Failure::Timeout),
                Ok(Ok(n)) => {
                    self.buffer.filled_by(n);
                    ended = n == 0;
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(reading_failed(&e, &reader, &self.buffer)),
            }
        }
    }
}

/// Sends all of `bytes` by `deadline`, one `send(MSG_NOSIGNAL)` per readiness.
async fn send_all(
    stream: &UnixStream,
    mut bytes: &[u8],
    deadline: Instant,
) -> std::result::Result<(), Failure> {
    let fd = stream.as_raw_fd();
    while !bytes.is_empty() {
        let chunk = bytes;
        let sent = timeout_at(deadline.into(), async move {
            loop {
                stream.writable().await?;
                match stream.try_io(Interest::WRITABLE, || {
                    send_some(fd, chunk).map_err(std::io::Error::from)
                }) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    outcome => return outcome,
                }
            }
        })
        .await;
        match sent {
            Err(_) => return Err(Failure::Timeout),
            Ok(Ok(n)) => bytes = &bytes[n..],
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Err(sending_failed(e)),
        }
    }
    Ok(())
}
