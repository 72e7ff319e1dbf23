// `#[record(fields)]` on a field whose type is no record: the type error says what to
// derive.
use caspian_ipc::Record;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Name {
    surname: String,
}

#[derive(Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/signed-on")]
struct SignedOn {
    #[record(fields)]
    name: Name,
}

fn main() {}
