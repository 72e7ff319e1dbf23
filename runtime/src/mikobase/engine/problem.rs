//! How the engine words its problems: every id comes from the spec's generated
//! [`ErrorId`] / [`WarningId`], every problem is the one [`Problem`] of the answer
//! vocabulary, with details that say what to fix.

use serde_json::{json, Map, Value};

pub(crate) use crate::limits::deeper_than;
pub use crate::limits::MAX_REQUEST_DEPTH as MAX_DEPTH;
use crate::mikobase::generated::{ErrorId, WarningId};
pub use crate::mikobase::reply::Problem;
pub(crate) use crate::mikobase::reply::{got, PASSTHROUGH};

/// An error with its id from the spec.
pub(crate) fn error(id: ErrorId, details: Value) -> Problem {
    Problem::new(id.as_str(), details)
}

/// A warning with its id from the spec.
pub(crate) fn warning(id: WarningId, details: Value) -> Problem {
    Problem::new(id.as_str(), details)
}

/// `invalid_request` with these details.
pub(crate) fn invalid(details: Value) -> Problem {
    error(ErrorId::InvalidRequest, details)
}

/// `invalid_request` for a field whose value has the wrong type.
pub(crate) fn wrong_type(field: &str, expected: &str, value: &Value) -> Problem {
    invalid(json!({
        "wrong_types": [{"field": field, "expected": expected, "got": got(value)}],
        "fix": format!("give `{field}` as {expected}"),
    }))
}

/// `invalid_request` for data nested deeper than [`MAX_DEPTH`].
pub(crate) fn too_deep(what: &str) -> Problem {
    invalid(json!({
        "reason": format!("{what} nests arrays and objects more than {MAX_DEPTH} levels deep"),
        "max_depth": MAX_DEPTH,
        "fix": "flatten the data",
    }))
}

/// The keys of `object` that are neither in `allowed` nor pass-through keys, in order.
pub(crate) fn unknown_keys<'a>(object: &'a Map<String, Value>, allowed: &[&str]) -> Vec<&'a String> {
    object
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()) && !PASSTHROUGH.contains(&k.as_str()))
        .collect()
}
