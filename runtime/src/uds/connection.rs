//! One connection on the server's side: its socket and read buffer, the request heads and
//! bodies parsed from it with `httparse`, the answers written to it, and what the server
//! knows about it between requests, with the watchdog that closes the ones that stall.
//!
//! The connection is in one of three phases ([`Phase`]), and each phase has its own
//! limit: a head must arrive whole within `head_timeout` of its first byte, an idle
//! connection is closed after `idle_timeout`, and a connection whose request is being
//! answered (its body read under `body_timeout`, or parked behind another connection's
//! transaction up to the client's own deadline) is never cut by the watchdog.

use std::cell::{Cell, RefCell};
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::rc::Rc;
use std::time::Duration;

use hyper::Method;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::http::{Response, X_DEADLINE_MS, X_WORKER};

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

/// One connection's phase, shared by its request loop, its watchdog and the server.
#[derive(Debug)]
pub(crate) struct Activity {
    phase: Cell<Phase>,
    /// Set by the server to close this connection to make room for another.
    evicted: Cell<bool>,
    wake: Notify,
    /// The connection's watchdog task, stopped when the connection ends.
    watchdog: RefCell<Option<tokio::task::AbortHandle>>,
}

impl Activity {
    pub(crate) fn new() -> Rc<Self> {
        Rc::new(Activity {
            phase: Cell::new(Phase::Idle(Instant::now())),
            evicted: Cell::new(false),
            wake: Notify::new(),
            watchdog: RefCell::new(None),
        })
    }

    /// Records the task watching this connection.
    pub(crate) fn watched_by(&self, watchdog: tokio::task::AbortHandle) {
        *self.watchdog.borrow_mut() = Some(watchdog);
    }

    /// Stops the task watching this connection (it has ended).
    pub(crate) fn unwatch(&self) {
        if let Some(watchdog) = self.watchdog.borrow_mut().take() {
            watchdog.abort();
        }
    }

    /// Bytes of a request head are here: the head timeout runs from now, unless it
    /// already runs.
    pub(crate) fn head_begins(&self) {
        if let Phase::Idle(_) = self.phase.get() {
            self.phase.set(Phase::Head(Instant::now()));
        }
    }

    /// A request head is whole and its answer begins.
    pub(crate) fn answering(&self) {
        self.phase.set(Phase::Answering);
    }

    /// The answer is made: the connection is idle until the next head.
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

/// Largest request head (and so the most a half-sent head costs); a longer one gets 431.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in a request head; more get 431.
const MAX_HEADERS: usize = 100;
/// Room made for each read.
const READ_ROOM: usize = 8 * 1024;
/// Most room made for one read of a long body.
const BODY_ROOM: usize = 256 * 1024;
/// A read buffer that grew past this (a long body) is given back once it is empty.
const KEEP_BUFFER: usize = 256 * 1024;
/// Longest chunk-size line or trailer section of a chunked body.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Answers with a body up to this long are copied behind their head and written with one
/// `write`; longer ones are written with `writev`.
const COPY_BODY: usize = 64 * 1024;

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length` (0 when there is none).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What the server uses of a request head. Ranges are relative to the request's first
/// byte in the read buffer ([`Conn::filled`] while the request is being answered).
#[derive(Debug)]
pub(crate) struct Head {
    /// Bytes of the head, its closing empty line included.
    pub(crate) len: usize,
    pub(crate) method: Method,
    /// HTTP/1.0 (answered as HTTP/1.0, closed unless it asks for keep-alive).
    pub(crate) http10: bool,
    path: Range<usize>,
    query: Option<Range<usize>>,
    pub(crate) framing: Framing,
    /// The client may send another request on this connection after this one.
    pub(crate) keep_alive: bool,
    /// `Expect: 100-continue`.
    pub(crate) expect_continue: bool,
    /// The `Authorization` values: none, the only one, or more than one.
    authorization: Authorizations,
    pub(crate) deadline_ms: Option<u64>,
    pub(crate) worker: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Authorizations {
    None,
    One(Range<usize>),
    Many,
}

/// Why a request head was refused before any of the server's checks ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadHead {
    /// Not an HTTP/1.x request head, or framing we do not take: 400.
    Malformed(String),
    /// Longer than [`MAX_HEAD`] or more than [`MAX_HEADERS`] fields: 431.
    TooLarge,
}

impl BadHead {
    /// The answer, with the JSON error body every refusal has.
    pub(crate) fn response(&self) -> Response {
        match self {
            BadHead::Malformed(reason) => Response::error(
                400,
                "bad-request",
                serde_json::json!({
                    "reason": reason,
                    "fix": "send an HTTP/1.1 request: a request line, header lines, an empty line (docs/PROTOCOL.md)",
                }),
            ),
            BadHead::TooLarge => Response::error(
                431,
                "request-head-too-large",
                serde_json::json!({
                    "max_head_bytes": MAX_HEAD,
                    "max_headers": MAX_HEADERS,
                    "fix": "send fewer or shorter header lines",
                }),
            ),
        }
    }
}

fn malformed(reason: impl Into<String>) -> BadHead {
    BadHead::Malformed(reason.into())
}

/// Parses a request head at the start of `buf`: `Ok(None)` while it is not whole.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<Head>, BadHead> {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let len = match parsed.parse_with_uninit_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= MAX_HEAD {
                Err(BadHead::TooLarge)
            } else {
                Ok(None)
            }
        }
        Err(httparse::Error::TooManyHeaders) => return Err(BadHead::TooLarge),
        Err(e) => return Err(malformed(format!("the request head is not HTTP/1.x: {e}"))),
    };
    if len > MAX_HEAD {
        return Err(BadHead::TooLarge);
    }
    let base = buf.as_ptr() as usize;
    let range = |bytes: &[u8]| {
        let start = bytes.as_ptr() as usize - base;
        start..start + bytes.len()
    };
    let method = parsed.method.unwrap_or_default();
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| malformed(format!("`{method}` is not a method")))?;
    let http10 = parsed.version == Some(0);
    let target = parsed.path.unwrap_or_default();
    let (path, query) = split_target(target).ok_or_else(|| {
        malformed(format!(
            "the request target `{target}` is neither a path (`/...`) nor an absolute URL"
        ))
    })?;
    let mut head = Head {
        len,
        method,
        http10,
        path: range(path.as_bytes()),
        query: query.map(|q| range(q.as_bytes())),
        framing: Framing::Length(0),
        keep_alive: !http10,
        expect_continue: false,
        authorization: Authorizations::None,
        deadline_ms: None,
        worker: None,
    };
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for field in parsed.headers.iter() {
        let name = field.name.as_bytes();
        let value = field.value;
        // Told apart by length first: most fields are none of these, and cost one compare.
        let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
        match name.len() {
            14 if is(b"content-length") => {
                let n = number(value.trim_ascii())
                    .ok_or_else(|| malformed("a Content-Length that is not a number"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(malformed("Content-Length headers that disagree"));
                }
                length = Some(n);
            }
            17 if is(b"transfer-encoding") => {
                for coding in tokens(value) {
                    // Only `chunked`, once and last: anything else we could not decode.
                    if chunked.is_some() || !coding.eq_ignore_ascii_case(b"chunked") {
                        return Err(malformed(
                            "a Transfer-Encoding other than `chunked` (send the body as it is)",
                        ));
                    }
                    chunked = Some(());
                }
            }
            10 if is(b"connection") => {
                for option in tokens(value) {
                    if option.eq_ignore_ascii_case(b"close") {
                        head.keep_alive = false;
                    } else if option.eq_ignore_ascii_case(b"keep-alive") && http10 {
                        head.keep_alive = true;
                    }
                }
            }
            6 if is(b"expect") => {
                head.expect_continue |= !http10 && value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            }
            13 if is(b"authorization") => {
                head.authorization = match head.authorization {
                    Authorizations::None => Authorizations::One(range(value)),
                    _ => Authorizations::Many,
                };
            }
            13 if is(X_DEADLINE_MS.as_bytes()) => head.deadline_ms = number(value),
            8 if is(X_WORKER.as_bytes()) => {
                head.worker = number(value).and_then(|n| usize::try_from(n).ok());
            }
            _ => {}
        }
    }
    head.framing = match (chunked, length) {
        (Some(()), Some(_)) => {
            return Err(malformed(
                "both Transfer-Encoding and Content-Length (send one of them)",
            ))
        }
        (Some(()), None) if http10 => return Err(malformed("Transfer-Encoding in an HTTP/1.0 request")),
        (Some(()), None) => Framing::Chunked,
        (None, length) => Framing::Length(length.unwrap_or(0)),
    };
    Ok(Some(head))
}

/// Splits an origin-form (`/p?q`) or absolute-form (`http://host/p?q`) target into its
/// path and query.
fn split_target(target: &str) -> Option<(&str, Option<&str>)> {
    let origin = if target.starts_with('/') {
        target
    } else {
        let rest = target
            .strip_prefix("http://")
            .or_else(|| target.strip_prefix("https://"))?;
        let at = rest.find(['/', '?']).unwrap_or(rest.len());
        let rest = &rest[at..];
        if rest.is_empty() || rest.starts_with('?') {
            // `http://host` and `http://host?q` have the path `/`, which is not in the text.
            return Some(("/", rest.strip_prefix('?')));
        }
        rest
    };
    Some(match origin.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (origin, None),
    })
}

/// The comma-separated tokens of a header value, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// A header value that is a decimal number (digits only); `None` when it is not one or
/// does not fit in a `u64`.
fn number(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Why a body could not be received whole.
#[derive(Debug)]
pub(crate) enum BodyFailure {
    /// Past the body limit; the rest is still unread.
    TooLarge,
    /// The in-flight budget is spent; the rest is still unread.
    Busy,
    /// Malformed chunked framing, or the connection ended mid-body.
    Broken(String),
}

/// Where a chunked body's decoding is.
#[derive(Debug, Clone, Copy)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many bytes of chunk data are still to come.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
}

/// The stream a connection is served on: the Unix socket, or TCP (plain or TLS).
pub(crate) enum Stream {
    Unix(UnixStream),
    Tcp(tokio::net::TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
}

macro_rules! on_stream {
    ($self:expr, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Unix($s) => $e,
            Stream::Tcp($s) => $e,
            #[cfg(feature = "tls")]
            Stream::Tls($s) => $e,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        on_stream!(self, s => std::pin::Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        on_stream!(self, s => std::pin::Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        on_stream!(self, s => std::pin::Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        on_stream!(self, s => std::pin::Pin::new(s).poll_shutdown(cx))
    }
}

impl Stream {
    /// One write without waiting, where the socket allows it (the Unix socket and plain
    /// TCP); `None` for TLS, whose records are written by `write_all` and `flush`.
    fn try_write_now(&self, out: &[u8], body: &[u8]) -> Option<std::io::Result<usize>> {
        let slices = [IoSlice::new(out), IoSlice::new(body)];
        match self {
            Stream::Unix(s) if body.is_empty() => Some(s.try_write(out)),
            Stream::Unix(s) => Some(s.try_write_vectored(&slices)),
            Stream::Tcp(s) if body.is_empty() => Some(s.try_write(out)),
            Stream::Tcp(s) => Some(s.try_write_vectored(&slices)),
            #[cfg(feature = "tls")]
            Stream::Tls(_) => None,
        }
    }
}

/// The server's side of one connection: the socket, the bytes read and not yet used,
/// and a buffer for answers.
pub(crate) struct Conn {
    stream: Stream,
    /// Bytes read; those before `start` are used.
    buf: Vec<u8>,
    start: usize,
    out: Vec<u8>,
    /// A chunked body's decoded bytes.
    decoded: Vec<u8>,
}

impl Conn {
    pub(crate) fn new(stream: Stream) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
            start: 0,
            out: Vec::new(),
            decoded: Vec::new(),
        }
    }

    /// The bytes read and not yet used: the current request's first.
    pub(crate) fn filled(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Marks the first `n` bytes of [`Conn::filled`] used.
    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.start = 0;
            self.buf.clear();
            if self.buf.capacity() > KEEP_BUFFER {
                self.buf = Vec::new();
            }
        }
    }

    /// One read, with room for `want` more bytes (at least [`READ_ROOM`]); 0 at the end
    /// of the stream.
    async fn read_more(&mut self, want: usize) -> std::io::Result<usize> {
        let want = want.max(READ_ROOM);
        if self.buf.capacity() - self.buf.len() < want {
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            self.buf.reserve(want);
        }
        self.stream.read_buf(&mut self.buf).await
    }

    /// The next request's head. `Ok(None)` when the connection ended (or broke) between
    /// requests, or mid-head: there is nobody to answer.
    pub(crate) async fn read_head(&mut self, activity: &Activity) -> Result<Option<Head>, BadHead> {
        loop {
            if !self.filled().is_empty() {
                if let Some(head) = parse_head(self.filled())? {
                    return Ok(Some(head));
                }
                // Only a head that is not whole at once needs its timer (and the time).
                activity.head_begins();
            }
            match self.read_more(0).await {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
        }
    }

    /// The request's path and query, from its head.
    pub(crate) fn target(&self, head: &Head) -> (&str, Option<&str>) {
        let text = |range: &Range<usize>| {
            // The ranges came from a `&str` of these very bytes.
            std::str::from_utf8(&self.filled()[range.clone()]).unwrap_or_default()
        };
        (text(&head.path), head.query.as_ref().map(text))
    }

    /// The only `Authorization` value: `None` when there is none or more than one.
    pub(crate) fn authorization(&self, head: &Head) -> Option<&[u8]> {
        match &head.authorization {
            Authorizations::One(range) => Some(&self.filled()[range.clone()]),
            _ => None,
        }
    }

    /// Whether the body is already here, whole (so no 100 Continue, no body timer).
    pub(crate) fn body_is_here(&self, head: &Head) -> bool {
        match head.framing {
            Framing::Length(length) => (self.filled().len() - head.len) as u64 >= length,
            Framing::Chunked => false,
        }
    }

    /// Writes an interim `100 Continue`.
    pub(crate) async fn continue_100(&mut self) -> std::io::Result<()> {
        self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        self.stream.flush().await
    }

    /// Receives the body within `limit` bytes, counting the bytes received against
    /// `budget` (all connections' unfinished bodies), which must stay within `in_flight`.
    /// `counted` is what this body has added to `budget`; the caller gives it back.
    pub(crate) async fn read_body(
        &mut self,
        head: &Head,
        limit: usize,
        budget: &Cell<usize>,
        in_flight: usize,
        counted: &mut usize,
    ) -> Result<(), BodyFailure> {
        let mut count = |total: usize| -> Result<(), BodyFailure> {
            let more = total.saturating_sub(*counted);
            if budget.get() + more > in_flight {
                return Err(BodyFailure::Busy);
            }
            budget.set(budget.get() + more);
            *counted += more;
            Ok(())
        };
        match head.framing {
            Framing::Length(length) => {
                // Checked against the limit before: it fits in memory.
                let end = head.len + length as usize;
                loop {
                    let have = self.filled().len().min(end);
                    count(have - head.len)?;
                    if have == end {
                        return Ok(());
                    }
                    match self.read_more((end - have).min(BODY_ROOM)).await {
                        Ok(0) => return Err(cut_short()),
                        Ok(_) => {}
                        Err(e) => return Err(BodyFailure::Broken(format!("reading the body: {e}"))),
                    }
                }
            }
            Framing::Chunked => {
                self.decoded.clear();
                let mut at = head.len;
                let mut state = Chunk::Size;
                loop {
                    let (used, next, done) =
                        decode_chunks(&self.buf[self.start + at..], state, &mut self.decoded, limit)?;
                    at += used;
                    state = next;
                    count(self.decoded.len())?;
                    // Keep the head (the target is read from it), drop the framing
                    // decoded so far: what follows is the rest of the body, or the next
                    // request once it is done.
                    self.buf.drain(self.start + head.len..self.start + at);
                    at = head.len;
                    if done {
                        return Ok(());
                    }
                    match self.read_more(BODY_ROOM).await {
                        Ok(0) => return Err(cut_short()),
                        Ok(_) => {}
                        Err(e) => return Err(BodyFailure::Broken(format!("reading the body: {e}"))),
                    }
                }
            }
        }
    }

    /// The body received by [`Conn::read_body`].
    pub(crate) fn body<'a>(&'a self, head: &Head) -> &'a [u8] {
        match head.framing {
            Framing::Length(length) => &self.filled()[head.len..head.len + length as usize],
            Framing::Chunked => &self.decoded,
        }
    }

    /// Marks the request answered: its head and (fixed-length) body are used.
    pub(crate) fn finish_request(&mut self, head: &Head) {
        match head.framing {
            Framing::Length(length) => self.consume(head.len + length as usize),
            // The chunked body's framing went when it was decoded.
            Framing::Chunked => self.consume(head.len),
        }
        if self.decoded.capacity() > KEEP_BUFFER {
            self.decoded = Vec::new();
        }
    }

    /// Reads and drops up to `bound` more bytes of a refused body (the client may still
    /// be writing it), until the stream ends or `deadline`.
    pub(crate) async fn drain(&mut self, head: &Head, bound: u64, deadline: Instant) {
        let already = self.filled().len().saturating_sub(head.len) as u64;
        let mut left = match head.framing {
            Framing::Length(length) => length.saturating_sub(already).min(bound),
            Framing::Chunked => bound,
        };
        let _ = tokio::time::timeout_at(deadline, async {
            while left > 0 {
                self.start = 0;
                self.buf.clear();
                match self.read_more(BODY_ROOM).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n as u64),
                }
            }
        })
        .await;
    }

    /// Writes `response` with one `write` (or one `writev` for a long body): at once when
    /// the socket takes it all, as it usually does; else as the client reads, by `within`.
    pub(crate) async fn answer(
        &mut self,
        response: &Response,
        form: &Form<'_>,
        within: Duration,
    ) -> std::io::Result<()> {
        encode_answer(&mut self.out, response, form);
        let mut body: &[u8] = if form.head_only { b"" } else { &response.body };
        if body.len() <= COPY_BODY {
            self.out.extend_from_slice(body);
            body = b"";
        }
        let total = self.out.len() + body.len();
        let sent = match self.stream.try_write_now(&self.out, body) {
            Some(Ok(n)) => n,
            Some(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Some(Err(e)) => return Err(e),
            None => 0,
        };
        if sent == total {
            return Ok(());
        }
        let (out, stream) = (&self.out, &mut self.stream);
        let rest = async move {
            let from_head = sent.min(out.len());
            stream.write_all(&out[from_head..]).await?;
            stream.write_all(&body[sent - from_head..]).await?;
            stream.flush().await
        };
        match tokio::time::timeout(within, rest).await {
            Ok(written) => written,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }
}

fn cut_short() -> BodyFailure {
    BodyFailure::Broken("the connection ended before the whole body arrived".into())
}

/// Decodes as much of a chunked body as `buf` holds into `out`, from `state`: the bytes
/// used, the state after them, and whether the body (trailers included) is complete.
fn decode_chunks(
    buf: &[u8],
    mut state: Chunk,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(usize, Chunk, bool), BodyFailure> {
    let broken = |what: &str| BodyFailure::Broken(format!("malformed chunked body: {what}"));
    let mut at = 0;
    loop {
        let rest = &buf[at..];
        match state {
            Chunk::Size => match httparse::parse_chunk_size(rest) {
                Ok(httparse::Status::Complete((used, size))) => {
                    at += used;
                    if size == 0 {
                        state = Chunk::Trailers;
                    } else if out.len() as u64 + size > limit as u64 {
                        return Err(BodyFailure::TooLarge);
                    } else {
                        state = Chunk::Data(size);
                    }
                }
                Ok(httparse::Status::Partial) if rest.len() <= MAX_CHUNK_LINE => {
                    return Ok((at, state, false))
                }
                _ => return Err(broken("a bad chunk-size line")),
            },
            Chunk::Data(left) => {
                if rest.is_empty() {
                    return Ok((at, state, false));
                }
                let take = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                out.extend_from_slice(&rest[..take]);
                at += take;
                let left = left - take as u64;
                state = if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                };
            }
            Chunk::DataEnd => {
                if rest.len() < 2 {
                    return Ok((at, state, false));
                }
                if &rest[..2] != b"\r\n" {
                    return Err(broken("chunk data not followed by CRLF"));
                }
                at += 2;
                state = Chunk::Size;
            }
            Chunk::Trailers => match rest.windows(2).position(|w| w == b"\r\n") {
                Some(0) => return Ok((at + 2, state, true)),
                Some(line) => at += line + 2,
                None if rest.len() <= MAX_CHUNK_LINE => return Ok((at, state, false)),
                None => return Err(broken("a trailer line too long")),
            },
        }
    }
}

/// How an answer is framed for its request.
#[derive(Debug)]
pub(crate) struct Form<'a> {
    /// The request was HTTP/1.0: answer in HTTP/1.0.
    pub(crate) http10: bool,
    /// The connection closes after this answer.
    pub(crate) close: bool,
    /// A HEAD request: the head only, with the length the body would have.
    pub(crate) head_only: bool,
    /// `keep-alive: timeout=N\r\n`, announced on answers that keep the connection.
    pub(crate) keep_alive: Option<&'a [u8]>,
}

/// Whether `response` carries `Connection: close`.
pub(crate) fn closes(response: &Response) -> bool {
    response.headers.iter().any(|(name, value)| {
        name == hyper::header::CONNECTION
            && tokens(value.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"close"))
    })
}

/// Writes the head of `response` into `out` (cleared first).
fn encode_answer(out: &mut Vec<u8>, response: &Response, form: &Form<'_>) {
    out.clear();
    let status =
        hyper::StatusCode::from_u16(response.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    out.extend_from_slice(if form.http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut has_connection = false;
    for (name, value) in &response.headers {
        has_connection |= name == hyper::header::CONNECTION;
        for part in [name.as_str().as_bytes(), b": ", value.as_bytes(), b"\r\n"] {
            out.extend_from_slice(part);
        }
    }
    let code = status.as_u16();
    if !(code < 200 || code == 204 || code == 304) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(response.body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !has_connection {
        if form.close {
            out.extend_from_slice(b"connection: close\r\n");
        } else {
            if form.http10 {
                out.extend_from_slice(b"connection: keep-alive\r\n");
            }
            if let Some(keep_alive) = form.keep_alive {
                out.extend_from_slice(keep_alive);
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<Head>, BadHead> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn heads_are_parsed_with_their_framing_and_options() {
        let text = "POST /k/a%20b?x=1 HTTP/1.1\r\nHost: l\r\ncontent-length: 2\r\nX-Deadline-Ms: 900\r\nX-Worker: 3\r\nAuthorization: Bearer t\r\n\r\n{}";
        let parsed = head(text).unwrap().unwrap();
        assert_eq!(parsed.len, text.len() - 2);
        assert_eq!(parsed.method, Method::POST);
        assert_eq!(&text[parsed.path.clone()], "/k/a%20b");
        assert_eq!(parsed.query.clone().map(|q| &text[q]), Some("x=1"));
        assert_eq!(parsed.framing, Framing::Length(2));
        assert!(parsed.keep_alive && !parsed.http10 && !parsed.expect_continue);
        assert_eq!((parsed.deadline_ms, parsed.worker), (Some(900), Some(3)));
        assert_eq!(
            parsed.authorization,
            Authorizations::One(text.find("Bearer").unwrap()..text.find("Bearer").unwrap() + 8)
        );

        let ten = head("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(ten.http10 && !ten.keep_alive);
        let ten = head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(ten.keep_alive);
        let close = head("GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!close.keep_alive);
        let chunked = head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(chunked.framing, Framing::Chunked);
        assert!(chunked.expect_continue);
        let two = head("GET / HTTP/1.1\r\nAuthorization: a\r\nauthorization: b\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(two.authorization, Authorizations::Many);
        let absolute = head("GET http://localhost/p?q HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(absolute.path.len(), 2);
        assert!(head("GET /x HTTP/1.1\r\nHost: l\r\n").unwrap().is_none());
    }

    #[test]
    fn bad_heads_are_refused_with_a_reason() {
        for bad in [
            "GARBAGE\r\n\r\n",
            "GET /x HTTP/2.0\r\n\r\n",
            "GET x HTTP/1.1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(matches!(head(bad), Err(BadHead::Malformed(_))), "{bad:?}");
        }
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(head(&long).err(), Some(BadHead::TooLarge));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
        assert_eq!(
            head(&format!("GET / HTTP/1.1\r\n{many}\r\n")).err(),
            Some(BadHead::TooLarge)
        );
        let answer = BadHead::Malformed("x".into()).response();
        assert_eq!(answer.status, 400);
        assert!(std::str::from_utf8(&answer.body)
            .unwrap()
            .contains("\"bad-request\""));
    }

    #[test]
    fn chunked_bodies_decode_across_reads() {
        let wire = b"3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\nX-T: y\r\n\r\nNEXT";
        // Whole, then in every split of two pieces.
        for cut in 0..wire.len() {
            let mut out = Vec::new();
            let (used, state, done) = decode_chunks(&wire[..cut], Chunk::Size, &mut out, 100).unwrap();
            let rest = [&wire[used..cut], &wire[cut..]].concat();
            let (used2, _, done2) = if done {
                (0, state, true)
            } else {
                decode_chunks(&rest, state, &mut out, 100).unwrap()
            };
            assert!(done2, "cut at {cut}");
            assert_eq!(out, b"hello", "cut at {cut}");
            if !done {
                assert_eq!(&rest[used2..], b"NEXT", "cut at {cut}");
            }
        }
        let mut out = Vec::new();
        assert!(matches!(
            decode_chunks(b"10\r\n", Chunk::Size, &mut out, 15),
            Err(BodyFailure::TooLarge)
        ));
        assert!(matches!(
            decode_chunks(b"zz\r\n", Chunk::Size, &mut out, 15),
            Err(BodyFailure::Broken(_))
        ));
        assert!(matches!(
            decode_chunks(b"1\r\nabc", Chunk::Size, &mut out, 15),
            Err(BodyFailure::Broken(_))
        ));
    }

    #[test]
    fn answers_are_framed_for_their_request() {
        let response = Response::json(200, &serde_json::json!(1)).with_header("x-a", "b");
        let mut out = Vec::new();
        let form = Form {
            http10: false,
            close: false,
            head_only: false,
            keep_alive: Some(b"keep-alive: timeout=300\r\n"),
        };
        encode_answer(&mut out, &response, &form);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-a: b\r\ncontent-length: 1\r\nkeep-alive: timeout=300\r\n\r\n"
        );
        let form = Form {
            http10: true,
            close: true,
            head_only: false,
            keep_alive: None,
        };
        encode_answer(&mut out, &Response::error(413, "x", serde_json::json!({})), &form);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.starts_with("HTTP/1.0 413 Payload Too Large\r\n") && text.contains("connection: close\r\n"),
            "{text}"
        );
        let closing = Response::json(401, &serde_json::json!(1)).with_header("connection", "close");
        assert!(closes(&closing) && !closes(&response));
    }
}
