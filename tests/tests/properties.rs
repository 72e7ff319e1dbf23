//! Database-level properties (D22): `executable`, advisory, false until its owner sets
//! it, kept in the store, readable by any client (`properties`).

#[path = "engine_common.rs"]
mod common;

use caspian_ipc::mikobase::engine::{Engine, Storage};
use caspian_ipc::mikobase::{InProcess, MikobaseClient, PropertiesRequest};

#[test]
fn executable_is_false_until_set_and_readable_by_a_client() {
    let mut engine = Engine::memory();
    assert!(!engine.executable().unwrap(), "false by default");
    engine.set_executable(true).unwrap();
    let db = MikobaseClient::new(InProcess::new(engine));
    let read = db.properties(&PropertiesRequest::default()).unwrap().results;
    assert!(read.executable, "{read:?}");
}

#[test]
fn executable_is_kept_in_the_store_and_only_rw_sets_it() {
    let path = std::env::temp_dir().join(format!("mb-properties-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    {
        let mut engine = Engine::open(Storage::File(path.clone()), "rw").unwrap();
        engine.set_executable(true).unwrap();
    }
    {
        let mut reader = Engine::open(Storage::File(path.clone()), "r").unwrap();
        assert!(reader.executable().unwrap(), "kept across reopening");
        let refused = reader.set_executable(false).unwrap_err();
        assert_eq!(refused.id, "read-only-connection");
    }
    let mut engine = Engine::open(Storage::File(path.clone()), "rw").unwrap();
    engine.set_executable(false).unwrap();
    assert!(!engine.executable().unwrap());
    drop(engine);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn executable_is_set_and_read_on_every_storage() {
    common::each_storage(|| {
        let mut engine = common::engine();
        assert!(!engine.executable().unwrap(), "false on a fresh store");
        engine.set_executable(true).unwrap();
        assert!(engine.executable().unwrap());
        engine.set_executable(false).unwrap();
        assert!(!engine.executable().unwrap());
    });
}
