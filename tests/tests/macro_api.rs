//! `mikobase_api!` on the shipped spec, really invoked: the macro-generated client runs over
//! the runtime's in-process engine and answers exactly as the built-in (checked-in) client
//! does, on one shared store.

use caspian_ipc::mikobase::engine::Engine;
use caspian_ipc::mikobase::{InProcess, MikobaseClient, Transport};
use serde_json::{json, Map, Value};

caspian_ipc::mikobase_api!(
    /// The shipped surface, generated at compile time.
    mod api = "../mikobase-spec/mikobase.yaml"
);

mod bare {
    caspian_ipc::mikobase_api!("../mikobase-spec/mikobase.yaml");
}

/// One store for both clients.
struct Shared<'a>(&'a InProcess<Engine>);

impl Transport for Shared<'_> {
    fn post(&self, route: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>), caspian_ipc::Error> {
        self.0.post(route, body)
    }
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn same<A: serde::Serialize, B: serde::Serialize>(ours: &A, builtin: &B) {
    assert_eq!(
        serde_json::to_value(ours).unwrap(),
        serde_json::to_value(builtin).unwrap()
    );
}

#[test]
fn the_macro_client_answers_like_the_built_in_one() {
    let engine = InProcess::new(Engine::memory());
    let ours = api::MikobaseClient::new(Shared(&engine));
    let builtin = MikobaseClient::new(Shared(&engine));

    let definition = json!({"name": "example.org/crew/officer",
        "fields": {"rank": {"class": "string", "required": true}}});
    ours.import_schema(&api::ImportSchemaRequest {
        classes: vec![serde_json::from_value(definition).unwrap()],
    })
    .unwrap();
    let pk = ours
        .create(&api::CreateRequest {
            class: Some("example.org/crew/officer".into()),
            bucket: object(json!({"rank": "Captain"})),
            ..Default::default()
        })
        .unwrap()
        .results
        .pk;
    ours.set_fields(&api::SetFieldsRequest {
        pk: pk.clone(),
        fields: object(json!({"ship": "Nostromo"})),
        transaction: None,
    })
    .unwrap();

    let record = ours
        .record_by_pk(&api::RecordByPkRequest { pk: pk.clone() })
        .unwrap();
    same(
        &record.results,
        &builtin
            .record_by_pk(&caspian_ipc::mikobase::RecordByPkRequest { pk: pk.clone() })
            .unwrap()
            .results,
    );
    assert_eq!(record.results.bucket["ship"], "Nostromo");
    let selected = ours.select(&api::SelectRequest::default()).unwrap();
    same(
        &selected.results,
        &builtin
            .select(&caspian_ipc::mikobase::SelectRequest::default())
            .unwrap()
            .results,
    );
    assert_eq!(selected.results.count, 2, "the class definition and the officer");
    same(
        &ours.export_schema(&api::ExportSchemaRequest {}).unwrap().results,
        &builtin.export_schema(&Default::default()).unwrap().results,
    );
    assert_eq!(
        ours.q0(&json!({"action": "select"})).unwrap(),
        builtin.q0(&json!({"action": "select"})).unwrap()
    );

    let refused = ours
        .update(&api::UpdateRequest {
            pk: pk.clone(),
            bucket: Some(object(json!({"rank": 7}))),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(
        refused.id().and_then(api::ErrorId::from_wire),
        Some(api::ErrorId::ValidationFailed)
    );
    let deleted = ours
        .delete(&api::DeleteRequest {
            pk: pk.clone(),
            ..Default::default()
        })
        .unwrap()
        .results;
    assert!(deleted.deleted);
    let gone = builtin
        .record_by_pk(&caspian_ipc::mikobase::RecordByPkRequest { pk })
        .unwrap_err();
    assert_eq!(gone.id(), Some(api::ErrorId::RecordDeleted.as_str()));
}

#[test]
fn both_forms_expand_the_same_surface() {
    use caspian_ipc::mikobase as builtin;
    let routes = [
        (api::ROUTE_Q0, bare::ROUTE_Q0, builtin::ROUTE_Q0),
        (
            api::ROUTE_SET_FIELDS,
            bare::ROUTE_SET_FIELDS,
            builtin::ROUTE_SET_FIELDS,
        ),
        (
            api::ROUTE_IMPORT_SCHEMA,
            bare::ROUTE_IMPORT_SCHEMA,
            builtin::ROUTE_IMPORT_SCHEMA,
        ),
    ];
    for (ours, bare, builtin) in routes {
        assert_eq!((ours, bare), (builtin, builtin));
    }
    let ids = |all: Vec<(&'static str, u16)>| all;
    assert_eq!(
        ids(api::ErrorId::ALL
            .iter()
            .map(|e| (e.as_str(), e.http_status()))
            .collect()),
        ids(builtin::ErrorId::ALL
            .iter()
            .map(|e| (e.as_str(), e.http_status()))
            .collect())
    );
    assert_eq!(bare::ErrorId::ALL.len(), builtin::ErrorId::ALL.len());
    let engine = InProcess::new(Engine::memory());
    let client = bare::MikobaseClient::new(Shared(&engine));
    assert_eq!(
        client
            .select(&bare::SelectRequest::default())
            .unwrap()
            .results
            .count,
        0
    );
}

/// A crate using `mikobase_api!` needs no serde dependency of its own: the generated
/// surface names serde and serde_json only through `caspian_ipc`'s support module.
#[test]
fn the_surface_names_serde_only_through_caspian_ipc() {
    let spec = mikobase_spec::load_str(mikobase_spec::MIKOBASE_YAML).expect("the shipped spec loads");
    let tokens = caspian_ipc_codegen::generate(&spec, &caspian_ipc_codegen::Options::external());
    let text = caspian_ipc_codegen::render_file(tokens, "").expect("renders");
    let code = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"));
    for (at, line) in code {
        let through_support = line
            .replace("__support::serde_json::", "")
            .replace("__support::serde::", "")
            .replace("\"__support::serde\"", "");
        assert!(
            !through_support.contains("serde::") && !through_support.contains("serde_json::"),
            "line {}: `{line}` names serde directly",
            at + 1
        );
    }
    assert!(text.contains("#[serde(crate = \"__support::serde\")]"));
}
