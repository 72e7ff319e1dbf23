//! One HTTP/1.1 request and its answer over a blocking Unix socket: what a worker's call
//! costs on its side. No runtime, no futures: one `send` of the whole request, then
//! `read`s until the answer is whole, parsed with `httparse`.
//!
//! Every blocking step has the call's deadline (the socket's timeouts, re-armed only when
//! the time left has moved by more than [`SLACK`], so a call usually costs no extra
//! system call for them).

use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Longest answer head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Longest answer body accepted (a whole store exported as a worldlet may be large).
const MAX_BODY: usize = 1 << 30;
/// Most headers in an answer.
const MAX_HEADERS: usize = 32;
/// How far a socket timeout may be from the time actually left before it is re-armed.
const SLACK: Duration = Duration::from_millis(10);

/// An answer: status, headers, body, and whether the connection may carry another request.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Headers,
    pub(crate) body: Bytes,
    /// The server closes after this answer (`Connection: close`, or a body delimited by
    /// the close, or unread bytes after it).
    pub(crate) closes: bool,
}

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The deadline passed.
    Timeout,
    /// The connection broke or closed; `answered_nothing` when not one byte of an answer
    /// arrived (so a server that closes idle connections cannot have read the request).
    Broken { reason: String, answered_nothing: bool },
    /// The server sent something that is not an HTTP/1.1 answer.
    Garbled(String),
}

/// The socket of a client connection: the Unix socket, or TCP (plain or TLS).
pub(crate) enum ClientStream {
    Unix(UnixStream),
    Tcp(std::net::TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>),
}

impl std::fmt::Debug for ClientStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientStream::Unix(s) => s.fmt(f),
            ClientStream::Tcp(s) => s.fmt(f),
            #[cfg(feature = "tls")]
            ClientStream::Tls(s) => s.sock.fmt(f),
        }
    }
}

impl ClientStream {
    fn fd(&self) -> RawFd {
        match self {
            ClientStream::Unix(s) => s.as_raw_fd(),
            ClientStream::Tcp(s) => s.as_raw_fd(),
            #[cfg(feature = "tls")]
            ClientStream::Tls(s) => s.sock.as_raw_fd(),
        }
    }

    fn set_timeouts(&self, left: Duration) -> std::io::Result<()> {
        match self {
            ClientStream::Unix(s) => s
                .set_read_timeout(Some(left))
                .and_then(|()| s.set_write_timeout(Some(left))),
            ClientStream::Tcp(s) => s
                .set_read_timeout(Some(left))
                .and_then(|()| s.set_write_timeout(Some(left))),
            #[cfg(feature = "tls")]
            ClientStream::Tls(s) => s
                .sock
                .set_read_timeout(Some(left))
                .and_then(|()| s.sock.set_write_timeout(Some(left))),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            ClientStream::Unix(s) => s.read(buf),
            ClientStream::Tcp(s) => s.read(buf),
            #[cfg(feature = "tls")]
            ClientStream::Tls(s) => s.read(buf),
        }
    }
}

/// A keep-alive connection: the socket and what has been read from it but not used.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: ClientStream,
    buffer: ReadBuffer,
    armed: Option<Duration>,
}

/// Bytes read and not used yet, in a buffer zeroed once when it grows, never per read.
#[derive(Debug, Default)]
pub(crate) struct ReadBuffer {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuffer {
    fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.clear();
        }
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Room for at least `want` more bytes (at least 4 KiB), for one `read`; then
    /// [`ReadBuffer::filled_by`] says how many it wrote.
    pub(crate) fn room(&mut self, want: usize) -> &mut [u8] {
        let want = want.max(4096);
        if self.data.len() - self.end < want {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.data.len() - self.end < want {
                self.data.resize(self.end + want, 0);
            }
        }
        &mut self.data[self.end..]
    }

    /// The last `read` into [`ReadBuffer::room`] wrote `n` bytes.
    pub(crate) fn filled_by(&mut self, n: usize) {
        self.end = (self.end + n).min(self.data.len());
    }
}

/// Whether the server closed the idle connection on `fd` or wrote to it unasked (bytes
/// left in `buffer` are such a write): peeks without blocking or consuming.
pub(crate) fn closed_or_dirty(fd: RawFd, buffer: &ReadBuffer) -> bool {
    if !buffer.is_empty() {
        return true;
    }
    let mut byte = [0u8; 1];
    let peeked = nix::sys::socket::recv(
        fd,
        &mut byte,
        nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT,
    );
    !matches!(peeked, Err(nix::errno::Errno::EAGAIN))
}

/// One answer read out of a [`ReadBuffer`] as its bytes arrive, without any I/O: the
/// blocking and the async client each feed it with their own reads.
#[derive(Debug, Default)]
pub(crate) struct AnswerReader {
    /// The head, once parsed (its bytes are consumed from the buffer).
    head: Option<Head>,
    /// An interim answer (100 Continue) was read.
    heard: bool,
}

#[derive(Debug)]
struct Head {
    status: u16,
    headers: Headers,
    closes: bool,
    body: Framing,
}

#[derive(Debug)]
enum Framing {
    Empty,
    Length(usize),
    /// `at`: where the next chunk size starts; `body`: the chunks so far.
    Chunked {
        at: usize,
        body: Vec<u8>,
    },
    UntilClose,
}

/// What an [`AnswerReader`] needs next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Another read, with room for `want` more bytes (0: any).
    Read { want: usize },
    /// The answer is whole.
    Done(Answer),
}

impl AnswerReader {
    /// Reads what `buffer` holds; `ended` when the last read found the end of the stream.
    pub(crate) fn step(&mut self, buffer: &mut ReadBuffer, ended: bool) -> Result<Step, Failure> {
        loop {
            let Some(head) = self.head.as_mut() else {
                match self.parse_head(buffer)? {
                    true => continue,
                    false if ended => {
                        return Err(broken(
                            "the server closed the connection before answering".into(),
                            self.answered_nothing(buffer),
                        ))
                    }
                    false => return Ok(Step::Read { want: 0 }),
                }
            };
            let want = match &mut head.body {
                Framing::Empty => 0,
                Framing::Length(length) => {
                    let length = *length;
                    if buffer.len() >= length {
                        let body = Bytes::copy_from_slice(&buffer.filled()[..length]);
                        buffer.consume(length);
                        return Ok(self.done(buffer, body));
                    }
                    length - buffer.len()
                }
                Framing::Chunked { at, body } => match next_chunks(buffer, at, body)? {
                    None => {
                        let body = Bytes::from(std::mem::take(body));
                        return Ok(self.done(buffer, body));
                    }
                    Some(want) => want,
                },
                Framing::UntilClose => {
                    if buffer.len() > MAX_BODY {
                        return Err(too_long());
                    }
                    if ended {
                        let body = Bytes::copy_from_slice(buffer.filled());
                        buffer.clear();
                        return Ok(self.done(buffer, body));
                    }
                    64 * 1024
                }
            };
            if matches!(head.body, Framing::Empty) {
                return Ok(self.done(buffer, Bytes::new()));
            }
            if ended {
                return Err(broken(
                    "the server closed the connection mid-answer".into(),
                    false,
                ));
            }
            return Ok(Step::Read { want });
        }
    }

    /// Whether not one byte of an answer has arrived yet.
    pub(crate) fn answered_nothing(&self, buffer: &ReadBuffer) -> bool {
        self.head.is_none() && !self.heard && buffer.is_empty()
    }

    /// Parses the head if it is whole (true), skipping interim answers.
    fn parse_head(&mut self, buffer: &mut ReadBuffer) -> Result<bool, Failure> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        let head_len = match parsed.parse(buffer.filled()) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buffer.len() > MAX_HEAD => {
                return Err(Failure::Garbled(format!(
                    "an answer head longer than {MAX_HEAD} bytes"
                )))
            }
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(e) => return Err(Failure::Garbled(format!("the answer is not HTTP/1.1: {e}"))),
        };
        let status = parsed.code.unwrap_or(0);
        let headers = Headers::from_parsed(buffer.filled(), parsed.headers);
        buffer.consume(head_len);
        if (100..200).contains(&status) {
            // An interim answer (100 Continue): the real one follows.
            self.heard = true;
            return Ok(true);
        }
        let mut closes = headers.has_token("connection", "close");
        let body = if status == 204 || status == 304 {
            Framing::Empty
        } else if headers.has_token("transfer-encoding", "chunked") {
            Framing::Chunked {
                at: 0,
                body: Vec::new(),
            }
        } else if let Some(length) = content_length(&headers)? {
            if length > MAX_BODY {
                return Err(too_long());
            }
            Framing::Length(length)
        } else {
            // Delimited by the close.
            closes = true;
            Framing::UntilClose
        };
        self.head = Some(Head {
            status,
            headers,
            closes,
            body,
        });
        Ok(true)
    }

    fn done(&mut self, buffer: &ReadBuffer, body: Bytes) -> Step {
        let head = self.head.take().expect("an answer is done only after its head");
        Step::Done(Answer {
            status: head.status,
            headers: head.headers,
            body,
            // Bytes after the answer were never asked for.
            closes: head.closes || !buffer.is_empty(),
        })
    }
}

/// Takes the whole chunks `buffer` holds (sizes parsed by `httparse`, trailers skipped)
/// into `body`: `None` once the last chunk and the trailers are read, or how many more
/// bytes the chunk begun needs (0: any).
fn next_chunks(
    buffer: &mut ReadBuffer,
    at: &mut usize,
    body: &mut Vec<u8>,
) -> Result<Option<usize>, Failure> {
    loop {
        let (size_len, size) = match httparse::parse_chunk_size(&buffer.filled()[*at..]) {
            Ok(httparse::Status::Complete((len, size))) => (len, size),
            Ok(httparse::Status::Partial) => return Ok(Some(0)),
            Err(_) => return Err(Failure::Garbled("a malformed chunk size".into())),
        };
        let size = usize::try_from(size).map_err(|_| too_long())?;
        if body.len().saturating_add(size) > MAX_BODY {
            return Err(too_long());
        }
        let data = *at + size_len;
        if size == 0 {
            // Trailers, then the empty line.
            let mut line = data;
            loop {
                match buffer.filled()[line..].windows(2).position(|w| w == b"\r\n") {
                    Some(0) => {
                        buffer.consume(line + 2);
                        *at = 0;
                        return Ok(None);
                    }
                    Some(length) => line += length + 2,
                    None => return Ok(Some(0)),
                }
            }
        }
        if buffer.len() < data + size + 2 {
            return Ok(Some(data + size + 2 - buffer.len()));
        }
        let filled = buffer.filled();
        if &filled[data + size..data + size + 2] != b"\r\n" {
            return Err(Failure::Garbled("a chunk not followed by CRLF".into()));
        }
        body.extend_from_slice(&filled[data..data + size]);
        buffer.consume(data + size + 2);
        *at = 0;
    }
}

impl Connection {
    pub(crate) fn new(stream: ClientStream) -> Self {
        Connection {
            stream,
            buffer: ReadBuffer::default(),
            armed: None,
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.stream.fd()
    }

    /// Whether the server closed this idle connection or wrote to it unasked.
    pub(crate) fn closed_or_dirty(&self) -> bool {
        closed_or_dirty(self.fd(), &self.buffer)
    }

    /// Sends `request` (head and body in one buffer) and reads the answer, by `deadline`.
    /// A server that answers before reading the whole body (413) and closes is still
    /// heard: after a failed send the answer is read if there is one.
    pub(crate) fn exchange(&mut self, request: &[u8], deadline: Instant) -> Result<Answer, Failure> {
        if let Err(failure) = self.send_all(request, deadline) {
            return match self.read_answer(deadline) {
                Ok(answer) => Ok(Answer {
                    closes: true,
                    ..answer
                }),
                Err(_) => Err(failure),
            };
        }
        self.read_answer(deadline)
    }

    fn arm(&mut self, deadline: Instant) -> Result<(), Failure> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::Timeout);
        }
        if self.armed.is_none_or(|armed| armed.abs_diff(left) > SLACK) {
            let set = self.stream.set_timeouts(left);
            set.map_err(|e| broken(format!("setting the socket's timeout: {e}"), true))?;
            self.armed = Some(left);
        }
        Ok(())
    }

    fn send_all(&mut self, mut bytes: &[u8], deadline: Instant) -> Result<(), Failure> {
        #[cfg(feature = "tls")]
        if let ClientStream::Tls(_) = self.stream {
            return self.send_tls(bytes, deadline);
        }
        while !bytes.is_empty() {
            self.arm(deadline)?;
            match send_some(self.fd(), bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => self.timed_out(deadline)?,
                Err(e) => return Err(sending_failed(e)),
            }
        }
        Ok(())
    }

    /// [`Connection::send_all`] on TLS: the bytes become records in rustls's buffer, which
    /// is written out under the same deadline.
    #[cfg(feature = "tls")]
    fn send_tls(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), Failure> {
        use std::io::Write;
        self.arm(deadline)?;
        let ClientStream::Tls(tls) = &mut self.stream else {
            return Ok(());
        };
        let mut written = tls.conn.writer().write_all(bytes);
        loop {
            if let Err(e) = written {
                return match e.kind() {
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Err(Failure::Timeout),
                    _ => Err(sending_failed(e)),
                };
            }
            let ClientStream::Tls(tls) = &mut self.stream else {
                return Ok(());
            };
            if !tls.conn.wants_write() {
                return Ok(());
            }
            written = match tls.conn.write_tls(&mut tls.sock) {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(()),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    self.timed_out(deadline)?;
                    self.arm(deadline)?;
                    Ok(())
                }
                Err(e) => Err(e),
            };
        }
    }

    /// After a timed-out blocking step: the deadline passed, or the timeout was armed
    /// longer ago and the step may go on.
    fn timed_out(&mut self, deadline: Instant) -> Result<(), Failure> {
        self.armed = None;
        if Instant::now() >= deadline {
            Err(Failure::Timeout)
        } else {
            Ok(())
        }
    }

    fn read_answer(&mut self, deadline: Instant) -> Result<Answer, Failure> {
        let mut reader = AnswerReader::default();
        let mut ended = false;
        loop {
            let want = match reader.step(&mut self.buffer, ended)? {
                Step::Done(answer) => return Ok(answer),
                Step::Read { want } => want,
            };
            self.arm(deadline)?;
            match self.stream.read(self.buffer.room(want)) {
                Ok(n) => {
                    self.buffer.filled_by(n);
                    ended = n == 0;
                }
                Err(e) => match e.kind() {
                    std::io::ErrorKind::Interrupted => {}
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                        self.timed_out(deadline)?
                    }
                    _ => return Err(reading_failed(&e, &reader, &self.buffer)),
                },
            }
        }
    }
}

/// One `send` of some of `bytes`; MSG_NOSIGNAL: a closed peer is an error here, never a
/// SIGPIPE.
pub(crate) fn send_some(fd: RawFd, bytes: &[u8]) -> nix::Result<usize> {
    nix::sys::socket::send(fd, bytes, nix::sys::socket::MsgFlags::MSG_NOSIGNAL)
}

pub(crate) fn sending_failed(e: impl std::fmt::Display) -> Failure {
    broken(format!("sending the request: {e}"), true)
}

pub(crate) fn reading_failed(e: &std::io::Error, reader: &AnswerReader, buffer: &ReadBuffer) -> Failure {
    broken(
        format!("reading the answer: {e}"),
        reader.answered_nothing(buffer),
    )
}

fn broken(reason: String, answered_nothing: bool) -> Failure {
    Failure::Broken {
        reason,
        answered_nothing,
    }
}

fn too_long() -> Failure {
    Failure::Garbled(format!("an answer body longer than {MAX_BODY} bytes"))
}

fn content_length(headers: &Headers) -> Result<Option<usize>, Failure> {
    let mut values = headers.get_all("content-length");
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let parse = |v: &str| v.trim().parse::<usize>().ok();
    let length = parse(first).ok_or_else(|| Failure::Garbled("a malformed Content-Length".into()))?;
    if values.any(|other| parse(other) != Some(length)) {
        return Err(Failure::Garbled("conflicting Content-Length headers".into()));
    }
    Ok(Some(length))
}

/// The headers of an answer: its head's bytes and where each name and value lies in
/// them. Built without an allocation per header; names compare ignoring case.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    head: Bytes,
    /// (name start, name end, value start, value end) in `head`.
    fields: Vec<(usize, usize, usize, usize)>,
}

impl Headers {
    fn from_parsed(buffer: &[u8], parsed: &[httparse::Header<'_>]) -> Self {
        let base = buffer.as_ptr() as usize;
        let end = parsed
            .last()
            .map_or(0, |h| h.value.as_ptr() as usize + h.value.len() - base);
        let offset = |bytes: &[u8]| bytes.as_ptr() as usize - base;
        Headers {
            head: Bytes::copy_from_slice(&buffer[..end]),
            fields: parsed
                .iter()
                .map(|h| {
                    let name = offset(h.name.as_bytes());
                    let value = offset(h.value);
                    (name, name + h.name.len(), value, value + h.value.len())
                })
                .collect(),
        }
    }

    /// Every (name, value) pair, in the order sent; values that are not UTF-8 are skipped.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.fields.iter().filter_map(|&(ns, ne, vs, ve)| {
            let name = std::str::from_utf8(&self.head[ns..ne]).ok()?;
            let value = std::str::from_utf8(&self.head[vs..ve]).ok()?;
            Some((name, value))
        })
    }

    /// Every value of the header `name` (any case), in order.
    pub fn get_all<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.fields.iter().filter_map(move |&(ns, ne, vs, ve)| {
            if !self.head[ns..ne].eq_ignore_ascii_case(name.as_bytes()) {
                return None;
            }
            std::str::from_utf8(&self.head[vs..ve]).ok()
        })
    }

    /// The first value of the header `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).next()
    }

    /// Whether a comma-separated header carries `token` (any case).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }
}

/// Writes a request head and body into `out`: the request line, `fixed` (header lines
/// that are the same for every call, each ending in CRLF), the worker's index when it is
/// one, a `Content-Length` and, with a body, a JSON `Content-Type`.
pub(crate) fn encode_request(
    out: &mut Vec<u8>,
    method: &str,
    path: &str,
    fixed: &[u8],
    worker: Option<usize>,
    body: &[u8],
) {
    out.clear();
    out.reserve(method.len() + path.len() + fixed.len() + body.len() + 128);
    for part in [method.as_bytes(), b" ", path.as_bytes(), b" HTTP/1.1\r\n", fixed] {
        out.extend_from_slice(part);
    }
    if let Some(index) = worker {
        out.extend_from_slice(super::http::X_WORKER.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(itoa::Buffer::new().format(index).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() {
        out.extend_from_slice(b"Content-Type: application/json\r\n");
    }
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// Whether `path` can go on a request line as it is: an origin-form target (`/...`) of
/// visible ASCII.
pub(crate) fn valid_target(path: &str) -> bool {
    path.starts_with('/') && path.bytes().all(|b| (0x21..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_from(server_bytes: &[u8]) -> Result<Answer, Failure> {
        let (client, mut server) = UnixStream::pair().unwrap();
        std::io::Write::write_all(&mut server, server_bytes).unwrap();
        drop(server);
        Connection::new(ClientStream::Unix(client)).read_answer(Instant::now() + Duration::from_secs(5))
    }

    #[test]
    fn reads_length_chunked_and_close_delimited_bodies() {
        let fixed = answer_from(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello").unwrap();
        assert_eq!(
            (fixed.status, &fixed.body[..], fixed.closes),
            (200, &b"hello"[..], false)
        );
        assert_eq!(fixed.headers.get("X-A"), Some("1"));
        let chunked = answer_from(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\nX-T: y\r\n\r\n",
        )
        .unwrap();
        assert_eq!(&chunked.body[..], b"hello");
        let delimited = answer_from(b"HTTP/1.1 200 OK\r\n\r\nhello").unwrap();
        assert_eq!((&delimited.body[..], delimited.closes), (&b"hello"[..], true));
        let interim =
            answer_from(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
        assert_eq!(interim.status, 201);
        let closing =
            answer_from(b"HTTP/1.1 413 X\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(closing.closes);
    }

    /// The reader both clients share, fed one byte a read: the answer and what follows it
    /// come out the same as from one read.
    #[test]
    fn the_reader_takes_an_answer_in_any_pieces() {
        let wire: &[u8] =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
        let mut buffer = ReadBuffer::default();
        let mut reader = AnswerReader::default();
        let mut reads = 0;
        let answer = loop {
            match reader.step(&mut buffer, false).unwrap() {
                Step::Done(answer) => break answer,
                Step::Read { .. } => {
                    buffer.room(1)[0] = wire[reads];
                    buffer.filled_by(1);
                    reads += 1;
                }
            }
        };
        assert_eq!(reads, wire.len());
        assert_eq!(
            (answer.status, &answer.body[..], answer.closes),
            (200, &b"hello"[..], false)
        );
        let mut reader = AnswerReader::default();
        assert!(reader.answered_nothing(&buffer));
        assert!(matches!(
            reader.step(&mut buffer, true),
            Err(Failure::Broken {
                answered_nothing: true,
                ..
            })
        ));
    }

    #[test]
    fn a_broken_or_garbled_answer_is_told_apart() {
        assert!(matches!(
            answer_from(b""),
            Err(Failure::Broken {
                answered_nothing: true,
                ..
            })
        ));
        assert!(matches!(
            answer_from(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"),
            Err(Failure::Broken {
                answered_nothing: false,
                ..
            })
        ));
        assert!(matches!(
            answer_from(b"SSH-2.0-x\r\n\r\n"),
            Err(Failure::Garbled(_))
        ));
        assert!(matches!(
            answer_from(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
            Err(Failure::Garbled(_))
        ));
    }

    #[test]
    fn a_silent_server_times_out_by_the_deadline() {
        let (client, _server) = UnixStream::pair().unwrap();
        let started = Instant::now();
        let outcome = Connection::new(ClientStream::Unix(client)).exchange(
            b"GET / HTTP/1.1\r\n\r\n",
            Instant::now() + Duration::from_millis(100),
        );
        assert!(matches!(outcome, Err(Failure::Timeout)), "{outcome:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn request_targets_are_checked_and_encoded() {
        assert!(valid_target("/k/a%20b?x=1"));
        assert!(!valid_target("k") && !valid_target("/a b") && !valid_target("/a\r\nX: y"));
        let mut out = Vec::new();
        encode_request(&mut out, "PUT", "/k", b"Host: localhost\r\n", Some(3), b"{}");
        assert_eq!(
            out,
            b"PUT /k HTTP/1.1\r\nHost: localhost\r\nx-worker: 3\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
    }
}
