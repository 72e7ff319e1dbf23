//! The documents' validator (`validator.run_all`, `placeholders`, `uns`, `fields`,
//! `action`): checks of a Q0 request that never run it, each callable alone, over the
//! engine's public API. Every check answers `{"errors": [...], "warnings": [...]}`, the
//! report [`Engine::validate`] answers (D-M13).

use serde_json::{json, Map, Value};

use super::engine::{check_uns, Engine};
use super::generated::ErrorId;

/// The validator of one engine: `engine.validator().uns(&query)`.
#[derive(Debug)]
pub struct Validator<'e> {
    engine: &'e mut Engine,
}

impl Engine {
    /// The separately callable checks of the documents' validator.
    pub fn validator(&mut self) -> Validator<'_> {
        Validator { engine: self }
    }
}

fn report(errors: Vec<Value>, warnings: Vec<Value>) -> Value {
    json!({ "errors": errors, "warnings": warnings })
}

fn list(report: &Value, key: &str) -> Vec<Value> {
    report[key].as_array().cloned().unwrap_or_default()
}

impl Validator<'_> {
    /// Every check: the engine's dry run (which runs the request's checks against the
    /// store, writing nothing) plus the static placeholder check, each problem once.
    pub fn run_all(&mut self, query: &Value) -> Value {
        let run = self.engine.validate(query);
        let mut errors = list(&run, "errors");
        for problem in list(&self.placeholders(query), "errors") {
            if !errors.contains(&problem) {
                errors.push(problem);
            }
        }
        report(errors, list(&run, "warnings"))
    }

    /// Static placeholder checks: every `{"placeholder": name}` in the request names a
    /// placeholder defined in its block or an enclosing one, and no definitions refer to
    /// each other in a cycle, whether or not evaluation would reach them (the engine
    /// itself reports them only when reached, E14).
    pub fn placeholders(&self, query: &Value) -> Value {
        let mut errors = Vec::new();
        if let Some(query) = query.as_object() {
            check_block(query, "", &[], &mut errors);
        }
        report(errors, Vec::new())
    }

    /// UNS format checks on the class names the request gives (`class`, `classes`, the
    /// platters' `class`).
    pub fn uns(&self, query: &Value) -> Value {
        let mut errors = Vec::new();
        let mut check = |at: String, name: &Value| {
            match name.as_str() {
            Some(name) => {
                if let Err(why) = check_uns(name) {
                    errors.push(problem(
                        ErrorId::InvalidRequest,
                        json!({ "at": at, "class": name, "reason": format!("not a valid UNS class name: it {why}"), "fix": "class names look like example.org/crew/person" }),
                    ));
                }
            }
            None => errors.push(problem(
                ErrorId::InvalidRequest,
                json!({ "at": at, "got": name, "fix": "a class name is a string such as example.org/crew/person" }),
            )),
        }
        };
        for key in ["class", "classes"] {
            match query.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::Array(names)) => names
                    .iter()
                    .enumerate()
                    .for_each(|(i, name)| check(format!("{key}[{i}]"), name)),
                Some(Value::Object(platters)) => platters
                    .iter()
                    .filter_map(|(k, p)| Some((k, p.get("class")?)))
                    .for_each(|(k, name)| check(format!("{key}.{k}.class"), name)),
                Some(name) => check(key.to_owned(), name),
            }
        }
        report(errors, Vec::new())
    }

    /// Required fields, wrong types and unknown fields of the action's request, and the
    /// `redundant_fields` warnings (`class`+`classes`, `sort`+`sorts`).
    pub fn fields(&mut self, query: &Value) -> Value {
        let run = self.engine.validate(query);
        let about_fields = |p: &Value| {
            ["missing_fields", "unknown_fields", "wrong_types"]
                .iter()
                .any(|k| p["details"].get(*k).is_some())
                && p["details"].get("missing_fields") != Some(&json!(["action"]))
        };
        let errors = list(&run, "errors").into_iter().filter(about_fields).collect();
        let warnings = list(&run, "warnings")
            .into_iter()
            .filter(|w| w["id"] == "redundant_fields")
            .collect();
        report(errors, warnings)
    }

    /// Whether the request names an action this engine supports.
    pub fn action(&mut self, query: &Value) -> Value {
        let run = self.engine.validate(query);
        let about_action = |p: &Value| {
            p["id"] == ErrorId::ActionNotSupported.as_str()
                || p["details"].get("missing_fields") == Some(&json!(["action"]))
                || p["details"]["wrong_types"][0]["field"] == "action"
                || p["details"].get("reason") == Some(&json!("a request is a JSON object"))
        };
        report(
            list(&run, "errors").into_iter().filter(about_action).collect(),
            Vec::new(),
        )
    }
}

fn problem(id: ErrorId, details: Value) -> Value {
    json!({ "id": id.as_str(), "details": details })
}

/// Checks the placeholders of one block at `at`, with the definitions of the enclosing
/// blocks in `outer` (innermost last).
fn check_block<'a>(
    block: &'a Map<String, Value>,
    at: &str,
    outer: &[&'a Map<String, Value>],
    errors: &mut Vec<Value>,
) {
    let own = block.get("placeholders").and_then(Value::as_object);
    let mut scopes: Vec<&Map<String, Value>> = outer.to_vec();
    scopes.extend(own);
    if let Some(own) = own {
        for name in own.keys() {
            // A cycle is told once, from its smallest name.
            let cycle = cycle_from(name, &scopes).filter(|c| c.iter().all(|n| n.as_str() >= name.as_str()));
            if let Some(cycle) = cycle {
                errors.push(problem(
                    ErrorId::PlaceholderCircular,
                    json!({ "at": at, "cycle": cycle, "fix": "make one of the placeholders a value instead of a reference" }),
                ));
            }
        }
        for (name, value) in own {
            references(value, &mut |reference| {
                if !defined(reference, &scopes) {
                    errors.push(undefined(&place(at, &format!("placeholders.{name}")), reference));
                }
            });
        }
    }
    if let Some(path) = block.get("path") {
        references(path, &mut |reference| {
            if !defined(reference, &scopes) {
                errors.push(undefined(&place(at, "path"), reference));
            }
        });
    }
    if let Some(Value::Object(then)) = block.get("then") {
        check_block(then, &place(at, "then"), &scopes, errors);
    }
    for key in ["all", "any"] {
        if let Some(Value::Array(entries)) = block.get(key) {
            for (i, entry) in entries.iter().enumerate() {
                if let Value::Object(entry) = entry {
                    check_block(entry, &format!("{}[{i}]", place(at, key)), &scopes, errors);
                }
            }
        }
    }
}

fn place(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

fn undefined(at: &str, name: &str) -> Value {
    problem(
        ErrorId::PlaceholderUndefined,
        json!({ "at": at, "placeholder": name, "fix": format!("define `{name}` in `placeholders` of this block or an enclosing one") }),
    )
}

/// The name of a `{"placeholder": name}` reference.
fn reference_name(value: &Value) -> Option<&str> {
    match value.as_object() {
        Some(object) if object.len() == 1 => object.get("placeholder")?.as_str(),
        _ => None,
    }
}

/// Calls `found` with every placeholder name `value` refers to.
fn references<'v>(value: &'v Value, found: &mut impl FnMut(&'v str)) {
    if let Some(name) = reference_name(value) {
        found(name);
        return;
    }
    match value {
        Value::Array(items) => items.iter().for_each(|v| references(v, found)),
        Value::Object(map) => map.values().for_each(|v| references(v, found)),
        _ => {}
    }
}

/// The definition of `name` visible from the innermost scope.
fn lookup<'a>(name: &str, scopes: &[&'a Map<String, Value>]) -> Option<&'a Value> {
    scopes.iter().rev().find_map(|scope| scope.get(name))
}

fn defined(name: &str, scopes: &[&Map<String, Value>]) -> bool {
    lookup(name, scopes).is_some()
}

/// The cycle of references starting at `start`, if its definitions lead back to it.
fn cycle_from(start: &str, scopes: &[&Map<String, Value>]) -> Option<Vec<String>> {
    let mut path: Vec<String> = Vec::new();
    let mut frontier = vec![(start.to_owned(), 0usize)];
    // Depth-first over references, bounded by the number of definitions.
    let limit = scopes.iter().map(|s| s.len()).sum::<usize>() + 1;
    while let Some((name, depth)) = frontier.pop() {
        path.truncate(depth);
        path.push(name.clone());
        if depth >= limit {
            continue;
        }
        let mut next = Vec::new();
        if let Some(value) = lookup(&name, scopes) {
            references(value, &mut |r| next.push(r.to_owned()));
        }
        for reference in next {
            if reference == start {
                path.push(reference);
                return Some(path);
            }
            if !path[..=depth].contains(&reference) {
                frontier.push((reference, depth + 1));
            }
        }
    }
    None
}

impl Engine {
    /// [`Engine::import_schema`] from a JSON file (`{"classes": [...]}`): the envelope;
    /// a file that cannot be read or is not JSON is `invalid_request` naming it.
    pub fn import_schema_file(&mut self, path: impl AsRef<std::path::Path>) -> Value {
        let path = path.as_ref();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                return refused(
                    path,
                    &e.to_string(),
                    "check the path and that the file is readable",
                )
            }
        };
        match serde_json::from_str::<Value>(&text) {
            Ok(schema) => self.import_schema(&schema),
            Err(e) => refused(
                path,
                &e.to_string(),
                "the file must hold one JSON object {\"classes\": [...]}",
            ),
        }
    }

    /// [`Engine::export_schema`] into a JSON file, created readable by its owner alone
    /// (0600; an existing file is replaced whole, through a temporary file beside it):
    /// the envelope of the export, or `invalid_request` naming the file.
    pub fn export_schema_file(&mut self, path: impl AsRef<std::path::Path>) -> Value {
        let path = path.as_ref();
        let envelope = self.export_schema();
        if envelope["success"] != true {
            return envelope;
        }
        let text = match serde_json::to_string_pretty(&envelope["results"]) {
            Ok(text) => text + "\n",
            Err(e) => {
                return refused(
                    path,
                    &e.to_string(),
                    "report this: an exported schema always serialises",
                )
            }
        };
        match write_private(path, text.as_bytes()) {
            Ok(()) => envelope,
            Err(e) => refused(
                path,
                &e.to_string(),
                "check that the directory exists and is writable",
            ),
        }
    }
}

fn refused(path: &std::path::Path, error: &str, fix: &str) -> Value {
    let failure = super::reply::Failure::one(
        ErrorId::InvalidRequest.as_str(),
        json!({ "file": path.display().to_string(), "file_error": error, "fix": fix }),
    );
    super::support::failure_envelope(&failure)
}

/// Writes `bytes` to `path` with mode 0600: into a fresh temporary file beside it, then
/// renamed over it, so a reader never sees half a file and the mode is ours.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}
