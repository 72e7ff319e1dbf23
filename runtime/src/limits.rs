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
