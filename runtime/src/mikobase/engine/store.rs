//! The SQLite layer: one table of records, one row per record (non-temporal; decision
//! E2), tombstones kept so a deleted record is told apart from a missing one.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{Map, Value};

use super::problem::Problem;

/// One stored record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub pk: String,
    pub bucket: Map<String, Value>,
    pub stack: Map<String, Value>,
    pub updated_at: String,
    pub active: bool,
}

impl Row {
    /// The record as `select` returns it.
    pub fn into_json(self) -> Value {
        let mut record = Map::with_capacity(4);
        record.insert("pk".into(), Value::String(self.pk));
        record.insert("bucket".into(), Value::Object(self.bucket));
        record.insert("stack".into(), Value::Object(self.stack));
        record.insert("updated_at".into(), Value::String(self.updated_at));
        Value::Object(record)
    }

    /// Every class named by a platter of the stack, in stack order.
    pub fn classes(&self) -> Vec<String> {
        self.stack
            .values()
            .filter_map(|p| p.get("class").and_then(Value::as_str).map(str::to_owned))
            .collect()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    pk         TEXT NOT NULL UNIQUE,
    bucket     TEXT NOT NULL CHECK (json_type(bucket) = 'object'),
    stack      TEXT NOT NULL CHECK (json_type(stack) = 'object'),
    updated_at TEXT NOT NULL,
    active     INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
);
CREATE TABLE IF NOT EXISTS record_classes (
    pk    TEXT NOT NULL REFERENCES records(pk) ON DELETE CASCADE,
    class TEXT NOT NULL,
    PRIMARY KEY (pk, class)
);
CREATE INDEX IF NOT EXISTS record_classes_by_class ON record_classes(class);
";

/// Turns any SQLite failure into the engine's error shape (never a panic, never a raw
/// Rust error).
pub(crate) fn sql(e: rusqlite::Error) -> Problem {
    Problem::new(
        "invalid_request",
        serde_json::json!({
            "storage_error": e.to_string(),
            "fix": "SQLite refused the operation: check the store file, its permissions and free space",
        }),
    )
}

pub(crate) fn init(conn: &Connection) -> Result<(), Problem> {
    conn.execute_batch(SCHEMA).map_err(sql)
}

fn parse_object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        pk: r.get(0)?,
        bucket: parse_object(&r.get::<_, String>(1)?),
        stack: parse_object(&r.get::<_, String>(2)?),
        updated_at: r.get(3)?,
        active: r.get::<_, i64>(4)? == 1,
    })
}

macro_rules! columns {
    () => {
        "pk, bucket, stack, updated_at, active"
    };
}
const COLUMNS: &str = columns!();

/// The row with `pk`, active or not.
pub(crate) fn get(conn: &Connection, pk: &str) -> Result<Option<Row>, Problem> {
    conn.prepare_cached(concat!("SELECT ", columns!(), " FROM records WHERE pk = ?1"))
        .and_then(|mut s| s.query_row([pk], row).optional())
        .map_err(sql)
}

/// The `json_extract` path of plain bucket keys, when SQLite reads it exactly as
/// [`super::select::walk`] does (no quote, backslash or control character in a key).
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
    path: String,
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
            value,
        })
    }
}

/// One `ORDER BY` key: SQL orders exactly as [`super::select::compare`] (numbers <
/// strings < booleans < arrays < objects, numbers by value, strings by bytes, nulls and
/// missing values last in both directions, arrays and objects tied).
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

/// What [`scan`] reads.
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

/// Streams active rows to `visit` in order until it answers `false` or fails.
pub(crate) fn scan(
    conn: &Connection,
    what: &Scan<'_>,
    mut visit: impl FnMut(Row) -> Result<bool, Problem>,
) -> Result<(), Problem> {
    let mut query = format!("SELECT {COLUMNS} FROM records r WHERE r.active = 1");
    let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
    let arg = |args: &mut Vec<Box<dyn rusqlite::ToSql>>, value: Box<dyn rusqlite::ToSql>| {
        args.push(value);
        args.len()
    };
    if let Some(classes) = what.classes {
        let n = arg(
            &mut args,
            Box::new(serde_json::to_string(classes).unwrap_or_default()),
        );
        query.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM record_classes c WHERE c.pk = r.pk AND c.class IN (SELECT value FROM json_each(?{n})))"
        ));
    }
    if let Some(Equal { path, value }) = what.equal {
        let p = arg(&mut args, Box::new(path.clone()));
        match value {
            Scalar::Text(s) => {
                let v = arg(&mut args, Box::new(s.clone()));
                query.push_str(&format!(
                    " AND json_extract(r.bucket, ?{p}) = ?{v} AND json_type(r.bucket, ?{p}) = 'text'"
                ));
            }
            Scalar::Bool(b) => {
                let v = arg(&mut args, Box::new(if *b { "true" } else { "false" }));
                query.push_str(&format!(" AND json_type(r.bucket, ?{p}) = ?{v}"));
            }
            Scalar::Int(i) => {
                let v = arg(&mut args, Box::new(*i));
                query.push_str(&format!(
                    " AND json_type(r.bucket, ?{p}) IN ('integer', 'real') AND json_extract(r.bucket, ?{p}) = ?{v}"
                ));
            }
        }
    }
    query.push_str(" ORDER BY ");
    for SqlSort { path, reverse } in what.order {
        let p = arg(&mut args, Box::new(path.clone()));
        let rank = format!(
            "(CASE json_type(r.bucket, ?{p}) WHEN 'integer' THEN 0 WHEN 'real' THEN 0 WHEN 'text' THEN 1 \
             WHEN 'true' THEN 2 WHEN 'false' THEN 2 WHEN 'array' THEN 3 WHEN 'object' THEN 4 ELSE 5 END)"
        );
        let dir = if *reverse { "DESC" } else { "ASC" };
        query.push_str(&format!(
            "{rank} = 5, {rank} {dir}, CASE WHEN {rank} < 3 THEN json_extract(r.bucket, ?{p}) END {dir}, "
        ));
    }
    query.push_str("r.seq");
    if let Some((limit, offset)) = what.page {
        let to_sql = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let l = arg(&mut args, Box::new(limit.map_or(-1, to_sql)));
        let o = arg(&mut args, Box::new(to_sql(offset)));
        query.push_str(&format!(" LIMIT ?{l} OFFSET ?{o}"));
    }
    let mut statement = conn.prepare_cached(&query).map_err(sql)?;
    let params: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a.as_ref()).collect();
    let mut rows = statement.query(params.as_slice()).map_err(sql)?;
    while let Some(r) = rows.next().map_err(sql)? {
        if !visit(row(r).map_err(sql)?)? {
            break;
        }
    }
    Ok(())
}

/// Active rows (optionally only of `classes`, optionally only those with `equal`), in
/// insertion order.
pub(crate) fn active(
    conn: &Connection,
    classes: Option<&[String]>,
    equal: Option<&Equal>,
) -> Result<Vec<Row>, Problem> {
    let mut out = Vec::new();
    let what = Scan {
        classes,
        equal,
        ..Scan::default()
    };
    scan(conn, &what, |row| {
        out.push(row);
        Ok(true)
    })?;
    Ok(out)
}

/// Names of every class that is `roots` or inherits from one of them, transitively
/// (a recursive CTE over the active class-definition records).
pub(crate) fn with_subclasses(conn: &Connection, roots: &[String]) -> Result<Vec<String>, Problem> {
    let query = "
        WITH RECURSIVE sub(name) AS (
            SELECT value FROM json_each(?1)
            UNION
            SELECT json_extract(r.bucket, '$.name')
            FROM records r
            JOIN record_classes c ON c.pk = r.pk AND c.class = 'puck.uno/class'
            JOIN json_each(CASE json_type(r.bucket, '$.inherits')
                               WHEN 'array' THEN json_extract(r.bucket, '$.inherits')
                               WHEN 'text' THEN json_array(json_extract(r.bucket, '$.inherits'))
                               ELSE '[]' END) parent
            JOIN sub ON parent.value = sub.name
            WHERE r.active = 1
        )
        SELECT name FROM sub WHERE name IS NOT NULL";
    let roots = serde_json::to_string(roots).unwrap_or_default();
    let mut statement = conn.prepare_cached(query).map_err(sql)?;
    let names = statement
        .query_map([roots], |r| r.get::<_, String>(0))
        .map_err(sql)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql)?;
    Ok(names)
}

/// Inserts or replaces a row (by pk), keeping its insertion position when it exists.
pub(crate) fn put(conn: &Connection, row: &Row) -> Result<(), Problem> {
    let bucket = Value::Object(row.bucket.clone()).to_string();
    let stack = Value::Object(row.stack.clone()).to_string();
    conn.prepare_cached(
        "INSERT INTO records (pk, bucket, stack, updated_at, active) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(pk) DO UPDATE SET bucket = excluded.bucket, stack = excluded.stack,
             updated_at = excluded.updated_at, active = excluded.active",
    )
    .and_then(|mut s| s.execute(params![row.pk, bucket, stack, row.updated_at, row.active as i64]))
    .map_err(sql)?;
    conn.prepare_cached("DELETE FROM record_classes WHERE pk = ?1")
        .and_then(|mut s| s.execute([&row.pk]))
        .map_err(sql)?;
    if row.active {
        let mut insert = conn
            .prepare_cached("INSERT OR IGNORE INTO record_classes (pk, class) VALUES (?1, ?2)")
            .map_err(sql)?;
        for class in row.classes() {
            insert.execute(params![row.pk, class]).map_err(sql)?;
        }
    }
    Ok(())
}

/// Every row, tombstones included, in insertion order.
pub(crate) fn all(conn: &Connection) -> Result<Vec<Row>, Problem> {
    let mut statement = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM records ORDER BY seq"))
        .map_err(sql)?;
    let rows = statement
        .query_map([], row)
        .map_err(sql)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql)?;
    Ok(rows)
}
