//! Typed requests lose nothing: every valid Q0 `select` and `create` of the corpus (the
//! engine tests' and the reference's examples) survives `serialize(deserialize(x))`
//! exactly, and answers the same through the typed request types, the generated dispatch
//! table and the in-process transport as through `Engine::q0` directly. Requests the
//! engine refuses are refused with the same id; class definitions reach the engine
//! whatever their keys (decision D13).

use caspian_ipc::mikobase::engine::Engine;
use caspian_ipc::mikobase::{
    ClassDefinition, ClassFilter, CreateRequest, ImportSchemaRequest, InProcess, MikobaseClient,
    NarrowingBlock, PathOperator, SelectRequest, SortQualifier, SortStep, Transport, ROUTE_IMPORT_SCHEMA,
};
use caspian_ipc_tests::refused;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

type Client = MikobaseClient<InProcess<Engine>>;

const PERSON: &str = "example.org/crew/person";
const OFFICER: &str = "example.org/crew/officer";

/// Two identical stores (same pks and timestamps): one called directly, one behind the
/// generated client.
fn twins() -> (Engine, Client) {
    let mut seed = Engine::memory();
    let schema = json!({"classes": [
        {"name": PERSON, "fields": {"name": {"class": "hash"}}},
        {"name": OFFICER, "inherits": [PERSON], "fields": {
            "rank": {"class": "string", "required": true},
            "serial": {"class": "string", "unique": true},
            "watch": {"class": "string", "one_of": ["alpha", "beta", "gamma"], "default": "alpha"}
        }, "uniques": [["rank", "watch"]]}
    ]});
    assert_eq!(seed.import_schema(&schema)["success"], true);
    let people = [
        json!({"name": {"surname": "Ripley", "given": "Ellen"}, "age": 35, "certified": true, "ships": ["Nostromo", "Sulaco"]}),
        json!({"name": {"surname": "dallas", "given": "Arthur"}, "age": 45, "certified": true, "ships": ["Nostromo"]}),
        json!({"name": {"surname": "Hicks"}, "age": 28, "certified": true, "ships": ["Sulaco"], "rank": "Corporal"}),
        json!({"name": {"surname": "Lambert", "given": "Joan"}, "age": 31, "certified": false, "ships": ["Nostromo"]}),
        json!({"name": {"surname": "  Bishop ", "given": ""}, "age": 40, "certified": true, "ships": []}),
        json!({"name": {"surname": "Nobody"}, "code": "K-9"}),
    ];
    for (i, bucket) in people.into_iter().enumerate() {
        let class = if i == 2 { OFFICER } else { PERSON };
        let created = seed.q0(&json!({"action": "create", "class": class, "bucket": bucket}));
        assert_eq!(created["success"], true, "{created}");
    }
    let worldlet = seed.export_worldlet()["results"].take();
    let mut copy = Engine::memory();
    assert_eq!(copy.import_worldlet(&worldlet)["success"], true);
    (seed, MikobaseClient::new(InProcess::new(copy)))
}

/// `results` without the records' `updated_at`: a worldlet import stamps class
/// definitions anew, so the twins differ there (and only there).
fn results(envelope: &Value) -> Value {
    let mut results = envelope["results"].clone();
    if let Some(records) = results["records"].as_array_mut() {
        for record in records {
            record["updated_at"] = Value::Null;
        }
    }
    results
}

/// The request's fields, without `action`.
fn fields(request: &Value) -> Value {
    let mut fields = request.clone();
    fields.as_object_mut().unwrap().remove("action");
    fields
}

/// Decodes the request's fields into `T` and checks that encoding it gives them back.
fn typed<T: DeserializeOwned + Serialize>(request: &Value) -> T {
    let fields = fields(request);
    let typed: T =
        serde_json::from_value(fields.clone()).unwrap_or_else(|e| panic!("{request} does not decode: {e}"));
    assert_eq!(
        serde_json::to_value(&typed).unwrap(),
        fields,
        "serialize(deserialize(x)) changed {request}"
    );
    typed
}

fn select_corpus() -> Vec<Value> {
    vec![
        json!({"action": "select"}),
        json!({"action": "select", "class": PERSON}),
        json!({"action": "select", "class": [OFFICER, "puck.uno/class"]}),
        json!({"action": "select", "classes": PERSON}),
        json!({"action": "select", "sorts": [["name", "surname", {"case-sensitive": false, "collapse": true}]], "class": PERSON}),
        json!({"action": "select", "sort": ["age", {"reverse": true}], "class": PERSON}),
        json!({"action": "select", "class": PERSON, "sort": ["age"], "limit": 2, "offset": 1}),
        json!({"action": "select", "class": PERSON, "sorts": [["name", "surname", {"case-sensitive": false, "collapse": true}], ["age", {"reverse": true}]], "limit": 25, "offset": 0}),
        json!({"action": "select", "sort": ["a"], "sorts": [["b"]], "class": "puck.uno/record", "classes": ["puck.uno/record"]}),
        json!({
            "action": "select", "class": PERSON,
            "any": [{"path": ["name", "surname", "Ripley"]}, {"path": ["name", "surname", {"value": "DALLAS", "case-sensitive": false}]}],
            "all": [{"path": ["certified", {"truthy": true}]}, {"path": ["age", {"gte": 30}]}],
            "then": {"not": true, "path": ["ships", {"includes": "Sulaco"}]}
        }),
        json!({"action": "select", "path": ["name", "surname", {"contains": "ick"}]}),
        json!({"action": "select", "path": ["name", "surname", {"starts-with": "rip", "case-sensitive": false}]}),
        json!({"action": "select", "path": ["name", "surname", {"ends-with": "ert"}]}),
        json!({"action": "select", "path": ["name", "surname", {"value": "Bishop", "collapse": true}]}),
        json!({"action": "select", "path": ["age", {"gt": 40}]}),
        json!({"action": "select", "path": ["age", {"lt": 30.5}]}),
        json!({"action": "select", "path": ["age", {"gte": 40, "lte": 40}]}),
        json!({"action": "select", "path": ["code", {"gt": "K-1"}]}),
        json!({"action": "select", "path": ["ships", {"includes_all": ["Nostromo", "Sulaco"]}]}),
        json!({"action": "select", "path": ["ships", {"includes_any": ["Sulaco"]}]}),
        json!({"action": "select", "path": ["age", {"exists": false}]}),
        json!({"action": "select", "path": ["certified", {"truthy": false}]}),
        json!({"action": "select", "path": ["ships", {"any": true}]}),
        json!({"action": "select", "path": ["age", 35]}),
        json!({"action": "select", "path": ["age", 35.0]}),
        json!({"action": "select", "path": ["name", {"value": {"surname": "Nobody"}}]}),
        json!({"action": "select", "path": ["name", "surname", "Hicks"], "not": true}),
        json!({
            "action": "select",
            "placeholders": {"who": "ripley", "who_match": {"value": {"placeholder": "who"}, "case-sensitive": false}},
            "path": ["name", "surname", {"placeholder": "who_match"}],
            "then": {"placeholders": {"who": "RIPLEY"}, "path": ["name", "surname", {"placeholder": "who_match"}]}
        }),
        json!({"action": "select", "placeholders": {"who": "Hicks"}, "then": {"placeholders": {"who": "Ripley"}, "path": ["name", "surname", {"placeholder": "who"}]}}),
        json!({"action": "select", "placeholders": {"key": "age", "min": 40}, "path": [{"placeholder": "key"}, {"gte": {"placeholder": "min"}}]}),
        json!({"action": "select", "pk": "no-such-pk", "path": ["age", {"placeholder": "undefined"}]}),
        json!({"action": "select", "any": [{"placeholders": {"s": "Hicks"}, "path": ["name", "surname", {"placeholder": "s"}]}, {"not": true, "path": ["age", {"exists": true}]}]}),
        json!({"action": "select", "then": {"path": ["certified", true], "then": {"all": [{"path": ["age", {"lt": 40}]}], "then": {"not": true, "path": ["ships", {"includes": "Sulaco"}]}}}}),
        json!({"action": "select", "then": {"path": ["age", 35], "comment": "the engine ignores keys it does not know in a block"}}),
        json!({"action": "select", "class": "puck.uno/class", "path": ["name", OFFICER]}),
    ]
}

#[test]
fn every_valid_select_survives_the_typed_round_trip() {
    let (mut direct, client) = twins();
    for request in select_corpus() {
        let expected = direct.q0(&request);
        assert_eq!(
            expected["success"], true,
            "the corpus holds valid requests: {request} {expected}"
        );
        let typed: SelectRequest = typed(&request);
        let answer = client.select(&typed).unwrap();
        let got = json!({ "results": answer.results });
        assert_eq!(results(&got), results(&expected), "{request}");
        assert_eq!(
            json!(answer.warnings),
            expected.get("warnings").cloned().unwrap_or(json!([]))
        );
        let raw = client.q0(&request).unwrap();
        assert_eq!(
            results(&raw),
            results(&expected),
            "raw through the dispatch table: {request}"
        );
        assert_eq!(raw["warnings"], expected["warnings"], "{request}");
    }
}

#[test]
fn every_valid_create_survives_the_typed_round_trip() {
    let creates = [
        json!({"action": "create", "class": OFFICER, "bucket": {"name": {"surname": "Hudson"}, "rank": "Private", "serial": "CM-221"}}),
        json!({"action": "create", "bucket": {"n": 1}}),
        json!({"action": "create", "class": PERSON, "bucket": {}}),
        json!({"action": "create", "classes": [PERSON, "puck.uno/hash"], "bucket": {"x": [1, 2]}}),
        json!({"action": "create", "classes": {"z": {"class": PERSON, "bucket": {"mixin": true}}, "m": {"class": "puck.uno/hash", "vibecode": "kept"}}, "bucket": {}}),
        json!({"action": "create", "class": PERSON, "classes": ["puck.uno/hash"], "bucket": {}}),
        json!({"action": "create", "class": "puck.uno/class", "bucket": {"name": "example.org/crew/android", "inherits": PERSON, "fields": {"model": {"class": "string", "required": true}, "serial": {}}}}),
    ];
    for request in creates {
        let (mut direct, client) = twins();
        let expected = direct.q0(&request);
        assert_eq!(expected["success"], true, "{request} {expected}");
        let typed: CreateRequest = typed(&request);
        let answer = client.create(&typed).unwrap();
        assert_eq!(
            json!(answer.warnings),
            expected.get("warnings").cloned().unwrap_or(json!([]))
        );
        let made = direct.record_by_pk(expected["results"]["pk"].as_str().unwrap())["results"].clone();
        let transport = client.transport();
        let body = serde_json::to_vec(&json!({"pk": answer.results.pk})).unwrap();
        let (_, reply) = transport.post("/record_by_pk", body).unwrap();
        let twin = serde_json::from_slice::<Value>(&reply).unwrap()["results"].clone();
        assert_eq!(twin["bucket"], made["bucket"], "{request}");
        // `to_string`, not `==`: platter order is part of a stack's meaning.
        assert_eq!(twin["stack"].to_string(), made["stack"].to_string(), "{request}");
    }
}

#[test]
fn typed_values_build_the_same_requests() {
    let by_hand = SelectRequest {
        class: Some(ClassFilter::One(PERSON.into())),
        sort: Some(vec![
            SortStep::Key("age".into()),
            SortStep::Qualifier(SortQualifier {
                reverse: Some(true),
                ..Default::default()
            }),
        ]),
        path: Some(vec![
            json!("age"),
            serde_json::to_value(PathOperator {
                gte: Some(caspian_ipc::mikobase::Bound::Number(30.into())),
                ..Default::default()
            })
            .unwrap(),
        ]),
        then: Some(NarrowingBlock {
            not: Some(true),
            path: Some(vec![json!("ships"), json!({"includes": "Sulaco"})]),
            then: Some(Box::new(NarrowingBlock::default())),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&by_hand).unwrap(),
        json!({
            "class": PERSON,
            "sort": ["age", {"reverse": true}],
            "path": ["age", {"gte": 30}],
            "then": {"path": ["ships", {"includes": "Sulaco"}], "not": true, "then": {}},
        })
    );
    let (_, client) = twins();
    let found = client.select(&by_hand).unwrap().results;
    let names: Vec<&Value> = found
        .records
        .iter()
        .map(|r| &r.bucket["name"]["surname"])
        .collect();
    assert_eq!(names, ["dallas", "  Bishop ", "Lambert"]);
}

#[test]
fn nullable_fields_read_null_as_absent_like_the_engine() {
    let (mut direct, client) = twins();
    for request in [
        json!({"action": "select", "pk": null, "class": null, "limit": null, "offset": null, "transaction": null}),
        json!({"action": "create", "bucket": {}, "class": null, "classes": null, "transaction": null}),
    ] {
        let expected = direct.q0(&request);
        let answer = client.q0(&request).unwrap();
        assert_eq!(answer["success"], true, "{answer}");
        assert_eq!(answer["success"], expected["success"]);
    }
}

#[test]
fn requests_the_engine_refuses_are_refused_with_the_same_id() {
    let (mut direct, client) = twins();
    for request in [
        json!({"action": "select", "not": null}),
        json!({"action": "select", "sort": null}),
        json!({"action": "select", "path": null}),
        json!({"action": "select", "then": null}),
        json!({"action": "select", "then": 5}),
        json!({"action": "select", "all": [5]}),
        json!({"action": "select", "class": 5}),
        json!({"action": "select", "class": [PERSON, 5]}),
        json!({"action": "select", "limit": "ten"}),
        json!({"action": "select", "sort": []}),
        json!({"action": "select", "sort": [{"reverse": true}]}),
        json!({"action": "select", "sort": ["a", {"upward": true}]}),
        json!({"action": "select", "sort": ["a", {"reverse": "yes"}]}),
        json!({"action": "select", "path": 5}),
        json!({"action": "select", "path": ["age", {"bigger": 3}]}),
        json!({"action": "select", "path": ["age", {"gt": true}]}),
        json!({"action": "select", "then": {"not": "yes"}}),
        json!({"action": "select", "then": {"path": ["age", {"placeholder": "nope"}]}}),
        json!({"action": "select", "colour": "red"}),
        json!({"action": "create", "bucket": [1]}),
        json!({"action": "create", "bucket": {}, "classes": "puck.uno/hash"}),
        json!({"action": "create", "bucket": {}, "classes": {"a": "puck.uno/hash"}}),
        json!({"action": "create", "bucket": {}, "class": "ghost"}),
        json!({"action": "create", "bucket": {}, "class": "example.org/ghost"}),
    ] {
        let expected = direct.q0(&request);
        let answer = refused(client.q0(&request));
        assert_eq!(expected["success"], false, "{request} {expected}");
        assert_eq!(
            answer["errors"][0]["id"], expected["errors"][0]["id"],
            "{request}: {answer}"
        );
    }
}

#[test]
fn a_value_that_fits_no_variant_is_told_what_fits() {
    let (_, client) = twins();
    let answer = refused(client.q0(&json!({"action": "select", "class": 5})));
    assert_eq!(
        answer["errors"][0]["details"]["wrong_types"][0]["reason"],
        "a ClassFilter: `one` (Uns) or `many` (list<Uns>)"
    );
}

#[test]
fn class_definitions_reach_the_engine_whatever_their_keys() {
    // (definition, whether the engine accepts it)
    let definitions = [
        (json!({"name": "example.org/a", "unqiues": [["x"]]}), false),
        (
            json!({"name": "example.org/b", "fields": {"x": {"class": "string", "required": "yes", "colour": 1}}}),
            false,
        ),
        (json!({"fields": {"x": {}}}), false),
        (
            json!({"name": 5, "inherits": 7, "fields": 3, "uniques": [[]]}),
            false,
        ),
        (json!({"name": "nodot", "fields": {"a": 1}}), false),
        (
            json!({"name": "example.org/c", "description": 42, "abstract": "maybe", "methods": [1]}),
            true,
        ),
    ];
    for (definition, accepted) in definitions {
        let (mut direct, client) = twins();
        let schema = json!({"classes": [definition]});
        let expected = direct.import_schema(&schema);
        assert_eq!(expected["success"], accepted, "{definition}: {expected}");
        let (status, body) = client
            .transport()
            .post(ROUTE_IMPORT_SCHEMA, serde_json::to_vec(&schema).unwrap())
            .unwrap();
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer, expected, "{definition}");
        if !accepted {
            assert_eq!(status, 422, "validation-failed: {answer}");
        }
        // The typed view keeps what it cannot type, unchanged.
        let typed: ClassDefinition = serde_json::from_value(definition.clone()).unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), definition);
        let via_types = client.import_schema(&ImportSchemaRequest { classes: vec![typed] });
        assert_eq!(
            via_types
                .map_err(|e| e.id().map(str::to_owned))
                .map(|a| a.results.imported),
            match expected["success"].as_bool() {
                Some(true) => Ok(expected["results"]["imported"].as_u64().unwrap()),
                _ => Err(expected["errors"][0]["id"].as_str().map(str::to_owned)),
            }
        );
    }
    let (_, client) = twins();
    let schema = client.export_schema(&Default::default()).unwrap().results;
    let officer = schema
        .classes
        .iter()
        .find(|c| c.name.as_deref() == Some(OFFICER))
        .unwrap();
    let fields: Vec<&String> = officer.fields.as_ref().unwrap().keys().collect();
    assert_eq!(fields, ["rank", "serial", "watch"], "field order kept");
    assert_eq!(officer.inherits, Some(ClassFilter::Many(vec![PERSON.into()])));
    assert_eq!(officer.uniques, Some(vec![vec!["rank".into(), "watch".into()]]));
}
