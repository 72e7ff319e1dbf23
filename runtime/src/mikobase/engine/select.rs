//! Select requests: parsing (every structural problem is found before any record is
//! read), evaluating conditions (`path`, `then`, `all`, `any`, `not`, placeholders) and
//! sort keys against a record's bucket, and what of a select can be pushed into SQL.
//!
//! Placeholders resolve lazily: an undefined or circular one is an error only when
//! evaluation reaches it (decision E14 in `docs/ENGINE.md` says which records are
//! reached).

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use super::classes::check_uns;
use super::problem::{error, got, invalid, unknown_keys, warning, wrong_type, Problem};
use super::store::{Equal, SqlSort};
use super::values::{json_eq, walk};
use super::values::{number_cmp, truthy, Fold};
use crate::mikobase::generated::{
    ClassFilter, ErrorId, NarrowingBlock, SelectRequest, SortPath, SortStep, WarningId,
};

/// The keys a condition block may carry.
const BLOCK_KEYS: &[&str] = &["path", "then", "all", "any", "not", "placeholders"];

/// A parsed select request.
#[derive(Debug, Clone)]
pub(crate) struct Select {
    pub pk: Option<String>,
    /// Class names of `class` and `classes` (subclasses are added by the store).
    pub classes: Option<Vec<String>>,
    pub limit: Option<usize>,
    pub offset: usize,
    pub sorts: Vec<SortKey>,
    /// The top-level conditions.
    pub block: Block,
}

/// Parses a typed select request, adding the `redundant_fields` warnings. The types were
/// checked by the decode; this finds every structural problem the types cannot say (class
/// name syntax, path shapes, operators, sort qualifiers) before any record is read.
pub(crate) fn parse(request: &SelectRequest, warnings: &mut Vec<Problem>) -> Result<Select, Problem> {
    let mut classes: Option<Vec<String>> = None;
    for (field, filter) in [("class", &request.class), ("classes", &request.classes)] {
        let names: Vec<String> = match filter {
            None => continue,
            Some(ClassFilter::One(name)) => vec![name.clone()],
            Some(ClassFilter::Many(names)) if !names.is_empty() => names.clone(),
            Some(ClassFilter::Many(_)) => {
                return Err(invalid(json!({
                    "wrong_types": [{"field": field, "expected": "a class name or a non-empty array of class names", "got": []}],
                    "fix": format!("give `{field}` as \"example.org/crew/person\" or [\"example.org/a\", \"example.org/b\"]"),
                })))
            }
        };
        for name in &names {
            check_class_name(name)?;
        }
        classes.get_or_insert_with(Vec::new).extend(names);
    }
    let redundant = [
        (
            ["class", "classes"],
            request.class.is_some() && request.classes.is_some(),
        ),
        (
            ["sort", "sorts"],
            request.sort.is_some() && request.sorts.is_some(),
        ),
    ];
    for (pair, both) in redundant {
        if both {
            warnings.push(warning(WarningId::RedundantFields, json!({ "fields": pair })));
        }
    }
    // `null` stands for absent only where D11 says so (pk, class, classes, limit,
    // offset): a stray null never drops a sort or a condition (the decode refuses it).
    let mut sorts = Vec::new();
    for sort in request.sort.iter().chain(request.sorts.iter().flatten()) {
        sorts.push(sort_key(sort)?);
    }
    let count = |n: Option<u64>| n.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let top = Fields {
        path: request.path.as_deref(),
        not: request.not,
        placeholders: request.placeholders.as_ref(),
        then: request.then.as_ref(),
        all: request.all.as_deref(),
        any: request.any.as_deref(),
        extra: None,
    };
    Ok(Select {
        pk: request.pk.clone(),
        classes,
        limit: count(request.limit),
        offset: count(request.offset).unwrap_or(0),
        sorts,
        block: block(top, "")?,
    })
}

/// Checks UNS syntax of a class name (`invalid_request` naming what is wrong).
pub(crate) fn check_class_name(class: &str) -> Result<(), Problem> {
    check_uns(class).map_err(|why| {
        invalid(json!({
            "class": class,
            "reason": format!("not a valid UNS class name: it {why}"),
            "fix": "class names look like example.org/crew/person",
        }))
    })
}

// ---- condition blocks -----------------------------------------------------------------

/// A condition block: the select request itself, or an entry of `then` / `all` / `any`.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    vars: Option<Map<String, Value>>,
    path: Option<Path>,
    then: Option<Box<Block>>,
    all: Vec<Block>,
    any: Option<Vec<Block>>,
    not: bool,
}

#[derive(Debug, Clone)]
struct Path {
    /// The keys, when none of them is a placeholder.
    keys: Option<Vec<String>>,
    /// The key elements as given (resolved at evaluation when `keys` is `None`).
    raw_keys: Vec<Value>,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    /// Equality with a literal.
    Literal(Value),
    /// An operator object without placeholders.
    Ops(Ops),
    /// A literal or operator object holding placeholders: resolved when reached.
    Lazy(Value),
}

/// The fields of a condition block, borrowed from the select request or a nested block.
struct Fields<'a> {
    path: Option<&'a [Value]>,
    not: Option<bool>,
    placeholders: Option<&'a Map<String, Value>>,
    then: Option<&'a NarrowingBlock>,
    all: Option<&'a [NarrowingBlock]>,
    any: Option<&'a [NarrowingBlock]>,
    /// A nested block's other keys (and block keys whose value did not fit their type).
    extra: Option<&'a Map<String, Value>>,
}

/// Parses a block at `at` (for messages); every problem that does not depend on a
/// placeholder's value is found here.
fn block(fields: Fields<'_>, at: &str) -> Result<Block, Problem> {
    if let Some(extra) = fields.extra {
        // A block key left over did not fit its type: say which and how.
        for (key, value) in extra {
            let expected = match key.as_str() {
                "path" => {
                    return Err(bad_path(
                        &under(at, "path"),
                        value,
                        "not an array of at least two elements",
                    ))
                }
                "then" => "a block object {\"path\": ...}",
                "all" | "any" => "an array of block objects",
                "not" => "true or false",
                "placeholders" => "an object of named values",
                _ => continue,
            };
            return Err(wrong_type(&under(at, key), expected, value));
        }
    }
    let path = match fields.path {
        None => None,
        Some(path) => Some(parse_path(path, at)?),
    };
    let then = match fields.then {
        None => None,
        Some(then) => Some(Box::new(nested(then, &under(at, "then"))?)),
    };
    let list = |key: &str, entries: Option<&[NarrowingBlock]>| -> Result<Option<Vec<Block>>, Problem> {
        entries
            .map(|entries| {
                entries
                    .iter()
                    .enumerate()
                    .map(|(i, entry)| nested(entry, &format!("{}[{i}]", under(at, key))))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
    };
    Ok(Block {
        vars: fields.placeholders.cloned(),
        path,
        then,
        all: list("all", fields.all)?.unwrap_or_default(),
        any: list("any", fields.any)?,
        not: fields.not.unwrap_or(false),
    })
}

/// Where a part of the request is, as a path from its root (`then.all[0].not`): the form
/// the generated dispatch table's decode errors use too.
fn under(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

/// A nested block: only the block keys (and the pass-through keys) are allowed.
fn nested(entry: &NarrowingBlock, at: &str) -> Result<Block, Problem> {
    let unknown = unknown_keys(&entry.extra, BLOCK_KEYS);
    if !unknown.is_empty() {
        return Err(invalid(json!({
            "at": at,
            "unknown_fields": unknown,
            "allowed_fields": BLOCK_KEYS,
            "fix": "a block holds only path, then, all, any, not and placeholders (and the pass-through keys misc, corporate, vibecode, comment)",
        })));
    }
    let fields = Fields {
        path: entry.path.as_deref(),
        not: entry.not,
        placeholders: entry.placeholders.as_ref(),
        then: entry.then.as_deref(),
        all: entry.all.as_deref(),
        any: entry.any.as_deref(),
        extra: Some(&entry.extra),
    };
    block(fields, at)
}

fn bad_path(at: &str, path: &Value, reason: &str) -> Problem {
    invalid(json!({
        "at": at,
        "path": got(path),
        "reason": reason,
        "fix": "a path is an array: one or more bucket keys, then a literal or an operator object, e.g. [\"name\", \"surname\", {\"starts-with\": \"R\"}]",
    }))
}

fn parse_path(elements: &[Value], at: &str) -> Result<Path, Problem> {
    let at = under(at, "path");
    // The path as given, for a message only.
    let path = || Value::Array(elements.to_vec());
    if elements.len() < 2 {
        return Err(bad_path(&at, &path(), "not an array of at least two elements"));
    }
    let (last, raw_keys) = elements.split_last().unwrap_or((&Value::Null, &[]));
    for key in raw_keys {
        if !key.is_string() && placeholder_name(key).is_none() {
            return Err(bad_path(
                &at,
                &path(),
                "every element but the last is a bucket key (a string or a placeholder)",
            ));
        }
    }
    let keys = raw_keys
        .iter()
        .map(|k| k.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>();
    let test = if has_placeholder(last) {
        if let Value::Object(ops) = last {
            if placeholder_name(last).is_none() {
                check_operator_keys(ops, &at)?;
                for (op, arg) in ops.iter().filter(|(_, a)| !has_placeholder(a)) {
                    check_argument(op, arg, &at)?;
                }
            }
        }
        Test::Lazy(last.clone())
    } else {
        match last {
            Value::Object(ops) => Test::Ops(Ops::parse(ops, &at)?),
            literal => Test::Literal(literal.clone()),
        }
    };
    Ok(Path {
        keys,
        raw_keys: raw_keys.to_vec(),
        test,
    })
}

// ---- placeholders ---------------------------------------------------------------------

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

    fn lookup(&self, name: &str) -> Option<&Value> {
        match self.vars.and_then(|v| v.get(name)) {
            Some(value) => Some(value),
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

fn has_placeholder(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().any(has_placeholder),
        Value::Object(map) => placeholder_name(value).is_some() || map.values().any(has_placeholder),
        _ => false,
    }
}

/// Longest chain of placeholders (and nesting inside their values) followed while
/// resolving one value.
const MAX_RESOLVE_DEPTH: usize = 256;

/// Replaces every `{"placeholder": name}` in `value`, following chains; names are looked
/// up from the point of use (an inner block's definition shadows an outer one, also for
/// a placeholder named inside an outer placeholder's value). Cycles and undefined names
/// are errors.
fn resolve(
    value: &Value,
    scope: &Scope<'_>,
    resolving: &mut Vec<String>,
    depth: usize,
) -> Result<Value, Problem> {
    if depth > MAX_RESOLVE_DEPTH {
        return Err(invalid(json!({
            "reason": "placeholders nest too deeply",
            "max_depth": MAX_RESOLVE_DEPTH,
            "fix": "use shorter placeholder chains",
        })));
    }
    if let Some(name) = placeholder_name(value) {
        if resolving.iter().any(|n| n == name) {
            let mut cycle = resolving.clone();
            cycle.push(name.to_owned());
            return Err(error(
                ErrorId::PlaceholderCircular,
                json!({ "cycle": cycle, "fix": "make one placeholder of the cycle a plain value" }),
            ));
        }
        let Some(found) = scope.lookup(name) else {
            return Err(error(
                ErrorId::PlaceholderUndefined,
                json!({ "placeholder": name, "fix": "define it in `placeholders` at the top level or in an enclosing block" }),
            ));
        };
        resolving.push(name.to_owned());
        let resolved = resolve(found, scope, resolving, depth + 1);
        resolving.pop();
        return resolved;
    }
    Ok(match value {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve(v, scope, resolving, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), resolve(v, scope, resolving, depth + 1)?)))
                .collect::<Result<_, Problem>>()?,
        ),
        other => other.clone(),
    })
}

// ---- evaluation -----------------------------------------------------------------------

impl Block {
    /// Whether the bucket satisfies the block. The parts are evaluated in a fixed order,
    /// stopping at the first that fails: `path`, `then`, each `all` entry in order, the
    /// `any` entries in order until one matches; then `not` inverts (decision E14).
    pub fn matches(&self, bucket: &Map<String, Value>, scope: &Scope<'_>) -> Result<bool, Problem> {
        let scope = scope.child(self.vars.as_ref());
        let ok = self.holds(bucket, &scope)?;
        Ok(ok != self.not)
    }

    fn holds(&self, bucket: &Map<String, Value>, scope: &Scope<'_>) -> Result<bool, Problem> {
        if let Some(path) = &self.path {
            if !path.matches(bucket, scope)? {
                return Ok(false);
            }
        }
        if let Some(then) = &self.then {
            if !then.matches(bucket, scope)? {
                return Ok(false);
            }
        }
        for entry in &self.all {
            if !entry.matches(bucket, scope)? {
                return Ok(false);
            }
        }
        if let Some(any) = &self.any {
            for entry in any {
                if entry.matches(bucket, scope)? {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        Ok(true)
    }

    /// The literal equality of this (top-level) block that SQL can check, when the
    /// block is not inverted.
    pub fn pushable(&self) -> Option<Equal> {
        if self.not {
            return None;
        }
        match &self.path {
            Some(Path {
                keys: Some(keys),
                test: Test::Literal(value),
                ..
            }) => Equal::new(keys, value),
            _ => None,
        }
    }

    /// Whether `pushed` (from [`Block::pushable`]) is the whole condition: nothing is
    /// left for Rust to check.
    pub fn only(&self, pushed: Option<&Equal>) -> bool {
        self.then.is_none()
            && self.all.is_empty()
            && self.any.is_none()
            && !self.not
            && (self.path.is_none() || pushed.is_some())
    }
}

impl Path {
    fn matches(&self, bucket: &Map<String, Value>, scope: &Scope<'_>) -> Result<bool, Problem> {
        let resolved_keys;
        let keys = match &self.keys {
            Some(keys) => keys,
            None => {
                resolved_keys = self
                    .raw_keys
                    .iter()
                    .map(|k| match resolve(k, scope, &mut Vec::new(), 0)? {
                        Value::String(s) => Ok(s),
                        other => Err(invalid(json!({
                            "reason": "a placeholder used as a path key must be a string",
                            "got": got(&other),
                            "fix": "give the placeholder a string value",
                        }))),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                &resolved_keys
            }
        };
        let found = walk(bucket, keys);
        match &self.test {
            Test::Literal(literal) => Ok(found.is_some_and(|v| json_eq(v, literal))),
            Test::Ops(ops) => Ok(ops.holds(found)),
            Test::Lazy(test) => match resolve(test, scope, &mut Vec::new(), 0)? {
                Value::Object(ops) => Ok(Ops::parse(&ops, "a resolved placeholder")?.holds(found)),
                literal => Ok(found.is_some_and(|v| json_eq(v, &literal))),
            },
        }
    }
}

// ---- operators ------------------------------------------------------------------------

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

#[derive(Debug, Clone)]
enum Op {
    Value(Value),
    Contains(String),
    StartsWith(String),
    EndsWith(String),
    /// gt / lt / gte / lte: holds when the ordering of found against the argument is one
    /// of the accepted ones.
    Compare(Value, [Ordering; 2]),
    Includes(Value),
    IncludesAll(Vec<Value>),
    IncludesAny(Vec<Value>),
    Exists(bool),
    Truthy(bool),
    Any(bool),
}

/// An operator object: every operator in it must hold (decision E8).
#[derive(Debug, Clone)]
struct Ops {
    ops: Vec<Op>,
    fold: Fold,
}

fn check_operator_keys(ops: &Map<String, Value>, at: &str) -> Result<(), Problem> {
    let unknown: Vec<&String> = ops
        .keys()
        .filter(|k| !OPERATORS.contains(&k.as_str()) && !QUALIFIERS.contains(&k.as_str()))
        .collect();
    if unknown.is_empty() && ops.keys().any(|k| OPERATORS.contains(&k.as_str())) {
        return Ok(());
    }
    Err(invalid(json!({
        "at": at,
        "unknown_operators": unknown,
        "operators": OPERATORS,
        "qualifiers": QUALIFIERS,
        "fix": "an operator object holds at least one of the operators; compare with an object literal through {\"value\": {...}}",
    })))
}

/// What an operator's (or qualifier's) argument must be.
fn expected(op: &str) -> Option<&'static str> {
    match op {
        "contains" | "starts-with" | "ends-with" => Some("a string"),
        "gt" | "lt" | "gte" | "lte" => Some("a number or a string"),
        "includes_all" | "includes_any" => Some("an array of values"),
        "exists" | "truthy" | "any" | "case-sensitive" | "collapse" => Some("true or false"),
        _ => None, // value, includes: any JSON
    }
}

fn check_argument(op: &str, arg: &Value, at: &str) -> Result<(), Problem> {
    let fits = match op {
        "contains" | "starts-with" | "ends-with" => arg.is_string(),
        "gt" | "lt" | "gte" | "lte" => arg.is_number() || arg.is_string(),
        "includes_all" | "includes_any" => arg.is_array(),
        "exists" | "truthy" | "any" | "case-sensitive" | "collapse" => arg.is_boolean(),
        _ => true,
    };
    match expected(op) {
        Some(expected) if !fits => Err(invalid(json!({
            "at": at,
            "wrong_types": [{"field": op, "expected": expected, "got": got(arg)}],
            "fix": format!("give `{op}` {expected}"),
        }))),
        _ => Ok(()),
    }
}

impl Ops {
    fn parse(map: &Map<String, Value>, at: &str) -> Result<Ops, Problem> {
        check_operator_keys(map, at)?;
        for (op, arg) in map {
            check_argument(op, arg, at)?;
        }
        let flag = |name: &str, default: bool| map.get(name).and_then(Value::as_bool).unwrap_or(default);
        let fold = Fold {
            case_sensitive: flag("case-sensitive", true),
            collapse: flag("collapse", false),
        };
        let text = |v: &Value| fold.apply(v.as_str().unwrap_or_default());
        let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
        let bool_of = |v: &Value| v.as_bool().unwrap_or_default();
        let ops = map
            .iter()
            .filter_map(|(op, arg)| {
                Some(match op.as_str() {
                    "value" => Op::Value(arg.clone()),
                    "contains" => Op::Contains(text(arg)),
                    "starts-with" => Op::StartsWith(text(arg)),
                    "ends-with" => Op::EndsWith(text(arg)),
                    "gt" => Op::Compare(arg.clone(), [Ordering::Greater; 2]),
                    "lt" => Op::Compare(arg.clone(), [Ordering::Less; 2]),
                    "gte" => Op::Compare(arg.clone(), [Ordering::Greater, Ordering::Equal]),
                    "lte" => Op::Compare(arg.clone(), [Ordering::Less, Ordering::Equal]),
                    "includes" => Op::Includes(arg.clone()),
                    "includes_all" => Op::IncludesAll(list(arg)),
                    "includes_any" => Op::IncludesAny(list(arg)),
                    "exists" => Op::Exists(bool_of(arg)),
                    "truthy" => Op::Truthy(bool_of(arg)),
                    "any" => Op::Any(bool_of(arg)),
                    _ => return None, // a qualifier
                })
            })
            .collect();
        Ok(Ops { ops, fold })
    }

    fn holds(&self, found: Option<&Value>) -> bool {
        let fold = self.fold;
        let folded = || found.and_then(Value::as_str).map(|s| fold.apply(s));
        let items = || found.and_then(Value::as_array);
        let has = |items: &Vec<Value>, wanted: &Value| items.iter().any(|x| fold.eq(x, wanted));
        self.ops.iter().all(|op| match op {
            Op::Value(want) => found.is_some_and(|v| fold.eq(v, want)),
            Op::Contains(want) => folded().is_some_and(|s| s.contains(want.as_str())),
            Op::StartsWith(want) => folded().is_some_and(|s| s.starts_with(want.as_str())),
            Op::EndsWith(want) => folded().is_some_and(|s| s.ends_with(want.as_str())),
            Op::Compare(arg, accepted) => {
                let ordering = match (found, arg) {
                    (Some(Value::Number(a)), Value::Number(b)) => Some(number_cmp(a, b)),
                    (Some(Value::String(a)), Value::String(b)) => Some(fold.cmp(a, b)),
                    _ => None, // mixed types never match
                };
                ordering.is_some_and(|o| accepted.contains(&o))
            }
            Op::Includes(want) => items().is_some_and(|items| has(items, want)),
            Op::IncludesAll(wanted) => items().is_some_and(|items| wanted.iter().all(|w| has(items, w))),
            Op::IncludesAny(wanted) => items().is_some_and(|items| wanted.iter().any(|w| has(items, w))),
            Op::Exists(want) => found.is_some_and(|v| !v.is_null()) == *want,
            Op::Truthy(want) => found.is_some_and(truthy) == *want,
            Op::Any(want) => found.is_some() == *want,
        })
    }
}

// ---- sorting --------------------------------------------------------------------------

/// A parsed sort path: keys plus qualifiers.
#[derive(Debug, Clone)]
pub(crate) struct SortKey {
    keys: Vec<String>,
    reverse: bool,
    fold: Fold,
}

/// Parses `["a", "b", {"reverse": true}]` (the decode checked the elements' types).
pub(crate) fn sort_key(path: &SortPath) -> Result<SortKey, Problem> {
    let bad = |reason: &str| {
        invalid(json!({
            "sort": serde_json::to_value(path).map(|v| got(&v)).unwrap_or(Value::Null),
            "reason": reason,
            "fix": "a sort path is an array of bucket keys, optionally ending with {\"reverse\": bool, \"case-sensitive\": bool, \"collapse\": bool}",
        }))
    };
    let (qualifier, keys) = match path.split_last() {
        Some((SortStep::Qualifier(q), keys)) => (Some(q), keys),
        _ => (None, &path[..]),
    };
    let keys = keys
        .iter()
        .map(|step| match step {
            SortStep::Key(key) => Some(key.clone()),
            SortStep::Qualifier(_) => None,
        })
        .collect::<Option<Vec<_>>>()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            bad("the keys must be one or more strings, and only the last element may be the qualifiers")
        })?;
    let mut key = SortKey {
        keys,
        reverse: false,
        fold: Fold::EXACT,
    };
    if let Some(q) = qualifier {
        key.reverse = q.reverse.unwrap_or(false);
        key.fold.case_sensitive = q.case_sensitive.unwrap_or(key.fold.case_sensitive);
        key.fold.collapse = q.collapse.unwrap_or(key.fold.collapse);
    }
    Ok(key)
}

/// Type rank in sort order: numbers < strings < booleans < arrays < objects.
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
                    (Value::Number(p), Value::Number(q)) => number_cmp(p, q),
                    (Value::String(p), Value::String(q)) => key.fold.cmp(p, q),
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

/// The sort keys as SQL `ORDER BY` terms, when SQL orders exactly as [`compare`]: plain
/// keys, and no case or whitespace folding (SQLite's `lower()` knows only ASCII).
pub(crate) fn sql_sorts(keys: &[SortKey]) -> Option<Vec<SqlSort>> {
    keys.iter()
        .map(|key| {
            if key.fold != Fold::EXACT {
                return None;
            }
            SqlSort::new(&key.keys, key.reverse)
        })
        .collect()
}
