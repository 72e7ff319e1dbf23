//! What the server knows about each open connection, and the watchdog that closes the
//! ones that stall: a request head that dribbles in, or no request at all for too long.
//!
//! The socket is wrapped in [`Watched`], which notices the first byte of each request
//! head; the service marks when a request is being answered. From those two marks the
//! connection is in one of three phases ([`Phase`]), and each phase has its own limit:
//! a head must arrive whole within `head_timeout` of its first byte, an idle connection
//! is closed after `idle_timeout`, and a connection whose request is being answered (its
//! body read under `body_timeout`, or parked behind another connection's transaction up
//! to the client's own deadline) is never cut by the watchdog.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Where a connection is between two requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No request in progress since this instant.
    Idle(Instant),
    /// The first byte of a request head arrived at this instant; the head is not whole.
    Head(Instant),
    /// A request is being answered (its body read, a wait, the handler).
    Answering,
}

/// One connection's phase, shared by its socket wrapper, its service and the server.
#[derive(Debug)]
pub(crate) struct Activity {
    phase: Cell<Phase>,
    /// Set by the server to close this connection to make room for another.
    evicted: Cell<bool>,
    wake: Notify,
}

impl Activity {
    pub(crate) fn new() -> Rc<Self> {
        Rc::new(Activity {
            phase: Cell::new(Phase::Idle(Instant::now())),
            evicted: Cell::new(false),
            wake: Notify::new(),
        })
    }

    /// A request head is whole and its answer begins.
    pub(crate) fn answering(&self) {
        self.phase.set(Phase::Answering);
    }

    /// The answer is handed to hyper: the connection is idle until the next head.
    pub(crate) fn answered(&self) {
        self.phase.set(Phase::Idle(Instant::now()));
    }

    /// Since when the connection has been idle, if it is.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        match self.phase.get() {
            Phase::Idle(since) => Some(since),
            _ => None,
        }
    }

    /// Asks the watchdog to close the connection now.
    pub(crate) fn evict(&self) {
        self.evicted.set(true);
        self.wake.notify_one();
    }
}

/// Why the watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    HeadTimeout,
    IdleTimeout,
    Evicted,
}

/// The connection's limits, as the watchdog applies them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) head_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
}

/// Resolves when the connection must be closed. `exempt_from_idle` says whether the
/// handler ties state to this connection (an open transaction): such a connection is
/// never closed for being idle, only for a stalled head or an eviction.
pub(crate) async fn watchdog(
    activity: &Activity,
    limits: Limits,
    exempt_from_idle: impl Fn() -> bool,
) -> Cut {
    // The watchdog is not woken when a head starts arriving (that would cost a wake-up
    // per request), so it looks again at least every `head_timeout`: a stalled head is
    // cut between one and two head timeouts after its first byte.
    let tick = limits.head_timeout.max(Duration::from_millis(1));
    loop {
        if activity.evicted.get() {
            return Cut::Evicted;
        }
        let now = Instant::now();
        let due = match activity.phase.get() {
            Phase::Answering => None,
            Phase::Head(since) => Some((since + limits.head_timeout, Cut::HeadTimeout)),
            Phase::Idle(since) => limits
                .idle_timeout
                .filter(|_| !exempt_from_idle())
                .map(|idle| (since + idle, Cut::IdleTimeout)),
        };
        if let Some((at, cut)) = due {
            if now >= at {
                return cut;
            }
        }
        let wake_at = due.map_or(now + tick, |(at, _)| at.min(now + tick));
        tokio::select! {
            _ = tokio::time::sleep_until(wake_at) => {}
            _ = activity.wake.notified() => {}
        }
    }
}

/// The server's side of a socket, reporting the first byte of each request head to its
/// [`Activity`].
pub(crate) struct Watched {
    stream: UnixStream,
    activity: Rc<Activity>,
}

impl Watched {
    pub(crate) fn new(stream: UnixStream, activity: Rc<Activity>) -> Self {
        Watched { stream, activity }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            if let Phase::Idle(_) = this.activity.phase.get() {
                this.activity.phase.set(Phase::Head(Instant::now()));
            }
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
