//! The generator on its own, without the Mikobase engine: the code generated from the
//! `tests/specs/unions_and_recursion.yaml` fixture (client proxy → dispatch table → service
//! trait) driven against a small in-memory test engine over an in-process transport. What
//! the client sends is exactly what the engine receives, and back.

use std::cell::RefCell;

use caspian_ipc::mikobase::{Answer, CallContext, ClientError, Failure, Reply, Transport};
use caspian_ipc_tests::fixtures::unions_and_recursion::{
    dispatch, ErrorId, Key, Labelled, PutRequest, Settings, SettingsRequest, ShapesClient, ShapesService,
    Tag, Tree, Value, ROUTE_SETTINGS,
};
use caspian_ipc_tests::refused as refusal;
use serde_json::json;

/// Keeps every request it gets; refuses a tree without a label.
#[derive(Default)]
struct TestEngine {
    puts: Vec<PutRequest>,
}

impl ShapesService for TestEngine {
    fn put(&mut self, _: &CallContext, request: PutRequest) -> Reply<Labelled> {
        if request.tree.label.is_empty() {
            return Err(Failure::one(
                ErrorId::Bad.as_str(),
                json!({"fix": "give the tree a label"}),
            ));
        }
        let answer = Labelled {
            key: request
                .key
                .clone()
                .unwrap_or(Key::Name(request.tree.label.clone())),
            tag: request.values.as_ref().map(|_| Tag::DarkBlue),
        };
        self.puts.push(request);
        Ok(Answer {
            results: answer,
            warnings: Vec::new(),
        })
    }

    fn settings(&mut self, _: &CallContext, _: SettingsRequest) -> Reply<Settings> {
        Ok(Answer {
            results: Settings {
                name: "test engine".into(),
                level: Some(self.puts.len() as u64),
                limit: None,
                extra_data: Some(serde_json::Value::Null),
                extra: json!({"kept": true}).as_object().cloned().unwrap_or_default(),
            },
            warnings: Vec::new(),
        })
    }
}

/// The generated dispatch table, called in-process.
struct Local(RefCell<TestEngine>);

impl Transport for Local {
    fn post(&self, route: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>), caspian_ipc::Error> {
        let mut engine = self.0.borrow_mut();
        Ok(dispatch(
            &mut *engine,
            &CallContext::default(),
            route,
            &body,
            64 * 1024,
        ))
    }
}

fn client() -> ShapesClient<Local> {
    ShapesClient::new(Local(RefCell::new(TestEngine::default())))
}

fn leaf(label: &str) -> Tree {
    Tree {
        label: label.into(),
        left: None,
        children: None,
        by_name: None,
    }
}

#[test]
fn typed_requests_arrive_exactly_and_answers_come_back_typed() {
    let db = client();
    let mut by_name = caspian_ipc::mikobase::support::OrderedMap::new();
    for name in ["zulu", "alpha", "mike"] {
        by_name.insert(name.to_owned(), leaf(name));
    }
    let tree = Tree {
        label: "root".into(),
        left: Some(Box::new(Tree {
            left: Some(Box::new(leaf("deep"))),
            ..leaf("left")
        })),
        children: Some(vec![leaf("c1"), leaf("c2")]),
        by_name: Some(by_name),
    };
    let mut values = caspian_ipc::mikobase::support::OrderedMap::new();
    let big: serde_json::Number = serde_json::from_str("12345678901234567890").unwrap();
    values.insert("big".to_owned(), Value::Exact(big));
    values.insert(
        "tenth".to_owned(),
        Value::Exact(serde_json::Number::from_f64(0.1).unwrap()),
    );
    values.insert(
        "nested".to_owned(),
        Value::Nested(vec![Value::Other(json!("text")), Value::Other(json!({"a": [1]}))]),
    );
    let sent = PutRequest {
        tree,
        key: Some(Key::Index(7)),
        values: Some(values),
    };
    let answer = db.put(&sent).unwrap();
    assert_eq!(
        answer.results,
        Labelled {
            key: Key::Index(7),
            tag: Some(Tag::DarkBlue)
        }
    );
    let engine = db.transport().0.borrow();
    let received = &engine.puts[0];
    assert_eq!(received, &sent, "the engine got exactly what was sent");
    let order: Vec<&String> = received.tree.by_name.as_ref().unwrap().keys().collect();
    assert_eq!(order, ["zulu", "alpha", "mike"], "ordered maps keep their order");
    let values = received.values.as_ref().unwrap();
    assert!(
        matches!(&values["big"], Value::Exact(n) if n.to_string() == "12345678901234567890"),
        "numbers arrive as written"
    );
}

#[test]
fn failures_routes_and_raw_requests_are_the_generated_ones() {
    let db = client();
    let refused = db
        .put(&PutRequest {
            tree: leaf(""),
            key: None,
            values: None,
        })
        .unwrap_err();
    match &refused {
        ClientError::Failed(failure) => assert_eq!(failure.id(), "bad"),
        other => panic!("{other:?}"),
    }
    let (status, _) = db
        .transport()
        .post("/q0", br#"{"action": "put", "tree": {"label": ""}}"#.to_vec())
        .unwrap();
    assert_eq!(status, ErrorId::Bad.http_status(), "the first error's status");

    // `null` for a nullable field reads as absent.
    let raw = db
        .q0(&json!({"action": "put", "tree": {"label": "t"}, "key": null}))
        .unwrap();
    assert_eq!(raw["results"]["key"], "t", "{raw}");
    let unknown = refusal(db.q0(&json!({"action": "put", "tree": {"label": "t", "lefft": {}}})));
    assert_eq!(unknown["errors"][0]["id"], "invalid_request");
    assert_eq!(
        unknown["errors"][0]["details"]["unknown_fields"],
        json!(["tree.lefft"])
    );
    let missing = refusal(db.q0(&json!({"action": "put", "tree": {"left": {}}})));
    assert_eq!(
        missing["errors"][0]["details"]["missing_fields"],
        json!(["tree.left.label"]),
        "a missing field is named below the object that lacks it: {missing}"
    );
    let action = refusal(db.q0(&json!({"action": "get"})));
    assert_eq!(action["errors"][0]["id"], "action-not-supported");

    assert_eq!(ROUTE_SETTINGS, "/settings/current", "the spec's route");
    let settings = db.settings(&SettingsRequest {}).unwrap().results;
    assert_eq!(settings.level, Some(1), "one put was stored before");
    assert_eq!(
        settings.extra_data,
        Some(serde_json::Value::Null),
        "a json field keeps null"
    );
    assert_eq!(settings.extra["kept"], true, "an open struct keeps unknown keys");
    let (status, body) = db
        .transport()
        .post(ROUTE_SETTINGS, vec![b' '; 65 * 1024])
        .unwrap();
    assert_eq!(status, 413);
    assert!(String::from_utf8_lossy(&body).contains("request-too-large"));
}
