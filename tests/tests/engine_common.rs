//! Helpers shared by the engine test files, which include this file with
//! `#[path = "engine_common.rs"] mod common;` (built alone, it has no tests).
#![allow(dead_code)]

use caspian_ipc::mikobase::engine::Engine;
use serde_json::{json, Value};

/// The results of a successful envelope.
pub fn ok(envelope: Value) -> Value {
    assert_eq!(envelope["success"], true, "expected success: {envelope}");
    envelope["results"].clone()
}

/// The first error id of a failed envelope.
pub fn error_id(envelope: &Value) -> &str {
    assert_eq!(envelope["success"], false, "expected failure: {envelope}");
    envelope["errors"][0]["id"].as_str().unwrap()
}

/// Creates a record, answering its pk.
pub fn create(db: &mut Engine, class: &str, bucket: Value) -> String {
    ok(db.q0(&json!({"action": "create", "class": class, "bucket": bucket})))["pk"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Creates a class definition (a record of class `puck.uno/class`).
pub fn define(db: &mut Engine, def: Value) -> String {
    create(db, "puck.uno/class", def)
}

/// The operators of the reference's table (§6.3), in its order.
pub const OPERATORS: &[&str] = &[
    "value",
    "contains",
    "starts-with",
    "ends-with",
    "gt",
    "lt",
    "gte",
    "lte",
    "includes",
    "includes_all",
    "includes_any",
    "exists",
    "truthy",
    "any",
];

/// The `name.surname` of each selected record (`?` when there is none).
pub fn surnames(results: &Value) -> Vec<String> {
    results["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["bucket"]["name"]["surname"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Whether `s` is a UUID v4 in its usual text form.
pub fn is_uuid_v4(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        })
        && s[14..15] == *"4"
        && "89ab".contains(&s[19..20])
}

/// Whether `s` is a timestamp `YYYY-MM-DDTHH:MM:SS.mmm` (the SQLite schema's format).
pub fn is_timestamp(s: &str) -> bool {
    s.len() == 23
        && s.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == 'T',
            13 | 16 => c == ':',
            19 => c == '.',
            _ => c.is_ascii_digit(),
        })
}

/// The error ids and warning ids of the spec's registry (`mikobase-spec/mikobase.yaml`).
pub fn registry() -> (Vec<String>, Vec<String>) {
    let spec = mikobase_spec::load_str(mikobase_spec::MIKOBASE_YAML).expect("the spec loads");
    (
        spec.errors.iter().map(|e| e.id.wire.clone()).collect(),
        spec.warnings.iter().map(|w| w.id.wire.clone()).collect(),
    )
}

/// What is wrong with `envelope` as a Q0 envelope, if anything: it must be well formed,
/// its ids all in the registry, and on failure every error's details must say what to
/// fix (a `fix` text).
pub fn envelope_problem(envelope: &Value, errors: &[String], warnings: &[String]) -> Option<String> {
    let Some(map) = envelope.as_object() else {
        return Some(format!("not an object: {envelope}"));
    };
    if let Some(key) = map
        .keys()
        .find(|k| !["success", "results", "errors", "warnings"].contains(&k.as_str()))
    {
        return Some(format!("unexpected key {key} in {envelope}"));
    }
    let list = |key: &str| {
        map.get(key).map(|v| {
            v.as_array()
                .cloned()
                .ok_or(format!("{key} is not an array: {envelope}"))
        })
    };
    let listed = |key: &str| list(key).transpose().map(Option::unwrap_or_default);
    let (errs, warns) = match (listed("errors"), listed("warnings")) {
        (Ok(e), Ok(w)) => (e, w),
        (Err(p), _) | (_, Err(p)) => return Some(p),
    };
    match map.get("success") {
        Some(Value::Bool(true)) if !map.contains_key("results") => {
            return Some(format!("success without results: {envelope}"))
        }
        Some(Value::Bool(true)) if !errs.is_empty() || list("errors").is_none() => {
            return Some(format!("success needs \"errors\": []: {envelope}"))
        }
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) if map.contains_key("results") => {
            return Some(format!("failure with results: {envelope}"))
        }
        Some(Value::Bool(false)) if errs.is_empty() => {
            return Some(format!("failure without an error: {envelope}"))
        }
        Some(Value::Bool(false)) => {}
        _ => return Some(format!("`success` is not a boolean: {envelope}")),
    }
    for e in &errs {
        let id = e["id"].as_str().unwrap_or_default();
        if !errors.iter().any(|r| r == id) {
            return Some(format!("error id {id:?} not in the registry: {envelope}"));
        }
        if e["details"]["fix"].as_str().is_none_or(str::is_empty) {
            return Some(format!("error without a fix: {e}"));
        }
    }
    for w in &warns {
        let id = w["id"].as_str().unwrap_or_default();
        if !warnings.iter().any(|r| r == id) || !w["details"].is_object() {
            return Some(format!("warning {w} not a registry warning with details"));
        }
    }
    None
}

/// Asserts [`envelope_problem`] finds nothing.
pub fn assert_envelope(envelope: &Value, errors: &[String], warnings: &[String], context: &str) {
    if let Some(problem) = envelope_problem(envelope, errors, warnings) {
        panic!("{problem} ({context})");
    }
}

// ---- the storage matrix ---------------------------------------------------------------
//
// Every test that opens its engines with [`engine`] and runs inside [`each_storage`] runs
// once per storage: SQLite in memory, a SQLite file, and PostgreSQL when a cluster can
// start (one cluster per test process, a fresh database per engine). A skipped storage is
// printed past the capture; under `CI=true` a missing PostgreSQL fails instead.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use caspian_ipc::mikobase::engine::Storage;
use caspian_ipc_tests::postgres::{Cluster, Postgres};

/// The storages of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SQLite in memory.
    Memory,
    /// A SQLite file.
    File,
    /// A PostgreSQL database.
    Postgres,
}

thread_local! {
    static CURRENT: Cell<Kind> = const { Cell::new(Kind::Memory) };
    static OPENED: Cell<usize> = const { Cell::new(0) };
}

/// The storage the running case uses.
pub fn kind() -> Kind {
    CURRENT.with(Cell::get)
}

/// The test process's cluster, started once (stopped when the process exits), or `None`
/// when PostgreSQL is not installed (reported once).
fn cluster() -> Option<&'static str> {
    static CONFIG: OnceLock<Option<String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| match Cluster::start().unwrap_or_else(|e| panic!("{e}")) {
            Postgres::Running(cluster) => {
                let config = cluster.config();
                *running().lock().unwrap() = Some(cluster);
                // SAFETY: registers a plain function to run at exit; it only drops the cluster.
                unsafe { libc::atexit(stop_cluster) };
                Some(config)
            }
            Postgres::Skipped(skipped) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{skipped}: .ci/run installs PostgreSQL before the tests, so on CI it must be there"
                );
                eprintln!("skipped storage postgres: {skipped}");
                None
            }
        })
        .as_deref()
}

fn running() -> &'static Mutex<Option<Cluster>> {
    static RUNNING: Mutex<Option<Cluster>> = Mutex::new(None);
    &RUNNING
}

extern "C" fn stop_cluster() {
    if let Ok(mut cluster) = running().lock() {
        drop(cluster.take());
    }
}

/// A fresh, empty PostgreSQL database of the process's cluster, as a conninfo.
pub fn fresh_database() -> Option<String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let config = cluster()?;
    let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let mut admin = postgres::Client::connect(config, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect with {config}: {e}"));
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    Some(format!("{config} dbname={name}"))
}

/// The storage the running case opens: a new, empty store each call.
pub fn storage() -> Storage {
    OPENED.with(|n| n.set(n.get() + 1));
    match kind() {
        Kind::Memory => Storage::Memory,
        Kind::File => {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = matrix_dir();
            if NEXT.load(Ordering::Relaxed) == 0 {
                // SAFETY: registers a plain function to run at exit; it removes the dir.
                unsafe { libc::atexit(remove_matrix_dir) };
            }
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{}.db", NEXT.fetch_add(1, Ordering::Relaxed)));
            let _ = std::fs::remove_file(&path);
            Storage::File(path)
        }
        Kind::Postgres => Storage::Postgres(fresh_database().expect("a cluster")),
    }
}

/// Where the file storage's stores go (removed at exit).
fn matrix_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("engine-matrix-{}", std::process::id()))
}

extern "C" fn remove_matrix_dir() {
    let _ = std::fs::remove_dir_all(matrix_dir());
}

/// A new, empty read-write engine on the running case's storage.
pub fn engine() -> Engine {
    let storage = storage();
    Engine::open(storage.clone(), "rw").unwrap_or_else(|p| panic!("open {storage:?}: {} {}", p.id, p.details))
}

/// Says which storage a failing case ran on.
struct Announce(Kind);

impl Drop for Announce {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("(the failing case ran on storage {:?})", self.0);
        }
    }
}

/// Runs `case` once per available storage (a case that opens no engine runs once).
pub fn each_storage(case: impl Fn()) {
    for kind in [Kind::Memory, Kind::File, Kind::Postgres] {
        if kind == Kind::Postgres && cluster().is_none() {
            continue;
        }
        CURRENT.with(|c| c.set(kind));
        OPENED.with(|n| n.set(0));
        let announce = Announce(kind);
        case();
        drop(announce);
        if OPENED.with(Cell::get) == 0 {
            break;
        }
    }
    CURRENT.with(|c| c.set(Kind::Memory));
}
