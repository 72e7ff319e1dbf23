//! Robustness: generated garbage and mutated Q0 requests thrown at every entry point of
//! the engine. It never panics and always answers a well-formed envelope whose ids are
//! all in the spec's registry, with details saying what to fix. Deterministic (fixed
//! seeds) and bounded.

#[path = "engine_common.rs"]
mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use caspian_ipc::mikobase::engine::Engine;
use common::{assert_envelope, define, envelope_problem, registry, OPERATORS};
use serde_json::{json, Map, Number, Value};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A key: one of [`KEYS`] or an operator.
    fn key(&mut self) -> String {
        let n = self.below(KEYS.len() + OPERATORS.len());
        KEYS.get(n)
            .unwrap_or_else(|| &OPERATORS[n - KEYS.len()])
            .to_string()
    }
}

/// Keys a Q0 request, block, definition or worldlet might carry, and others (the
/// operators come from [`OPERATORS`]).
const KEYS: &[&str] = &[
    "action",
    "pk",
    "class",
    "classes",
    "bucket",
    "limit",
    "offset",
    "sort",
    "sorts",
    "path",
    "then",
    "all",
    "any",
    "not",
    "placeholders",
    "placeholder",
    "transaction",
    "parent",
    "if_exists",
    "case-sensitive",
    "collapse",
    "reverse",
    "name",
    "inherits",
    "fields",
    "uniques",
    "required",
    "default",
    "one_of",
    "unique",
    "min",
    "max",
    "of",
    "format",
    "records",
    "stack",
    "shadow",
    "files",
    "misc",
    "",
    "ключ",
    "🙂",
    "a.b",
    "$.x",
    "a\"b",
    "a\\b",
    "\u{0}",
    "between",
    "regex",
];

const STRINGS: &[&str] = &[
    "",
    "NaN",
    "Infinity",
    "-Infinity",
    "-inf",
    "nan",
    "1e999",
    "null",
    "true",
    "select",
    "create",
    "update",
    "delete",
    "transaction",
    "commit",
    "rollback",
    "merge",
    "tx1",
    "tx2",
    "puck.uno/class",
    "puck.uno/record",
    "example.org/a",
    "example.org/b",
    "officer",
    "example.org//x",
    "worldlet/1.0",
    "rw",
    "ключ",
    "🙂🙂",
    "\u{0}",
    "a\u{0}b",
    " padded ",
    "'; DROP TABLE records; --",
    "$.\"x\"",
    "{\"placeholder\": \"p\"}",
    "p",
    "q",
];

fn number(rng: &mut Rng) -> Value {
    let n = match rng.below(12) {
        0 => Number::from(0),
        1 => Number::from(u64::MAX),
        2 => Number::from(i64::MIN),
        3 => Number::from(9_007_199_254_740_993u64),
        4 => Number::from_f64(-0.0).unwrap(),
        5 => Number::from_f64(1e308).unwrap(),
        6 => Number::from_f64(-1e308).unwrap(),
        7 => Number::from_f64(5e-324).unwrap(),
        8 => Number::from_f64(0.1).unwrap(),
        9 => Number::from(rng.below(5) as u64),
        10 => Number::from(-(rng.below(1000) as i64)),
        _ => Number::from_f64(rng.below(100) as f64 / 4.0).unwrap(),
    };
    Value::Number(n)
}

/// A random JSON value at most `depth` levels deep.
fn value(rng: &mut Rng, depth: usize) -> Value {
    let kinds = if depth == 0 { 5 } else { 8 };
    match rng.below(kinds) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => number(rng),
        3 => Value::String(rng.pick(STRINGS).to_string()),
        4 => Value::String("x".repeat(rng.below(3) * 300)),
        5 | 6 => {
            let mut map = Map::new();
            for _ in 0..rng.below(5) {
                map.insert(rng.key(), value(rng, depth - 1));
            }
            Value::Object(map)
        }
        _ => Value::Array((0..rng.below(5)).map(|_| value(rng, depth - 1)).collect()),
    }
}

/// `levels` of nesting, alternating arrays, objects and `then` blocks.
fn deep(rng: &mut Rng, levels: usize) -> Value {
    let mut v = value(rng, 1);
    // Built by moving, not with `json!` (which would copy the whole value each level).
    let wrap = |key: &str, v: Value| Value::Object(Map::from_iter([(key.to_owned(), v)]));
    for i in 0..levels {
        v = match i % 3 {
            0 => Value::Array(vec![v]),
            1 => wrap("then", v),
            _ => wrap("path", Value::Array(vec![json!("a"), v])),
        };
    }
    v
}

/// Valid requests of every kind, to mutate.
fn templates(rng: &mut Rng) -> Vec<Value> {
    let chain: Map<String, Value> = (0..rng.below(400) + 1)
        .map(|i| (format!("p{i}"), json!({"placeholder": format!("p{}", i + 1)})))
        .collect();
    vec![
        json!({"action": "select"}),
        json!({"action": "select", "class": "example.org/a", "limit": 3, "offset": 1, "sort": ["n", {"reverse": true}]}),
        json!({"action": "select", "classes": ["example.org/a", "example.org/b"], "sorts": [["s", {"case-sensitive": false, "collapse": true}], ["n"]]}),
        json!({"action": "select", "path": ["s", {"contains": "a", "case-sensitive": false}], "not": true}),
        json!({"action": "select", "path": ["n", 1], "all": [{"path": ["n", {"gte": 0, "lt": 9}]}], "any": [{"path": ["t", {"includes": 1}]}, {"not": true, "path": ["o", "k", {"exists": true}]}]}),
        json!({"action": "select", "placeholders": {"w": "a", "m": {"value": {"placeholder": "w"}}}, "path": ["s", {"placeholder": "m"}], "then": {"placeholders": {"w": "b"}, "path": [{"placeholder": "k"}, {"placeholder": "w"}]}}),
        json!({"action": "select", "placeholders": chain, "path": ["n", {"placeholder": "p0"}]}),
        json!({"action": "select", "pk": "r1", "path": ["t", {"includes_all": [1, 2], "includes_any": [3]}]}),
        json!({"action": "create", "class": "example.org/a", "bucket": {"n": 1, "s": "a", "t": [1, 2], "o": {"k": "v"}}}),
        json!({"action": "create", "classes": ["example.org/a", "example.org/b"], "bucket": {}}),
        json!({"action": "create", "classes": {"x": {"class": "example.org/b", "bucket": {}}}, "bucket": {"n": 2}}),
        json!({"action": "create", "class": "puck.uno/class", "bucket": {"name": "example.org/c", "inherits": "example.org/a", "fields": {"n": {"class": "number", "min": 0, "default": 1}, "h": {"class": "hash", "fields": {"k": {"required": true}}}}, "uniques": [["n", "s"]]}}),
        json!({"action": "update", "pk": "r1", "bucket": {"n": 5}}),
        json!({"action": "update", "pk": "r1", "class": "example.org/b"}),
        json!({"action": "delete", "pk": "r2", "if_exists": true}),
        json!({"action": "transaction"}),
        json!({"action": "transaction", "parent": "tx1"}),
        json!({"action": "commit", "transaction": "tx1"}),
        json!({"action": "rollback", "transaction": "tx2"}),
    ]
}

/// Every node of `v` as a JSON pointer.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, x)| pointers(x, format!("{at}/{i}"), out)),
        Value::Object(map) => map.iter().for_each(|(k, x)| {
            let key = k.replace('~', "~0").replace('/', "~1");
            pointers(x, format!("{at}/{key}"), out)
        }),
        _ => {}
    }
}

/// Applies one random mutation somewhere in `v`.
fn mutate(rng: &mut Rng, v: &mut Value) {
    let mut all = Vec::new();
    pointers(v, String::new(), &mut all);
    let at = rng.pick(&all).clone();
    let Some(node) = v.pointer_mut(&at) else { return };
    match rng.below(7) {
        0 | 1 => *node = value(rng, 3),
        2 => *node = Value::Array(vec![node.take()]),
        3 => *node = Value::Object(Map::from_iter([(rng.key(), node.take())])),
        4 => {
            if let Value::Object(map) = node {
                let key = rng.key();
                map.insert(key, value(rng, 2));
            }
        }
        5 => match node {
            Value::Object(map) if !map.is_empty() => {
                let key = map.keys().nth(rng.below(map.len())).cloned().unwrap_or_default();
                map.shift_remove(&key);
            }
            Value::Array(items) if !items.is_empty() => {
                items.remove(rng.below(items.len()));
            }
            _ => *node = Value::Null,
        },
        _ => {
            let levels = 40 + rng.below(120);
            *node = deep(rng, levels)
        }
    }
}

/// A `validate` report `{errors, warnings}` as the envelope it predicts.
fn as_envelope(report: Value) -> Value {
    match report["errors"].as_array() {
        Some(errors) if errors.is_empty() => {
            json!({"success": true, "results": {}, "errors": [], "warnings": report["warnings"]})
        }
        _ => json!({"success": false, "errors": report["errors"], "warnings": report["warnings"]}),
    }
}

fn seeded() -> Engine {
    let mut db = common::engine();
    define(
        &mut db,
        json!({"name": "example.org/a", "fields": {"n": {"class": "number"}}}),
    );
    define(
        &mut db,
        json!({"name": "example.org/b", "inherits": "example.org/a"}),
    );
    db.import_worldlet(&json!({"format": "worldlet/1.0", "records": {
        "r1": {"bucket": {"n": 1, "s": "Abc", "t": [1, 2, 3], "o": {"k": "v"}}, "stack": {"shadow": {}, "a": {"class": "example.org/a"}}},
        "r2": {"bucket": {"n": 2.5, "s": "b"}, "stack": {"shadow": {}, "a": {"class": "example.org/b"}}},
    }}));
    db
}

#[test]
fn garbage_and_mutated_requests_never_break_the_engine() {
    common::each_storage(|| {
        let (errors, warnings) = registry();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut db = seeded();
        let templates = templates(&mut rng);
        for round in 0..6000 {
            let mut request = match rng.below(10) {
                0 => value(&mut rng, 4),
                1 => {
                    let levels = 50 + rng.below(300);
                    deep(&mut rng, levels)
                }
                _ => rng.pick(&templates).clone(),
            };
            for _ in 0..rng.below(4) {
                mutate(&mut rng, &mut request);
            }
            let context = || {
                let text: String = request.to_string().chars().take(300).collect();
                format!("round {round}: {text}")
            };
            let answer = catch_unwind(AssertUnwindSafe(|| match rng.below(8) {
                0 => {
                    let mut bytes = request.to_string().into_bytes();
                    if !bytes.is_empty() {
                        let cut = rng.below(bytes.len());
                        match rng.below(3) {
                            0 => bytes.truncate(cut),
                            1 => bytes[cut] = rng.below(256) as u8,
                            _ => {}
                        }
                    }
                    vec![db.q0_bytes(rng.below(3) as u64, &bytes)]
                }
                1 => vec![as_envelope(db.validate(&request))],
                2 => {
                    let worldlet = json!({"format": "worldlet/1.0", "records": {rng.pick(STRINGS).to_string(): request.clone()}});
                    vec![db.import_worldlet(&worldlet), db.import_worldlet(&request)]
                }
                3 => vec![
                    db.import_schema(&json!({"classes": [request.clone()]})),
                    db.import_schema(&request),
                ],
                4 => {
                    let text = request.as_str().unwrap_or(*rng.pick(STRINGS)).to_owned();
                    vec![db.record_by_pk(&text), db.by_class(&text)]
                }
                _ => vec![db.q0_as(rng.below(3) as u64, &request)],
            }));
            let answers = answer.unwrap_or_else(|_| panic!("the engine panicked at {}", context()));
            for envelope in &answers {
                if let Some(problem) = envelope_problem(envelope, &errors, &warnings) {
                    panic!("{problem} at {}", context());
                }
            }
            if rng.below(50) == 0 {
                db.release_owner(rng.below(3) as u64);
            }
        }
        // Still a working store afterwards.
        assert_envelope(
            &db.q0(&json!({"action": "select"})),
            &errors,
            &warnings,
            "final select",
        );
        assert_eq!(db.export_worldlet()["results"]["format"], "worldlet/1.0");
    });
}

fn select_with(placeholders: Map<String, Value>) -> Value {
    let mut request = json!({"action": "select", "path": ["n", {"placeholder": "p0"}]});
    request["placeholders"] = Value::Object(placeholders);
    request
}

fn create_with(bucket: Map<String, Value>) -> Value {
    let mut request = json!({"action": "create"});
    request["bucket"] = Value::Object(bucket);
    request
}

#[test]
fn pathological_requests() {
    common::each_storage(|| {
        let (errors, warnings) = registry();
        let mut db = seeded();
        let mut then = json!({"path": ["n", 1]});
        for _ in 0..1000 {
            then = Value::Object(Map::from_iter([("then".to_owned(), then)]));
        }
        let link = |i: usize| (format!("p{i}"), json!({"placeholder": format!("p{}", i + 1)}));
        let chain: Map<String, Value> = (0..10_000).map(link).collect();
        let mut cycle = chain.clone();
        cycle.insert("p10000".into(), json!({"placeholder": "p0"}));
        let wide: Map<String, Value> = (0..20_000).map(|i| (format!("k{i}"), json!(i))).collect();
        for (what, request, id) in [
            (
                "1000 nested then blocks",
                json!({"action": "select", "then": then}),
                Some("invalid_request"),
            ),
            (
                "a 10000-placeholder chain",
                select_with(chain),
                Some("invalid_request"),
            ),
            (
                "a 10001-placeholder cycle",
                select_with(cycle),
                Some("invalid_request"),
            ),
            ("a 20000-key bucket", create_with(wide), None),
            (
                "a huge limit",
                json!({"action": "select", "limit": u64::MAX, "offset": u64::MAX}),
                None,
            ),
            (
                "a 1 MB string",
                json!({"action": "select", "path": ["s", "x".repeat(1 << 20)]}),
                None,
            ),
        ] {
            let answer = db.q0(&request);
            assert_envelope(&answer, &errors, &warnings, what);
            if let Some(id) = id {
                assert_eq!(answer["errors"][0]["id"], id, "{what}: {}", answer["errors"][0]);
            }
        }
        // Limit 0 reads nothing: not even a placeholder that is undefined.
        let none = db.q0(&json!({"action": "select", "limit": 0, "path": ["n", {"placeholder": "nowhere"}]}));
        assert_eq!(none["results"], json!({"count": 0, "records": []}));
    });
}
