//! The blocking client workers use: one lazily opened keep-alive connection per process,
//! a plain blocking socket (the HTTP exchange itself is in `uds/exchange.rs`).
//!
//! The connection is opened by the process that makes the first call, so a client value
//! that crosses a fork reconnects in the child and no socket is ever shared between
//! processes. Connecting is retried on ENOENT/ECONNREFUSED within a small budget (the
//! server may not be listening yet); every call has a deadline; once the server has been
//! seen to go away, every call fails at once with [`Error::ServerGone`]. Right after
//! connecting, before any byte is sent, the client checks with SO_PEERCRED that the
//! server runs as our uid ([`Error::UntrustedServer`] otherwise), so a token never goes
//! to a listener of another user.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use serde_json::Value;

pub use super::exchange::Headers;
use super::exchange::{encode_request, valid_target, ClientStream, Connection, Failure};
use super::tcp::{ClientSecurity, Remote};

/// One call's request, its target checked, ready to be written on any connection.
pub(super) struct Call<'a> {
    method: &'a Method,
    path: &'a str,
    body: Vec<u8>,
    fixed: &'a [u8],
    worker: Option<usize>,
}

impl<'a> Call<'a> {
    /// `fixed`: the client's header lines ([`fixed_headers`]). A target the request line
    /// cannot carry is refused before anything is sent.
    pub(super) fn new(
        method: &'a Method,
        path: &'a str,
        body: Option<Vec<u8>>,
        fixed: &'a [u8],
    ) -> Result<Self> {
        if !valid_target(path) {
            return Err(Error::Protocol(format!(
                "cannot send a request for `{path}`: a path starts with `/` and has no spaces or control characters (percent-encode them)"
            )));
        }
        Ok(Call {
            method,
            path,
            body: body.unwrap_or_default(),
            fixed,
            worker: worker_index(),
        })
    }

    /// Writes the request into `out` (its allocation reused).
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        encode_request(
            out,
            self.method.as_str(),
            self.path,
            self.fixed,
            self.worker,
            &self.body,
        );
    }
}
use super::http::X_DEADLINE_MS;
use super::token::Token;
use crate::error::{Error, Result};

/// Client timing.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How long the first connect keeps retrying while the socket is missing or refusing.
    pub connect_budget: Duration,
    /// Deadline of one call, from sending to the last byte of the answer.
    pub call_deadline: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_budget: Duration::from_millis(500),
            call_deadline: Duration::from_secs(30),
        }
    }
}

/// An answer from the server, whatever its status.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Headers,
    /// Body bytes.
    pub body: Bytes,
}

impl RawResponse {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::Protocol(format!("response body is not JSON: {e}")))
    }
}

/// A handle on a server: socket path, token, timing. Cheap to clone; clones share the
/// per-process connection.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

struct Shared {
    /// The socket path; for a TCP client, its URL (as errors name it).
    path: PathBuf,
    /// The TCP server this client talks to instead of a Unix socket.
    remote: Option<Remote>,
    /// The header lines every request carries: host, token, deadline.
    fixed_headers: Vec<u8>,
    config: ClientConfig,
    state: Mutex<State>,
}

struct State {
    /// Process that owns `conn`; a mismatch means we are in a forked child.
    pid: u32,
    conn: Option<Conn>,
    ever_connected: bool,
    gone: bool,
    /// How many open transaction handles rely on `conn` (the server ties a transaction
    /// to the connection that began it): while above zero the connection is never
    /// silently replaced.
    holds: usize,
    /// Why the held connection was lost, until the last hold is released.
    lost: Option<String>,
}

/// What a client keeps for the process that uses it: a copy inherited across a fork is
/// replaced by a fresh one (see [`lock_here`]).
pub(super) trait PerProcess {
    /// The process it belongs to.
    fn pid(&self) -> u32;
    /// A fresh one for this process.
    fn fresh() -> Self;
}

/// Locks `mutex` (past a poisoning); what it holds is replaced when it was inherited
/// across a fork. The old value's drop must leak the parent's connections instead of
/// closing them (see `State`'s drop).
pub(super) fn lock_here<T: PerProcess>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    let mut guard = mutex.lock().unwrap_or_else(|poison| poison.into_inner());
    if guard.pid() != std::process::id() {
        *guard = T::fresh();
    }
    guard
}

impl PerProcess for State {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn fresh() -> Self {
        State {
            pid: std::process::id(),
            conn: None,
            ever_connected: false,
            gone: false,
            holds: 0,
            lost: None,
        }
    }
}

impl Drop for State {
    /// A client dropped in a forked child must not close the parent's connection from its
    /// copy of it: the copy is leaked instead (its socket was already closed in the child,
    /// see [`inherited`]).
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            if let Some(conn) = self.conn.take() {
                std::mem::forget(conn);
            }
        }
    }
}

/// Connections open in this process, so that a forked child can close its copies at once.
///
/// A child that kept a copy of its parent's socket would keep the parent's connection
/// open after the parent closed it or died: the server would not see it go, and would
/// keep whatever it ties to it (a transaction, a lock) until the child ended too. A
/// `pthread_atfork` handler closes the copies in every child, whoever forks it; it runs
/// between fork and the child's first step, so it only touches atomics.
pub(super) mod inherited {
    use std::os::fd::RawFd;
    use std::sync::atomic::{AtomicI32, Ordering};
    use std::sync::Once;

    /// Connections tracked at once; past that many a connection is not closed in
    /// children (a worker rarely holds more than a few).
    const SLOTS: usize = 64;
    const FREE: i32 = -1;
    static OPEN: [AtomicI32; SLOTS] = [const { AtomicI32::new(FREE) }; SLOTS];
    static HANDLER: Once = Once::new();

    /// Tracks `fd`, an open connection of this process.
    pub(in crate::uds) fn track(fd: RawFd) {
        HANDLER.call_once(|| {
            // SAFETY: registers a handler that only swaps atomics and calls close(2),
            // both async-signal-safe, as a handler run in a forked child must be.
            unsafe { libc::pthread_atfork(None, None, Some(close_in_child)) };
        });
        for slot in &OPEN {
            if slot
                .compare_exchange(FREE, fd, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Stops tracking `fd` (its connection is closing in the process that opened it).
    pub(in crate::uds) fn untrack(fd: RawFd) {
        for slot in &OPEN {
            if slot
                .compare_exchange(fd, FREE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
        }
    }

    extern "C" fn close_in_child() {
        for slot in &OPEN {
            let fd = slot.swap(FREE, Ordering::AcqRel);
            if fd != FREE {
                // SAFETY: `fd` is this child's copy of a parent's connection; the objects
                // that own it are never dropped in the child (see `State`'s drop, and the
                // async client's `Pool`).
                unsafe { libc::close(fd) };
            }
        }
    }
}

struct Conn {
    connection: Connection,
    /// The request being written, kept to reuse its allocation.
    request: Vec<u8>,
    /// When the last answer arrived, and how long the server said it keeps an idle
    /// connection (`Keep-Alive: timeout=N`).
    last_answer: Instant,
    idle_limit: Option<Duration>,
}

impl Conn {
    /// Whether the server has closed (or written unasked to) this idle connection, or may
    /// be about to: reusing it could fail *after* sending, where a retry is not safe.
    fn stale(&self) -> bool {
        self.near_idle_close() || self.connection.closed_or_dirty()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        inherited::untrack(self.connection.fd());
    }
}

impl Conn {
    /// Whether the server may be about to close this connection for being idle: a request
    /// sent now could cross the close, and the caller could not tell whether it was
    /// applied. So it is not reused within a tenth of the limit (at least 1 s) of it.
    fn near_idle_close(&self) -> bool {
        near_idle_close(self.last_answer, self.idle_limit)
    }

    fn answered(&mut self, headers: &Headers) {
        self.last_answer = Instant::now();
        self.idle_limit = keep_alive_timeout(headers);
    }
}

/// Whether a connection last answered at `last_answer` may be about to be closed by a
/// server that keeps idle connections `idle_limit` long: within a tenth of the limit (at
/// least 1 s) of it.
pub(super) fn near_idle_close(last_answer: Instant, idle_limit: Option<Duration>) -> bool {
    idle_limit.is_some_and(|limit| {
        let margin = (limit / 10).max(Duration::from_secs(1));
        last_answer.elapsed() + margin >= limit
    })
}

/// The `timeout=N` (seconds) of a `Keep-Alive` header.
pub(super) fn keep_alive_timeout(headers: &Headers) -> Option<Duration> {
    let value = headers.get("keep-alive")?;
    value.split(',').find_map(|param| {
        let (name, seconds) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("timeout") {
            return None;
        }
        seconds.trim().parse::<u64>().ok().map(Duration::from_secs)
    })
}

impl Client {
    /// A client for the server on `path`, authenticating with `token` (if the server has
    /// auth on). Nothing is opened until the first call. This is also how a process that
    /// was not forked from the parent connects: hand it the path and the token.
    pub fn new(path: impl Into<PathBuf>, token: Option<Token>, config: ClientConfig) -> Self {
        Client {
            shared: Arc::new(Shared {
                path: path.into(),
                remote: None,
                fixed_headers: fixed_headers(token.as_ref(), &config),
                config,
                state: Mutex::new(State::fresh()),
            }),
        }
    }

    /// A client for the TCP server `remote` (TLS: its certificate checked against the
    /// trust given, before anything is sent; D-N3), authenticating with `token`. The
    /// same calls, deadlines, resend rule and typed errors as on the Unix socket; errors
    /// that name a socket path name the URL instead. On TLS, a certificate the client
    /// does not trust is [`Error::CertificateNotTrusted`] and any other handshake failure
    /// [`Error::TlsHandshake`], both before the token is written.
    pub fn remote(remote: Remote, token: Token, config: ClientConfig) -> Self {
        Client {
            shared: Arc::new(Shared {
                path: PathBuf::from(remote.url()),
                remote: Some(remote),
                fixed_headers: fixed_headers(Some(&token), &config),
                config,
                state: Mutex::new(State::fresh()),
            }),
        }
    }

    /// Connects to a server given its path and token (an external process's entry point).
    pub fn connect(path: impl Into<PathBuf>, token: &str) -> Self {
        Self::new(path, Some(Token::from_string(token)), ClientConfig::default())
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The client's timing.
    pub fn config(&self) -> &ClientConfig {
        &self.shared.config
    }

    /// The header lines every request carries (host, token, deadline).
    #[cfg(feature = "tokio")]
    pub(super) fn fixed_headers(&self) -> &[u8] {
        &self.shared.fixed_headers
    }

    /// Sends one request and returns the answer whatever its status. Only transport
    /// failures are errors here; see [`Client::call`] for status mapping.
    pub fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<RawResponse> {
        let call = Call::new(&method, path, body, &self.shared.fixed_headers)?;
        let mut state = self.state();
        if state.gone {
            return Err(self.gone());
        }
        if let Some(reason) = &state.lost {
            return Err(Error::TransactionLost {
                reason: reason.clone(),
            });
        }
        let call_deadline = self.shared.config.call_deadline;
        let deadline = Instant::now() + call_deadline;
        // A reused connection that closed before a single byte of an answer came back was
        // closed while idle (a server closes a connection only between requests or after
        // answering), so the request was not read: it is sent once more on a fresh one.
        for _attempt in 0..2 {
            let reused = match state.conn.as_ref() {
                Some(conn) if !conn.stale() => true,
                _ if state.holds > 0 => {
                    // A new connection would run this call outside the transaction.
                    return Err(self.lose(
                        &mut state,
                        "the connection that began the open transaction closed",
                    ));
                }
                _ => {
                    state.conn = None;
                    state.conn = Some(self.open(&mut state, deadline)?);
                    false
                }
            };
            let conn = state.conn.as_mut().expect("connection was just opened");
            call.encode(&mut conn.request);
            let outcome = conn.connection.exchange(&conn.request, deadline);
            match outcome {
                Ok(answer) => {
                    if answer.closes {
                        state.conn = None; // the server closes it: never reuse it
                        if state.holds > 0 {
                            state.lost = Some(
                                "the server closed the connection that held the open transaction".into(),
                            );
                        }
                    } else {
                        conn.answered(&answer.headers);
                    }
                    return Ok(RawResponse {
                        status: answer.status,
                        headers: answer.headers,
                        body: answer.body,
                    });
                }
                Err(Failure::Broken { reason, .. }) if state.holds > 0 => {
                    state.conn = None;
                    return Err(self.lose(
                        &mut state,
                        &format!("the connection holding the open transaction broke ({reason})"),
                    ));
                }
                Err(Failure::Broken {
                    answered_nothing: true,
                    ..
                }) if reused => {
                    state.conn = None;
                    continue;
                }
                Err(Failure::Broken { reason, .. }) => {
                    state.conn = None;
                    return Err(self.after_break(&mut state, reason));
                }
                Err(Failure::Timeout) => {
                    state.conn = None;
                    return Err(Error::Timeout { after: call_deadline });
                }
                Err(Failure::Garbled(reason)) => {
                    state.conn = None;
                    return Err(Error::Protocol(reason));
                }
            }
        }
        Err(self.after_break(
            &mut state,
            "the connection closed twice before the server read the request".into(),
        ))
    }

    /// Sends one request; a 2xx answer is returned, anything else becomes a typed error:
    /// 401 → [`Error::Unauthorized`], 403 → [`Error::Forbidden`], an error body →
    /// [`Error::Remote`] with its id and details.
    pub fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<RawResponse> {
        checked(self.send(method, path, body)?)
    }

    /// `GET path` through [`Client::call`]: a 2xx answer, or its typed error.
    pub fn get(&self, path: &str) -> Result<RawResponse> {
        self.call(Method::GET, path, None)
    }

    /// `POST path` with `body` through [`Client::call`].
    pub fn post(&self, path: &str, body: impl Into<Vec<u8>>) -> Result<RawResponse> {
        self.call(Method::POST, path, Some(body.into()))
    }

    /// `PUT path` with `body` through [`Client::call`].
    pub fn put(&self, path: &str, body: impl Into<Vec<u8>>) -> Result<RawResponse> {
        self.call(Method::PUT, path, Some(body.into()))
    }

    /// `DELETE path` (no body) through [`Client::call`].
    pub fn delete(&self, path: &str) -> Result<RawResponse> {
        self.call(Method::DELETE, path, None)
    }

    /// `POST path` with `value` as JSON through [`Client::call`]. A value serde_json cannot
    /// write (a map with non-string keys) is [`Error::InvalidValue`], before anything is
    /// sent; note that serde_json writes NaN and infinities as `null`.
    pub fn post_json<T: serde::Serialize + ?Sized>(&self, path: &str, value: &T) -> Result<RawResponse> {
        self.post(path, json_body(value)?)
    }

    /// `PUT path` with `value` as JSON, as [`Client::post_json`].
    pub fn put_json<T: serde::Serialize + ?Sized>(&self, path: &str, value: &T) -> Result<RawResponse> {
        self.put(path, json_body(value)?)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock_here(&self.shared.state)
    }

    /// Opens a connection: retried within the budget on the first connect; a single try
    /// once we have been connected before (a vanished server is not waited for). A server
    /// that runs as another uid is refused before anything is sent
    /// ([`Error::UntrustedServer`]).
    fn open(&self, state: &mut State, deadline: Instant) -> Result<Conn> {
        let path = &self.shared.path;
        let budget = if state.ever_connected {
            Duration::ZERO
        } else {
            self.shared.config.connect_budget
        };
        let mut connecting = Connecting::new(path, budget, state.ever_connected);
        if let Some(remote) = &self.shared.remote {
            let stream = match connect_remote(remote, &mut connecting, deadline) {
                Ok(stream) => stream,
                Err(e) => {
                    if matches!(e, Error::ServerGone { .. }) {
                        state.gone = true;
                    }
                    return Err(e);
                }
            };
            return Ok(self.opened(state, Connection::new(stream)));
        }
        let stream = loop {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(e) => match connecting.failed(e) {
                    Ok(pause) => std::thread::sleep(pause),
                    Err(e) => {
                        if matches!(e, Error::ServerGone { .. }) {
                            state.gone = true;
                        }
                        return Err(e);
                    }
                },
            }
        };
        check_peer(&stream, path)?;
        Ok(self.opened(state, Connection::new(ClientStream::Unix(stream))))
    }

    fn opened(&self, state: &mut State, connection: Connection) -> Conn {
        inherited::track(connection.fd());
        state.ever_connected = true;
        Conn {
            connection,
            request: Vec::new(),
            last_answer: Instant::now(),
            idle_limit: None,
        }
    }

    /// After a connection broke mid-call: is the server gone, or did just this connection
    /// break? One immediate connect attempt tells.
    fn after_break(&self, state: &mut State, reason: String) -> Error {
        let reachable = match &self.shared.remote {
            Some(remote) => remote
                .addrs()
                .ok()
                .and_then(|addrs| addrs.first().copied())
                .map_or(Err(()), |addr| {
                    std::net::TcpStream::connect_timeout(&addr, GONE_CHECK)
                        .map(drop)
                        .map_err(drop)
                }),
            None => std::os::unix::net::UnixStream::connect(&self.shared.path)
                .map(drop)
                .map_err(drop),
        };
        match reachable {
            Ok(()) => Error::ConnectionLost { reason },
            Err(_) => {
                state.gone = true;
                self.gone()
            }
        }
    }

    /// Marks the held connection lost: this call and every later one until the holds
    /// are released answer [`Error::TransactionLost`].
    fn lose(&self, state: &mut State, reason: &str) -> Error {
        state.lost = Some(reason.to_owned());
        Error::TransactionLost {
            reason: reason.to_owned(),
        }
    }

    /// Ties this process's connection to an open transaction (`true`, when one began) or
    /// releases one tie (`false`, when it ended). While tied, a call never reconnects:
    /// the server rolled the transaction back with the old connection, and a call on a
    /// new one would run outside it, so it answers [`Error::TransactionLost`] instead.
    pub fn hold_connection(&self, hold: bool) {
        let mut state = self.state();
        if hold {
            state.holds += 1;
        } else {
            state.holds = state.holds.saturating_sub(1);
            if state.holds == 0 {
                state.lost = None;
            }
        }
    }

    fn gone(&self) -> Error {
        Error::ServerGone {
            path: self.shared.path.clone(),
        }
    }
}

/// How long the check whether a TCP server is still there may take.
const GONE_CHECK: Duration = Duration::from_millis(200);

/// Opens a TCP connection to `remote` (retried like a Unix connect within the budget)
/// and, for TLS, completes the handshake by `deadline`: the certificate is checked
/// before this returns, so nothing (the token above all) is written to a server the
/// client does not trust.
fn connect_remote(
    remote: &Remote,
    connecting: &mut Connecting<'_>,
    deadline: Instant,
) -> Result<ClientStream> {
    let addrs = remote.addrs()?;
    let stream = 'connected: loop {
        let mut last = None;
        for addr in &addrs {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            match std::net::TcpStream::connect_timeout(addr, left) {
                Ok(stream) => break 'connected stream,
                Err(e) => last = Some(e),
            }
        }
        let e = last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into());
        if e.kind() == std::io::ErrorKind::TimedOut {
            return Err(Error::Timeout {
                after: connecting.started.elapsed(),
            });
        }
        std::thread::sleep(connecting.failed(e)?);
    };
    let _ = stream.set_nodelay(true);
    match &remote.security {
        ClientSecurity::Insecure => Ok(ClientStream::Tcp(stream)),
        #[cfg(feature = "tls")]
        ClientSecurity::Tls { config, name, trust } => {
            handshake(remote, stream, config, name, trust, deadline)
        }
    }
}

#[cfg(feature = "tls")]
fn handshake(
    remote: &Remote,
    mut stream: std::net::TcpStream,
    config: &Arc<rustls::ClientConfig>,
    name: &rustls::pki_types::ServerName<'static>,
    trust: &super::tls::Trust,
    deadline: Instant,
) -> Result<ClientStream> {
    let failed = |reason: String, fix: &str| Error::TlsHandshake {
        address: remote.url().to_owned(),
        reason,
        fix: fix.to_owned(),
    };
    let mut tls = rustls::ClientConnection::new(config.clone(), name.clone())
        .map_err(|e| failed(e.to_string(), "check the URL's host name"))?;
    while tls.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(failed(
                "it did not finish within the call deadline".into(),
                "check that the URL names a caspian-ipc TLS listener, or raise the call deadline",
            ));
        }
        let set = stream
            .set_read_timeout(Some(left))
            .and_then(|()| stream.set_write_timeout(Some(left)));
        set.map_err(|e| failed(format!("setting the socket's timeout: {e}"), "report this"))?;
        match tls.complete_io(&mut stream) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(match super::tls::is_certificate_error(&e) {
                Some(reason) => Error::CertificateNotTrusted {
                    address: remote.url().to_owned(),
                    reason,
                    fix: trust.fix(),
                },
                None => failed(
                    e.to_string(),
                    "check that the URL names a caspian-ipc TLS listener (not plain TCP) and that it is up",
                ),
            }),
        }
    }
    Ok(ClientStream::Tls(Box::new(rustls::StreamOwned::new(tls, stream))))
}

/// The header lines every request of a client carries: host, token, deadline.
pub(super) fn fixed_headers(token: Option<&Token>, config: &ClientConfig) -> Vec<u8> {
    let mut fixed_headers = b"Host: localhost\r\n".to_vec();
    if let Some(token) = token {
        // A token is 64 hex digits (`Token::from_string` takes any text: only what
        // can stand in a header line is sent, the rest would only be refused).
        if token.as_str().bytes().all(|b| b.is_ascii_graphic()) {
            fixed_headers
                .extend_from_slice(format!("Authorization: Bearer {}\r\n", token.as_str()).as_bytes());
        }
    }
    // Tell the server how long we wait, so a request it parks (behind another
    // worker's transaction) is answered before we give up on it.
    let wait = config.call_deadline.saturating_sub(Duration::from_millis(50));
    fixed_headers.extend_from_slice(format!("{X_DEADLINE_MS}: {}\r\n", wait.as_millis()).as_bytes());
    fixed_headers
}

/// The connect retry: on ENOENT/ECONNREFUSED (the server may not be listening yet) a
/// growing pause, within the budget.
pub(super) struct Connecting<'a> {
    path: &'a Path,
    budget: Duration,
    /// Once connected before, giving up means the server is gone.
    ever_connected: bool,
    pub(super) started: Instant,
    pause: Duration,
}

impl<'a> Connecting<'a> {
    pub(super) fn new(path: &'a Path, budget: Duration, ever_connected: bool) -> Self {
        Connecting {
            path,
            budget,
            ever_connected,
            started: Instant::now(),
            pause: Duration::from_millis(1),
        }
    }

    /// After a failed connect: how long to pause before the next try, or the error to
    /// give up with ([`Error::ServerGone`] once connected before).
    pub(super) fn failed(&mut self, e: std::io::Error) -> Result<Duration> {
        let path = self.path;
        if !matches!(
            e.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
        ) {
            return Err(Error::os(format!("connecting to {}", path.display()), e));
        }
        let waited = self.started.elapsed();
        if waited >= self.budget {
            if self.ever_connected {
                return Err(Error::ServerGone { path: path.into() });
            }
            return Err(Error::ConnectionRefused {
                path: path.into(),
                waited,
            });
        }
        let pause = self.pause.min(self.budget.saturating_sub(waited));
        self.pause = (self.pause * 2).min(Duration::from_millis(50));
        Ok(pause)
    }
}

/// Before anything is sent (the token above all): is the listener on `stream` one of
/// us? (D-U15)
pub(super) fn check_peer(stream: &impl std::os::fd::AsFd, path: &Path) -> Result<()> {
    let our_uid = nix::unistd::geteuid().as_raw();
    match getsockopt(stream, PeerCredentials) {
        Ok(server) if server.uid() == our_uid => Ok(()),
        Ok(server) => Err(Error::UntrustedServer {
            path: path.into(),
            server_uid: server.uid(),
            our_uid,
        }),
        Err(e) => Err(Error::os(
            format!(
                "reading the credentials of the server on {} (SO_PEERCRED)",
                path.display()
            ),
            e,
        )),
    }
}

/// `value` as a JSON body.
fn json_body<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::InvalidValue {
        reason: format!("the request body cannot be written as JSON: {e}"),
    })
}

/// This process's worker index in a run, plus one (0: not a worker).
static WORKER_INDEX: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Marks this process as worker `index` of a run: its requests say so (`X-Worker`), so
/// the server can name it in messages (a `busy` answer names the holder).
pub(crate) fn set_worker_index(index: usize) {
    WORKER_INDEX.store(index.saturating_add(1), std::sync::atomic::Ordering::Relaxed);
}

fn worker_index() -> Option<usize> {
    WORKER_INDEX
        .load(std::sync::atomic::Ordering::Relaxed)
        .checked_sub(1)
}

/// A 2xx answer as it is, any other as its typed error.
pub(super) fn checked(response: RawResponse) -> Result<RawResponse> {
    if (200..300).contains(&response.status) {
        return Ok(response);
    }
    Err(status_error(&response))
}

/// Maps a non-2xx answer to its typed error.
pub(crate) fn status_error(response: &RawResponse) -> Error {
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    match response.status {
        401 => Error::Unauthorized,
        403 => Error::Forbidden {
            reason: body["details"]["reason"]
                .as_str()
                .unwrap_or("forbidden")
                .to_owned(),
        },
        status => match body.get("error").and_then(Value::as_str) {
            Some(id) => Error::Remote {
                status,
                id: id.to_owned(),
                details: body.get("details").cloned().unwrap_or(Value::Null),
            },
            None => Error::Protocol(format!(
                "status {status} without an error body: {}",
                String::from_utf8_lossy(&response.body)
            )),
        },
    }
}
