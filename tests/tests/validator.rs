//! The documents' validator (`run_all`, `placeholders`, `uns`, `fields`, `action`) and
//! the schema files (`import_schema_file`, `export_schema_file`), on an in-process engine.

use std::os::unix::fs::PermissionsExt;

use caspian_ipc::mikobase::engine::Engine;
use serde_json::{json, Value};

fn ids(report: &Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|p| p["id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn placeholders_are_checked_statically_even_where_evaluation_never_reaches() {
    let mut engine = Engine::memory();
    // The store is empty: evaluation reaches no record, so the engine's own run finds
    // nothing; the static check finds the undefined reference and the cycle.
    let query = json!({
        "action": "select",
        "placeholders": {"a": {"placeholder": "b"}, "b": {"placeholder": "a"}, "n": 3},
        "any": [
            {"path": ["age", {"placeholder": "n"}]},
            {"path": ["age", {"placeholder": "nope"}]},
            {"placeholders": {"m": {"placeholder": "n"}}, "then": {"path": ["x", {"placeholder": "m"}]}}
        ]
    });
    assert!(
        ids(&engine.validate(&query), "errors").is_empty(),
        "lazy: nothing reached"
    );
    let report = engine.validator().placeholders(&query);
    assert_eq!(
        ids(&report, "errors"),
        ["placeholder-circular", "placeholder-undefined"],
        "{report}"
    );
    assert_eq!(report["errors"][0]["details"]["cycle"], json!(["a", "b", "a"]));
    assert_eq!(report["errors"][1]["details"]["at"], "any[1].path");
    assert_eq!(report["errors"][1]["details"]["placeholder"], "nope");
    let all = engine.validator().run_all(&query);
    assert_eq!(
        ids(&all, "errors"),
        ids(&report, "errors"),
        "run_all includes the static check"
    );
}

#[test]
fn uns_checks_every_class_name_the_request_gives() {
    let mut engine = Engine::memory();
    let report = engine.validator().uns(&json!({
        "action": "create", "class": "officer", "classes": ["example.org/crew/a", "not a name"], "bucket": {}
    }));
    let at: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["details"]["at"].as_str().unwrap())
        .collect();
    assert_eq!(at, ["class", "classes[1]"], "{report}");
    let fine = engine
        .validator()
        .uns(&json!({"action": "select", "class": "example.org/crew/person"}));
    assert!(ids(&fine, "errors").is_empty(), "{fine}");
}

#[test]
fn fields_reports_field_problems_and_redundant_pairs_only() {
    let mut engine = Engine::memory();
    let unknown = engine.validator().fields(&json!({"action": "select", "limt": 3}));
    assert_eq!(
        unknown["errors"][0]["details"]["unknown_fields"],
        json!(["limt"]),
        "{unknown}"
    );
    let redundant = engine.validator().fields(&json!({
        "action": "select", "class": "example.org/a", "classes": ["example.org/b"]
    }));
    assert_eq!(ids(&redundant, "warnings"), ["redundant_fields"], "{redundant}");
    let no_action = engine.validator().fields(&json!({"bucket": {}}));
    assert!(
        ids(&no_action, "errors").is_empty(),
        "a missing action is the action check's: {no_action}"
    );
}

#[test]
fn action_reports_a_missing_or_unsupported_action_only() {
    let mut engine = Engine::memory();
    let misspelt = engine.validator().action(&json!({"action": "selct"}));
    assert_eq!(ids(&misspelt, "errors"), ["action-not-supported"], "{misspelt}");
    let missing = engine.validator().action(&json!({"bucket": {}}));
    assert_eq!(
        missing["errors"][0]["details"]["missing_fields"],
        json!(["action"])
    );
    let fine = engine.validator().action(&json!({"action": "select", "limt": 3}));
    assert!(
        ids(&fine, "errors").is_empty(),
        "a field problem is not the action check's: {fine}"
    );
}

#[test]
fn schema_files_round_trip_and_are_private() {
    let dir = std::env::temp_dir().join(format!("caspian-schema-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("schema.json");
    let mut source = Engine::memory();
    let schema =
        json!({"classes": [{"name": "example.org/crew/officer", "fields": {"rank": {"class": "string"}}}]});
    assert_eq!(source.import_schema(&schema)["success"], true);
    let exported = source.export_schema_file(&file);
    assert_eq!(exported["success"], true, "{exported}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the file is its owner's alone");
    let mut target = Engine::memory();
    let imported = target.import_schema_file(&file);
    assert_eq!(imported["results"]["imported"], 1, "{imported}");
    assert_eq!(
        target.export_schema()["results"],
        source.export_schema()["results"]
    );
    let missing = target.import_schema_file(dir.join("nope.json"));
    assert_eq!(missing["errors"][0]["id"], "invalid_request");
    assert!(missing["errors"][0]["details"]["file"]
        .as_str()
        .unwrap()
        .ends_with("nope.json"));
    std::fs::write(dir.join("bad.json"), "{not json").unwrap();
    let bad = target.import_schema_file(dir.join("bad.json"));
    assert_eq!(bad["errors"][0]["id"], "invalid_request", "{bad}");
    std::fs::remove_dir_all(&dir).unwrap();
}
