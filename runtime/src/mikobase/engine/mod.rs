//! The Mikobase engine on SQLite: Q0 (select, create, update, delete, transaction,
//! commit, rollback), class definitions, validation, transactions, worldlets.
//!
//! Everything answers the Q0 envelope `{"success", "results", "errors", "warnings"}`:
//! the engine never panics and never answers a bad request with a Rust error. Decisions on
//! points the Mikobase documents leave open are listed in `docs/ENGINE.md`.

mod classes;
mod problem;
mod select;
mod store;
mod worldlet;

use std::path::PathBuf;

use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Map, Value};

pub use classes::{check_uns, BUILT_IN, CLASS_CLASS, DEFAULT_CLASS};
use classes::{parse_class, present, validate_bucket, Registry};
pub use problem::Problem;
use problem::{deeper_than, failure, got, success};
use select::{check_class_name, Scope, Select};
use store::{sql, Equal, Row, Scan};

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// SQLite `:memory:` (the default): gone when the engine is dropped.
    Memory,
    /// A SQLite file, created when missing.
    File(PathBuf),
}

/// Largest request `q0_bytes` accepts by default: the server's body limit, so a request
/// the socket carried is never refused again by the engine behind it.
pub const DEFAULT_REQUEST_LIMIT: usize = crate::limits::DEFAULT_BODY_LIMIT;

/// Deepest nesting of arrays and objects in a request, a worldlet record or a class
/// definition (decision E15): every answer and export then stays well within the 128
/// levels a JSON parser (serde_json's) reads back.
pub const MAX_DEPTH: usize = 64;

use super::support::PASSTHROUGH;

/// The actions of Q0.
const ACTIONS: &[&str] = &[
    "select",
    "create",
    "update",
    "delete",
    "transaction",
    "commit",
    "rollback",
];

/// An open transaction.
#[derive(Debug, Clone)]
struct Open {
    id: String,
    owner: u64,
}

/// A Mikobase on SQLite.
pub struct Engine {
    conn: Connection,
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
fn lock_store(path: &std::path::Path, read_only: bool) -> Result<std::fs::File, Problem> {
    use std::os::fd::AsRawFd;
    let failed = |e: std::io::Error| {
        Problem::new(
            "storage-failed",
            json!({ "storage": path.display().to_string(), "storage_error": e.to_string(), "fix": "check the path and its permissions" }),
        )
    };
    let file = std::fs::File::open(path).map_err(failed)?;
    let how = if read_only { libc::LOCK_SH } else { libc::LOCK_EX };
    // SAFETY: flock on a descriptor this function owns; it only sets a lock on the file.
    if unsafe { libc::flock(file.as_raw_fd(), how | libc::LOCK_NB) } == 0 {
        return Ok(file);
    }
    let error = std::io::Error::last_os_error();
    if error.raw_os_error() != Some(libc::EWOULDBLOCK) {
        return Err(failed(error));
    }
    Err(Problem::new(
        "store-locked",
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
        "w" => Err(Problem::new(
            "mode-not-supported",
            json!({
                "mode": mode,
                "supported": ["rw", "wr", "r"],
                "fix": "write-only connections are not implemented: open with `rw` to write",
            }),
        )),
        _ => Err(Problem::new(
            "invalid-mode",
            json!({ "mode": mode, "fix": "use `rw` (or `wr`) for read-write, `r` for read-only, without spaces" }),
        )),
    }
}

/// A failure with one problem.
fn fail(problem: Problem) -> Vec<Problem> {
    vec![problem]
}

impl Engine {
    /// An in-memory read-write engine.
    pub fn memory() -> Engine {
        Engine::open(Storage::Memory, "rw").expect("an in-memory SQLite database always opens")
    }

    /// Opens (creating the schema when missing) a store in `mode` (`rw`, `wr` or `r`).
    pub fn open(storage: Storage, mode: &str) -> Result<Engine, Problem> {
        let read_only = parse_mode(mode)?;
        let conn = match &storage {
            Storage::Memory => Connection::open_in_memory(),
            Storage::File(path) if read_only => {
                Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            }
            Storage::File(path) => create_private(path).and_then(|()| Connection::open(path)),
        }
        .map_err(|e| {
            Problem::new(
                "storage-failed",
                json!({
                    "storage": format!("{storage:?}"),
                    "storage_error": e.to_string(),
                    "fix": "check the path (a read-only connection needs an existing store)",
                }),
            )
        })?;
        let lock = match &storage {
            Storage::File(path) => Some(lock_store(path, read_only)?),
            Storage::Memory => None,
        };
        conn.set_prepared_statement_cache_capacity(64);
        if read_only {
            store::check_readable(&conn)?;
        } else {
            store::init(&conn)?;
        }
        let mut engine = Engine {
            conn,
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

    fn reload_classes(&mut self) -> Result<(), Problem> {
        let rows = match store::active(&self.conn, Some(&[CLASS_CLASS.to_owned()]), None) {
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

    /// Runs one Q0 request given as bytes: the size limit and JSON syntax are checked
    /// first.
    pub fn q0_bytes(&mut self, owner: u64, request: &[u8]) -> Value {
        if request.len() > self.request_limit {
            return failure(
                &[Problem::new(
                    "request-too-large",
                    json!({
                        "limit_bytes": self.request_limit,
                        "got_bytes": request.len(),
                        "fix": "send a smaller request (split a large import into several)",
                    }),
                )],
                &[],
            );
        }
        match serde_json::from_slice::<Value>(request) {
            Ok(value) => self.q0_as(owner, &value),
            Err(e) => failure(
                &[Problem::invalid(json!({
                    "json": e.to_string(),
                    "line": e.line(),
                    "column": e.column(),
                    "fix": "send one JSON object",
                }))],
                &[],
            ),
        }
    }

    /// Runs one Q0 request on behalf of no particular owner.
    pub fn q0(&mut self, request: &Value) -> Value {
        self.q0_as(0, request)
    }

    /// Runs one Q0 request on behalf of `owner` (a worker connection): transactions it
    /// begins belong to it and are rolled back by [`Engine::release_owner`].
    pub fn q0_as(&mut self, owner: u64, request: &Value) -> Value {
        let mut warnings = Vec::new();
        match self.dispatch(owner, request, &mut warnings) {
            Ok(results) => success(results, &warnings),
            Err(errors) => failure(&errors, &warnings),
        }
    }

    fn dispatch(
        &mut self,
        owner: u64,
        request: &Value,
        warnings: &mut Vec<Problem>,
    ) -> Result<Value, Vec<Problem>> {
        if deeper_than(request, MAX_DEPTH) {
            return Err(fail(too_deep("the request")));
        }
        let Some(request) = request.as_object() else {
            return Err(fail(Problem::invalid(json!({
                "reason": "a Q0 request is a JSON object",
                "got": got(request),
                "fix": "send {\"action\": \"select\", ...}",
            }))));
        };
        let action = match request.get("action") {
            Some(Value::String(a)) => a.as_str(),
            Some(other) => return Err(fail(wrong_type("action", "a string", other))),
            None => {
                return Err(fail(Problem::invalid(json!({
                    "missing_fields": ["action"],
                    "fix": format!("add \"action\": one of {}", ACTIONS.join(", ")),
                }))))
            }
        };
        match action {
            "select" => {
                shape(request, select::FIELDS, &[])?;
                self.bound(request)?;
                let query = select::parse(request, warnings).map_err(fail)?;
                let rows = self.matching(&query).map_err(fail)?;
                Ok(select_result(rows))
            }
            "create" => {
                shape(
                    request,
                    &["bucket", "class", "classes", "transaction"],
                    &["bucket"],
                )?;
                self.writable()?;
                self.bound(request)?;
                self.create(request, warnings)
            }
            "update" => {
                shape(request, &["pk", "bucket", "class", "transaction"], &["pk"])?;
                self.writable()?;
                self.bound(request)?;
                self.update(request)
            }
            "delete" => {
                shape(request, &["pk", "if_exists", "transaction"], &["pk"])?;
                self.writable()?;
                self.bound(request)?;
                self.delete(request).map_err(fail)
            }
            "transaction" => {
                shape(request, &["parent"], &[])?;
                self.begin(owner, request.get("parent")).map_err(fail)
            }
            "commit" | "rollback" => {
                shape(request, &["transaction"], &["transaction"])?;
                let id = text(request, "transaction").map_err(fail)?;
                self.end(&id, action == "commit").map_err(fail)
            }
            other => Err(fail(Problem::new(
                "action-not-supported",
                json!({
                    "action": other,
                    "supported": ACTIONS,
                    "fix": "use one of the supported actions",
                }),
            ))),
        }
    }

    fn writable(&self) -> Result<(), Vec<Problem>> {
        if self.read_only {
            Err(fail(Problem::new(
                "read-only-connection",
                json!({ "fix": "this connection was opened read-only (`r`): open the store in mode `rw` to write" }),
            )))
        } else {
            Ok(())
        }
    }

    /// A request bound to a transaction must name an open one.
    fn bound(&self, request: &Map<String, Value>) -> Result<(), Vec<Problem>> {
        match request.get("transaction") {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(id)) => self.find(id).map(|_| ()).map_err(fail),
            Some(other) => Err(fail(wrong_type(
                "transaction",
                "a transaction id (a string)",
                other,
            ))),
        }
    }

    // ---- select -------------------------------------------------------------------

    /// The records a select returns, in order. Candidates (pk, class and a pushed-down
    /// equality narrow them in SQL) are examined in result order, and examining stops
    /// once `offset + limit` have matched (decision E14).
    fn matching(&self, query: &Select) -> Result<Vec<Row>, Problem> {
        let classes = match &query.classes {
            None => None,
            Some(names) => {
                if let Some(unknown) = names.iter().find(|c| !self.registry.knows(c)) {
                    return Err(class_not_found(unknown));
                }
                Some(store::with_subclasses(&self.conn, names)?)
            }
        };
        let root = Scope::root();
        let test = |row: &Row| query.block.matches(&row.bucket, &root);
        let mut page = Page::new(query.offset, query.limit);
        if let Some(pk) = &query.pk {
            let row = store::get(&self.conn, pk)?.filter(|row| {
                row.active
                    && classes
                        .as_ref()
                        .is_none_or(|cs| row.classes().iter().any(|c| cs.contains(c)))
            });
            if let Some(row) = row {
                if page.wants() && test(&row)? {
                    page.take(row);
                }
            }
            return Ok(page.rows);
        }
        let equal = query.block.pushable();
        let sql_order = select::sql_sorts(&query.sorts);
        let mut scan = Scan {
            classes: classes.as_deref(),
            equal: equal.as_ref(),
            ..Scan::default()
        };
        if let Some(order) = &sql_order {
            scan.order = order;
            if query.block.only(equal.as_ref()) {
                // SQL decides everything: it pages too.
                scan.page = Some((query.limit, query.offset));
                page = Page::new(0, query.limit);
            }
            if page.wants() {
                store::scan(&self.conn, &scan, |row| {
                    if test(&row)? {
                        page.take(row);
                    }
                    Ok(page.wants())
                })?;
            }
            return Ok(page.rows);
        }
        // Sort keys SQL cannot order by: rank the matches (and the records whose
        // evaluation failed) in Rust, then walk them in order.
        let mut ranked: Vec<(usize, Row, Option<Problem>)> = Vec::new();
        store::scan(&self.conn, &scan, |row| {
            match test(&row) {
                Ok(true) => ranked.push((ranked.len(), row, None)),
                Ok(false) => {}
                Err(e) => ranked.push((ranked.len(), row, Some(e))),
            }
            Ok(true)
        })?;
        let order = |a: &(usize, Row, Option<Problem>), b: &(usize, Row, Option<Problem>)| {
            select::compare(&a.1.bucket, &b.1.bucket, &query.sorts).then(a.0.cmp(&b.0))
        };
        let wanted = query.limit.map(|l| query.offset.saturating_add(l));
        if let Some(wanted) = wanted.filter(|w| *w < ranked.len()) {
            // Only the first `wanted` can be reached: partition, then sort just those.
            ranked.select_nth_unstable_by(wanted, order);
            ranked.truncate(wanted);
        }
        ranked.sort_by(order);
        for (_, row, problem) in ranked {
            if !page.wants() {
                break;
            }
            if let Some(problem) = problem {
                return Err(problem);
            }
            page.take(row);
        }
        Ok(page.rows)
    }

    /// The record with `pk` (`record_not_found` / `record_deleted` otherwise).
    pub fn record_by_pk(&mut self, pk: &str) -> Value {
        match self.live(pk) {
            Ok(row) => success(row.into_json(), &[]),
            Err(e) => failure(&[e], &[]),
        }
    }

    /// Active records of `class` and its subclasses.
    pub fn by_class(&mut self, class: &str) -> Value {
        self.q0(&json!({ "action": "select", "class": class }))
    }

    fn live(&self, pk: &str) -> Result<Row, Problem> {
        match store::get(&self.conn, pk)? {
            None => Err(Problem::new(
                "record_not_found",
                json!({ "pk": pk, "fix": "check the pk: no record, active or deleted, has it" }),
            )),
            Some(row) if !row.active => Err(Problem::new(
                "record_deleted",
                json!({ "pk": pk, "fix": "the record was deleted: create a new one (or delete with if_exists: true)" }),
            )),
            Some(row) => Ok(row),
        }
    }

    // ---- writes -------------------------------------------------------------------

    fn create(
        &mut self,
        request: &Map<String, Value>,
        warnings: &mut Vec<Problem>,
    ) -> Result<Value, Vec<Problem>> {
        let bucket = object(request, "bucket").map_err(fail)?;
        if request.contains_key("class") && request.contains_key("classes") {
            warnings.push(Problem::new(
                "redundant_fields",
                json!({ "fields": ["class", "classes"] }),
            ));
        }
        let stack = stack_for(request).map_err(fail)?;
        let row = Row {
            pk: new_pk(),
            bucket,
            stack,
            updated_at: now(),
            active: true,
        };
        let pk = row.pk.clone();
        self.write(row, None)?;
        Ok(json!({ "pk": pk }))
    }

    fn update(&mut self, request: &Map<String, Value>) -> Result<Value, Vec<Problem>> {
        let pk = text(request, "pk").map_err(fail)?;
        let bucket = match request.get("bucket") {
            None => None,
            Some(_) => Some(object(request, "bucket").map_err(fail)?),
        };
        let class = match request.get("class") {
            None => None,
            Some(Value::String(class)) => Some(class.clone()),
            Some(other) => return Err(fail(wrong_type("class", "a class name", other))),
        };
        if bucket.is_none() && class.is_none() {
            return Err(fail(Problem::invalid(json!({
                "missing_fields": ["bucket"],
                "fix": "an update needs a new `bucket` (it replaces the old one), a new `class`, or both",
            }))));
        }
        let old = self.live(&pk).map_err(fail)?;
        let mut row = old.clone();
        if let Some(bucket) = bucket {
            row.bucket = bucket;
        }
        if let Some(class) = class {
            // The first class platter gets the new class; its other keys stay.
            match row.stack.values_mut().find(|p| p.get("class").is_some()) {
                Some(Value::Object(platter)) => {
                    platter.insert("class".into(), Value::String(class));
                }
                _ => {
                    let key = free_platter_key(&row.stack);
                    row.stack.insert(key, json!({ "class": class }));
                }
            }
        }
        row.updated_at = now();
        self.write(row, Some(&old))?;
        Ok(json!({ "pk": pk }))
    }

    /// Validates and stores a created, updated or imported row.
    fn write(&mut self, mut row: Row, old: Option<&Row>) -> Result<(), Vec<Problem>> {
        let classes = row.classes();
        for class in &classes {
            check_class_name(class).map_err(fail)?;
        }
        let unknown: Vec<Problem> = classes
            .iter()
            .filter(|c| !self.registry.knows(c))
            .map(|c| class_not_found(c))
            .collect();
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let defines_class = classes.iter().any(|c| c == CLASS_CLASS);
        let mut problems = Vec::new();
        if defines_class {
            // The whole-hash form's own `"class": "puck.uno/class"` is not part of the
            // definition.
            if row.bucket.get("class").and_then(Value::as_str) == Some(CLASS_CLASS) {
                row.bucket.shift_remove("class");
            }
            let def = parse_class(&row.bucket).map_err(fail)?;
            let old_name = old.and_then(|o| o.bucket.get("name")).and_then(Value::as_str);
            if self.registry.classes.contains_key(&def.name) && old_name != Some(def.name.as_str()) {
                return Err(fail(duplicate_class(&def.name)));
            }
            for parent in &def.inherits {
                if !self.registry.knows(parent) && parent != &def.name {
                    problems.push(class_not_found(parent));
                }
            }
        } else {
            for class in &classes {
                let fields = self.registry.fields(class);
                if let Err(e) = validate_bucket(&fields, &mut row.bucket) {
                    problems.push(e);
                }
            }
            row.bucket = present(
                std::mem::take(&mut row.bucket),
                &self.registry.field_order(&classes),
            );
        }
        if problems.is_empty() {
            problems.extend(self.unique_violations(&row, &classes).map_err(fail)?);
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        store::put(&self.conn, &row).map_err(fail)?;
        if defines_class || old.is_some_and(|o| o.classes().iter().any(|c| c == CLASS_CLASS)) {
            self.reload_classes().map_err(fail)?;
        }
        Ok(())
    }

    fn unique_violations(&self, row: &Row, classes: &[String]) -> Result<Vec<Problem>, Problem> {
        let mut problems = Vec::new();
        for class in classes {
            for (declared_by, fields) in self.registry.unique_sets(class) {
                let values: Vec<&Value> = match fields
                    .iter()
                    .map(|f| row.bucket.get(f).filter(|v| !v.is_null()))
                    .collect::<Option<Vec<_>>>()
                {
                    Some(values) => values,
                    None => continue, // absent values do not collide
                };
                let members = store::with_subclasses(&self.conn, std::slice::from_ref(&declared_by))?;
                let first = Equal::new(std::slice::from_ref(&fields[0]), values[0]);
                let candidates = store::active(&self.conn, Some(&members), first.as_ref())?;
                let clash = candidates.iter().find(|other| {
                    other.pk != row.pk
                        && fields
                            .iter()
                            .zip(&values)
                            .all(|(f, v)| other.bucket.get(f).is_some_and(|a| select::json_eq(a, v)))
                });
                if let Some(other) = clash {
                    problems.push(Problem::new(
                        "unique-violation",
                        json!({
                            "class": declared_by,
                            "fields": fields,
                            "values": values,
                            "existing_pk": other.pk,
                            "fix": "use values no other active record of the class has (or update the existing record)",
                        }),
                    ));
                }
            }
        }
        Ok(problems)
    }

    fn delete(&mut self, request: &Map<String, Value>) -> Result<Value, Problem> {
        let pk = text(request, "pk")?;
        let if_exists = match request.get("if_exists") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(wrong_type("if_exists", "true or false", other)),
        };
        let row = match self.live(&pk) {
            Ok(row) => row,
            Err(_) if if_exists => return Ok(json!({ "pk": pk, "deleted": false })),
            Err(e) => return Err(e),
        };
        let was_class = row.classes().iter().any(|c| c == CLASS_CLASS);
        let tombstone = Row {
            bucket: Map::new(),
            updated_at: now(),
            active: false,
            ..row
        };
        store::put(&self.conn, &tombstone)?;
        if was_class {
            self.reload_classes()?;
        }
        Ok(json!({ "pk": pk, "deleted": true }))
    }

    // ---- transactions -------------------------------------------------------------

    fn find(&self, id: &str) -> Result<usize, Problem> {
        match self.open.iter().position(|t| t.id == id) {
            Some(i) => Ok(i),
            None if self.expired.iter().any(|(t, _)| t == id) => {
                let details = self.expired.iter().find(|(t, _)| t == id).map(|(_, d)| d.clone());
                Err(Problem::new(
                    "transaction-expired",
                    details.unwrap_or(Value::Null),
                ))
            }
            None if self.invalidated.iter().any(|t| t == id) => Err(Problem::new(
                "transaction-invalidated",
                json!({
                    "transaction": id,
                    "reason": "an enclosing transaction was rolled back",
                    "fix": "its work is gone: begin a new transaction and redo it",
                }),
            )),
            None => Err(Problem::new(
                "transaction-not-found",
                json!({
                    "transaction": id,
                    "open": self.open.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
                    "fix": "use the id an open transaction answered ({\"action\": \"transaction\"} begins one); a committed or rolled back transaction is gone",
                }),
            )),
        }
    }

    fn begin(&mut self, owner: u64, parent: Option<&Value>) -> Result<Value, Problem> {
        match parent {
            None | Some(Value::Null) => {}
            Some(Value::String(parent)) => {
                let at = self.find(parent)?;
                if at + 1 != self.open.len() {
                    return Err(Problem::invalid(json!({
                        "parent": parent,
                        "reason": "a nested transaction opens inside the innermost open one",
                        "innermost": self.open.last().map(|t| t.id.clone()),
                        "fix": "give the innermost open transaction as `parent` (or none)",
                    })));
                }
            }
            Some(other) => return Err(wrong_type("parent", "a transaction id (a string)", other)),
        }
        if self.dry {
            return Ok(json!({}));
        }
        let id = format!("tx{}", self.next_transaction);
        self.next_transaction += 1;
        self.conn.execute_batch(&format!("SAVEPOINT {id}")).map_err(sql)?;
        self.open.push(Open {
            id: id.clone(),
            owner,
        });
        Ok(json!({ "transaction": id }))
    }

    fn end(&mut self, id: &str, commit: bool) -> Result<Value, Problem> {
        let at = self.find(id)?;
        if self.dry {
            return Ok(json!({}));
        }
        let statement = if commit {
            format!("RELEASE SAVEPOINT {id}")
        } else {
            format!("ROLLBACK TO SAVEPOINT {id}; RELEASE SAVEPOINT {id}")
        };
        self.conn.execute_batch(&statement).map_err(sql)?;
        let ended: Vec<Open> = self.open.drain(at..).collect();
        if !commit {
            // Everything nested inside is gone with it.
            self.invalidated
                .extend(ended.iter().skip(1).map(|t| t.id.clone()));
            forget_oldest(&mut self.invalidated);
            self.reload_classes()?;
        }
        Ok(json!({ "transaction": id, "committed": commit }))
    }

    /// Rolls back every open transaction begun by `owner` (its connection went away).
    pub fn release_owner(&mut self, owner: u64) {
        if let Some(first) = self.open.iter().position(|t| t.owner == owner) {
            let id = self.open[first].id.clone();
            let _ = self.end(&id, false);
        }
    }

    /// Rolls back every open transaction begun by `owner` because it held them too long;
    /// later uses of their ids answer `transaction-expired` with `details`.
    pub fn expire_owner(&mut self, owner: u64, details: &Value) {
        let ids: Vec<String> = self
            .open
            .iter()
            .filter(|t| t.owner == owner)
            .map(|t| t.id.clone())
            .collect();
        self.release_owner(owner);
        for id in ids {
            let mut told = details.clone();
            told["transaction"] = Value::String(id.clone());
            self.expired.push((id, told));
        }
        forget_oldest(&mut self.expired);
    }

    /// The owner of the outermost open transaction, if any: while one is open, only its
    /// owner should be served (the others wait).
    pub fn transaction_owner(&self) -> Option<u64> {
        self.open.first().map(|t| t.owner)
    }

    /// How many transactions are open (nested ones included).
    pub fn transaction_depth(&self) -> usize {
        self.open.len()
    }

    // ---- validation -----------------------------------------------------------------

    /// Checks a Q0 request without running it: `{"errors": [...], "warnings": [...]}`.
    /// Writes run inside a savepoint that is rolled back; transaction actions only check.
    pub fn validate(&mut self, request: &Value) -> Value {
        let report = |errors: &[Problem], warnings: &[Problem]| {
            json!({
                "errors": errors.iter().map(Problem::to_json).collect::<Vec<_>>(),
                "warnings": warnings.iter().map(Problem::to_json).collect::<Vec<_>>(),
            })
        };
        if let Err(e) = self.conn.execute_batch("SAVEPOINT validate") {
            return report(&[sql(e)], &[]);
        }
        self.dry = true;
        let mut warnings = Vec::new();
        let errors = self
            .dispatch(u64::MAX, request, &mut warnings)
            .err()
            .unwrap_or_default();
        self.dry = false;
        let undone = self
            .conn
            .execute_batch("ROLLBACK TO SAVEPOINT validate; RELEASE SAVEPOINT validate");
        let reloaded = self.reload_classes();
        let mut errors = errors;
        errors.extend(undone.map_err(sql).err());
        errors.extend(reloaded.err());
        report(&errors, &warnings)
    }

    /// Runs `body` all or nothing (a savepoint), on a writable connection.
    fn atomically(&mut self, body: impl FnOnce(&mut Engine) -> Result<Value, Vec<Problem>>) -> Value {
        if let Err(e) = self.writable() {
            return failure(&e, &[]);
        }
        if let Err(e) = self.conn.execute_batch("SAVEPOINT import") {
            return failure(&[sql(e)], &[]);
        }
        match body(self) {
            Ok(results) => match self.conn.execute_batch("RELEASE SAVEPOINT import") {
                Ok(()) => success(results, &[]),
                Err(e) => failure(&[sql(e)], &[]),
            },
            Err(problems) => {
                let _ = self
                    .conn
                    .execute_batch("ROLLBACK TO SAVEPOINT import; RELEASE SAVEPOINT import");
                let _ = self.reload_classes();
                failure(&problems, &[])
            }
        }
    }
}

/// A select's results `{"count", "records"}` (D2), built by moving the rows.
fn select_result(rows: Vec<Row>) -> Value {
    let mut results = Map::with_capacity(2);
    results.insert("count".into(), Value::from(rows.len()));
    results.insert(
        "records".into(),
        Value::Array(rows.into_iter().map(Row::into_json).collect()),
    );
    Value::Object(results)
}

/// The records of one page: `offset` matches skipped, at most `limit` kept.
struct Page {
    skip: usize,
    room: usize,
    rows: Vec<Row>,
}

impl Page {
    fn new(offset: usize, limit: Option<usize>) -> Page {
        Page {
            skip: offset,
            room: limit.unwrap_or(usize::MAX),
            rows: Vec::new(),
        }
    }

    /// Whether another match would still be skipped or kept.
    fn wants(&self) -> bool {
        self.room > 0
    }

    fn take(&mut self, row: Row) {
        if self.skip > 0 {
            self.skip -= 1;
        } else if self.room > 0 {
            self.room -= 1;
            self.rows.push(row);
        }
    }
}

fn too_deep(what: &str) -> Problem {
    Problem::invalid(json!({
        "reason": format!("{what} nests arrays and objects more than {MAX_DEPTH} levels deep"),
        "max_depth": MAX_DEPTH,
        "fix": "flatten the data",
    }))
}

fn wrong_type(field: &str, expected: &str, value: &Value) -> Problem {
    Problem::invalid(json!({
        "wrong_types": [{"field": field, "expected": expected, "got": got(value)}],
        "fix": format!("give `{field}` as {expected}"),
    }))
}

fn class_not_found(class: &str) -> Problem {
    Problem::new(
        "class-not-found",
        json!({ "class": class, "fix": "create its definition first (a record of class puck.uno/class)" }),
    )
}

fn duplicate_class(name: &str) -> Problem {
    Problem::new(
        "validation-failed",
        json!({
            "reason": "duplicate class name",
            "name": name,
            "fix": "an active definition already has this name: update that one instead",
        }),
    )
}

fn default_stack(class: &str) -> Map<String, Value> {
    let mut stack = Map::new();
    stack.insert("shadow".into(), json!({}));
    stack.insert("a".into(), json!({ "class": class }));
    stack
}

fn class_stack() -> Map<String, Value> {
    default_stack(CLASS_CLASS)
}

/// The stack of a new record: `shadow` first, then the platters given as a hash, then
/// one platter per class name, keyed `a`, `b`, ... (the first keys not taken; decision
/// E3).
fn stack_for(request: &Map<String, Value>) -> Result<Map<String, Value>, Problem> {
    let mut stack = Map::new();
    stack.insert("shadow".into(), json!({}));
    let mut names: Vec<String> = Vec::new();
    match request.get("class") {
        None | Some(Value::Null) => {}
        Some(Value::String(c)) => names.push(c.clone()),
        Some(other) => return Err(wrong_type("class", "a class name or null", other)),
    }
    match request.get("classes") {
        None | Some(Value::Null) => {}
        Some(Value::Array(cs)) if cs.iter().all(Value::is_string) => {
            names.extend(cs.iter().filter_map(Value::as_str).map(str::to_owned))
        }
        Some(Value::Object(platters)) => {
            for (key, platter) in platters {
                if !platter.get("class").is_some_and(Value::is_string) {
                    return Err(Problem::invalid(json!({
                        "classes": key,
                        "got": got(platter),
                        "reason": "a platter is an object with a `class` name (inline class hashes are not supported)",
                        "fix": format!("give the platter as {{\"class\": \"example.org/...\"}}"),
                    })));
                }
                stack.insert(key.clone(), platter.clone());
            }
        }
        Some(other) => {
            return Err(wrong_type(
                "classes",
                "an array of class names, or a hash of platters",
                other,
            ))
        }
    }
    if names.is_empty() && stack.len() == 1 {
        names.push(DEFAULT_CLASS.to_owned());
    }
    for name in names {
        let key = free_platter_key(&stack);
        stack.insert(key, json!({ "class": name }));
    }
    Ok(stack)
}

/// The first platter key `a`, `b`, ..., `z`, `p26`, ... not in the stack.
fn free_platter_key(stack: &Map<String, Value>) -> String {
    (0..)
        .map(|i: usize| match b"abcdefghijklmnopqrstuvwxyz".get(i) {
            Some(letter) => (*letter as char).to_string(),
            None => format!("p{i}"),
        })
        .find(|key| !stack.contains_key(key))
        .unwrap_or_default()
}

/// The keys of `object` that are neither in `allowed` nor pass-through keys, in order.
fn unknown_keys<'a>(object: &'a Map<String, Value>, allowed: &[&str]) -> Vec<&'a String> {
    object
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()) && !PASSTHROUGH.contains(&k.as_str()))
        .collect()
}

/// Checks that `request` has the `required` fields and no field outside `allowed`
/// (plus `action` and the pass-through keys); lists every missing and unknown field.
fn shape(request: &Map<String, Value>, allowed: &[&str], required: &[&str]) -> Result<(), Vec<Problem>> {
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|f| !request.contains_key(*f))
        .collect();
    let unknown: Vec<&String> = unknown_keys(request, allowed)
        .into_iter()
        .filter(|k| k.as_str() != "action")
        .collect();
    if missing.is_empty() && unknown.is_empty() {
        return Ok(());
    }
    let mut details = Map::new();
    if !missing.is_empty() {
        details.insert("missing_fields".into(), json!(missing));
    }
    if !unknown.is_empty() {
        details.insert("unknown_fields".into(), json!(unknown));
        details.insert("allowed_fields".into(), json!(allowed));
    }
    details.insert(
        "fix".into(),
        json!("add the missing fields and remove the unknown ones"),
    );
    Err(fail(Problem::invalid(Value::Object(details))))
}

fn text(request: &Map<String, Value>, field: &str) -> Result<String, Problem> {
    match request.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(wrong_type(field, "a string", other)),
        None => Err(Problem::invalid(
            json!({ "missing_fields": [field], "fix": format!("add `{field}`") }),
        )),
    }
}

fn object(request: &Map<String, Value>, field: &str) -> Result<Map<String, Value>, Problem> {
    match request.get(field) {
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(other) => Err(Problem::invalid(json!({
            "wrong_types": [{"field": field, "expected": "object", "got": got(other)}],
            "fix": "a bucket is always a JSON object, e.g. {\"name\": \"Ripley\"}",
        }))),
        None => Err(Problem::invalid(
            json!({ "missing_fields": [field], "fix": format!("add `{field}`") }),
        )),
    }
}

/// A random UUID v4, lowercase and hyphenated (`5d1e0c2a-...`).
fn new_pk() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Fall back to time-derived bytes rather than failing a write.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = t.to_le_bytes();
    }
    // Sets the version (4) and variant bits.
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS.mmm` (the SQLite schema's format).
fn now() -> String {
    let at = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}
