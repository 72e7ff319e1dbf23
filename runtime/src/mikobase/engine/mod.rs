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

use std::path::PathBuf;

use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Map, Value};

pub use classes::{check_uns, BUILT_IN, CLASS_CLASS, DEFAULT_CLASS};
use classes::{parse_class, validate_bucket, Registry};
pub use problem::Problem;
use problem::{failure, success};
use select::{matches, Scope};
use store::{sql, Row};

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// SQLite `:memory:` (the default): gone when the engine is dropped.
    Memory,
    /// A SQLite file, created when missing.
    File(PathBuf),
}

/// Largest request `q0_bytes` accepts by default.
pub const DEFAULT_REQUEST_LIMIT: usize = 16 * 1024 * 1024;

/// Keys every request may carry and the engine ignores (ecoverse pass-through keys).
const PASSTHROUGH: &[&str] = &["misc", "corporate", "vibecode", "comment"];

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
    next_transaction: u64,
    request_limit: usize,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("read_only", &self.read_only)
            .field("open_transactions", &self.open.len())
            .finish_non_exhaustive()
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
            json!({ "mode": mode, "supported": ["rw", "wr", "r"] }),
        )),
        _ => Err(Problem::new(
            "invalid-mode",
            json!({ "mode": mode, "fix": "use `rw` (or `wr`) for read-write, `r` for read-only, without spaces" }),
        )),
    }
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
            Storage::File(path) => Connection::open(path),
        }
        .map_err(|e| {
            Problem::invalid(json!({ "storage": format!("{storage:?}"), "storage_error": e.to_string() }))
        })?;
        if !read_only {
            store::init(&conn)?;
        }
        let mut engine = Engine {
            conn,
            read_only,
            registry: Registry::default(),
            open: Vec::new(),
            invalidated: Vec::new(),
            next_transaction: 1,
            request_limit: DEFAULT_REQUEST_LIMIT,
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
                    json!({ "limit_bytes": self.request_limit, "got_bytes": request.len() }),
                )],
                &[],
            );
        }
        match serde_json::from_slice::<Value>(request) {
            Ok(value) => self.q0_as(owner, &value),
            Err(e) => failure(
                &[Problem::invalid(
                    json!({ "json": e.to_string(), "line": e.line(), "column": e.column() }),
                )],
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
        let Some(request) = request.as_object() else {
            return Err(vec![Problem::invalid(
                json!({ "reason": "a Q0 request is a JSON object", "got": request }),
            )]);
        };
        let action = match request.get("action") {
            Some(Value::String(a)) => a.as_str(),
            Some(other) => {
                return Err(vec![Problem::invalid(
                    json!({ "wrong_types": [{"field": "action", "expected": "string", "got": other}] }),
                )])
            }
            None => return Err(vec![Problem::invalid(json!({ "missing_fields": ["action"] }))]),
        };
        let one = |r: Result<Value, Problem>| r.map_err(|e| vec![e]);
        match action {
            "select" => {
                shape(
                    request,
                    &[
                        "pk",
                        "class",
                        "classes",
                        "limit",
                        "offset",
                        "sort",
                        "sorts",
                        "path",
                        "then",
                        "all",
                        "any",
                        "placeholders",
                        "not",
                        "transaction",
                    ],
                    &[],
                )?;
                self.bound(request)?;
                one(self.select(request, warnings))
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
                one(self.delete(request))
            }
            "transaction" => {
                shape(request, &["parent"], &[])?;
                one(self.begin(owner, request.get("parent")))
            }
            "commit" | "rollback" => {
                shape(request, &["transaction"], &["transaction"])?;
                let id = text(request, "transaction").map_err(|e| vec![e])?;
                one(self.end(&id, action == "commit"))
            }
            other => Err(vec![Problem::new(
                "action-not-supported",
                json!({
                    "action": other,
                    "supported": ["select", "create", "update", "delete", "transaction", "commit", "rollback"],
                }),
            )]),
        }
    }

    fn writable(&self) -> Result<(), Vec<Problem>> {
        if self.read_only {
            Err(vec![Problem::new(
                "read-only-connection",
                json!({ "fix": "open the store in mode `rw` to write" }),
            )])
        } else {
            Ok(())
        }
    }

    /// A request bound to a transaction must name an open one.
    fn bound(&self, request: &Map<String, Value>) -> Result<(), Vec<Problem>> {
        match request.get("transaction") {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(id)) => self.find(id).map(|_| ()).map_err(|e| vec![e]),
            Some(other) => Err(vec![Problem::invalid(
                json!({ "wrong_types": [{"field": "transaction", "expected": "string", "got": other}] }),
            )]),
        }
    }

    // ---- select -------------------------------------------------------------------

    fn select(
        &mut self,
        request: &Map<String, Value>,
        warnings: &mut Vec<Problem>,
    ) -> Result<Value, Problem> {
        let rows = self.matching(request, warnings)?;
        let count = rows.len();
        Ok(json!({ "count": count, "records": rows.into_iter().map(Row::into_json).collect::<Vec<_>>() }))
    }

    fn matching(
        &mut self,
        request: &Map<String, Value>,
        warnings: &mut Vec<Problem>,
    ) -> Result<Vec<Row>, Problem> {
        let mut class_names: Vec<String> = Vec::new();
        for field in ["class", "classes"] {
            match request.get(field) {
                None | Some(Value::Null) => {}
                Some(Value::String(c)) => class_names.push(c.clone()),
                Some(Value::Array(cs)) if cs.iter().all(Value::is_string) => {
                    class_names.extend(cs.iter().filter_map(Value::as_str).map(str::to_owned))
                }
                Some(other) => {
                    return Err(Problem::invalid(
                        json!({ "wrong_types": [{"field": field, "expected": "class name or array of class names", "got": other}] }),
                    ))
                }
            }
        }
        if request.contains_key("class") && request.contains_key("classes") {
            warnings.push(Problem::new(
                "redundant_fields",
                json!({ "fields": ["class", "classes"] }),
            ));
        }
        if request.contains_key("sort") && request.contains_key("sorts") {
            warnings.push(Problem::new(
                "redundant_fields",
                json!({ "fields": ["sort", "sorts"] }),
            ));
        }
        let limit = count(request, "limit")?;
        let offset = count(request, "offset")?.unwrap_or(0);
        let mut sorts = Vec::new();
        if let Some(sort) = request.get("sort") {
            sorts.push(select::sort_key(sort)?);
        }
        if let Some(more) = request.get("sorts") {
            let more = more.as_array().ok_or_else(|| {
                Problem::invalid(
                    json!({ "wrong_types": [{"field": "sorts", "expected": "array of sort paths"}] }),
                )
            })?;
            for sort in more {
                sorts.push(select::sort_key(sort)?);
            }
        }
        for class in &class_names {
            if !self.registry.knows(class) {
                return Err(class_not_found(class));
            }
        }
        let classes = if class_names.is_empty() {
            None
        } else {
            Some(store::with_subclasses(&self.conn, &class_names)?)
        };
        let mut rows = match request.get("pk") {
            None | Some(Value::Null) => {
                // Push a literal equality on plain keys down into SQL.
                let pushed =
                    request
                        .get("path")
                        .and_then(Value::as_array)
                        .and_then(|p| match p.split_last() {
                            Some((last, keys))
                                if !last.is_object() && !last.is_array() && !last.is_null() =>
                            {
                                select::sql_path(keys).map(|path| (path, last.clone()))
                            }
                            _ => None,
                        });
                store::active(
                    &self.conn,
                    classes.as_deref(),
                    pushed.as_ref().map(|(p, v)| (p.as_str(), v)),
                )?
            }
            Some(Value::String(pk)) => store::get(&self.conn, pk)?
                .filter(|row| row.active)
                .filter(|row| {
                    classes
                        .as_ref()
                        .is_none_or(|cs| row.classes().iter().any(|c| cs.contains(c)))
                })
                .into_iter()
                .collect(),
            Some(other) => {
                return Err(Problem::invalid(
                    json!({ "wrong_types": [{"field": "pk", "expected": "string", "got": other}] }),
                ))
            }
        };
        let root = Scope::root();
        let mut kept = Vec::with_capacity(rows.len());
        for row in rows.drain(..) {
            if matches(request, &row.bucket, &root)? {
                kept.push(row);
            }
        }
        if !sorts.is_empty() {
            // Ties keep insertion order: compare by (sort keys, position).
            let mut ranked: Vec<(usize, Row)> = kept.into_iter().enumerate().collect();
            let order = |a: &(usize, Row), b: &(usize, Row)| {
                select::compare(&a.1.bucket, &b.1.bucket, &sorts).then(a.0.cmp(&b.0))
            };
            let wanted = limit.map(|l| offset.saturating_add(l));
            if let Some(wanted) = wanted.filter(|w| *w < ranked.len()) {
                // Only the first `wanted` matter: partition, then sort just those.
                ranked.select_nth_unstable_by(wanted, order);
                ranked.truncate(wanted);
            }
            ranked.sort_by(order);
            kept = ranked.into_iter().map(|(_, row)| row).collect();
        }
        Ok(kept
            .into_iter()
            .skip(offset)
            .take(limit.unwrap_or(usize::MAX))
            .collect())
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
            None => Err(Problem::new("record_not_found", json!({ "pk": pk }))),
            Some(row) if !row.active => Err(Problem::new("record_deleted", json!({ "pk": pk }))),
            Some(row) => Ok(row),
        }
    }

    // ---- writes -------------------------------------------------------------------

    fn create(
        &mut self,
        request: &Map<String, Value>,
        warnings: &mut Vec<Problem>,
    ) -> Result<Value, Vec<Problem>> {
        let bucket = object(request, "bucket").map_err(|e| vec![e])?;
        if request.contains_key("class") && request.contains_key("classes") {
            warnings.push(Problem::new(
                "redundant_fields",
                json!({ "fields": ["class", "classes"] }),
            ));
        }
        let stack = stack_for(request).map_err(|e| vec![e])?;
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
        let pk = text(request, "pk").map_err(|e| vec![e])?;
        if !request.contains_key("bucket") && !request.contains_key("class") {
            return Err(vec![Problem::invalid(json!({
                "missing_fields": ["bucket"],
                "reason": "an update needs a new `bucket` (it replaces the old one), a new `class`, or both",
            }))]);
        }
        let old = self.live(&pk).map_err(|e| vec![e])?;
        let mut row = old.clone();
        if request.contains_key("bucket") {
            row.bucket = object(request, "bucket").map_err(|e| vec![e])?;
        }
        if let Some(class) = request.get("class") {
            let class = class.as_str().ok_or_else(|| {
                vec![Problem::invalid(
                    json!({ "wrong_types": [{"field": "class", "expected": "class name"}] }),
                )]
            })?;
            check_class_name(class).map_err(|e| vec![e])?;
            let platter = row
                .stack
                .iter()
                .find(|(_, p)| p.get("class").is_some())
                .map(|(k, _)| k.clone())
                .unwrap_or_else(|| "a".to_owned());
            row.stack.insert(platter, json!({ "class": class }));
        }
        row.updated_at = now();
        self.write(row, Some(&old))?;
        Ok(json!({ "pk": pk }))
    }

    /// Validates and stores a created or updated row.
    fn write(&mut self, mut row: Row, old: Option<&Row>) -> Result<(), Vec<Problem>> {
        let classes = row.classes();
        let mut problems = Vec::new();
        for class in &classes {
            if !self.registry.knows(class) {
                problems.push(class_not_found(class));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let defines_class = classes.iter().any(|c| c == CLASS_CLASS);
        if defines_class {
            let def = parse_class(&row.bucket).map_err(|e| vec![e])?;
            let renamed_from = old.and_then(|o| o.bucket.get("name")).and_then(Value::as_str);
            if self.registry.classes.contains_key(&def.name) && renamed_from != Some(def.name.as_str()) {
                return Err(vec![Problem::new(
                    "validation-failed",
                    json!({ "reason": "duplicate class name", "name": def.name, "fix": "update the existing definition instead" }),
                )]);
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
        }
        if problems.is_empty() {
            problems.extend(self.unique_violations(&row, &classes)?);
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        store::put(&self.conn, &row).map_err(|e| vec![e])?;
        if defines_class || old.is_some_and(|o| o.classes().iter().any(|c| c == CLASS_CLASS)) {
            self.reload_classes().map_err(|e| vec![e])?;
        }
        Ok(())
    }

    fn unique_violations(&self, row: &Row, classes: &[String]) -> Result<Vec<Problem>, Vec<Problem>> {
        let mut problems = Vec::new();
        for class in classes {
            for (declared_by, fields) in self.registry.unique_sets(class) {
                let values: Vec<Option<&Value>> = fields.iter().map(|f| row.bucket.get(f)).collect();
                if values.iter().any(|v| v.is_none_or(Value::is_null)) {
                    continue; // absent values do not collide
                }
                let members = store::with_subclasses(&self.conn, std::slice::from_ref(&declared_by))
                    .map_err(|e| vec![e])?;
                let first = select::sql_path(&[Value::String(fields[0].clone())]);
                let candidates = store::active(&self.conn, Some(&members), first.as_deref().zip(values[0]))
                    .map_err(|e| vec![e])?;
                let clash = candidates.iter().find(|other| {
                    other.pk != row.pk
                        && fields.iter().zip(&values).all(|(f, v)| {
                            other
                                .bucket
                                .get(f)
                                .zip(*v)
                                .is_some_and(|(a, b)| select::json_eq(a, b))
                        })
                });
                if let Some(other) = clash {
                    problems.push(Problem::new(
                        "unique-violation",
                        json!({ "class": declared_by, "fields": fields, "values": values, "existing_pk": other.pk }),
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
            Some(other) => {
                return Err(Problem::invalid(
                    json!({ "wrong_types": [{"field": "if_exists", "expected": "boolean", "got": other}] }),
                ))
            }
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
            None if self.invalidated.iter().any(|t| t == id) => Err(Problem::new(
                "transaction-invalidated",
                json!({ "transaction": id, "reason": "an enclosing transaction was rolled back" }),
            )),
            None => Err(Problem::new(
                "transaction-not-found",
                json!({ "transaction": id }),
            )),
        }
    }

    fn begin(&mut self, owner: u64, parent: Option<&Value>) -> Result<Value, Problem> {
        if let Some(parent) = parent.filter(|p| !p.is_null()) {
            let parent = parent.as_str().ok_or_else(|| {
                Problem::invalid(
                    json!({ "wrong_types": [{"field": "parent", "expected": "transaction id"}] }),
                )
            })?;
            let at = self.find(parent)?;
            if at + 1 != self.open.len() {
                return Err(Problem::invalid(json!({
                    "parent": parent,
                    "reason": "a nested transaction opens inside the innermost open one",
                    "innermost": self.open.last().map(|t| t.id.clone()),
                })));
            }
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

    /// The owner of the outermost open transaction, if any: while one is open, only its
    /// owner should be served (the others wait).
    pub fn transaction_owner(&self) -> Option<u64> {
        self.open.first().map(|t| t.owner)
    }

    /// How many transactions are open (nested ones included).
    pub fn transaction_depth(&self) -> usize {
        self.open.len()
    }

    // ---- validation, schema, worldlets -----------------------------------------------

    /// Checks a Q0 request without running it: `{"errors": [...], "warnings": [...]}`.
    pub fn validate(&mut self, request: &Value) -> Value {
        self.conn.execute_batch("SAVEPOINT validate").ok();
        let mut warnings = Vec::new();
        let errors = match self.dispatch(u64::MAX, request, &mut warnings) {
            Ok(_) => Vec::new(),
            Err(errors) => errors,
        };
        self.conn
            .execute_batch("ROLLBACK TO SAVEPOINT validate; RELEASE SAVEPOINT validate")
            .ok();
        self.open.retain(|t| t.owner != u64::MAX);
        let _ = self.reload_classes();
        json!({
            "errors": errors.iter().map(Problem::to_json).collect::<Vec<_>>(),
            "warnings": warnings.iter().map(Problem::to_json).collect::<Vec<_>>(),
        })
    }

    /// Every active class definition: `{"classes": [definition, ...]}`.
    pub fn export_schema(&mut self) -> Value {
        match store::active(&self.conn, Some(&[CLASS_CLASS.to_owned()]), None) {
            Ok(rows) => success(
                json!({ "classes": rows.into_iter().map(|r| Value::Object(r.bucket)).collect::<Vec<_>>() }),
                &[],
            ),
            Err(e) => failure(&[e], &[]),
        }
    }

    /// Creates or replaces (by name) every class definition of `schema`
    /// (`{"classes": [...]}`), all or nothing.
    pub fn import_schema(&mut self, schema: &Value) -> Value {
        let Some(classes) = schema.get("classes").and_then(Value::as_array) else {
            return failure(
                &[Problem::invalid(
                    json!({ "reason": "a schema is {\"classes\": [definition, ...]}" }),
                )],
                &[],
            );
        };
        let classes = classes.clone();
        self.atomically(|engine| {
            let mut imported = 0;
            for def in &classes {
                let Some(bucket) = def.as_object() else {
                    return Err(vec![Problem::invalid(
                        json!({ "reason": "a class definition is an object", "got": def }),
                    )]);
                };
                let name = bucket
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let existing = store::active(&engine.conn, Some(&[CLASS_CLASS.to_owned()]), None)
                    .map_err(|e| vec![e])?
                    .into_iter()
                    .find(|r| r.bucket.get("name").and_then(Value::as_str) == Some(name.as_str()));
                let row = Row {
                    pk: existing.as_ref().map_or_else(new_pk, |r| r.pk.clone()),
                    bucket: bucket.clone(),
                    stack: class_stack(),
                    updated_at: now(),
                    active: true,
                };
                engine.write(row, existing.as_ref())?;
                imported += 1;
            }
            Ok(json!({ "imported": imported }))
        })
    }

    /// The whole store as a worldlet: `{"format": "worldlet/1.0", "records": {pk: ...}}`.
    /// Class definitions are in whole-hash form (`{"class": "puck.uno/class", "name", ...}`).
    pub fn export_worldlet(&mut self) -> Value {
        match store::all(&self.conn) {
            Ok(rows) => {
                let records: Map<String, Value> = rows
                    .into_iter()
                    .filter(|r| r.active)
                    .map(|r| {
                        let value = if r.classes().iter().any(|c| c == CLASS_CLASS) {
                            let mut whole = Map::new();
                            whole.insert("class".into(), json!(CLASS_CLASS));
                            whole.extend(r.bucket);
                            Value::Object(whole)
                        } else {
                            json!({ "bucket": r.bucket, "stack": r.stack, "updated_at": r.updated_at })
                        };
                        (r.pk, value)
                    })
                    .collect();
                json!({ "format": "worldlet/1.0", "records": records })
            }
            Err(e) => failure(&[e], &[]),
        }
    }

    /// Imports a worldlet atomically: every record is validated (class definitions
    /// first), an existing pk is overwritten, and on any problem nothing is written.
    pub fn import_worldlet(&mut self, worldlet: &Value) -> Value {
        if let Err(e) = self.writable() {
            return failure(&e, &[]);
        }
        let format = worldlet.get("format").and_then(Value::as_str).unwrap_or_default();
        if !format.starts_with("worldlet/1.") {
            return failure(
                &[Problem::invalid(
                    json!({ "format": format, "fix": "a worldlet has \"format\": \"worldlet/1.0\"" }),
                )],
                &[],
            );
        }
        let records = match worldlet.get("records") {
            None => Map::new(),
            Some(Value::Object(records)) => records.clone(),
            Some(other) => {
                return failure(
                    &[Problem::invalid(
                        json!({ "records": "must be an object keyed by pk", "got": other }),
                    )],
                    &[],
                )
            }
        };
        self.atomically(|engine| {
            let mut problems = Vec::new();
            let mut rows = Vec::new();
            for (pk, record) in &records {
                match import_row(pk, record) {
                    Ok(row) => rows.push(row),
                    Err(e) => problems.push(e),
                }
            }
            if !problems.is_empty() {
                return Err(problems);
            }
            // Class definitions first, so records can be validated against them.
            rows.sort_by_key(|r| !r.classes().iter().any(|c| c == CLASS_CLASS));
            for row in &rows {
                if row.classes().iter().any(|c| c == CLASS_CLASS) {
                    if let Err(e) = parse_class(&row.bucket) {
                        problems.push(with_pk(e, &row.pk));
                    } else {
                        store::put(&engine.conn, row).map_err(|e| vec![e])?;
                    }
                }
            }
            engine.reload_classes().map_err(|e| vec![e])?;
            for row in rows
                .into_iter()
                .filter(|r| !r.classes().iter().any(|c| c == CLASS_CLASS))
            {
                let pk = row.pk.clone();
                let old = store::get(&engine.conn, &pk).map_err(|e| vec![e])?;
                if let Err(errors) = engine.write(row, old.as_ref()) {
                    problems.extend(errors.into_iter().map(|e| with_pk(e, &pk)));
                }
            }
            if problems.is_empty() {
                Ok(json!({ "imported": records.len() }))
            } else {
                Err(problems)
            }
        })
    }

    fn atomically(&mut self, body: impl FnOnce(&mut Engine) -> Result<Value, Vec<Problem>>) -> Value {
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

fn with_pk(mut problem: Problem, pk: &str) -> Problem {
    if let Value::Object(details) = &mut problem.details {
        details.insert("record".into(), json!(pk));
    }
    problem
}

fn import_row(pk: &str, record: &Value) -> Result<Row, Problem> {
    let bad = |why: &str| Problem::invalid(json!({ "record": pk, "reason": why }));
    let record = record.as_object().ok_or_else(|| bad("a record is an object"))?;
    if record.get("class").and_then(Value::as_str) == Some(CLASS_CLASS) {
        let mut bucket = record.clone();
        bucket.remove("class");
        bucket.remove("updated_at");
        return Ok(Row {
            pk: pk.to_owned(),
            bucket,
            stack: class_stack(),
            updated_at: record
                .get("updated_at")
                .and_then(Value::as_str)
                .map_or_else(now, str::to_owned),
            active: true,
        });
    }
    let bucket = match record.get("bucket") {
        None => Map::new(),
        Some(Value::Object(b)) => b.clone(),
        Some(_) => return Err(bad("`bucket` must be an object")),
    };
    let stack = match record.get("stack") {
        None => default_stack(DEFAULT_CLASS),
        Some(Value::Object(s)) => s.clone(),
        Some(_) => return Err(bad("`stack` must be an object of platters")),
    };
    Ok(Row {
        pk: pk.to_owned(),
        bucket,
        stack,
        updated_at: record
            .get("updated_at")
            .and_then(Value::as_str)
            .map_or_else(now, str::to_owned),
        active: true,
    })
}

fn class_not_found(class: &str) -> Problem {
    Problem::new(
        "class-not-found",
        json!({ "class": class, "fix": "create its definition first (a record of class puck.uno/class)" }),
    )
}

fn check_class_name(class: &str) -> Result<(), Problem> {
    check_uns(class).map_err(|why| {
        Problem::invalid(json!({ "class": class, "reason": format!("not a valid UNS class name: it {why}") }))
    })
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

/// The stack of a new record: `shadow` first, then one platter per class, keyed `a`,
/// `b`, ... (decision E3), or the platters given as a hash.
fn stack_for(request: &Map<String, Value>) -> Result<Map<String, Value>, Problem> {
    let mut stack = Map::new();
    stack.insert("shadow".into(), json!({}));
    let mut names: Vec<String> = Vec::new();
    match request.get("class") {
        None | Some(Value::Null) => {}
        Some(Value::String(c)) => names.push(c.clone()),
        Some(other) => {
            return Err(Problem::invalid(
                json!({ "wrong_types": [{"field": "class", "expected": "class name or null", "got": other}] }),
            ))
        }
    }
    match request.get("classes") {
        None | Some(Value::Null) => {}
        Some(Value::Array(cs)) if cs.iter().all(Value::is_string) => {
            names.extend(cs.iter().filter_map(Value::as_str).map(str::to_owned))
        }
        Some(Value::Object(platters)) => {
            for (key, platter) in platters {
                let class = platter.get("class").and_then(Value::as_str).ok_or_else(|| {
                    Problem::invalid(json!({ "classes": key, "reason": "each platter needs a `class`" }))
                })?;
                check_class_name(class)?;
                stack.insert(key.clone(), platter.clone());
            }
        }
        Some(other) => {
            return Err(Problem::invalid(
                json!({ "wrong_types": [{"field": "classes", "expected": "array of class names, or a hash of platters", "got": other}] }),
            ))
        }
    }
    if names.is_empty() && stack.len() == 1 {
        names.push(DEFAULT_CLASS.to_owned());
    }
    for (i, name) in names.iter().enumerate() {
        check_class_name(name)?;
        let key = platter_key(i);
        stack.insert(key, json!({ "class": name }));
    }
    Ok(stack)
}

fn platter_key(i: usize) -> String {
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    if i < letters.len() {
        (letters[i] as char).to_string()
    } else {
        format!("p{i}")
    }
}

/// Checks that `request` has the `required` fields and no field outside `allowed`
/// (plus `action` and the pass-through keys); lists every missing and unknown field.
fn shape(request: &Map<String, Value>, allowed: &[&str], required: &[&str]) -> Result<(), Vec<Problem>> {
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|f| !request.contains_key(*f))
        .collect();
    let unknown: Vec<&String> = request
        .keys()
        .filter(|k| {
            k.as_str() != "action" && !allowed.contains(&k.as_str()) && !PASSTHROUGH.contains(&k.as_str())
        })
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
    Err(vec![Problem::invalid(Value::Object(details))])
}

fn text(request: &Map<String, Value>, field: &str) -> Result<String, Problem> {
    match request.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(Problem::invalid(
            json!({ "wrong_types": [{"field": field, "expected": "string", "got": other}] }),
        )),
        None => Err(Problem::invalid(json!({ "missing_fields": [field] }))),
    }
}

fn object(request: &Map<String, Value>, field: &str) -> Result<Map<String, Value>, Problem> {
    match request.get(field) {
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(other) => Err(Problem::invalid(json!({
            "wrong_types": [{"field": field, "expected": "object", "got": other}],
            "reason": "a bucket is always a JSON object",
        }))),
        None => Err(Problem::invalid(json!({ "missing_fields": [field] }))),
    }
}

fn count(request: &Map<String, Value>, field: &str) -> Result<Option<usize>, Problem> {
    match request.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(|n| Some(n as usize)).ok_or_else(|| {
            Problem::invalid(
                json!({ "wrong_types": [{"field": field, "expected": "non-negative integer", "got": v}] }),
            )
        }),
    }
}

/// A random UUID v4.
fn new_pk() -> String {
    let mut b = [0u8; 16];
    if getrandom::getrandom(&mut b).is_err() {
        // Fall back to time-derived bytes rather than failing a write.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b = t.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS.mmm` (the SQLite schema's format).
fn now() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}
