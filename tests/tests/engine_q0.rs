//! The Mikobase engine in-process: the reference's examples as conformance tests, every
//! documented error id, class definitions, transactions, worldlets, and a differential
//! test of the SQL-pushed select against a plain evaluator.

#[path = "engine_common.rs"]
mod common;

use caspian_ipc::mikobase::engine::{Engine, Storage};
use common::{create, define, error_id, ok};
use serde_json::{json, Value};

fn crew() -> Engine {
    let mut db = Engine::memory();
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

fn surnames(results: &Value) -> Vec<String> {
    results["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["bucket"]["name"]["surname"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[test]
fn create_then_select_returns_the_documented_record_shape() {
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
}

#[test]
fn class_select_includes_subclasses_transitively() {
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
}

#[test]
fn narrowing_with_any_all_then_and_not() {
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
}

#[test]
fn every_path_operator() {
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
}

#[test]
fn placeholders_inherit_shadow_and_fail_only_when_reached() {
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
}

#[test]
fn redundant_fields_warnings() {
    let mut db = crew();
    let envelope = db.q0(&json!({"action": "select", "sort": ["a"], "sorts": [["b"]], "class": "puck.uno/record", "classes": ["puck.uno/record"]}));
    assert_eq!(envelope["success"], true);
    let warnings: Vec<Value> = envelope["warnings"].as_array().unwrap().clone();
    assert!(warnings.contains(&json!({"id": "redundant_fields", "details": {"fields": ["sort", "sorts"]}})));
    assert!(
        warnings.contains(&json!({"id": "redundant_fields", "details": {"fields": ["class", "classes"]}}))
    );
}

#[test]
fn writes_are_validated_against_the_latest_definition() {
    let mut db = crew();
    let missing = db
        .q0(&json!({"action": "create", "class": "example.org/crew/officer", "bucket": {"watch": "delta"}}));
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
}

#[test]
fn update_replaces_and_delete_tombstones() {
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
}

#[test]
fn malformed_requests_name_what_to_fix() {
    let mut db = Engine::memory();
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
}

#[test]
fn connection_modes() {
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
}

#[test]
fn transactions_nest_commit_roll_back_and_die_with_their_owner() {
    let mut db = Engine::memory();
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
}

#[test]
fn worldlets_round_trip_and_import_is_all_or_nothing() {
    let mut db = crew();
    people(&mut db);
    let worldlet = db.export_worldlet();
    assert_eq!(worldlet["format"], "worldlet/1.0");
    let defs: Vec<&Value> = worldlet["records"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["class"] == "puck.uno/class")
        .collect();
    assert_eq!(defs.len(), 2, "class definitions in whole-hash form");
    let mut copy = Engine::memory();
    ok(copy.import_worldlet(&worldlet));
    assert_eq!(
        copy.export_worldlet(),
        worldlet,
        "same pks, buckets, stacks and timestamps"
    );
    assert_eq!(ok(copy.by_class("example.org/crew/person"))["count"], 6);

    let mut broken = worldlet.clone();
    broken["records"]["bad"] =
        json!({"bucket": {"rank": 1}, "stack": {"a": {"class": "example.org/crew/officer"}}});
    let mut target = Engine::memory();
    let failed = target.import_worldlet(&broken);
    assert_eq!(error_id(&failed), "validation-failed");
    assert_eq!(failed["errors"][0]["details"]["record"], "bad");
    assert_eq!(target.export_worldlet()["records"], json!({}), "nothing imported");
    assert_eq!(
        error_id(&target.import_worldlet(&json!({"format": "other/2"}))),
        "invalid_request"
    );

    let schema = ok(db.export_schema());
    let mut fresh = Engine::memory();
    assert_eq!(ok(fresh.import_schema(&schema))["imported"], 2);
    assert_eq!(
        ok(fresh.import_schema(&schema))["imported"],
        2,
        "idempotent: replaced by name"
    );
    assert_eq!(ok(fresh.by_class("puck.uno/class"))["count"], 2);
}

#[test]
fn validate_checks_without_running() {
    let mut db = crew();
    let report = db.validate(&json!({"action": "create", "class": "example.org/crew/officer", "bucket": {}}));
    assert_eq!(report["errors"][0]["id"], "validation-failed");
    let fine = db
        .validate(&json!({"action": "create", "class": "example.org/crew/officer", "bucket": {"rank": "x"}}));
    assert_eq!(fine["errors"], json!([]));
    assert_eq!(
        ok(db.by_class("example.org/crew/officer"))["count"],
        0,
        "validate wrote nothing"
    );
}

/// Random records and random queries: the engine (class filter and literal equality pushed
/// into SQL, the rest in Rust) against a plain evaluator written here.
#[test]
fn differential_select_against_a_plain_evaluator() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut db = Engine::memory();
    let classes = ["example.org/a", "example.org/b", "example.org/c"];
    define(&mut db, json!({"name": classes[0]}));
    define(&mut db, json!({"name": classes[1], "inherits": classes[0]}));
    define(&mut db, json!({"name": classes[2]}));
    let colours = ["red", "green", "blue"];
    let mut records: Vec<(String, usize, Value)> = Vec::new();
    for _ in 0..300 {
        let class = next(3) as usize;
        let mut bucket = json!({"colour": colours[next(3) as usize], "n": next(10)});
        if next(4) == 0 {
            bucket.as_object_mut().unwrap().remove("n");
        }
        if next(3) == 0 {
            bucket["nested"] = json!({"k": colours[next(3) as usize]});
        }
        let pk = create(&mut db, classes[class], bucket.clone());
        records.push((pk, class, bucket));
    }
    for _ in 0..200 {
        let class = next(4) as usize; // 3 = no class filter
        let colour = colours[next(3) as usize];
        let bound = next(10);
        let nested = next(2) == 0;
        let mut query = json!({"action": "select", "sort": ["n"], "limit": 1000});
        if class < 3 {
            query["class"] = json!(classes[class]);
        }
        if nested {
            query["path"] = json!(["nested", "k", colour]);
        } else {
            query["path"] = json!(["colour", colour]);
        }
        query["all"] = json!([{"path": ["n", {"gte": bound}]}]);
        let got: Vec<String> = ok(db.q0(&query))["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["pk"].as_str().unwrap().to_owned())
            .collect();
        let mut expected: Vec<&(String, usize, Value)> = records
            .iter()
            .filter(|(_, c, _)| class == 3 || *c == class || (class == 0 && *c == 1))
            .filter(|(_, _, b)| {
                let value = if nested { &b["nested"]["k"] } else { &b["colour"] };
                value == colour
            })
            .filter(|(_, _, b)| b["n"].as_u64().is_some_and(|n| n >= bound))
            .collect();
        expected.sort_by_key(|(_, _, b)| b["n"].as_u64());
        let expected: Vec<String> = expected.iter().map(|(pk, _, _)| pk.clone()).collect();
        assert_eq!(got, expected, "query {query}");
    }
}
