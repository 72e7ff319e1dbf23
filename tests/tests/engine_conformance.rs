//! Conformance: every JSON example of the Mikobase surface digest
//! (`/work/shared/reference/mikobase-surface.md`, quoted verbatim below as `DOC_*`) run
//! against the engine, request → expected response. Generated pks and timestamps are
//! compared by shape, everything else by value.
//!
//! Where an example cannot run as written (it names classes nobody defined, or two
//! examples disagree), the test sets up the smallest state around it and says so. Where
//! the engine decides a point the documents leave open or contradict, the test names the
//! decision (E1..E16 in `docs/ENGINE.md`, D1..D8 in `mikobase-spec/DECISIONS.md`).

#[path = "engine_common.rs"]
mod common;

use caspian_ipc::mikobase::engine::{Engine, Storage};
use common::{create, define, error_id, is_timestamp, is_uuid_v4, ok, surnames};
use serde_json::{json, Value};

fn doc(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("a reference example is JSON: {e}\n{text}"))
}

const PERSON: &str = "example.org/crew/person";
const OFFICER: &str = "example.org/crew/officer";

// ---- §4 record shape ------------------------------------------------------------------

/// §4.1, verbatim.
const DOC_4_1_RECORD: &str = r#"{
  "bucket": {"name": {"surname": "Ripley", "given": "Ellen"}, "rank": "Warrant Officer"},
  "stack": {
    "shadow": {},
    "a": {"class": "example.org/crew/officer"}
  }
}"#;

/// §4.2, verbatim.
const DOC_4_2_SELECTED: &str = r#"{
  "pk": "0b6f2d1e-7c41-4a8e-9d55-3f1c2a9e8b70",
  "bucket": {"name": "Ripley", "rank": "Warrant Officer"},
  "stack": {"shadow": {}, "crew": {"class": "example.org/crew/officer"}},
  "updated_at": "2026-04-21T14:32:00.123"
}"#;

/// Compares a selected record with an expected one: pk and `updated_at` by shape (they
/// are generated), bucket and stack by value.
fn assert_record(got: &Value, expected: &Value) {
    let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["pk", "bucket", "stack", "updated_at"],
        "record keys (E1/D1): {got}"
    );
    assert!(
        is_uuid_v4(got["pk"].as_str().unwrap()),
        "pk is a UUID v4 (E12): {got}"
    );
    assert!(is_timestamp(got["updated_at"].as_str().unwrap()), "{got}");
    assert_eq!(got["bucket"], expected["bucket"]);
    assert_eq!(got["stack"], expected["stack"]);
}

#[test]
fn s4_1_record_shape_bucket_and_stack() {
    common::each_storage(|| {
        // The example's officer class is not defined anywhere the record could use it as
        // written (§5.1's officer requires `serial`, which this bucket lacks): a minimal
        // officer definition is set up first.
        let mut db = common::engine();
        define(&mut db, json!({"name": OFFICER}));
        let example = doc(DOC_4_1_RECORD);
        let pk = create(&mut db, OFFICER, example["bucket"].clone());
        let selected = ok(db.q0(&json!({"action": "select", "pk": pk})));
        assert_eq!(selected["count"], 1);
        assert_record(&selected["records"][0], &example);
        // The `stack` written as in the example (a hash of platters) gives the same record.
        let pk = ok(db.q0(
            &json!({"action": "create", "classes": {"a": {"class": OFFICER}}, "bucket": example["bucket"]}),
        ))["pk"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_record(&ok(db.record_by_pk(&pk)), &example);
        // And so does importing it (a worldlet record is exactly this shape).
        let mut copy = common::engine();
        define(&mut copy, json!({"name": OFFICER}));
        ok(copy.import_worldlet(&json!({"format": "worldlet/1.0", "records": {"r1": example}})));
        let imported = ok(copy.record_by_pk("r1"));
        assert_eq!(imported["bucket"], example["bucket"]);
        assert_eq!(imported["stack"], example["stack"]);
    });
}

#[test]
fn s4_1_bucket_is_always_an_object() {
    common::each_storage(|| {
        let mut db = common::engine();
        for bucket in [json!("Ripley"), json!(["Ripley"]), json!(null), json!(3)] {
            let failed = db.q0(&json!({"action": "create", "bucket": bucket}));
            assert_eq!(error_id(&failed), "invalid_request", "{bucket}");
            assert_eq!(
                failed["errors"][0]["details"]["wrong_types"][0]["field"],
                "bucket"
            );
        }
        // No reserved keys: `class` and `bucket` inside a bucket are plain data.
        let pk = create(
            &mut db,
            "puck.uno/record",
            json!({"class": "x", "bucket": 1, "stack": []}),
        );
        assert_eq!(
            ok(db.record_by_pk(&pk))["bucket"],
            json!({"class": "x", "bucket": 1, "stack": []})
        );
    });
}

#[test]
fn s4_2_record_as_returned_by_select() {
    common::each_storage(|| {
        // §4.2's bucket has `name` as a string, §5.2's person declares it a hash: this runs
        // against a minimal officer definition. The example's platter is named `crew`: it
        // is created with `classes` as a hash of platters (E3).
        let mut db = common::engine();
        define(&mut db, json!({"name": OFFICER}));
        let example = doc(DOC_4_2_SELECTED);
        let pk = ok(db.q0(&json!({
            "action": "create",
            "classes": {"crew": {"class": OFFICER}},
            "bucket": example["bucket"],
        })))["pk"]
            .as_str()
            .unwrap()
            .to_owned();
        let results = ok(db.q0(&json!({"action": "select", "class": OFFICER})));
        assert_eq!(
            results,
            json!({"count": 1, "records": [results["records"][0].clone()]}),
            "D2"
        );
        let record = &results["records"][0];
        assert_eq!(record["pk"], json!(pk));
        assert_record(record, &example);
    });
}

#[test]
fn s4_2_field_presentation_order() {
    common::each_storage(|| {
        // "ancestor-class fields first (outermost ancestor first), then the record's own
        // class fields in definition order, then undeclared fields in stored order" (E6:
        // the order is made when the record is written).
        let mut db = common::engine();
        define(
            &mut db,
            json!({"name": "example.org/being", "fields": {"species": {}}}),
        );
        define(
            &mut db,
            json!({"name": PERSON, "inherits": "example.org/being", "fields": {"name": {}, "age": {}}}),
        );
        define(
            &mut db,
            json!({"name": OFFICER, "inherits": PERSON, "fields": {"rank": {}, "serial": {}, "active": {"default": true}}}),
        );
        let pk = create(
            &mut db,
            OFFICER,
            json!({"zeta": 1, "serial": "S1", "alpha": 2, "rank": "R", "age": 40, "species": "human", "name": "Ripley"}),
        );
        let bucket = ok(db.record_by_pk(&pk))["bucket"].clone();
        let keys: Vec<&String> = bucket.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["species", "name", "age", "rank", "serial", "active", "zeta", "alpha"]
        );
    });
}

#[test]
fn s4_3_class_definition_records_whole_hash_form() {
    common::each_storage(|| {
        // UNSPECIFIED how definitions appear in select output: their bucket holds the
        // definition (E4); worldlets carry the whole-hash form.
        let mut db = common::engine();
        let pk = define(
            &mut db,
            json!({"name": PERSON, "fields": {"name": {"class": "string"}}}),
        );
        let listed = ok(db.q0(&json!({"action": "select", "class": "puck.uno/class"})));
        assert_eq!(listed["count"], 1);
        assert_eq!(
            listed["records"][0]["bucket"],
            json!({"name": PERSON, "fields": {"name": {"class": "string"}}})
        );
        assert_eq!(
            listed["records"][0]["stack"],
            json!({"shadow": {}, "a": {"class": "puck.uno/class"}})
        );
        assert_eq!(
            db.export_worldlet()["results"]["records"][&pk],
            json!({"class": "puck.uno/class", "name": PERSON, "fields": {"name": {"class": "string"}}})
        );
    });
}

#[test]
fn s4_4_long_form_records_import() {
    common::each_storage(|| {
        // §4.4's long form `{"class", "bucket"}` is accepted in a worldlet (E13): it becomes
        // the default stack with that class.
        let mut db = common::engine();
        define(&mut db, json!({"name": "example.org/color"}));
        let long = doc(r##"{"class": "example.org/color", "bucket": {"hex": "#112233"}}"##);
        ok(db.import_worldlet(&json!({"format": "worldlet/1.0", "records": {"c": long}})));
        let record = ok(db.record_by_pk("c"));
        assert_eq!(record["bucket"], json!({"hex": "#112233"}));
        assert_eq!(
            record["stack"],
            json!({"shadow": {}, "a": {"class": "example.org/color"}})
        );
        // The compact form is not supported: its `value` is not a record key.
        let compact = doc(r##"{"class": "example.org/color", "value": "#112233"}"##);
        let failed = db.import_worldlet(&json!({"format": "worldlet/1.0", "records": {"d": compact}}));
        assert_eq!(error_id(&failed), "invalid_request");
        assert_eq!(failed["errors"][0]["details"]["unknown_fields"], json!(["value"]));
        assert_eq!(failed["errors"][0]["details"]["record"], "d");
    });
}

#[test]
fn s4_5_built_in_classes_are_recognised_without_records() {
    common::each_storage(|| {
        // E5: recognised by name, nothing seeded.
        let mut db = common::engine();
        assert_eq!(
            ok(db.q0(&json!({"action": "select"})))["count"],
            0,
            "records starts empty"
        );
        for class in [
            "puck.uno/record",
            "puck.uno/class",
            "puck.uno/hash",
            "puck.uno/reference",
            "puck.uno/dbfile",
        ] {
            assert_eq!(ok(db.by_class(class))["count"], 0, "{class}");
        }
        let pk = create(&mut db, "puck.uno/reference", json!({"target": "x"}));
        assert_eq!(
            ok(db.by_class("puck.uno/reference"))["records"][0]["pk"],
            json!(pk)
        );
        // No class: `puck.uno/record` (§6.4), also for an explicit null.
        for request in [
            json!({"action": "create", "bucket": {}}),
            json!({"action": "create", "class": null, "bucket": {}}),
        ] {
            let pk = ok(db.q0(&request))["pk"].as_str().unwrap().to_owned();
            assert_eq!(
                ok(db.record_by_pk(&pk))["stack"],
                json!({"shadow": {}, "a": {"class": "puck.uno/record"}})
            );
        }
    });
}

#[test]
fn s4_6_and_6_1_pass_through_keys_are_ignored() {
    common::each_storage(|| {
        let mut db = common::engine();
        let pk = ok(db.q0(&json!({
            "action": "create", "bucket": {"x": 1},
            "misc": {"any": "thing"}, "corporate": [1], "vibecode": "note", "comment": "c",
        })))["pk"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(ok(db.record_by_pk(&pk))["bucket"], json!({"x": 1}));
        let selected = ok(db.q0(&json!({"action": "select", "misc": 1, "corporate": 2})));
        assert_eq!(selected["count"], 1);
        // Also inside a block (E8); any other unknown key there is refused.
        let commented = ok(db.q0(&json!({"action": "select", "then": {"path": ["x", 1], "comment": "why"}})));
        assert_eq!(commented["count"], 1);
        let typo = db.q0(&json!({"action": "select", "then": {"paht": ["x", 2]}}));
        assert_eq!(typo["errors"][0]["details"]["unknown_fields"], json!(["paht"]));
    });
}

// ---- §5 class definitions -------------------------------------------------------------

/// §5.1, verbatim.
const DOC_5_1_OFFICER: &str = r#"{
  "class": "puck.uno/class",
  "name": "example.org/crew/officer",
  "description": "A ship's officer.",
  "inherits": ["example.org/crew/person"],
  "fields": {
    "rank":   {"class": "string", "required": true},
    "serial": {"class": "string", "required": true, "unique": true},
    "active": {"class": "boolean", "default": true},
    "watch":  {"class": "string", "one_of": ["alpha", "beta", "gamma"], "default": "alpha"}
  },
  "methods": {
    "greet": {
      "description": "Say hello to someone.",
      "params": {
        "who":    {"class": "string", "required": true},
        "formal": {"class": "boolean", "default": false},
        "extra":  {"splat": true}
      },
      "returns": {"class": "string"},
      "body": "puts 'Hello ' + $who"
    }
  },
  "uniques": [["serial", "watch"]]
}"#;

/// §5.2's nested hash field, verbatim (a field declaration, so wrapped in braces).
const DOC_5_2_NAME_FIELD: &str = r#"{"name": {
  "class": "hash", "of": "string", "required": true,
  "default": {"collapse": true},
  "fields": {"surname": {"required": true}, "given": {}, "middle": {}}
}}"#;

/// A store with §5.2's person (the `name` field as documented) and §5.1's officer.
/// §5.1 inherits from a person class the reference never defines: §5.2's example field
/// is its definition here.
fn crew() -> Engine {
    let mut db = common::engine();
    define(
        &mut db,
        json!({"name": PERSON, "fields": doc(DOC_5_2_NAME_FIELD)}),
    );
    // The whole-hash form's "class": "puck.uno/class" is accepted in a definition's
    // bucket and dropped (E4).
    define(&mut db, doc(DOC_5_1_OFFICER));
    db
}

#[test]
fn s5_1_officer_definition_as_written() {
    common::each_storage(|| {
        let mut db = crew();
        let schema = ok(db.export_schema());
        let mut expected = doc(DOC_5_1_OFFICER);
        expected.as_object_mut().unwrap().remove("class");
        assert_eq!(
            schema["classes"][1], expected,
            "stored as written, without `class`"
        );

        // Parent first: as written, without a person class, the definition is refused.
        let mut bare = common::engine();
        let refused =
            bare.q0(&json!({"action": "create", "class": "puck.uno/class", "bucket": doc(DOC_5_1_OFFICER)}));
        assert_eq!(error_id(&refused), "class-not-found");
        assert_eq!(refused["errors"][0]["details"]["class"], PERSON);

        // Active names are unique (the SQLite trigger's "duplicate class name").
        let again =
            db.q0(&json!({"action": "create", "class": "puck.uno/class", "bucket": doc(DOC_5_1_OFFICER)}));
        assert_eq!(error_id(&again), "validation-failed");
        assert_eq!(again["errors"][0]["details"]["reason"], "duplicate class name");
        assert_eq!(again["errors"][0]["details"]["name"], OFFICER);

        // `inherits` as a string is a one-element array.
        define(
            &mut db,
            json!({"name": "example.org/crew/captain", "inherits": OFFICER}),
        );
        let captain = db.q0(&json!({"action": "create", "class": "example.org/crew/captain", "bucket": {"name": {"surname": "Dallas"}}}));
        let fields: Vec<&str> = captain["errors"][0]["details"]["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["rank", "serial"], "inherited requirements");
    });
}

#[test]
fn s5_1_and_5_3_writes_validate_against_the_officer_definition() {
    common::each_storage(|| {
        let mut db = crew();
        // §6.4's create example under this definition: defaults filled.
        let hicks = create(
            &mut db,
            OFFICER,
            json!({"name": {"surname": "Hicks"}, "rank": "Corporal", "serial": "CM-221"}),
        );
        assert_eq!(
            ok(db.record_by_pk(&hicks))["bucket"],
            json!({"name": {"surname": "Hicks"}, "rank": "Corporal", "serial": "CM-221", "active": true, "watch": "alpha"})
        );
        // Every violation listed, each naming its field.
        let bad = db.q0(&json!({"action": "create", "class": OFFICER, "bucket": {"name": {}, "active": "yes", "watch": "delta"}}));
        assert_eq!(error_id(&bad), "validation-failed");
        let violations: Vec<(String, String)> = bad["errors"][0]["details"]["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["field"].as_str().unwrap().into(),
                    v["problem"].as_str().unwrap().into(),
                )
            })
            .collect();
        let expect = |f: &str, p: &str| (f.to_owned(), p.to_owned());
        assert_eq!(
            violations,
            [
                expect("name.surname", "required"),
                expect("rank", "required"),
                expect("serial", "required"),
                expect("active", "wrong type"),
                expect("watch", "not one of the allowed values"),
            ]
        );
        // `unique` on serial, and the `uniques` tuple (serial, watch).
        let dup = db.q0(&json!({"action": "create", "class": OFFICER, "bucket": {"name": {"surname": "Vasquez"}, "rank": "Private", "serial": "CM-221", "watch": "beta"}}));
        assert_eq!(error_id(&dup), "unique-violation");
        assert_eq!(dup["errors"][0]["details"]["fields"], json!(["serial"]));
        assert_eq!(dup["errors"][0]["details"]["existing_pk"], json!(hicks));
        // Unknown bucket keys are stored as they are (§4.1).
        let pk = create(
            &mut db,
            OFFICER,
            json!({"name": {"surname": "Apone"}, "rank": "Sergeant", "serial": "CM-1", "callsign": "Apone"}),
        );
        assert_eq!(ok(db.record_by_pk(&pk))["bucket"]["callsign"], "Apone");
        // The methods block is kept as written.
        let defs =
            ok(db.q0(&json!({"action": "select", "class": "puck.uno/class", "path": ["name", OFFICER]})));
        assert_eq!(
            defs["records"][0]["bucket"]["methods"],
            doc(DOC_5_1_OFFICER)["methods"]
        );
    });
}

#[test]
fn s5_1_uniques_tuple() {
    common::each_storage(|| {
        // The officer's `uniques` tuple alone (a definition without `unique` on serial, so
        // the tuple is what collides).
        let mut db = common::engine();
        define(
            &mut db,
            json!({"name": OFFICER, "fields": {"serial": {"class": "string"}, "watch": {"default": "alpha"}}, "uniques": [["serial", "watch"]]}),
        );
        create(&mut db, OFFICER, json!({"serial": "S1"}));
        create(&mut db, OFFICER, json!({"serial": "S1", "watch": "beta"}));
        let clash = db.q0(&json!({"action": "create", "class": OFFICER, "bucket": {"serial": "S1"}}));
        assert_eq!(error_id(&clash), "unique-violation");
        assert_eq!(
            clash["errors"][0]["details"]["fields"],
            json!(["serial", "watch"])
        );
        assert_eq!(clash["errors"][0]["details"]["values"], json!(["S1", "alpha"]));
    });
}

#[test]
fn s5_2_nested_hash_field() {
    common::each_storage(|| {
        let mut db = crew();
        // `default: {"collapse": true}` applies to every sub-field; `of` types them.
        let pk = create(
            &mut db,
            PERSON,
            json!({"name": {"given": " Ellen  Louise ", "surname": "  Ripley "}}),
        );
        assert_eq!(
            ok(db.record_by_pk(&pk))["bucket"]["name"],
            json!({"surname": "Ripley", "given": "Ellen Louise"}),
            "collapsed, sub-fields in definition order"
        );
        for (bucket, field, problem) in [
            (json!({}), "name", "required"),
            (json!({"name": {"given": "Ellen"}}), "name.surname", "required"),
            (json!({"name": {"surname": 7}}), "name.surname", "wrong type"),
            (json!({"name": "Ripley"}), "name", "wrong type"),
        ] {
            let failed = db.q0(&json!({"action": "create", "class": PERSON, "bucket": bucket}));
            assert_eq!(error_id(&failed), "validation-failed", "{bucket}");
            let v = &failed["errors"][0]["details"]["violations"][0];
            assert_eq!(
                (v["field"].as_str(), v["problem"].as_str()),
                (Some(field), Some(problem)),
                "{bucket}"
            );
        }
    });
}

#[test]
fn s5_2_vocabulary_enum_items_and_bad_definitions() {
    common::each_storage(|| {
        // E4: `enum` = `one_of`, `items` = `of`; a misspelt key (`unqiues`, the trap kept
        // in worldlet.json) is an error, not silently ignored; a default must fit its field.
        let mut db = common::engine();
        define(
            &mut db,
            json!({"name": "example.org/ship", "fields": {
                "kind": {"class": "string", "enum": ["tug", "frigate"]},
                "tags": {"class": "hash", "items": "string", "fields": {"a": {}}}
            }}),
        );
        let bad = db.q0(&json!({"action": "create", "class": "example.org/ship", "bucket": {"kind": "yacht", "tags": {"a": 1}}}));
        let problems: Vec<&str> = bad["errors"][0]["details"]["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["field"].as_str().unwrap())
            .collect();
        assert_eq!(problems, ["kind", "tags.a"]);
        let misspelt = db.q0(&json!({"action": "create", "class": "puck.uno/class", "bucket": {"name": "example.org/x", "unqiues": [["a"]]}}));
        assert_eq!(error_id(&misspelt), "validation-failed");
        assert_eq!(
            misspelt["errors"][0]["details"]["class_definition"][0]["field"],
            "unqiues"
        );
        let bad_default = db.q0(&json!({"action": "create", "class": "puck.uno/class", "bucket": {"name": "example.org/y", "fields": {"watch": {"one_of": ["alpha"], "default": "delta"}}}}));
        assert_eq!(error_id(&bad_default), "validation-failed");
        assert_eq!(
            bad_default["errors"][0]["details"]["class_definition"][0]["field"],
            "fields.watch.default"
        );
    });
}

#[test]
fn s5_3_latest_definition_wins_and_old_records_stay() {
    common::each_storage(|| {
        let mut db = common::engine();
        let def = define(
            &mut db,
            json!({"name": PERSON, "fields": {"age": {"class": "number"}}}),
        );
        let old = create(&mut db, PERSON, json!({"age": 30}));
        ok(db.q0(&json!({"action": "update", "pk": def, "bucket": {"name": PERSON, "fields": {"age": {"class": "string"}}}})));
        assert_eq!(
            ok(db.record_by_pk(&old))["bucket"]["age"],
            30,
            "not retroactively invalidated"
        );
        let now = db.q0(&json!({"action": "create", "class": PERSON, "bucket": {"age": 31}}));
        assert_eq!(
            error_id(&now),
            "validation-failed",
            "the latest definition applies"
        );
        create(&mut db, PERSON, json!({"age": "31"}));
    });
}

#[test]
fn s5_5_class_filters_include_subclasses_through_inherits() {
    common::each_storage(|| {
        let mut db = crew();
        define(
            &mut db,
            json!({"name": "example.org/crew/captain", "inherits": [OFFICER]}),
        );
        define(&mut db, json!({"name": "example.org/android"}));
        let lambert = create(&mut db, PERSON, json!({"name": {"surname": "Lambert"}}));
        let hicks = create(
            &mut db,
            OFFICER,
            json!({"name": {"surname": "Hicks"}, "rank": "Corporal", "serial": "1"}),
        );
        let dallas = create(
            &mut db,
            "example.org/crew/captain",
            json!({"name": {"surname": "Dallas"}, "rank": "Captain", "serial": "2"}),
        );
        // A record with several class platters is selectable by any of them (§4.1).
        let bishop = ok(db.q0(&json!({"action": "create", "classes": ["example.org/android", PERSON], "bucket": {"name": {"surname": "Bishop"}}})))["pk"]
        .as_str()
        .unwrap()
        .to_owned();
        let pks = |db: &mut Engine, class: Value| -> Vec<String> {
            ok(db.q0(&json!({"action": "select", "class": class})))["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["pk"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            pks(&mut db, json!(PERSON)),
            [lambert, hicks.clone(), dallas.clone(), bishop.clone()]
        );
        assert_eq!(pks(&mut db, json!(OFFICER)), [hicks, dallas.clone()]);
        assert_eq!(
            pks(
                &mut db,
                json!(["example.org/android", "example.org/crew/captain"])
            ),
            [dallas, bishop]
        );
        // D8: `classes` is a synonym, with the warning when both are given.
        let both = db.q0(&json!({"action": "select", "class": "example.org/android", "classes": [OFFICER]}));
        assert_eq!(both["results"]["count"], 3);
        assert_eq!(
            both["warnings"][0],
            json!({"id": "redundant_fields", "details": {"fields": ["class", "classes"]}})
        );
    });
}

// ---- §6.2 envelopes -------------------------------------------------------------------

/// §6.2, verbatim.
const DOC_6_2_SUCCESS: &str =
    r#"{"success": true, "results": {"pk": "5d1e0c2a-9b7f-4f0e-8a31-6c2d4e9f1a07"}}"#;
const DOC_6_2_WARNINGS: &str = r#"{"success": true, "results": {},
 "warnings": [{"id": "redundant_fields", "details": {"fields": ["sort", "sorts"]}}]}"#;
const DOC_6_2_FAILURE: &str = r#"{"success": false,
 "errors": [{"id": "invalid_request", "details": {"missing_fields": ["bucket"]}}]}"#;

#[test]
fn s6_2_success_envelope() {
    common::each_storage(|| {
        let mut db = common::engine();
        let got = db.q0(&json!({"action": "create", "bucket": {}}));
        let mut expected = doc(DOC_6_2_SUCCESS);
        assert!(is_uuid_v4(got["results"]["pk"].as_str().unwrap()));
        expected["results"]["pk"] = got["results"]["pk"].clone();
        // E16: a success also carries `"errors": []` (the Python requirements: the dict
        // always has success, errors, results).
        expected["errors"] = json!([]);
        assert_eq!(got, expected);
    });
}

#[test]
fn s6_2_success_with_warnings() {
    common::each_storage(|| {
        let mut db = common::engine();
        let got = db.q0(&json!({"action": "select", "sort": ["a"], "sorts": [["b"]]}));
        let mut expected = doc(DOC_6_2_WARNINGS);
        // D2: a select's results are {count, records}; E16: `errors: []` on success.
        expected["results"] = json!({"count": 0, "records": []});
        expected["errors"] = json!([]);
        assert_eq!(got, expected);
    });
}

#[test]
fn s6_2_failure_envelope() {
    common::each_storage(|| {
        let mut db = common::engine();
        let got = db.q0(&json!({"action": "create"}));
        let expected = doc(DOC_6_2_FAILURE);
        assert_eq!(got["success"], expected["success"]);
        assert_eq!(got.as_object().unwrap().len(), 2, "no results on failure: {got}");
        assert_eq!(got["errors"].as_array().unwrap().len(), 1);
        assert_eq!(got["errors"][0]["id"], expected["errors"][0]["id"]);
        assert_eq!(
            got["errors"][0]["details"]["missing_fields"],
            expected["errors"][0]["details"]["missing_fields"]
        );
        // E16: details also carry `fix`, what to do about it.
        assert!(got["errors"][0]["details"]["fix"].is_string());
    });
}

// ---- §6.3 select ----------------------------------------------------------------------

/// §6.3's sort example, verbatim.
const DOC_6_3_SORTS: &str = r#"{"action": "select", "class": "example.org/crew/person",
 "sorts": [["name", "surname", {"case-sensitive": false, "collapse": true}],
           ["age", {"reverse": true}]],
 "limit": 25, "offset": 50}"#;

/// §6.3's narrowing example, verbatim.
const DOC_6_3_NARROWING: &str = r#"{
  "action": "select",
  "class": "example.org/crew/person",
  "any": [
    {"path": ["name", "surname", "Ripley"]},
    {"path": ["name", "surname", "Dallas"]}
  ],
  "all": [
    {"path": ["certified", {"truthy": true}]},
    {"path": ["age", {"gte": 30}]}
  ],
  "then": {"not": true, "path": ["ships", {"includes": "Sulaco"}]}
}"#;

/// §6.3's placeholder example, verbatim.
const DOC_6_3_PLACEHOLDERS: &str = r#"{
  "action": "select",
  "placeholders": {
    "who": "ripley",
    "who_match": {"value": {"placeholder": "who"}, "case-sensitive": false}
  },
  "path": ["name", "surname", {"placeholder": "who_match"}],
  "then": {"placeholders": {"who": "dallas"}, "path": ["name", "surname", {"placeholder": "who"}]}
}"#;

/// A person class whose `name` is a plain hash: the select examples need surnames
/// stored with their case and whitespace (§5.2's `collapse` would normalise them).
fn people_store() -> Engine {
    let mut db = common::engine();
    define(
        &mut db,
        json!({"name": PERSON, "fields": {"name": {"class": "hash"}}}),
    );
    db
}

fn bucket_names(results: &Value, key: &str) -> Vec<Value> {
    results["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["bucket"][key].clone())
        .collect()
}

#[test]
fn s6_3_sorts_limit_and_offset_as_written() {
    common::each_storage(|| {
        // 100 people: record `i` (0..100) is meant to come i-th. Surnames "name 000".."name
        // 049" each twice, written with random case and whitespace (equal under
        // case-sensitive: false + collapse); of each pair the older comes first (age
        // reversed), a missing age after any age (nulls last, also reversed). Two people
        // without a surname come last. Inserted in a scrambled order.
        let mut db = people_store();
        let decorate = |k: usize, variant: usize| match variant % 4 {
            0 => format!("name {k:03}"),
            1 => format!("NAME {k:03}"),
            2 => format!("  Name   {k:03} "),
            _ => format!("nAmE\t{k:03}"),
        };
        let mut order: Vec<usize> = (0..102).collect();
        let mut seed = 7u64;
        for i in (1..order.len()).rev() {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            order.swap(i, (seed >> 33) as usize % (i + 1));
        }
        for &i in &order {
            let mut bucket = json!({"i": i});
            if i < 100 {
                bucket["name"] = json!({"surname": decorate(i / 2, i * 7 + 3)});
                if i % 2 == 0 {
                    bucket["age"] = json!(50);
                } else if (i / 2) % 7 != 0 {
                    bucket["age"] = json!(20);
                }
            } else {
                bucket["age"] = json!(199 - i); // 100 is older than 101
            }
            create(&mut db, PERSON, bucket);
        }
        let results = ok(db.q0(&doc(DOC_6_3_SORTS)));
        assert_eq!(results["count"], 25);
        assert_eq!(
            bucket_names(&results, "i"),
            (50..75).map(|i| json!(i)).collect::<Vec<_>>()
        );
        // The whole order, and nulls last at the end.
        let mut all = doc(DOC_6_3_SORTS);
        all.as_object_mut().unwrap().remove("limit");
        all.as_object_mut().unwrap().remove("offset");
        let results = ok(db.q0(&all));
        assert_eq!(
            bucket_names(&results, "i"),
            (0..102).map(|i| json!(i)).collect::<Vec<_>>()
        );
        // Case-sensitive, without collapse: the decorations decide.
        let plain =
            ok(db.q0(&json!({"action": "select", "class": PERSON, "sort": ["name", "surname"], "limit": 3})));
        let firsts: Vec<&str> = plain["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["bucket"]["name"]["surname"].as_str().unwrap())
            .collect();
        assert!(
            firsts.iter().all(|s| s.starts_with("  Name")),
            "spaces sort before letters: {firsts:?}"
        );
    });
}

fn narrowing_people(db: &mut Engine) {
    for (surname, age, certified, ships) in [
        ("Ripley", 35, json!(true), json!(["Nostromo", "Sulaco"])),
        ("Ripley", 33, json!(1), json!(["Nostromo"])),
        ("Dallas", 45, json!(true), json!(["Nostromo"])),
        ("Dallas", 29, json!(true), json!([])),
        ("dallas", 45, json!(true), json!([])),
        ("Lambert", 31, json!(false), json!(["Nostromo"])),
        ("Hicks", 28, json!(true), json!(["Sulaco"])),
    ] {
        create(
            db,
            PERSON,
            json!({"name": {"surname": surname}, "age": age, "certified": certified, "ships": ships}),
        );
    }
}

#[test]
fn s6_3_any_all_then_as_written() {
    common::each_storage(|| {
        let mut db = people_store();
        narrowing_people(&mut db);
        let results = ok(db.q0(&doc(DOC_6_3_NARROWING)));
        // Ripley 35 sailed the Sulaco (then/not), Dallas 29 is under 30 (all), "dallas" is
        // not "Dallas" (literal equality is case-sensitive), Lambert and Hicks fail `any`.
        let got: Vec<(Value, Value)> = results["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["bucket"]["name"]["surname"].clone(), r["bucket"]["age"].clone()))
            .collect();
        assert_eq!(got, [(json!("Ripley"), json!(33)), (json!("Dallas"), json!(45))]);
    });
}

#[test]
fn s6_3_placeholders_as_written() {
    common::each_storage(|| {
        let mut db = people_store();
        for surname in ["Ripley", "ripley", "RIPLEY", "Dallas", "dallas"] {
            create(&mut db, PERSON, json!({"name": {"surname": surname}}));
        }
        // As written: the top level keeps surnames equal to "ripley" ignoring case; the
        // `then` block shadows `who` with "dallas" and keeps surnames equal to it: no
        // surname is both, so nothing is selected.
        assert_eq!(
            ok(db.q0(&doc(DOC_6_3_PLACEHOLDERS))),
            json!({"count": 0, "records": []})
        );
        // Each half alone.
        let mut top = doc(DOC_6_3_PLACEHOLDERS);
        top.as_object_mut().unwrap().remove("then");
        let top = ok(db.q0(&top));
        assert_eq!(surnames(&top), ["Ripley", "ripley", "RIPLEY"]);
        let mut inner = doc(DOC_6_3_PLACEHOLDERS);
        inner.as_object_mut().unwrap().remove("path");
        assert_eq!(surnames(&ok(db.q0(&inner))), ["dallas"], "the shadowing value");
        // E14: a name inside a placeholder's value is looked up where the placeholder is
        // used, so the inner block's `who` also reaches into `who_match`.
        inner["then"]["path"] = json!(["name", "surname", {"placeholder": "who_match"}]);
        assert_eq!(surnames(&ok(db.q0(&inner))), ["Dallas", "dallas"]);
    });
}

#[test]
fn s6_3_every_operator_of_the_table() {
    common::each_storage(|| {
        let mut db = people_store();
        narrowing_people(&mut db);
        create(
            &mut db,
            PERSON,
            json!({"name": {"surname": "  Bishop  341 "}, "age": null}),
        );
        let count = |db: &mut Engine, path: Value| -> usize {
            ok(db.q0(&json!({"action": "select", "class": PERSON, "path": path})))["count"]
                .as_u64()
                .unwrap() as usize
        };
        for (path, expected) in [
            (
                json!(["name", "surname", {"value": "DALLAS", "case-sensitive": false}]),
                3,
            ),
            (
                json!(["name", "surname", {"value": "Bishop 341", "collapse": true}]),
                1,
            ),
            (json!(["name", "surname", {"contains": "ll"}]), 3),
            (json!(["name", "surname", {"starts-with": "Ri"}]), 2),
            (json!(["name", "surname", {"ends-with": "as"}]), 3),
            (json!(["age", {"gt": 35}]), 2),
            (json!(["age", {"lt": 29}]), 1),
            (json!(["age", {"gte": 35}]), 3),
            (json!(["age", {"lte": 29}]), 2),
            (json!(["ships", {"includes": "Sulaco"}]), 2),
            (json!(["ships", {"includes_all": ["Nostromo", "Sulaco"]}]), 1),
            (json!(["ships", {"includes_any": ["Sulaco", "Narcissus"]}]), 2),
            (json!(["age", {"exists": true}]), 7),
            (json!(["age", {"exists": false}]), 1),
            (json!(["certified", {"truthy": true}]), 6),
            (json!(["age", {"any": true}]), 8),
            (json!(["ships", {"any": true}]), 7),
            (json!(["name", "surname", "Ripley"]), 2),
        ] {
            assert_eq!(count(&mut db, path.clone()), expected, "{path}");
        }
    });
}

#[test]
fn s6_3_unfiltered_select_and_deleted_records() {
    common::each_storage(|| {
        let mut db = common::engine();
        let a = create(&mut db, "puck.uno/record", json!({"n": 1}));
        let b = create(&mut db, "puck.uno/record", json!({"n": 2}));
        ok(db.q0(&json!({"action": "delete", "pk": a})));
        let all = ok(db.q0(&json!({"action": "select"})));
        assert_eq!(all["count"], 1);
        assert_eq!(all["records"][0]["pk"], json!(b));
        assert_eq!(
            ok(db.q0(&json!({"action": "select", "pk": a}))),
            json!({"count": 0, "records": []})
        );
    });
}

// ---- §6.4 - §6.6 writes ---------------------------------------------------------------

/// §6.4, verbatim.
const DOC_6_4_CREATE: &str = r#"{"action": "create", "class": "example.org/crew/officer",
 "bucket": {"name": {"surname": "Hicks"}, "rank": "Corporal", "serial": "CM-221"}}"#;
const DOC_6_4_RESPONSE: &str =
    r#"{"success": true, "results": {"pk": "5d1e0c2a-9b7f-4f0e-8a31-6c2d4e9f1a07"}}"#;

#[test]
fn s6_4_create_as_written() {
    common::each_storage(|| {
        let mut db = crew();
        let got = db.q0(&doc(DOC_6_4_CREATE));
        let mut expected = doc(DOC_6_4_RESPONSE);
        let pk = got["results"]["pk"].as_str().unwrap().to_owned();
        assert!(is_uuid_v4(&pk), "E12: the engine generates a UUID v4");
        expected["results"]["pk"] = json!(pk);
        expected["errors"] = json!([]); // E16
        assert_eq!(got, expected);
        // E12: a request cannot choose the pk.
        let chosen = db.q0(&json!({"action": "create", "pk": "mine", "bucket": {}}));
        assert_eq!(chosen["errors"][0]["details"]["unknown_fields"], json!(["pk"]));
    });
}

#[test]
fn s6_4_create_with_several_classes() {
    common::each_storage(|| {
        // E3: `classes` as an array gives platters a, b, ...; as a hash, named platters
        // with preset platter buckets; with `class` too, a warning.
        let mut db = people_store();
        define(&mut db, json!({"name": "example.org/android"}));
        let pk =
            ok(db.q0(&json!({"action": "create", "classes": [PERSON, "example.org/android"], "bucket": {}})))
                ["pk"]
                .as_str()
                .unwrap()
                .to_owned();
        assert_eq!(
            ok(db.record_by_pk(&pk))["stack"],
            json!({"shadow": {}, "a": {"class": PERSON}, "b": {"class": "example.org/android"}})
        );
        let both = db.q0(&json!({
            "action": "create", "class": PERSON,
            "classes": {"a": {"class": "example.org/android", "bucket": {"model": 341}}},
            "bucket": {},
        }));
        assert_eq!(
            both["warnings"][0]["details"]["fields"],
            json!(["class", "classes"])
        );
        let pk = both["results"]["pk"].as_str().unwrap();
        assert_eq!(
            ok(db.record_by_pk(pk))["stack"],
            json!({"shadow": {}, "a": {"class": "example.org/android", "bucket": {"model": 341}}, "b": {"class": PERSON}}),
            "the named platter keeps its key, the class takes the next free one"
        );
    });
}

#[test]
fn s6_5_update_replaces_and_changes_class() {
    common::each_storage(|| {
        // D3/E7: the bucket is replaced, results {"pk"}; `class` alone changes the first
        // class platter's class and keeps the rest of that platter.
        let mut db = people_store();
        define(
            &mut db,
            json!({"name": OFFICER, "inherits": PERSON, "fields": {"rank": {"required": true}}}),
        );
        let pk = ok(db.q0(&json!({"action": "create", "classes": {"crew": {"class": PERSON, "bucket": {"x": 1}}}, "bucket": {"a": 1, "b": 2}})))["pk"]
        .as_str()
        .unwrap()
        .to_owned();
        assert_eq!(
            ok(db.q0(&json!({"action": "update", "pk": pk, "bucket": {"b": 3}}))),
            json!({"pk": pk})
        );
        assert_eq!(ok(db.record_by_pk(&pk))["bucket"], json!({"b": 3}));
        let refused = db.q0(&json!({"action": "update", "pk": pk, "class": OFFICER}));
        assert_eq!(
            error_id(&refused),
            "validation-failed",
            "validated against the new class"
        );
        ok(db.q0(&json!({"action": "update", "pk": pk, "class": OFFICER, "bucket": {"rank": "Private"}})));
        assert_eq!(
            ok(db.record_by_pk(&pk))["stack"]["crew"],
            json!({"class": OFFICER, "bucket": {"x": 1}})
        );
        let neither = db.q0(&json!({"action": "update", "pk": pk}));
        assert_eq!(
            neither["errors"][0]["details"]["missing_fields"],
            json!(["bucket"])
        );
        assert_eq!(
            error_id(&db.q0(&json!({"action": "update", "pk": "nope", "bucket": {}}))),
            "record_not_found"
        );
        ok(db.q0(&json!({"action": "delete", "pk": pk})));
        assert_eq!(
            error_id(&db.q0(&json!({"action": "update", "pk": pk, "bucket": {}}))),
            "record_deleted"
        );
    });
}

/// §6.6, verbatim.
const DOC_6_6_DELETE: &str =
    r#"{"action": "delete", "pk": "5d1e0c2a-9b7f-4f0e-8a31-6c2d4e9f1a07", "if_exists": true}"#;
const DOC_6_6_RESPONSE: &str =
    r#"{"success": true, "results": {"pk": "5d1e0c2a-9b7f-4f0e-8a31-6c2d4e9f1a07", "deleted": true}}"#;

#[test]
fn s6_6_delete_with_if_exists_as_written() {
    common::each_storage(|| {
        // The example's pk is client-chosen: the record is imported under it (E12: a
        // worldlet keeps its keys).
        let mut db = common::engine();
        let pk = "5d1e0c2a-9b7f-4f0e-8a31-6c2d4e9f1a07";
        ok(db.import_worldlet(&json!({"format": "worldlet/1.0", "records": {pk: {"bucket": {"n": 1}}}})));
        let mut expected = doc(DOC_6_6_RESPONSE);
        expected["errors"] = json!([]); // E16
        assert_eq!(db.q0(&doc(DOC_6_6_DELETE)), expected);
        // Already deleted, or missing: success with deleted false.
        expected["results"]["deleted"] = json!(false);
        assert_eq!(db.q0(&doc(DOC_6_6_DELETE)), expected);
        let mut missing = doc(DOC_6_6_DELETE);
        missing["pk"] = json!("no-such-record");
        assert_eq!(
            ok(db.q0(&missing)),
            json!({"pk": "no-such-record", "deleted": false})
        );
        // Without if_exists: record_deleted / record_not_found (implied by §6.6).
        let mut strict = doc(DOC_6_6_DELETE);
        strict.as_object_mut().unwrap().remove("if_exists");
        assert_eq!(error_id(&db.q0(&strict)), "record_deleted");
        strict["pk"] = json!("no-such-record");
        assert_eq!(error_id(&db.q0(&strict)), "record_not_found");
        // The tombstone is gone from selects and from exports.
        assert_eq!(ok(db.q0(&json!({"action": "select"})))["count"], 0);
        assert_eq!(db.export_worldlet()["results"]["records"], json!({}));
    });
}

// ---- §3.1 connections, §7 transactions ------------------------------------------------

#[test]
fn s3_1_connection_modes() {
    common::each_storage(|| {
        for mode in ["rw", "wr", "RW", "Wr"] {
            let db = Engine::open(Storage::Memory, mode).unwrap();
            assert!(!db.is_read_only(), "{mode}");
        }
        for (mode, id) in [
            ("w", "mode-not-supported"),
            ("W", "mode-not-supported"),
            (" rw", "invalid-mode"),
            ("rw ", "invalid-mode"),
            ("", "invalid-mode"),
            ("rwx", "invalid-mode"),
            ("read", "invalid-mode"),
        ] {
            let problem = Engine::open(Storage::Memory, mode).unwrap_err();
            assert_eq!(problem.id, id, "{mode:?}");
            assert!(problem.details["fix"].is_string());
        }
        let dir = std::env::temp_dir().join(format!("mb-conformance-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("crew.db");
        {
            let mut db = Engine::open(Storage::File(file.clone()), "rw").unwrap();
            create(&mut db, "puck.uno/record", json!({"x": 1}));
        }
        let mut reader = Engine::open(Storage::File(file.clone()), "r").unwrap();
        assert!(reader.is_read_only());
        assert_eq!(ok(reader.q0(&json!({"action": "select"})))["count"], 1);
        for write in [
            json!({"action": "create", "bucket": {}}),
            json!({"action": "update", "pk": "x", "bucket": {}}),
            json!({"action": "delete", "pk": "x"}),
        ] {
            assert_eq!(error_id(&reader.q0(&write)), "read-only-connection", "{write}");
        }
        assert_eq!(
            error_id(&reader.import_worldlet(&json!({"format": "worldlet/1.0"}))),
            "read-only-connection"
        );
        assert_eq!(
            error_id(&reader.import_schema(&json!({"classes": []}))),
            "read-only-connection"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn s3_1_leaving_the_connection_rolls_back_what_was_not_committed() {
    common::each_storage(|| {
        // "On exit, any transaction not explicitly committed is rolled back."
        let dir = std::env::temp_dir().join(format!("mb-exit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("crew.db");
        {
            let mut db = Engine::open(Storage::File(file.clone()), "rw").unwrap();
            create(&mut db, "puck.uno/record", json!({"kept": true}));
            let t = begin(&mut db, None);
            ok(db.q0(&json!({"action": "create", "bucket": {"kept": false}, "transaction": t})));
            assert_eq!(
                ok(db.q0(&json!({"action": "select"})))["count"],
                2,
                "visible inside"
            );
        }
        let mut db = Engine::open(Storage::File(file), "r").unwrap();
        let left = ok(db.q0(&json!({"action": "select"})));
        assert_eq!(left["count"], 1);
        assert_eq!(left["records"][0]["bucket"], json!({"kept": true}));
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

fn begin(db: &mut Engine, parent: Option<&str>) -> String {
    let request = match parent {
        Some(p) => json!({"action": "transaction", "parent": p}),
        None => json!({"action": "transaction"}),
    };
    ok(db.q0(&request))["transaction"].as_str().unwrap().to_owned()
}

#[test]
fn s7_1_the_nested_transaction_example_over_q0() {
    common::each_storage(|| {
        // §7.1's Python example as Q0 (E11/D5: `transaction` answers an id; `commit` and
        // `rollback` take it). The docs' commit "keeps the transaction usable"; ours ends
        // it (E11).
        let mut db = people_store();
        let outer = begin(&mut db, None);
        let inner = begin(&mut db, Some(&outer));
        ok(db.q0(&json!({"action": "create", "class": PERSON, "bucket": {"name": {"surname": "Bishop"}}, "transaction": inner})));
        assert_eq!(
            ok(db.q0(&json!({"action": "commit", "transaction": inner}))),
            json!({"transaction": inner, "committed": true})
        );
        ok(db.q0(&json!({"action": "commit", "transaction": outer})));
        assert_eq!(ok(db.by_class(PERSON))["count"], 1);
        assert_eq!(
            error_id(&db.q0(&json!({"action": "commit", "transaction": outer}))),
            "transaction-not-found"
        );

        // Committing the outer one commits the inner ones too.
        let outer = begin(&mut db, None);
        let inner = begin(&mut db, None); // nests inside the innermost open one
        ok(db.q0(&json!({"action": "create", "bucket": {"n": 1}, "transaction": inner})));
        ok(db.q0(&json!({"action": "commit", "transaction": outer})));
        assert_eq!(ok(db.by_class("puck.uno/record"))["count"], 1);

        // Rolling back the outer one undoes the inner ones and invalidates their ids.
        let outer = begin(&mut db, None);
        let inner = begin(&mut db, Some(&outer));
        ok(db.q0(&json!({"action": "create", "bucket": {"n": 2}, "transaction": inner})));
        assert_eq!(
            ok(db.q0(&json!({"action": "rollback", "transaction": outer}))),
            json!({"transaction": outer, "committed": false})
        );
        assert_eq!(ok(db.by_class("puck.uno/record"))["count"], 1);
        assert_eq!(
            error_id(&db.q0(&json!({"action": "rollback", "transaction": inner}))),
            "transaction-invalidated"
        );

        // "Leaving a block without commit() ⇒ automatic rollback": the owner goes away.
        let t = ok(db.q0_as(9, &json!({"action": "transaction"})))["transaction"]
            .as_str()
            .unwrap()
            .to_owned();
        ok(db.q0_as(
            9,
            &json!({"action": "create", "bucket": {"n": 3}, "transaction": t}),
        ));
        db.release_owner(9);
        assert_eq!(ok(db.by_class("puck.uno/record"))["count"], 1);
        assert_eq!(
            error_id(&db.q0(&json!({"action": "commit", "transaction": t}))),
            "transaction-not-found"
        );
    });
}

// ---- §9.2 worldlets -------------------------------------------------------------------

/// §9.2, verbatim.
const DOC_9_2_WORLDLET: &str = r#"{
  "format": "worldlet/1.0",
  "records": {
    "c1": {"class": "puck.uno/class", "name": "example.org/crew/person",
           "fields": {"name": {"class": "string", "required": true}}},
    "r1": {"bucket": {"name": "Ripley"},
           "stack": {"shadow": {}, "a": {"class": "example.org/crew/person"}}}
  },
  "files": {
    "f1": {"sha256": "<64 hex>", "mime": {"type": "text/plain", "encoding": "utf-8"},
           "created_at": "2122-06-03T00:00:00Z"}
  },
  "file_chunks": {
    "k1": {"file": "f1", "index": 0, "last": true, "data": "Log entry, day 1"}
  }
}"#;

#[test]
fn s9_2_worldlet_as_written() {
    common::each_storage(|| {
        // E13/D7: files are not stored by this engine, so the example as written is
        // refused rather than imported without its files; nothing is written.
        let mut db = common::engine();
        let refused = db.import_worldlet(&doc(DOC_9_2_WORLDLET));
        assert_eq!(error_id(&refused), "invalid_request");
        assert_eq!(
            refused["errors"][0]["details"]["unsupported_sections"],
            json!(["files", "file_chunks"])
        );
        assert_eq!(db.export_worldlet()["results"]["records"], json!({}));

        // Without its files it imports, keeping its keys (E12).
        let mut records_only = doc(DOC_9_2_WORLDLET);
        records_only.as_object_mut().unwrap().remove("files");
        records_only.as_object_mut().unwrap().remove("file_chunks");
        assert_eq!(ok(db.import_worldlet(&records_only)), json!({"imported": 2}));
        let people = ok(db.by_class(PERSON));
        assert_eq!(people["count"], 1);
        assert_eq!(people["records"][0]["pk"], "r1");
        assert_eq!(people["records"][0]["bucket"], json!({"name": "Ripley"}));
        assert_eq!(
            people["records"][0]["stack"],
            json!({"shadow": {}, "a": {"class": PERSON}})
        );
        // The definition is live: writes are validated against it.
        let missing = db.q0(&json!({"action": "create", "class": PERSON, "bucket": {}}));
        assert_eq!(error_id(&missing), "validation-failed");
        // Export gives the records back as written (plus each record's updated_at).
        let exported = db.export_worldlet()["results"].take();
        assert_eq!(exported["format"], "worldlet/1.0");
        assert_eq!(exported["records"]["c1"], records_only["records"]["c1"]);
        assert_eq!(
            exported["records"]["r1"]["bucket"],
            records_only["records"]["r1"]["bucket"]
        );
        assert_eq!(
            exported["records"]["r1"]["stack"],
            records_only["records"]["r1"]["stack"]
        );
        assert!(is_timestamp(
            exported["records"]["r1"]["updated_at"].as_str().unwrap()
        ));
    });
}

#[test]
fn s9_2_import_is_atomic_and_names_every_bad_record() {
    common::each_storage(|| {
        let mut db = common::engine();
        create(&mut db, "puck.uno/record", json!({"kept": true}));
        let before = db.export_worldlet()["results"].take();
        let mut worldlet = doc(DOC_9_2_WORLDLET);
        worldlet.as_object_mut().unwrap().remove("files");
        worldlet.as_object_mut().unwrap().remove("file_chunks");
        worldlet["records"]["r2"] = json!({"bucket": {}, "stack": {"a": {"class": PERSON}}});
        worldlet["records"]["r3"] = json!({"bucket": {"name": 3}, "stack": {"a": {"class": PERSON}}});
        let failed = db.import_worldlet(&worldlet);
        let named: Vec<(&str, &str)> = failed["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["id"].as_str().unwrap(),
                    e["details"]["record"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(named, [("validation-failed", "r2"), ("validation-failed", "r3")]);
        assert_eq!(
            db.export_worldlet()["results"],
            before,
            "nothing written, the definition included"
        );
        assert_eq!(
            error_id(&db.q0(&json!({"action": "select", "class": PERSON}))),
            "class-not-found"
        );
        // A definition may come after a class inheriting from it; a parent nowhere is named.
        let out_of_order = json!({"format": "worldlet/1.0", "records": {
            "k": {"class": "puck.uno/class", "name": "example.org/b", "inherits": "example.org/a"},
            "j": {"class": "puck.uno/class", "name": "example.org/a"},
        }});
        ok(db.import_worldlet(&out_of_order));
        let orphan = db.import_worldlet(&json!({"format": "worldlet/1.0", "records": {
            "o": {"class": "puck.uno/class", "name": "example.org/c", "inherits": "example.org/nowhere"},
        }}));
        assert_eq!(error_id(&orphan), "class-not-found");
        assert_eq!(orphan["errors"][0]["details"]["record"], "o");
        // The previous format is refused with what to change.
        let old = db.import_worldlet(&json!({"format": "worldlet", "format_version": "1.0"}));
        assert_eq!(error_id(&old), "invalid_request");
        assert!(old["errors"][0]["details"]["fix"]
            .as_str()
            .unwrap()
            .contains("worldlet/1.0"));
    });
}
