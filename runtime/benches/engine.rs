//! Mikobase engine benchmark, in-process: each operation beside direct rusqlite doing the
//! equivalent SQL on the same data, in the same run.
//!
//! `cargo bench -p caspian-ipc --bench engine` (add `-- --quick` for 10k records), or
//! `cargo xtask bench`. In-process, but run through the same driver as the others: rounds
//! pinned to one CPU and unpinned, interleaved, medians (see `common/driver.rs`).

mod common;

use std::time::Instant;

use caspian_ipc::mikobase::engine::Engine;
use common::driver::met;
use common::{drive, Report, Round, Table};
use rusqlite::{params, Connection};
use serde_json::{json, Map, Value};

const CLASS: &str = "example.org/bench/item";
const COLOURS: [&str; 3] = ["red", "green", "blue"];

fn bucket(i: usize) -> Value {
    json!({"n": i, "colour": COLOURS[i % 3], "name": format!("item{i}")})
}

/// Mean µs per call of `f` over `n` calls.
fn time(n: usize, mut f: impl FnMut(usize)) -> f64 {
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// The direct side's query: the record columns of `t`, then `$rest`.
macro_rules! select {
    ($rest:literal) => {
        concat!("SELECT pk, bucket, stack, updated_at FROM t ", $rest)
    };
}

/// Runs a direct query with `?1` = `arg`, each row turned into the JSON record a caller
/// would need (as the engine answers it).
fn direct(raw: &Connection, query: &str, arg: &str) -> Vec<Value> {
    let mut statement = raw.prepare_cached(query).unwrap();
    let rows = statement
        .query_map([arg], |r| {
            let text = |i: usize| r.get::<_, String>(i);
            let mut record = Map::with_capacity(4);
            record.insert("pk".into(), Value::String(text(0)?));
            record.insert("bucket".into(), serde_json::from_str(&text(1)?).unwrap());
            record.insert("stack".into(), serde_json::from_str(&text(2)?).unwrap());
            record.insert("updated_at".into(), Value::String(text(3)?));
            Ok(Value::Object(record))
        })
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// µs below a millisecond, ms above.
fn shown(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.1} ms", us / 1000.0)
    }
}

const OPERATIONS: [(&str, &str); 6] = [
    ("create", "create (validated)"),
    ("pk", "select by pk"),
    ("filter", "class select + path filter (1/3 of the records)"),
    ("sorted", "class select sorted by a field, limit 10"),
    (
        "sorted_filtered",
        "class select + starts-with filter, sorted, limit 10",
    ),
    ("folded", "class select sorted case-insensitively, limit 10"),
];

/// One round: each operation through the engine, then directly.
fn round(quick: bool) -> Round {
    let records = if quick { 10_000 } else { 100_000 };

    let mut db = Engine::memory();
    db.q0(&json!({"action": "create", "class": "puck.uno/class", "bucket": {"name": CLASS, "fields": {"n": {"class": "number"}}}}));
    let mut pks = Vec::with_capacity(records);
    let engine_create = time(records, |i| {
        let out = db.q0(&json!({"action": "create", "class": CLASS, "bucket": bucket(i)}));
        pks.push(out["results"]["pk"].as_str().expect("created").to_owned());
    });

    let raw = Connection::open_in_memory().unwrap();
    raw.execute_batch("CREATE TABLE t (seq INTEGER PRIMARY KEY, pk TEXT UNIQUE, class TEXT, bucket TEXT, stack TEXT, updated_at TEXT); CREATE INDEX t_class ON t(class);").unwrap();
    let stack = json!({"shadow": {}, "a": {"class": CLASS}}).to_string();
    let raw_create = time(records, |i| {
        raw.prepare_cached("INSERT INTO t (pk, class, bucket, stack, updated_at) VALUES (?1, ?2, ?3, ?4, '2026-01-01T00:00:00.000')")
            .unwrap()
            .execute(params![pks[i], CLASS, bucket(i).to_string(), stack])
            .unwrap();
    });

    let lookups = records.min(20_000);
    let engine_pk = time(lookups, |i| {
        let out = db.q0(&json!({"action": "select", "pk": pks[(i * 7919) % records]}));
        assert_eq!(out["results"]["count"], 1);
    });
    let raw_pk = time(lookups, |i| {
        let found = direct(&raw, select!("WHERE pk = ?1"), &pks[(i * 7919) % records]);
        assert_eq!(found.len(), 1);
    });

    let scans = 5;
    let engine_filter = time(scans, |_| {
        let out = db.q0(&json!({"action": "select", "class": CLASS, "path": ["colour", "red"]}));
        assert_eq!(out["results"]["count"], records.div_ceil(3));
    });
    let raw_filter = time(scans, |_| {
        let found = direct(
            &raw,
            select!("WHERE class = ?1 AND json_extract(bucket, '$.colour') = 'red'"),
            CLASS,
        );
        assert_eq!(found.len(), records.div_ceil(3));
    });
    let engine_sorted = time(scans, |_| {
        let out = db
            .q0(&json!({"action": "select", "class": CLASS, "sort": ["n", {"reverse": true}], "limit": 10}));
        assert_eq!(out["results"]["records"][0]["bucket"]["n"], records - 1);
    });
    let raw_sorted = time(scans, |_| {
        let found = direct(
            &raw,
            select!("WHERE class = ?1 ORDER BY json_extract(bucket, '$.n') DESC LIMIT 10"),
            CLASS,
        );
        assert_eq!(found[0]["bucket"]["n"], records - 1);
    });
    // A condition SQL cannot decide (starts-with) over the SQL order: rows stream in
    // sort order and examining stops at the tenth match.
    let engine_sorted_filtered = time(scans, |_| {
        let out = db.q0(
            &json!({"action": "select", "class": CLASS, "path": ["name", {"starts-with": "item1"}],
                                "sort": ["n", {"reverse": true}], "limit": 10}),
        );
        assert_eq!(out["results"]["count"], 10);
    });
    let raw_sorted_filtered = time(scans, |_| {
        let found = direct(&raw, select!("WHERE class = ?1 AND substr(json_extract(bucket, '$.name'), 1, 5) = 'item1' ORDER BY json_extract(bucket, '$.n') DESC LIMIT 10"),
            CLASS,
        );
        assert_eq!(found.len(), 10);
    });
    // A folded sort (case-insensitive): SQLite's lower() knows only ASCII, so every
    // candidate is ranked in Rust.
    let engine_folded = time(scans, |_| {
        let out = db.q0(&json!({"action": "select", "class": CLASS, "sort": ["name", {"case-sensitive": false}], "limit": 10}));
        assert_eq!(out["results"]["records"][0]["bucket"]["name"], "item0");
    });
    let raw_folded = time(scans, |_| {
        let found = direct(
            &raw,
            select!("WHERE class = ?1 ORDER BY lower(json_extract(bucket, '$.name')) LIMIT 10"),
            CLASS,
        );
        assert_eq!(found[0]["bucket"]["name"], "item0");
    });

    let mut round = Round::default();
    round.put("records", records as f64);
    for (key, engine, raw) in [
        ("create", engine_create, raw_create),
        ("pk", engine_pk, raw_pk),
        ("filter", engine_filter, raw_filter),
        ("sorted", engine_sorted, raw_sorted),
        ("sorted_filtered", engine_sorted_filtered, raw_sorted_filtered),
        ("folded", engine_folded, raw_folded),
    ] {
        round.put(&format!("{key}.engine"), engine);
        round.put(&format!("{key}.raw"), raw);
    }
    round
}

fn render(report: &Report) -> String {
    let mut table = Table::new(&[
        "operation",
        "pinned: engine",
        "direct",
        "ratio",
        "unpinned: engine",
        "direct",
        "ratio",
    ]);
    for (key, name) in OPERATIONS {
        table.row(report.row(name, |s| {
            let (engine, raw) = (
                s.median(&format!("{key}.engine")),
                s.median(&format!("{key}.raw")),
            );
            [shown(engine), shown(raw), format!("{:.2}×", engine / raw)]
        }));
    }
    let mut target = Table::new(&["target of issue 4", "pinned (CPU 0)", "met", "unpinned", "met"]);
    target.row(report.row("select by pk within 2× the direct lookup", |s| {
        let ratio = s.median("pk.engine") / s.median("pk.raw");
        [format!("{ratio:.2}×"), met(ratio <= 2.0)]
    }));
    format!(
        "records: {}\n\n{}\n{}\n\n{}",
        report.pinned.median("records"),
        table.render(),
        report.verdict(),
        target.render()
    )
}

fn main() {
    drive(round, render);
}
