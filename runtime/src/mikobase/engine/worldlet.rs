//! Schemas (`{"classes": [definition, ...]}`) and worldlets (`{"format": "worldlet/1.0",
//! "records": {pk: record}}`): export, and all-or-nothing import (decision E13).

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::classes::{parse_class, CLASS_CLASS, DEFAULT_CLASS};
use super::problem::{deeper_than, got, invalid, too_deep, unknown_keys, Problem, MAX_DEPTH, PASSTHROUGH};
use super::store::Row;
use super::writes::{class_not_found, class_stack, default_stack, duplicate_class, new_pk, now};
use super::Engine;

/// Worldlet sections this engine does not store: importing them would lose them.
const UNSUPPORTED: &[&str] = &["files", "file_chunks", "history"];

/// What an imported row is called in a problem: (`record`, pk) or (`definition`, index).
type Label = (&'static str, Value);

/// Keys of a (non-definition) worldlet record.
const RECORD_KEYS: &[&str] = &["bucket", "stack", "class", "updated_at"];

impl Engine {
    /// Every active class definition: `{"classes": [definition, ...]}`.
    pub(crate) fn schema_json(&mut self) -> Result<Value, Vec<Problem>> {
        match self.store.active(Some(&[CLASS_CLASS.to_owned()]), None) {
            Ok(rows) => Ok(
                json!({ "classes": rows.into_iter().map(|r| Value::Object(r.bucket)).collect::<Vec<_>>() }),
            ),
            Err(e) => Err(vec![e]),
        }
    }

    /// Creates or replaces (by name) every class definition of `schema`
    /// (`{"classes": [...]}`), all or nothing.
    pub(crate) fn import_schema_json(&mut self, schema: &Value) -> Result<Value, Vec<Problem>> {
        let Some(classes) = schema.get("classes").and_then(Value::as_array) else {
            return Err(vec![invalid(json!({
                "got": got(schema),
                "fix": "a schema is {\"classes\": [definition, ...]}",
            }))]);
        };
        let existing: HashMap<String, String> = match self.store.active(Some(&[CLASS_CLASS.to_owned()]), None)
        {
            Ok(rows) => rows
                .into_iter()
                .filter_map(|r| Some((r.bucket.get("name")?.as_str()?.to_owned(), r.pk)))
                .collect(),
            Err(e) => return Err(vec![e]),
        };
        let mut rows = Vec::new();
        let mut problems = Vec::new();
        for (i, def) in classes.iter().enumerate() {
            let at = |p: Problem| with_detail(p, "definition", json!(i));
            match def {
                _ if deeper_than(def, MAX_DEPTH) => problems.push(at(too_deep("the definition"))),
                Value::Object(bucket) => {
                    let name = bucket.get("name").and_then(Value::as_str).unwrap_or_default();
                    let row = Row {
                        pk: existing.get(name).cloned().unwrap_or_else(new_pk),
                        bucket: definition(bucket),
                        stack: class_stack(),
                        updated_at: now(),
                        active: true,
                    };
                    rows.push((("definition", json!(i)), row));
                }
                other => problems.push(at(invalid(json!({
                    "got": got(other),
                    "fix": "a class definition is an object {\"name\": \"example.org/...\", \"fields\": {...}}",
                })))),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        self.atomically(|engine| engine.import_rows(rows).map(|n| json!({ "imported": n })))
    }

    /// The whole store as a worldlet, in the envelope's `results`: `{"format":
    /// "worldlet/1.0", "records": {pk: ...}}`.
    /// Class definitions are in whole-hash form (`{"class": "puck.uno/class", "name", ...}`).
    pub(crate) fn worldlet_json(&mut self) -> Result<Value, Vec<Problem>> {
        match self.store.all() {
            Ok(rows) => {
                let records: Map<String, Value> = rows
                    .into_iter()
                    .filter(|r| r.active)
                    .map(|r| {
                        let value = if r.classes().iter().any(|c| c == CLASS_CLASS) {
                            let mut whole = Map::new();
                            whole.insert("class".into(), json!(CLASS_CLASS));
                            whole.extend(r.bucket);
                            Value::Object(whole)
                        } else {
                            json!({ "bucket": r.bucket, "stack": r.stack, "updated_at": r.updated_at })
                        };
                        (r.pk, value)
                    })
                    .collect();
                Ok(json!({ "format": "worldlet/1.0", "records": records }))
            }
            Err(e) => Err(vec![e]),
        }
    }

    /// Imports a worldlet atomically: every record is validated (class definitions
    /// first), an existing pk is overwritten, and on any problem nothing is written.
    pub(crate) fn import_worldlet_json(&mut self, worldlet: &Value) -> Result<Value, Vec<Problem>> {
        let Some(worldlet) = worldlet.as_object() else {
            return Err(vec![invalid(json!({
                "got": got(worldlet),
                "fix": "a worldlet is an object {\"format\": \"worldlet/1.0\", \"records\": {...}}",
            }))]);
        };
        let format = worldlet.get("format").and_then(Value::as_str).unwrap_or_default();
        if !format.starts_with("worldlet/1.") {
            return Err(vec![invalid(json!({
                "format": got(worldlet.get("format").unwrap_or(&Value::Null)),
                "fix": "a worldlet has \"format\": \"worldlet/1.0\"",
            }))]);
        }
        let unsupported: Vec<&str> = UNSUPPORTED
            .iter()
            .copied()
            .filter(|k| worldlet.get(*k).is_some_and(|v| !is_empty(v)))
            .collect();
        if !unsupported.is_empty() {
            return Err(vec![invalid(json!({
                "unsupported_sections": unsupported,
                "fix": "this engine stores records only (no files, no history): import the worldlet without those sections",
            }))]);
        }
        let records = match worldlet.get("records") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(records)) => records.clone(),
            Some(other) => {
                return Err(vec![invalid(json!({
                    "records": got(other),
                    "fix": "`records` is an object keyed by pk",
                }))])
            }
        };
        let mut rows = Vec::new();
        let mut problems = Vec::new();
        for (pk, record) in &records {
            match import_row(pk, record) {
                Ok(row) => rows.push((("record", json!(pk)), row)),
                Err(e) => problems.push(with_detail(e, "record", json!(pk))),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        self.atomically(|engine| engine.import_rows(rows).map(|n| json!({ "imported": n })))
    }

    /// Writes imported rows: class definitions first (all of them, so one may inherit
    /// from one later in the import), then the records, each validated. Every problem is
    /// listed, each with its row's label (`record`: the pk, or `definition`: the index
    /// in a schema).
    fn import_rows(&mut self, rows: Vec<(Label, Row)>) -> Result<usize, Vec<Problem>> {
        let count = rows.len();
        let (defs, records): (Vec<_>, Vec<_>) = rows
            .into_iter()
            .partition(|(_, r)| r.classes().iter().any(|c| c == CLASS_CLASS));
        let labelled = |e: Problem, (key, value): &Label| with_detail(e, key, value.clone());
        let mut problems = Vec::new();
        let mut names: HashMap<String, &str> = HashMap::new();
        let replaced: Vec<&str> = defs.iter().map(|(_, r)| r.pk.as_str()).collect();
        let kept: Vec<Value> = self
            .store
            .active(Some(&[CLASS_CLASS.to_owned()]), None)
            .map_err(|e| vec![e])?
            .into_iter()
            .filter(|r| !replaced.contains(&r.pk.as_str()))
            .filter_map(|r| r.bucket.get("name").cloned())
            .collect();
        for (label, row) in &defs {
            let def = match parse_class(&row.bucket) {
                Ok(def) => def,
                Err(e) => {
                    problems.push(labelled(e, label));
                    continue;
                }
            };
            if kept.contains(&json!(def.name)) || names.insert(def.name.clone(), &row.pk).is_some() {
                problems.push(labelled(duplicate_class(&def.name), label));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        for (_, row) in &defs {
            self.store.put(row, &[]).map_err(|e| vec![e])?;
        }
        self.reload_classes().map_err(|e| vec![e])?;
        for (label, row) in &defs {
            let def = parse_class(&row.bucket).map_err(|e| vec![e])?;
            for parent in def.inherits.iter().filter(|p| !self.registry.knows(p)) {
                problems.push(labelled(class_not_found(parent), label));
            }
        }
        for (label, row) in records {
            let old = self.store.get(&row.pk).map_err(|e| vec![e])?;
            if let Err(errors) = self.write(row, old.as_ref()) {
                problems.extend(errors.into_iter().map(|e| labelled(e, &label)));
            }
        }
        if problems.is_empty() {
            Ok(count)
        } else {
            Err(problems)
        }
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn with_detail(mut problem: Problem, key: &str, value: Value) -> Problem {
    if let Value::Object(details) = &mut problem.details {
        details.insert(key.into(), value);
    }
    problem
}

/// A definition's bucket: the whole-hash form without its `class` (and storage) keys.
fn definition(whole: &Map<String, Value>) -> Map<String, Value> {
    let mut bucket = whole.clone();
    if bucket.get("class").and_then(Value::as_str) == Some(CLASS_CLASS) {
        bucket.shift_remove("class");
    }
    bucket.shift_remove("updated_at");
    bucket
}

fn timestamp(record: &Map<String, Value>) -> Result<String, Problem> {
    match record.get("updated_at") {
        None | Some(Value::Null) => Ok(now()),
        Some(Value::String(at)) => Ok(at.clone()),
        Some(other) => Err(invalid(json!({
            "updated_at": got(other),
            "fix": "`updated_at` is a timestamp string like 2026-04-21T14:32:00.123",
        }))),
    }
}

/// One worldlet record as a row: whole-hash form for class definitions,
/// `{bucket, stack, updated_at}` otherwise (or the long form `{class, bucket}`).
fn import_row(pk: &str, record: &Value) -> Result<Row, Problem> {
    if deeper_than(record, MAX_DEPTH) {
        return Err(too_deep("the record"));
    }
    let bad = |why: &str| {
        invalid(
            json!({ "reason": why, "fix": "give the record as {\"bucket\": {...}, \"stack\": {...}} or a class definition in whole-hash form" }),
        )
    };
    let record = record.as_object().ok_or_else(|| bad("a record is an object"))?;
    if record.get("class").and_then(Value::as_str) == Some(CLASS_CLASS) {
        return Ok(Row {
            pk: pk.to_owned(),
            bucket: definition(record),
            stack: class_stack(),
            updated_at: timestamp(record)?,
            active: true,
        });
    }
    let unknown = unknown_keys(record, RECORD_KEYS);
    if !unknown.is_empty() {
        return Err(invalid(json!({
            "unknown_fields": unknown,
            "allowed_fields": RECORD_KEYS.iter().chain(PASSTHROUGH).collect::<Vec<_>>(),
            "fix": "a record keeps its data in `bucket` and its classes in `stack`",
        })));
    }
    let bucket = match record.get("bucket") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(b)) => b.clone(),
        Some(_) => return Err(bad("`bucket` must be an object")),
    };
    let stack = match (record.get("stack"), record.get("class")) {
        (None | Some(Value::Null), None | Some(Value::Null)) => default_stack(DEFAULT_CLASS),
        (None | Some(Value::Null), Some(Value::String(class))) => default_stack(class),
        (Some(Value::Object(s)), None | Some(Value::Null)) => {
            if let Some((key, _)) = s.iter().find(|(_, p)| !p.is_object()) {
                return Err(bad(&format!("the platter `{key}` must be an object")));
            }
            serde_json::from_value(Value::Object(s.clone()))
                .map_err(|e| bad(&format!("a platter does not fit: {e}")))?
        }
        (Some(Value::Object(_)), Some(_)) => return Err(bad("give either `stack` or `class`, not both")),
        (Some(_), _) => return Err(bad("`stack` must be an object of platters")),
        (_, Some(_)) => return Err(bad("`class` must be a class name")),
    };
    Ok(Row {
        pk: pk.to_owned(),
        bucket,
        stack,
        updated_at: timestamp(record)?,
        active: true,
    })
}
