//! Every documented failure answers its error id: one table, one row per failure, with
//! the request that triggers it and what its details must say. The table covers every
//! error id of the spec's registry except `transaction-busy` and `rejected-by-listener`,
//! which only the shared server produces (tests/tests/mikobase.rs).

#[path = "engine_common.rs"]
mod common;

use std::collections::BTreeSet;

use caspian_ipc::mikobase::engine::{Engine, Storage};
use common::{create, define, ok, registry};
use serde_json::{json, Value};

/// Ids only the shared server produces.
const SERVER_ONLY: &[&str] = &["transaction-busy", "rejected-by-listener"];

/// A store with one class (`unique` serial, required rank), one live and one deleted
/// record; answers it with the two pks.
fn store() -> (Engine, String, String) {
    let mut db = common::engine();
    define(
        &mut db,
        json!({"name": "example.org/crew/officer", "fields": {
            "rank": {"class": "string", "required": true},
            "serial": {"class": "string", "unique": true}
        }}),
    );
    let live = create(
        &mut db,
        "example.org/crew/officer",
        json!({"rank": "Private", "serial": "S1"}),
    );
    let gone = create(&mut db, "example.org/crew/officer", json!({"rank": "Private"}));
    ok(db.q0(&json!({"action": "delete", "pk": gone})));
    (db, live, gone)
}

fn q0(request: Value) -> Value {
    store().0.q0(&request)
}

fn opened(mode: &str) -> Value {
    match Engine::open(Storage::Memory, mode) {
        Ok(_) => json!({"success": true}),
        Err(problem) => json!({"success": false, "errors": [problem.to_json()]}),
    }
}

/// Opens a store on a file that is not a SQLite database.
fn opened_on_garbage() -> Value {
    let path = std::env::temp_dir().join(format!("mikobase-garbage-{}.db", std::process::id()));
    let answer = std::fs::write(&path, vec![b'x'; 4096])
        .map_err(|e| e.to_string())
        .and_then(|()| Engine::open(Storage::File(path.clone()), "rw").map_err(|p| p.to_json().to_string()));
    let _ = std::fs::remove_file(&path);
    match answer {
        Ok(_) => json!({"success": true}),
        Err(problem) => {
            json!({"success": false, "errors": [serde_json::from_str::<Value>(&problem).unwrap_or(json!(problem))]})
        }
    }
}

/// Opens a file store `first`, then again `second` while the first is open.
fn opened_twice(first: &str, second: &str) -> Value {
    let path = std::env::temp_dir().join(format!(
        "mikobase-locked-{first}-{second}-{}.db",
        std::process::id()
    ));
    let held = Engine::open(Storage::File(path.clone()), "rw").and_then(|rw| {
        drop(rw);
        Engine::open(Storage::File(path.clone()), first)
    });
    let answer = match held {
        Ok(_held) => match Engine::open(Storage::File(path.clone()), second) {
            Ok(_) => json!({"success": true}),
            Err(problem) => json!({"success": false, "errors": [problem.to_json()]}),
        },
        Err(problem) => json!({"opening the first failed": problem.to_json()}),
    };
    let _ = std::fs::remove_file(&path);
    answer
}

/// One documented failure.
struct Case {
    id: &'static str,
    failure: &'static str,
    run: fn() -> Value,
    /// What the details must hold (a subset: every key here, with this value).
    details: Value,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "store-locked",
            failure: "a second rw connection to a file store",
            run: || opened_twice("rw", "rw"),
            details: json!({"mode": "rw"}),
        },
        Case {
            id: "store-locked",
            failure: "an r connection while an rw one holds the store",
            run: || opened_twice("rw", "r"),
            details: json!({"mode": "r"}),
        },
        Case {
            id: "store-locked",
            failure: "an rw connection while an r one holds the store",
            run: || opened_twice("r", "rw"),
            details: json!({"mode": "rw"}),
        },
        Case {
            id: "storage-failed",
            failure: "the store file is not a SQLite database",
            run: opened_on_garbage,
            details: json!({"storage_error": "file is not a database"}),
        },
        Case {
            id: "invalid_request",
            failure: "the request is not a JSON object",
            run: || q0(json!(["select"])),
            details: json!({"got": ["select"]}),
        },
        Case {
            id: "invalid_request",
            failure: "a required field is missing",
            run: || q0(json!({"action": "create"})),
            details: json!({"missing_fields": ["bucket"]}),
        },
        Case {
            id: "invalid_request",
            failure: "no action",
            run: || q0(json!({"bucket": {}})),
            details: json!({"missing_fields": ["action"]}),
        },
        Case {
            id: "invalid_request",
            failure: "an unknown field",
            run: || q0(json!({"action": "select", "limt": 3})),
            details: json!({"unknown_fields": ["limt"]}),
        },
        Case {
            id: "invalid_request",
            failure: "a field of the wrong type",
            run: || q0(json!({"action": "select", "limit": "3"})),
            details: json!({"wrong_types": [{"field": "limit", "reason": "invalid type: string \"3\", expected u64"}]}),
        },
        Case {
            id: "invalid_request",
            failure: "an unknown operator (found before any record is read)",
            run: || common::engine().q0(&json!({"action": "select", "path": ["age", {"bigger": 3}]})),
            details: json!({"unknown_operators": ["bigger"]}),
        },
        Case {
            id: "invalid_request",
            failure: "an unknown key in a nested block",
            run: || common::engine().q0(&json!({"action": "select", "all": [{"then": {"paht": ["a", 1]}}]})),
            details: json!({"at": "all[0].then", "unknown_fields": ["paht"]}),
        },
        Case {
            id: "invalid_request",
            failure: "null where a condition goes (D11: only some fields read null as absent)",
            run: || q0(json!({"action": "select", "then": {"path": null}})),
            details: json!({"at": "then.path", "path": null}),
        },
        Case {
            id: "invalid_request",
            failure: "a malformed sort path",
            run: || q0(json!({"action": "select", "sort": ["age", {"backwards": true}]})),
            details: json!({"wrong_types": [{"field": "sort[1]"}]}),
        },
        Case {
            id: "invalid_request",
            failure: "a class name that is not a UNS name",
            run: || q0(json!({"action": "create", "class": "officer", "bucket": {}})),
            details: json!({"class": "officer"}),
        },
        Case {
            id: "invalid_request",
            failure: "malformed JSON",
            run: || store().0.q0_bytes(0, b"{\"action\": \"select\",}"),
            details: json!({"line": 1}),
        },
        Case {
            id: "invalid_request",
            failure: "nesting deeper than the engine reads",
            run: || {
                let mut deep = json!(1);
                for _ in 0..100 {
                    deep = json!([deep]);
                }
                q0(json!({"action": "create", "bucket": {"deep": deep}}))
            },
            details: json!({"max_depth": 64}),
        },
        Case {
            id: "invalid_request",
            failure: "a worldlet of another format",
            run: || {
                store()
                    .0
                    .import_worldlet(&json!({"format": "worldlet", "format_version": "1.0"}))
            },
            details: json!({"format": "worldlet"}),
        },
        Case {
            id: "class-not-found",
            failure: "select by an undefined class",
            run: || q0(json!({"action": "select", "class": "example.org/ghost"})),
            details: json!({"class": "example.org/ghost"}),
        },
        Case {
            id: "class-not-found",
            failure: "create with an undefined class",
            run: || q0(json!({"action": "create", "class": "example.org/ghost", "bucket": {}})),
            details: json!({"class": "example.org/ghost"}),
        },
        Case {
            id: "class-not-found",
            failure: "a definition inheriting from an undefined class",
            run: || {
                q0(
                    json!({"action": "create", "class": "puck.uno/class", "bucket": {"name": "example.org/x", "inherits": "example.org/ghost"}}),
                )
            },
            details: json!({"class": "example.org/ghost"}),
        },
        Case {
            id: "record_not_found",
            failure: "update of an unknown pk",
            run: || q0(json!({"action": "update", "pk": "no-such-pk", "bucket": {}})),
            details: json!({"pk": "no-such-pk"}),
        },
        Case {
            id: "record_not_found",
            failure: "delete of an unknown pk",
            run: || q0(json!({"action": "delete", "pk": "no-such-pk"})),
            details: json!({"pk": "no-such-pk"}),
        },
        Case {
            id: "record_not_found",
            failure: "record_by_pk of an unknown pk",
            run: || store().0.record_by_pk("no-such-pk"),
            details: json!({"pk": "no-such-pk"}),
        },
        Case {
            id: "record_deleted",
            failure: "update of a deleted record",
            run: || {
                let (mut db, _, gone) = store();
                db.q0(&json!({"action": "update", "pk": gone, "bucket": {"rank": "x"}}))
            },
            details: json!({}),
        },
        Case {
            id: "record_deleted",
            failure: "delete of a deleted record (without if_exists)",
            run: || {
                let (mut db, _, gone) = store();
                db.q0(&json!({"action": "delete", "pk": gone}))
            },
            details: json!({}),
        },
        Case {
            id: "invalid-mode",
            failure: "a mode string with surrounding whitespace",
            run: || opened(" rw"),
            details: json!({"mode": " rw"}),
        },
        Case {
            id: "invalid-mode",
            failure: "a mode string that is no mode",
            run: || opened("rx"),
            details: json!({"mode": "rx"}),
        },
        Case {
            id: "mode-not-supported",
            failure: "write-only mode",
            run: || opened("w"),
            details: json!({"mode": "w", "supported": ["rw", "wr", "r"]}),
        },
        Case {
            id: "read-only-connection",
            failure: "a write on a read-only connection",
            run: || {
                let file = std::env::temp_dir().join(format!("mb-errors-{}.db", std::process::id()));
                drop(Engine::open(Storage::File(file.clone()), "rw").unwrap());
                let answer = Engine::open(Storage::File(file.clone()), "r")
                    .unwrap()
                    .q0(&json!({"action": "create", "bucket": {}}));
                let _ = std::fs::remove_file(&file);
                answer
            },
            details: json!({}),
        },
        Case {
            id: "action-not-supported",
            failure: "an action the engine does not implement",
            run: || q0(json!({"action": "merge"})),
            details: json!({"action": "merge", "supported": ["select", "create", "update", "delete", "transaction", "commit", "rollback"]}),
        },
        Case {
            id: "request-too-large",
            failure: "a request over the size limit",
            run: || {
                let mut db = common::engine();
                db.set_request_limit(16);
                db.q0_bytes(0, br#"{"action": "select", "limit": 1}"#)
            },
            details: json!({"limit_bytes": 16, "got_bytes": 32}),
        },
        Case {
            id: "transaction-not-found",
            failure: "commit of an unknown transaction id",
            run: || q0(json!({"action": "commit", "transaction": "tx42"})),
            details: json!({"transaction": "tx42", "open": []}),
        },
        Case {
            id: "transaction-not-found",
            failure: "a write bound to an unknown transaction",
            run: || {
                q0(
                    json!({"action": "create", "bucket": {"rank": "x"}, "class": "example.org/crew/officer", "transaction": "tx42"}),
                )
            },
            details: json!({"transaction": "tx42"}),
        },
        Case {
            id: "transaction-invalidated",
            failure: "commit of a transaction whose enclosing one was rolled back",
            run: || {
                let mut db = common::engine();
                let outer = ok(db.q0(&json!({"action": "transaction"})))["transaction"].clone();
                let inner =
                    ok(db.q0(&json!({"action": "transaction", "parent": outer})))["transaction"].clone();
                ok(db.q0(&json!({"action": "rollback", "transaction": outer})));
                db.q0(&json!({"action": "commit", "transaction": inner}))
            },
            details: json!({"transaction": "tx2"}),
        },
        Case {
            id: "transaction-expired",
            failure: "commit of a transaction the server cut at its maximum hold",
            run: || {
                let mut db = common::engine();
                let t = ok(db.q0_as(7, &json!({"action": "transaction"})))["transaction"].clone();
                db.expire_owner(
                    7,
                    &json!({"max_hold_ms": 10, "fix": "its work is gone: keep transactions short"}),
                );
                db.q0_as(7, &json!({"action": "commit", "transaction": t}))
            },
            details: json!({"transaction": "tx1", "max_hold_ms": 10}),
        },
        Case {
            id: "validation-failed",
            failure: "a bucket breaking its class definition",
            run: || {
                q0(json!({"action": "create", "class": "example.org/crew/officer", "bucket": {"serial": 5}}))
            },
            details: json!({"violations": [
                {"field": "rank", "problem": "required"},
                {"field": "serial", "problem": "wrong type", "expected": "string", "found": 5},
            ]}),
        },
        Case {
            id: "validation-failed",
            failure: "an invalid class definition",
            run: || q0(json!({"action": "create", "class": "puck.uno/class", "bucket": {"name": "nodot"}})),
            details: json!({"class_definition": [{"field": "name"}]}),
        },
        Case {
            id: "validation-failed",
            failure: "a duplicate class name",
            run: || {
                q0(
                    json!({"action": "create", "class": "puck.uno/class", "bucket": {"name": "example.org/crew/officer"}}),
                )
            },
            details: json!({"reason": "duplicate class name", "name": "example.org/crew/officer"}),
        },
        Case {
            id: "unique-violation",
            failure: "a unique field taken by an active record",
            run: || {
                q0(
                    json!({"action": "create", "class": "example.org/crew/officer", "bucket": {"rank": "x", "serial": "S1"}}),
                )
            },
            details: json!({"class": "example.org/crew/officer", "fields": ["serial"], "values": ["S1"]}),
        },
        Case {
            id: "placeholder-undefined",
            failure: "a placeholder reached but not defined",
            run: || q0(json!({"action": "select", "path": ["rank", {"placeholder": "who"}]})),
            details: json!({"placeholder": "who"}),
        },
        Case {
            id: "placeholder-circular",
            failure: "placeholders referring to each other",
            run: || {
                q0(json!({
                    "action": "select",
                    "placeholders": {"a": {"placeholder": "b"}, "b": {"placeholder": "a"}},
                    "path": ["rank", {"placeholder": "a"}],
                }))
            },
            details: json!({"cycle": ["a", "b", "a"]}),
        },
    ]
}

/// Whether `actual` holds everything in `expected` (objects: every key, recursively;
/// arrays: element by element, same length; anything else: equal).
fn holds(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e.iter().all(|(k, v)| a.get(k).is_some_and(|w| holds(w, v))),
        (Value::Array(a), Value::Array(e)) => a.len() == e.len() && a.iter().zip(e).all(|(x, y)| holds(x, y)),
        _ => actual == expected,
    }
}

#[test]
fn every_documented_failure_answers_its_error_id() {
    common::each_storage(|| {
        for case in cases() {
            let envelope = (case.run)();
            let what = format!("{} ({}): {envelope}", case.id, case.failure);
            assert_eq!(envelope["success"], false, "{what}");
            let error = &envelope["errors"][0];
            assert_eq!(error["id"], case.id, "{what}");
            let details = &error["details"];
            assert!(
                holds(details, &case.details),
                "details lack {}: {what}",
                case.details
            );
            let fix = details["fix"].as_str().unwrap_or_default();
            assert!(fix.len() > 10, "the details say what to fix: {what}");
        }
    });
}

#[test]
fn readers_share_a_store_and_a_closed_writer_lets_go() {
    common::each_storage(|| {
        assert_eq!(
            opened_twice("r", "r")["success"],
            true,
            "two r connections share the store"
        );
        let path = std::env::temp_dir().join(format!("mikobase-relock-{}.db", std::process::id()));
        let first = Engine::open(Storage::File(path.clone()), "rw").map_err(|p| p.to_json());
        drop(first);
        let again = Engine::open(Storage::File(path.clone()), "rw").map_err(|p| p.to_json());
        let _ = std::fs::remove_file(&path);
        assert!(again.is_ok(), "the lock goes with the connection: {again:?}");
    });
}

#[test]
fn the_table_covers_the_registry() {
    common::each_storage(|| {
        let (errors, _) = registry();
        let expected: BTreeSet<&str> = errors
            .iter()
            .map(String::as_str)
            .filter(|id| !SERVER_ONLY.contains(id))
            .collect();
        let covered: BTreeSet<&str> = cases().iter().map(|c| c.id).collect();
        assert_eq!(covered, expected, "one row at least per registry error id");
        for id in SERVER_ONLY {
            assert!(errors.iter().any(|e| e == id), "{id} is still in the registry");
        }
    });
}

/// A long-running server does not remember every ended transaction: past the last 1,024,
/// an expired id answers `transaction-not-found` (still true), the recent ones
/// `transaction-expired`.
#[test]
fn only_recent_ended_transactions_are_remembered() {
    common::each_storage(|| {
        let mut db = common::engine();
        let mut ids = Vec::new();
        for _ in 0..1100 {
            let t = ok(db.q0_as(7, &json!({"action": "transaction"})))["transaction"].clone();
            db.expire_owner(7, &json!({"fix": "keep transactions short"}));
            ids.push(t);
        }
        let commit = |db: &mut Engine, t: &Value| db.q0_as(7, &json!({"action": "commit", "transaction": t}));
        assert_eq!(
            commit(&mut db, &ids[0])["errors"][0]["id"],
            "transaction-not-found"
        );
        assert_eq!(
            commit(&mut db, &ids[1099])["errors"][0]["id"],
            "transaction-expired"
        );
    });
}
