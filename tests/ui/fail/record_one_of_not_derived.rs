// `#[record(one_of)]` on a field whose type does not derive `OneOf`: the type error says
// what to derive or write instead.
use caspian_ipc::Record;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
enum Watch {
    Alpha,
}

#[derive(Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/rota")]
struct Rota {
    #[record(one_of)]
    watch: Watch,
}

fn main() {}
