//! The SQLite store: one table of records, one row per record (non-temporal; decision
//! E2), tombstones kept so a deleted record is told apart from a missing one; a class
//! index for class filters (E10).

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{Map, Value};

use super::super::problem::{error, invalid, Problem};
use super::{Equal, Row, Scalar, Scan, SqlSort};
use crate::mikobase::generated::ErrorId;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    pk         TEXT NOT NULL UNIQUE,
    bucket     TEXT NOT NULL CHECK (json_type(bucket) = 'object'),
    stack      TEXT NOT NULL CHECK (json_type(stack) = 'object'),
    updated_at TEXT NOT NULL,
    active     INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
);
CREATE TABLE IF NOT EXISTS class_index (
    class TEXT NOT NULL,
    seq   INTEGER NOT NULL REFERENCES records(seq) ON DELETE CASCADE,
    PRIMARY KEY (class, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS class_index_by_seq ON class_index(seq);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

/// Stores before `class_index` kept the classes by pk in `record_classes`: derived data,
/// rebuilt from the records' stacks.
const UPGRADE: &str = "
BEGIN;
INSERT OR IGNORE INTO class_index (class, seq)
    SELECT json_extract(p.value, '$.class'), r.seq FROM records r, json_each(r.stack) p
    WHERE r.active = 1 AND json_type(p.value, '$.class') = 'text';
DROP TABLE record_classes;
COMMIT;
";

fn has_table(conn: &Connection, name: &str) -> Result<bool, Problem> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .map_err(sql)
}

/// Turns any SQLite failure into the engine's error shape (never a panic, never a raw
/// Rust error).
pub(crate) fn sql(e: rusqlite::Error) -> Problem {
    error(
        ErrorId::StorageFailed,
        serde_json::json!({
            "storage_error": e.to_string(),
            "fix": "SQLite refused the operation: check the store file, its permissions and free space",
        }),
    )
}

/// Creates the schema when missing (and upgrades an older store's class index).
pub(crate) fn init(conn: &Connection) -> Result<(), Problem> {
    conn.execute_batch(SCHEMA).map_err(sql)?;
    if has_table(conn, "record_classes")? {
        conn.execute_batch(UPGRADE).map_err(sql)?;
    }
    Ok(())
}

/// A read-only connection cannot upgrade an older store: it says how to.
pub(crate) fn check_readable(conn: &Connection) -> Result<(), Problem> {
    if has_table(conn, "record_classes")? {
        return Err(invalid(serde_json::json!({
            "reason": "the store was written by an older engine (its class index is old)",
            "fix": "open it once in mode rw: the class index is rebuilt, nothing else changes",
        })));
    }
    Ok(())
}

/// A database property (`meta`), `None` when never set (or the store predates `meta`).
pub(crate) fn property(conn: &Connection, key: &str) -> Result<Option<i64>, Problem> {
    if !has_table(conn, "meta")? {
        return Ok(None);
    }
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .map_err(sql)
}

/// Sets a database property.
pub(crate) fn set_property(conn: &Connection, key: &str, value: i64) -> Result<(), Problem> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        rusqlite::params![key, value],
    )
    .map(drop)
    .map_err(sql)
}

/// A stored bucket (the table's CHECK keeps it an object).
fn parse_object(text: &str) -> Map<String, Value> {
    serde_json::from_str(text).unwrap_or_default()
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        pk: r.get(0)?,
        bucket: parse_object(r.get_ref(1)?.as_str()?),
        stack: serde_json::from_str(r.get_ref(2)?.as_str()?).unwrap_or_default(),
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
            " AND r.seq IN (SELECT c.seq FROM class_index c WHERE c.class IN (SELECT value FROM json_each(?{n})))"
        ));
    }
    if let Some(Equal { path, value, .. }) = what.equal {
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
        // One term per key in SQLite's own type order (NULL | numbers < text < blob):
        // numbers and strings as themselves, booleans, arrays and objects as blobs
        // 00 < 01 < 02 < 03 (arrays tie with arrays, objects with objects), JSON null and
        // missing values as NULL, last in both directions.
        let p = arg(&mut args, Box::new(path.clone()));
        let dir = if *reverse { "DESC" } else { "ASC" };
        query.push_str(&format!(
            "CASE json_type(r.bucket, ?{p}) WHEN 'false' THEN x'00' WHEN 'true' THEN x'01' \
             WHEN 'array' THEN x'02' WHEN 'object' THEN x'03' ELSE json_extract(r.bucket, ?{p}) END \
             {dir} NULLS LAST, "
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

/// Names of every class that is `roots` or inherits from one of them, transitively
/// (a recursive CTE over the active class-definition records).
pub(crate) fn with_subclasses(conn: &Connection, roots: &[String]) -> Result<Vec<String>, Problem> {
    let query = "
        WITH RECURSIVE sub(name) AS (
            SELECT value FROM json_each(?1)
            UNION
            SELECT json_extract(r.bucket, '$.name')
            FROM records r
            JOIN class_index c ON c.seq = r.seq AND c.class = 'puck.uno/class'
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

/// Inserts or replaces a row (by pk), keeping its insertion position when it exists,
/// with its class index: all or nothing (one savepoint, so also one transaction).
pub(crate) fn put(conn: &Connection, row: &Row) -> Result<(), Problem> {
    let run = |statement: &str| conn.prepare_cached(statement).and_then(|mut s| s.execute([]));
    run("SAVEPOINT put").map_err(sql)?;
    match write_row(conn, row) {
        Ok(()) => run("RELEASE put").map(|_| ()).map_err(sql),
        Err(e) => {
            let _ = run("ROLLBACK TO put").and_then(|_| run("RELEASE put"));
            Err(sql(e))
        }
    }
}

fn write_row(conn: &Connection, row: &Row) -> rusqlite::Result<()> {
    // A map of JSON values always serialises; were it not to, "" fails the CHECK.
    let bucket = serde_json::to_string(&row.bucket).unwrap_or_default();
    let stack = serde_json::to_string(&row.stack).unwrap_or_default();
    conn.prepare_cached(
        "INSERT INTO records (pk, bucket, stack, updated_at, active) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(pk) DO UPDATE SET bucket = excluded.bucket, stack = excluded.stack,
             updated_at = excluded.updated_at, active = excluded.active",
    )?
    .execute(params![row.pk, bucket, stack, row.updated_at, row.active as i64])?;
    let seq: i64 = conn
        .prepare_cached("SELECT seq FROM records WHERE pk = ?1")?
        .query_row([&row.pk], |r| r.get(0))?;
    conn.prepare_cached("DELETE FROM class_index WHERE seq = ?1")?
        .execute([seq])?;
    if row.active {
        let mut insert =
            conn.prepare_cached("INSERT OR IGNORE INTO class_index (class, seq) VALUES (?1, ?2)")?;
        for class in row.classes() {
            insert.execute(params![class, seq])?;
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
