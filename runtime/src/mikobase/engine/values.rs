//! JSON values as Q0 compares them: walking keys into a bucket, numbers compared as
//! SQLite reads them (E8), equality, string folding (`case-sensitive`, `collapse`) and
//! truthiness (E9). Shared by conditions, sorting and uniqueness checks; imports nothing
//! of the engine.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

/// Walks keys into the bucket: `None` when a key is missing or a value on the way is not
/// an object.
pub(crate) fn walk<'v>(bucket: &'v Map<String, Value>, keys: &[String]) -> Option<&'v Value> {
    let (last, inner) = keys.split_last()?;
    let mut map = bucket;
    for key in inner {
        map = map.get(key)?.as_object()?;
    }
    map.get(last)
}

/// A JSON number as SQLite reads it: an integer when it fits in i64, a float otherwise.
#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

fn num(n: &Number) -> Num {
    match n.as_i64() {
        Some(i) => Num::Int(i),
        None => Num::Float(n.as_f64().unwrap_or(0.0)),
    }
}

/// An integer against a float, exactly (no rounding of the integer to f64).
fn int_float(i: i64, f: f64) -> Ordering {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        Ordering::Equal
    } else if f >= TWO_63 {
        Ordering::Less
    } else if f < -TWO_63 {
        Ordering::Greater
    } else {
        let whole = f.trunc();
        // |whole| < 2^63 and integral: the cast is exact.
        match i.cmp(&(whole as i64)) {
            Ordering::Equal => 0.0_f64.partial_cmp(&(f - whole)).unwrap_or(Ordering::Equal),
            other => other,
        }
    }
}

/// Numbers by value, exactly as SQLite compares them (integers beyond i64 are floats).
pub(crate) fn number_cmp(a: &Number, b: &Number) -> Ordering {
    match (num(a), num(b)) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Num::Int(x), Num::Float(y)) => int_float(x, y),
        (Num::Float(x), Num::Int(y)) => int_float(y, x).reverse(),
    }
}

/// JSON equality with numbers compared by value (1 == 1.0), at any depth; object key
/// order does not matter.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_cmp(x, y) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// How strings are compared: `case-sensitive` (default true) and `collapse` (default
/// false: whitespace runs become one space, ends trimmed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fold {
    pub(crate) case_sensitive: bool,
    pub(crate) collapse: bool,
}

impl Fold {
    pub(crate) const EXACT: Fold = Fold {
        case_sensitive: true,
        collapse: false,
    };

    pub(crate) fn apply(self, s: &str) -> String {
        let s = if self.collapse {
            s.split_whitespace().collect::<Vec<_>>().join(" ")
        } else {
            s.to_owned()
        };
        if self.case_sensitive {
            s
        } else {
            s.to_lowercase()
        }
    }

    pub(crate) fn cmp(self, a: &str, b: &str) -> Ordering {
        if self == Fold::EXACT {
            a.cmp(b)
        } else {
            self.apply(a).cmp(&self.apply(b))
        }
    }

    pub(crate) fn eq(self, a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::String(x), Value::String(y)) => self.cmp(x, y) == Ordering::Equal,
            _ => json_eq(a, b),
        }
    }
}

/// Truthiness (decision E9): null, false, 0 and "" are falsy; everything else is truthy.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => false,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}
