//! The PostgreSQL store: the records table (one row per record, tombstones kept, `seq`
//! for insertion order), the uniques table that makes the database itself refuse a
//! second holder of a unique key, and `meta.schema_version`, bumped by every write of a
//! class definition so other servers sharing the database reload their classes.
//!
//! A row keeps its bucket and stack twice: as the exact JSON text the engine wrote
//! (`bucket_text`, `stack_text`: what a read answers, keys in presentation order, E6)
//! and as `jsonb` for queries (`bucket`, `stack`), every string and key in the injective
//! [`query_form`] (PostgreSQL's `jsonb` holds no NUL character). Class filters and the
//! literal equality the engine pushes down run in SQL over the `jsonb`; sorts and
//! everything else are decided in Rust. Transactions are
//! `REPEATABLE READ`; nested ones are savepoints (decision D-P3).
//!
//! The `postgres` crate's blocking client runs its own small runtime, which cannot start
//! on a thread already inside a tokio runtime: there each call runs on a scoped thread.

use std::cell::{Cell, RefCell};

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, NoTls};
use serde_json::{json, Map, Number, Value};

use super::super::classes::CLASS_CLASS;
use super::super::problem::{error, Problem};
use super::super::writes::{duplicate_class, unique_violation};
use super::{Equal, Row, Scalar, Scan, UniqueKey};
use crate::mikobase::generated::ErrorId;

/// The schema, created in one transaction under an advisory lock, so servers connecting
/// at once to an empty database do not race.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    pk          TEXT PRIMARY KEY,
    bucket      JSONB NOT NULL CHECK (jsonb_typeof(bucket) = 'object'),
    stack       JSONB NOT NULL CHECK (jsonb_typeof(stack) = 'object'),
    updated_at  TEXT NOT NULL,
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    bucket_text TEXT NOT NULL,
    stack_text  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS uniques (
    class  TEXT NOT NULL,
    fields TEXT NOT NULL,
    vals   TEXT NOT NULL,
    pk     TEXT NOT NULL REFERENCES records(pk),
    UNIQUE (class, fields, vals)
);
CREATE INDEX IF NOT EXISTS uniques_by_pk ON uniques(pk);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('schema_version', 0) ON CONFLICT (key) DO NOTHING;
";

/// The advisory lock key the schema creation holds ("mikobase" in ASCII).
const SCHEMA_LOCK: i64 = 0x6d69_6b6f_6261_7365;

const COLUMNS: &str = "pk, bucket_text, stack_text, updated_at, active";

/// A PostgreSQL connection with the engine's transaction depth.
pub(crate) struct Pg {
    /// The client (`None` only while [`Pg`] drops).
    client: RefCell<Option<Client>>,
    /// Open savepoints, outermost first (empty: none, so the next opens a transaction;
    /// the first is that transaction).
    open: RefCell<Vec<String>>,
    /// The `schema_version` this connection's classes were loaded at.
    seen_version: Cell<i64>,
}

/// A failure of the database as the engine's problem; a serialization failure or a
/// deadlock says it may be run again (`retryable`).
fn pg(e: &postgres::Error) -> Problem {
    let (message, code) = match e.as_db_error() {
        Some(db) => (db.message().to_owned(), Some(db.code().code().to_owned())),
        None => (e.to_string(), e.code().map(|c| c.code().to_owned())),
    };
    let retryable = matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    );
    let mut details = json!({
        "storage": "postgres",
        "storage_error": message,
        "sqlstate": code,
        "fix": "PostgreSQL refused the operation: check the connection, the database and its permissions",
    });
    if retryable {
        details["retryable"] = json!(true);
        details["fix"] = json!("another connection wrote the same records at the same time: roll back the transaction and run it again");
    }
    error(ErrorId::StorageFailed, details)
}

fn row(r: &postgres::Row) -> Result<Row, postgres::Error> {
    let bucket: String = r.try_get(1)?;
    let stack: String = r.try_get(2)?;
    Ok(Row {
        pk: r.try_get(0)?,
        bucket: serde_json::from_str::<Map<String, Value>>(&bucket).unwrap_or_default(),
        stack: serde_json::from_str(&stack).unwrap_or_default(),
        updated_at: r.try_get(3)?,
        active: r.try_get(4)?,
    })
}

/// A string in the query form: `\u{1}` escapes, `\u{0}` becomes `\u{1}\u{1}` and
/// `\u{1}` becomes `\u{1}\u{2}` (injective, so equality is kept, and NUL-free).
fn escape(s: &str) -> String {
    if !s.contains(['\0', '\u{1}']) {
        return s.to_owned();
    }
    s.replace('\u{1}', "\u{1}\u{2}").replace('\0', "\u{1}\u{1}")
}

/// The inverse of [`escape`].
fn unescape(s: &str) -> String {
    if !s.contains('\u{1}') {
        return s.to_owned();
    }
    s.replace("\u{1}\u{1}", "\0").replace("\u{1}\u{2}", "\u{1}")
}

/// A value with every string and key [`escape`]d: what the `jsonb` columns hold.
fn query_form(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(escape(s)),
        Value::Array(items) => Value::Array(items.iter().map(query_form).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (escape(k), query_form(v))).collect()),
        other => other.clone(),
    }
}

/// Whether SQL decides `equal` exactly as Rust does: strings and booleans always;
/// integers below 2^53 in magnitude (a stored float equal to such an integer is written
/// with exactly its digits, so `numeric` equality is the f64 equality Rust uses; beyond,
/// a float's shortest digits are not its exact value).
pub(crate) fn pushes(equal: &Equal) -> bool {
    const TWO_53: u64 = 1 << 53;
    match equal.value {
        Scalar::Int(i) => i.unsigned_abs() < TWO_53,
        Scalar::Text(_) | Scalar::Bool(_) => true,
    }
}

/// A value in canonical JSON: equal by [`super::super::values::json_eq`] exactly when
/// the texts are equal (object keys sorted, numbers as SQLite reads them: an integer in
/// i64, else the f64, an integral f64 in range written as the integer).
pub(crate) fn canonical(value: &Value) -> String {
    fn norm(value: &Value) -> Value {
        match value {
            Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Number(i.into()),
                None => {
                    let f = n.as_f64().unwrap_or(0.0);
                    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
                    if f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f) {
                        Value::Number((f as i64).into())
                    } else {
                        Number::from_f64(f).map_or(Value::Null, Value::Number)
                    }
                }
            },
            Value::Array(items) => Value::Array(items.iter().map(norm).collect()),
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), norm(&map[k]))).collect())
            }
            other => other.clone(),
        }
    }
    norm(value).to_string()
}

impl Pg {
    /// Connects (filling what `config` leaves out from the libpq environment and the
    /// password file) and creates the schema in an empty database.
    pub fn connect(config: &str, read_only: bool) -> Result<Pg, Problem> {
        let failed = |reason: String| {
            error(
                ErrorId::StorageFailed,
                json!({
                    "storage": "postgres",
                    "storage_error": reason,
                    "fix": "check the URL or conninfo (no password in it: use PGPASSWORD or the password file, PGPASSFILE or ~/.pgpass), and that the server runs",
                }),
            )
        };
        let config = super::pgconfig::resolve(config).map_err(failed)?;
        let client = on_own_thread(move || config.connect(NoTls))
            .map_err(failed)?
            .map_err(|e| failed(describe(&e)))?;
        let pg = Pg {
            client: RefCell::new(Some(client)),
            open: RefCell::new(Vec::new()),
            seen_version: Cell::new(i64::MIN),
        };
        if read_only {
            pg.run(|c| c.batch_execute("SET default_transaction_read_only = on"))?;
        } else {
            pg.run(|c| {
                let mut tx = c.transaction()?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
                tx.batch_execute(SCHEMA)?;
                tx.commit()
            })?;
        }
        // The version first, then (in `Engine::open`) the classes: a change in between
        // is seen by the next look.
        let looked = pg.classes_changed();
        if !read_only {
            looked?;
        }
        Ok(pg)
    }

    /// Runs `f` on the client, on a scoped thread when this one is inside a tokio runtime.
    fn run<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, Problem> {
        self.run_raw(f)?.map_err(|e| pg(&e))
    }

    /// [`Pg::run`] with the database's error as it is (to read its SQLSTATE).
    fn run_raw<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error> + Send,
    ) -> Result<Result<T, postgres::Error>, Problem> {
        let mut client = self.client.borrow_mut();
        let Some(client) = client.as_mut() else {
            return Err(error(
                ErrorId::StorageFailed,
                json!({ "storage": "postgres", "storage_error": "the connection is closed", "fix": "open the store again" }),
            ));
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            on_own_thread(move || f(client)).map_err(|reason| {
                error(
                    ErrorId::StorageFailed,
                    json!({ "storage": "postgres", "storage_error": reason, "fix": "report this" }),
                )
            })
        } else {
            Ok(f(client))
        }
    }

    pub fn depth(&self) -> usize {
        self.open.borrow().len()
    }

    pub fn get(&self, pk: &str) -> Result<Option<Row>, Problem> {
        let query = format!("SELECT {COLUMNS} FROM records WHERE pk = $1");
        self.run(|c| c.query_opt(&query, &[&pk])?.as_ref().map(row).transpose())
    }

    pub fn scan(
        &self,
        what: &Scan<'_>,
        mut visit: impl FnMut(Row) -> Result<bool, Problem>,
    ) -> Result<(), Problem> {
        let mut query = format!("SELECT {COLUMNS} FROM records r WHERE r.active");
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut arg = |value: Box<dyn ToSql + Sync + Send>| {
            args.push(value);
            args.len()
        };
        if let Some(classes) = what.classes {
            let n = arg(Box::new(classes.iter().map(|c| escape(c)).collect::<Vec<_>>()));
            query.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM jsonb_each(r.stack) p WHERE p.value->>'class' = ANY(${n}::text[]))"
            ));
        }
        if let Some(equal) = what.equal {
            let p = arg(Box::new(equal.keys.iter().map(|k| escape(k)).collect::<Vec<_>>()));
            // Every key but the last descends an object, as Rust's walk does (`#>` would
            // also index an array).
            for i in 1..equal.keys.len() {
                query.push_str(&format!(
                    " AND jsonb_typeof(r.bucket #> (${p}::text[])[1:{i}]) = 'object'"
                ));
            }
            let at = format!("r.bucket #> ${p}::text[]");
            match &equal.value {
                Scalar::Text(s) => {
                    let v = arg(Box::new(escape(s)));
                    query.push_str(&format!(
                        " AND jsonb_typeof({at}) = 'string' AND (r.bucket #>> ${p}::text[]) = ${v}::text"
                    ));
                }
                Scalar::Bool(b) => {
                    let v = arg(Box::new(if *b { "true" } else { "false" }.to_owned()));
                    query.push_str(&format!(
                        " AND jsonb_typeof({at}) = 'boolean' AND (r.bucket #>> ${p}::text[]) = ${v}::text"
                    ));
                }
                Scalar::Int(i) => {
                    let v = arg(Box::new(*i));
                    query.push_str(&format!(
                        " AND jsonb_typeof({at}) = 'number' AND ({at})::numeric = (${v}::int8)::numeric"
                    ));
                }
            }
        }
        // Sort keys never reach here (`sorts_in_sql` is false): insertion order.
        query.push_str(" ORDER BY r.seq");
        if let Some((limit, offset)) = what.page {
            let to_sql = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
            if let Some(limit) = limit {
                let l = arg(Box::new(to_sql(limit)));
                query.push_str(&format!(" LIMIT ${l}::int8"));
            }
            let o = arg(Box::new(to_sql(offset)));
            query.push_str(&format!(" OFFSET ${o}::int8"));
        }
        let rows = self.run(|c| {
            let params: Vec<&(dyn ToSql + Sync)> =
                args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
            c.query(&query, &params)?
                .iter()
                .map(row)
                .collect::<Result<Vec<_>, _>>()
        })?;
        for r in rows {
            if !visit(r)? {
                break;
            }
        }
        Ok(())
    }

    pub fn with_subclasses(&self, roots: &[String]) -> Result<Vec<String>, Problem> {
        let query = "
            WITH RECURSIVE sub(name) AS (
                SELECT unnest($1::text[])
                UNION
                SELECT r.bucket->>'name'
                FROM records r
                JOIN sub ON (CASE jsonb_typeof(r.bucket->'inherits')
                                 WHEN 'array' THEN r.bucket->'inherits'
                                 WHEN 'string' THEN jsonb_build_array(r.bucket->'inherits')
                                 ELSE '[]'::jsonb END) ? sub.name
                WHERE r.active
                  AND EXISTS (SELECT 1 FROM jsonb_each(r.stack) p WHERE p.value->>'class' = 'puck.uno/class')
            )
            SELECT name FROM sub WHERE name IS NOT NULL";
        let roots: Vec<String> = roots.iter().map(|r| escape(r)).collect();
        self.run(|c| {
            Ok(c.query(query, &[&roots])?
                .iter()
                .map(|r| unescape(&r.get::<_, String>(0)))
                .collect())
        })
    }

    /// Writes the row, its unique keys and, for a class definition, a new schema version,
    /// all or nothing (a savepoint, or a transaction of its own).
    pub fn put(&self, row: &Row, uniques: &[UniqueKey]) -> Result<(), Problem> {
        self.savepoint("put")?;
        let written = match self.write_row(row, uniques) {
            Ok(written) => written,
            Err(problem) => {
                let _ = self.rollback_to("put");
                return Err(problem);
            }
        };
        match written {
            Ok(version) => {
                self.release("put")?;
                if let Some(version) = version {
                    // Our own change: the engine reloads its classes itself.
                    self.seen_version.set(version);
                }
                Ok(())
            }
            Err(e) => {
                let taken = e.code() == Some(&SqlState::UNIQUE_VIOLATION);
                let _ = self.rollback_to("put");
                if !taken {
                    return Err(pg(&e));
                }
                Err(self.taken(row, uniques))
            }
        }
    }

    /// The `unique-violation` for a unique key the database refused: naming the record
    /// that holds it when this transaction can see it.
    fn taken(&self, row: &Row, uniques: &[UniqueKey]) -> Problem {
        for key in uniques {
            let fields = serde_json::to_string(&key.fields).unwrap_or_default();
            let vals = canonical(&Value::Array(key.values.clone()));
            let class = key.class.clone();
            let pk = row.pk.clone();
            let holder = self.run(|c| {
                c.query_opt(
                    "SELECT pk FROM uniques WHERE class = $1 AND fields = $2 AND vals = $3 AND pk <> $4",
                    &[&class, &fields, &vals, &pk],
                )
                .map(|r| r.map(|r| r.get::<_, String>(0)))
            });
            match holder {
                Ok(Some(_)) if key.class == CLASS_CLASS => {
                    return duplicate_class(key.values.first().and_then(Value::as_str).unwrap_or_default())
                }
                Ok(Some(existing)) => {
                    return unique_violation(&key.class, &key.fields, &key.values, Some(&existing))
                }
                Ok(None) => {}
                Err(e) => return e,
            }
        }
        // Held by a record committed after this transaction's snapshot: which key is
        // not visible; name the first.
        match uniques.first() {
            Some(key) => unique_violation(&key.class, &key.fields, &key.values, None),
            None => unique_violation("", &[], &[], None),
        }
    }

    fn write_row(
        &self,
        row: &Row,
        uniques: &[UniqueKey],
    ) -> Result<Result<Option<i64>, postgres::Error>, Problem> {
        let bucket = serde_json::to_string(&row.bucket).unwrap_or_default();
        let stack = serde_json::to_string(&row.stack).unwrap_or_default();
        let bucket_query = query_form(&Value::Object(row.bucket.clone())).to_string();
        let stack_query = serde_json::to_value(&row.stack)
            .map(|v| query_form(&v).to_string())
            .unwrap_or_default();
        let defines = row.classes().iter().any(|c| c == CLASS_CLASS);
        let mut keys: Vec<(String, String, String)> = Vec::new();
        if row.active {
            for key in uniques {
                let key = (
                    key.class.clone(),
                    serde_json::to_string(&key.fields).unwrap_or_default(),
                    canonical(&Value::Array(key.values.clone())),
                );
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
        self.run_raw(|client| {
            // A definition written, or one replaced: other servers reload.
            let version = client
                .query_opt(
                    "UPDATE meta SET value = value + 1 WHERE key = 'schema_version' AND ($2 OR EXISTS (
                         SELECT 1 FROM records o, jsonb_each(o.stack) p
                         WHERE o.pk = $1 AND p.value->>'class' = 'puck.uno/class'))
                     RETURNING value",
                    &[&row.pk, &defines],
                )?
                .map(|r| r.get::<_, i64>(0));
            client.execute(
                "INSERT INTO records (pk, bucket, stack, updated_at, active, bucket_text, stack_text)
                 VALUES ($1, $2::text::jsonb, $3::text::jsonb, $4, $5, $6, $7)
                 ON CONFLICT (pk) DO UPDATE SET bucket = excluded.bucket, stack = excluded.stack,
                     updated_at = excluded.updated_at, active = excluded.active,
                     bucket_text = excluded.bucket_text, stack_text = excluded.stack_text",
                &[
                    &row.pk,
                    &bucket_query,
                    &stack_query,
                    &row.updated_at,
                    &row.active,
                    &bucket,
                    &stack,
                ],
            )?;
            client.execute("DELETE FROM uniques WHERE pk = $1", &[&row.pk])?;
            for (class, fields, vals) in &keys {
                client.execute(
                    "INSERT INTO uniques (class, fields, vals, pk) VALUES ($1, $2, $3, $4)",
                    &[class, fields, vals, &row.pk],
                )?;
            }
            Ok(version)
        })
    }

    pub fn all(&self) -> Result<Vec<Row>, Problem> {
        let query = format!("SELECT {COLUMNS} FROM records ORDER BY seq");
        self.run(|c| c.query(&query, &[])?.iter().map(row).collect())
    }

    pub fn savepoint(&self, name: &str) -> Result<(), Problem> {
        let statement = if self.depth() == 0 {
            "BEGIN ISOLATION LEVEL REPEATABLE READ".to_owned()
        } else {
            format!("SAVEPOINT {name}")
        };
        self.run(|c| c.batch_execute(&statement))?;
        self.open.borrow_mut().push(name.to_owned());
        Ok(())
    }

    pub fn release(&self, name: &str) -> Result<(), Problem> {
        self.end(name, true)
    }

    pub fn rollback_to(&self, name: &str) -> Result<(), Problem> {
        self.end(name, false)
    }

    /// Ends savepoint `name` and every one opened after it (as PostgreSQL does).
    fn end(&self, name: &str, keep: bool) -> Result<(), Problem> {
        let Some(at) = self.open.borrow().iter().rposition(|n| n == name) else {
            return Ok(());
        };
        let statement = match (at, keep) {
            (0, true) => "COMMIT".to_owned(),
            (0, false) => "ROLLBACK".to_owned(),
            (_, true) => format!("RELEASE SAVEPOINT {name}"),
            (_, false) => format!("ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"),
        };
        // The outermost ends whatever COMMIT answers (a failed COMMIT rolls back).
        let done = self.run(|c| c.batch_execute(&statement));
        if at == 0 || done.is_ok() {
            self.open.borrow_mut().truncate(at);
        }
        done
    }

    /// A database property (`meta`), `None` when never set.
    pub fn property(&self, key: &str) -> Result<Option<i64>, Problem> {
        let key = key.to_owned();
        self.run(move |c| {
            c.query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
                .map(|r| r.map(|r| r.get::<_, i64>(0)))
        })
    }

    /// Sets a database property.
    pub fn set_property(&self, key: &str, value: i64) -> Result<(), Problem> {
        let key = key.to_owned();
        self.run(move |c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&key, &value],
            )
            .map(drop)
        })
    }

    /// Whether `schema_version` moved since this connection last looked (and remembers
    /// the new one).
    pub fn classes_changed(&self) -> Result<bool, Problem> {
        let version = self.run(|c| {
            c.query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])
                .map(|r| r.map_or(0, |r| r.get::<_, i64>(0)))
        })?;
        Ok(self.seen_version.replace(version) != version)
    }
}

impl Drop for Pg {
    /// Closing the client blocks on its runtime, which cannot run inside a tokio runtime:
    /// there it closes on a thread of its own.
    fn drop(&mut self) {
        if let Some(client) = self.client.get_mut().take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = on_own_thread(move || drop(client));
            } else {
                drop(client);
            }
        }
    }
}

/// A connection failure in words (the crate's own `Display` is only "db error").
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// Runs `f` on a scoped thread of its own (outside any tokio runtime).
fn on_own_thread<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, String> {
    std::thread::scope(|s| s.spawn(f).join()).map_err(|_| "the PostgreSQL call panicked".to_owned())
}
