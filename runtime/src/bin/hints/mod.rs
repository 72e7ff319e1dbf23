//! `did you mean` for the `mikobase` command line: hints computed from a failed answer's
//! details (the `supported` actions of `action-not-supported`, the class of
//! `class-not-found` against the store's defined classes), printed on stderr. The engine
//! answers stay as they are: this lives in the CLI alone (D-K5).

use caspian_ipc::mikobase::engine::Engine;
use serde_json::Value;

/// Classes every store knows without a definition.
const BUILT_IN: &[&str] = &["puck.uno/record", "puck.uno/class"];

/// The classes the store defines (asked only when a hint needs them), and the built-ins.
pub fn classes(engine: &mut Engine) -> Vec<String> {
    let schema = engine.export_schema();
    let defined = schema["results"]["classes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    defined
        .iter()
        .filter_map(|def| def["name"].as_str().map(str::to_owned))
        .chain(BUILT_IN.iter().map(|c| (*c).to_owned()))
        .collect()
}

/// One line per hint for the problems in `errors` (a Q0 `errors` list); `classes` is
/// called at most once, for a `class-not-found`.
pub fn for_errors(errors: &Value, classes: impl FnOnce() -> Vec<String>) -> Vec<String> {
    let mut classes = Some(classes);
    let mut known: Option<Vec<String>> = None;
    let mut hints = Vec::new();
    for problem in errors.as_array().into_iter().flatten() {
        let details = &problem["details"];
        match problem["id"].as_str() {
            Some("action-not-supported") => {
                let (Some(action), Some(supported)) =
                    (details["action"].as_str(), details["supported"].as_array())
                else {
                    continue;
                };
                let supported: Vec<&str> = supported.iter().filter_map(Value::as_str).collect();
                if let Some(near) = closest(action, supported.iter().copied()) {
                    hints.push(format!(
                        "action `{action}` is not supported: did you mean `{near}`?"
                    ));
                }
            }
            Some("class-not-found") => {
                let Some(class) = details["class"].as_str() else {
                    continue;
                };
                let known = known.get_or_insert_with(|| classes.take().map_or_else(Vec::new, |f| f()));
                if let Some(near) = closest(class, known.iter().map(String::as_str)) {
                    hints.push(format!("class `{class}` is not defined: did you mean `{near}`?"));
                }
                hints.push(define_hint(class));
            }
            _ => {}
        }
    }
    hints
}

/// How to define `class`.
pub fn define_hint(class: &str) -> String {
    format!(
        "to define `{class}`: create a record of class puck.uno/class, e.g. \
         {{\"action\": \"create\", \"class\": \"puck.uno/class\", \"bucket\": {{\"name\": \"{class}\", \"fields\": {{}}}}}}, \
         or import a schema with `mikobase schema import FILE` ({{\"classes\": [{{\"name\": \"{class}\", \"fields\": {{}}}}]}})"
    )
}

/// The candidate nearest to `word` (edit distance), if near enough to be a misspelling:
/// at most 2 edits, or a quarter of the word's length for long names; never `word`
/// itself.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let bound = 2.max(word.chars().count() / 4);
    candidates
        .filter(|c| *c != word)
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= bound)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters, case-insensitive: `Select` is at distance 0 from
/// `select` (and suggested, being another word).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}
