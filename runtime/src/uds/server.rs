//! The HTTP/1.1 server on a Unix socket: one task per connection on a current-thread
//! tokio runtime, each reading requests parsed with `httparse` (`connection.rs`, D-U21).
//!
//! Many keep-alive connections are served concurrently (one idle connection never blocks
//! the others), but handlers run one at a time on the single thread: that is the point
//! where operations serialise. Every request is authenticated before routing.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use serde_json::json;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::UnixListener;

use super::connection::{closes, watchdog, Activity, BodyFailure, Conn, Form, Framing, Head, Limits, Stream};
use super::http::{Handler, Peer, Request, Response};
use super::socket::{check_socket_dir, clear_stale_socket};
use super::stop_signals::StopSignals;
use super::tcp::{ServerSecurity, TcpListen};
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
    /// A TCP connection's TLS handshake must finish within this long of the accept
    /// (default 10 s), or the connection is closed: a peer that connects and sends
    /// nothing is cut. It counts against `max_connections` meanwhile.
    pub handshake_timeout: Duration,
    /// Refuse (403 `forbidden_peer`) a socket peer whose uid (SO_PEERCRED) is not ours
    /// (default `true`). `false` is `mikobase serve --auth open`: the server checks no
    /// peer, and only the socket file's permissions (0600, in a private directory) and the
    /// token, if any, stand between it and other processes.
    pub check_peer_uid: bool,
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
            handshake_timeout: Duration::from_secs(10),
            check_peer_uid: true,
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
    serve_with(socket, None, token, config, handler, ready)
}

/// [`serve`], and on `tcp` too (TLS, or plain TCP where allowed: [`TcpListen`]), with the
/// same handler, limits and token. A TCP peer has no uid to check: it is let in by the
/// token alone, so a TCP listener without a token is refused ([`Error::Config`]). Its
/// connections count against the same `max_connections` and bodies against the same
/// budget; a TLS handshake must finish within `handshake_timeout` (D-N4).
pub fn serve_with<H: Handler>(
    socket: &Path,
    tcp: Option<&TcpListen>,
    token: Option<Token>,
    config: ServerConfig,
    handler: H,
    ready: impl FnOnce(),
) -> Result<()> {
    if let (Some(listen), None) = (tcp, &token) {
        return Err(Error::Config {
            what: format!("TCP listener {}", listen.url()),
            problem: "a TCP peer has no uid to check, and no token was given".into(),
            fix: "serve TCP with a token (a token file)".into(),
        });
    }
    let stop = StopSignals::block()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::os("building the server runtime", e))?;
    let local = tokio::task::LocalSet::new();
    let stop = &stop;
    local.block_on(&runtime, async move {
        let listener = bind(socket)?;
        let remote = match tcp {
            Some(listen) => Some((listen.tokio_listener()?, listen.security.clone())),
            None => None,
        };
        // SAFETY: the signalfd is owned by `stop`, which outlives this future and so this
        // registration; it is not closed or replaced while registered.
        let signals = unsafe { AsyncFd::register_with_interest(stop.fd.as_raw_fd(), Interest::READABLE) }
            .map_err(|e| Error::os("watching the signalfd", e))?;
        let _cleanup = RemoveOnDrop(socket.to_owned());
        ready();
        let keep_alive = config
            .idle_timeout
            .map(|idle| format!("keep-alive: timeout={}\r\n", idle.as_secs()).into_bytes());
        let shared = Rc::new(Shared {
            handler: RefCell::new(handler),
            changed: tokio::sync::Notify::new(),
            token,
            config,
            uid: nix::unistd::geteuid().as_raw(),
            connections: RefCell::new(HashMap::new()),
            body_bytes: Cell::new(0),
            keep_alive,
            stopping: Cell::new(false),
        });
        let mut next_connection = 0u64;
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        next_connection += 1;
                        let admitted = shared.admit();
                        let peer = peer_of(&stream);
                        let stream = Box::pin(std::future::ready(Some(Stream::Unix(stream))));
                        spawn_connection(&shared, stream, peer, next_connection, admitted);
                    }
                    Err(e) => out_of_resources(&shared, &e).await,
                },
                accepted = accept_tcp(remote.as_ref()) => match accepted {
                    Ok((stream, security)) => {
                        next_connection += 1;
                        let admitted = shared.admit();
                        // Trusted by the token alone (checked on every request).
                        let peer = Peer { pid: 0, uid: shared.uid, gid: u32::MAX };
                        let handshake = shared.config.handshake_timeout;
                        spawn_connection(&shared, secure(stream, security, handshake), peer, next_connection, admitted);
                    }
                    Err(e) => out_of_resources(&shared, &e).await,
                },
                () = stop.requested(&signals) => break,
            }
        }
        // The connections are dropped with the runtime: the handler is not told.
        shared.stopping.set(true);
        Ok(())
    })
}

/// The next TCP connection, or never without a TCP listener.
async fn accept_tcp(
    remote: Option<&(tokio::net::TcpListener, ServerSecurity)>,
) -> std::io::Result<(tokio::net::TcpStream, ServerSecurity)> {
    match remote {
        Some((listener, security)) => {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            Ok((stream, security.clone()))
        }
        None => std::future::pending().await,
    }
}

/// The future a TCP connection's task awaits before its first request: the TLS
/// handshake within `within` (`None` when it failed or took too long), or at once for
/// plain TCP.
fn secure(
    stream: tokio::net::TcpStream,
    security: ServerSecurity,
    within: Duration,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Stream>>>> {
    #[cfg(not(feature = "tls"))]
    let _ = within;
    match security {
        ServerSecurity::Insecure => Box::pin(std::future::ready(Some(Stream::Tcp(stream)))),
        #[cfg(feature = "tls")]
        ServerSecurity::Tls(config) => Box::pin(async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            match tokio::time::timeout(within, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => Some(Stream::Tls(Box::new(tls))),
                Ok(Err(_)) | Err(_) => None,
            }
        }),
    }
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
/// How long a client has to take an answer (the socket accepting all of it) before the
/// connection is closed.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// `keep-alive: timeout=N` and its CRLF, telling clients when an idle connection
    /// will be closed.
    keep_alive: Option<Vec<u8>>,
    /// The server is stopping: connections dropped now are not reported to the handler.
    stopping: Cell<bool>,
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

/// Starts serving a new connection: one task answers its requests, another (its
/// watchdog, woken only by its timer or an eviction) ends that task when the connection
/// stalls, idles too long or is evicted. Apart, the watchdog costs nothing per request.
fn spawn_connection<H: Handler>(
    shared: &Rc<Shared<H>>,
    stream: std::pin::Pin<Box<dyn std::future::Future<Output = Option<Stream>>>>,
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
    let closing = Closing {
        shared: shared.clone(),
        activity: activity.clone(),
        id,
        counted,
    };
    let served = tokio::task::spawn_local(serve_connection(
        shared.clone(),
        stream,
        activity.clone(),
        closing,
        peer,
        id,
        admission,
    ));
    let limits = Limits {
        head_timeout: shared.config.head_timeout,
        idle_timeout: shared.config.idle_timeout,
    };
    let shared = shared.clone();
    let watched = activity.clone();
    let watchdog = tokio::task::spawn_local(async move {
        watchdog(&watched, limits, || shared.handler.borrow().holds(id)).await;
        served.abort();
    });
    activity.watched_by(watchdog.abort_handle());
}

/// What happens when a connection ends, however it ends (its peer closed, its watchdog
/// cut it, a failed write): it stops counting, its watchdog stops, the handler is told.
struct Closing<H: Handler> {
    shared: Rc<Shared<H>>,
    activity: Rc<Activity>,
    id: u64,
    counted: bool,
}

impl<H: Handler> Drop for Closing<H> {
    fn drop(&mut self) {
        self.activity.unwatch();
        if self.shared.stopping.get() {
            return;
        }
        if self.counted {
            self.shared.connections.borrow_mut().remove(&self.id);
        }
        // Never borrowed here unless a handler panicked mid-call: then it is not told.
        if let Ok(mut handler) = self.shared.handler.try_borrow_mut() {
            handler.connection_closed(self.id);
        }
        self.shared.changed.notify_waiters();
    }
}

async fn serve_connection<H: Handler>(
    shared: Rc<Shared<H>>,
    stream: std::pin::Pin<Box<dyn std::future::Future<Output = Option<Stream>>>>,
    activity: Rc<Activity>,
    closing: Closing<H>,
    peer: Peer,
    id: u64,
    admission: Admission,
) {
    // A handshake in progress is like a head arriving: not idle, so never evicted for a
    // newcomer, and cut by the watchdog too if it outlasts the head timeout.
    activity.head_begins();
    let Some(stream) = stream.await else {
        drop(closing);
        return;
    };
    activity.answered();
    let mut conn = Conn::new(stream);
    serve_requests(&shared, &mut conn, &activity, peer, id, admission).await;
    // Closed before the handler hears of it, as a peer sees it.
    drop(conn);
    drop(closing);
}

/// An answer, and whether the request's unread body is to be drained after it.
struct Outcome {
    response: Response,
    drain: bool,
}

impl From<Response> for Outcome {
    fn from(response: Response) -> Self {
        Outcome {
            response,
            drain: false,
        }
    }
}

/// Answers the requests of one connection in order until it closes (read ahead of the
/// answers is kept for the next request: pipelined requests are answered in order).
async fn serve_requests<H: Handler>(
    shared: &Shared<H>,
    conn: &mut Conn,
    activity: &Activity,
    peer: Peer,
    id: u64,
    admission: Admission,
) {
    loop {
        let head = match conn.read_head(activity).await {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(bad) => {
                // Nothing of ours ran; the rest of the stream cannot be framed.
                let form = Form {
                    http10: false,
                    close: true,
                    head_only: false,
                    keep_alive: None,
                };
                let _ = conn.answer(&bad.response(), &form, ANSWER_TIMEOUT).await;
                return;
            }
        };
        activity.answering();
        let Outcome { response, drain } = if admission == Admission::Refused {
            Outcome {
                response: too_many_connections(&shared.config),
                drain: true,
            }
        } else {
            respond(shared, conn, &head, peer, id).await
        };
        let close = !head.keep_alive || admission != Admission::Admitted || closes(&response);
        let form = Form {
            http10: head.http10,
            close,
            head_only: head.method == hyper::Method::HEAD,
            keep_alive: shared.keep_alive.as_deref(),
        };
        activity.answered();
        let written = conn.answer(&response, &form, ANSWER_TIMEOUT).await;
        if close {
            if drain && written.is_ok() {
                let bound = shared.config.body_limit.saturating_mul(DRAIN_FACTOR) as u64;
                if !matches!(head.framing, Framing::Length(length) if length > bound) {
                    activity.answering();
                    let deadline = tokio::time::Instant::now() + shared.config.body_timeout;
                    conn.drain(&head, bound, deadline).await;
                }
            }
            return;
        }
        if written.is_err() {
            return;
        }
        conn.finish_request(&head);
    }
}

/// Body bytes of one request counted against the in-flight budget, given back on drop.
struct Held<'a> {
    budget: &'a Cell<usize>,
    counted: usize,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.budget.set(self.budget.get() - self.counted);
    }
}

/// The answer to one request whose head is whole: the peer and token checks, the body,
/// the wait for the handler to be ready, the handler.
async fn respond<H: Handler>(
    shared: &Shared<H>,
    conn: &mut Conn,
    head: &Head,
    peer: Peer,
    connection: u64,
) -> Outcome {
    if shared.config.check_peer_uid && peer.uid != shared.uid {
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
        .with_header("connection", "close")
        .into();
    }
    if let Some(token) = &shared.token {
        // Exactly one Authorization header: with two, a proxy and this server could each
        // read a different one, so a right-then-wrong pair is refused like a wrong token.
        if !token.matches_header(conn.authorization(head)) {
            // Closed after the answer: a peer without the token gets nothing more.
            return Response::error(
                401,
                "unauthorized",
                json!({ "fix": "send exactly one header `Authorization: Bearer <token>` with the server's token" }),
            )
            .with_header("www-authenticate", CHALLENGE)
            .with_header("connection", "close")
            .into();
        }
    }
    let config = &shared.config;
    let limit = config.body_limit;
    if matches!(head.framing, Framing::Length(length) if length > limit as u64) {
        return too_large(config);
    }
    let mut held = Held {
        budget: &shared.body_bytes,
        counted: 0,
    };
    // The usual case, the head and body in one send, arms no timer and needs no
    // `100 Continue` (the client did not wait for one).
    let here = conn.body_is_here(head);
    let reading = async {
        if head.expect_continue && !here {
            // The client waits for this before it sends the body.
            conn.continue_100()
                .await
                .map_err(|e| BodyFailure::Broken(format!("writing 100 Continue: {e}")))?;
        }
        conn.read_body(
            head,
            limit,
            held.budget,
            config.max_body_bytes_in_flight,
            &mut held.counted,
        )
        .await
    };
    let received = if here {
        reading.await
    } else {
        let deadline = tokio::time::Instant::now() + config.body_timeout;
        match tokio::time::timeout_at(deadline, reading).await {
            Ok(received) => received,
            Err(_) => {
                return Response::error(
                    408,
                    "request-timeout",
                    json!({
                        "timeout_ms": config.body_timeout.as_millis() as u64,
                        "fix": "send the whole body promptly, or raise the server's body timeout",
                    }),
                )
                .with_header("connection", "close")
                .into()
            }
        }
    };
    match received {
        Ok(()) => {}
        Err(BodyFailure::TooLarge) => return too_large(config),
        Err(BodyFailure::Busy) => {
            return Outcome {
                response: server_busy(config),
                drain: true,
            }
        }
        Err(BodyFailure::Broken(reason)) => {
            return crate::uds::http::bad_body(reason)
                .with_header("connection", "close")
                .into()
        }
    }
    let wait_limit = head
        .deadline_ms
        .map_or(DEFAULT_WAIT, |ms| Duration::from_millis(ms).min(MAX_WAIT));
    let (path, query) = conn.target(head);
    let request = Request {
        method: &head.method,
        path,
        query,
        body: conn.body(head),
        peer,
        connection,
        max_depth: config.max_depth,
        worker: head.worker,
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
                    return shared.handler.borrow().busy(&request).into();
                }
            }
        }
    }
    let response = shared.handler.borrow_mut().handle(&request);
    drop(held);
    shared.changed.notify_waiters();
    response.into()
}

impl<H: Handler> Shared<H> {
    /// Lets the handler act on a deadline that has passed (a transaction held too long);
    /// true when it did, so waiters look again.
    fn expire_due_holds(&self) -> bool {
        let due = self.handler.borrow().next_deadline();
        if due.is_none() {
            return false;
        }
        let now = std::time::Instant::now();
        if due.is_some_and(|due| due <= now) {
            self.handler.borrow_mut().deadline_passed(now);
            self.changed.notify_waiters();
            return true;
        }
        false
    }
}

/// 413, readable by the client: the rest of the body is drained after the answer (D-U11).
fn too_large(config: &ServerConfig) -> Outcome {
    Outcome {
        response: Response::error(
            413,
            "request-too-large",
            json!({ "limit_bytes": config.body_limit, "fix": "send a smaller body, or raise the server's body limit" }),
        )
        .with_header("connection", "close"),
        drain: true,
    }
}

/// A refused body is drained up to this many times the body limit (within the body
/// timeout), so the client can finish writing and read the answer; a body declared longer
/// than that is not drained: the connection closes under the client (D-U11).
const DRAIN_FACTOR: usize = 4;

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
