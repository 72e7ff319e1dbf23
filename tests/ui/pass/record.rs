// A derived record used as users do, generically over the transport; warning-free.
#![deny(warnings)]

use caspian_ipc::mikobase::engine::Engine;
use caspian_ipc::mikobase::record::{RecordError, Records};
use caspian_ipc::mikobase::{InProcess, MikobaseClient, SelectRequest, Transport};
use caspian_ipc::Record;
use serde::{Deserialize, Serialize};

/// A ship's officer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/officer")]
pub struct Officer {
    #[record(required, unique)]
    pub serial: String,
    pub rank: String,
    #[record(one_of("alpha", "beta", "gamma"), default = "alpha")]
    pub watch: String,
    pub nickname: Option<String>,
    pub medals: Vec<String>,
    pub years: u32,
}

// Private, with a field nobody reads through its accessor: still no warning.
#[derive(Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/berth")]
struct Berth {
    deck: u8,
}

fn promote<T: Transport>(officers: Records<'_, Officer, T>, serial: &str) -> Result<usize, RecordError> {
    let mut promoted = 0;
    for (pk, officer) in officers.select(&SelectRequest::default())? {
        if officer.serial == serial {
            let proxy: OfficerProxy<'_, T> = officers.at(pk);
            proxy.rank().set("Captain")?;
            promoted += 1;
        }
    }
    Ok(promoted)
}

fn main() -> Result<(), RecordError> {
    let db = MikobaseClient::new(InProcess::new(Engine::memory()));
    let officers = db.records::<Officer>();
    officers.define()?;
    db.records::<Berth>().define()?;
    let ripley = officers.create(&Officer {
        serial: "W-5617".into(),
        rank: "Warrant Officer".into(),
        watch: "beta".into(),
        nickname: None,
        medals: Vec::new(),
        years: 3,
    })?;
    assert_eq!(promote(officers, "W-5617")?, 1);
    assert_eq!(ripley.rank().get()?, "Captain");
    let copy = ripley.clone();
    println!("{copy:?}");
    Ok(())
}
