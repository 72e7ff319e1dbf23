// `#[record(crate = "...")]`: the derive names the runtime by the path given, as a crate
// that renamed the dependency (`ipc = { package = "caspian-ipc", ... }`) must.
#![deny(warnings)]

extern crate caspian_ipc as ipc;

use ipc::mikobase::engine::Engine;
use ipc::mikobase::{InProcess, MikobaseClient};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize, ipc::Record)]
#[record(class = "example.org/crew/officer", crate = "ipc")]
struct Officer {
    #[record(one_of("alpha", "beta"), default = "alpha")]
    watch: String,
}

mod vendored {
    pub use ::caspian_ipc as runtime;
}

#[derive(Serialize, Deserialize, ipc::Record)]
#[record(class = "example.org/crew/berth", crate = "crate::vendored::runtime")]
struct Berth {
    deck: u8,
}

fn main() -> Result<(), ipc::mikobase::record::RecordError> {
    let db = MikobaseClient::new(InProcess::new(Engine::memory()));
    db.records::<Officer>().define()?;
    db.records::<Berth>().define()?;
    let officer = db.records::<Officer>().create(&Officer { watch: "beta".into() })?;
    assert_eq!(officer.watch().get()?, "beta");
    db.records::<Berth>().create(&Berth { deck: 2 })?.deck().set(3)?;
    Ok(())
}
