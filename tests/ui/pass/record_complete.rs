// The keys of the complete derive, used as users do; warning-free.
#![deny(warnings)]

use caspian_ipc::mikobase::engine::Engine;
use caspian_ipc::mikobase::record::RecordError;
use caspian_ipc::mikobase::{InProcess, MikobaseClient};
use caspian_ipc::{OneOf, Record};
use serde::{Deserialize, Serialize};

/// A ship's officer: the doc comment is the class's description.
#[derive(Debug, PartialEq, Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/officer")]
struct Officer {
    /// The rank, as spoken.
    rank: String,
    /// Rust-facing prose, replaced by the key.
    #[record(description = "The serial number.")]
    serial: String,
}

/// Rust-facing prose.
#[derive(Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/berth", description = "A berth.")]
struct Berth {
    deck: u8,
}

/// A captain is an officer (one parent); `rank` and `serial` are the officer's keys.
#[derive(Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/captain", inherits = "example.org/crew/officer")]
struct Captain {
    #[record(inherited)]
    rank: String,
    #[record(inherited)]
    serial: String,
    ship: String,
}

/// Several parents.
#[derive(Serialize, Deserialize, Record)]
#[record(
    class = "example.org/crew/quartermaster",
    inherits = ["example.org/crew/officer", "example.org/crew/berth"]
)]
struct Quartermaster {
    #[record(inherited)]
    rank: String,
    #[record(inherited)]
    serial: String,
    #[record(inherited)]
    deck: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, OneOf)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Watch {
    FirstDog,
    LastDog,
}

/// Enum values and element classes.
#[derive(Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/rota")]
struct Rota {
    #[record(one_of, default = "FIRST_DOG")]
    watch: Option<Watch>,
    crew: Vec<String>,
    #[record(items = "string")]
    history: Vec<Watch>,
}

/// A name in parts, nested in a crew member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/name")]
struct Name {
    surname: String,
    given: Option<String>,
}

#[derive(Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/signed-on")]
struct SignedOn {
    #[record(fields)]
    name: Name,
}

fn main() -> Result<(), RecordError> {
    let db = MikobaseClient::new(InProcess::new(Engine::memory()));
    db.records::<Officer>().define()?;
    db.records::<Berth>().define()?;
    assert_eq!(Officer::DESCRIPTION, Some("A ship's officer: the doc comment is the class's description."));
    assert_eq!(Berth::DESCRIPTION, Some("A berth."));
    assert_eq!(Officer::FIELDS[1].description, Some("The serial number."));
    let officer = Officer {
        rank: "Captain".into(),
        serial: "C-1".into(),
    };
    let stored = db.records::<Officer>().create(&officer)?;
    assert_eq!(stored.get()?, officer);
    db.records::<Captain>().define()?;
    db.records::<Quartermaster>().define()?;
    let captain = db.records::<Captain>().create(&Captain {
        rank: "Captain".into(),
        serial: "C-2".into(),
        ship: "Nostromo".into(),
    })?;
    assert_eq!(captain.rank().get()?, "Captain");
    assert_eq!(db.records::<Officer>().all()?.len(), 2);
    assert_eq!(Quartermaster::INHERITS.len(), 2);
    db.records::<Rota>().define()?;
    let rota = db.records::<Rota>().create(&Rota {
        watch: None,
        crew: vec!["Ash".into()],
        history: vec![Watch::LastDog],
    })?;
    assert_eq!(rota.watch().get()?, Some(Watch::FirstDog));
    db.records::<SignedOn>().define()?;
    let name = Name {
        surname: "Lambert".into(),
        given: None,
    };
    let signed = db.records::<SignedOn>().create(&SignedOn { name: name.clone() })?;
    assert_eq!(signed.name().get()?, name);
    Ok(())
}
