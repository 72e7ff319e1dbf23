//! Errors and warnings as the engine answers them: `{"id", "details"}` inside the
//! envelope `{"success", "results", "errors", "warnings"}`.

use serde_json::{json, Map, Value};

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

/// The success envelope (built by moving `results`: `json!` would copy it).
pub(crate) fn success(results: Value, warnings: &[Problem]) -> Value {
    let mut envelope = Map::with_capacity(4);
    envelope.insert("success".into(), Value::Bool(true));
    envelope.insert("results".into(), results);
    envelope.insert("errors".into(), Value::Array(Vec::new()));
    if !warnings.is_empty() {
        envelope.insert(
            "warnings".into(),
            Value::Array(warnings.iter().map(Problem::to_json).collect()),
        );
    }
    Value::Object(envelope)
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

/// A value as an error message quotes it: itself when short, else the start of its JSON
/// text (a huge request is not echoed back whole).
pub(crate) fn got(value: &Value) -> Value {
    const MAX: usize = 200;
    let text = value.to_string();
    if text.len() <= MAX {
        value.clone()
    } else {
        let cut = (0..=MAX).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        Value::String(format!("{}… ({} bytes of JSON)", &text[..cut], text.len()))
    }
}

/// Whether a value nests arrays and objects deeper than `max` (counted without
/// recursion, so any depth is safe to check).
pub(crate) fn deeper_than(value: &Value, max: usize) -> bool {
    let mut stack = vec![(value, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        let containers = |c: &&Value| c.is_array() || c.is_object();
        match v {
            _ if depth > max => return true,
            Value::Array(items) => stack.extend(items.iter().filter(containers).map(|c| (c, depth + 1))),
            Value::Object(map) => stack.extend(map.values().filter(containers).map(|c| (c, depth + 1))),
            _ => {}
        }
    }
    false
}
