//! Hand-written support that the generated surface (`generated.rs`) names: the envelope
//! types, the transport trait the client proxy runs over, and decode-error details.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

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

/// One error or warning: `{"id", "details"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// The stable id (see the generated `ErrorId`).
    pub id: String,
    /// What went wrong and what to fix.
    #[serde(default)]
    pub details: Value,
}

impl Problem {
    /// A problem with an id and details.
    pub fn new(id: impl Into<String>, details: Value) -> Self {
        Problem {
            id: id.into(),
            details,
        }
    }
}

/// A successful answer: the results plus any warnings.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    /// What the operation returned.
    pub results: T,
    /// Non-fatal remarks (`redundant_fields`, ...).
    pub warnings: Vec<Problem>,
}

/// A failed answer: every error, plus any warnings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", describe(errors))]
pub struct Failure {
    /// The errors, first one decisive for the HTTP status.
    pub errors: Vec<Problem>,
    /// Warnings gathered before failing.
    pub warnings: Vec<Problem>,
}

fn describe(errors: &[Problem]) -> String {
    errors
        .iter()
        .map(|p| format!("`{}` {}", p.id, p.details))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Failure {
    /// A failure with one error.
    pub fn one(id: impl Into<String>, details: Value) -> Self {
        Failure {
            errors: vec![Problem::new(id, details)],
            warnings: Vec::new(),
        }
    }

    /// The first error's id.
    pub fn id(&self) -> &str {
        self.errors.first().map_or("", |p| p.id.as_str())
    }
}

/// What a service method returns.
pub type Reply<T> = Result<Answer<T>, Failure>;

/// Who is calling: the connection (worker) a request came on. Transactions belong to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallContext {
    /// The caller's connection id (0 in-process).
    pub owner: u64,
}

/// Carries one request to a Mikobase and its answer back: over HTTP on a Unix socket
/// (`UdsTransport`), or in-process (`InProcess`).
pub trait Transport {
    /// POSTs `body` to `route`; returns the HTTP status and the body of the answer.
    fn post(&self, route: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>), crate::Error>;
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
    let written = match reply {
        Ok(answer) => serde_json::to_vec(&Success {
            success: true,
            results: &answer.results,
            errors: [],
            warnings: &answer.warnings,
        }),
        Err(failure) => serde_json::to_vec(&failure_envelope(failure)),
    };
    written.unwrap_or_else(|e| {
        let failure = Failure::one(
            "invalid_request",
            json!({ "internal": format!("the answer could not be written: {e}") }),
        );
        serde_json::to_vec(&failure_envelope(&failure)).unwrap_or_default()
    })
}

/// The envelope for a failure.
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
        json!({ "missing_fields": [path] })
    } else if let Some(field) = quoted("unknown field `") {
        let expected = text
            .split_once("expected ")
            .map(|(_, e)| e.split(" at line").next().unwrap_or(e).to_owned());
        let path = if at.is_empty() { field } else { at.to_owned() };
        json!({ "unknown_fields": [path], "expected": expected })
    } else {
        json!({ "wrong_types": [{ "field": at, "reason": reason }] })
    };
    Failure::one("invalid_request", details)
}

/// Keys every request (and every block of a select) may carry and engines ignore: the
/// ecoverse pass-through keys.
pub const PASSTHROUGH: &[&str] = &["misc", "corporate", "vibecode", "comment"];

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
