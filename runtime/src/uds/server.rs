//! The HTTP/1.1 server on a Unix socket: hyper on a current-thread tokio runtime.
//!
//! Many keep-alive connections are served concurrently (one idle connection never blocks
//! the others), but handlers run one at a time on the single thread: that is the point
//! where operations serialise. Every request is authenticated before routing.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::convert::Infallible;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use serde_json::json;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::UnixListener;

use super::connection::{watchdog, Activity, Limits, Watched};
use super::http::{Handler, Peer, Request, Response, X_DEADLINE_MS, X_WORKER};
use super::socket::{check_socket_dir, clear_stale_socket};
use super::stop_signals::StopSignals;
use super::token::Token;
use crate::error::{Error, Result};

/// The `WWW-Authenticate` challenge of every 401.
pub const CHALLENGE: &str = "Bearer realm=\"caspian-ipc\"";

/// Server limits. The defaults never cut off a worker that behaves: one busy with local
/// work between calls reconnects transparently after an idle close (it is told the idle
/// limit in every answer's `Keep-Alive` header), and a request parked behind another
/// connection's transaction is answering, not idle.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body accepted; larger ones get 413 `request-too-large`.
    pub body_limit: usize,
    /// Deepest JSON nesting accepted in a body (arrays and objects); at most 128.
    pub max_depth: usize,
    /// Close a connection that has had no request in progress for this long (default
    /// 5 min; `None`: never). A connection the handler ties state to (an open
    /// transaction, see [`Handler::holds`]) is exempt.
    pub idle_timeout: Option<Duration>,
    /// A request head must arrive whole within this long of its first byte (default
    /// 10 s), or the connection is closed: a client that dribbles its head cannot hold a
    /// connection.
    pub head_timeout: Duration,
    /// A request body must arrive whole within this long of its head (default 30 s), or
    /// the answer is 408 `request-timeout` and the connection is closed.
    pub body_timeout: Duration,
    /// Most connections open at once (default 1024). At the limit a newcomer closes the
    /// longest-idle connection to take its place; when none is idle it gets 503
    /// `too-many-connections`.
    pub max_connections: usize,
    /// Most body bytes held at once over all connections' unfinished bodies (default
    /// 4 × 16 MiB). A body that would pass it gets 503 `server-busy`: many half-sent
    /// bodies cannot grow the server without bound.
    pub max_body_bytes_in_flight: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit: DEFAULT_BODY_LIMIT,
            max_depth: 64,
            idle_timeout: Some(Duration::from_secs(300)),
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_body_bytes_in_flight: 4 * DEFAULT_BODY_LIMIT,
        }
    }
}

pub use crate::limits::DEFAULT_BODY_LIMIT;

/// Serves `handler` on `socket` until SIGTERM or SIGINT, then removes the socket file.
///
/// Refuses with [`Error::UnsafeSocketDir`] when another user could replace the socket
/// (see [`check_socket_dir`]). Binds (replacing only a
/// stale socket), makes the socket 0600, then calls `ready` so the
/// caller can tell others it is up. With `token` set, every request must carry
/// `Authorization: Bearer <token>`. Peers whose uid differs from ours get 403.
///
/// SIGTERM and SIGINT are blocked in the calling thread and read from a signalfd this
/// call creates (never through tokio's process-wide signal state, which a forked process
/// shares with its relatives: D-F8). The runtime's threads inherit the mask; in a process
/// with other threads, those must block both signals too, or a signal sent to the process
/// may be delivered to one of them instead. On return the thread's mask is restored.
pub fn serve<H: Handler>(
    socket: &Path,
    token: Option<Token>,
    config: ServerConfig,
    handler: H,
    ready: impl FnOnce(),
) -> Result<()> {
    let stop = StopSignals::block()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::os("building the server runtime", e))?;
    let local = tokio::task::LocalSet::new();
    let stop = &stop;
    local.block_on(&runtime, async move {
        let listener = bind(socket)?;
        // SAFETY: the signalfd is owned by `stop`, which outlives this future and so this
        // registration; it is not closed or replaced while registered.
        let signals = unsafe { AsyncFd::register_with_interest(stop.fd.as_raw_fd(), Interest::READABLE) }
            .map_err(|e| Error::os("watching the signalfd", e))?;
        let _cleanup = RemoveOnDrop(socket.to_owned());
        ready();
        let keep_alive = config
            .idle_timeout
            .and_then(|idle| HeaderValue::from_str(&format!("timeout={}", idle.as_secs())).ok());
        let shared = Rc::new(Shared {
            handler: RefCell::new(handler),
            changed: tokio::sync::Notify::new(),
            token,
            config,
            uid: nix::unistd::geteuid().as_raw(),
            connections: RefCell::new(HashMap::new()),
            body_bytes: Cell::new(0),
            keep_alive,
        });
        let mut next_connection = 0u64;
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        next_connection += 1;
                        let admitted = shared.admit();
                        let peer = peer_of(&stream);
                        tokio::task::spawn_local(serve_connection(shared.clone(), stream, peer, next_connection, admitted));
                    }
                    Err(e) => out_of_resources(&shared, &e).await,
                },
                () = stop.requested(&signals) => break,
            }
        }
        Ok(())
    })
}

/// After a failed `accept`. Out of descriptors or memory, the pending connection stays
/// queued and `accept` would fail again at once: close the longest-idle connection to
/// free a descriptor and pause, instead of spinning on the error. Other errors (the
/// peer gave up before we accepted) concern one connection only.
async fn out_of_resources<H: Handler>(shared: &Shared<H>, error: &std::io::Error) {
    let exhausted = matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    );
    if exhausted {
        shared.evict_longest_idle();
        tokio::time::sleep(ACCEPT_BACKOFF).await;
    }
}

/// How long the accept loop pauses when the process is out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn bind(socket: &Path) -> Result<UnixListener> {
    // Before touching anything: nobody else may be able to swap the socket (D-U13).
    check_socket_dir(socket)?;
    clear_stale_socket(socket)?;
    let listener =
        UnixListener::bind(socket).map_err(|e| Error::os(format!("binding {}", socket.display()), e))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::os(format!("chmod 0600 {}", socket.display()), e))?;
    Ok(listener)
}

fn peer_of(stream: &tokio::net::UnixStream) -> Peer {
    match getsockopt(stream, PeerCredentials) {
        Ok(cred) => Peer {
            pid: cred.pid(),
            uid: cred.uid(),
            gid: cred.gid(),
        },
        // No credentials: treat as a stranger (uid that can never match).
        Err(_) => Peer {
            pid: 0,
            uid: u32::MAX,
            gid: u32::MAX,
        },
    }
}

/// How long a request that is not ready waits when the client states no deadline.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// The longest wait a client may ask for.
const MAX_WAIT: Duration = Duration::from_secs(600);
/// Connections past `max_connections` that are still answered (503) rather than closed
/// unanswered: the answer tells a client what happened, this bound keeps it cheap.
const OVERFLOW_ANSWERED: usize = 64;
/// Largest read buffer of one connection: a request head longer than this gets 431, and
/// a half-sent head costs at most this much.
const READ_BUFFER: usize = 64 * 1024;

struct Shared<H> {
    handler: RefCell<H>,
    /// Woken after every handled request and every closed connection.
    changed: tokio::sync::Notify,
    token: Option<Token>,
    config: ServerConfig,
    uid: u32,
    /// The open connections that count against `max_connections`.
    connections: RefCell<HashMap<u64, Rc<Activity>>>,
    /// Body bytes received and not yet handled, over all connections.
    body_bytes: Cell<usize>,
    /// `Keep-Alive: timeout=N`, telling clients when an idle connection will be closed.
    keep_alive: Option<HeaderValue>,
}

/// Whether a new connection is served normally, answered 503, or closed unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Admitted,
    Refused,
    Dropped,
}

impl<H: Handler> Shared<H> {
    /// Makes room for a new connection: under the limit it is admitted; at the limit the
    /// longest-idle connection is evicted for it; with none idle it is refused.
    fn admit(&self) -> Admission {
        let open = self.connections.borrow().len();
        if open < self.config.max_connections || self.evict_longest_idle() {
            Admission::Admitted
        } else if open < self.config.max_connections + OVERFLOW_ANSWERED {
            Admission::Refused
        } else {
            Admission::Dropped
        }
    }

    /// Closes the connection idle the longest (not one the handler holds state for).
    fn evict_longest_idle(&self) -> bool {
        let connections = self.connections.borrow();
        let handler = self.handler.borrow();
        let oldest = connections
            .iter()
            .filter(|(id, _)| !handler.holds(**id))
            .filter_map(|(id, activity)| activity.idle_since().map(|since| (since, *id, activity)))
            .min_by_key(|(since, id, _)| (*since, *id));
        match oldest {
            Some((_, _, activity)) => {
                activity.evict();
                true
            }
            None => false,
        }
    }
}

async fn serve_connection<H: Handler>(
    shared: Rc<Shared<H>>,
    stream: tokio::net::UnixStream,
    peer: Peer,
    id: u64,
    admission: Admission,
) {
    if admission == Admission::Dropped {
        return;
    }
    let activity = Activity::new();
    // Counted at once: the next accept must see this one, even before its first poll.
    let counted = admission == Admission::Admitted;
    if counted {
        shared.connections.borrow_mut().insert(id, activity.clone());
    }
    let service = {
        let shared = shared.clone();
        let activity = activity.clone();
        service_fn(move |request| {
            let shared = shared.clone();
            let activity = activity.clone();
            async move {
                activity.answering();
                let response = if admission == Admission::Refused {
                    too_many_connections(&shared.config)
                } else {
                    answer(&shared, request, peer, id).await
                };
                activity.answered();
                Ok::<_, Infallible>(shared.finish(response))
            }
        })
    };
    let limits = Limits {
        head_timeout: shared.config.head_timeout,
        idle_timeout: shared.config.idle_timeout,
    };
    let connection = http1::Builder::new()
        .keep_alive(admission == Admission::Admitted)
        .header_read_timeout(None)
        .max_buf_size(READ_BUFFER)
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(TokioIo::new(Watched::new(stream, activity.clone())), service);
    let exempt = || shared.handler.borrow().holds(id);
    tokio::select! {
        _ = connection => {}
        _ = watchdog(&activity, limits, exempt) => {}
    }
    if counted {
        shared.connections.borrow_mut().remove(&id);
    }
    shared.handler.borrow_mut().connection_closed(id);
    shared.changed.notify_waiters();
}

async fn answer<H: Handler>(
    shared: &Shared<H>,
    request: hyper::Request<Incoming>,
    peer: Peer,
    connection: u64,
) -> Response {
    if peer.uid != shared.uid {
        return Response::error(
            403,
            "forbidden_peer",
            json!({
                "reason": "the connecting process runs as another user",
                "peer_uid": peer.uid,
                "server_uid": shared.uid,
                "fix": "connect from a process of the server's user",
            }),
        )
        .with_header("connection", "close");
    }
    if let Some(token) = &shared.token {
        // Exactly one Authorization header: with two, a proxy and this server could each
        // read a different one, so a right-then-wrong pair is refused like a wrong token.
        let mut presented = request.headers().get_all(AUTHORIZATION).iter();
        let only = match (presented.next(), presented.next()) {
            (Some(value), None) => Some(value.as_bytes()),
            _ => None,
        };
        if !token.matches_header(only) {
            // Closed after the answer: a peer without the token gets nothing more.
            return Response::error(
                401,
                "unauthorized",
                json!({ "fix": "send exactly one header `Authorization: Bearer <token>` with the server's token" }),
            )
            .with_header("www-authenticate", CHALLENGE)
            .with_header("connection", "close");
        }
    }
    let limit = shared.config.body_limit;
    let headers = request.headers();
    let declared: Option<u64> = header_number(headers, CONTENT_LENGTH);
    let wait_limit = header_number(headers, X_DEADLINE_MS)
        .map_or(DEFAULT_WAIT, |ms| Duration::from_millis(ms).min(MAX_WAIT));
    let worker = header_number(headers, X_WORKER);
    let (parts, body) = request.into_parts();
    if declared.is_some_and(|len| len > limit as u64) {
        return too_large(shared, body, declared);
    }
    let body_deadline = tokio::time::Instant::now() + shared.config.body_timeout;
    let body = match tokio::time::timeout_at(body_deadline, read_body(shared, body)).await {
        Ok(Ok(body)) => body,
        Ok(Err(BodyFailure::TooLarge(body))) => return too_large(shared, body, declared),
        Ok(Err(BodyFailure::Busy(body))) => {
            drain_after_answer(shared, body, declared);
            return server_busy(&shared.config);
        }
        Ok(Err(BodyFailure::Broken(reason))) => {
            return Response::error(400, "bad_body", json!({ "reason": reason }))
                .with_header("connection", "close")
        }
        Err(_) => {
            return Response::error(
                408,
                "request-timeout",
                json!({
                    "timeout_ms": shared.config.body_timeout.as_millis() as u64,
                    "fix": "send the whole body promptly, or raise the server's body timeout",
                }),
            )
            .with_header("connection", "close")
        }
    };
    let request = Request {
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query(),
        body: &body.bytes,
        peer,
        connection,
        max_depth: shared.config.max_depth,
        worker,
    };
    shared.expire_due_holds();
    if !shared.handler.borrow().ready(&request) {
        let started = tokio::time::Instant::now();
        let deadline = started + wait_limit;
        loop {
            let notified = shared.changed.notified();
            if shared.handler.borrow().ready(&request) {
                break;
            }
            // Wake at the holder's expiry too, so waiters go on as soon as it is cut.
            let wake = shared
                .handler
                .borrow()
                .next_deadline()
                .map_or(deadline, |due| tokio::time::Instant::from_std(due).min(deadline));
            if tokio::time::timeout_at(wake, notified).await.is_err() {
                if shared.expire_due_holds() {
                    continue;
                }
                if tokio::time::Instant::now() >= deadline {
                    return shared.handler.borrow().busy(&request);
                }
            }
        }
    }
    let response = shared.handler.borrow_mut().handle(&request);
    drop(body);
    shared.changed.notify_waiters();
    response
}

/// A header holding a decimal number; `None` when it is absent or is not one.
fn header_number<T: std::str::FromStr>(
    headers: &hyper::HeaderMap,
    name: impl hyper::header::AsHeaderName,
) -> Option<T> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

impl<H: Handler> Shared<H> {
    /// Lets the handler act on a deadline that has passed (a transaction held too long);
    /// true when it did, so waiters look again.
    fn expire_due_holds(&self) -> bool {
        let due = self.handler.borrow().next_deadline();
        let now = std::time::Instant::now();
        if due.is_some_and(|due| due <= now) {
            self.handler.borrow_mut().deadline_passed(now);
            self.changed.notify_waiters();
            return true;
        }
        false
    }

    /// The hyper response, with the idle limit announced on connections kept alive.
    fn finish(&self, response: Response) -> hyper::Response<Full<Bytes>> {
        into_hyper(response, self.keep_alive.as_ref())
    }
}

/// A body received whole, counted against the in-flight budget until dropped.
struct HeldBody<'a> {
    bytes: Bytes,
    budget: &'a Cell<usize>,
    counted: usize,
}

impl Drop for HeldBody<'_> {
    fn drop(&mut self) {
        self.budget.set(self.budget.get() - self.counted);
    }
}

enum BodyFailure {
    /// Past the body limit; the rest is still unread.
    TooLarge(Incoming),
    /// The in-flight budget is spent; the rest is still unread.
    Busy(Incoming),
    Broken(String),
}

/// Reads a body frame by frame within the body limit and the server's in-flight budget.
async fn read_body<'a, H>(
    shared: &'a Shared<H>,
    mut body: Incoming,
) -> std::result::Result<HeldBody<'a>, BodyFailure> {
    let limit = shared.config.body_limit;
    let mut held = HeldBody {
        bytes: Bytes::new(),
        budget: &shared.body_bytes,
        counted: 0,
    };
    let mut chunks: Vec<Bytes> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyFailure::Broken(e.to_string()))?;
        let Ok(data) = frame.into_data() else { continue }; // trailers carry nothing for us
        if held.counted + data.len() > limit {
            return Err(BodyFailure::TooLarge(body));
        }
        if held.budget.get() + data.len() > shared.config.max_body_bytes_in_flight {
            return Err(BodyFailure::Busy(body));
        }
        held.budget.set(held.budget.get() + data.len());
        held.counted += data.len();
        chunks.push(data);
    }
    held.bytes = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => Bytes::from(chunks.concat()),
    };
    Ok(held)
}

/// 413, readable by the client: the rest of the body (up to a bound, within the body
/// timeout) is read and dropped after the answer, so a client still writing it does not
/// meet a closed socket (`EPIPE`) before it can read the answer.
fn too_large<H>(shared: &Shared<H>, body: Incoming, declared: Option<u64>) -> Response {
    drain_after_answer(shared, body, declared);
    let limit = shared.config.body_limit;
    Response::error(
        413,
        "request-too-large",
        json!({ "limit_bytes": limit, "fix": "send a smaller body, or raise the server's body limit" }),
    )
    .with_header("connection", "close")
}

/// Reads and drops the rest of a body the answer refuses, up to [`DRAIN_FACTOR`] times
/// the body limit and within the body timeout, so the client can finish writing and
/// read the answer. A body declared longer than that is not drained: the connection
/// closes under the client, which may see a broken pipe instead of the answer.
fn drain_after_answer<H>(shared: &Shared<H>, body: Incoming, declared: Option<u64>) {
    let bound = shared.config.body_limit.saturating_mul(DRAIN_FACTOR) as u64;
    if declared.is_none_or(|len| len <= bound) {
        let deadline = tokio::time::Instant::now() + shared.config.body_timeout;
        tokio::task::spawn_local(drain(body, bound, deadline));
    }
}

/// A body over the limit is drained up to this many times the limit; a longer one is cut.
const DRAIN_FACTOR: usize = 4;

async fn drain(mut body: Incoming, bound: u64, deadline: tokio::time::Instant) {
    let mut seen = 0u64;
    let _ = tokio::time::timeout_at(deadline, async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > bound {
                break;
            }
        }
    })
    .await;
}

fn server_busy(config: &ServerConfig) -> Response {
    Response::error(
        503,
        "server-busy",
        json!({
            "reason": "too many request bodies are being received at once",
            "max_body_bytes_in_flight": config.max_body_bytes_in_flight,
            "fix": "retry shortly",
        }),
    )
    .with_header("connection", "close")
    .with_header("retry-after", 1)
}

fn too_many_connections(config: &ServerConfig) -> Response {
    Response::error(
        503,
        "too-many-connections",
        json!({
            "max_connections": config.max_connections,
            "reason": "every connection is answering a request",
            "fix": "retry shortly, or raise the server's connection limit",
        }),
    )
    .with_header("connection", "close")
    .with_header("retry-after", 1)
}

/// The hyper response; `keep_alive` (the idle limit) is announced unless the answer
/// closes its connection.
fn into_hyper(response: Response, keep_alive: Option<&HeaderValue>) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(response.body));
    *out.status_mut() =
        hyper::StatusCode::from_u16(response.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = out.headers_mut();
    headers.reserve(response.headers.len() + 1);
    let mut closes = false;
    for (name, value) in response.headers {
        closes |= name == hyper::header::CONNECTION;
        headers.append(name, value);
    }
    if let (Some(keep_alive), false) = (keep_alive, closes) {
        headers.append(KEEP_ALIVE, keep_alive.clone());
    }
    out
}

/// `Keep-Alive` (not among hyper's constants: HTTP/2 forbids it).
const KEEP_ALIVE: hyper::header::HeaderName = hyper::header::HeaderName::from_static("keep-alive");
