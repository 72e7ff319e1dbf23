//! Hand-written support that the generated surface (`generated.rs`) names, so that each
//! generated method is a few lines: the generic halves of the dispatch table (reading a
//! request body, picking the Q0 action, decoding, writing the envelope) and of the client
//! (encoding a request, decoding an answer), the transport trait the client runs over,
//! and decode-error details. The answer vocabulary itself lives in `reply.rs`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::reply::got;
pub use super::reply::{Answer, CallContext, Failure, Problem, Reply, PASSTHROUGH};
use crate::limits::{deeper_than, MAX_REQUEST_DEPTH};

// The generated code names serde and serde_json through here, so a crate using
// `mikobase_api!` needs no dependency of its own on them.
#[doc(hidden)]
pub use serde;
#[doc(hidden)]
pub use serde_json;

/// A JSON object whose keys keep their order (`map<T>` in the spec): a stack's platters
/// are ordered, and so are a class's fields.
pub type OrderedMap<T> = indexmap::IndexMap<String, T>;

/// Reads a present optional field: `null` must fit `T` (only `serde_json::Value` takes it),
/// so a request never loses a `null` the engine would have refused or kept.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Takes an optional field of an open struct out of `object` when its value fits `T`; a
/// value that does not fit stays in `object`, unchanged, for the engine to judge.
pub fn take<T: serde::de::DeserializeOwned>(
    object: &mut serde_json::Map<String, Value>,
    key: &str,
) -> Option<T> {
    let parsed = T::deserialize(object.get(key)?).ok()?;
    object.remove(key);
    Some(parsed)
}

/// Takes a required field of an open struct out of `object`.
pub fn require<T: serde::de::DeserializeOwned, E: serde::de::Error>(
    object: &mut serde_json::Map<String, Value>,
    key: &'static str,
) -> Result<T, E> {
    let value = object.remove(key).ok_or_else(|| E::missing_field(key))?;
    T::deserialize(value).map_err(|e| E::custom(format!("field `{key}`: {e}")))
}

/// Carries one request to a Mikobase and its answer back: over HTTP on a Unix socket
/// (`UdsTransport`), or in-process (`InProcess`).
pub trait Transport {
    /// POSTs `body` to `route`; returns the HTTP status and the body of the answer.
    fn post(&self, route: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>), crate::Error>;

    /// Ties the transport's connection to an open transaction (`true`) or releases one
    /// tie (`false`): a transport whose server ties transactions to connections must
    /// then refuse to carry a call on a new connection (`Error::TransactionLost`). The
    /// default does nothing (in-process, there is no connection to lose).
    fn hold_connection(&self, hold: bool) {
        let _ = hold;
    }
}

/// Why a typed client call failed.
///
/// ```
/// use caspian_ipc::mikobase::{engine::Engine, ClientError, InProcess, MikobaseClient, RecordByPkRequest};
///
/// let db = MikobaseClient::new(InProcess::new(Engine::memory())); // or a worker's `Db`
/// match db.record_by_pk(&RecordByPkRequest { pk: "no-such-pk".into() }) {
///     // The Mikobase answered with errors: stable ids, and details saying what to fix.
///     Err(ClientError::Failed(failure)) => {
///         assert_eq!(failure.id(), "record_not_found");
///         println!("{}", failure.errors[0].details);
///     }
///     // No answer at all (over a socket: the server is gone, a timeout, ...).
///     Err(ClientError::Transport(error)) => eprintln!("no answer: {error}"),
///     Err(ClientError::Decode(reason)) => eprintln!("not the documented envelope: {reason}"),
///     Err(ClientError::Encode(reason)) => eprintln!("the request could not be written: {reason}"),
///     Ok(answer) => println!("found {}", answer.results.pk),
/// }
/// // Or just the id:
/// let error = db.record_by_pk(&RecordByPkRequest { pk: "no-such-pk".into() }).unwrap_err();
/// assert_eq!(error.id(), Some("record_not_found"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request never got an answer (server gone, timeout, ...).
    #[error(transparent)]
    Transport(#[from] crate::Error),
    /// The Mikobase answered with errors.
    #[error("mikobase refused: {0}")]
    Failed(Failure),
    /// The answer was not the documented envelope.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// The request could not be written as the JSON object the wire carries (nothing
    /// was sent).
    #[error("cannot encode the request: {0}")]
    Encode(String),
}

impl ClientError {
    /// The first error id when the Mikobase refused.
    pub fn id(&self) -> Option<&str> {
        match self {
            ClientError::Failed(f) => Some(f.id()),
            _ => None,
        }
    }
}

/// The envelope of a reply, as the bytes of the answer's body: the results are written
/// straight from their type (no intermediate JSON value on the hot path).
pub fn envelope_bytes<T: Serialize>(reply: &Reply<T>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Success<'a, T> {
        success: bool,
        results: &'a T,
        errors: [(); 0],
        #[serde(skip_serializing_if = "<[Problem]>::is_empty")]
        warnings: &'a [Problem],
    }
    let answer = match reply {
        Ok(answer) => answer,
        Err(failure) => return failure_bytes(failure),
    };
    let written = serde_json::to_vec(&Success {
        success: true,
        results: &answer.results,
        errors: [],
        warnings: &answer.warnings,
    });
    written.unwrap_or_else(|e| {
        failure_bytes(&Failure::one(
            "invalid_request",
            json!({ "internal": format!("the answer could not be written: {e}") }),
        ))
    })
}

/// The envelope for a failure, as a JSON value (for servers that answer one themselves).
pub fn failure_envelope(failure: &Failure) -> Value {
    let mut e = json!({ "success": false, "errors": failure.errors });
    if !failure.warnings.is_empty() {
        e["warnings"] = json!(failure.warnings);
    }
    e
}

/// Decodes a request body into its typed request. A body that does not fit is
/// `invalid_request` naming the field that is missing, unknown or mistyped by its path
/// from the body's root (`limit`, `then.all[0].not`, `sort[1]`).
pub fn decode<T: serde::de::DeserializeOwned>(body: serde_json::Map<String, Value>) -> Result<T, Failure> {
    serde_path_to_error::deserialize(Value::Object(body)).map_err(|error| {
        let at = match error.path().to_string() {
            root if root == "." => String::new(),
            path => path,
        };
        decode_failure(&at, error.inner())
    })
}

/// `invalid_request` details for a serde decode error at `at` (empty: the body itself).
fn decode_failure(at: &str, error: &serde_json::Error) -> Failure {
    let text = error.to_string();
    let quoted = |prefix: &str| {
        text.strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    let reason = text.split(" at line").next().unwrap_or(&text).to_owned();
    // The path of a missing field ends at the object that lacks it; the path of an
    // unknown one ends at the field itself.
    let details = if let Some(field) = quoted("missing field `") {
        let path = if at.is_empty() {
            field
        } else {
            format!("{at}.{field}")
        };
        json!({ "missing_fields": [path], "fix": "add the missing field" })
    } else if let Some(field) = quoted("unknown field `") {
        let expected = text
            .split_once("expected ")
            .map(|(_, e)| e.split(" at line").next().unwrap_or(e).to_owned());
        let path = if at.is_empty() { field } else { at.to_owned() };
        json!({ "unknown_fields": [path], "expected": expected, "fix": "remove the unknown field or correct its spelling" })
    } else {
        json!({ "wrong_types": [{ "field": at, "reason": reason }], "fix": "give the field a value of the documented type (docs/openapi.json)" })
    };
    Failure::one("invalid_request", details)
}

/// Removes the pass-through keys from a request (the engine ignores them).
pub fn strip_passthrough(request: &mut serde_json::Map<String, Value>) {
    for key in PASSTHROUGH {
        request.remove(*key);
    }
}

/// The body of a typed request: its fields as one JSON object, plus `"action"` for a Q0
/// action. What every generated client method sends.
pub fn encode_request<R: Serialize>(request: &R, action: Option<&str>) -> Result<Vec<u8>, ClientError> {
    let mut body = match serde_json::to_value(request) {
        Ok(Value::Object(map)) => map,
        Ok(other) => {
            return Err(ClientError::Encode(format!(
                "a request is a JSON object, not `{other}`"
            )))
        }
        Err(e) => return Err(ClientError::Encode(e.to_string())),
    };
    if let Some(action) = action {
        body.insert("action".into(), Value::String(action.into()));
    }
    serde_json::to_vec(&body).map_err(|e| ClientError::Encode(e.to_string()))
}

/// A raw Q0 answer: the whole envelope when it succeeded, [`ClientError::Failed`] with its
/// errors and warnings when it did not, so `db.q0(..)?` cannot pass over a refusal.
pub fn decode_raw(body: &[u8]) -> Result<Value, ClientError> {
    let envelope: Value = serde_json::from_slice(body).map_err(|e| ClientError::Decode(e.to_string()))?;
    match envelope.get("success") {
        Some(Value::Bool(true)) => Ok(envelope),
        Some(Value::Bool(false)) => {
            let problems = |key: &str| -> Result<Vec<Problem>, ClientError> {
                match envelope.get(key) {
                    None | Some(Value::Null) => Ok(Vec::new()),
                    Some(list) => serde_json::from_value(list.clone())
                        .map_err(|e| ClientError::Decode(format!("`{key}` of a failed answer: {e}"))),
                }
            };
            Err(ClientError::Failed(Failure {
                errors: problems("errors")?,
                warnings: problems("warnings")?,
            }))
        }
        _ => Err(ClientError::Decode(format!(
            "an answer without a boolean `success`: {envelope}"
        ))),
    }
}

/// Decodes an answer body into a typed reply.
pub fn decode_reply<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Answer<T>, ClientError> {
    // One pass: the results are read straight into their type.
    #[derive(Deserialize)]
    #[serde(bound = "T: serde::de::DeserializeOwned")]
    struct Envelope<T> {
        success: bool,
        #[serde(default = "Option::default")]
        results: Option<T>,
        #[serde(default)]
        errors: Vec<Problem>,
        #[serde(default)]
        warnings: Vec<Problem>,
    }
    let envelope: Envelope<T> =
        serde_json::from_slice(body).map_err(|e| ClientError::Decode(e.to_string()))?;
    if !envelope.success {
        return Err(ClientError::Failed(Failure {
            errors: envelope.errors,
            warnings: envelope.warnings,
        }));
    }
    let results = match envelope.results {
        Some(results) => results,
        None => serde_json::from_value(Value::Null).map_err(|e| ClientError::Decode(e.to_string()))?,
    };
    Ok(Answer {
        results,
        warnings: envelope.warnings,
    })
}

// ---- the dispatch table's generic half ------------------------------------------------

/// The error ids the generic dispatch answers with, and every id's HTTP status: the
/// generated `ErrorId` implements it from the spec (which must define these ids).
pub trait DispatchErrors: Copy + 'static {
    /// `invalid_request`: a body that is not the operation's request.
    const INVALID_REQUEST: Self;
    /// `request-too-large`: a body over the limit.
    const REQUEST_TOO_LARGE: Self;
    /// `action-not-supported` (a spec with Q0 actions defines it; else `invalid_request`).
    const ACTION_NOT_SUPPORTED: Self;
    /// The id as the wire spells it.
    fn wire(self) -> &'static str;
    /// The HTTP status of an id the wire spells so (500 for an id the spec lacks).
    fn status_of(id: &str) -> u16;
}

/// An HTTP status and the envelope's bytes: what the dispatch table answers.
pub type Answered = (u16, Vec<u8>);

/// The answer to a failed call.
pub fn refusal<E: DispatchErrors>(failure: &Failure) -> Answered {
    (E::status_of(failure.id()), failure_bytes(failure))
}

fn failure_bytes(failure: &Failure) -> Vec<u8> {
    #[derive(Serialize)]
    struct Refusal<'a> {
        success: bool,
        errors: &'a [Problem],
        #[serde(skip_serializing_if = "<[Problem]>::is_empty")]
        warnings: &'a [Problem],
    }
    let refusal = Refusal {
        success: false,
        errors: &failure.errors,
        warnings: &failure.warnings,
    };
    // Problems are ids and JSON values: they always serialise.
    serde_json::to_vec(&refusal).unwrap_or_else(|_| br#"{"success":false,"errors":[]}"#.to_vec())
}

/// The answer to a call: 200 and the results, or the first error's status and the errors.
pub fn answer<E: DispatchErrors, T: Serialize>(reply: &Reply<T>) -> Answered {
    match reply {
        Ok(_) => (200, envelope_bytes(reply)),
        Err(failure) => refusal::<E>(failure),
    }
}

fn refuse<E: DispatchErrors>(id: E, details: Value) -> Answered {
    refusal::<E>(&Failure::one(id.wire(), details))
}

/// The answer to a route no operation has: 404 with the routes there are.
pub fn unknown_route<E: DispatchErrors>(route: &str, routes: &[&str]) -> Answered {
    let failure = Failure::one(
        E::INVALID_REQUEST.wire(),
        json!({ "unknown_route": route, "routes": routes, "fix": "POST to one of the routes" }),
    );
    (404, failure_bytes(&failure))
}

/// The answer to a Q0 action no operation has.
pub fn unsupported_action<E: DispatchErrors>(action: &str, actions: &[&str]) -> Answered {
    refuse(
        E::ACTION_NOT_SUPPORTED,
        json!({ "action": action, "supported": actions, "fix": "use one of the supported actions" }),
    )
}

/// The request object of a call, checked as every operation needs it: the body within
/// `limit` bytes, one JSON object (an empty body is `{}`) nested at most
/// [`MAX_REQUEST_DEPTH`] deep; pass-through keys removed.
pub fn request_object<E: DispatchErrors>(body: &[u8], limit: usize) -> Result<Map<String, Value>, Answered> {
    if body.len() > limit {
        return Err(refuse(
            E::REQUEST_TOO_LARGE,
            json!({
                "limit_bytes": limit,
                "got_bytes": body.len(),
                "fix": "send a smaller request (split a large import into several)",
            }),
        ));
    }
    if body.is_empty() {
        return Ok(Map::new());
    }
    let parsed: Value = serde_json::from_slice(body).map_err(|e| {
        refuse(
            E::INVALID_REQUEST,
            json!({ "json": e.to_string(), "line": e.line(), "column": e.column(), "fix": "send one JSON object" }),
        )
    })?;
    if deeper_than(&parsed, MAX_REQUEST_DEPTH) {
        return Err(refuse(
            E::INVALID_REQUEST,
            json!({
                "reason": format!("the request nests arrays and objects more than {MAX_REQUEST_DEPTH} levels deep"),
                "max_depth": MAX_REQUEST_DEPTH,
                "fix": "flatten the data",
            }),
        ));
    }
    match parsed {
        Value::Object(mut object) => {
            strip_passthrough(&mut object);
            Ok(object)
        }
        other => Err(refuse(
            E::INVALID_REQUEST,
            json!({
                "reason": "a request is a JSON object",
                "got": got(&other),
                "fix": "send {\"action\": \"select\", ...} to /q0, or the operation's fields to its route",
            }),
        )),
    }
}

/// Takes the Q0 `action` out of a request object (a string; `actions` are named in the
/// refusal when it is missing or mistyped).
pub fn take_action<E: DispatchErrors>(
    object: &mut Map<String, Value>,
    actions: &[&str],
) -> Result<String, Answered> {
    match object.remove("action") {
        None => Err(refuse(
            E::INVALID_REQUEST,
            json!({ "missing_fields": ["action"], "fix": format!("add \"action\": one of {}", actions.join(", ")) }),
        )),
        Some(Value::String(action)) => Ok(action),
        Some(other) => Err(refuse(
            E::INVALID_REQUEST,
            json!({
                "wrong_types": [{ "field": "action", "expected": "a string", "got": got(&other) }],
                "fix": format!("give `action` as one of {}", actions.join(", ")),
            }),
        )),
    }
}

/// Decodes the request object into `R`, runs the operation and answers its reply.
pub fn call<E: DispatchErrors, R: serde::de::DeserializeOwned, T: Serialize>(
    object: Map<String, Value>,
    run: impl FnOnce(R) -> Reply<T>,
) -> Answered {
    match decode::<R>(object) {
        Ok(request) => answer::<E, T>(&run(request)),
        Err(failure) => refusal::<E>(&failure),
    }
}
