// Attribute mistakes: each error points at the user's own token.
use caspian_ipc::Record;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Record)]
struct NoClass {
    rank: String,
}

#[derive(Serialize, Deserialize, Record)]
#[record(class = "officer")]
struct NotUns {
    rank: String,
}

#[derive(Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/officer", clas = "again")]
struct Officer {
    #[record(requird)]
    serial: String,
    #[record(unique, unique)]
    rank: String,
    #[record(one_of("alpha", "beta"), default = "delta")]
    watch: String,
    #[record(default = 3)]
    ship: String,
    #[record(required)]
    nickname: Option<String>,
    #[record(class = "strng")]
    status: String,
    #[serde(flatten)]
    extra: std::collections::BTreeMap<String, String>,
    get: String,
}

fn main() {}
