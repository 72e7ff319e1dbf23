//! The request and response types handlers see, independent of the wire format.

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
pub use hyper::Method;
use serde_json::Value;

/// Kernel-reported identity of the connecting process (SO_PEERCRED). A TCP peer has
/// none: it is pid 0 with the server's own uid (its token vouched for it) and gid
/// `u32::MAX` (D-N4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Process id of the peer when it connected.
    pub pid: i32,
    /// Its user id.
    pub uid: u32,
    /// Its group id.
    pub gid: u32,
}

/// One authenticated request, body fully read (within the body limit).
#[derive(Debug)]
pub struct Request<'a> {
    /// HTTP method.
    pub method: &'a Method,
    /// Path, still percent-encoded (split it with [`segments`]).
    pub path: &'a str,
    /// Raw query string, if any.
    pub query: Option<&'a str>,
    /// Body bytes.
    pub body: &'a [u8],
    /// The connecting process.
    pub peer: Peer,
    /// An id of the connection this request came on, stable for its lifetime. Handlers
    /// use it to tie state (a transaction, a lock) to a connection.
    pub connection: u64,
    /// The server's JSON nesting limit, applied by [`Request::json`].
    pub max_depth: usize,
    /// The worker index the client states (`X-Worker`), when it is a run's worker: for
    /// messages that name a connection's process to a person.
    pub worker: Option<usize>,
}

impl Request<'_> {
    /// Parses the body as JSON within the nesting limit; the error is the response to send.
    pub fn json(&self) -> Result<Value, Response> {
        parse_json(self.body, self.max_depth)
    }
}

/// Parses JSON, refusing nesting deeper than `max_depth` with 400 `too_deep` and
/// malformed text with 400 `invalid_json` (with line and column).
pub fn parse_json(body: &[u8], max_depth: usize) -> Result<Value, Response> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        if e.to_string().contains("recursion limit") {
            too_deep(max_depth)
        } else {
            Response::error(
                400,
                "invalid_json",
                serde_json::json!({
                    "reason": e.to_string(),
                    "line": e.line(),
                    "column": e.column(),
                    "fix": "send the body as one JSON text (RFC 8259)",
                }),
            )
        }
    })?;
    if depth(&value) > max_depth {
        return Err(too_deep(max_depth));
    }
    Ok(value)
}

fn too_deep(max_depth: usize) -> Response {
    Response::error(
        400,
        "too_deep",
        serde_json::json!({ "max_depth": max_depth, "fix": "flatten the value or raise the server's nesting limit" }),
    )
}

pub use crate::limits::depth;

/// A response: status, extra headers and a body.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Extra headers (Content-Type is set from the constructor).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Body bytes.
    pub body: Bytes,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, value: &Value) -> Self {
        Self::json_bytes(
            status,
            serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec()),
        )
    }

    /// A JSON response from already-serialised bytes.
    pub fn json_bytes(status: u16, body: Vec<u8>) -> Self {
        Response {
            status,
            headers: vec![(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            // A boxed slice, not a Vec with spare room: `Bytes` then needs no
            // separate shared header (one allocation and free fewer per answer).
            body: Bytes::from(body.into_boxed_slice()),
        }
    }

    /// The error body every route uses: `{"error": id, "details": {...}}`.
    pub fn error(status: u16, id: &str, details: Value) -> Self {
        Self::json(status, &serde_json::json!({ "error": id, "details": details }))
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl ToString) -> Self {
        // From the `String` itself: its bytes are not copied again.
        if let Ok(value) = HeaderValue::try_from(value.to_string()) {
            self.headers.push((HeaderName::from_static(name), value));
        }
        self
    }
}

/// The state behind a server: gets each request in turn, never two at once.
///
/// This is where operations serialise: the server calls `handle` on one thread, one
/// request at a time, so a handler may mutate its state freely. For routes by method and
/// path pattern without writing `handle`, serve a [`Router`](super::router::Router).
pub trait Handler: 'static {
    /// Answers one request.
    fn handle(&mut self, request: &Request<'_>) -> Response;

    /// Whether `request` may be handled now. A request that is not ready waits (without
    /// blocking other connections) until a later request or a closed connection changes
    /// the state, up to the client's deadline (`X-Deadline-Ms`, default 30 s); then it
    /// gets [`Handler::busy`]. This is how a holder of exclusive access (a transaction)
    /// makes the others wait.
    fn ready(&self, _request: &Request<'_>) -> bool {
        true
    }

    /// The answer to a request that was never ready within its deadline.
    fn busy(&self, _request: &Request<'_>) -> Response {
        busy_answer()
    }

    /// Called when a connection closes, so state tied to it can be released.
    fn connection_closed(&mut self, _connection: u64) {}

    /// Whether state is tied to `connection` (it holds a transaction): such a connection
    /// is never closed for being idle, nor evicted to make room for another.
    fn holds(&self, _connection: u64) -> bool {
        false
    }

    /// The next instant at which the handler wants [`Handler::deadline_passed`] called
    /// (the end of a transaction's maximum hold), if any.
    fn next_deadline(&self) -> Option<std::time::Instant> {
        None
    }

    /// Called once [`Handler::next_deadline`] has passed: before the next request is
    /// handled, and as soon as it passes while a request waits to be [`ready`].
    ///
    /// [`ready`]: Handler::ready
    fn deadline_passed(&mut self, _now: std::time::Instant) {}
}

/// The default answer to a request parked past its deadline: 503 `busy`.
pub(crate) fn busy_answer() -> Response {
    Response::error(
        503,
        "busy",
        serde_json::json!({
            "reason": "the state was held by another connection for the whole deadline",
            "fix": "retry, or send a longer `X-Deadline-Ms`",
        }),
    )
}

/// The answer to a body whose framing broke while it was read (a malformed chunk, a
/// connection cut inside it): 400 `bad_body`; the connection closes after it.
pub(crate) fn bad_body(reason: String) -> Response {
    Response::error(
        400,
        "bad_body",
        serde_json::json!({
            "reason": reason,
            "fix": "send the body as `Content-Length` bytes or well-formed `Transfer-Encoding: chunked`",
        }),
    )
}

/// Header in which a client states how long it will wait for an answer, in ms.
pub const X_DEADLINE_MS: &str = "x-deadline-ms";
/// Header in which a run's worker states its index.
pub const X_WORKER: &str = "x-worker";

/// Splits a percent-encoded path into decoded segments: `/a/b%2Fc/` → `["a", "b/c", ""]`.
///
/// A trailing slash yields a trailing empty segment, which is how the empty-string key
/// travels. `None` when a segment is not valid UTF-8 after decoding.
pub fn segments(path: &str) -> Option<Vec<String>> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    if trimmed.is_empty() {
        return Some(Vec::new());
    }
    decode_segments(trimmed)
}

/// Decodes `a/b%2Fc` into `["a", "b/c"]`: every `/`-separated piece is one segment, so
/// the empty text is one empty segment. `None` when a segment is not UTF-8 once decoded.
pub fn decode_segments(text: &str) -> Option<Vec<String>> {
    text.split('/')
        .map(|seg| {
            percent_encoding::percent_decode_str(seg)
                .decode_utf8()
                .ok()
                .map(|s| s.into_owned())
        })
        .collect()
}

/// Characters left as they are in a path segment; everything else is percent-encoded, so
/// any string (with `/`, `?`, `%`, spaces, non-ASCII) becomes exactly one segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Appends `/` and one percent-encoded path segment to `url`, without an allocation.
pub fn push_segment(url: &mut String, segment: &str) {
    url.push('/');
    url.extend(percent_encoding::utf8_percent_encode(segment, SEGMENT));
}

/// Percent-encodes one path segment.
pub fn encode_segment(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_awkward_keys() {
        for key in ["", "a/b", "?", "%", "é", "a b", "..", "x".repeat(300).as_str()] {
            let path = format!("/pk/0/{}", encode_segment(key));
            assert_eq!(
                segments(&path).unwrap(),
                vec!["pk".to_owned(), "0".to_owned(), key.to_owned()]
            );
        }
        assert_eq!(segments("/").unwrap(), Vec::<String>::new());
        assert!(segments("/%FF").is_none());
    }
}
