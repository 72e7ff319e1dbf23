//! Routes for a server of your own: a [`Router`] holds your state and a table of handlers
//! by method and path pattern, and is the [`Handler`] you serve with
//! [`spawn_server`](super::spawn_server) or [`serve`](super::serve).
//!
//! Patterns are checked when they are registered ([`RouteError`]), never when a request
//! comes. Matching a request allocates nothing but what the handler is given: a capture
//! is decoded in place unless it has percent escapes, and `{*rest}` is the one `Vec`.

use std::borrow::Cow;
use std::time::Instant;

use hyper::Method;
use serde_json::json;

use super::http::{busy_answer, decode_segments, Handler, Request, Response};

/// Most `{name}` captures one pattern may have (`{*rest}` not counted): captures are held
/// in place, without an allocation per request.
pub const MAX_CAPTURES: usize = 8;

/// The state behind a [`Router`]: the exclusive-holder hooks of [`Handler`], each with
/// the same default, for a router's state to override.
///
/// Implemented for `()`; a state type of your own implements it, usually with an empty
/// `impl RouteState for MyState {}`. Override [`RouteState::ready`] (and
/// [`RouteState::connection_closed`]) to make other connections wait while one holds the
/// state (a lock, a transaction): a request that is not ready is parked without blocking
/// the others, and answered [`RouteState::busy`] after the client's deadline (D-U8).
pub trait RouteState: 'static {
    /// Whether `request` may be handled now (see [`Handler::ready`]).
    fn ready(&self, _request: &Request<'_>) -> bool {
        true
    }

    /// The answer to a request never ready within its deadline (default: 503 `busy`).
    fn busy(&self, _request: &Request<'_>) -> Response {
        busy_answer()
    }

    /// A connection closed: release what is tied to it (see [`Handler::connection_closed`]).
    fn connection_closed(&mut self, _connection: u64) {}

    /// Whether state is tied to `connection`, which then is never closed for being idle
    /// (see [`Handler::holds`]).
    fn holds(&self, _connection: u64) -> bool {
        false
    }

    /// When [`RouteState::deadline_passed`] is wanted next (see [`Handler::next_deadline`]).
    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    /// [`RouteState::next_deadline`] has passed (see [`Handler::deadline_passed`]).
    fn deadline_passed(&mut self, _now: Instant) {}

    /// Called after every answer the router gives (a handler's, or its own 404/405/400),
    /// with the request: for counting and watching operations (see [`super::OpLog`]).
    fn handled(&mut self, _request: &Request<'_>, _response: &Response) {}
}

impl RouteState for () {}

/// What a route handler returns: `Ok` with the answer, or `Err` with a refusal (also an
/// answer), so a handler can use `?` on [`Request::json`] and on its own checks.
pub type RouteResult = Result<Response, Response>;

/// A pattern refused at registration: what is wrong, and in which pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The pattern does not start with `/`.
    #[error("route pattern `{pattern}` does not start with `/`: write `/{pattern}`")]
    NotAbsolute {
        /// The pattern as given.
        pattern: String,
    },
    /// A segment holds a brace but is not a whole `{name}` or `{*name}`.
    #[error(
        "route pattern `{pattern}`: segment `{segment}` is not a whole capture; a capture is a whole segment, `{{name}}` or, last, `{{*name}}`, and a literal segment has no braces"
    )]
    PartialCapture {
        /// The pattern as given.
        pattern: String,
        /// The offending segment.
        segment: String,
    },
    /// A capture has no name (`{}`, `{*}`).
    #[error("route pattern `{pattern}`: a capture needs a name, as in `{{id}}` or `{{*rest}}`")]
    EmptyName {
        /// The pattern as given.
        pattern: String,
    },
    /// `{*name}` is not the last segment.
    #[error(
        "route pattern `{pattern}`: `{{*{name}}}` takes every remaining segment, so it must be the last one"
    )]
    RestNotLast {
        /// The pattern as given.
        pattern: String,
        /// The rest capture's name.
        name: String,
    },
    /// Two captures of one pattern share a name.
    #[error("route pattern `{pattern}` captures `{name}` twice: give each capture its own name")]
    DuplicateName {
        /// The pattern as given.
        pattern: String,
        /// The repeated name.
        name: String,
    },
    /// More than [`MAX_CAPTURES`] `{name}` captures.
    #[error("route pattern `{pattern}` has more than {most} captures: capture the tail with a final `{{*rest}}` instead")]
    TooManyCaptures {
        /// The pattern as given.
        pattern: String,
        /// The most allowed.
        most: usize,
    },
    /// The method and pattern are registered already.
    #[error("`{method} {pattern}` is registered twice: keep one handler")]
    Duplicate {
        /// The method.
        method: Method,
        /// The pattern.
        pattern: String,
    },
    /// The pattern matches exactly the paths of a registered one spelled with other
    /// capture names, so which names a handler sees would depend on the method.
    #[error(
        "route pattern `{pattern}` matches the same paths as the registered `{existing}`: spell both alike (same capture names)"
    )]
    Ambiguous {
        /// The pattern being registered.
        pattern: String,
        /// The registered pattern of the same shape.
        existing: String,
    },
}

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches a segment whose decoded text is this.
    Literal(Box<str>),
    /// `{name}`: any one segment.
    Capture,
}

/// A parsed pattern.
#[derive(Debug)]
struct Pattern {
    text: Box<str>,
    segments: Vec<Segment>,
    /// The `{name}` captures' names, in order.
    names: Vec<Box<str>>,
    /// The name of the final `{*name}`, if any.
    rest: Option<Box<str>>,
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, RouteError> {
        let Some(body) = text.strip_prefix('/') else {
            return Err(RouteError::NotAbsolute {
                pattern: text.to_owned(),
            });
        };
        let mut pattern = Pattern {
            text: text.into(),
            segments: Vec::new(),
            names: Vec::new(),
            rest: None,
        };
        if body.is_empty() {
            return Ok(pattern);
        }
        let pieces: Vec<&str> = body.split('/').collect();
        for (i, piece) in pieces.iter().enumerate() {
            if let Some(name) = &pattern.rest {
                return Err(RouteError::RestNotLast {
                    pattern: text.to_owned(),
                    name: name.to_string(),
                });
            }
            let capture = piece.strip_prefix('{').and_then(|p| p.strip_suffix('}'));
            let Some(inner) = capture else {
                if piece.contains(['{', '}']) {
                    return Err(RouteError::PartialCapture {
                        pattern: text.to_owned(),
                        segment: (*piece).to_owned(),
                    });
                }
                pattern.segments.push(Segment::Literal((*piece).into()));
                continue;
            };
            let (name, is_rest) = match inner.strip_prefix('*') {
                Some(name) => (name, true),
                None => (inner, false),
            };
            if name.contains(['{', '}', '*']) {
                return Err(RouteError::PartialCapture {
                    pattern: text.to_owned(),
                    segment: (*piece).to_owned(),
                });
            }
            if name.is_empty() {
                return Err(RouteError::EmptyName {
                    pattern: text.to_owned(),
                });
            }
            if pattern.names.iter().any(|n| &**n == name) {
                return Err(RouteError::DuplicateName {
                    pattern: text.to_owned(),
                    name: name.to_owned(),
                });
            }
            if is_rest {
                if i + 1 < pieces.len() {
                    return Err(RouteError::RestNotLast {
                        pattern: text.to_owned(),
                        name: name.to_owned(),
                    });
                }
                pattern.rest = Some(name.into());
            } else {
                if pattern.names.len() == MAX_CAPTURES {
                    return Err(RouteError::TooManyCaptures {
                        pattern: text.to_owned(),
                        most: MAX_CAPTURES,
                    });
                }
                pattern.names.push(name.into());
                pattern.segments.push(Segment::Capture);
            }
        }
        Ok(pattern)
    }

    /// Whether `other` matches exactly the same paths.
    fn same_shape(&self, other: &Pattern) -> bool {
        self.segments == other.segments && self.rest.is_some() == other.rest.is_some()
    }

    /// Specificity, compared lexicographically: at the first difference a literal beats a
    /// capture, which beats `{*rest}`; smaller is tried first.
    fn rank(&self) -> Vec<u8> {
        let mut rank: Vec<u8> = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 0,
                Segment::Capture => 1,
            })
            .collect();
        if self.rest.is_some() {
            rank.push(2);
        }
        rank
    }

    /// Matches `path` segment by segment without decoding captures yet: the raw capture
    /// texts and, for `{*rest}`, the raw remainder (`None`: no segment left).
    #[cfg(test)]
    fn matches<'p>(&self, path: &'p str) -> Option<RawMatch<'p>> {
        self.matches_split(&Split::of(path)?)
    }

    /// Matches a path already cut into segments ([`Split`]): the router cuts each request
    /// path once, however many patterns it tries.
    fn matches_split<'p>(&self, split: &Split<'p>) -> Option<RawMatch<'p>> {
        let count = self.segments.len();
        if split.bounds.len() < count || (self.rest.is_none() && split.bounds.len() != count) {
            return None;
        }
        let mut found = RawMatch {
            captures: [""; MAX_CAPTURES],
            rest: None,
        };
        let mut captured = 0;
        for (segment, &(start, end)) in self.segments.iter().zip(&split.bounds) {
            let head = &split.path[start..end];
            match segment {
                Segment::Literal(literal) => {
                    if !literal_matches(head, literal) {
                        return None;
                    }
                }
                Segment::Capture => {
                    *found.captures.get_mut(captured)? = head;
                    captured += 1;
                }
            }
        }
        found.rest = split.bounds.get(count).map(|&(start, _)| &split.path[start..]);
        Some(found)
    }
}

/// A request path cut into its `/`-separated segments once (byte ranges into the path):
/// `/` has none, `/a/` has `a` and an empty one.
struct Split<'p> {
    path: &'p str,
    bounds: Vec<(usize, usize)>,
}

impl<'p> Split<'p> {
    /// `None` for a path that does not start with `/`.
    fn of(path: &'p str) -> Option<Split<'p>> {
        path.strip_prefix('/')?;
        let mut bounds = Vec::with_capacity(8);
        if path.len() > 1 {
            let mut start = 1;
            for (at, byte) in path.bytes().enumerate().skip(1) {
                if byte == b'/' {
                    bounds.push((start, at));
                    start = at + 1;
                }
            }
            bounds.push((start, path.len()));
        }
        Some(Split { path, bounds })
    }
}

/// Whether the raw segment `raw` decodes to `literal` (decoding only when it has escapes).
fn literal_matches(raw: &str, literal: &str) -> bool {
    raw == literal
        || (raw.as_bytes().contains(&b'%')
            && percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .is_ok_and(|decoded| decoded == literal))
}

/// A pattern's match before decoding.
struct RawMatch<'p> {
    captures: [&'p str; MAX_CAPTURES],
    rest: Option<&'p str>,
}

/// A request as a route handler sees it: the [`Request`] (also through `Deref`), its
/// captures ([`RouteRequest::param`]) and its `{*rest}` ([`RouteRequest::rest`]), all
/// percent-decoded.
#[derive(Debug)]
pub struct RouteRequest<'r> {
    request: &'r Request<'r>,
    pattern: &'r Pattern,
    params: [Cow<'r, str>; MAX_CAPTURES],
    rest: Vec<String>,
}

impl<'r> RouteRequest<'r> {
    /// Decodes a match; `None` when a capture or the rest is not UTF-8 once decoded.
    fn decode(request: &'r Request<'r>, pattern: &'r Pattern, raw: RawMatch<'r>) -> Option<Self> {
        let mut params: [Cow<'r, str>; MAX_CAPTURES] = Default::default();
        for (param, raw) in params
            .iter_mut()
            .zip(raw.captures.iter().take(pattern.names.len()))
        {
            *param = percent_encoding::percent_decode_str(raw).decode_utf8().ok()?;
        }
        let rest = match (&pattern.rest, raw.rest) {
            (Some(_), Some(text)) => decode_segments(text)?,
            _ => Vec::new(),
        };
        Some(RouteRequest {
            request,
            pattern,
            params,
            rest,
        })
    }

    /// The request itself.
    pub fn request(&self) -> &'r Request<'r> {
        self.request
    }

    /// The decoded segment the capture `{name}` took; `None` when the pattern has no such
    /// capture (`{*rest}` is read with [`RouteRequest::rest`]).
    pub fn param(&self, name: &str) -> Option<&str> {
        let index = self.pattern.names.iter().position(|n| &**n == name)?;
        self.params.get(index).map(|p| &**p)
    }

    /// The decoded segments `{*rest}` took (none when the path ends before it, or the
    /// pattern has no `{*rest}`). A trailing slash is a final empty segment.
    pub fn rest(&self) -> &[String] {
        &self.rest
    }

    /// The pattern that matched, as registered.
    pub fn pattern(&self) -> &str {
        &self.pattern.text
    }
}

impl<'r> std::ops::Deref for RouteRequest<'r> {
    type Target = Request<'r>;

    fn deref(&self) -> &Request<'r> {
        self.request
    }
}

type RouteHandler<S> = Box<dyn FnMut(&mut S, &RouteRequest<'_>) -> RouteResult>;

/// One pattern and the handlers registered on it, by method.
struct Entry {
    pattern: Pattern,
    rank: Vec<u8>,
    /// Methods and indexes into `Router::handlers`.
    methods: Vec<(Method, usize)>,
}

/// A [`Handler`] made of routes: your state `S` and handlers registered by method and path
/// pattern. Build one with [`Router::builder`].
///
/// **Patterns** are `/`-separated segments, each one of:
/// - a literal, matched against the percent-decoded segment (write it decoded: `/café`);
/// - `{name}`: any one segment, read with [`RouteRequest::param`] (percent-decoded);
/// - last only, `{*name}`: every remaining segment, zero or more, read with
///   [`RouteRequest::rest`]. A trailing slash is a final empty segment, as in
///   [`segments`](super::http::segments).
///
/// A path may match several patterns: the most specific one that has the request's method
/// is used (at the first segment where two differ, a literal beats `{name}`, which beats
/// `{*name}`). Errors, with the body of [`Response::error`]:
/// - no pattern matches: 404 `no_route`, `details.routes` lists every `METHOD pattern`;
/// - patterns match, but none with this method: 405 `method_not_allowed`, with `Allow`;
/// - a segment that a capture or `{*rest}` takes is not UTF-8 once decoded: 400
///   `invalid_path`.
///
/// **Handlers** are `FnMut(&mut S, &RouteRequest<'_>) -> RouteResult`: `Ok(response)`, or
/// `Err(response)` for a refusal (so `?` works on [`Request::json`]). They run one at a
/// time on the server's thread, so they may mutate the state freely. `S` supplies the exclusive-holder hooks through
/// [`RouteState`] (`impl RouteState for MyState {}` keeps the defaults).
///
/// ```
/// use caspian_ipc::uds::http::{Method, Peer};
/// use caspian_ipc::uds::router::{RouteRequest, RouteState, Router};
/// use caspian_ipc::uds::{Handler, Request, Response};
/// use serde_json::json;
///
/// #[derive(Default)]
/// struct Jobs {
///     done: Vec<String>,
/// }
/// impl RouteState for Jobs {} // no exclusive holders
///
/// let mut router = Router::builder(Jobs::default())
///     .get("/status", |jobs: &mut Jobs, _: &RouteRequest<'_>| {
///         Ok(Response::json(200, &json!({ "done": jobs.done.len() })))
///     })
///     .post("/jobs/{id}/done", |jobs: &mut Jobs, request: &RouteRequest<'_>| {
///         let note = request.json()?; // a bad body answers 400 `invalid_json`
///         let id = request.param("id").unwrap_or_default();
///         jobs.done.push(format!("{id}: {note}"));
///         Ok(Response::json(200, &json!(jobs.done.len())))
///     })
///     .build()?; // a malformed or duplicate pattern is refused here, never later
///
/// // Served with `caspian_ipc::uds::spawn_server(&dir, token, config, move || Ok(router), ..)`;
/// // called directly here.
/// let call = |router: &mut Router<Jobs>, method: Method, path: &str, body: &[u8]| {
///     let peer = Peer { pid: 1, uid: 0, gid: 0 };
///     let request = Request {
///         method: &method, path, query: None, body, peer,
///         connection: 1, max_depth: 64, worker: None,
///     };
///     router.handle(&request)
/// };
/// assert_eq!(call(&mut router, Method::POST, "/jobs/a%20b/done", b"\"ok\"").status, 200);
/// assert_eq!(router.state().done, vec!["a b: \"ok\"".to_owned()]);
/// assert_eq!(call(&mut router, Method::GET, "/jobs", b"").status, 404); // no_route
/// assert_eq!(call(&mut router, Method::DELETE, "/status", b"").status, 405); // Allow: GET
/// # Ok::<_, caspian_ipc::uds::router::RouteError>(())
/// ```
pub struct Router<S> {
    state: S,
    /// By rank, most specific first; equal ranks in registration order.
    entries: Vec<Entry>,
    handlers: Vec<RouteHandler<S>>,
    /// `METHOD pattern` of every route, in registration order, for the 404.
    listing: Vec<String>,
}

impl<S> std::fmt::Debug for Router<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.listing)
            .finish_non_exhaustive()
    }
}

impl<S> Router<S> {
    /// Starts a router over `state`; register routes, then [`RouterBuilder::build`].
    pub fn builder(state: S) -> RouterBuilder<S> {
        RouterBuilder {
            router: Router {
                state,
                entries: Vec::new(),
                handlers: Vec::new(),
                listing: Vec::new(),
            },
            error: None,
        }
    }

    /// The state.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The state, to change.
    pub fn state_mut(&mut self) -> &mut S {
        &mut self.state
    }

    /// The state, giving up the routes.
    pub fn into_state(self) -> S {
        self.state
    }

    /// Every registered route as `METHOD pattern`, in registration order.
    pub fn routes(&self) -> &[String] {
        &self.listing
    }

    fn add(&mut self, method: Method, text: &str, handler: RouteHandler<S>) -> Result<(), RouteError> {
        let pattern = Pattern::parse(text)?;
        let index = self.handlers.len();
        match self.entries.iter_mut().find(|e| e.pattern.same_shape(&pattern)) {
            Some(entry) if entry.pattern.text != pattern.text => {
                return Err(RouteError::Ambiguous {
                    pattern: text.to_owned(),
                    existing: entry.pattern.text.to_string(),
                })
            }
            Some(entry) => {
                if entry.methods.iter().any(|(m, _)| *m == method) {
                    return Err(RouteError::Duplicate {
                        method,
                        pattern: text.to_owned(),
                    });
                }
                entry.methods.push((method.clone(), index));
            }
            None => {
                let rank = pattern.rank();
                let at = self.entries.partition_point(|e| e.rank <= rank);
                self.entries.insert(
                    at,
                    Entry {
                        pattern,
                        rank,
                        methods: vec![(method.clone(), index)],
                    },
                );
            }
        }
        self.handlers.push(handler);
        self.listing.push(format!("{method} {text}"));
        Ok(())
    }
}

/// Registers a [`Router`]'s routes; [`RouterBuilder::build`] reports the first pattern
/// that was refused. [`RouterBuilder::try_route`] reports it at once instead.
pub struct RouterBuilder<S> {
    router: Router<S>,
    error: Option<RouteError>,
}

impl<S> std::fmt::Debug for RouterBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterBuilder")
            .field("routes", &self.router.listing)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<S> RouterBuilder<S> {
    /// Registers `handler` for `method` on `pattern`. A refused pattern is reported by
    /// [`RouterBuilder::build`]; the routes after it are not registered.
    pub fn route<F>(mut self, method: Method, pattern: &str, handler: F) -> Self
    where
        F: FnMut(&mut S, &RouteRequest<'_>) -> RouteResult + 'static,
    {
        if self.error.is_none() {
            if let Err(error) = self.router.add(method, pattern, boxed(handler)) {
                self.error = Some(error);
            }
        }
        self
    }

    /// [`RouterBuilder::route`], reporting a refused pattern at once.
    pub fn try_route<F>(mut self, method: Method, pattern: &str, handler: F) -> Result<Self, RouteError>
    where
        F: FnMut(&mut S, &RouteRequest<'_>) -> RouteResult + 'static,
    {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        self.router.add(method, pattern, boxed(handler))?;
        Ok(self)
    }

    /// `GET` on `pattern`.
    pub fn get<F>(self, pattern: &str, handler: F) -> Self
    where
        F: FnMut(&mut S, &RouteRequest<'_>) -> RouteResult + 'static,
    {
        self.route(Method::GET, pattern, handler)
    }

    /// `POST` on `pattern`.
    pub fn post<F>(self, pattern: &str, handler: F) -> Self
    where
        F: FnMut(&mut S, &RouteRequest<'_>) -> RouteResult + 'static,
    {
        self.route(Method::POST, pattern, handler)
    }

    /// `PUT` on `pattern`.
    pub fn put<F>(self, pattern: &str, handler: F) -> Self
    where
        F: FnMut(&mut S, &RouteRequest<'_>) -> RouteResult + 'static,
    {
        self.route(Method::PUT, pattern, handler)
    }

    /// `DELETE` on `pattern`.
    pub fn delete<F>(self, pattern: &str, handler: F) -> Self
    where
        F: FnMut(&mut S, &RouteRequest<'_>) -> RouteResult + 'static,
    {
        self.route(Method::DELETE, pattern, handler)
    }

    /// The router, or the first pattern refused.
    pub fn build(self) -> Result<Router<S>, RouteError> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.router),
        }
    }
}

fn boxed<S, F>(handler: F) -> RouteHandler<S>
where
    F: FnMut(&mut S, &RouteRequest<'_>) -> RouteResult + 'static,
{
    Box::new(handler)
}

impl<S: RouteState> Handler for Router<S> {
    fn handle(&mut self, request: &Request<'_>) -> Response {
        let response = self.route(request);
        self.state.handled(request, &response);
        response
    }

    fn ready(&self, request: &Request<'_>) -> bool {
        self.state.ready(request)
    }

    fn busy(&self, request: &Request<'_>) -> Response {
        self.state.busy(request)
    }

    fn connection_closed(&mut self, connection: u64) {
        self.state.connection_closed(connection);
    }

    fn holds(&self, connection: u64) -> bool {
        self.state.holds(connection)
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.state.next_deadline()
    }

    fn deadline_passed(&mut self, now: Instant) {
        self.state.deadline_passed(now);
    }
}

impl<S: RouteState> Router<S> {
    /// The handler of the most specific matching route, or the router's own refusal.
    fn route(&mut self, request: &Request<'_>) -> Response {
        let Router {
            state,
            entries,
            handlers,
            listing,
        } = self;
        let mut allowed: Vec<&Method> = Vec::new();
        let Some(split) = Split::of(request.path) else {
            return no_route(request, listing);
        };
        for entry in entries.iter() {
            let Some(raw) = entry.pattern.matches_split(&split) else {
                continue;
            };
            let Some(&(_, index)) = entry.methods.iter().find(|(m, _)| m == request.method) else {
                for (method, _) in &entry.methods {
                    if !allowed.contains(&method) {
                        allowed.push(method);
                    }
                }
                continue;
            };
            let Some(route) = RouteRequest::decode(request, &entry.pattern, raw) else {
                return invalid_path(request.path);
            };
            return match handlers.get_mut(index) {
                Some(handler) => handler(state, &route).unwrap_or_else(|refusal| refusal),
                None => no_route(request, listing),
            };
        }
        if allowed.is_empty() {
            no_route(request, listing)
        } else {
            method_not_allowed(request, &allowed)
        }
    }
}

fn no_route(request: &Request<'_>, routes: &[String]) -> Response {
    Response::error(
        404,
        "no_route",
        json!({
            "method": request.method.as_str(),
            "path": request.path,
            "routes": routes,
            "fix": "use one of the routes listed in `routes`",
        }),
    )
}

fn method_not_allowed(request: &Request<'_>, allowed: &[&Method]) -> Response {
    let allowed: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
    Response::error(
        405,
        "method_not_allowed",
        json!({
            "method": request.method.as_str(),
            "path": request.path,
            "allowed": allowed,
            "fix": "use one of the methods listed in `allowed`",
        }),
    )
    .with_header("allow", allowed.join(", "))
}

fn invalid_path(path: &str) -> Response {
    Response::error(
        400,
        "invalid_path",
        json!({ "path": path, "fix": "percent-encode each path segment as UTF-8" }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uds::http::{encode_segment, Peer};
    use serde_json::Value;

    fn request<'a>(method: &'a Method, path: &'a str, body: &'a [u8]) -> Request<'a> {
        Request {
            method,
            path,
            query: None,
            body,
            peer: Peer {
                pid: 1,
                uid: 0,
                gid: 0,
            },
            connection: 7,
            max_depth: 16,
            worker: None,
        }
    }

    fn call<S: RouteState>(
        router: &mut Router<S>,
        method: Method,
        path: &str,
    ) -> (u16, Value, Option<String>) {
        let response = router.handle(&request(&method, path, b""));
        let allow = response
            .headers
            .iter()
            .find(|(name, _)| name == "allow")
            .and_then(|(_, v)| v.to_str().ok().map(str::to_owned));
        let body = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        (response.status, body, allow)
    }

    /// Answers what the route saw: the pattern, every named capture, the rest.
    fn echo(names: &'static [&'static str]) -> impl FnMut(&mut (), &RouteRequest<'_>) -> RouteResult {
        move |_, r| {
            let params: serde_json::Map<String, Value> = names
                .iter()
                .filter_map(|n| Some(((*n).to_owned(), json!(r.param(n)?))))
                .collect();
            Ok(Response::json(
                200,
                &json!({ "pattern": r.pattern(), "params": params, "rest": r.rest(), "method": r.method.as_str() }),
            ))
        }
    }

    fn routes() -> Router<()> {
        Router::builder(())
            .get("/", echo(&[]))
            .get("/status", echo(&[]))
            .get("/items/{id}", echo(&["id"]))
            .delete("/items/{id}", echo(&["id"]))
            .get("/items/new", echo(&[]))
            .put("/files/{*path}", echo(&[]))
            .get("/files/{name}/meta", echo(&["name"]))
            .post("/a/{x}/b/{y}", echo(&["x", "y"]))
            .get("/trailing/", echo(&[]))
            .build()
            .expect("valid routes")
    }

    #[test]
    fn literals_and_captures_match_whole_segments() {
        let mut router = routes();
        let (status, body, _) = call(&mut router, Method::GET, "/status");
        assert_eq!((status, body["pattern"].as_str()), (200, Some("/status")));
        let (status, body, _) = call(&mut router, Method::GET, "/");
        assert_eq!((status, body["pattern"].as_str()), (200, Some("/")));
        let (_, body, _) = call(&mut router, Method::GET, "/items/42");
        assert_eq!(body["params"], json!({"id": "42"}));
        let (_, body, _) = call(&mut router, Method::POST, "/a/1/b/2");
        assert_eq!(body["params"], json!({"x": "1", "y": "2"}));
        // A capture takes exactly one segment: no more, no fewer.
        for path in [
            "/items",
            "/items/1/2",
            "/statusx",
            "/status/",
            "/a/1/b",
            "/trailing",
            "items/1",
            "",
        ] {
            let (status, body, _) = call(&mut router, Method::GET, path);
            assert_eq!(status, 404, "{path}: {body}");
        }
        // A trailing slash is an empty final segment, matched by a literal `/trailing/` and
        // by a capture.
        assert_eq!(call(&mut router, Method::GET, "/trailing/").0, 200);
        let (_, body, _) = call(&mut router, Method::GET, "/items/");
        assert_eq!(body["params"], json!({"id": ""}));
    }

    /// A capture without escapes is the path's own text, not a copy: matching allocates
    /// nothing for the route.
    #[test]
    fn plain_captures_borrow_the_path() {
        let router = routes();
        let method = Method::GET;
        let request = request(&method, "/a/plain/b/esc%41ped", b"");
        let entry = router
            .entries
            .iter()
            .find(|e| &*e.pattern.text == "/a/{x}/b/{y}")
            .unwrap();
        let raw = entry.pattern.matches(request.path).unwrap();
        let route = RouteRequest::decode(&request, &entry.pattern, raw).unwrap();
        assert!(matches!(route.params[0], Cow::Borrowed("plain")));
        assert!(matches!(&route.params[1], Cow::Owned(s) if s == "escAped"));
        assert!(route.rest().is_empty() && route.rest.capacity() == 0);
    }

    #[test]
    fn the_most_specific_pattern_with_the_method_wins() {
        let mut router = routes();
        let (_, body, _) = call(&mut router, Method::GET, "/items/new");
        assert_eq!(body["pattern"], "/items/new");
        // `/items/new` has no DELETE: the capture route takes it.
        let (_, body, _) = call(&mut router, Method::DELETE, "/items/new");
        assert_eq!(
            (body["pattern"].as_str(), &body["params"]),
            (Some("/items/{id}"), &json!({"id": "new"}))
        );
        // `/files/{name}/meta` beats `/files/{*path}` for GET; PUT goes to the rest route.
        let (_, body, _) = call(&mut router, Method::GET, "/files/x/meta");
        assert_eq!(body["pattern"], "/files/{name}/meta");
        let (_, body, _) = call(&mut router, Method::PUT, "/files/x/meta");
        assert_eq!(body["rest"], json!(["x", "meta"]));
    }

    #[test]
    fn rest_takes_zero_or_more_segments() {
        let mut router = routes();
        for (path, rest) in [
            ("/files", json!([])),
            ("/files/a", json!(["a"])),
            ("/files/a/b/c", json!(["a", "b", "c"])),
            ("/files/a/", json!(["a", ""])),
            ("/files/", json!([""])),
            ("/files/a%2Fb/%3F", json!(["a/b", "?"])),
        ] {
            let (status, body, _) = call(&mut router, Method::PUT, path);
            assert_eq!((status, &body["rest"]), (200, &rest), "{path}");
        }
    }

    #[test]
    fn captures_and_literals_are_percent_decoded() {
        let mut router = routes();
        for key in ["a b", "a/b", "é", "%", "?", "..", ""] {
            let path = format!("/items/{}", encode_segment(key));
            let (status, body, _) = call(&mut router, Method::GET, &path);
            assert_eq!((status, &body["params"]["id"]), (200, &json!(key)), "{path}");
        }
        // An escaped literal still matches its literal.
        let (_, body, _) = call(&mut router, Method::GET, "/st%61tus");
        assert_eq!(body["pattern"], "/status");
        let (_, body, _) = call(&mut router, Method::GET, "/items/ne%77");
        assert_eq!(body["pattern"], "/items/new");
    }

    #[test]
    fn a_segment_that_is_not_utf8_is_400() {
        let mut router = routes();
        for path in ["/items/%FF", "/files/ok/%C3", "/a/%FF/b/1"] {
            let method = if path.starts_with("/files") {
                Method::PUT
            } else if path.starts_with("/a") {
                Method::POST
            } else {
                Method::GET
            };
            let (status, body, _) = call(&mut router, method, path);
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("invalid_path")),
                "{path}"
            );
            assert!(body["details"]["fix"].is_string());
        }
        // In a literal's place it simply matches nothing.
        assert_eq!(call(&mut router, Method::GET, "/%FF").0, 404);
    }

    #[test]
    fn no_route_lists_the_patterns() {
        let mut router = routes();
        let (status, body, allow) = call(&mut router, Method::GET, "/nothing/here");
        assert_eq!(
            (status, body["error"].as_str(), allow),
            (404, Some("no_route"), None)
        );
        assert_eq!(body["details"]["path"], "/nothing/here");
        let listed: Vec<String> = serde_json::from_value(body["details"]["routes"].clone()).unwrap();
        assert_eq!(listed, router.routes());
        assert!(listed.contains(&"DELETE /items/{id}".to_owned()), "{listed:?}");
        assert_eq!(listed.len(), 9);
    }

    #[test]
    fn another_method_is_405_with_allow() {
        let mut router = routes();
        let (status, body, allow) = call(&mut router, Method::POST, "/items/3");
        assert_eq!(
            (status, body["error"].as_str()),
            (405, Some("method_not_allowed"))
        );
        assert_eq!(allow.as_deref(), Some("GET, DELETE"));
        assert_eq!(body["details"]["allowed"], json!(["GET", "DELETE"]));
        // Every pattern the path matches contributes its methods, once each.
        let (status, _, allow) = call(&mut router, Method::POST, "/items/new");
        assert_eq!((status, allow.as_deref()), (405, Some("GET, DELETE")));
        let (status, _, allow) = call(&mut router, Method::PATCH, "/files/x/meta");
        assert_eq!((status, allow.as_deref()), (405, Some("GET, PUT")));
    }

    #[test]
    fn bad_patterns_are_refused_at_registration() {
        let refused = |pattern: &str| {
            Router::builder(())
                .get(pattern, echo(&[]))
                .build()
                .expect_err(pattern)
        };
        assert!(matches!(refused("status"), RouteError::NotAbsolute { .. }));
        for partial in [
            "/a{id}",
            "/{id}x",
            "/{id",
            "/id}",
            "/{a{b}}",
            "/{*a*b}",
            "/x/{*{r}}",
        ] {
            assert!(
                matches!(refused(partial), RouteError::PartialCapture { .. }),
                "{partial}: {}",
                refused(partial)
            );
        }
        assert!(matches!(refused("/{}"), RouteError::EmptyName { .. }));
        assert!(matches!(refused("/{*}"), RouteError::EmptyName { .. }));
        assert_eq!(
            refused("/{*rest}/x"),
            RouteError::RestNotLast {
                pattern: "/{*rest}/x".into(),
                name: "rest".into()
            }
        );
        assert!(matches!(refused("/{*a}/{*b}"), RouteError::RestNotLast { .. }));
        assert!(matches!(refused("/{id}/{id}"), RouteError::DuplicateName { .. }));
        assert!(matches!(refused("/{id}/{*id}"), RouteError::DuplicateName { .. }));
        assert!(matches!(
            refused("/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}"),
            RouteError::TooManyCaptures { most: 8, .. }
        ));
        let twice = Router::builder(())
            .get("/x/{id}", echo(&[]))
            .post("/x/{id}", echo(&[]))
            .get("/x/{id}", echo(&[]))
            .build()
            .expect_err("duplicate");
        assert_eq!(
            twice,
            RouteError::Duplicate {
                method: Method::GET,
                pattern: "/x/{id}".into()
            }
        );
        let ambiguous = Router::builder(())
            .get("/x/{id}", echo(&[]))
            .delete("/x/{key}", echo(&[]))
            .build()
            .expect_err("ambiguous");
        assert!(matches!(ambiguous, RouteError::Ambiguous { .. }), "{ambiguous}");
        // `try_route` says so at once; the message names the pattern and the fix.
        let error = Router::builder(())
            .try_route(Method::GET, "/a/{*rest}/b", echo(&[]))
            .expect_err("rest not last");
        assert!(error.to_string().contains("/a/{*rest}/b") && error.to_string().contains("last"));
        assert!(Router::builder(())
            .try_route(Method::GET, "/ok/{id}", echo(&[]))
            .is_ok());
    }

    /// A state with a holder: the router hands the exclusive-holder hooks to it.
    #[derive(Default)]
    struct Held {
        holder: Option<u64>,
        closed: Vec<u64>,
    }

    impl RouteState for Held {
        fn ready(&self, request: &Request<'_>) -> bool {
            self.holder.is_none_or(|h| h == request.connection)
        }
        fn busy(&self, _: &Request<'_>) -> Response {
            Response::error(503, "held", json!({ "holder": self.holder }))
        }
        fn connection_closed(&mut self, connection: u64) {
            self.closed.push(connection);
        }
        fn holds(&self, connection: u64) -> bool {
            self.holder == Some(connection)
        }
    }

    #[test]
    fn the_state_answers_the_holder_hooks() {
        let mut router = Router::builder(Held::default())
            .post("/lock", |held: &mut Held, r: &RouteRequest<'_>| {
                held.holder = Some(r.connection);
                Ok(Response::json(200, &Value::Null))
            })
            .build()
            .unwrap();
        let lock = Method::POST;
        assert!(router.ready(&request(&lock, "/lock", b"")));
        router.handle(&request(&lock, "/lock", b""));
        let mut other = request(&lock, "/lock", b"");
        other.connection = 8;
        assert!(!router.ready(&other) && router.holds(7) && !router.holds(8));
        assert_eq!(router.busy(&other).status, 503);
        router.connection_closed(8);
        assert_eq!(router.state().closed, vec![8]);
        assert_eq!(router.next_deadline(), None);
    }

    #[test]
    fn a_result_handler_answers_its_refusal() {
        let mut router = Router::builder(())
            .post("/json", |_: &mut (), r: &RouteRequest<'_>| {
                let value = r.json()?;
                Ok(Response::json(200, &value))
            })
            .build()
            .unwrap();
        let method = Method::POST;
        let ok = router.handle(&request(&method, "/json", b"[1]"));
        assert_eq!((ok.status, &ok.body[..]), (200, &b"[1]"[..]));
        let bad = router.handle(&request(&method, "/json", b"{nope"));
        assert_eq!(bad.status, 400);
    }
}
