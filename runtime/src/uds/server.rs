//! The HTTP/1.1 server on a Unix socket: hyper on a current-thread tokio runtime.
//!
//! Many keep-alive connections are served concurrently (one idle connection never blocks
//! the others), but handlers run one at a time on the single thread: that is the point
//! where operations serialise. Every request is authenticated before routing.

use std::cell::RefCell;
use std::convert::Infallible;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use serde_json::json;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::UnixListener;

use super::http::{Handler, Peer, Request, Response, X_DEADLINE_MS};
use super::socket::clear_stale_socket;
use super::token::Token;
use crate::error::{Error, Result};

/// The `WWW-Authenticate` challenge of every 401.
pub const CHALLENGE: &str = "Bearer realm=\"caspian-ipc\"";

/// Server limits.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body accepted; larger ones get 413 `request-too-large`.
    pub body_limit: usize,
    /// Deepest JSON nesting accepted in a body (arrays and objects); at most 128.
    pub max_depth: usize,
    /// Close a connection that sends no request for this long (`None`, the default: keep
    /// it until the client closes it, so a worker busy with local work for minutes keeps
    /// its connection). Clients reconnect transparently.
    pub idle_timeout: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit: 16 * 1024 * 1024,
            max_depth: 64,
            idle_timeout: None,
        }
    }
}

/// Serves `handler` on `socket` until SIGTERM or SIGINT, then removes the socket file.
///
/// Binds (replacing only a stale socket), makes the socket 0600, then calls `ready` so the
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
        let shared = Rc::new(Shared {
            handler: RefCell::new(handler),
            changed: tokio::sync::Notify::new(),
            token,
            config,
            uid: nix::unistd::geteuid().as_raw(),
        });
        let mut next_connection = 0u64;
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    next_connection += 1;
                    let peer = peer_of(&stream);
                    tokio::task::spawn_local(serve_connection(shared.clone(), stream, peer, next_connection));
                }
                () = stop.requested(&signals) => break,
            }
        }
        Ok(())
    })
}

/// The signals that stop a server.
pub(crate) fn stop_signal_set() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set
}

/// Blocks the [`stop_signal_set`] in the calling thread; returns the previous mask.
pub(crate) fn block_stop_signals() -> Result<SigSet> {
    stop_signal_set()
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .map_err(|e| Error::os("blocking SIGTERM and SIGINT", e))
}

/// SIGTERM and SIGINT blocked in this thread and readable from a signalfd owned by this
/// process. On drop, the signals this value blocked (and only those) are drained from the
/// signalfd and the thread's previous mask comes back, so a stop signal already served is
/// not delivered a second time.
struct StopSignals {
    fd: SignalFd,
    previous: SigSet,
}

impl StopSignals {
    fn block() -> Result<Self> {
        let previous = block_stop_signals()?;
        let fd = SignalFd::with_flags(&stop_signal_set(), SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC);
        match fd {
            Ok(fd) => Ok(StopSignals { fd, previous }),
            Err(e) => {
                let _ = previous.thread_set_mask();
                Err(Error::os("creating a signalfd for SIGTERM and SIGINT", e))
            }
        }
    }

    /// Resolves once SIGTERM or SIGINT has been read (or the signalfd cannot be watched
    /// any more, which also stops the server rather than leaving it deaf).
    async fn requested(&self, watched: &AsyncFd<std::os::fd::RawFd>) {
        loop {
            let Ok(mut guard) = watched.readable().await else {
                return;
            };
            match self.fd.read_signal() {
                Ok(Some(_)) => return,
                Ok(None) | Err(nix::errno::Errno::EINTR) => guard.clear_ready(),
                Err(_) => return,
            }
        }
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        let mut newly = SigSet::empty();
        for signal in stop_signal_set().iter() {
            if !self.previous.contains(signal) {
                newly.add(signal);
            }
        }
        if newly.iter().next().is_some() && self.fd.set_mask(&newly).is_ok() {
            while let Ok(Some(_)) = self.fd.read_signal() {}
        }
        let _ = self.previous.thread_set_mask();
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn bind(socket: &Path) -> Result<UnixListener> {
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

struct Shared<H> {
    handler: RefCell<H>,
    /// Woken after every handled request and every closed connection.
    changed: tokio::sync::Notify,
    token: Option<Token>,
    config: ServerConfig,
    uid: u32,
}

async fn serve_connection<H: Handler>(
    shared: Rc<Shared<H>>,
    stream: tokio::net::UnixStream,
    peer: Peer,
    id: u64,
) {
    let service = {
        let shared = shared.clone();
        service_fn(move |request| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(answer(&shared, request, peer, id).await) }
        })
    };
    let _ = http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(shared.config.idle_timeout)
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
    shared.handler.borrow_mut().connection_closed(id);
    shared.changed.notify_waiters();
}

async fn answer<H: Handler>(
    shared: &Shared<H>,
    request: hyper::Request<Incoming>,
    peer: Peer,
    connection: u64,
) -> hyper::Response<Full<Bytes>> {
    if peer.uid != shared.uid {
        return into_hyper(Response::error(
            403,
            "forbidden_peer",
            json!({ "reason": "the connecting process runs as another user", "peer_uid": peer.uid, "server_uid": shared.uid }),
        ));
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
            let mut response = into_hyper(Response::error(
                401,
                "unauthorized",
                json!({ "fix": "send exactly one header `Authorization: Bearer <token>` with the server's token" }),
            ));
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
            return response;
        }
    }
    let limit = shared.config.body_limit;
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return into_hyper(too_large(limit));
    }
    let wait_limit = request
        .headers()
        .get(X_DEADLINE_MS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(DEFAULT_WAIT, |ms| Duration::from_millis(ms).min(MAX_WAIT));
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return into_hyper(too_large(limit))
        }
        Err(e) => {
            return into_hyper(Response::error(
                400,
                "bad_body",
                json!({ "reason": e.to_string() }),
            ));
        }
    };
    let request = Request {
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query(),
        body: &body,
        peer,
        connection,
        max_depth: shared.config.max_depth,
    };
    if !shared.handler.borrow().ready(&request) {
        let started = tokio::time::Instant::now();
        let deadline = started + wait_limit;
        loop {
            let notified = shared.changed.notified();
            if shared.handler.borrow().ready(&request) {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return into_hyper(shared.handler.borrow().busy(&request));
            }
        }
    }
    let response = shared.handler.borrow_mut().handle(&request);
    shared.changed.notify_waiters();
    into_hyper(response)
}

/// The body was not read, so the connection cannot carry another request: say so, so the
/// client opens a fresh one instead of racing the close.
fn too_large(limit: usize) -> Response {
    Response::error(
        413,
        "request-too-large",
        json!({ "limit_bytes": limit, "fix": "send a smaller body, or raise the server's body limit" }),
    )
    .with_header("connection", "close")
}

fn into_hyper(response: Response) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(response.body));
    *out.status_mut() =
        hyper::StatusCode::from_u16(response.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in response.headers {
        out.headers_mut().append(name, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signals to this thread only (`raise`), so the rest of the test binary is untouched.
    #[test]
    fn stop_signals_are_read_from_the_signalfd_and_the_mask_comes_back() {
        let before = SigSet::thread_get_mask().unwrap();
        assert!(!before.contains(Signal::SIGTERM) && !before.contains(Signal::SIGINT));
        let stop = StopSignals::block().unwrap();
        let during = SigSet::thread_get_mask().unwrap();
        assert!(during.contains(Signal::SIGTERM) && during.contains(Signal::SIGINT));
        nix::sys::signal::raise(Signal::SIGINT).unwrap();
        let read = stop.fd.read_signal().unwrap().expect("the SIGINT is pending");
        assert_eq!(read.ssi_signo, Signal::SIGINT as u32);
        assert!(stop.fd.read_signal().unwrap().is_none());
        // Left unread: dropping drains it, so unblocking does not deliver it (which would
        // end this test binary).
        nix::sys::signal::raise(Signal::SIGTERM).unwrap();
        drop(stop);
        assert_eq!(SigSet::thread_get_mask().unwrap(), before);
    }
}
