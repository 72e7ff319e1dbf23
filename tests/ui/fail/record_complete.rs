// Mistakes in the keys of the complete derive: `crate`, `inherits`, `one_of` from an
// enum, `items`. Each message says what to write instead.
use caspian_ipc::{OneOf, Record};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/officer", crate = "not a path")]
struct BadCrate {
    rank: String,
}

#[derive(Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/officer", description = 3)]
struct NumberDescription {
    #[record(description)]
    rank: String,
}

#[derive(Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/pilot", inherits = "example.org/crew/pilot")]
struct OwnParent {
    rank: String,
}

#[derive(Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/pilot", inherits = ["member", "example.org/a", "example.org/a"])]
struct BadParents {
    rank: String,
}

#[derive(Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/pilot", inherits = example_org)]
struct NotAString {
    rank: String,
}

#[derive(Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/pilot")]
struct NoParent {
    #[record(inherited)]
    rank: String,
}

#[derive(Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/pilot", inherits = "example.org/crew/member")]
struct InheritedButDeclared {
    #[record(inherited, required)]
    rank: String,
}

#[derive(Serialize, Deserialize, OneOf)]
#[serde(tag = "kind")]
enum Tagged {
    Alpha,
    Beta(u8),
}

#[derive(Serialize, Deserialize)]
enum NotDerived {
    Alpha,
}

#[derive(Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/rota")]
struct Rota {
    #[record(one_of = NotDerived)]
    relief: NotDerived,
    #[record(items = "string")]
    name: String,
}

#[derive(Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/signed-on")]
struct SignedOn {
    #[record(fields, class = "string")]
    name: String,
    #[record(fields = Name)]
    other: String,
}

fn main() {}
