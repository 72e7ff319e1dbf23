//! One HTTP/1.1 request and its answer over a blocking Unix socket: what a worker's call
//! costs on its side. No runtime, no futures: one `send` of the whole request, then
//! `read`s until the answer is whole, parsed with `httparse`.
//!
//! Every blocking step has the call's deadline (the socket's timeouts, re-armed only when
//! the time left has moved by more than [`SLACK`], so a call usually costs no extra
//! system call for them).

use std::io::Read;
use std::os::fd::AsRawFd;
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

/// A keep-alive connection: the socket and what has been read from it but not used.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: UnixStream,
    buffer: ReadBuffer,
    armed: Option<Duration>,
}

/// Bytes read and not used yet, in a buffer zeroed once when it grows, never per read.
#[derive(Debug, Default)]
struct ReadBuffer {
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

    fn is_empty(&self) -> bool {
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

    /// One `read` into room for at least `want` more bytes (at least 4 KiB).
    fn read_from(&mut self, stream: &mut UnixStream, want: usize) -> std::io::Result<usize> {
        let want = want.max(4096);
        if self.data.len() - self.end < want {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.data.len() - self.end < want {
                self.data.resize(self.end + want, 0);
            }
        }
        let n = stream.read(&mut self.data[self.end..])?;
        self.end += n;
        Ok(n)
    }
}

impl Connection {
    pub(crate) fn new(stream: UnixStream) -> Self {
        Connection {
            stream,
            buffer: ReadBuffer::default(),
            armed: None,
        }
    }

    pub(crate) fn fd(&self) -> std::os::fd::RawFd {
        self.stream.as_raw_fd()
    }

    /// Whether the server closed this idle connection or wrote to it unasked: peeks
    /// without blocking or consuming.
    pub(crate) fn closed_or_dirty(&self) -> bool {
        if !self.buffer.is_empty() {
            return true;
        }
        let mut byte = [0u8; 1];
        let peeked = nix::sys::socket::recv(
            self.fd(),
            &mut byte,
            nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT,
        );
        !matches!(peeked, Err(nix::errno::Errno::EAGAIN))
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
            let set = self
                .stream
                .set_read_timeout(Some(left))
                .and_then(|()| self.stream.set_write_timeout(Some(left)));
            set.map_err(|e| broken(format!("setting the socket's timeout: {e}"), true))?;
            self.armed = Some(left);
        }
        Ok(())
    }

    fn send_all(&mut self, mut bytes: &[u8], deadline: Instant) -> Result<(), Failure> {
        while !bytes.is_empty() {
            self.arm(deadline)?;
            // MSG_NOSIGNAL: a closed peer is an error here, never a SIGPIPE.
            match nix::sys::socket::send(self.fd(), bytes, nix::sys::socket::MsgFlags::MSG_NOSIGNAL) {
                Ok(n) => bytes = &bytes[n..],
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => self.timed_out(deadline)?,
                Err(e) => return Err(broken(format!("sending the request: {e}"), true)),
            }
        }
        Ok(())
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

    /// Reads more bytes into the buffer; false at the end of the stream.
    fn fill(&mut self, deadline: Instant, want: usize) -> Result<bool, Failure> {
        self.arm(deadline)?;
        let had = self.buffer.len();
        match self.buffer.read_from(&mut self.stream, want) {
            Ok(n) => Ok(n > 0),
            Err(e) => match e.kind() {
                std::io::ErrorKind::Interrupted => Ok(true),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    self.timed_out(deadline).map(|()| true)
                }
                _ => Err(broken(format!("reading the answer: {e}"), had == 0)),
            },
        }
    }

    fn read_answer(&mut self, deadline: Instant) -> Result<Answer, Failure> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut headers);
            let head_len = match parsed.parse(self.buffer.filled()) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => {
                    if self.buffer.len() > MAX_HEAD {
                        return Err(Failure::Garbled(format!(
                            "an answer head longer than {MAX_HEAD} bytes"
                        )));
                    }
                    let had = self.buffer.len();
                    if !self.fill(deadline, 0)? {
                        return Err(broken(
                            "the server closed the connection before answering".into(),
                            had == 0,
                        ));
                    }
                    continue;
                }
                Err(e) => return Err(Failure::Garbled(format!("the answer is not HTTP/1.1: {e}"))),
            };
            let status = parsed.code.unwrap_or(0);
            let map = Headers::from_parsed(self.buffer.filled(), parsed.headers);
            if (100..200).contains(&status) {
                // An interim answer (100 Continue): the real one follows.
                self.buffer.consume(head_len);
                continue;
            }
            let mut closes = map.has_token("connection", "close");
            let body = if status == 204 || status == 304 {
                self.buffer.consume(head_len);
                Bytes::new()
            } else if map.has_token("transfer-encoding", "chunked") {
                self.read_chunked(head_len, deadline)?
            } else if let Some(length) = content_length(&map)? {
                self.read_exact_body(head_len, length, deadline)?
            } else {
                // Delimited by the close.
                closes = true;
                while self.fill(deadline, 64 * 1024)? {
                    if self.buffer.len() - head_len > MAX_BODY {
                        return Err(too_long());
                    }
                }
                let body = Bytes::copy_from_slice(&self.buffer.filled()[head_len..]);
                self.buffer.clear();
                body
            };
            closes |= !self.buffer.is_empty();
            return Ok(Answer {
                status,
                headers: map,
                body,
                closes,
            });
        }
    }

    fn read_exact_body(
        &mut self,
        head_len: usize,
        length: usize,
        deadline: Instant,
    ) -> Result<Bytes, Failure> {
        if length > MAX_BODY {
            return Err(too_long());
        }
        let end = head_len + length;
        while self.buffer.len() < end {
            self.more(deadline, end - self.buffer.len())?;
        }
        let body = Bytes::copy_from_slice(&self.buffer.filled()[head_len..end]);
        self.buffer.consume(end);
        Ok(body)
    }

    /// A chunked body: chunk sizes parsed by `httparse`, trailers skipped.
    fn read_chunked(&mut self, head_len: usize, deadline: Instant) -> Result<Bytes, Failure> {
        let mut body = Vec::new();
        let mut at = head_len;
        loop {
            let (size_len, size) = loop {
                match httparse::parse_chunk_size(&self.buffer.filled()[at..]) {
                    Ok(httparse::Status::Complete((len, size))) => break (len, size),
                    Ok(httparse::Status::Partial) => self.more(deadline, 0)?,
                    Err(_) => return Err(Failure::Garbled("a malformed chunk size".into())),
                }
            };
            let size = usize::try_from(size).map_err(|_| too_long())?;
            if body.len() + size > MAX_BODY {
                return Err(too_long());
            }
            at += size_len;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    match self.buffer.filled()[at..].windows(2).position(|w| w == b"\r\n") {
                        Some(0) => {
                            at += 2;
                            break;
                        }
                        Some(line) => at += line + 2,
                        None => self.more(deadline, 0)?,
                    }
                }
                self.buffer.consume(at);
                return Ok(Bytes::from(body));
            }
            while self.buffer.len() < at + size + 2 {
                self.more(deadline, at + size + 2 - self.buffer.len())?;
            }
            let filled = self.buffer.filled();
            body.extend_from_slice(&filled[at..at + size]);
            if &filled[at + size..at + size + 2] != b"\r\n" {
                return Err(Failure::Garbled("a chunk not followed by CRLF".into()));
            }
            at += size + 2;
        }
    }

    /// Reads more of an answer already begun (room for `want` more bytes); its end here
    /// is a break mid-answer.
    fn more(&mut self, deadline: Instant, want: usize) -> Result<(), Failure> {
        if self.fill(deadline, want)? {
            Ok(())
        } else {
            Err(broken(
                "the server closed the connection mid-answer".into(),
                false,
            ))
        }
    }
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
        Connection::new(client).read_answer(Instant::now() + Duration::from_secs(5))
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
        let outcome = Connection::new(client).exchange(
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
