//! Helpers shared by the engine test files, which include this file with
//! `#[path = "engine_common.rs"] mod common;` (built alone, it has no tests).
#![allow(dead_code)]

use caspian_ipc::mikobase::engine::Engine;
use serde_json::{json, Value};

/// The results of a successful envelope.
pub fn ok(envelope: Value) -> Value {
    assert_eq!(envelope["success"], true, "expected success: {envelope}");
    envelope["results"].clone()
}

/// The first error id of a failed envelope.
pub fn error_id(envelope: &Value) -> &str {
    assert_eq!(envelope["success"], false, "expected failure: {envelope}");
    envelope["errors"][0]["id"].as_str().unwrap()
}

/// Creates a record, answering its pk.
pub fn create(db: &mut Engine, class: &str, bucket: Value) -> String {
    ok(db.q0(&json!({"action": "create", "class": class, "bucket": bucket})))["pk"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Creates a class definition (a record of class `puck.uno/class`).
pub fn define(db: &mut Engine, def: Value) -> String {
    create(db, "puck.uno/class", def)
}

/// The operators of the reference's table (§6.3), in its order.
pub const OPERATORS: &[&str] = &[
    "value",
    "contains",
    "starts-with",
    "ends-with",
    "gt",
    "lt",
    "gte",
    "lte",
    "includes",
    "includes_all",
    "includes_any",
    "exists",
    "truthy",
    "any",
];

/// The `name.surname` of each selected record (`?` when there is none).
pub fn surnames(results: &Value) -> Vec<String> {
    results["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["bucket"]["name"]["surname"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Whether `s` is a UUID v4 in its usual text form.
pub fn is_uuid_v4(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        })
        && s[14..15] == *"4"
        && "89ab".contains(&s[19..20])
}

/// Whether `s` is a timestamp `YYYY-MM-DDTHH:MM:SS.mmm` (the SQLite schema's format).
pub fn is_timestamp(s: &str) -> bool {
    s.len() == 23
        && s.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == 'T',
            13 | 16 => c == ':',
            19 => c == '.',
            _ => c.is_ascii_digit(),
        })
}

/// The error ids and warning ids of the spec's registry (`mikobase-spec/mikobase.yaml`).
pub fn registry() -> (Vec<String>, Vec<String>) {
    let spec = mikobase_spec::load_str(mikobase_spec::MIKOBASE_YAML).expect("the spec loads");
    (
        spec.errors.iter().map(|e| e.id.wire.clone()).collect(),
        spec.warnings.iter().map(|w| w.id.wire.clone()).collect(),
    )
}

/// What is wrong with `envelope` as a Q0 envelope, if anything: it must be well formed,
/// its ids all in the registry, and on failure every error's details must say what to
/// fix (a `fix` text).
pub fn envelope_problem(envelope: &Value, errors: &[String], warnings: &[String]) -> Option<String> {
    let Some(map) = envelope.as_object() else {
        return Some(format!("not an object: {envelope}"));
    };
    if let Some(key) = map
        .keys()
        .find(|k| !["success", "results", "errors", "warnings"].contains(&k.as_str()))
    {
        return Some(format!("unexpected key {key} in {envelope}"));
    }
    let list = |key: &str| {
        map.get(key).map(|v| {
            v.as_array()
                .cloned()
                .ok_or(format!("{key} is not an array: {envelope}"))
        })
    };
    let listed = |key: &str| list(key).transpose().map(Option::unwrap_or_default);
    let (errs, warns) = match (listed("errors"), listed("warnings")) {
        (Ok(e), Ok(w)) => (e, w),
        (Err(p), _) | (_, Err(p)) => return Some(p),
    };
    match map.get("success") {
        Some(Value::Bool(true)) if !map.contains_key("results") => {
            return Some(format!("success without results: {envelope}"))
        }
        Some(Value::Bool(true)) if !errs.is_empty() || list("errors").is_none() => {
            return Some(format!("success needs \"errors\": []: {envelope}"))
        }
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) if map.contains_key("results") => {
            return Some(format!("failure with results: {envelope}"))
        }
        Some(Value::Bool(false)) if errs.is_empty() => {
            return Some(format!("failure without an error: {envelope}"))
        }
        Some(Value::Bool(false)) => {}
        _ => return Some(format!("`success` is not a boolean: {envelope}")),
    }
    for e in &errs {
        let id = e["id"].as_str().unwrap_or_default();
        if !errors.iter().any(|r| r == id) {
            return Some(format!("error id {id:?} not in the registry: {envelope}"));
        }
        if e["details"]["fix"].as_str().is_none_or(str::is_empty) {
            return Some(format!("error without a fix: {e}"));
        }
    }
    for w in &warns {
        let id = w["id"].as_str().unwrap_or_default();
        if !warnings.iter().any(|r| r == id) || !w["details"].is_object() {
            return Some(format!("warning {w} not a registry warning with details"));
        }
    }
    None
}

/// Asserts [`envelope_problem`] finds nothing.
pub fn assert_envelope(envelope: &Value, errors: &[String], warnings: &[String], context: &str) {
    if let Some(problem) = envelope_problem(envelope, errors, warnings) {
        panic!("{problem} ({context})");
    }
}
