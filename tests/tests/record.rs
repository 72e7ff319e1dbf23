//! `#[derive(Record)]` proxies over the generated client, in-process
//! (`MikobaseClient<InProcess<Engine>>`): the class definition a struct gives, typed
//! create / get / select / update / delete, hot field accessors, and refusals and decode
//! failures coming back typed, and one request per call.

// A renamed dependency, as `ipc = { package = "caspian-ipc", .. }` in Cargo.toml gives.
extern crate caspian_ipc as ipc;

use caspian_ipc::mikobase::engine::Engine;
use caspian_ipc::mikobase::record::RecordError;
use caspian_ipc::mikobase::{
    CreateRequest, ImportSchemaRequest, InProcess, MikobaseClient, RecordByPkRequest, SelectRequest,
    Transport,
};
use caspian_ipc::{OneOf, Record};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/officer")]
struct Officer {
    #[record(required, unique)]
    serial: String,
    rank: String,
    #[record(one_of("alpha", "beta", "gamma"), default = "alpha")]
    watch: String,
    nickname: Option<String>,
    medals: Vec<String>,
    years: u32,
}

type Db = MikobaseClient<InProcess<Engine>>;

fn db() -> Db {
    MikobaseClient::new(InProcess::new(Engine::memory()))
}

/// A store where `Officer` is defined.
fn officers_defined() -> Db {
    let db = db();
    db.records::<Officer>().define().unwrap();
    db
}

fn officer(serial: &str, rank: &str) -> Officer {
    Officer {
        serial: serial.into(),
        rank: rank.into(),
        watch: "beta".into(),
        nickname: None,
        medals: vec![],
        years: 3,
    }
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

#[test]
fn the_class_definition_follows_the_struct() {
    assert_eq!(Officer::CLASS, "example.org/crew/officer");
    assert_eq!(
        Officer::class_definition(),
        json!({
            "name": "example.org/crew/officer",
            "fields": {
                "serial": {"class": "string", "required": true, "unique": true},
                "rank": {"class": "string", "required": true},
                "watch": {"class": "string", "one_of": ["alpha", "beta", "gamma"], "default": "alpha"},
                "nickname": {"class": "string"},
                "medals": {"class": "array", "required": true, "items": "string"},
                "years": {"class": "number", "required": true},
            }
        })
    );
    let definition = Officer::class_definition();
    let keys: Vec<&str> = definition["fields"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["serial", "rank", "watch", "nickname", "medals", "years"],
        "struct order"
    );
}

#[test]
fn typed_create_get_select_update_delete() {
    let db = officers_defined();
    let officers = db.records::<Officer>();
    let ripley = officers.create(&officer("W-5617", "Warrant Officer")).unwrap();
    let dallas = officers.create(&officer("C-0001", "Captain")).unwrap();
    assert_eq!(
        officers.get(ripley.pk()).unwrap(),
        officer("W-5617", "Warrant Officer")
    );
    assert_eq!(ripley.get().unwrap().rank, "Warrant Officer", "through the proxy");

    let stored = db
        .record_by_pk(&RecordByPkRequest {
            pk: ripley.pk().into(),
        })
        .unwrap()
        .results;
    assert_eq!(
        serde_json::to_value(&stored.stack).unwrap()["a"]["class"],
        "example.org/crew/officer"
    );
    assert_eq!(stored.bucket["nickname"], Value::Null);

    let all = officers.all().unwrap();
    assert_eq!(
        all,
        [
            (ripley.pk().to_owned(), officer("W-5617", "Warrant Officer")),
            (dallas.pk().to_owned(), officer("C-0001", "Captain")),
        ]
    );
    let captains = officers
        .select(&SelectRequest {
            path: Some(vec![json!("rank"), json!("Captain")]),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(captains.len(), 1);
    assert_eq!(captains[0].0, dallas.pk());

    let mut promoted = officer("W-5617", "Lieutenant");
    promoted.medals = vec!["Nostromo".into()];
    officers.update(ripley.pk(), &promoted).unwrap();
    assert_eq!(ripley.get().unwrap(), promoted);
    dallas.update(&officer("C-0001", "Commodore")).unwrap();
    assert_eq!(officers.get(dallas.pk()).unwrap().rank, "Commodore");

    dallas.delete().unwrap();
    assert_eq!(
        officers.get(dallas.pk()).unwrap_err().id(),
        Some("record_deleted")
    );
    officers.delete(ripley.pk()).unwrap();
    assert!(officers.all().unwrap().is_empty());
    assert_eq!(
        officers.delete(ripley.pk()).unwrap_err().id(),
        Some("record_deleted")
    );
}

#[test]
fn field_accessors_read_and_write_one_key_each() {
    let db = officers_defined();
    let officers = db.records::<Officer>();
    let ripley = officers.create(&officer("W-5617", "Warrant Officer")).unwrap();
    assert_eq!(ripley.rank().get().unwrap(), "Warrant Officer");
    assert_eq!(ripley.years().get().unwrap(), 3);
    assert_eq!(ripley.nickname().get().unwrap(), None);

    ripley.rank().set("Lieutenant").unwrap();
    ripley.nickname().set(Some("Ellen".to_owned())).unwrap();
    ripley.medals().set(vec!["Nostromo".to_owned()]).unwrap();
    ripley.years().set(4u32).unwrap();
    assert_eq!(
        ripley.get().unwrap(),
        Officer {
            serial: "W-5617".into(),
            rank: "Lieutenant".into(),
            watch: "beta".into(),
            nickname: Some("Ellen".into()),
            medals: vec!["Nostromo".into()],
            years: 4,
        },
        "each set changed its key and kept the others"
    );
    assert_eq!(ripley.rank().key(), "rank");

    let again = officers.at(ripley.pk());
    assert_eq!(again.serial().get().unwrap(), "W-5617", "a proxy from a pk");
    let nobody = officers.at("no-such-pk");
    assert_eq!(nobody.rank().get().unwrap_err().id(), Some("record_not_found"));
    assert_eq!(nobody.rank().set("x").unwrap_err().id(), Some("record_not_found"));
}

#[test]
fn refusals_come_back_typed() {
    let db = db();
    let officers = db.records::<Officer>();
    let undefined = officers.create(&officer("W-1", "Ensign")).unwrap_err();
    assert_eq!(undefined.id(), Some("class-not-found"));
    officers.define().unwrap();
    let ripley = officers.create(&officer("W-5617", "Warrant Officer")).unwrap();

    let mut off_watch = officer("W-2", "Ensign");
    off_watch.watch = "delta".into();
    let refused = officers.create(&off_watch).unwrap_err();
    assert_eq!(refused.id(), Some("validation-failed"));
    let RecordError::Client(client) = &refused else {
        panic!("{refused:?}")
    };
    assert!(client.to_string().contains("delta"), "{client}");
    assert_eq!(
        ripley.watch().set("delta").unwrap_err().id(),
        Some("validation-failed")
    );

    let twin = officers.create(&officer("W-5617", "Impostor")).unwrap_err();
    assert_eq!(twin.id(), Some("unique-violation"));
    let other = officers.create(&officer("W-3", "Ensign")).unwrap();
    assert_eq!(
        other.serial().set("W-5617").unwrap_err().id(),
        Some("unique-violation")
    );
    assert_eq!(
        ripley.get().unwrap().watch,
        "beta",
        "refused writes changed nothing"
    );
}

#[test]
fn a_bucket_that_does_not_fit_is_a_decode_error_naming_the_pk() {
    let db = db();
    let officers = db.records::<Officer>();
    let pk = db
        .create(&CreateRequest {
            bucket: object(json!({"serial": 7, "years": "many"})),
            ..Default::default()
        })
        .unwrap()
        .results
        .pk;
    let error = officers.get(&pk).unwrap_err();
    let RecordError::Decode { pk: named, class, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!((named.as_str(), *class), (pk.as_str(), Officer::CLASS));
    assert!(error.to_string().contains(&pk), "{error}");
    let years = officers.at(pk.clone()).years().get().unwrap_err();
    assert!(
        matches!(&years, RecordError::Decode { reason, .. } if reason.starts_with("key `years`: invalid type")),
        "{years}"
    );
    let missing = officers.at(pk).rank().get().unwrap_err();
    assert!(missing.to_string().contains("key `rank`"), "{missing}");
}

#[test]
fn select_is_narrowed_to_the_class_and_its_subclasses() {
    let db = officers_defined();
    let officers = db.records::<Officer>();
    let captain = json!({"name": "example.org/crew/captain", "inherits": "example.org/crew/officer",
        "fields": {"ship": {"class": "string", "required": true}}});
    db.import_schema(&ImportSchemaRequest {
        classes: vec![serde_json::from_value(captain).unwrap()],
    })
    .unwrap();
    let mut bucket = object(serde_json::to_value(officer("C-0001", "Captain")).unwrap());
    bucket.insert("ship".into(), json!("Nostromo"));
    let dallas = db
        .create(&CreateRequest {
            class: Some("example.org/crew/captain".into()),
            bucket,
            ..Default::default()
        })
        .unwrap()
        .results
        .pk;
    db.create(&CreateRequest {
        bucket: object(json!({"serial": "X", "rank": "Cat"})),
        ..Default::default()
    })
    .unwrap();
    let ripley = officers.create(&officer("W-5617", "Warrant Officer")).unwrap();

    let pks = |request: SelectRequest| -> Vec<String> {
        officers
            .select(&request)
            .unwrap()
            .into_iter()
            .map(|(pk, _)| pk)
            .collect()
    };
    assert_eq!(
        pks(SelectRequest::default()),
        [dallas.clone(), ripley.pk().to_owned()]
    );
    assert_eq!(
        pks(
            serde_json::from_value(json!({"class": "puck.uno/record", "classes": ["puck.uno/record"]}))
                .unwrap()
        ),
        [dallas, ripley.pk().to_owned()],
        "the caller's class filter is replaced"
    );
}

#[test]
fn define_is_idempotent_and_keeps_records() {
    let db = officers_defined();
    let officers = db.records::<Officer>();
    let ripley = officers.create(&officer("W-5617", "Warrant Officer")).unwrap();
    officers.define().unwrap();
    officers.define().unwrap();
    let schema = db.export_schema(&Default::default()).unwrap().results;
    assert_eq!(schema.classes.len(), 1);
    assert_eq!(
        serde_json::to_value(&schema.classes[0]).unwrap(),
        Officer::class_definition()
    );
    assert_eq!(ripley.get().unwrap().serial, "W-5617");
}

// serde decides the bucket, so the definition follows serde's renames and defaults.
#[derive(Debug, PartialEq, Serialize, Deserialize, Record)]
#[serde(rename_all = "camelCase")]
#[record(class = "example.org/crew/berth")]
struct Berth {
    deck_number: u8,
    #[serde(rename = "Occupant")]
    occupant: Option<String>,
    #[record(default = "standard")]
    berth_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    lockers: Vec<u8>,
    #[record(class = "integer", default = -1)]
    bunk: i64,
    #[serde(skip)]
    cached: bool,
}

#[test]
fn serde_renames_and_defaults_shape_the_definition_and_the_bucket() {
    assert_eq!(
        Berth::class_definition(),
        json!({"name": "example.org/crew/berth", "fields": {
            "deckNumber": {"class": "number", "required": true},
            "Occupant": {"class": "string"},
            "berthKind": {"class": "string", "default": "standard"},
            "lockers": {"class": "array", "items": "number"},
            "bunk": {"class": "integer", "default": -1},
        }})
    );
    let db = db();
    let berths = db.records::<Berth>();
    berths.define().unwrap();
    let berth = berths
        .create(&Berth {
            deck_number: 2,
            occupant: None,
            berth_kind: None,
            lockers: vec![],
            bunk: 1,
            cached: true,
        })
        .unwrap();
    let stored = db
        .record_by_pk(&RecordByPkRequest {
            pk: berth.pk().into(),
        })
        .unwrap()
        .results;
    assert_eq!(
        Value::Object(stored.bucket),
        json!({"deckNumber": 2, "Occupant": null, "berthKind": "standard", "bunk": 1}),
        "renamed keys; the store filled the default of the null key"
    );
    assert_eq!(berth.berth_kind().get().unwrap().as_deref(), Some("standard"));
    assert!(!berth.get().unwrap().cached, "skipped keys are not stored");
    berth.deck_number().set(3).unwrap();
    assert_eq!(berth.get().unwrap().deck_number, 3);
    berth.bunk().set(-1).unwrap();
    assert_eq!(berth.bunk().get().unwrap(), -1);
}

/// Every field class the derive accepts in `#[record(class = ..)]` is one the engine knows
/// (the derive keeps its own list: a proc macro cannot depend on the runtime).
#[derive(Serialize, Deserialize, Record)]
#[record(class = "example.org/test/every-class")]
struct EveryClass {
    #[record(class = "string")]
    a: Value,
    #[record(class = "number")]
    b: Value,
    #[record(class = "integer")]
    c: Value,
    #[record(class = "boolean")]
    d: Value,
    #[record(class = "array")]
    e: Value,
    #[record(class = "hash")]
    f: Value,
    #[record(class = "timestamp")]
    g: Value,
    #[record(class = "any")]
    h: Value,
    #[record(class = "example.org/crew/officer")]
    i: Value,
}

#[test]
fn every_field_class_of_the_derive_is_known_to_the_engine() {
    let db = db();
    db.records::<EveryClass>().define().unwrap();
    let definition = EveryClass::class_definition();
    let classes: Vec<&str> = definition["fields"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|f| f["class"].as_str())
        .collect();
    assert_eq!(classes.len(), 9);
}

/// Counts the requests a client sends.
struct Counting {
    inner: InProcess<Engine>,
    posts: std::cell::Cell<usize>,
}

impl Transport for Counting {
    fn post(&self, route: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>), caspian_ipc::Error> {
        self.posts.set(self.posts.get() + 1);
        self.inner.post(route, body)
    }
}

#[test]
fn every_call_is_exactly_one_request() {
    let db = MikobaseClient::new(Counting {
        inner: InProcess::new(Engine::memory()),
        posts: std::cell::Cell::new(0),
    });
    let requests = |call: &dyn Fn()| {
        let before = db.transport().posts.get();
        call();
        db.transport().posts.get() - before
    };
    let officers = db.records::<Officer>();
    assert_eq!(requests(&|| officers.define().unwrap()), 1, "define");
    let ripley = officers.create(&officer("W-5617", "Warrant Officer")).unwrap();
    let pk = ripley.pk().to_owned();
    assert_eq!(requests(&|| drop(officers.at(pk.clone()))), 0, "at");
    assert_eq!(requests(&|| drop(ripley.rank())), 0, "an accessor");
    assert_eq!(requests(&|| drop(ripley.rank().get().unwrap())), 1, "field get");
    assert_eq!(
        requests(&|| ripley.rank().set("Lieutenant").unwrap()),
        1,
        "field set"
    );
    assert_eq!(requests(&|| drop(ripley.get().unwrap())), 1, "get");
    assert_eq!(requests(&|| drop(officers.all().unwrap())), 1, "select");
    assert_eq!(
        requests(&|| officers.update(&pk, &officer("W-5617", "Captain")).unwrap()),
        1,
        "update"
    );
    assert_eq!(
        requests(&|| drop(officers.create(&officer("W-1", "Ensign")).unwrap())),
        1,
        "create"
    );
    assert_eq!(requests(&|| ripley.delete().unwrap()), 1, "delete");
}

/// `#[record(crate = "ipc")]`: the derive reaches the runtime through the renamed crate.
#[derive(Debug, PartialEq, Serialize, Deserialize, ipc::Record)]
#[record(class = "example.org/crew/renamed", crate = "ipc")]
struct Renamed {
    #[record(one_of("alpha", "beta"), default = "alpha")]
    watch: Option<String>,
}

#[test]
fn a_renamed_crate_path_defines_creates_and_selects() {
    let db = db();
    let renamed = db.records::<Renamed>();
    renamed.define().unwrap();
    let pk = renamed.create(&Renamed { watch: None }).unwrap();
    assert_eq!(pk.watch().get().unwrap().as_deref(), Some("alpha"), "the default");
    assert_eq!(
        renamed.all().unwrap(),
        [(
            pk.pk().to_owned(),
            Renamed {
                watch: Some("alpha".into())
            }
        )]
    );
    assert_eq!(
        renamed
            .create(&Renamed {
                watch: Some("delta".into())
            })
            .unwrap_err()
            .id(),
        Some("validation-failed")
    );
}

/// A bunk on a deck.
///
/// Doc comments are the class's and the keys' descriptions.
#[derive(Debug, PartialEq, Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/bunk")]
struct Bunk {
    /// The deck, counted from the keel.
    deck: u8,
    /// Rust-facing prose.
    #[record(description = "Who sleeps here.")]
    occupant: Option<String>,
    label: String,
}

#[test]
fn doc_comments_become_descriptions_the_engine_keeps() {
    let expected = json!({
        "name": "example.org/crew/bunk",
        "description": "A bunk on a deck.\n\nDoc comments are the class's and the keys' descriptions.",
        "fields": {
            "deck": {"class": "number", "required": true, "description": "The deck, counted from the keel."},
            "occupant": {"class": "string", "description": "Who sleeps here."},
            "label": {"class": "string", "required": true},
        }
    });
    assert_eq!(Bunk::class_definition(), expected);
    assert_eq!(
        Bunk::class_definition()
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["name", "description", "fields"]
    );
    let db = db();
    let bunks = db.records::<Bunk>();
    bunks.define().unwrap();
    let exported = db.export_schema(&Default::default()).unwrap().results;
    assert_eq!(serde_json::to_value(&exported.classes[0]).unwrap(), expected);
    let bunk = Bunk {
        deck: 2,
        occupant: Some("Kane".into()),
        label: "2-A".into(),
    };
    let pk = bunks.create(&bunk).unwrap();
    assert_eq!(bunks.all().unwrap(), [(pk.pk().to_owned(), bunk)]);
}

/// A member of the crew: the parent class.
#[derive(Debug, PartialEq, Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/member")]
struct Member {
    #[record(unique)]
    name: String,
    #[record(one_of("alpha", "beta"), default = "alpha")]
    watch: Option<String>,
}

/// A pilot is a member: the parent declares `name` and `watch`, the pilot adds `craft`.
#[derive(Debug, PartialEq, Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/pilot", inherits = "example.org/crew/member")]
struct Pilot {
    #[record(inherited)]
    name: String,
    #[record(inherited)]
    watch: Option<String>,
    craft: String,
}

fn pilot(name: &str, watch: Option<&str>) -> Pilot {
    Pilot {
        name: name.into(),
        watch: watch.map(str::to_owned),
        craft: "Narcissus".into(),
    }
}

#[test]
fn a_subclass_inherits_the_parents_declarations_and_is_selected_with_it() {
    assert_eq!(
        Pilot::class_definition(),
        json!({
            "name": "example.org/crew/pilot",
            "description": "A pilot is a member: the parent declares `name` and `watch`, the pilot adds `craft`.",
            "inherits": ["example.org/crew/member"],
            "fields": {"craft": {"class": "string", "required": true}},
        })
    );
    let db = db();
    let pilots = db.records::<Pilot>();
    assert_eq!(
        pilots.define().unwrap_err().id(),
        Some("class-not-found"),
        "the parent is defined first"
    );
    db.records::<Member>().define().unwrap();
    pilots.define().unwrap();

    let kane = pilots.create(&pilot("Kane", None)).unwrap();
    assert_eq!(
        kane.watch().get().unwrap().as_deref(),
        Some("alpha"),
        "the parent's default"
    );
    assert_eq!(
        pilots.create(&pilot("Lambert", Some("delta"))).unwrap_err().id(),
        Some("validation-failed"),
        "the parent's one_of"
    );
    let members = db.records::<Member>();
    assert_eq!(
        members
            .create(&Member {
                name: "Kane".into(),
                watch: None
            })
            .unwrap_err()
            .id(),
        Some("unique-violation"),
        "the parent's unique spans its subclasses"
    );
    let parker = members
        .create(&Member {
            name: "Parker".into(),
            watch: Some("beta".into()),
        })
        .unwrap();
    assert_eq!(
        pilots.all().unwrap(),
        [(kane.pk().to_owned(), pilot("Kane", Some("alpha")))],
        "only pilots"
    );
    let everyone: Vec<(String, String)> = members
        .all()
        .unwrap()
        .into_iter()
        .map(|(pk, m)| (pk, m.name))
        .collect();
    assert_eq!(
        everyone,
        [
            (kane.pk().to_owned(), "Kane".to_owned()),
            (parker.pk().to_owned(), "Parker".to_owned())
        ],
        "members include the pilot"
    );
    let exported = db.export_schema(&Default::default()).unwrap().results;
    let pilot_class = exported
        .classes
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .find(|c| c["name"] == Pilot::CLASS)
        .unwrap();
    assert_eq!(pilot_class, Pilot::class_definition());
}

/// Two parents: the record is validated against both.
#[derive(Debug, PartialEq, Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/medic", inherits = ["example.org/crew/member", "example.org/crew/licensed"])]
struct Medic {
    #[record(inherited)]
    name: String,
    #[record(inherited)]
    licence: u32,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/licensed")]
struct Licensed {
    licence: u32,
}

#[test]
fn several_parents_all_apply() {
    let db = db();
    db.records::<Member>().define().unwrap();
    db.records::<Licensed>().define().unwrap();
    let medics = db.records::<Medic>();
    medics.define().unwrap();
    assert_eq!(
        Medic::class_definition()["inherits"],
        json!(["example.org/crew/member", "example.org/crew/licensed"])
    );
    let ash = medics
        .create(&Medic {
            name: "Ash".into(),
            licence: 7,
        })
        .unwrap();
    let stored = db
        .record_by_pk(&RecordByPkRequest { pk: ash.pk().into() })
        .unwrap()
        .results;
    assert_eq!(stored.bucket["watch"], "alpha", "the first parent's default");
    let unlicensed = json!({"name": "Dallas"});
    let refused = db
        .create(&CreateRequest {
            class: Some(Medic::CLASS.into()),
            bucket: object(unlicensed),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(
        refused.id(),
        Some("validation-failed"),
        "the second parent's required key"
    );
    assert_eq!(db.records::<Licensed>().all().unwrap().len(), 1);
}

/// The watches, as the store spells them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, OneOf)]
#[serde(rename_all = "lowercase")]
enum Watch {
    Alpha,
    Beta,
    #[serde(rename = "night")]
    Gamma,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/rota")]
struct Rota {
    #[record(one_of)]
    watch: Watch,
    #[record(one_of, default = "beta")]
    relief: Option<Watch>,
    crew: Vec<String>,
    #[record(items = "string")]
    history: Vec<Watch>,
}

#[test]
fn enum_values_are_one_of_and_sequences_declare_their_items() {
    assert_eq!(
        Rota::class_definition()["fields"],
        json!({
            "watch": {"class": "string", "required": true, "one_of": ["alpha", "beta", "night"]},
            "relief": {"class": "string", "one_of": ["alpha", "beta", "night"], "default": "beta"},
            "crew": {"class": "array", "required": true, "items": "string"},
            "history": {"class": "array", "required": true, "items": "string"},
        })
    );
    let db = db();
    let rotas = db.records::<Rota>();
    rotas.define().unwrap();
    let rota = Rota {
        watch: Watch::Gamma,
        relief: None,
        crew: vec!["Ripley".into()],
        history: vec![Watch::Alpha, Watch::Gamma],
    };
    let stored = rotas.create(&rota).unwrap();
    assert_eq!(
        stored.relief().get().unwrap(),
        Some(Watch::Beta),
        "the default, as the enum"
    );
    assert_eq!(
        rotas.all().unwrap(),
        [(
            stored.pk().to_owned(),
            Rota {
                relief: Some(Watch::Beta),
                ..rota
            }
        )]
    );
    stored.watch().set(Watch::Alpha).unwrap();
    assert_eq!(stored.watch().get().unwrap(), Watch::Alpha);
    let refused = db
        .create(&CreateRequest {
            class: Some(Rota::CLASS.into()),
            bucket: object(json!({"watch": "Gamma", "crew": [], "history": []})),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(
        refused.id(),
        Some("validation-failed"),
        "the Rust name is not the serde name"
    );
}

/// A name in parts: a nested record (its class is never defined; its keys are the sub-keys
/// of a hash field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/name")]
struct Name {
    /// The family name.
    surname: String,
    given: Option<String>,
    #[record(one_of("Mr", "Ms", "Mx"))]
    title: Option<String>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/signed-on")]
struct SignedOn {
    #[record(fields)]
    name: Name,
    #[record(fields)]
    emergency_contact: Option<Name>,
}

#[test]
fn a_nested_record_is_a_hash_whose_sub_keys_the_engine_checks() {
    assert_eq!(
        SignedOn::class_definition()["fields"],
        json!({
            "name": {"class": "hash", "required": true, "fields": {
                "surname": {"class": "string", "required": true, "description": "The family name."},
                "given": {"class": "string"},
                "title": {"class": "string", "one_of": ["Mr", "Ms", "Mx"]},
            }},
            "emergency_contact": {"class": "hash", "fields": {
                "surname": {"class": "string", "required": true, "description": "The family name."},
                "given": {"class": "string"},
                "title": {"class": "string", "one_of": ["Mr", "Ms", "Mx"]},
            }},
        })
    );
    let db = db();
    let crew = db.records::<SignedOn>();
    crew.define().unwrap();
    let ripley = SignedOn {
        name: Name {
            surname: "Ripley".into(),
            given: Some("Ellen".into()),
            title: Some("Ms".into()),
        },
        emergency_contact: None,
    };
    let stored = crew.create(&ripley).unwrap();
    assert_eq!(crew.all().unwrap(), [(stored.pk().to_owned(), ripley)]);
    assert_eq!(stored.name().get().unwrap().surname, "Ripley");
    let nameless = json!({"surname": null, "given": "Ash"});
    let knighted = Name {
        surname: "Dallas".into(),
        given: None,
        title: Some("Sir".into()),
    };
    assert_eq!(
        stored.emergency_contact().set(Some(knighted)).unwrap_err().id(),
        Some("validation-failed"),
        "a sub-key's one_of"
    );
    assert_eq!(stored.emergency_contact().get().unwrap(), None, "refused");
    let refused = db
        .create(&CreateRequest {
            class: Some(SignedOn::CLASS.into()),
            bucket: object(json!({"name": nameless})),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(refused.id(), Some("validation-failed"), "a sub-key's required");
}
