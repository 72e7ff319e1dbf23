//! The store seam: what the engine asks of a storage engine (rows by pk, scans with
//! pushdown, class closures, writes, savepoints), behind one enum, so the engine's logic
//! (writes, matching, transactions, worldlets, classes) is shared and only the SQL
//! differs: SQLite (`sqlite.rs`, memory or file) or PostgreSQL (`postgres.rs`).
//!
//! An enum, not a trait object: the SQLite calls stay direct (no dynamic dispatch), and a
//! build without the `postgres` feature has the SQLite variant only.

#[cfg(feature = "postgres")]
mod pgconfig;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod sqlite;

use rusqlite::Connection;
use serde_json::{Map, Value};

use super::problem::Problem;
use crate::mikobase::generated::Stack;

/// One stored record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub pk: String,
    pub bucket: Map<String, Value>,
    /// The platters, typed once as they are read (a select answers them as they are).
    pub stack: Stack,
    pub updated_at: String,
    pub active: bool,
}

impl Row {
    /// Every class named by a platter of the stack, in stack order.
    pub fn classes(&self) -> Vec<String> {
        self.stack.values().filter_map(|p| p.class.clone()).collect()
    }
}

/// The `json_extract` path of plain bucket keys, when SQLite reads it exactly as
/// [`super::values::walk`] does (no quote, backslash or control character in a key).
fn json_path(keys: &[String]) -> Option<String> {
    let mut out = String::from("$");
    for key in keys {
        if key.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
            return None;
        }
        out.push_str(".\"");
        out.push_str(key);
        out.push('"');
    }
    Some(out)
}

/// A literal equality on a bucket path that SQL decides exactly as the Rust evaluator
/// does (decision E10): strings, booleans, and integers (an integral float below 2^53
/// included). Other floats are not pushed: SQLite and serde_json may read a stored float
/// one ulp apart.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Equal {
    /// SQLite's `json_extract` path.
    path: String,
    /// The same path as keys (PostgreSQL's `#>` takes a text array).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    keys: Vec<String>,
    value: Scalar,
}

#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Text(String),
    Bool(bool),
    Int(i64),
}

impl Equal {
    pub fn new(keys: &[String], value: &Value) -> Option<Equal> {
        const TWO_53: f64 = 9_007_199_254_740_992.0;
        let value = match value {
            Value::String(s) => Scalar::Text(s.clone()),
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Scalar::Int(i),
                (None, Some(f)) if f.fract() == 0.0 && f.abs() < TWO_53 => Scalar::Int(f as i64),
                _ => return None,
            },
            _ => return None,
        };
        Some(Equal {
            path: json_path(keys)?,
            keys: keys.to_vec(),
            value,
        })
    }
}

/// One `ORDER BY` key: SQL orders exactly as [`super::select::compare`] (numbers <
/// strings < booleans < arrays < objects, numbers by value, strings by bytes, nulls and
/// missing values last in both directions, arrays tied with arrays and objects with
/// objects).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SqlSort {
    path: String,
    reverse: bool,
}

impl SqlSort {
    pub fn new(keys: &[String], reverse: bool) -> Option<SqlSort> {
        Some(SqlSort {
            path: json_path(keys)?,
            reverse,
        })
    }
}

/// What [`Store::scan`] reads.
#[derive(Debug, Default)]
pub(crate) struct Scan<'a> {
    /// Only rows with one of these classes in their stack.
    pub classes: Option<&'a [String]>,
    pub equal: Option<&'a Equal>,
    /// Sort keys; ties (and no keys) in insertion order.
    pub order: &'a [SqlSort],
    /// `(limit, offset)` applied by SQL.
    pub page: Option<(Option<usize>, usize)>,
}

/// One `unique` field or `uniques` tuple a written row holds values for: the class that
/// declares it, its fields, and the row's values for them (all present, none null).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UniqueKey {
    pub class: String,
    pub fields: Vec<String>,
    pub values: Vec<Value>,
}

/// Where the rows live.
pub(crate) enum Store {
    /// SQLite, in memory or in a file: one connection, the only writer (E17).
    Sqlite(Connection),
    /// PostgreSQL: other servers may share the database.
    #[cfg(feature = "postgres")]
    Postgres(Box<postgres::Pg>),
}

impl Store {
    /// The row with `pk`, active or not.
    pub fn get(&self, pk: &str) -> Result<Option<Row>, Problem> {
        match self {
            Store::Sqlite(conn) => sqlite::get(conn, pk),
            #[cfg(feature = "postgres")]
            Store::Postgres(pg) => pg.get(pk),
        }
    }

    /// Streams active rows to `visit` in order until it answers `false` or fails.
    pub fn scan(
        &self,
        what: &Scan<'_>,
        visit: impl FnMut(Row) -> Result<bool, Problem>,
    ) -> Result<(), Problem> {
        match self {
            Store::Sqlite(conn) => sqlite::scan(conn, what, visit),
            #[cfg(feature = "postgres")]
            Store::Postgres(pg) => pg.scan(what, visit),
        }
    }

    /// Active rows (optionally only of `classes`, optionally only those with `equal`), in
    /// insertion order.
    pub fn active(&self, classes: Option<&[String]>, equal: Option<&Equal>) -> Result<Vec<Row>, Problem> {
        let mut out = Vec::new();
        let what = Scan {
            classes,
            equal: equal.filter(|e| self.pushes(e)),
            ..Scan::default()
        };
        self.scan(&what, |row| {
            out.push(row);
            Ok(true)
        })?;
        Ok(out)
    }

    /// Names of every class that is `roots` or inherits from one of them, transitively.
    pub fn with_subclasses(&self, roots: &[String]) -> Result<Vec<String>, Problem> {
        match self {
            Store::Sqlite(conn) => sqlite::with_subclasses(conn, roots),
            #[cfg(feature = "postgres")]
            Store::Postgres(pg) => pg.with_subclasses(roots),
        }
    }

    /// Inserts or replaces a row (by pk), keeping its insertion position when it exists:
    /// all or nothing. `uniques` are the row's unique keys: SQLite's one connection has
    /// checked them already; PostgreSQL enforces them in the database as well.
    pub fn put(&self, row: &Row, uniques: &[UniqueKey]) -> Result<(), Problem> {
        match self {
            Store::Sqlite(conn) => {
                let _ = uniques;
                sqlite::put(conn, row)
            }
            #[cfg(feature = "postgres")]
            Store::Postgres(pg) => pg.put(row, uniques),
        }
    }

    /// Every row, tombstones included, in insertion order.
    pub fn all(&self) -> Result<Vec<Row>, Problem> {
        match self {
            Store::Sqlite(conn) => sqlite::all(conn),
            #[cfg(feature = "postgres")]
            Store::Postgres(pg) => pg.all(),
        }
    }

    /// Opens a savepoint `name` (PostgreSQL: `BEGIN` when none is open).
    pub fn savepoint(&self, name: &str) -> Result<(), Problem> {
        match self {
            Store::Sqlite(conn) => conn
                .execute_batch(&format!("SAVEPOINT {name}"))
                .map_err(sqlite::sql),
            #[cfg(feature = "postgres")]
            Store::Postgres(pg) => pg.savepoint(name),
        }
    }

    /// Keeps what was done since savepoint `name` and ends it (PostgreSQL: `COMMIT` for
    /// the outermost).
    pub fn release(&self, name: &str) -> Result<(), Problem> {
        match self {
            Store::Sqlite(conn) => conn
                .execute_batch(&format!("RELEASE SAVEPOINT {name}"))
                .map_err(sqlite::sql),
            #[cfg(feature = "postgres")]
            Store::Postgres(pg) => pg.release(name),
        }
    }

    /// Undoes what was done since savepoint `name` and ends it (PostgreSQL: `ROLLBACK`
    /// for the outermost).
    pub fn rollback_to(&self, name: &str) -> Result<(), Problem> {
        match self {
            Store::Sqlite(conn) => conn
                .execute_batch(&format!("ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"))
                .map_err(sqlite::sql),
            #[cfg(feature = "postgres")]
            Store::Postgres(pg) => pg.rollback_to(name),
        }
    }

    /// Whether SQL decides `equal` exactly (then a scan may page on it).
    pub fn pushes(&self, equal: &Equal) -> bool {
        match self {
            Store::Sqlite(_) => {
                let _ = equal;
                true
            }
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => postgres::pushes(equal),
        }
    }

    /// Whether sort keys run as SQL `ORDER BY` (else Rust ranks the candidates).
    pub fn sorts_in_sql(&self) -> bool {
        match self {
            Store::Sqlite(_) => true,
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => false,
        }
    }

    /// Whether other connections may write the same rows (a PostgreSQL database shared
    /// by several servers): then each write outside a transaction is a transaction of its
    /// own, and the classes are reloaded when another server changed them.
    pub fn shared(&self) -> bool {
        match self {
            Store::Sqlite(_) => false,
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => true,
        }
    }

    /// A database property, `None` when never set.
    pub fn property(&self, key: &str) -> Result<Option<i64>, Problem> {
        match self {
            Store::Sqlite(conn) => sqlite::property(conn, key),
            #[cfg(feature = "postgres")]
            Store::Postgres(pg) => pg.property(key),
        }
    }

    /// Sets a database property.
    pub fn set_property(&self, key: &str, value: i64) -> Result<(), Problem> {
        match self {
            Store::Sqlite(conn) => sqlite::set_property(conn, key, value),
            #[cfg(feature = "postgres")]
            Store::Postgres(pg) => pg.set_property(key, value),
        }
    }

    /// Whether another connection changed the class definitions since this one last
    /// looked (SQLite: never, its connection is the only writer).
    pub fn classes_changed(&self) -> Result<bool, Problem> {
        match self {
            Store::Sqlite(_) => Ok(false),
            #[cfg(feature = "postgres")]
            Store::Postgres(pg) => pg.classes_changed(),
        }
    }

    /// Whether the store has a transaction open (PostgreSQL ends a transaction on a
    /// failed `COMMIT`).
    pub fn in_transaction(&self) -> bool {
        match self {
            Store::Sqlite(conn) => !conn.is_autocommit(),
            #[cfg(feature = "postgres")]
            Store::Postgres(pg) => pg.depth() > 0,
        }
    }
}
