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

fn main() {}
