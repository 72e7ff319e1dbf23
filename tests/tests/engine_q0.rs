//! The Mikobase engine in-process: the reference's examples as conformance tests, every
//! documented error id, class definitions, transactions, worldlets, and a differential
//! test of the SQL-pushed select against a plain evaluator.

#[path = "engine_common.rs"]
mod common;

use caspian_ipc::mikobase::engine::{Engine, Storage};
use common::{create, define, error_id, ok, surnames, OPERATORS};
use serde_json::{json, Value};

fn crew() -> Engine {
    let mut db = common::engine();
    define(
        &mut db,
        json!({"name": "example.org/crew/person", "fields": {"name": {"class": "hash"}}}),
    );
    define(
        &mut db,
        json!({
            "name": "example.org/crew/officer",
            "inherits": ["example.org/crew/person"],
            "fields": {
                "rank": {"class": "string", "required": true},
                "serial": {"class": "string", "unique": true},
                "active": {"class": "boolean", "default": true},
                "watch": {"class": "string", "one_of": ["alpha", "beta", "gamma"], "default": "alpha"}
            },
            "uniques": [["rank", "watch"]]
        }),
    );
    db
}

#[test]
fn create_then_select_returns_the_documented_record_shape() {
    common::each_storage(|| {
        let mut db = crew();
        let pk = create(
            &mut db,
            "example.org/crew/officer",
            json!({"name": {"surname": "Hicks"}, "rank": "Corporal", "serial": "CM-221"}),
        );
        assert_eq!(pk.len(), 36, "a UUID");
        assert_eq!(&pk[14..15], "4", "version 4");
        let results = ok(db.q0(&json!({"action": "select", "pk": pk})));
        assert_eq!(results["count"], 1);
        let record = &results["records"][0];
        assert_eq!(record["pk"], json!(pk));
        assert_eq!(
            record["stack"],
            json!({"shadow": {}, "a": {"class": "example.org/crew/officer"}})
        );
        assert_eq!(record["bucket"]["active"], true, "default filled");
        assert_eq!(record["bucket"]["watch"], "alpha", "default filled");
        let at = record["updated_at"].as_str().unwrap();
        assert_eq!(at.len(), "2026-04-21T14:32:00.123".len(), "{at}");
        assert_eq!(ok(db.record_by_pk(&pk))["pk"], json!(pk));
    });
}

#[test]
fn class_select_includes_subclasses_transitively() {
    common::each_storage(|| {
        let mut db = crew();
        define(
            &mut db,
            json!({"name": "example.org/crew/captain", "inherits": "example.org/crew/officer"}),
        );
        create(
            &mut db,
            "example.org/crew/person",
            json!({"name": {"surname": "Lambert"}}),
        );
        create(
            &mut db,
            "example.org/crew/officer",
            json!({"name": {"surname": "Hicks"}, "rank": "Corporal"}),
        );
        create(
            &mut db,
            "example.org/crew/captain",
            json!({"name": {"surname": "Dallas"}, "rank": "Captain"}),
        );
        let people = ok(db.q0(&json!({"action": "select", "class": "example.org/crew/person"})));
        assert_eq!(people["count"], 3);
        let officers = ok(db.by_class("example.org/crew/officer"));
        assert_eq!(surnames(&officers), vec!["Hicks", "Dallas"]);
        let both =
            ok(db.q0(&json!({"action": "select", "class": ["example.org/crew/captain", "puck.uno/class"]})));
        assert_eq!(both["count"], 4, "three definitions and the captain");
        let unknown = db.q0(&json!({"action": "select", "class": "example.org/nobody"}));
        assert_eq!(error_id(&unknown), "class-not-found");
    });
}

fn people(db: &mut Engine) {
    for (surname, given, age, certified, ships) in [
        ("Ripley", "Ellen", 35, true, vec!["Nostromo", "Sulaco"]),
        ("dallas", "Arthur", 45, true, vec!["Nostromo"]),
        ("Hicks", "Dwayne", 28, true, vec!["Sulaco"]),
        ("Lambert", "Joan", 31, false, vec!["Nostromo"]),
        ("  Bishop ", "", 40, true, vec![]),
    ] {
        create(
            db,
            "example.org/crew/person",
            json!({"name": {"surname": surname, "given": given}, "age": age, "certified": certified, "ships": ships}),
        );
    }
    create(
        db,
        "example.org/crew/person",
        json!({"name": {"surname": "Nobody"}}),
    );
}

#[test]
fn sorts_with_qualifiers_nulls_last_limit_and_offset() {
    common::each_storage(|| {
        let mut db = crew();
        people(&mut db);
        let results = ok(db.q0(&json!({
            "action": "select", "class": "example.org/crew/person",
            "sorts": [["name", "surname", {"case-sensitive": false, "collapse": true}]],
        })));
        assert_eq!(
            surnames(&results),
            vec!["  Bishop ", "dallas", "Hicks", "Lambert", "Nobody", "Ripley"]
        );
        let by_age = ok(db.q0(
        &json!({"action": "select", "sort": ["age", {"reverse": true}], "class": "example.org/crew/person"}),
    ));
        assert_eq!(
            surnames(&by_age),
            vec!["dallas", "  Bishop ", "Ripley", "Lambert", "Hicks", "Nobody"],
            "null last even reversed"
        );
        let page = ok(db.q0(&json!({"action": "select", "class": "example.org/crew/person", "sort": ["age"], "limit": 2, "offset": 1})));
        assert_eq!(surnames(&page), vec!["Lambert", "Ripley"]);
        assert_eq!(page["count"], 2);
    });
}

#[test]
fn narrowing_with_any_all_then_and_not() {
    common::each_storage(|| {
        let mut db = crew();
        people(&mut db);
        let results = ok(db.q0(&json!({
            "action": "select",
            "class": "example.org/crew/person",
            "any": [
                {"path": ["name", "surname", "Ripley"]},
                {"path": ["name", "surname", {"value": "DALLAS", "case-sensitive": false}]}
            ],
            "all": [
                {"path": ["certified", {"truthy": true}]},
                {"path": ["age", {"gte": 30}]}
            ],
            "then": {"not": true, "path": ["ships", {"includes": "Sulaco"}]}
        })));
        assert_eq!(surnames(&results), vec!["dallas"]);
    });
}

#[test]
fn every_path_operator() {
    common::each_storage(|| {
        let mut db = crew();
        people(&mut db);
        let names = |db: &mut Engine, path: Value| {
            surnames(&ok(db.q0(
                &json!({"action": "select", "class": "example.org/crew/person", "path": path}),
            )))
        };
        assert_eq!(
            names(&mut db, json!(["name", "surname", {"contains": "ick"}])),
            vec!["Hicks"]
        );
        assert_eq!(
            names(
                &mut db,
                json!(["name", "surname", {"starts-with": "rip", "case-sensitive": false}])
            ),
            vec!["Ripley"]
        );
        assert_eq!(
            names(&mut db, json!(["name", "surname", {"ends-with": "ert"}])),
            vec!["Lambert"]
        );
        assert_eq!(
            names(
                &mut db,
                json!(["name", "surname", {"value": "Bishop", "collapse": true}])
            ),
            vec!["  Bishop "]
        );
        assert_eq!(names(&mut db, json!(["age", {"gt": 40}])), vec!["dallas"]);
        assert_eq!(names(&mut db, json!(["age", {"lt": 30}])), vec!["Hicks"]);
        assert_eq!(
            names(&mut db, json!(["age", {"gte": 40, "lte": 40}])),
            vec!["  Bishop "]
        );
        assert_eq!(
            names(
                &mut db,
                json!(["ships", {"includes_all": ["Nostromo", "Sulaco"]}])
            ),
            vec!["Ripley"]
        );
        assert_eq!(
            names(&mut db, json!(["ships", {"includes_any": ["Sulaco"]}])),
            vec!["Ripley", "Hicks"]
        );
        assert_eq!(names(&mut db, json!(["age", {"exists": false}])), vec!["Nobody"]);
        assert_eq!(names(&mut db, json!(["certified", {"truthy": false}])).len(), 2);
        assert_eq!(
            names(&mut db, json!(["name", "given", {"truthy": true}])).len(),
            4
        );
        assert_eq!(names(&mut db, json!(["ships", {"any": true}])).len(), 5);
        assert_eq!(names(&mut db, json!(["age", 35])), vec!["Ripley"]);
        assert_eq!(
            names(&mut db, json!(["age", 35.0])),
            vec!["Ripley"],
            "numbers compare by value"
        );
        let bad = db.q0(&json!({"action": "select", "path": ["age", {"bigger": 3}]}));
        assert_eq!(error_id(&bad), "invalid_request");
    });
}

#[test]
fn placeholders_inherit_shadow_and_fail_only_when_reached() {
    common::each_storage(|| {
        let mut db = crew();
        people(&mut db);
        create(
            &mut db,
            "example.org/crew/person",
            json!({"name": {"surname": "ripley"}}),
        );
        let results = ok(db.q0(&json!({
        "action": "select",
        "placeholders": {
            "who": "ripley",
            "who_match": {"value": {"placeholder": "who"}, "case-sensitive": false}
        },
        "path": ["name", "surname", {"placeholder": "who_match"}],
        "then": {"placeholders": {"who": "RIPLEY"}, "path": ["name", "surname", {"placeholder": "who_match"}]}
    })));
        assert_eq!(surnames(&results), vec!["Ripley", "ripley"]);
        let shadowed = ok(db.q0(&json!({
            "action": "select",
            "placeholders": {"who": "Hicks"},
            "then": {"placeholders": {"who": "Ripley"}, "path": ["name", "surname", {"placeholder": "who"}]}
        })));
        assert_eq!(surnames(&shadowed), vec!["Ripley"]);
        let undefined = db.q0(&json!({"action": "select", "path": ["age", {"placeholder": "nope"}]}));
        assert_eq!(error_id(&undefined), "placeholder-undefined");
        let circular = db.q0(&json!({
            "action": "select", "placeholders": {"a": {"placeholder": "b"}, "b": {"placeholder": "a"}},
            "path": ["age", {"placeholder": "a"}]
        }));
        assert_eq!(error_id(&circular), "placeholder-circular");
        // never reached: the any-branch before it matches every record
        let unreached = db.q0(&json!({
            "action": "select", "class": "example.org/nothing-of-this.org/x",
        }));
        assert_eq!(error_id(&unreached), "class-not-found");
        let lazy = ok(db.q0(&json!({
            "action": "select", "pk": "no-such-pk", "path": ["age", {"placeholder": "undefined"}]
        })));
        assert_eq!(lazy["count"], 0, "no record reached the undefined placeholder");
    });
}

#[test]
fn redundant_fields_warnings() {
    common::each_storage(|| {
        let mut db = crew();
        let envelope = db.q0(&json!({"action": "select", "sort": ["a"], "sorts": [["b"]], "class": "puck.uno/record", "classes": ["puck.uno/record"]}));
        assert_eq!(envelope["success"], true);
        let warnings: Vec<Value> = envelope["warnings"].as_array().unwrap().clone();
        assert!(
            warnings.contains(&json!({"id": "redundant_fields", "details": {"fields": ["sort", "sorts"]}}))
        );
        assert!(warnings
            .contains(&json!({"id": "redundant_fields", "details": {"fields": ["class", "classes"]}})));
    });
}

#[test]
fn writes_are_validated_against_the_latest_definition() {
    common::each_storage(|| {
        let mut db = crew();
        let missing = db.q0(
            &json!({"action": "create", "class": "example.org/crew/officer", "bucket": {"watch": "delta"}}),
        );
        assert_eq!(error_id(&missing), "validation-failed");
        let violations = &missing["errors"][0]["details"]["violations"];
        assert_eq!(
            violations.as_array().unwrap().len(),
            2,
            "rank required and watch not allowed: {violations}"
        );
        let wrong_type =
            db.q0(&json!({"action": "create", "class": "example.org/crew/officer", "bucket": {"rank": 3}}));
        assert_eq!(error_id(&wrong_type), "validation-failed");
        let undefined = db.q0(&json!({"action": "create", "class": "example.org/ghost", "bucket": {}}));
        assert_eq!(error_id(&undefined), "class-not-found");
        let bad_name = db.q0(&json!({"action": "create", "class": "ghost", "bucket": {}}));
        assert_eq!(error_id(&bad_name), "invalid_request");
        let kept = create(
            &mut db,
            "example.org/crew/officer",
            json!({"rank": "Private", "serial": "S1", "notes": {"free": "form"}}),
        );
        assert_eq!(
            ok(db.record_by_pk(&kept))["bucket"]["notes"],
            json!({"free": "form"}),
            "unknown keys stored as-is"
        );
        let dup = db.q0(&json!({"action": "create", "class": "example.org/crew/officer", "bucket": {"rank": "Sergeant", "serial": "S1"}}));
        assert_eq!(error_id(&dup), "unique-violation");
        let tuple = db.q0(&json!({"action": "create", "class": "example.org/crew/officer", "bucket": {"rank": "Private", "serial": "S2"}}));
        assert_eq!(error_id(&tuple), "unique-violation", "(rank, watch) tuple");
        // redefine: rank no longer required
        let def = ok(db.q0(
        &json!({"action": "select", "class": "puck.uno/class", "path": ["name", "example.org/crew/officer"]}),
    ));
        let def_pk = def["records"][0]["pk"].as_str().unwrap().to_owned();
        ok(db.q0(&json!({"action": "update", "pk": def_pk, "bucket": {"name": "example.org/crew/officer", "inherits": "example.org/crew/person", "fields": {"rank": {"class": "string"}}}})));
        ok(db.q0(&json!({"action": "create", "class": "example.org/crew/officer", "bucket": {}})));
        let clash = db.q0(&json!({"action": "create", "class": "puck.uno/class", "bucket": {"name": "example.org/crew/person"}}));
        assert_eq!(error_id(&clash), "validation-failed", "duplicate class name");
    });
}

#[test]
fn update_replaces_and_delete_tombstones() {
    common::each_storage(|| {
        let mut db = crew();
        let pk = create(
            &mut db,
            "example.org/crew/person",
            json!({"name": {"surname": "Hudson"}, "age": 30}),
        );
        ok(db.q0(&json!({"action": "update", "pk": pk, "bucket": {"age": 31}})));
        assert_eq!(
            ok(db.record_by_pk(&pk))["bucket"],
            json!({"age": 31}),
            "bucket replaced, not merged"
        );
        ok(db.q0(&json!({"action": "update", "pk": pk, "class": "example.org/crew/officer", "bucket": {"rank": "Private"}})));
        assert_eq!(
            ok(db.record_by_pk(&pk))["stack"]["a"]["class"],
            "example.org/crew/officer"
        );
        assert_eq!(
            ok(db.q0(&json!({"action": "delete", "pk": pk}))),
            json!({"pk": pk, "deleted": true})
        );
        assert_eq!(
            error_id(&db.q0(&json!({"action": "delete", "pk": pk}))),
            "record_deleted"
        );
        assert_eq!(
            error_id(&db.q0(&json!({"action": "update", "pk": pk, "bucket": {}}))),
            "record_deleted"
        );
        assert_eq!(error_id(&db.record_by_pk(&pk)), "record_deleted");
        assert_eq!(
            ok(db.q0(&json!({"action": "delete", "pk": pk, "if_exists": true}))),
            json!({"pk": pk, "deleted": false})
        );
        assert_eq!(
            error_id(&db.q0(&json!({"action": "delete", "pk": "nope"}))),
            "record_not_found"
        );
        assert_eq!(
            error_id(&db.q0(&json!({"action": "update", "pk": "nope", "bucket": {}}))),
            "record_not_found"
        );
        assert_eq!(
            ok(db.q0(&json!({"action": "select", "pk": pk})))["count"],
            0,
            "deleted records never appear"
        );
    });
}

#[test]
fn malformed_requests_name_what_to_fix() {
    common::each_storage(|| {
        let mut db = common::engine();
        let missing = db.q0(&json!({"action": "create"}));
        assert_eq!(error_id(&missing), "invalid_request");
        assert_eq!(
            missing["errors"][0]["details"]["missing_fields"],
            json!(["bucket"])
        );
        let unknown = db.q0(&json!({"action": "select", "colour": "red", "misc": {"ignored": true}}));
        assert_eq!(
            unknown["errors"][0]["details"]["unknown_fields"],
            json!(["colour"])
        );
        let wrong = db.q0(&json!({"action": "create", "bucket": [1]}));
        assert_eq!(wrong["errors"][0]["details"]["wrong_types"][0]["field"], "bucket");
        assert_eq!(error_id(&db.q0(&json!({"bucket": {}}))), "invalid_request");
        assert_eq!(error_id(&db.q0(&json!([1, 2]))), "invalid_request");
        assert_eq!(
            error_id(&db.q0(&json!({"action": "merge"}))),
            "action-not-supported"
        );
        assert_eq!(error_id(&db.q0_bytes(0, b"{nope")), "invalid_request");
        db.set_request_limit(10);
        assert_eq!(
            error_id(&db.q0_bytes(0, br#"{"action": "select"}"#)),
            "request-too-large"
        );
    });
}

#[test]
fn connection_modes() {
    common::each_storage(|| {
        for (mode, id) in [
            ("w", "mode-not-supported"),
            (" rw", "invalid-mode"),
            ("rx", "invalid-mode"),
            ("", "invalid-mode"),
        ] {
            assert_eq!(
                Engine::open(Storage::Memory, mode).unwrap_err().id,
                id,
                "{mode:?}"
            );
        }
        let dir = std::env::temp_dir().join(format!("mb-modes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("crew.db");
        {
            let mut db = Engine::open(Storage::File(file.clone()), "WR").unwrap();
            create(&mut db, "puck.uno/record", json!({"x": 1}));
        }
        let mut reader = Engine::open(Storage::File(file.clone()), "R").unwrap();
        assert!(reader.is_read_only());
        assert_eq!(
            ok(reader.q0(&json!({"action": "select"})))["count"],
            1,
            "persisted"
        );
        let write = reader.q0(&json!({"action": "create", "bucket": {}}));
        assert_eq!(error_id(&write), "read-only-connection");
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn transactions_nest_commit_roll_back_and_die_with_their_owner() {
    common::each_storage(|| {
        let mut db = common::engine();
        let outer = ok(db.q0(&json!({"action": "transaction"})))["transaction"]
            .as_str()
            .unwrap()
            .to_owned();
        let inner = ok(db.q0(&json!({"action": "transaction", "parent": outer})))["transaction"]
            .as_str()
            .unwrap()
            .to_owned();
        ok(db.q0(&json!({"action": "create", "bucket": {"n": 1}, "transaction": inner})));
        ok(db.q0(&json!({"action": "rollback", "transaction": outer})));
        assert_eq!(ok(db.q0(&json!({"action": "select"})))["count"], 0, "rolled back");
        assert_eq!(
            error_id(&db.q0(&json!({"action": "commit", "transaction": inner}))),
            "transaction-invalidated"
        );
        assert_eq!(
            error_id(&db.q0(&json!({"action": "commit", "transaction": outer}))),
            "transaction-not-found"
        );
        assert_eq!(
            error_id(&db.q0(&json!({"action": "create", "bucket": {}, "transaction": "tx999"}))),
            "transaction-not-found"
        );

        let t = ok(db.q0(&json!({"action": "transaction"})))["transaction"]
            .as_str()
            .unwrap()
            .to_owned();
        ok(db.q0(&json!({"action": "create", "bucket": {"n": 2}, "transaction": t})));
        ok(db.q0(&json!({"action": "commit", "transaction": t})));
        assert_eq!(ok(db.q0(&json!({"action": "select"})))["count"], 1, "committed");

        let owned = ok(db.q0_as(7, &json!({"action": "transaction"})))["transaction"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(db.transaction_owner(), Some(7));
        ok(db.q0_as(
            7,
            &json!({"action": "create", "bucket": {"n": 3}, "transaction": owned}),
        ));
        db.release_owner(7);
        assert_eq!(db.transaction_owner(), None);
        assert_eq!(
            ok(db.q0(&json!({"action": "select"})))["count"],
            1,
            "the owner's work was rolled back"
        );
    });
}

#[test]
fn worldlets_round_trip_and_import_is_all_or_nothing() {
    common::each_storage(|| {
        let mut db = crew();
        people(&mut db);
        let worldlet = db.export_worldlet()["results"].take();
        assert_eq!(worldlet["format"], "worldlet/1.0");
        let defs: Vec<&Value> = worldlet["records"]
            .as_object()
            .unwrap()
            .values()
            .filter(|r| r["class"] == "puck.uno/class")
            .collect();
        assert_eq!(defs.len(), 2, "class definitions in whole-hash form");
        let mut copy = common::engine();
        ok(copy.import_worldlet(&worldlet));
        assert_eq!(
            copy.export_worldlet()["results"],
            worldlet,
            "same pks, buckets, stacks and timestamps"
        );
        assert_eq!(ok(copy.by_class("example.org/crew/person"))["count"], 6);

        let mut broken = worldlet.clone();
        broken["records"]["bad"] =
            json!({"bucket": {"rank": 1}, "stack": {"a": {"class": "example.org/crew/officer"}}});
        let mut target = common::engine();
        let failed = target.import_worldlet(&broken);
        assert_eq!(error_id(&failed), "validation-failed");
        assert_eq!(failed["errors"][0]["details"]["record"], "bad");
        assert_eq!(
            target.export_worldlet()["results"]["records"],
            json!({}),
            "nothing imported"
        );
        assert_eq!(
            error_id(&target.import_worldlet(&json!({"format": "other/2"}))),
            "invalid_request"
        );

        let schema = ok(db.export_schema());
        let mut fresh = common::engine();
        assert_eq!(ok(fresh.import_schema(&schema))["imported"], 2);
        assert_eq!(
            ok(fresh.import_schema(&schema))["imported"],
            2,
            "idempotent: replaced by name"
        );
        assert_eq!(ok(fresh.by_class("puck.uno/class"))["count"], 2);
    });
}

#[test]
fn validate_checks_without_running() {
    common::each_storage(|| {
        let mut db = crew();
        let report =
            db.validate(&json!({"action": "create", "class": "example.org/crew/officer", "bucket": {}}));
        assert_eq!(report["errors"][0]["id"], "validation-failed");
        let fine = db.validate(
            &json!({"action": "create", "class": "example.org/crew/officer", "bucket": {"rank": "x"}}),
        );
        assert_eq!(fine["errors"], json!([]));
        assert_eq!(
            ok(db.by_class("example.org/crew/officer"))["count"],
            0,
            "validate wrote nothing"
        );
    });
}

// ---- differential ---------------------------------------------------------------------
//
// Random records and random selects: the engine (class filters, a literal equality, sort
// keys and paging pushed into SQL where it can; the rest in Rust) against a plain
// evaluator written here from the documented semantics (`docs/ENGINE.md`, E8, E9, E14),
// sharing no code with the engine's `select.rs`.

mod plain {
    use std::cmp::Ordering;

    use serde_json::{Map, Value};

    /// A number as SQLite holds it: an integer when it fits in i64, else a float.
    fn num(v: &serde_json::Number) -> (Option<i128>, f64) {
        (v.as_i64().map(i128::from), v.as_f64().unwrap_or(0.0))
    }

    pub fn num_cmp(a: &serde_json::Number, b: &serde_json::Number) -> Ordering {
        match (num(a), num(b)) {
            ((Some(x), _), (Some(y), _)) => x.cmp(&y),
            ((None, x), (None, y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            ((Some(i), _), (None, f)) => int_vs_float(i, f),
            ((None, f), (Some(i), _)) => int_vs_float(i, f).reverse(),
        }
    }

    fn int_vs_float(i: i128, f: f64) -> Ordering {
        let limit = 2f64.powi(100);
        if f >= limit {
            return Ordering::Less;
        }
        if f <= -limit {
            return Ordering::Greater;
        }
        let floor = f.floor();
        match i.cmp(&(floor as i128)) {
            Ordering::Equal if f > floor => Ordering::Less,
            other => other,
        }
    }

    pub fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Ordering::Equal,
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    pub fn fold(s: &str, case_sensitive: bool, collapse: bool) -> String {
        let s = if collapse {
            s.split_whitespace().collect::<Vec<_>>().join(" ")
        } else {
            s.to_string()
        };
        if case_sensitive {
            s
        } else {
            s.to_lowercase()
        }
    }

    pub fn get<'a>(bucket: &'a Value, keys: &[String]) -> Option<&'a Value> {
        let mut at = bucket;
        for key in keys {
            at = at.as_object()?.get(key)?;
        }
        Some(at)
    }

    /// The error id evaluation stops at.
    pub type Failed = &'static str;

    /// Placeholder scopes, innermost last.
    pub struct Scopes<'a>(pub Vec<&'a Map<String, Value>>);

    fn reference(v: &Value) -> Option<&str> {
        let map = v.as_object()?;
        if map.len() == 1 {
            map.get("placeholder")?.as_str()
        } else {
            None
        }
    }

    pub fn resolve(v: &Value, scopes: &Scopes<'_>, chain: &mut Vec<String>) -> Result<Value, Failed> {
        if let Some(name) = reference(v) {
            if chain.iter().any(|n| n == name) {
                return Err("placeholder-circular");
            }
            let found = scopes
                .0
                .iter()
                .rev()
                .find_map(|s| s.get(name))
                .ok_or("placeholder-undefined")?;
            chain.push(name.to_string());
            let out = resolve(found, scopes, chain);
            chain.pop();
            return out;
        }
        match v {
            Value::Array(items) => items
                .iter()
                .map(|x| resolve(x, scopes, chain))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, x) in map {
                    out.insert(k.clone(), resolve(x, scopes, chain)?);
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    fn truthy(v: &Value) -> bool {
        !matches!(v, Value::Null | Value::Bool(false)) && v.as_f64() != Some(0.0) && v.as_str() != Some("")
    }

    fn operator(op: &str, arg: &Value, found: Option<&Value>, cs: bool, co: bool) -> bool {
        let eq = |a: &Value, b: &Value| match (a, b) {
            (Value::String(x), Value::String(y)) => fold(x, cs, co) == fold(y, cs, co),
            _ => same(a, b),
        };
        let text = found.and_then(Value::as_str).map(|s| fold(s, cs, co));
        let want = arg.as_str().map(|s| fold(s, cs, co)).unwrap_or_default();
        let list = found.and_then(Value::as_array);
        let has = |w: &Value| list.is_some_and(|l| l.iter().any(|x| eq(x, w)));
        match op {
            "value" => found.is_some_and(|f| eq(f, arg)),
            "contains" => text.is_some_and(|t| t.contains(&want)),
            "starts-with" => text.is_some_and(|t| t.starts_with(&want)),
            "ends-with" => text.is_some_and(|t| t.ends_with(&want)),
            "gt" | "lt" | "gte" | "lte" => {
                let ordering = match (found, arg) {
                    (Some(Value::Number(a)), Value::Number(b)) => num_cmp(a, b),
                    (Some(Value::String(a)), Value::String(b)) => fold(a, cs, co).cmp(&fold(b, cs, co)),
                    _ => return false,
                };
                match op {
                    "gt" => ordering.is_gt(),
                    "lt" => ordering.is_lt(),
                    "gte" => ordering.is_ge(),
                    _ => ordering.is_le(),
                }
            }
            "includes" => has(arg),
            "includes_all" => list.is_some() && arg.as_array().unwrap().iter().all(has),
            "includes_any" => arg.as_array().unwrap().iter().any(has),
            "exists" => found.is_some_and(|f| !f.is_null()) == arg.as_bool().unwrap(),
            "truthy" => found.is_some_and(truthy) == arg.as_bool().unwrap(),
            "any" => found.is_some() == arg.as_bool().unwrap(),
            _ => panic!("the generator made an unknown operator {op}"),
        }
    }

    fn path(path: &[Value], bucket: &Value, scopes: &Scopes<'_>) -> Result<bool, Failed> {
        let (last, keys) = path.split_last().unwrap();
        let mut names = Vec::new();
        for key in keys {
            match resolve(key, scopes, &mut Vec::new())? {
                Value::String(s) => names.push(s),
                _ => return Err("invalid_request"),
            }
        }
        let found = get(bucket, &names);
        match resolve(last, scopes, &mut Vec::new())? {
            Value::Object(ops) => {
                let flag = |k: &str, d: bool| ops.get(k).and_then(Value::as_bool).unwrap_or(d);
                let (cs, co) = (flag("case-sensitive", true), flag("collapse", false));
                Ok(ops
                    .iter()
                    .filter(|(k, _)| *k != "case-sensitive" && *k != "collapse")
                    .all(|(op, arg)| operator(op, arg, found, cs, co)))
            }
            literal => Ok(found.is_some_and(|f| same(f, &literal))),
        }
    }

    /// Evaluates a block: path, then, all in order, any in order; `not` inverts.
    pub fn block<'a>(
        b: &'a Map<String, Value>,
        bucket: &Value,
        scopes: &mut Scopes<'a>,
    ) -> Result<bool, Failed> {
        let pushed = b
            .get("placeholders")
            .and_then(Value::as_object)
            .inspect(|m| scopes.0.push(m))
            .is_some();
        let result = (|| -> Result<bool, Failed> {
            if let Some(p) = b.get("path") {
                if !path(p.as_array().unwrap(), bucket, scopes)? {
                    return Ok(false);
                }
            }
            if let Some(t) = b.get("then") {
                if !block(t.as_object().unwrap(), bucket, scopes)? {
                    return Ok(false);
                }
            }
            for entry in b.get("all").and_then(Value::as_array).into_iter().flatten() {
                if !block(entry.as_object().unwrap(), bucket, scopes)? {
                    return Ok(false);
                }
            }
            if let Some(any) = b.get("any").and_then(Value::as_array) {
                for entry in any {
                    if block(entry.as_object().unwrap(), bucket, scopes)? {
                        return Ok(true);
                    }
                }
                return Ok(false);
            }
            Ok(true)
        })();
        if pushed {
            scopes.0.pop();
        }
        Ok(result? != (b.get("not") == Some(&Value::Bool(true))))
    }

    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 1,
            Value::String(_) => 2,
            Value::Bool(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
            Value::Null => 6,
        }
    }

    /// One sort path's order between two buckets: nulls and missing values last.
    pub fn sort_cmp(sort: &[Value], a: &Value, b: &Value) -> Ordering {
        let (keys, qualifiers) = match sort.last() {
            Some(Value::Object(q)) => (&sort[..sort.len() - 1], q.clone()),
            _ => (sort, Map::new()),
        };
        let keys: Vec<String> = keys.iter().map(|k| k.as_str().unwrap().to_string()).collect();
        let flag = |k: &str, d: bool| qualifiers.get(k).and_then(Value::as_bool).unwrap_or(d);
        let x = get(a, &keys).filter(|v| !v.is_null());
        let y = get(b, &keys).filter(|v| !v.is_null());
        let (x, y) = match (x, y) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Greater,
            (_, None) => return Ordering::Less,
            (Some(x), Some(y)) => (x, y),
        };
        let natural = match (x, y) {
            (Value::Number(p), Value::Number(q)) => num_cmp(p, q),
            (Value::String(p), Value::String(q)) => {
                let (cs, co) = (flag("case-sensitive", true), flag("collapse", false));
                fold(p, cs, co).cmp(&fold(q, cs, co))
            }
            (Value::Bool(p), Value::Bool(q)) => p.cmp(q),
            _ => rank(x).cmp(&rank(y)),
        };
        if flag("reverse", false) {
            natural.reverse()
        } else {
            natural
        }
    }
}

/// A generated record as the plain evaluator keeps it.
struct Rec {
    pk: String,
    classes: Vec<usize>,
    bucket: Value,
    alive: bool,
}

struct Gen(u64);

/// Makes one bucket field's value.
type Field = fn(&mut Gen) -> Value;

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    fn number(&mut self) -> Value {
        match self.below(9) {
            0 => json!(2.5),
            1 => json!(-0.75),
            2 => json!(9_007_199_254_740_993u64),
            3 => json!(9_007_199_254_740_992.0),
            6 => json!(9_007_199_254_740_992u64),
            4 => json!(u64::MAX),
            5 => json!(3.0),
            _ => json!(self.below(10)),
        }
    }

    fn text(&mut self) -> Value {
        json!(self.pick(&[
            "red", "Red", " red  ", "RED", "green", "blue", "", "é", "E", "ß", "a\u{0}b", "re d", "Äpfel",
            "z"
        ]))
    }

    fn scalar(&mut self) -> Value {
        match self.below(4) {
            0 => self.number(),
            1 => self.text(),
            2 => json!(self.chance(2)),
            _ => Value::Null,
        }
    }

    fn any(&mut self) -> Value {
        match self.below(6) {
            0 => json!([self.scalar(), self.scalar()]),
            1 => json!({"k": self.scalar()}),
            _ => self.scalar(),
        }
    }

    fn bucket(&mut self) -> Value {
        let mut b = serde_json::Map::new();
        let fields: [(&str, Field); 7] = [
            ("n", Gen::number),
            ("s", Gen::text),
            ("m", Gen::any),
            ("t", |g| {
                json!((0..g.below(4)).map(|_| g.scalar()).collect::<Vec<_>>())
            }),
            ("o", |g| json!({"k": g.text(), "z": {"y": g.number()}})),
            ("b", |g| {
                g.pick(&[
                    json!(true),
                    json!(false),
                    json!(0),
                    json!(1),
                    json!(""),
                    json!("x"),
                ])
            }),
            ("q\"k", Gen::any),
        ];
        for (key, make) in fields {
            if !self.chance(5) {
                b.insert(key.to_string(), make(self));
            }
        }
        Value::Object(b)
    }

    fn keys(&mut self) -> Vec<Value> {
        let paths: [&[&str]; 9] = [
            &["n"],
            &["s"],
            &["m"],
            &["t"],
            &["b"],
            &["o", "k"],
            &["o", "z", "y"],
            &["q\"k"],
            &["none"],
        ];
        self.pick(&paths).iter().map(|k| json!(k)).collect()
    }

    fn operator(&mut self) -> (String, Value) {
        let op = self.pick(OPERATORS);
        let arg = match op {
            "contains" | "starts-with" | "ends-with" => {
                json!(self.pick(&["r", "R", "e", " ", "red", "", "ß"]))
            }
            "gt" | "lt" | "gte" | "lte" => {
                if self.chance(3) {
                    self.text()
                } else {
                    self.number()
                }
            }
            "includes_all" | "includes_any" => {
                json!((0..self.below(3)).map(|_| self.scalar()).collect::<Vec<_>>())
            }
            "exists" | "truthy" | "any" => json!(self.chance(2)),
            _ => self.any(),
        };
        (op.to_string(), arg)
    }

    fn ops(&mut self) -> Value {
        let mut ops = serde_json::Map::new();
        for _ in 0..1 + self.below(2) {
            let (op, arg) = self.operator();
            ops.insert(op, arg);
        }
        if self.chance(3) {
            ops.insert("case-sensitive".into(), json!(self.chance(2)));
        }
        if self.chance(4) {
            ops.insert("collapse".into(), json!(self.chance(2)));
        }
        Value::Object(ops)
    }

    /// A placeholder value: a literal, an operator object (perhaps naming another
    /// placeholder), or a reference.
    fn placeholder_value(&mut self) -> Value {
        match self.below(5) {
            0 => self.scalar(),
            1 => self.ops(),
            2 => json!({"value": {"placeholder": self.pick(&["p", "q", "r"])}, "case-sensitive": false}),
            3 => json!({"placeholder": self.pick(&["p", "q", "r"])}),
            _ => self.text(),
        }
    }

    fn path(&mut self) -> Value {
        let mut path = if self.chance(8) {
            vec![json!({"placeholder": "key"})]
        } else {
            self.keys()
        };
        path.push(match self.below(6) {
            0 | 1 => self.scalar(),
            2 => json!({"placeholder": self.pick(&["p", "q", "r", "p", "q", "r", "undefined"])}),
            _ => self.ops(),
        });
        Value::Array(path)
    }

    fn block(&mut self, depth: usize) -> Value {
        let mut b = serde_json::Map::new();
        if self.chance(2) {
            let mut vars = serde_json::Map::new();
            for name in ["p", "q", "r"] {
                if !self.chance(3) {
                    vars.insert(name.into(), self.placeholder_value());
                }
            }
            if self.chance(2) {
                // A key placeholder that is not a string fails when reached.
                vars.insert(
                    "key".into(),
                    self.pick(&[json!("s"), json!("n"), json!("m"), json!(7)]),
                );
            }
            b.insert("placeholders".into(), Value::Object(vars));
        }
        if !self.chance(4) {
            b.insert("path".into(), self.path());
        }
        if depth < 3 {
            if self.chance(3) {
                b.insert("then".into(), self.block(depth + 1));
            }
            for key in ["all", "any"] {
                if self.chance(4) {
                    let entries: Vec<Value> = (0..self.below(3)).map(|_| self.block(depth + 1)).collect();
                    b.insert(key.into(), Value::Array(entries));
                }
            }
        }
        if self.chance(5) {
            b.insert("not".into(), json!(self.chance(3) || depth == 0));
        }
        Value::Object(b)
    }

    fn sort(&mut self) -> Value {
        let mut sort = self.keys();
        sort.retain(|k| k != "none" || self.chance(2));
        if sort.is_empty() {
            sort.push(json!("none"));
        }
        if self.chance(2) {
            let mut q = serde_json::Map::new();
            for name in ["reverse", "case-sensitive", "collapse"] {
                if self.chance(2) {
                    q.insert(name.into(), json!(self.chance(2)));
                }
            }
            sort.push(Value::Object(q));
        }
        Value::Array(sort)
    }
}

#[test]
fn differential_select_against_a_plain_evaluator() {
    common::each_storage(|| {
        let mut g = Gen(0x2545_f491_4f6c_dd1d);
        let mut db = common::engine();
        // a ← b ← c; d alone; e inherits from b and d.
        // The definitions are records too (class 5, puck.uno/class, never filtered on).
        let names = [
            "example.org/a",
            "example.org/b",
            "example.org/c",
            "example.org/d",
            "example.org/e",
        ];
        let parents: [&[usize]; 6] = [&[], &[0], &[1], &[], &[1, 3], &[]];
        let mut records: Vec<Rec> = Vec::new();
        for (name, ps) in names.iter().zip(parents) {
            let inherits: Vec<&str> = ps.iter().map(|p| names[*p]).collect();
            let bucket = json!({"name": name, "inherits": inherits});
            let pk = define(&mut db, bucket.clone());
            records.push(Rec {
                pk,
                classes: vec![5],
                bucket,
                alive: true,
            });
        }
        let descends = |class: usize, from: usize| {
            let mut todo = vec![class];
            while let Some(c) = todo.pop() {
                if c == from {
                    return true;
                }
                todo.extend(parents[c]);
            }
            false
        };
        for _ in 0..250 {
            let classes: Vec<usize> = if g.chance(5) {
                vec![g.below(5), g.below(5)]
            } else {
                vec![g.below(5)]
            };
            let bucket = g.bucket();
            let class_names: Vec<&str> = classes.iter().map(|c| names[*c]).collect();
            let pk = ok(db.q0(&json!({"action": "create", "classes": class_names, "bucket": bucket})))["pk"]
                .as_str()
                .unwrap()
                .to_owned();
            records.push(Rec {
                pk,
                classes,
                bucket,
                alive: true,
            });
            if g.chance(6) {
                let r = 5 + g.below(records.len() - 5);
                let record = &mut records[r];
                if record.alive {
                    if g.chance(3) {
                        ok(db.q0(&json!({"action": "delete", "pk": record.pk})));
                        record.alive = false;
                    } else {
                        record.bucket = g.bucket();
                        ok(db.q0(&json!({"action": "update", "pk": record.pk, "bucket": record.bucket})));
                    }
                }
            }
        }
        let mut outcomes = std::collections::BTreeMap::new();
        for round in 0..600 {
            let mut query = g.block(0);
            query["action"] = json!("select");
            let class_filter: Option<Vec<usize>> = match g.below(4) {
                0 => {
                    let c = g.below(5);
                    query["class"] = json!(names[c]);
                    Some(vec![c])
                }
                1 => {
                    let cs = vec![g.below(5), g.below(5)];
                    query[if g.chance(2) { "class" } else { "classes" }] =
                        json!([names[cs[0]], names[cs[1]]]);
                    Some(cs)
                }
                _ => None,
            };
            let pk = if g.chance(10) {
                let pk = if g.chance(5) {
                    "missing".to_owned()
                } else {
                    records[g.below(records.len())].pk.clone()
                };
                query["pk"] = json!(pk);
                Some(pk)
            } else {
                None
            };
            let sorts: Vec<Value> = (0..g.below(3)).map(|_| g.sort()).collect();
            match sorts.len() {
                1 if g.chance(2) => query["sort"] = sorts[0].clone(),
                0 => {}
                _ => query["sorts"] = json!(sorts),
            }
            let limit = if g.chance(2) { Some(g.below(20)) } else { None };
            let offset = if g.chance(3) { g.below(30) } else { 0 };
            if let Some(l) = limit {
                query["limit"] = json!(l);
            }
            if offset > 0 || g.chance(5) {
                query["offset"] = json!(offset);
            }

            // The plain answer: candidates in insertion order, stably sorted, examined in
            // that order until the page is full.
            let mut candidates: Vec<&Rec> = records
                .iter()
                .filter(|r| r.alive)
                .filter(|r| pk.as_ref().is_none_or(|pk| &r.pk == pk))
                .filter(|r| {
                    class_filter
                        .as_ref()
                        .is_none_or(|cs| cs.iter().any(|c| r.classes.iter().any(|own| descends(*own, *c))))
                })
                .collect();
            candidates.sort_by(|a, b| {
                sorts
                    .iter()
                    .map(|s| plain::sort_cmp(s.as_array().unwrap(), &a.bucket, &b.bucket))
                    .find(|o| o.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            let top = query.as_object().unwrap().clone();
            let expected: Result<Vec<String>, &str> = (|| {
                let mut page = Vec::new();
                let mut skip = offset;
                for r in candidates {
                    if limit.is_some_and(|l| page.len() >= l) {
                        break;
                    }
                    if plain::block(&top, &r.bucket, &mut plain::Scopes(Vec::new()))? {
                        if skip > 0 {
                            skip -= 1;
                        } else {
                            page.push(r.pk.clone());
                        }
                    }
                }
                Ok(page)
            })();

            let answer = db.q0(&query);
            let got: Result<Vec<String>, &str> = if answer["success"] == true {
                let records = answer["results"]["records"].as_array().unwrap();
                assert_eq!(answer["results"]["count"], records.len(), "{query}");
                Ok(records
                    .iter()
                    .map(|r| r["pk"].as_str().unwrap().to_owned())
                    .collect())
            } else {
                Err(answer["errors"][0]["id"].as_str().unwrap())
            };
            assert_eq!(got, expected, "round {round}: {query}\n{answer}");
            let outcome = match &got {
                Ok(pks) if pks.is_empty() => "empty",
                Ok(_) => "records",
                Err(id) => id,
            };
            *outcomes.entry(outcome.to_owned()).or_insert(0) += 1;
        }
        // The generator reaches every kind of outcome.
        for outcome in [
            "empty",
            "records",
            "placeholder-undefined",
            "placeholder-circular",
            "invalid_request",
        ] {
            assert!(
                outcomes.get(outcome).is_some_and(|n| *n >= 3),
                "{outcome}: {outcomes:?}"
            );
        }
    });
}

#[test]
fn an_older_store_gets_its_class_index_rebuilt() {
    common::each_storage(|| {
        // A store written before `class_index` kept the classes by pk in `record_classes`.
        let dir = std::env::temp_dir().join(format!("mb-upgrade-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("old.db");
        {
            let old = rusqlite::Connection::open(&file).unwrap();
            old.execute_batch(
            r#"CREATE TABLE records (seq INTEGER PRIMARY KEY AUTOINCREMENT, pk TEXT NOT NULL UNIQUE,
                   bucket TEXT NOT NULL, stack TEXT NOT NULL, updated_at TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 1);
               CREATE TABLE record_classes (pk TEXT NOT NULL, class TEXT NOT NULL, PRIMARY KEY (pk, class));
               INSERT INTO records (pk, bucket, stack, updated_at) VALUES
                   ('c', '{"name":"example.org/ship"}', '{"shadow":{},"a":{"class":"puck.uno/class"}}', '2026-01-01T00:00:00.000'),
                   ('s', '{"name":"Sulaco"}', '{"shadow":{},"a":{"class":"example.org/ship"},"b":{"class":"puck.uno/record"}}', '2026-01-01T00:00:00.000');
               INSERT INTO record_classes VALUES ('c', 'puck.uno/class'), ('s', 'example.org/ship'), ('s', 'puck.uno/record');"#,
        )
        .unwrap();
        }
        let refused = Engine::open(Storage::File(file.clone()), "r").unwrap_err();
        assert_eq!(refused.id, "invalid_request");
        assert!(refused.details["fix"].as_str().unwrap().contains("rw"));
        {
            let mut db = Engine::open(Storage::File(file.clone()), "rw").unwrap();
            assert_eq!(ok(db.by_class("example.org/ship"))["records"][0]["pk"], "s");
            assert_eq!(ok(db.by_class("puck.uno/record"))["count"], 1);
        }
        let mut reader = Engine::open(Storage::File(file.clone()), "r").unwrap();
        assert_eq!(ok(reader.by_class("example.org/ship"))["count"], 1);
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn pass_through_keys_are_accepted_everywhere_the_ecoverse_allows_them() {
    common::each_storage(|| {
        let mut db = common::engine();
        let passthrough = json!({"misc": 1, "corporate": {"cost": 2}, "vibecode": "x", "comment": "y"});
        let mut definition = json!({"name": "example.org/crew/person", "fields": {}});
        definition
            .as_object_mut()
            .unwrap()
            .extend(passthrough.as_object().unwrap().clone());
        let created = db.q0(&json!({"action": "create", "class": "puck.uno/class", "bucket": definition}));
        assert_eq!(created["success"], true, "a class definition: {created}");
        let mut record = json!({"bucket": {"name": "Ripley"}, "stack": {"shadow": {}, "a": {"class": "example.org/crew/person"}}});
        record
            .as_object_mut()
            .unwrap()
            .extend(passthrough.as_object().unwrap().clone());
        let imported = db.import_worldlet(&json!({"format": "worldlet/1.0", "records": {"r1": record}}));
        assert_eq!(imported["success"], true, "a worldlet record: {imported}");
        let mut select = json!({"action": "select", "then": {"path": ["name", "Ripley"]}});
        select["then"]
            .as_object_mut()
            .unwrap()
            .extend(passthrough.as_object().unwrap().clone());
        select
            .as_object_mut()
            .unwrap()
            .extend(passthrough.as_object().unwrap().clone());
        assert_eq!(db.q0(&select)["results"]["count"], 1, "a request and its blocks");
    });
}
