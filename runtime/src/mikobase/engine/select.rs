//! Evaluating select conditions (`path`, `then`, `all`, `any`, `not`, placeholders) and
//! sort keys against a record's bucket. Placeholders resolve lazily: an undefined or
//! circular one is an error only when evaluation reaches it.

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use super::problem::Problem;

/// Placeholder definitions visible at one point: a block's own, then its parents'.
pub(crate) struct Scope<'a> {
    vars: Option<&'a Map<String, Value>>,
    parent: Option<&'a Scope<'a>>,
}

impl<'a> Scope<'a> {
    pub fn root() -> Scope<'static> {
        Scope {
            vars: None,
            parent: None,
        }
    }

    fn child(&'a self, vars: Option<&'a Map<String, Value>>) -> Scope<'a> {
        Scope {
            vars,
            parent: Some(self),
        }
    }

    fn lookup(&self, name: &str) -> Option<(&Value, &Scope<'a>)> {
        match self.vars.and_then(|v| v.get(name)) {
            Some(value) => Some((value, self)),
            None => self.parent.and_then(|p| p.lookup(name)),
        }
    }
}

fn placeholder_name(value: &Value) -> Option<&str> {
    match value {
        Value::Object(map) if map.len() == 1 => map.get("placeholder").and_then(Value::as_str),
        _ => None,
    }
}

/// Replaces every `{"placeholder": name}` in `value`, following chains; cycles and
/// undefined names are errors.
pub(crate) fn resolve(
    value: &Value,
    scope: &Scope<'_>,
    resolving: &mut Vec<String>,
) -> Result<Value, Problem> {
    if let Some(name) = placeholder_name(value) {
        if resolving.iter().any(|n| n == name) {
            let mut cycle = resolving.clone();
            cycle.push(name.to_owned());
            return Err(Problem::new("placeholder-circular", json!({ "cycle": cycle })));
        }
        let Some((found, _)) = scope.lookup(name) else {
            return Err(Problem::new(
                "placeholder-undefined",
                json!({ "placeholder": name, "fix": "define it in `placeholders` at the top level or in an enclosing `then`" }),
            ));
        };
        resolving.push(name.to_owned());
        let resolved = resolve(found, scope, resolving);
        resolving.pop();
        return resolved;
    }
    Ok(match value {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve(v, scope, resolving))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), resolve(v, scope, resolving)?)))
                .collect::<Result<_, Problem>>()?,
        ),
        other => other.clone(),
    })
}

fn invalid(what: &str, got: &Value) -> Problem {
    Problem::invalid(json!({ "wrong_types": [{ "field": what, "got": got }] }))
}

/// Whether the bucket satisfies a condition block (the select request itself, or an
/// entry of `then` / `all` / `any`).
pub(crate) fn matches(
    block: &Map<String, Value>,
    bucket: &Map<String, Value>,
    scope: &Scope<'_>,
) -> Result<bool, Problem> {
    let vars = match block.get("placeholders") {
        None => None,
        Some(Value::Object(vars)) => Some(vars),
        Some(other) => return Err(invalid("placeholders", other)),
    };
    let scope = scope.child(vars);
    let mut ok = match block.get("path") {
        Some(path) => path_matches(path, bucket, &scope)?,
        None => true,
    };
    if ok {
        if let Some(then) = block.get("then") {
            let then = then.as_object().ok_or_else(|| invalid("then", then))?;
            ok = matches(then, bucket, &scope)?;
        }
    }
    if ok {
        if let Some(all) = block.get("all") {
            for entry in all.as_array().ok_or_else(|| invalid("all", all))? {
                let entry = entry.as_object().ok_or_else(|| invalid("all[]", entry))?;
                if !matches(entry, bucket, &scope)? {
                    ok = false;
                    break;
                }
            }
        }
    }
    if ok {
        if let Some(any) = block.get("any") {
            let mut found = false;
            for entry in any.as_array().ok_or_else(|| invalid("any", any))? {
                let entry = entry.as_object().ok_or_else(|| invalid("any[]", entry))?;
                if matches(entry, bucket, &scope)? {
                    found = true;
                    break;
                }
            }
            ok = found;
        }
    }
    match block.get("not") {
        None | Some(Value::Bool(false)) => Ok(ok),
        Some(Value::Bool(true)) => Ok(!ok),
        Some(other) => Err(invalid("not", other)),
    }
}

/// Walks the keys of a path (all but the last element) into the bucket.
fn walk<'v>(bucket: &'v Map<String, Value>, keys: &[String]) -> Option<&'v Value> {
    let mut map = bucket;
    let (last, inner) = keys.split_last()?;
    for key in inner {
        map = map.get(key)?.as_object()?;
    }
    map.get(last)
}

fn path_keys(elements: &[Value], scope: &Scope<'_>) -> Result<Vec<String>, Problem> {
    elements
        .iter()
        .map(|e| match resolve(e, scope, &mut Vec::new())? {
            Value::String(s) => Ok(s),
            other => Err(Problem::invalid(
                json!({ "path": "every element but the last is a bucket key (a string)", "got": other }),
            )),
        })
        .collect()
}

fn path_matches(path: &Value, bucket: &Map<String, Value>, scope: &Scope<'_>) -> Result<bool, Problem> {
    let elements = match path.as_array() {
        Some(e) if e.len() >= 2 => e,
        _ => {
            return Err(Problem::invalid(json!({
                "path": "a path is an array: one or more keys, then a literal or an operator object",
                "got": path,
            })))
        }
    };
    let (test, keys) = elements.split_last().expect("at least two elements");
    let keys = path_keys(keys, scope)?;
    let found = walk(bucket, &keys);
    match resolve(test, scope, &mut Vec::new())? {
        Value::Object(ops) => operators(&ops, found),
        literal => Ok(found.is_some_and(|v| json_eq(v, &literal))),
    }
}

/// JSON equality with numbers compared by value (1 == 1.0).
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

fn normalise(s: &str, case_sensitive: bool, collapse: bool) -> String {
    let s = if collapse {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        s.to_owned()
    };
    if case_sensitive {
        s
    } else {
        s.to_lowercase()
    }
}

/// Truthiness (decision E9): null, false, 0 and "" are falsy; everything else is truthy.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => false,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

const OPERATORS: &[&str] = &[
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
const QUALIFIERS: &[&str] = &["case-sensitive", "collapse"];

/// An operator object: every operator in it must hold (decision E8).
fn operators(ops: &Map<String, Value>, found: Option<&Value>) -> Result<bool, Problem> {
    let unknown: Vec<&String> = ops
        .keys()
        .filter(|k| !OPERATORS.contains(&k.as_str()) && !QUALIFIERS.contains(&k.as_str()))
        .collect();
    if !unknown.is_empty() || !ops.keys().any(|k| OPERATORS.contains(&k.as_str())) {
        return Err(Problem::invalid(json!({
            "unknown_operators": unknown,
            "fix": "an operator object holds at least one of the operators; compare with an object literal through {\"value\": {...}}",
            "operators": OPERATORS,
        })));
    }
    let flag = |name: &str, default: bool| -> Result<bool, Problem> {
        match ops.get(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(invalid(name, other)),
        }
    };
    let case_sensitive = flag("case-sensitive", true)?;
    let collapse = flag("collapse", false)?;
    let text = |v: &Value| v.as_str().map(|s| normalise(s, case_sensitive, collapse));
    for (op, arg) in ops.iter().filter(|(k, _)| OPERATORS.contains(&k.as_str())) {
        let holds = match op.as_str() {
            "value" => match (found, text(arg)) {
                (Some(Value::String(s)), Some(want)) => normalise(s, case_sensitive, collapse) == want,
                (Some(v), _) => json_eq(v, arg),
                (None, _) => false,
            },
            "contains" | "starts-with" | "ends-with" => {
                let want = text(arg).ok_or_else(|| invalid(op, arg))?;
                match found
                    .and_then(|v| v.as_str())
                    .map(|s| normalise(s, case_sensitive, collapse))
                {
                    Some(s) => match op.as_str() {
                        "contains" => s.contains(&want),
                        "starts-with" => s.starts_with(&want),
                        _ => s.ends_with(&want),
                    },
                    None => false,
                }
            }
            "gt" | "lt" | "gte" | "lte" => {
                let ordering = match (found, arg) {
                    (Some(Value::Number(a)), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
                    (Some(Value::String(a)), Value::String(b)) => Some(a.cmp(b)),
                    (_, Value::Number(_) | Value::String(_)) => None,
                    _ => return Err(invalid(op, arg)),
                };
                ordering.is_some_and(|o| match op.as_str() {
                    "gt" => o == Ordering::Greater,
                    "lt" => o == Ordering::Less,
                    "gte" => o != Ordering::Less,
                    _ => o != Ordering::Greater,
                })
            }
            "includes" => found
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| json_eq(x, arg))),
            "includes_all" | "includes_any" => {
                let wanted = arg.as_array().ok_or_else(|| invalid(op, arg))?;
                match found.and_then(Value::as_array) {
                    Some(items) => {
                        let has = |w: &Value| items.iter().any(|x| json_eq(x, w));
                        if op == "includes_all" {
                            wanted.iter().all(has)
                        } else {
                            wanted.iter().any(has)
                        }
                    }
                    None => false,
                }
            }
            "exists" => {
                let present = found.is_some_and(|v| !v.is_null());
                present == arg.as_bool().ok_or_else(|| invalid(op, arg))?
            }
            "truthy" => found.is_some_and(truthy) == arg.as_bool().ok_or_else(|| invalid(op, arg))?,
            "any" => found.is_some() || !arg.as_bool().ok_or_else(|| invalid(op, arg))?,
            _ => unreachable!("filtered to OPERATORS"),
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A parsed sort path: keys plus qualifiers.
#[derive(Debug, Clone)]
pub(crate) struct SortKey {
    keys: Vec<String>,
    reverse: bool,
    case_sensitive: bool,
    collapse: bool,
}

/// Parses `["a", "b", {"reverse": true}]`.
pub(crate) fn sort_key(path: &Value) -> Result<SortKey, Problem> {
    let bad = || {
        Problem::invalid(json!({
            "sort": "a sort path is an array of bucket keys, optionally ending with {\"reverse\", \"case-sensitive\", \"collapse\"}",
            "got": path,
        }))
    };
    let elements = path.as_array().filter(|e| !e.is_empty()).ok_or_else(bad)?;
    let (qualifiers, keys) = match elements.split_last() {
        Some((Value::Object(q), keys)) => (Some(q), keys),
        _ => (None, &elements[..]),
    };
    if keys.is_empty() {
        return Err(bad());
    }
    let keys = keys
        .iter()
        .map(|k| k.as_str().map(str::to_owned).ok_or_else(bad))
        .collect::<Result<Vec<_>, _>>()?;
    let mut key = SortKey {
        keys,
        reverse: false,
        case_sensitive: true,
        collapse: false,
    };
    for (name, value) in qualifiers.into_iter().flatten() {
        let b = value.as_bool().ok_or_else(bad)?;
        match name.as_str() {
            "reverse" => key.reverse = b,
            "case-sensitive" => key.case_sensitive = b,
            "collapse" => key.collapse = b,
            _ => return Err(bad()),
        }
    }
    Ok(key)
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) => 3,
        Value::Object(_) => 4,
        Value::Null => 5,
    }
}

/// Orders two buckets by the sort keys; nulls and missing values always last.
pub(crate) fn compare(a: &Map<String, Value>, b: &Map<String, Value>, keys: &[SortKey]) -> Ordering {
    for key in keys {
        let x = walk(a, &key.keys).filter(|v| !v.is_null());
        let y = walk(b, &key.keys).filter(|v| !v.is_null());
        let ordering = match (x, y) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => {
                let natural = match (x, y) {
                    (Value::Number(p), Value::Number(q)) => {
                        p.as_f64().partial_cmp(&q.as_f64()).unwrap_or(Ordering::Equal)
                    }
                    (Value::String(p), Value::String(q)) => normalise(p, key.case_sensitive, key.collapse)
                        .cmp(&normalise(q, key.case_sensitive, key.collapse)),
                    (Value::Bool(p), Value::Bool(q)) => p.cmp(q),
                    _ => rank(x).cmp(&rank(y)),
                };
                if key.reverse {
                    natural.reverse()
                } else {
                    natural
                }
            }
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// The `json_extract` path for plain keys, when they can be pushed into SQL.
pub(crate) fn sql_path(keys: &[Value]) -> Option<String> {
    let mut out = String::from("$");
    for key in keys {
        let key = key.as_str()?;
        if key.contains('"') || key.contains('\\') {
            return None;
        }
        out.push_str(&format!(".\"{key}\""));
    }
    Some(out)
}
