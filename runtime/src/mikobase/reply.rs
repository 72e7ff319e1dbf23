//! What a call answers, shared by every side of the shared Mikobase: the engine that
//! implements the generated service trait, the generated dispatch table and client, and the
//! servers. One [`Problem`] type, the success [`Answer`], the [`Failure`], and the
//! [`CallContext`] a call runs under. Depends on nothing of the generated code or the
//! engine, so both may use it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

    /// The problem as JSON: `{"id", "details"}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "id": self.id, "details": self.details })
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

/// Keys every request (and every block of a select) may carry and engines ignore: the
/// ecoverse pass-through keys.
pub const PASSTHROUGH: &[&str] = &["misc", "corporate", "vibecode", "comment"];
