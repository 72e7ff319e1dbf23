//! Generated client → in-process transport → generated dispatch table → the engine: the
//! same bytes as over HTTP, without a socket.

use caspian_ipc::mikobase::engine::Engine;
use caspian_ipc::mikobase::{
    ByClassRequest, ClientError, CreateRequest, DeleteRequest, ErrorId, InProcess, MikobaseClient,
    RecordByPkRequest, SelectRequest, SetFieldsRequest, SortStep, Transport, UpdateRequest, ROUTE_Q0,
};
use caspian_ipc_tests::refused;
use serde_json::{json, Map, Value};

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

fn client() -> MikobaseClient<InProcess<Engine>> {
    MikobaseClient::new(InProcess::new(Engine::memory()))
}

#[test]
fn typed_calls_round_trip_through_the_dispatch_table() {
    let db = client();
    db.create(&CreateRequest {
        class: Some("puck.uno/class".into()),
        bucket: object(json!({"name": "example.org/crew/person", "fields": {"name": {"class": "string", "required": true}}})),
        ..Default::default()
    })
    .unwrap();
    let pk = db
        .create(&CreateRequest {
            class: Some("example.org/crew/person".into()),
            bucket: object(json!({"name": "Ripley"})),
            ..Default::default()
        })
        .unwrap()
        .results
        .pk;
    let record = db
        .record_by_pk(&RecordByPkRequest { pk: pk.clone() })
        .unwrap()
        .results;
    assert_eq!(record.bucket["name"], "Ripley");
    assert_eq!(
        record.stack.keys().collect::<Vec<_>>(),
        ["shadow", "a"],
        "platters keep their order"
    );
    assert_eq!(
        record.stack["a"].class.as_deref(),
        Some("example.org/crew/person")
    );
    db.update(&UpdateRequest {
        pk: pk.clone(),
        bucket: Some(object(json!({"name": "Ellen Ripley"}))),
        ..Default::default()
    })
    .unwrap();
    let people = db
        .by_class(&ByClassRequest {
            class: "example.org/crew/person".into(),
        })
        .unwrap()
        .results;
    assert_eq!(people.count, 1);
    assert_eq!(people.records[0].bucket["name"], "Ellen Ripley");
    let deleted = db
        .delete(&DeleteRequest {
            pk: pk.clone(),
            ..Default::default()
        })
        .unwrap()
        .results;
    assert!(deleted.deleted);
    let gone = db.record_by_pk(&RecordByPkRequest { pk }).unwrap_err();
    assert_eq!(gone.id(), Some("record_deleted"));
}

#[test]
fn failures_and_warnings_keep_their_ids() {
    let db = client();
    let invalid = db
        .create(&CreateRequest {
            class: Some("example.org/none".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(invalid.id(), Some(ErrorId::ClassNotFound.as_str()));
    let answer = db
        .select(&SelectRequest {
            sort: Some(vec![SortStep::Key("a".into())]),
            sorts: Some(vec![vec![SortStep::Key("b".into())]]),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(answer.warnings[0].id, "redundant_fields");
    match db.record_by_pk(&RecordByPkRequest { pk: "nope".into() }) {
        Err(ClientError::Failed(failure)) => assert_eq!(failure.id(), "record_not_found"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_dispatch_table_names_what_is_wrong_with_a_raw_request() {
    let db = client();
    let envelope = |body: Value| refused(db.q0(&body));
    let unknown = envelope(json!({"action": "select", "colour": "red"}));
    assert_eq!(unknown["errors"][0]["id"], "invalid_request");
    assert_eq!(
        unknown["errors"][0]["details"]["unknown_fields"],
        json!(["colour"])
    );
    let missing = envelope(json!({"action": "create"}));
    assert_eq!(
        missing["errors"][0]["details"]["missing_fields"],
        json!(["bucket"])
    );
    let mistyped = envelope(json!({"action": "select", "limit": "ten"}));
    assert_eq!(mistyped["errors"][0]["id"], "invalid_request");
    assert!(mistyped["errors"][0]["details"]["wrong_types"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("ten"));
    assert_eq!(
        mistyped["errors"][0]["details"]["wrong_types"][0]["field"],
        "limit"
    );
    let nested = envelope(json!({"action": "select", "sorts": [["a"], ["b", {"reverse": "yes"}]]}));
    assert_eq!(
        nested["errors"][0]["details"]["wrong_types"][0]["field"], "sorts[1][1]",
        "a nested field is named by its path from the body's root: {nested}"
    );
    assert_eq!(
        envelope(json!({"action": "merge"}))["errors"][0]["id"],
        "action-not-supported"
    );
    assert_eq!(
        envelope(json!({"bucket": {}}))["errors"][0]["details"]["missing_fields"],
        json!(["action"])
    );
    let passthrough = db
        .q0(&json!({"action": "select", "misc": 1, "vibecode": "x"}))
        .unwrap();
    assert_eq!(
        passthrough["success"], true,
        "pass-through keys are accepted and ignored"
    );

    let transport = db.transport();
    let (status, body) = transport.post(ROUTE_Q0, b"{not json".to_vec()).unwrap();
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["errors"][0]["id"],
        "invalid_request"
    );
    let (status, _) = transport.post("/nope", b"{}".to_vec()).unwrap();
    assert_eq!(status, 404);
    let (status, body) = transport.post(ROUTE_Q0, vec![b' '; 17 * 1024 * 1024]).unwrap();
    assert_eq!(status, 413);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["errors"][0]["id"],
        "request-too-large"
    );
}

#[test]
fn error_ids_carry_exact_strings_and_statuses() {
    assert_eq!(ErrorId::ALL.len(), 20);
    for id in ErrorId::ALL {
        assert_eq!(ErrorId::from_wire(id.as_str()), Some(*id));
    }
    assert_eq!(ErrorId::RecordNotFound.as_str(), "record_not_found");
    assert_eq!(ErrorId::ClassNotFound.as_str(), "class-not-found");
    assert_eq!(ErrorId::RequestTooLarge.http_status(), 413);
    assert!(ErrorId::TransactionInvalidated.documented());
    assert!(!ErrorId::UniqueViolation.documented());
    assert_eq!(ErrorId::StoreLocked.as_str(), "store-locked");
    assert_eq!(ErrorId::StoreLocked.http_status(), 409);
}

#[test]
fn set_fields_sets_some_keys_keeps_the_others_and_validates_like_update() {
    let db = client();
    db.create(&CreateRequest {
        class: Some("puck.uno/class".into()),
        bucket: object(json!({"name": "example.org/crew/officer", "fields": {
            "rank": {"class": "string", "required": true},
            "serial": {"class": "string", "unique": true},
        }})),
        ..Default::default()
    })
    .unwrap();
    let create = |serial: &str| {
        db.create(&CreateRequest {
            class: Some("example.org/crew/officer".into()),
            bucket: object(json!({"rank": "Corporal", "serial": serial, "ship": "Sulaco"})),
            ..Default::default()
        })
        .unwrap()
        .results
        .pk
    };
    let (hicks, vasquez) = (create("CM-221"), create("CM-222"));
    let set = |pk: &str, fields: Value| {
        db.set_fields(&SetFieldsRequest {
            pk: pk.into(),
            fields: object(fields),
            transaction: None,
        })
    };
    set(&hicks, json!({"rank": "Sergeant", "medals": 2})).unwrap();
    let record = db
        .record_by_pk(&RecordByPkRequest { pk: hicks.clone() })
        .unwrap()
        .results;
    assert_eq!(
        Value::Object(record.bucket),
        json!({"rank": "Sergeant", "serial": "CM-221", "ship": "Sulaco", "medals": 2}),
        "set keys replaced in place, new keys appended, the others kept"
    );
    assert_eq!(
        set(&hicks, json!({"rank": 7})).unwrap_err().id(),
        Some("validation-failed")
    );
    assert_eq!(
        set(&vasquez, json!({"serial": "CM-221"})).unwrap_err().id(),
        Some("unique-violation")
    );
    assert_eq!(
        set("no-such-pk", json!({"rank": "x"})).unwrap_err().id(),
        Some("record_not_found")
    );
    db.delete(&DeleteRequest {
        pk: vasquez.clone(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        set(&vasquez, json!({"rank": "x"})).unwrap_err().id(),
        Some("record_deleted")
    );
    let record = db.record_by_pk(&RecordByPkRequest { pk: hicks }).unwrap().results;
    assert_eq!(record.bucket["rank"], "Sergeant", "failed writes changed nothing");
}

#[test]
fn a_raw_request_the_mikobase_refuses_is_an_error() {
    let db = client();
    // The README's `db.q0(&json!(..))?` must not pass over a misspelt action.
    let misspelt = db.q0(&json!({"action": "selcet"}));
    assert!(
        matches!(&misspelt, Err(ClientError::Failed(failure)) if !failure.errors.is_empty()),
        "{misspelt:?}"
    );
    let fine = db.q0(&json!({"action": "select"})).unwrap();
    assert_eq!(fine["success"], true, "{fine}");
}
