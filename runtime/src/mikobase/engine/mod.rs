//! The Mikobase engine on SQLite (or PostgreSQL, `store/postgres.rs`): Q0 (select, create, update, delete, transaction,
//! commit, rollback), class definitions, validation, transactions, worldlets.
//!
//! The engine implements the generated `MikobaseService` (`service.rs`) on typed requests;
//! every entry point, [`Engine::q0`] and [`Engine::q0_bytes`] included, goes through the
//! generated dispatch table, so the spec alone says which operations and fields exist.
//! The engine never panics and never answers a bad request with a Rust error. Decisions
//! on points the Mikobase documents leave open are listed in `docs/ENGINE.md`.

mod classes;
mod matching;
mod problem;
mod select;
mod service;
mod store;
mod transactions;
mod values;
mod worldlet;
mod writes;

use std::path::PathBuf;

use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};

pub use classes::{check_uns, BUILT_IN, CLASS_CLASS, DEFAULT_CLASS};
use classes::{parse_class, Registry};
use problem::error;
pub use problem::Problem;
pub use problem::MAX_DEPTH;
use store::{Row, Store};
use writes::class_not_found;

use crate::mikobase::generated::{
    dispatch, ErrorId, ValidationReport, ROUTE_BY_CLASS, ROUTE_EXPORT_SCHEMA, ROUTE_EXPORT_WORLDLET,
    ROUTE_IMPORT_SCHEMA, ROUTE_IMPORT_WORLDLET, ROUTE_Q0, ROUTE_RECORD_BY_PK,
};
use crate::mikobase::reply::CallContext;

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// SQLite `:memory:` (the default): gone when the engine is dropped.
    Memory,
    /// A SQLite file, created when missing.
    File(PathBuf),
    /// A PostgreSQL database, by URL (`postgres://user@host/db`) or conninfo
    /// (`host=/run/postgresql dbname=crew`); its tables are created on the first connect
    /// to an empty database. No password belongs here: a URL without one takes it from
    /// `PGPASSWORD` or the password file (`PGPASSFILE`, `~/.pgpass`), and the usual
    /// `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE` fill what the string leaves out.
    /// Several engines (servers) may share one database (docs/ENGINE.md, PostgreSQL).
    Postgres(String),
}

/// Largest request `q0_bytes` accepts by default: the server's body limit, so a request
/// the socket carried is never refused again by the engine behind it.
pub const DEFAULT_REQUEST_LIMIT: usize = crate::limits::DEFAULT_BODY_LIMIT;

/// An open transaction.
#[derive(Debug, Clone)]
struct Open {
    id: String,
    owner: u64,
}

/// A Mikobase on SQLite or PostgreSQL.
pub struct Engine {
    store: Store,
    read_only: bool,
    registry: Registry,
    open: Vec<Open>,
    invalidated: Vec<String>,
    /// Transactions rolled back because they were held too long, with what to tell.
    expired: Vec<(String, Value)>,
    next_transaction: u64,
    request_limit: usize,
    /// Inside [`Engine::validate`]: transaction actions check, but do not run.
    dry: bool,
    /// A file store's lock, held as long as the engine (`flock`: exclusive for `rw`,
    /// shared for `r`; released when the descriptor closes).
    _lock: Option<std::fs::File>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("read_only", &self.read_only)
            .field("open_transactions", &self.open.len())
            .finish_non_exhaustive()
    }
}

/// How many ended transaction ids the engine remembers to explain (invalidated, expired):
/// a long-running server does not grow with every transaction it ever saw; an older id
/// answers `transaction-not-found`, which stays true.
const REMEMBERED_ENDED: usize = 1024;

/// Drops the oldest remembered ids past [`REMEMBERED_ENDED`].
fn forget_oldest<T>(remembered: &mut Vec<T>) {
    if let Some(excess) = remembered.len().checked_sub(REMEMBERED_ENDED) {
        remembered.drain(..excess);
    }
}

/// Creates a missing store file readable by its owner alone (0600) before SQLite opens it:
/// a store holds every worker's data, and SQLite gives its `-wal`, `-shm` and `-journal`
/// files the database file's own mode. An existing file keeps the mode it has.
/// Locks a store file the way the documents say a connection does: `rw` exclusively, `r`
/// shared; without waiting, so a second opener is told at once (`store-locked`). A `flock`
/// lock is separate from SQLite's own POSIX locks, and lives with the descriptor.
/// The `meta` key of the `executable` property.
const EXECUTABLE: &str = "executable";

/// How long a refused store lock is tried again before `store-locked` is answered.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

fn lock_store(path: &std::path::Path, read_only: bool) -> Result<std::fs::File, Problem> {
    use std::os::fd::AsRawFd;
    let failed = |e: std::io::Error| {
        error(
            ErrorId::StorageFailed,
            json!({ "storage": path.display().to_string(), "storage_error": e.to_string(), "fix": "check the path and its permissions" }),
        )
    };
    let file = std::fs::File::open(path).map_err(failed)?;
    let how = if read_only { libc::LOCK_SH } else { libc::LOCK_EX };
    // A lock just released can still be held for a moment by a process another thread of
    // ours is forking (the child shares the descriptor until its exec closes it), so a
    // refusal is tried again for a short, bounded while before it is told (E17).
    let until = std::time::Instant::now() + LOCK_GRACE;
    loop {
        // SAFETY: flock on a descriptor this function owns; it only sets a lock on the file.
        if unsafe { libc::flock(file.as_raw_fd(), how | libc::LOCK_NB) } == 0 {
            return Ok(file);
        }
        let os_error = std::io::Error::last_os_error();
        if os_error.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(failed(os_error));
        }
        if std::time::Instant::now() >= until {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Err(error(
        ErrorId::StoreLocked,
        json!({
            "storage": path.display().to_string(),
            "mode": if read_only { "r" } else { "rw" },
            "reason": if read_only {
                "another connection has the store open rw (exclusively)"
            } else {
                "another connection has the store open (rw takes it exclusively)"
            },
            "fix": "close the other connection first (a `mikobase serve` or a run on this file), or go through it: connect to its server",
        }),
    ))
}

fn create_private(path: &std::path::Path) -> rusqlite::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("cannot create {}: {e}", path.display())),
        )),
    }
}

/// Parses a connection mode: `rw`/`wr` (read-write) or `r` (read-only), any case; `w` is
/// valid but not supported; surrounding whitespace and anything else is malformed.
pub fn parse_mode(mode: &str) -> Result<bool, Problem> {
    match mode.to_ascii_lowercase().as_str() {
        "rw" | "wr" => Ok(false),
        "r" => Ok(true),
        "w" => Err(error(
            ErrorId::ModeNotSupported,
            json!({
                "mode": mode,
                "supported": ["rw", "wr", "r"],
                "fix": "write-only connections are not implemented: open with `rw` to write",
            }),
        )),
        _ => Err(error(
            ErrorId::InvalidMode,
            json!({ "mode": mode, "fix": "use `rw` (or `wr`) for read-write, `r` for read-only, without spaces" }),
        )),
    }
}

/// A failure with one problem.
pub(crate) fn fail(problem: Problem) -> Vec<Problem> {
    vec![problem]
}

/// A SQLite store and, for a file, its lock.
fn open_sqlite(storage: &Storage, read_only: bool) -> Result<(Store, Option<std::fs::File>), Problem> {
    let conn = match storage {
        Storage::File(path) if read_only => {
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        }
        Storage::File(path) => create_private(path).and_then(|()| Connection::open(path)),
        _ => Connection::open_in_memory(),
    }
    .map_err(|e| {
        error(
            ErrorId::StorageFailed,
            json!({
                "storage": format!("{storage:?}"),
                "storage_error": e.to_string(),
                "fix": "check the path (a read-only connection needs an existing store)",
            }),
        )
    })?;
    let lock = match storage {
        Storage::File(path) => Some(lock_store(path, read_only)?),
        _ => None,
    };
    conn.set_prepared_statement_cache_capacity(64);
    if read_only {
        store::sqlite::check_readable(&conn)?;
    } else {
        store::sqlite::init(&conn)?;
    }
    Ok((Store::Sqlite(conn), lock))
}

/// A PostgreSQL store (the `postgres` feature).
#[cfg(feature = "postgres")]
fn open_postgres(config: &str, read_only: bool) -> Result<Store, Problem> {
    store::postgres::Pg::connect(config, read_only).map(|pg| Store::Postgres(Box::new(pg)))
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(_: &str, _: bool) -> Result<Store, Problem> {
    Err(error(
        ErrorId::StorageFailed,
        json!({
            "storage": "postgres",
            "storage_error": "this build has no PostgreSQL storage",
            "fix": "build caspian-ipc with the `postgres` feature",
        }),
    ))
}

impl Engine {
    /// An in-memory read-write engine.
    pub fn memory() -> Engine {
        Engine::open(Storage::Memory, "rw").expect("an in-memory SQLite database always opens")
    }

    /// Opens (creating the schema when missing) a store in `mode` (`rw`, `wr` or `r`).
    pub fn open(storage: Storage, mode: &str) -> Result<Engine, Problem> {
        let read_only = parse_mode(mode)?;
        let (store, lock) = match &storage {
            Storage::Postgres(config) => (open_postgres(config, read_only)?, None),
            Storage::Memory | Storage::File(_) => open_sqlite(&storage, read_only)?,
        };
        let mut engine = Engine {
            store,
            read_only,
            registry: Registry::default(),
            open: Vec::new(),
            invalidated: Vec::new(),
            expired: Vec::new(),
            next_transaction: 1,
            request_limit: DEFAULT_REQUEST_LIMIT,
            dry: false,
            _lock: lock,
        };
        engine.reload_classes()?;
        Ok(engine)
    }

    /// Sets the largest request [`Engine::q0_bytes`] accepts.
    pub fn set_request_limit(&mut self, bytes: usize) {
        self.request_limit = bytes;
    }

    /// Whether the connection is read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Reloads the classes when another connection changed them (a shared PostgreSQL
    /// database; SQLite's connection is the only writer, so never there).
    pub(crate) fn refresh_classes(&mut self) -> Result<(), Problem> {
        if self.store.classes_changed()? {
            self.reload_classes()?;
        }
        Ok(())
    }

    fn reload_classes(&mut self) -> Result<(), Problem> {
        let rows = match self.store.active(Some(&[CLASS_CLASS.to_owned()]), None) {
            Ok(rows) => rows,
            Err(_) if self.read_only => Vec::new(), // a read-only store without a schema yet
            Err(e) => return Err(e),
        };
        self.registry = Registry::default();
        for row in rows {
            if let Ok(def) = parse_class(&row.bucket) {
                self.registry.classes.insert(def.name.clone(), def);
            }
        }
        Ok(())
    }

    /// Runs one Q0 request given as bytes (the size limit set by
    /// [`Engine::set_request_limit`], the JSON syntax, then the request), answering the
    /// envelope.
    pub fn q0_bytes(&mut self, owner: u64, request: &[u8]) -> Value {
        let limit = self.request_limit;
        self.answer(owner, ROUTE_Q0, request, limit)
    }

    /// Runs one Q0 request on behalf of no particular owner.
    pub fn q0(&mut self, request: &Value) -> Value {
        self.q0_as(0, request)
    }

    /// Runs one Q0 request on behalf of `owner` (a worker connection): transactions it
    /// begins belong to it and are rolled back by [`Engine::release_owner`].
    pub fn q0_as(&mut self, owner: u64, request: &Value) -> Value {
        self.call(owner, ROUTE_Q0, request)
    }

    /// The record with `pk` (`record_not_found` / `record_deleted` otherwise), as the
    /// envelope.
    pub fn record_by_pk(&mut self, pk: &str) -> Value {
        self.call(0, ROUTE_RECORD_BY_PK, &json!({ "pk": pk }))
    }

    /// Active records of `class` and its subclasses, as the envelope.
    pub fn by_class(&mut self, class: &str) -> Value {
        self.call(0, ROUTE_BY_CLASS, &json!({ "class": class }))
    }

    /// Every active class definition, as the envelope (`results`: `{"classes": [...]}`).
    pub fn export_schema(&mut self) -> Value {
        self.call(0, ROUTE_EXPORT_SCHEMA, &json!({}))
    }

    /// Creates or replaces (by name) every class definition of `schema`
    /// (`{"classes": [...]}`), all or nothing; answers the envelope.
    pub fn import_schema(&mut self, schema: &Value) -> Value {
        self.call(0, ROUTE_IMPORT_SCHEMA, schema)
    }

    /// The whole store as a worldlet, in the envelope's `results`: `{"format":
    /// "worldlet/1.0", "records": {pk: ...}}`. Class definitions are in whole-hash form
    /// (`{"class": "puck.uno/class", "name", ...}`).
    pub fn export_worldlet(&mut self) -> Value {
        self.call(0, ROUTE_EXPORT_WORLDLET, &json!({}))
    }

    /// Imports a worldlet atomically: every record is validated (class definitions
    /// first), an existing pk is overwritten, and on any problem nothing is written.
    pub fn import_worldlet(&mut self, worldlet: &Value) -> Value {
        self.call(0, ROUTE_IMPORT_WORLDLET, &json!({ "worldlet": worldlet }))
    }

    /// Checks a Q0 request without running it: `{"errors": [...], "warnings": [...]}`.
    /// Writes run inside a savepoint that is rolled back; transaction actions only check.
    pub fn validate(&mut self, request: &Value) -> Value {
        serde_json::to_value(self.dry_run(request)).unwrap_or(Value::Null)
    }

    /// Calls `route` with a request the caller holds as a value (no size limit: the
    /// limit guards what arrives as bytes).
    fn call(&mut self, owner: u64, route: &str, request: &Value) -> Value {
        self.answer(owner, route, request.to_string().as_bytes(), usize::MAX)
    }

    /// One call through the generated dispatch table, its envelope read back as a value.
    fn answer(&mut self, owner: u64, route: &str, body: &[u8], limit: usize) -> Value {
        let (_, answer) = dispatch(self, &CallContext { owner }, route, body, limit);
        serde_json::from_slice(&answer).unwrap_or_else(|e| {
            json!({ "success": false, "errors": [error(ErrorId::StorageFailed, json!({ "storage_error": format!("an unreadable answer: {e}") }))] })
        })
    }

    /// [`Engine::validate`]'s report: the request runs through the dispatch table with
    /// every write inside a savepoint that is rolled back.
    pub(crate) fn dry_run(&mut self, request: &Value) -> ValidationReport {
        let problems = |errors: Vec<Problem>, warnings: Vec<Problem>| ValidationReport { errors, warnings };
        if let Err(e) = self.store.savepoint("validate") {
            return problems(vec![e], Vec::new());
        }
        self.dry = true;
        let body = request.to_string();
        let (_, answer) = dispatch(
            self,
            &CallContext { owner: u64::MAX },
            ROUTE_Q0,
            body.as_bytes(),
            usize::MAX,
        );
        self.dry = false;
        let undone = self.store.rollback_to("validate");
        let reloaded = self.reload_classes();
        let (mut errors, warnings) = match crate::mikobase::support::decode_reply::<Value>(&answer) {
            Ok(answer) => (Vec::new(), answer.warnings),
            Err(crate::mikobase::support::ClientError::Failed(failure)) => (failure.errors, failure.warnings),
            Err(other) => (
                vec![error(
                    ErrorId::StorageFailed,
                    json!({ "storage_error": other.to_string() }),
                )],
                Vec::new(),
            ),
        };
        errors.extend(undone.err());
        errors.extend(reloaded.err());
        problems(errors, warnings)
    }

    fn live(&self, pk: &str) -> Result<Row, Problem> {
        match self.store.get(pk)? {
            None => Err(error(
                ErrorId::RecordNotFound,
                json!({ "pk": pk, "fix": "check the pk: no record, active or deleted, has it" }),
            )),
            Some(row) if !row.active => Err(error(
                ErrorId::RecordDeleted,
                json!({ "pk": pk, "fix": "the record was deleted: create a new one (or delete with if_exists: true)" }),
            )),
            Some(row) => Ok(row),
        }
    }

    /// `read-only-connection` on a connection opened `r`; `to` names what needs `rw`.
    fn writable(&self, to: &str) -> Result<(), Problem> {
        if self.read_only {
            Err(error(
                ErrorId::ReadOnlyConnection,
                json!({ "fix": format!("this connection was opened read-only (`r`): open the store in mode `rw` to {to}") }),
            ))
        } else {
            Ok(())
        }
    }

    /// The database-level `executable` property (D22): advisory, false until set.
    pub fn executable(&self) -> Result<bool, Problem> {
        Ok(self.store.property(EXECUTABLE)?.is_some_and(|v| v != 0))
    }

    /// Sets the `executable` property, kept in the store (an `rw` connection only).
    pub fn set_executable(&mut self, executable: bool) -> Result<(), Problem> {
        self.writable("set a property")?;
        self.store.set_property(EXECUTABLE, i64::from(executable))
    }

    /// Runs `body` all or nothing (a savepoint), on a writable connection.
    fn atomically(
        &mut self,
        body: impl FnOnce(&mut Engine) -> Result<Value, Vec<Problem>>,
    ) -> Result<Value, Vec<Problem>> {
        self.writable("write").map_err(fail)?;
        self.store.savepoint("import").map_err(fail)?;
        if let Err(e) = self.refresh_classes() {
            let _ = self.store.rollback_to("import");
            return Err(fail(e));
        }
        match body(self) {
            Ok(results) => self.store.release("import").map(|()| results).map_err(fail),
            Err(problems) => {
                let _ = self.store.rollback_to("import");
                let _ = self.reload_classes();
                Err(problems)
            }
        }
    }
}
