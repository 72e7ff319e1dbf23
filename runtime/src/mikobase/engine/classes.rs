//! Class definitions (records of class `puck.uno/class`) and validating buckets against
//! them.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Map, Value};

use super::problem::{error, unknown_keys, PASSTHROUGH};
use super::problem::{got, Problem};
use super::values::json_eq;
use crate::mikobase::generated::ErrorId;

/// The class of class definitions.
pub const CLASS_CLASS: &str = "puck.uno/class";
/// The class of a record created without one.
pub const DEFAULT_CLASS: &str = "puck.uno/record";
/// Classes recognised by name, without a definition record (decision E5).
pub const BUILT_IN: &[&str] = &[
    "puck.uno/record",
    "puck.uno/class",
    "puck.uno/hash",
    "puck.uno/reference",
    "puck.uno/dbfile",
];

/// Checks UNS syntax (structural only): `[A-Za-z0-9_.\-/?]`, a domain with a dot, no empty
/// segment, no `..`, no segment starting or ending with a dot, not an IP address.
pub fn check_uns(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '?')))
    {
        return Err(format!(
            "has the character {c:?} (allowed: letters, digits, _ - . / ?)"
        ));
    }
    if name.contains("..") || name.contains("//") {
        return Err("has `..` or `//`".into());
    }
    let mut segments = name.split('/');
    let domain = segments.next().unwrap_or_default();
    if !domain.contains('.') {
        return Err(format!(
            "has no dot in its domain `{domain}` (e.g. example.org/...)"
        ));
    }
    if domain
        .split('.')
        .all(|part| part.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("uses an IP address as its domain".into());
    }
    for segment in name.split('/') {
        if segment.is_empty() && name.ends_with('/') {
            return Err("ends with `/`".into());
        }
        if segment.starts_with('.') || segment.ends_with('.') {
            return Err(format!("has a segment `{segment}` starting or ending with a dot"));
        }
    }
    Ok(())
}

/// A field declaration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    pub class: Option<String>,
    pub required: bool,
    pub default: Option<Value>,
    pub one_of: Option<Vec<Value>>,
    pub unique: bool,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Whitespace runs of a string value become one space, ends trimmed (on write).
    pub collapse: bool,
    /// A number value must be an integer.
    pub integer_only: bool,
    /// Declarations of the sub-fields of a `hash` field.
    pub fields: Vec<(String, Field)>,
    /// Default class of sub-fields (`of`).
    pub of: Option<String>,
}

/// A parsed class definition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClassDef {
    pub name: String,
    pub inherits: Vec<String>,
    pub fields: Vec<(String, Field)>,
    pub uniques: Vec<Vec<String>>,
}

const PRIMITIVES: &[&str] = &[
    "string",
    "number",
    "integer",
    "boolean",
    "array",
    "hash",
    "timestamp",
    "any",
];

fn problem(field: &str, reason: impl Into<String>) -> Value {
    json!({ "field": field, "reason": reason.into() })
}

/// Parses a class-definition bucket, listing every problem found.
pub(crate) fn parse_class(bucket: &Map<String, Value>) -> Result<ClassDef, Problem> {
    let mut problems = Vec::new();
    let known = [
        "name",
        "description",
        "inherits",
        "fields",
        "uniques",
        "methods",
        "abstract",
    ];
    for key in unknown_keys(bucket, &known) {
        problems.push(problem(
            key,
            format!(
                "unknown class-definition key (known: {}; and the pass-through keys {})",
                known.join(", "),
                PASSTHROUGH.join(", ")
            ),
        ));
    }
    let name = match bucket.get("name") {
        Some(Value::String(name)) => {
            if let Err(why) = check_uns(name) {
                problems.push(problem(
                    "name",
                    format!("`{name}` is not a valid UNS name: it {why}"),
                ));
            }
            name.clone()
        }
        Some(_) => {
            problems.push(problem("name", "must be a string"));
            String::new()
        }
        None => {
            problems.push(problem(
                "name",
                "is required (the class's UNS name, e.g. example.org/crew/officer)",
            ));
            String::new()
        }
    };
    let inherits = match bucket.get("inherits") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(parent)) => vec![parent.clone()],
        Some(Value::Array(parents)) if parents.iter().all(Value::is_string) => parents
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(_) => {
            problems.push(problem(
                "inherits",
                "must be a class name or an array of class names",
            ));
            Vec::new()
        }
    };
    let fields = match bucket.get("fields") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(fields)) => parse_fields(fields, "fields", None, &mut problems),
        Some(_) => {
            problems.push(problem("fields", "must be an object of field declarations"));
            Vec::new()
        }
    };
    let uniques = match bucket.get("uniques") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(tuples)) => tuples
            .iter()
            .filter_map(|t| match t.as_array() {
                Some(names) if !names.is_empty() && names.iter().all(Value::is_string) => Some(
                    names
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect(),
                ),
                _ => {
                    problems.push(problem(
                        "uniques",
                        "each entry is a non-empty array of field names",
                    ));
                    None
                }
            })
            .collect(),
        Some(_) => {
            problems.push(problem("uniques", "must be an array of arrays of field names"));
            Vec::new()
        }
    };
    if problems.is_empty() {
        Ok(ClassDef {
            name,
            inherits,
            fields,
            uniques,
        })
    } else {
        Err(error(
            ErrorId::ValidationFailed,
            json!({
                "class_definition": problems,
                "fix": "correct each listed key of the definition (name, inherits, fields, uniques, ...)",
            }),
        ))
    }
}

fn parse_fields(
    fields: &Map<String, Value>,
    at: &str,
    settings: Option<&Map<String, Value>>,
    problems: &mut Vec<Value>,
) -> Vec<(String, Field)> {
    fields
        .iter()
        .filter_map(|(name, decl)| {
            let here = format!("{at}.{name}");
            let Some(decl) = decl.as_object() else {
                problems.push(problem(
                    &here,
                    "a field declaration is an object, e.g. {\"class\": \"string\"}",
                ));
                return None;
            };
            // A hash field's `default` holds settings for every sub-field; a sub-field's
            // own keys win.
            let mut decl = decl.clone();
            for (key, value) in settings.into_iter().flatten() {
                if !decl.contains_key(key) {
                    decl.insert(key.clone(), value.clone());
                }
            }
            Some((name.clone(), parse_field(&decl, &here, problems)))
        })
        .collect()
}

const FIELD_KEYS: &[&str] = &[
    "class",
    "required",
    "default",
    "one_of",
    "enum",
    "unique",
    "min",
    "max",
    "fields",
    "of",
    "items",
    "description",
    "format",
    "target",
    "integer_only",
    "collapse",
];

fn parse_field(decl: &Map<String, Value>, at: &str, problems: &mut Vec<Value>) -> Field {
    for key in decl.keys().filter(|k| !FIELD_KEYS.contains(&k.as_str())) {
        problems.push(problem(
            &format!("{at}.{key}"),
            format!("unknown field-declaration key (known: {})", FIELD_KEYS.join(", ")),
        ));
    }
    let class = match decl.get("class") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) if PRIMITIVES.contains(&c.as_str()) || check_uns(c).is_ok() => Some(c.clone()),
        Some(other) => {
            problems.push(problem(
                &format!("{at}.class"),
                format!(
                    "{other} is neither a primitive ({}) nor a UNS class name",
                    PRIMITIVES.join(", ")
                ),
            ));
            None
        }
    };
    let flag = |key: &str, problems: &mut Vec<Value>| match decl.get(key) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            problems.push(problem(&format!("{at}.{key}"), "must be true or false"));
            false
        }
    };
    let required = flag("required", problems);
    let unique = flag("unique", problems);
    let collapse = flag("collapse", problems);
    let integer_only = flag("integer_only", problems);
    let list = |key: &str, problems: &mut Vec<Value>| match decl.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Array(values)) => Some(values.clone()),
        Some(_) => {
            problems.push(problem(
                &format!("{at}.{key}"),
                "must be an array of allowed values",
            ));
            None
        }
    };
    let one_of = match (list("one_of", problems), list("enum", problems)) {
        (Some(a), Some(b)) if a != b => {
            problems.push(problem(
                &format!("{at}.enum"),
                "`enum` and `one_of` are the same constraint: give one, or the same list in both",
            ));
            Some(a)
        }
        (a, b) => a.or(b),
    };
    let number = |key: &str, problems: &mut Vec<Value>| match decl.get(key) {
        None | Some(Value::Null) => None,
        Some(v) => v.as_f64().or_else(|| {
            problems.push(problem(&format!("{at}.{key}"), "must be a number"));
            None
        }),
    };
    let min = number("min", problems);
    let max = number("max", problems);
    let of = match decl.get("of").or_else(|| decl.get("items")) {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) if PRIMITIVES.contains(&c.as_str()) || check_uns(c).is_ok() => Some(c.clone()),
        Some(other) => {
            problems.push(problem(
                &format!("{at}.of"),
                format!("{other} is neither a primitive nor a UNS class name"),
            ));
            None
        }
    };
    let has_fields = decl.get("fields").is_some_and(|f| !f.is_null());
    let settings = match decl.get("default") {
        Some(Value::Object(settings)) if has_fields => Some(settings),
        _ => None,
    };
    let fields = match decl.get("fields") {
        Some(Value::Object(sub)) => parse_fields(sub, &format!("{at}.fields"), settings, problems),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => {
            problems.push(problem(
                &format!("{at}.fields"),
                "must be an object of field declarations",
            ));
            Vec::new()
        }
    };
    let mut field = Field {
        class,
        required,
        default: None,
        one_of,
        unique,
        min,
        max,
        collapse,
        integer_only,
        fields,
        of,
    };
    match decl.get("default") {
        None | Some(Value::Null) => {}
        Some(Value::Object(_)) if has_fields => {} // settings, applied above
        Some(default) => {
            // A default must itself be a valid value of the field.
            let mut value = default.clone();
            let mut violations = Vec::new();
            check_value(&field, &mut value, at, &mut violations);
            for v in violations {
                problems.push(problem(
                    &format!("{at}.default"),
                    format!("the default does not fit the field: {v}"),
                ));
            }
            field.default = Some(value);
        }
    }
    field
}

/// The active class definitions, by name.
#[derive(Debug, Default, Clone)]
pub(crate) struct Registry {
    pub classes: HashMap<String, ClassDef>,
}

impl Registry {
    /// Whether `name` is a known class (defined or built in).
    pub fn knows(&self, name: &str) -> bool {
        BUILT_IN.contains(&name) || self.classes.contains_key(name)
    }

    /// `name` and its ancestors, outermost ancestor first, each once (cycles cut).
    pub fn lineage(&self, name: &str) -> Vec<&ClassDef> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        self.visit(name, &mut seen, &mut order);
        order
    }

    fn visit<'a>(&'a self, name: &str, seen: &mut BTreeSet<String>, order: &mut Vec<&'a ClassDef>) {
        if !seen.insert(name.to_owned()) {
            return;
        }
        if let Some(def) = self.classes.get(name) {
            for parent in &def.inherits {
                self.visit(parent, seen, order);
            }
            order.push(def);
        }
    }

    /// The fields of `class` and its ancestors (ancestors first; a subclass redeclaring a
    /// field overrides it in place).
    pub fn fields(&self, class: &str) -> Vec<(String, Field)> {
        let mut fields: Vec<(String, Field)> = Vec::new();
        for def in self.lineage(class) {
            for (name, field) in &def.fields {
                match fields.iter_mut().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = field.clone(),
                    None => fields.push((name.clone(), field.clone())),
                }
            }
        }
        fields
    }

    /// The order of declared fields in a record of `classes` (stack order): each class's
    /// ancestors' fields first (outermost ancestor first), then its own, in definition
    /// order.
    pub fn field_order(&self, classes: &[String]) -> Vec<String> {
        let mut order: Vec<String> = Vec::new();
        for class in classes {
            for (name, _) in self.fields(class) {
                if !order.contains(&name) {
                    order.push(name);
                }
            }
        }
        order
    }

    /// Unique tuples of `class` and its ancestors, with the class that declares each.
    pub fn unique_sets(&self, class: &str) -> Vec<(String, Vec<String>)> {
        let mut sets = Vec::new();
        for def in self.lineage(class) {
            for (name, field) in &def.fields {
                if field.unique {
                    sets.push((def.name.clone(), vec![name.clone()]));
                }
            }
            for tuple in &def.uniques {
                sets.push((def.name.clone(), tuple.clone()));
            }
        }
        sets
    }
}

/// A bucket in presentation order: the declared fields in `order`, then the undeclared
/// ones in stored order.
pub(crate) fn present(bucket: Map<String, Value>, order: &[String]) -> Map<String, Value> {
    if order.is_empty() {
        return bucket;
    }
    let mut rest: Vec<Option<(String, Value)>> = bucket.into_iter().map(Some).collect();
    let mut out = Map::with_capacity(rest.len());
    for name in order {
        if let Some(slot) = rest
            .iter_mut()
            .find(|e| e.as_ref().is_some_and(|(k, _)| k == name))
        {
            out.extend(slot.take());
        }
    }
    out.extend(rest.into_iter().flatten());
    out
}

/// Fills defaults and checks a bucket against declared fields; unknown keys are kept as
/// they are. Returns every violation, not the first.
pub(crate) fn validate_bucket(
    fields: &[(String, Field)],
    bucket: &mut Map<String, Value>,
) -> Result<(), Problem> {
    let mut violations = Vec::new();
    check_fields(fields, bucket, "", &mut violations);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(error(
            ErrorId::ValidationFailed,
            json!({
                "violations": violations,
                "fix": "correct each listed field of the bucket to fit the class definition",
            }),
        ))
    }
}

fn check_fields(
    fields: &[(String, Field)],
    bucket: &mut Map<String, Value>,
    prefix: &str,
    out: &mut Vec<Value>,
) {
    for (name, field) in fields {
        let at = format!("{prefix}{name}");
        if bucket.get(name).is_none_or(Value::is_null) {
            if let Some(default) = &field.default {
                bucket.insert(name.clone(), default.clone());
            }
        }
        match bucket.get_mut(name) {
            None | Some(Value::Null) => {
                if field.required {
                    out.push(json!({ "field": at, "problem": "required", "fix": "give the field a non-null value" }));
                }
            }
            Some(value) => check_value(field, value, &at, out),
        }
    }
}

fn check_value(field: &Field, value: &mut Value, at: &str, out: &mut Vec<Value>) {
    let class = field.class.as_deref().or(if field.fields.is_empty() {
        None
    } else {
        Some("hash")
    });
    let fits = match class {
        None | Some("any") => true,
        Some("string") | Some("timestamp") => value.is_string(),
        Some("number") => value.is_number(),
        Some("integer") => value.as_f64().is_some_and(|n| n.fract() == 0.0),
        Some("boolean") => value.is_boolean(),
        Some("array") => value.is_array(),
        Some("hash") => value.is_object(),
        Some(_) => true, // a UNS class: typed by the value's own shape, not checked here
    };
    if !fits {
        out.push(json!({ "field": at, "problem": "wrong type", "expected": class, "found": got(value), "fix": format!("give `{at}` a value of class {}", class.unwrap_or_default()) }));
        return;
    }
    if let (true, Value::String(s)) = (field.collapse, &*value) {
        *value = Value::String(s.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    if field.integer_only && class != Some("integer") && value.as_f64().is_some_and(|n| n.fract() != 0.0) {
        out.push(json!({ "field": at, "problem": "not an integer", "found": got(value), "fix": format!("give `{at}` a whole number") }));
    }
    if let Some(allowed) = &field.one_of {
        if !allowed.iter().any(|a| json_eq(a, value)) {
            out.push(json!({ "field": at, "problem": "not one of the allowed values", "allowed": allowed, "found": got(value), "fix": format!("give `{at}` one of the allowed values") }));
        }
    }
    let size = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => Some(s.chars().count() as f64),
        Value::Array(a) => Some(a.len() as f64),
        _ => None,
    };
    if let (Some(min), Some(size)) = (field.min, size) {
        if size < min {
            out.push(json!({ "field": at, "problem": "below min", "min": min, "found": got(value), "fix": format!("give `{at}` a value (a length for strings and arrays) of at least {min}") }));
        }
    }
    if let (Some(max), Some(size)) = (field.max, size) {
        if size > max {
            out.push(json!({ "field": at, "problem": "above max", "max": max, "found": got(value), "fix": format!("give `{at}` a value (a length for strings and arrays) of at most {max}") }));
        }
    }
    if let (false, Value::Object(sub)) = (field.fields.is_empty(), value) {
        let sub_fields: Vec<(String, Field)> = field
            .fields
            .iter()
            .map(|(n, f)| {
                let mut f = f.clone();
                if f.class.is_none() {
                    f.class = field.of.clone();
                }
                (n.clone(), f)
            })
            .collect();
        check_fields(&sub_fields, sub, &format!("{at}."), out);
        let order: Vec<String> = sub_fields.into_iter().map(|(n, _)| n).collect();
        *sub = present(std::mem::take(sub), &order);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uns_rules() {
        for ok in [
            "example.org/crew/officer",
            "puck.uno/class",
            "a.b",
            "x.y/z?q",
            "my-site.co.uk/a_b",
        ] {
            assert!(check_uns(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "officer",
            "example.org//x",
            "example.org/../x",
            "1.2.3.4/x",
            "example.org/.x",
            "ex ample.org",
            "example.org/",
        ] {
            assert!(check_uns(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validation_reports_every_violation_and_fills_defaults() {
        let def = parse_class(
            json!({
                "name": "example.org/crew/officer",
                "fields": {
                    "rank": {"class": "string", "required": true},
                    "watch": {"class": "string", "one_of": ["alpha", "beta"], "default": "alpha"},
                    "age": {"class": "number", "min": 18},
                    "name": {"class": "hash", "of": "string", "fields": {"surname": {"required": true}}}
                }
            })
            .as_object()
            .unwrap(),
        )
        .unwrap();
        let mut bucket = json!({"age": 12, "name": {"given": "x"}, "extra": 1})
            .as_object()
            .unwrap()
            .clone();
        let err = validate_bucket(&def.fields, &mut bucket).unwrap_err();
        let violations = err.details["violations"].as_array().unwrap();
        let fields: Vec<&str> = violations.iter().map(|v| v["field"].as_str().unwrap()).collect();
        assert_eq!(fields, vec!["rank", "age", "name.surname"]);
        assert_eq!(bucket["watch"], "alpha");
        assert_eq!(bucket["extra"], 1);
    }

    #[test]
    fn bad_definitions_list_all_problems() {
        let err = parse_class(
            json!({"name": "nodot", "fields": {"a": 1}, "unqiues": []})
                .as_object()
                .unwrap(),
        )
        .unwrap_err();
        assert_eq!(err.id, "validation-failed");
        assert_eq!(err.details["class_definition"].as_array().unwrap().len(), 3);
    }
}
