//! Limits every layer agrees on, in a module that imports nothing of the crate: the
//! toolbox, the shared hash and the engine all use them, and none of them owns them.

use serde_json::Value;

/// The default largest request body, 16 MiB: the server's body limit, and what the engine
/// accepts from a caller in-process, so a request the socket carried is never refused
/// again by the engine behind it.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Nesting depth of a JSON value (a scalar is 0, `[]` is 1), computed without recursion.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
        if let (Value::Array(_) | Value::Object(_), true) = (v, d + 1 > deepest) {
            deepest = d + 1;
        }
    }
    deepest
}

/// Deepest nesting of arrays and objects in a Mikobase request, a worldlet record or a
/// class definition (decision E15 in docs/ENGINE.md): every answer and export then stays
/// well within the 128 levels a JSON parser (serde_json's) reads back.
pub const MAX_REQUEST_DEPTH: usize = 64;

/// Whether a value nests arrays and objects deeper than `max` (counted without recursion,
/// so any depth is safe to check; stops at the first container past `max`).
pub fn deeper_than(value: &Value, max: usize) -> bool {
    let mut stack = vec![(value, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        let containers = |c: &&Value| c.is_array() || c.is_object();
        match v {
            _ if depth > max => return true,
            Value::Array(items) => stack.extend(items.iter().filter(containers).map(|c| (c, depth + 1))),
            Value::Object(map) => stack.extend(map.values().filter(containers).map(|c| (c, depth + 1))),
            _ => {}
        }
    }
    false
}
