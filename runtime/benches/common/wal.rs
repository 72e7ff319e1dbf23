//! The WAL anchor: what a user would otherwise pick to share a database between forked
//! processes. N processes, forked from the single-threaded bench process, each open one
//! SQLite file in WAL mode (rusqlite, `busy_timeout`, `synchronous = NORMAL`) and do the
//! same work as the shared mikobase beside it: creates, each its own transaction (a row
//! with a JSON bucket in a table shaped like the engine's records table), then selects by
//! pk of their own rows, each answer parsed into the JSON record a caller needs.
//!
//! Fork hygiene: the children are forked by `caspian_ipc::fork::Manager` (it refuses to
//! fork a process with threads, and its children leave with `_exit` and are reaped by
//! `join`, or stopped and reaped when their handle drops); the SQLite file is opened only
//! in the children, after the fork; the temporary directory is removed when the
//! measurement ends, on every path.

use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use caspian_ipc::fork::Manager;
use rusqlite::{params, Connection, TransactionBehavior};
use serde_json::{json, Map, Value};

use super::{now_ns, sample, stats_from, stats_json, window_rate, Stats};

/// The engine's records table (`runtime/src/mikobase/engine/store.rs`), as a user would
/// write it for their own records.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    pk         TEXT NOT NULL UNIQUE,
    bucket     TEXT NOT NULL CHECK (json_type(bucket) = 'object'),
    stack      TEXT NOT NULL CHECK (json_type(stack) = 'object'),
    updated_at TEXT NOT NULL,
    active     INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
);
";

/// How long a child may wait for a lock (`busy_timeout`), for the start signal, and how
/// long the parent waits for a child to be ready or to end.
const PATIENCE: Duration = Duration::from_secs(30);

/// The work of each process.
#[derive(Clone, Copy)]
pub struct Work {
    pub workers: usize,
    pub creates: usize,
    pub selects: usize,
}

/// What one run measured: operations per second over the union of the processes'
/// windows, and the mean over the processes of their create and select latencies.
pub struct Measured {
    pub rate: f64,
    pub create: Stats,
    pub select: Stats,
}

/// Combines the workers' reports (`{"t0", "t1", "create", "select"}`) into a [`Measured`].
pub fn combine(reports: &[Value], work: Work) -> Measured {
    let windows: Vec<(u64, u64)> = reports
        .iter()
        .map(|r| (r["t0"].as_u64().unwrap_or(0), r["t1"].as_u64().unwrap_or(0)))
        .collect();
    let mean = |key: &str| {
        let all: Vec<Stats> = reports.iter().map(|r| stats_from(&r[key])).collect();
        let average = |f: fn(&Stats) -> f64| all.iter().map(f).sum::<f64>() / all.len().max(1) as f64;
        Stats {
            p50: average(|s| s.p50),
            p99: average(|s| s.p99),
            mean: average(|s| s.mean),
        }
    };
    Measured {
        rate: window_rate(&windows, work.workers * (work.creates + work.selects)),
        create: mean("create"),
        select: mean("select"),
    }
}

/// A fresh 0700 directory under the temp dir, removed (with the database and its WAL)
/// when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, String> {
        let path =
            std::env::temp_dir().join(format!("caspian-wal-anchor-{}-{}", std::process::id(), now_ns()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("WAL anchor: cannot remove {}: {e}", self.0.display());
        }
    }
}

fn sql(e: rusqlite::Error) -> String {
    format!("SQLite: {e}")
}

/// Opens the database file as every process does: a lock wait of [`PATIENCE`], and
/// `synchronous = NORMAL`, SQLite's advice for WAL (a commit does not wait for an fsync;
/// the WAL is synced at checkpoints).
fn open(path: &Path) -> Result<Connection, String> {
    let conn = Connection::open(path).map_err(sql)?;
    conn.busy_timeout(PATIENCE).map_err(sql)?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(sql)?;
    Ok(conn)
}

/// A random UUID v4, as the engine makes its pks.
fn new_pk() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("random bytes");
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// One record by pk, as the JSON record a caller needs (`{pk, bucket, stack,
/// updated_at}`), or `None`.
fn select_by_pk(conn: &Connection, pk: &str) -> rusqlite::Result<Option<Value>> {
    let mut statement = conn
        .prepare_cached("SELECT pk, bucket, stack, updated_at FROM records WHERE pk = ?1 AND active = 1")?;
    let mut rows = statement.query([pk])?;
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    let object = |i: usize| -> rusqlite::Result<Value> {
        Ok(serde_json::from_str(&r.get::<_, String>(i)?).unwrap_or(Value::Null))
    };
    let mut record = Map::with_capacity(4);
    record.insert("pk".into(), Value::String(r.get(0)?));
    record.insert("bucket".into(), object(1)?);
    record.insert("stack".into(), object(2)?);
    record.insert("updated_at".into(), Value::String(r.get(3)?));
    Ok(Some(Value::Object(record)))
}

/// One worker process: opens the file, says it is ready on `barrier`, waits for the
/// start byte, then runs its creates and selects and reports its window and latencies.
fn worker(
    path: &Path,
    mut barrier: UnixStream,
    work: Work,
    bucket: fn(usize) -> Value,
) -> Result<Value, String> {
    let mut conn = open(path)?;
    let stack = json!({"shadow": {}, "a": {"class": "example.org/bench/item"}}).to_string();
    let insert = "INSERT INTO records (pk, bucket, stack, updated_at, active) VALUES (?1, ?2, ?3, ?4, 1)";
    conn.prepare_cached(insert).map_err(sql)?;
    barrier
        .set_read_timeout(Some(PATIENCE))
        .map_err(|e| e.to_string())?;
    barrier.write_all(b"r").map_err(|e| format!("barrier: {e}"))?;
    let mut go = [0u8; 1];
    barrier
        .read_exact(&mut go)
        .map_err(|e| format!("no start signal: {e}"))?;

    let t0 = now_ns();
    let mut pks = Vec::with_capacity(work.creates);
    let create = sample(work.creates, |i| {
        let pk = new_pk();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached(insert)?.execute(params![
            pk,
            bucket(i).to_string(),
            stack,
            "2026-01-01T00:00:00.000"
        ])?;
        tx.commit()?;
        pks.push(pk);
        Ok::<_, rusqlite::Error>(())
    })
    .map_err(sql)?;
    let select = sample(work.selects, |i| {
        match select_by_pk(&conn, &pks[(i * 7919) % pks.len()])? {
            Some(_) => Ok(()),
            None => Err(rusqlite::Error::QueryReturnedNoRows),
        }
    })
    .map_err(sql)?;
    let t1 = now_ns();
    Ok(json!({"t0": t0, "t1": t1, "create": stats_json(create), "select": stats_json(select)}))
}

/// Runs the anchor once: a fresh directory, one child that creates the file in WAL mode
/// with the table, then `work.workers` children that start together (each says it is
/// ready over its socket pair; the parent starts them all once every one is). Every child
/// is reaped before this returns; the directory is removed.
pub fn measure(work: Work, bucket: fn(usize) -> Value) -> Result<Measured, String> {
    if work.workers == 0 || work.creates == 0 {
        return Err("the WAL anchor needs workers and creates".into());
    }
    let dir = TempDir::new()?;
    let path = dir.0.join("records.sqlite");
    let manager = Manager::new();
    let setup = manager
        .spawn(|| {
            let conn = open(&path)?;
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(sql)?;
            if mode != "wal" {
                return Err(format!("journal_mode is {mode}, not wal"));
            }
            conn.execute_batch(SCHEMA).map_err(sql)
        })
        .map_err(|e| format!("cannot fork the WAL anchor's setup: {e}"))?;
    setup
        .join(PATIENCE)
        .value
        .map_err(|e| format!("the WAL anchor's setup failed: {e:?}"))?;

    let mut children = Vec::with_capacity(work.workers);
    for _ in 0..work.workers {
        let (ours, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
        let path = &path;
        let child = manager
            .spawn(move || worker(path, theirs, work, bucket))
            .map_err(|e| format!("cannot fork a WAL anchor worker: {e}"))?;
        ours.set_read_timeout(Some(PATIENCE)).map_err(|e| e.to_string())?;
        children.push((child, ours));
    }
    // Every worker ready (or gone: its end of the pair closes), then all start at once.
    let mut ready = [0u8; 1];
    let all_ready = children
        .iter_mut()
        .all(|(_, ours)| ours.read_exact(&mut ready).is_ok());
    for (_, ours) in &mut children {
        if all_ready {
            let _ = ours.write_all(b"g");
        }
        let _ = ours.shutdown(std::net::Shutdown::Both);
    }
    let mut reports = Vec::with_capacity(work.workers);
    let mut failures = Vec::new();
    for (child, _) in children {
        let ended = child.join(PATIENCE * 4);
        match ended.value {
            Ok(report) => reports.push(report),
            Err(e) => failures.push(format!("worker {}: {e:?}", ended.pid)),
        }
    }
    drop(dir);
    if !failures.is_empty() {
        return Err(format!("the WAL anchor failed: {}", failures.join("; ")));
    }
    Ok(combine(&reports, work))
}
