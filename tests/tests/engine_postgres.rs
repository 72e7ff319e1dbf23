//! Two engines (two servers) on one PostgreSQL database: transactions that increment one
//! counter never lose an increment, a unique value written by both at once is taken by
//! exactly one, uncommitted writes are invisible to the other server, and class
//! definitions written by one are used by the other. Skipped, saying so, without
//! PostgreSQL; under `CI=true` a missing PostgreSQL fails.

#[path = "engine_common.rs"]
mod common;

use std::sync::Barrier;

use caspian_ipc::mikobase::engine::{Engine, Storage};
use common::{error_id, ok};
use serde_json::{json, Value};

/// Two engines on one fresh database, or `None` (reported) without PostgreSQL.
fn two_servers() -> Option<(String, Engine, Engine)> {
    let config = common::fresh_database()?;
    let open = || {
        Engine::open(Storage::Postgres(config.clone()), "rw")
            .unwrap_or_else(|p| panic!("open {config}: {} {}", p.id, p.details))
    };
    let a = open();
    let b = open();
    Some((config, a, b))
}

fn create(db: &mut Engine, class: &str, bucket: Value) -> Value {
    db.q0(&json!({"action": "create", "class": class, "bucket": bucket}))
}

fn pk_of(envelope: Value) -> String {
    ok(envelope)["pk"].as_str().unwrap().to_owned()
}

/// Whether a failed envelope is a conflict worth running again.
fn retryable(envelope: &Value) -> bool {
    envelope["success"] == false && envelope["errors"][0]["details"]["retryable"] == true
}

/// One increment in a transaction: read, +1, update, commit. `false`: a conflict, rolled
/// back, to run again.
fn increment(db: &mut Engine, pk: &str) -> bool {
    let tx = ok(db.q0(&json!({"action": "transaction"})))["transaction"]
        .as_str()
        .unwrap()
        .to_owned();
    let read = db.q0(&json!({"action": "select", "pk": pk, "transaction": tx}));
    let n = ok(read)["records"][0]["bucket"]["n"].as_i64().unwrap();
    let updated = db.q0(&json!({"action": "update", "pk": pk, "bucket": {"n": n + 1}, "transaction": tx}));
    if retryable(&updated) {
        ok(db.q0(&json!({"action": "rollback", "transaction": tx})));
        return false;
    }
    ok(updated);
    let committed = db.q0(&json!({"action": "commit", "transaction": tx}));
    if retryable(&committed) {
        return false;
    }
    ok(committed);
    true
}

#[test]
fn two_servers_incrementing_one_counter_in_transactions_lose_nothing() {
    let Some((_, mut a, mut b)) = two_servers() else {
        return;
    };
    const EACH: usize = 200;
    let pk = pk_of(create(&mut a, "puck.uno/record", json!({"n": 0})));
    let start = Barrier::new(2);
    let run = |db: &mut Engine| {
        start.wait();
        let mut retries = 0;
        for _ in 0..EACH {
            let mut done = false;
            for _ in 0..10_000 {
                if increment(db, &pk) {
                    done = true;
                    break;
                }
                retries += 1;
            }
            assert!(done, "an increment kept conflicting");
        }
        retries
    };
    let retries: Vec<usize> = std::thread::scope(|s| {
        let (run, a, b) = (&run, &mut a, &mut b);
        let ta = s.spawn(move || run(a));
        let tb = s.spawn(move || run(b));
        vec![ta.join().unwrap(), tb.join().unwrap()]
    });
    let read = ok(a.record_by_pk(&pk));
    assert_eq!(read["bucket"]["n"], json!(2 * EACH), "retries: {retries:?}");
    eprintln!("conflicts retried by each server: {retries:?}");
    assert_eq!(ok(b.record_by_pk(&pk))["bucket"]["n"], json!(2 * EACH));
}

#[test]
fn a_unique_value_written_by_both_servers_at_once_is_taken_by_exactly_one() {
    let Some((_, mut a, mut b)) = two_servers() else {
        return;
    };
    create(
        &mut a,
        "puck.uno/class",
        json!({
            "name": "example.org/crew/badge",
            "fields": {"code": {"class": "string", "unique": true}},
        }),
    );
    const ROUNDS: usize = 40;
    let start = Barrier::new(2);
    let run = |db: &mut Engine| {
        (0..ROUNDS)
            .map(|i| {
                start.wait();
                create(db, "example.org/crew/badge", json!({"code": format!("c{i}")}))
            })
            .collect::<Vec<_>>()
    };
    let (from_a, from_b): (Vec<Value>, Vec<Value>) = std::thread::scope(|s| {
        let (run, a, b) = (&run, &mut a, &mut b);
        let ta = s.spawn(move || run(a));
        let tb = s.spawn(move || run(b));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    for (i, (x, y)) in from_a.iter().zip(&from_b).enumerate() {
        let (won, lost) = match (x["success"] == true, y["success"] == true) {
            (true, false) => (x, y),
            (false, true) => (y, x),
            _ => panic!("round {i}: exactly one must win: {x} / {y}"),
        };
        assert_eq!(error_id(lost), "unique-violation", "round {i}: {lost}");
        let details = &lost["errors"][0]["details"];
        assert_eq!(details["class"], "example.org/crew/badge");
        assert_eq!(details["fields"], json!(["code"]));
        assert_eq!(details["values"], json!([format!("c{i}")]));
        assert_eq!(
            details["existing_pk"], won["results"]["pk"],
            "round {i}: {details}"
        );
    }
    let all = ok(a.q0(&json!({"action": "select", "class": "example.org/crew/badge"})));
    assert_eq!(all["count"], json!(ROUNDS));
}

#[test]
fn uncommitted_writes_of_one_server_are_invisible_to_the_other() {
    let Some((_, mut a, mut b)) = two_servers() else {
        return;
    };
    let kept = pk_of(create(&mut a, "puck.uno/record", json!({"name": "Ripley"})));
    let tx = ok(a.q0(&json!({"action": "transaction"})))["transaction"].clone();
    let added = pk_of(a.q0(&json!({"action": "create", "bucket": {"name": "Hicks"}, "transaction": tx})));
    ok(a.q0(&json!({"action": "update", "pk": kept, "bucket": {"name": "Ellen Ripley"}, "transaction": tx})));
    // Inside, A sees its own writes; B sees neither.
    assert_eq!(
        ok(a.q0(&json!({"action": "select", "transaction": tx})))["count"],
        2
    );
    let seen = ok(b.q0(&json!({"action": "select"})));
    assert_eq!(seen["count"], 1, "{seen}");
    assert_eq!(seen["records"][0]["bucket"]["name"], "Ripley");
    assert_eq!(error_id(&b.record_by_pk(&added)), "record_not_found");
    // Committed, B sees both.
    ok(a.q0(&json!({"action": "commit", "transaction": tx})));
    assert_eq!(ok(b.record_by_pk(&added))["bucket"]["name"], "Hicks");
    assert_eq!(ok(b.record_by_pk(&kept))["bucket"]["name"], "Ellen Ripley");
    // Rolled back, nothing was ever visible.
    let tx = ok(a.q0(&json!({"action": "transaction"})))["transaction"].clone();
    let gone = pk_of(a.q0(&json!({"action": "create", "bucket": {"name": "Bishop"}, "transaction": tx})));
    ok(a.q0(&json!({"action": "rollback", "transaction": tx})));
    assert_eq!(error_id(&b.record_by_pk(&gone)), "record_not_found");
    assert_eq!(error_id(&a.record_by_pk(&gone)), "record_not_found");
}

#[test]
fn class_definitions_written_by_one_server_are_used_by_the_other() {
    let Some((config, mut a, mut b)) = two_servers() else {
        return;
    };
    // B has loaded its (empty) classes; A defines one: B uses it on its next write.
    assert_eq!(
        error_id(&create(&mut b, "example.org/crew/person", json!({}))),
        "class-not-found"
    );
    let def = pk_of(create(
        &mut a,
        "puck.uno/class",
        json!({
            "name": "example.org/crew/person",
            "fields": {"name": {"class": "string", "required": true}},
        }),
    ));
    assert_eq!(
        error_id(&create(&mut b, "example.org/crew/person", json!({}))),
        "validation-failed"
    );
    pk_of(create(
        &mut b,
        "example.org/crew/person",
        json!({"name": "Ripley"}),
    ));
    assert_eq!(ok(b.by_class("example.org/crew/person"))["count"], 1);
    // A deletes the definition: B refuses the class again; a third server agrees.
    ok(a.q0(&json!({"action": "delete", "pk": def})));
    assert_eq!(
        error_id(&create(
            &mut b,
            "example.org/crew/person",
            json!({"name": "Hicks"})
        )),
        "class-not-found"
    );
    let mut c = Engine::open(Storage::Postgres(config), "r").unwrap();
    assert_eq!(ok(c.export_schema())["classes"], json!([]));
    assert_eq!(
        error_id(&create(&mut c, "puck.uno/record", json!({}))),
        "read-only-connection"
    );
}

#[test]
fn the_database_refuses_a_unique_value_a_transaction_cannot_see_taken() {
    let Some((_, mut a, mut b)) = two_servers() else {
        return;
    };
    create(
        &mut a,
        "puck.uno/class",
        json!({
            "name": "example.org/crew/badge",
            "fields": {"code": {"class": "string", "unique": true}},
        }),
    );
    // B's transaction takes its snapshot; then A commits the value.
    let tx = ok(b.q0(&json!({"action": "transaction"})))["transaction"].clone();
    ok(b.q0(&json!({"action": "select", "transaction": tx})));
    let holder = pk_of(create(&mut a, "example.org/crew/badge", json!({"code": "X"})));
    // B's own check cannot see A's record: the uniques table refuses the write.
    let refused = b.q0(&json!({"action": "create", "class": "example.org/crew/badge", "bucket": {"code": "X"}, "transaction": tx}));
    assert_eq!(error_id(&refused), "unique-violation", "{refused}");
    let details = &refused["errors"][0]["details"];
    assert_eq!(details["existing_pk"], Value::Null, "{details}");
    assert_eq!(details["values"], json!(["X"]));
    assert!(
        details["fix"].as_str().unwrap().contains("roll back"),
        "{details}"
    );
    // The transaction is still usable; run again, the record is named.
    ok(b.q0(&json!({"action": "create", "class": "example.org/crew/badge", "bucket": {"code": "Y"}, "transaction": tx})));
    ok(b.q0(&json!({"action": "rollback", "transaction": tx})));
    let again = create(&mut b, "example.org/crew/badge", json!({"code": "X"}));
    assert_eq!(
        again["errors"][0]["details"]["existing_pk"],
        json!(holder),
        "{again}"
    );
    let all = ok(a.q0(&json!({"action": "select", "class": "example.org/crew/badge"})));
    assert_eq!(all["count"], 1, "{all}");
}
