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
        serde_json::json!({ "storage_error": e.to_string() }),
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

/// Active rows, optionally only those with one of `classes` in their stack, optionally
/// only those whose bucket has `equal` at a JSON path (pushed down as `json_extract`), in
/// insertion order.
pub(crate) fn active(
    conn: &Connection,
    classes: Option<&[String]>,
    equal: Option<(&str, &Value)>,
) -> Result<Vec<Row>, Problem> {
    let mut query = format!("SELECT {COLUMNS} FROM records r WHERE r.active = 1");
    let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
    if let Some(classes) = classes {
        query.push_str(" AND EXISTS (SELECT 1 FROM record_classes c WHERE c.pk = r.pk AND c.class IN (SELECT value FROM json_each(?1)))");
        args.push(Box::new(serde_json::to_string(classes).unwrap_or_default()));
    }
    if let Some((path, value)) = equal {
        let n = args.len() + 1;
        match value {
            Value::String(s) => {
                query.push_str(&format!(
                    " AND json_extract(r.bucket, ?{n}) = ?{} AND json_type(r.bucket, ?{n}) = 'text'",
                    n + 1
                ));
                args.push(Box::new(path.to_owned()));
                args.push(Box::new(s.clone()));
            }
            Value::Bool(b) => {
                query.push_str(&format!(" AND json_type(r.bucket, ?{n}) = ?{}", n + 1));
                args.push(Box::new(path.to_owned()));
                args.push(Box::new(if *b { "true" } else { "false" }.to_owned()));
            }
            Value::Number(x) if x.as_f64().is_some() => {
                query.push_str(&format!(
                    " AND json_type(r.bucket, ?{n}) IN ('integer', 'real') AND json_extract(r.bucket, ?{n}) = ?{}",
                    n + 1
                ));
                args.push(Box::new(path.to_owned()));
                args.push(Box::new(x.as_f64().unwrap_or_default()));
            }
            _ => {}
        }
    }
    query.push_str(" ORDER BY r.seq");
    let mut statement = conn.prepare_cached(&query).map_err(sql)?;
    let params: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a.as_ref()).collect();
    let rows = statement
        .query_map(params.as_slice(), row)
        .map_err(sql)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql)?;
    Ok(rows)
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
