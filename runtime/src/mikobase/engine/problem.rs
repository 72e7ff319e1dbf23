//! Errors and warnings as the engine answers them: `{"id", "details"}` inside the
//! envelope `{"success", "results", "errors", "warnings"}`.

use serde_json::{json, Value};

/// One error or warning.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The stable id, exactly as documented (`record_not_found`, `class-not-found`, ...).
    pub id: &'static str,
    /// What went wrong and what to fix.
    pub details: Value,
}

impl Problem {
    pub(crate) fn new(id: &'static str, details: Value) -> Self {
        Problem { id, details }
    }

    /// The problem as JSON.
    pub fn to_json(&self) -> Value {
        json!({ "id": self.id, "details": self.details })
    }

    pub(crate) fn invalid(details: Value) -> Self {
        Problem::new("invalid_request", details)
    }
}

/// The success envelope.
pub(crate) fn success(results: Value, warnings: &[Problem]) -> Value {
    let mut envelope = json!({ "success": true, "results": results, "errors": [] });
    if !warnings.is_empty() {
        envelope["warnings"] = Value::Array(warnings.iter().map(Problem::to_json).collect());
    }
    envelope
}

/// The failure envelope.
pub(crate) fn failure(errors: &[Problem], warnings: &[Problem]) -> Value {
    let mut envelope = json!({
        "success": false,
        "errors": errors.iter().map(Problem::to_json).collect::<Vec<_>>(),
    });
    if !warnings.is_empty() {
        envelope["warnings"] = Value::Array(warnings.iter().map(Problem::to_json).collect());
    }
    envelope
}
