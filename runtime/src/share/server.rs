//! The shared hash's HTTP surface: routes → tree operations. Documented in
//! docs/PROTOCOL.md; every route is usable with `curl --unix-socket`.

use std::borrow::Cow;

use hyper::Method;
use serde_json::{json, Value};

use super::tree::{IncrRefusal, Pk, Tree, TreeError, Txn};
use super::{X_PK, X_VERSION};
use crate::uds::http::{Request, Response};
use crate::uds::monitor::{OpLog, MONITOR_PATH, STATS_PATH};
use crate::uds::router::{RouteError, RouteRequest, RouteResult, RouteState, Router};

/// The shared-hash server state, living in the server process.
#[derive(Debug)]
pub(crate) struct HashServer {
    tree: Tree,
    /// Counts requests; keeps the latest for `GET /monitor` while someone watches.
    log: OpLog,
}

/// No exclusive holders: every request is atomic on its own (a batch included). Only a
/// watcher's `/monitor` poll waits, for the next operation.
impl RouteState for HashServer {
    fn ready(&self, request: &Request<'_>) -> bool {
        !self.log.is_waiting(request)
    }

    fn busy(&self, request: &Request<'_>) -> Response {
        self.log.idle(request)
    }

    fn handled(&mut self, request: &Request<'_>, response: &Response) {
        self.log.record(request, response);
    }
}

type Answer = RouteResult;

/// The write operations addressed as `/pk/{pk}/{op}/{keys...}` with `POST`.
const POSTED: &[&str] = &["push", "incr", "cas", "set-if-absent", "set-if-version"];

impl HashServer {
    pub(crate) fn new(max_depth: usize) -> Self {
        HashServer {
            tree: Tree::new(max_depth),
            log: OpLog::new("shared-hash"),
        }
    }

    /// The routes of docs/PROTOCOL.md over a fresh tree: `/pk/{pk}/{op}/{*keys}`, one
    /// pattern per operation, so the router answers 404 and 405 (with `Allow`) itself. The
    /// pk and the op are plain ASCII segments matched in place; only the keys are decoded
    /// (one allocation per key, none for the route).
    pub(crate) fn router(max_depth: usize) -> Result<Router<HashServer>, RouteError> {
        let mut routes = Router::builder(HashServer::new(max_depth))
            .get(MONITOR_PATH, |server: &mut HashServer, r: &RouteRequest<'_>| {
                Ok(server.log.monitor(r))
            })
            .get(STATS_PATH, |server: &mut HashServer, _: &RouteRequest<'_>| {
                Ok(server.log.stats())
            });
        // `/pk/{pk}` is the node itself, as `/pk/{pk}/value` is.
        for pattern in ["/pk/{pk}", "/pk/{pk}/value/{*keys}"] {
            routes = routes
                .get(pattern, HashServer::read)
                .put(pattern, |server: &mut HashServer, r: &RouteRequest<'_>| {
                    server.write("value", r)
                })
                .delete(pattern, |server: &mut HashServer, r: &RouteRequest<'_>| {
                    server.write("value", r)
                });
        }
        // Tried in this order (after `/pk/{pk}`): the hot operations first.
        for op in POSTED {
            routes = routes.post(
                &format!("/pk/{{pk}}/{op}/{{*keys}}"),
                move |server: &mut HashServer, r: &RouteRequest<'_>| server.write(op, r),
            );
        }
        routes = routes
            .get(
                "/pk/{pk}/keys/{*keys}",
                |server: &mut HashServer, r: &RouteRequest<'_>| {
                    let keys = server.tree.keys(route_pk(r)?, r.rest()).map_err(tree_error)?;
                    Ok(Response::json(200, &json!(keys)))
                },
            )
            .get(
                "/pk/{pk}/len/{*keys}",
                |server: &mut HashServer, r: &RouteRequest<'_>| {
                    let len = server.tree.len(route_pk(r)?, r.rest()).map_err(tree_error)?;
                    Ok(Response::json(200, &json!(len)))
                },
            )
            .get(
                "/pk/{pk}/contains/{*keys}",
                |server: &mut HashServer, r: &RouteRequest<'_>| {
                    let found = server.tree.contains(route_pk(r)?, r.rest()).map_err(tree_error)?;
                    Ok(Response::json(200, &json!(found)))
                },
            )
            .post(
                "/pk/{pk}/batch/{*keys}",
                |server: &mut HashServer, r: &RouteRequest<'_>| {
                    let pk = route_pk(r)?;
                    // The common case, read straight into operations; anything it does not
                    // take (bad JSON, a bad entry, too deep) goes the slow way, which says
                    // exactly what is wrong. Nothing is applied before every entry is read.
                    if let Some(ops) = typed_batch(r.body, r.rest(), r.max_depth) {
                        return server.apply_batch(pk, ops);
                    }
                    let body = r.json()?;
                    let ops = body
                        .as_array()
                        .ok_or_else(|| invalid_body("a batch body is a JSON array of operations", &body))?;
                    server.batch(pk, r.rest(), ops)
                },
            );
        routes.build()
    }

    /// `GET /pk/{pk}/value/{keys...}` (`?shallow`: a container comes back empty).
    fn read(&mut self, request: &RouteRequest<'_>) -> Answer {
        let pk = route_pk(request)?;
        let path = request.rest();
        let shallow = request
            .query
            .is_some_and(|q| q.split('&').any(|p| p == "shallow"));
        let read = self.tree.read_with(pk, path, shallow).map_err(|e| match e {
            TreeError::NoSuchKey { path: missing } => Response::error(
                404,
                "no_such_key",
                json!({
                    "path": missing,
                    "parent_version": self.tree.version_at(pk, &path[..path.len().saturating_sub(1)]),
                    "fix": "store a value there first, or check the path",
                }),
            ),
            e => tree_error(e),
        })?;
        let mut response = Response::json(200, &read.value).with_header(X_VERSION, read.version);
        if let Some(node) = read.node {
            response = response.with_header(X_PK, node);
        }
        Ok(response)
    }

    /// One write operation `op` (its route's method says which), in its own transaction.
    fn write(&mut self, op: &str, request: &RouteRequest<'_>) -> Answer {
        let pk = route_pk(request)?;
        let body = if request.body.is_empty() && *request.method == Method::DELETE {
            Value::Null
        } else {
            request.json()?
        };
        let op = Op::from_route(request.method, op, request.rest(), body)?;
        let mut txn = self.tree.begin();
        let outcome = op.apply(pk, &mut txn).map_err(tree_error)?;
        txn.commit();
        Ok(outcome.into_response())
    }

    /// Applies every operation or none; results come back in order.
    fn batch(&mut self, pk: Pk, base: &[String], ops: &[Value]) -> Answer {
        let parsed = ops
            .iter()
            .enumerate()
            .map(|(i, op)| Op::from_batch(base, op).map_err(|e| with_index(e, i)))
            .collect::<Result<Vec<_>, _>>()?;
        self.apply_batch(pk, parsed)
    }

    /// Applies every operation of a read batch or none, in one transaction.
    fn apply_batch(&mut self, pk: Pk, parsed: Vec<Op<'_>>) -> Answer {
        let mut txn = self.tree.begin();
        let mut results = Vec::with_capacity(parsed.len());
        for (i, op) in parsed.into_iter().enumerate() {
            let outcome = op.apply(pk, &mut txn).map_err(|e| with_index(tree_error(e), i))?;
            results.push(outcome.body);
        }
        txn.commit();
        Ok(Response::json(200, &Value::Array(results)))
    }
}

/// One write operation, from a route (its path borrowed from the route's keys) or from a
/// batch entry (its path joined to the batch's).
#[derive(Debug)]
enum Op<'a> {
    Set {
        path: Cow<'a, [String]>,
        value: Value,
    },
    Delete {
        path: Cow<'a, [String]>,
    },
    Push {
        path: Cow<'a, [String]>,
        value: Value,
    },
    Incr {
        path: Cow<'a, [String]>,
        by: serde_json::Number,
    },
    Cas {
        path: Cow<'a, [String]>,
        expected: Option<Value>,
        value: Value,
    },
    SetIfAbsent {
        path: Cow<'a, [String]>,
        value: Value,
    },
    SetIfVersion {
        path: Cow<'a, [String]>,
        version: Option<u64>,
        value: Value,
    },
}

/// What an operation answers: a JSON body plus, for a stored container, its pk.
struct Outcome {
    status: u16,
    body: Value,
    pk: Option<Pk>,
}

impl Outcome {
    fn into_response(self) -> Response {
        let response = Response::json(self.status, &self.body);
        match self.pk {
            Some(pk) => response.with_header(X_PK, pk),
            None => response,
        }
    }
}

impl<'a> Op<'a> {
    fn from_route(method: &Method, op: &str, path: &'a [String], body: Value) -> Result<Op<'a>, Response> {
        let path = Cow::Borrowed(path);
        Ok(match (method.as_str(), op) {
            ("PUT", "value") => Op::Set { path, value: body },
            ("DELETE", "value") => Op::Delete { path },
            ("POST", "push") => Op::Push { path, value: body },
            ("POST", "incr") => Op::Incr {
                path,
                by: number(&body)?,
            },
            ("POST", "cas") => Op::Cas {
                path,
                expected: body.get("expected").cloned(),
                value: field(&body, "value")?,
            },
            ("POST", "set-if-absent") => Op::SetIfAbsent { path, value: body },
            ("POST", "set-if-version") => Op::SetIfVersion {
                path,
                version: version(&body)?,
                value: field(&body, "value")?,
            },
            // The router sends only the pairs above here.
            _ => {
                return Err(Response::error(
                    404,
                    "no_route",
                    json!({ "method": method.as_str(), "op": op, "fix": "use a route of docs/PROTOCOL.md" }),
                ))
            }
        })
    }

    /// A batch entry: `{"op": "set", "path": [...], "value": ...}` (paths relative to the
    /// batch's node).
    fn from_batch(base: &[String], entry: &Value) -> Result<Op<'static>, Response> {
        let name = entry
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_body("each batch entry needs a string `op`", entry))?;
        let relative: Vec<String> = match entry.get("path") {
            Some(Value::Array(keys)) => keys
                .iter()
                .map(|k| k.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| invalid_body("`path` is an array of strings", entry))?,
            None => Vec::new(),
            Some(_) => return Err(invalid_body("`path` is an array of strings", entry)),
        };
        let parsed = BatchEntry {
            op: Cow::Borrowed(name),
            path: relative,
            value: entry.get("value").cloned(),
            by: entry.get("by").cloned(),
            expected: entry.get("expected").cloned(),
        };
        parsed.into_op(base).map_err(|refusal| refusal.answer(entry))
    }

    fn apply(self, pk: Pk, txn: &mut Txn<'_>) -> Result<Outcome, TreeError> {
        let ok = |body: Value, pk: Option<Pk>| Outcome {
            status: 200,
            body,
            pk,
        };
        Ok(match self {
            Op::Set { path, value } => ok(Value::Null, txn.set(pk, &path, value)?),
            Op::Delete { path } => match txn.delete(pk, &path)? {
                Some(old) => ok(json!({ "deleted": true, "old": old }), None),
                None => ok(json!({ "deleted": false }), None),
            },
            Op::Push { path, value } => {
                let (len, node) = txn.push(pk, &path, value)?;
                ok(json!({ "len": len }), node)
            }
            Op::Incr { path, by } => ok(Value::Number(txn.incr(pk, &path, &by)?), None),
            Op::Cas {
                path,
                expected,
                value,
            } => {
                let swap = txn.compare_and_set(pk, &path, expected.as_ref(), value)?;
                let node = if swap.swapped {
                    txn.tree().read(pk, &path)?.node
                } else {
                    None
                };
                ok(json!({ "swapped": swap.swapped, "current": swap.current }), node)
            }
            Op::SetIfAbsent { path, value } => {
                let swap = txn.compare_and_set(pk, &path, None, value)?;
                let node = if swap.swapped {
                    txn.tree().read(pk, &path)?.node
                } else {
                    None
                };
                ok(json!({ "inserted": swap.swapped, "current": swap.current }), node)
            }
            Op::SetIfVersion { path, version, value } => {
                txn.set_if_version(pk, &path, version, value)?;
                ok(Value::Null, txn.tree().read(pk, &path)?.node)
            }
        })
    }
}

/// The route's `{pk}`.
fn route_pk(request: &RouteRequest<'_>) -> Result<Pk, Response> {
    parse_pk(request.param("pk").unwrap_or_default())
}

fn parse_pk(text: &str) -> Result<Pk, Response> {
    text.parse().map_err(|_| {
        Response::error(
            400,
            "invalid_pk",
            json!({ "pk": text, "fix": "a pk is a non-negative integer from an X-PK header; the root is 0" }),
        )
    })
}

fn field(body: &Value, name: &str) -> Result<Value, Response> {
    body.get(name)
        .cloned()
        .ok_or_else(|| invalid_body(&format!("missing field `{name}`"), body))
}

fn number(body: &Value) -> Result<serde_json::Number, Response> {
    match body {
        Value::Number(n) => Ok(n.clone()),
        other => Err(invalid_body("the increment must be a JSON number", other)),
    }
}

fn version(body: &Value) -> Result<Option<u64>, Response> {
    match body.get("version") {
        Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| invalid_body("`version` is a non-negative integer or null", body)),
        None => Err(invalid_body(
            "missing field `version` (null when the node did not exist)",
            body,
        )),
    }
}

fn invalid_body(reason: &str, got: &Value) -> Response {
    let mut shown = got.to_string();
    if shown.len() > 200 {
        shown.truncate(shown.floor_char_boundary(200));
        shown.push('…');
    }
    Response::error(
        400,
        "invalid_request",
        json!({ "reason": reason, "got": shown, "fix": "send the body the route takes (docs/PROTOCOL.md)" }),
    )
}

fn with_index(mut response: Response, index: usize) -> Response {
    if let Ok(mut body) = serde_json::from_slice::<Value>(&response.body) {
        body["details"]["op_index"] = json!(index);
        body["details"]["applied"] = json!(false);
        response.body = serde_json::to_vec(&body).unwrap_or_default().into();
    }
    response
}

/// Maps a tree error to its wire error (status, id, details).
fn tree_error(error: TreeError) -> Response {
    match error {
        TreeError::NoSuchPk(pk) => Response::error(
            404,
            "no_such_pk",
            json!({
                "pk": pk,
                "reason": "this node was replaced or deleted (or never existed)",
                "fix": "fetch it again from its parent",
            }),
        ),
        TreeError::NoSuchKey { path } => Response::error(
            404,
            "no_such_key",
            json!({ "path": path, "fix": "store a value there first, or check the path" }),
        ),
        TreeError::IndexOutOfRange { path, len } => Response::error(
            404,
            "index_out_of_range",
            json!({ "path": path, "len": len, "fix": "use an index below `len`" }),
        ),
        TreeError::NotAContainer { path } => Response::error(
            409,
            "not_a_container",
            json!({
                "path": path,
                "reason": "a scalar is stored here, so nothing can be stored under it",
                "fix": "replace the scalar with a hash first, or use another path",
            }),
        ),
        TreeError::NotAHash { path } => Response::error(
            409,
            "not_a_hash",
            json!({ "path": path, "fix": "this operation needs a hash stored there" }),
        ),
        TreeError::NotAnArray { path } => Response::error(
            409,
            "not_an_array",
            json!({ "path": path, "fix": "this operation needs an array stored there" }),
        ),
        TreeError::NotANumber { path, found } => Response::error(
            409,
            "not_a_number",
            json!({ "path": path, "found": found, "fix": "incr needs a number (or nothing) stored there" }),
        ),
        TreeError::Increment {
            path,
            refusal,
            stored,
            by,
        } => {
            let (id, fix) = match refusal {
                IncrRefusal::NotAnInteger => (
                    "not_an_integer",
                    "a float is stored here: add a float delta (incr_f64), or store an integer first",
                ),
                IncrRefusal::IntegerOverflow => (
                    "integer_overflow",
                    "integer incr counts in i64: keep the stored value, the delta and the sum within i64, or read-modify-write with compare_and_set",
                ),
                IncrRefusal::InexactFloat => (
                    "inexact_float",
                    "the stored integer is beyond 2^53, so a float delta would round it: add an integer delta",
                ),
                IncrRefusal::FloatOverflow => (
                    "float_overflow",
                    "the float sum would be infinite: keep it within f64",
                ),
            };
            Response::error(
                409,
                id,
                json!({ "path": path, "stored": stored, "by": by, "min": i64::MIN, "max": i64::MAX, "fix": fix }),
            )
        }
        TreeError::VersionConflict { path, current } => Response::error(
            409,
            "version_conflict",
            json!({ "path": path, "current_version": current, "fix": "read the value again and retry with its version" }),
        ),
        TreeError::TooDeep { max_depth } => Response::error(
            400,
            "too_deep",
            json!({
                "max_depth": max_depth,
                "reason": "the stored value would nest deeper than the server allows",
                "fix": "flatten the value or raise the server's nesting limit",
            }),
        ),
        TreeError::EmptyPath => Response::error(
            400,
            "empty_path",
            json!({ "reason": "this operation needs a key", "fix": "name the key: /pk/{pk}/{op}/{key}" }),
        ),
    }
}

/// A batch entry as sent, read straight from the body: no `Value` for the entry itself.
/// Unknown keys are ignored, as the slow path ignores them.
#[derive(serde::Deserialize)]
struct BatchEntry<'a> {
    #[serde(borrow)]
    op: Cow<'a, str>,
    #[serde(default)]
    path: Vec<String>,
    #[serde(default, deserialize_with = "present")]
    value: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    by: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    expected: Option<Value>,
}

/// A field that is there, `null` included (`None` only when the key is absent).
fn present<'de, D: serde::Deserializer<'de>>(value: D) -> Result<Option<Value>, D::Error> {
    serde::Deserialize::deserialize(value).map(Some)
}

/// Why a batch entry is not an operation; the slow path answers it, naming the entry.
enum EntryRefusal {
    /// `field` is missing (`value`).
    Missing(&'static str),
    /// `by` is not a number (the answer shows it).
    NotANumber(Value),
    /// No such operation.
    UnknownOp(String),
}

impl EntryRefusal {
    fn answer(self, entry: &Value) -> Response {
        match self {
            EntryRefusal::Missing(name) => invalid_body(&format!("missing field `{name}`"), entry),
            EntryRefusal::NotANumber(by) => invalid_body("the increment must be a JSON number", &by),
            EntryRefusal::UnknownOp(other) => Response::error(
                400,
                "invalid_request",
                json!({
                    "unknown_op": other,
                    "expected_one_of": ["set", "delete", "push", "incr", "cas", "set_if_absent"],
                    "fix": "use one of `expected_one_of`",
                }),
            ),
        }
    }
}

impl BatchEntry<'_> {
    /// The operation, its path joined to the batch's `base`: the one mapping of entries
    /// to operations, for the fast path and the slow one.
    fn into_op(self, base: &[String]) -> Result<Op<'static>, EntryRefusal> {
        let path = Cow::Owned(if base.is_empty() {
            self.path
        } else {
            [base, &self.path].concat()
        });
        let value = self.value.ok_or(EntryRefusal::Missing("value"));
        Ok(match self.op.as_ref() {
            "set" => Op::Set { path, value: value? },
            "delete" => Op::Delete { path },
            "push" => Op::Push { path, value: value? },
            "incr" => Op::Incr {
                path,
                by: match self.by {
                    None => serde_json::Number::from(1),
                    Some(Value::Number(n)) => n,
                    Some(other) => return Err(EntryRefusal::NotANumber(other)),
                },
            },
            "cas" => Op::Cas {
                path,
                expected: self.expected,
                value: value?,
            },
            "set_if_absent" => Op::SetIfAbsent { path, value: value? },
            other => return Err(EntryRefusal::UnknownOp(other.to_owned())),
        })
    }
}

/// The batch's operations when every entry reads as one the slow path would accept
/// the same way; `None` sends the request the slow way, for its exact error.
fn typed_batch(body: &[u8], base: &[String], max_depth: usize) -> Option<Vec<Op<'static>>> {
    let entries: Vec<BatchEntry<'_>> = serde_json::from_slice(body).ok()?;
    // The body's depth: the array, the entry object, then the value.
    let shallow = |v: &Option<Value>| match v {
        Some(v @ (Value::Array(_) | Value::Object(_))) => crate::limits::depth(v) + 2 <= max_depth,
        _ => true,
    };
    entries
        .into_iter()
        .map(|entry| {
            if !(shallow(&entry.value) && shallow(&entry.by) && shallow(&entry.expected)) {
                return None;
            }
            entry.into_op(base).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uds::http::{Handler, Peer, Request};

    fn server() -> Router<HashServer> {
        HashServer::router(16).expect("the shared hash's routes are valid")
    }

    fn call(server: &mut Router<HashServer>, method: &Method, path: &str, body: &[u8]) -> Response {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        server.handle(&Request {
            method,
            path,
            query,
            body,
            peer: Peer {
                pid: 1,
                uid: 0,
                gid: 0,
            },
            connection: 1,
            max_depth: 16,
            worker: None,
        })
    }

    /// Random requests never panic the server, and every failure is a JSON error body
    /// with a stable id.
    #[test]
    fn refused_batch_entries_name_what_is_wrong_and_apply_nothing() {
        let mut server = server();
        let refused = |server: &mut Router<HashServer>, body: &str| -> Value {
            let response = call(server, &Method::POST, "/pk/0/batch", body.as_bytes());
            assert_eq!(response.status, 400, "{body}");
            serde_json::from_slice(&response.body).unwrap()
        };
        let missing = refused(
            &mut server,
            r#"[{"op":"incr","path":["n"]},{"op":"set","path":["k"]}]"#,
        );
        assert_eq!(missing["details"]["reason"], "missing field `value`");
        assert_eq!(missing["details"]["got"], r#"{"op":"set","path":["k"]}"#);
        assert_eq!(missing["details"]["op_index"], 1);
        let by = refused(&mut server, r#"[{"op":"incr","path":["n"],"by":"2"}]"#);
        assert_eq!(by["details"]["reason"], "the increment must be a JSON number");
        assert_eq!(by["details"]["got"], r#""2""#);
        let unknown = refused(&mut server, r#"[{"op":"frobnicate","path":["n"]}]"#);
        assert_eq!(unknown["details"]["unknown_op"], "frobnicate");
        let no_op = refused(&mut server, r#"[{"path":["n"]}]"#);
        assert_eq!(no_op["details"]["reason"], "each batch entry needs a string `op`");
        let bad_path = refused(&mut server, r#"[{"op":"delete","path":"n"}]"#);
        assert_eq!(bad_path["details"]["reason"], "`path` is an array of strings");
        // None of them applied anything: the first entries' `incr` never happened.
        let read = call(&mut server, &Method::GET, "/pk/0/value/n", b"");
        assert_eq!(read.status, 404);
        let fine = call(
            &mut server,
            &Method::POST,
            "/pk/0/batch",
            br#"[{"op":"incr","path":["n"],"by":2}]"#,
        );
        assert_eq!(fine.status, 200);
        assert_eq!(serde_json::from_slice::<Value>(&fine.body).unwrap(), json!([2]));
    }

    #[test]
    fn random_requests_get_answers_never_panics() {
        let methods = [
            Method::GET,
            Method::PUT,
            Method::POST,
            Method::DELETE,
            Method::PATCH,
        ];
        let segments = [
            "pk",
            "0",
            "1",
            "2",
            "-1",
            "99999999999999999999",
            "value",
            "keys",
            "len",
            "contains",
            "push",
            "incr",
            "cas",
            "set-if-absent",
            "set-if-version",
            "batch",
            "",
            "%FF",
            "%2F",
            "a",
            "b",
            "0?shallow",
        ];
        let bodies: [&[u8]; 14] = [
            b"",
            b"1",
            b"-5",
            b"1.5",
            b"\"s\"",
            b"{}",
            b"[]",
            b"{\"a\":{\"b\":[1,2]}}",
            b"{\"expected\":1,\"value\":2}",
            b"{\"version\":null,\"value\":3}",
            b"[{\"op\":\"set\",\"path\":[\"x\"],\"value\":1},{\"op\":\"incr\",\"path\":[\"x\"]}]",
            b"[{\"op\":\"nope\"}]",
            b"{not json",
            b"[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]",
        ];
        let mut server = server();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..20_000 {
            let method = &methods[next(methods.len())];
            let mut path = String::new();
            for _ in 0..next(6) {
                path.push('/');
                path.push_str(segments[next(segments.len())]);
            }
            let body = bodies[next(bodies.len())];
            let response = call(&mut server, method, &path, body);
            let parsed: Result<Value, _> = serde_json::from_slice(&response.body);
            assert!(parsed.is_ok(), "{method} {path}: body is not JSON");
            if response.status >= 400 {
                let id = parsed.unwrap()["error"].as_str().map(str::to_owned);
                assert!(
                    id.is_some_and(|id| !id.is_empty()),
                    "{method} {path}: error without an id"
                );
            } else {
                assert!(
                    response.status == 200,
                    "{method} {path}: status {}",
                    response.status
                );
            }
        }
    }

    #[test]
    fn missing_key_reports_the_parent_version() {
        let mut server = server();
        let put = call(&mut server, &Method::PUT, "/pk/0/value/h/k", b"1");
        assert_eq!(put.status, 200);
        let missing = call(&mut server, &Method::GET, "/pk/0/value/h/other", b"");
        assert_eq!(missing.status, 404);
        let body: Value = serde_json::from_slice(&missing.body).unwrap();
        assert_eq!(body["error"], "no_such_key");
        assert_eq!(body["details"]["parent_version"], json!(1));
        let no_parent = call(&mut server, &Method::GET, "/pk/0/value/nothing/here", b"");
        let body: Value = serde_json::from_slice(&no_parent.body).unwrap();
        assert_eq!(body["details"]["parent_version"], Value::Null);
    }

    /// Decision D-H12: an integer literal beyond u64/i64 is read as the nearest f64, and
    /// an integer `incr` then refuses it instead of rounding further.
    #[test]
    fn integers_beyond_u64_are_floats_and_integer_incr_refuses_them() {
        let mut server = server();
        let put = call(
            &mut server,
            &Method::PUT,
            "/pk/0/value/n",
            b"18446744073709551616",
        );
        assert_eq!(put.status, 200);
        let read = call(&mut server, &Method::GET, "/pk/0/value/n", b"");
        let stored: Value = serde_json::from_slice(&read.body).unwrap();
        assert!(stored.is_f64(), "{stored}");
        let incr = call(&mut server, &Method::POST, "/pk/0/incr/n", b"1");
        assert_eq!(incr.status, 409);
        let body: Value = serde_json::from_slice(&incr.body).unwrap();
        assert_eq!(body["error"], "not_an_integer");
        assert!(body["details"]["fix"].is_string());
        let again = call(&mut server, &Method::GET, "/pk/0/value/n", b"");
        assert_eq!(serde_json::from_slice::<Value>(&again.body).unwrap(), stored);
    }

    #[test]
    fn routes_answer_as_before_the_router() {
        let mut server = server();
        // The empty key is a trailing slash; `/pk/{pk}` is the node, as `/pk/{pk}/value` is.
        assert_eq!(call(&mut server, &Method::PUT, "/pk/0/value/", b"1").status, 200);
        let read = call(&mut server, &Method::GET, "/pk/0/value/", b"");
        assert_eq!((read.status, &read.body[..]), (200, &b"1"[..]));
        let node = call(&mut server, &Method::GET, "/pk/0", b"");
        assert_eq!(&node.body[..], br#"{"":1}"#);
        for method in [Method::PUT, Method::DELETE] {
            let whole = call(&mut server, &method, "/pk/0", b"2").status;
            assert_eq!(whole, call(&mut server, &method, "/pk/0/value", b"2").status);
            assert_eq!(whole, 400, "{method}: empty_path");
        }
        let error = |response: Response| {
            let body: Value = serde_json::from_slice(&response.body).unwrap();
            (
                response.status,
                body["error"].as_str().unwrap_or_default().to_owned(),
            )
        };
        let cases: [(Method, &str, u16, &str); 6] = [
            (Method::GET, "/pk/0/nope", 404, "no_route"),
            (Method::GET, "/elsewhere", 404, "no_route"),
            (Method::GET, "/pk/x/keys", 400, "invalid_pk"),
            (Method::GET, "/pk/0/value/%FF", 400, "invalid_path"),
            (Method::POST, "/pk/0/incr/n", 200, ""),
            (Method::PATCH, "/pk/0/value/n", 405, "method_not_allowed"),
        ];
        for (method, path, status, id) in cases {
            assert_eq!(
                error(call(&mut server, &method, path, b"1")),
                (status, id.to_owned()),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn method_mismatch_lists_the_allowed_methods() {
        let mut server = server();
        let response = call(&mut server, &Method::POST, "/pk/0/keys", b"");
        assert_eq!(response.status, 405);
        let allow = response
            .headers
            .iter()
            .find(|(name, _)| name == "allow")
            .map(|(_, v)| v.clone());
        assert_eq!(allow.unwrap(), "GET");
    }
}
