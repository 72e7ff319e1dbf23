// Mistakes in the keys of the complete derive: `crate`, `inherits`, `one_of` from an
// enum, `items`. Each message says what to write instead.
use caspian_ipc::Record;
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

fn main() {}
