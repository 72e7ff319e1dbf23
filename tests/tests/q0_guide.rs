//! Every example of `docs/Q0.md` is run: each `json q0` request, in order, against one
//! fresh in-memory engine; each `json answer` block must be contained in the real answer.
//! A request without an answer block must succeed. The guide cannot drift from the engine.

use std::collections::HashMap;

use caspian_ipc::mikobase::engine::Engine;
use serde_json::Value;

const GUIDE: &str = include_str!("../../docs/Q0.md");

/// One request of the guide, with the answer it promises (if it shows one).
struct Example {
    line: usize,
    request: String,
    answer: Option<Value>,
}

/// The fenced blocks tagged `json q0` and `json answer`, in order.
fn examples(text: &str) -> Vec<Example> {
    let mut examples: Vec<Example> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let tag = line.trim();
        if tag != "```json q0" && tag != "```json answer" {
            continue;
        }
        let body: Vec<&str> = lines
            .by_ref()
            .map(|(_, l)| l)
            .take_while(|l| l.trim() != "```")
            .collect();
        let body = body.join("\n");
        if tag == "```json q0" {
            examples.push(Example {
                line: number + 1,
                request: body,
                answer: None,
            });
        } else {
            let answer = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("docs/Q0.md:{}: the answer is not JSON: {e}", number + 1));
            let last = examples
                .last_mut()
                .unwrap_or_else(|| panic!("docs/Q0.md:{}: an answer before any request", number + 1));
            assert!(
                last.answer.is_none(),
                "docs/Q0.md:{}: two answers for one request",
                number + 1
            );
            last.answer = Some(answer);
        }
    }
    examples
}

/// Whether `actual` holds `expected`: objects by the keys `expected` names, arrays element
/// by element (same length), anything else by equality. The error names the first place
/// that differs.
fn contains(expected: &Value, actual: &Value, at: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(want), Value::Object(got)) => want.iter().try_for_each(|(key, value)| {
            let place = format!("{at}.{key}");
            match got.get(key) {
                Some(found) => contains(value, found, &place),
                None => Err(format!("{place} is missing")),
            }
        }),
        (Value::Array(want), Value::Array(got)) => {
            if want.len() != got.len() {
                return Err(format!(
                    "{at} has {} elements, the guide says {}",
                    got.len(),
                    want.len()
                ));
            }
            want.iter()
                .zip(got)
                .enumerate()
                .try_for_each(|(i, (w, g))| contains(w, g, &format!("{at}[{i}]")))
        }
        _ if expected == actual => Ok(()),
        _ => Err(format!("{at} is {actual}, the guide says {expected}")),
    }
}

#[test]
fn every_example_of_the_q0_guide_answers_as_shown() {
    let examples = examples(GUIDE);
    let answered = examples.iter().filter(|e| e.answer.is_some()).count();
    // A parsing slip that found nothing must not pass as "every example works".
    assert!(
        examples.len() >= 50 && answered >= 40,
        "only {} requests / {answered} answers found",
        examples.len()
    );

    let mut engine = Engine::memory();
    let mut pks: HashMap<String, String> = HashMap::new();
    let mut transaction = String::new();
    for example in &examples {
        let mut text = example
            .request
            .replace("\"<transaction>\"", &format!("\"{transaction}\""));
        for (name, pk) in &pks {
            text = text.replace(&format!("\"<pk:{name}>\""), &format!("\"{pk}\""));
        }
        assert!(
            !text.contains("\"<pk:"),
            "docs/Q0.md:{}: a <pk:NAME> of no record created before",
            example.line
        );
        let request: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("docs/Q0.md:{}: the request is not JSON: {e}", example.line));
        let answer = engine.q0(&request);
        match &example.answer {
            Some(expected) => {
                if let Err(difference) = contains(expected, &answer, "answer") {
                    panic!(
                        "docs/Q0.md:{}: {difference}\nrequest: {request}\nanswer: {answer}",
                        example.line
                    );
                }
            }
            None => assert_eq!(
                answer["success"], true,
                "docs/Q0.md:{}: a request shown without an answer must succeed: {answer}",
                example.line
            ),
        }
        if answer["success"] == true {
            match request["action"].as_str() {
                Some("create") => {
                    if let (Some(name), Some(pk)) = (
                        request["bucket"]["name"].as_str(),
                        answer["results"]["pk"].as_str(),
                    ) {
                        pks.insert(name.to_owned(), pk.to_owned());
                    }
                }
                Some("transaction") => {
                    transaction = answer["results"]["transaction"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                }
                _ => {}
            }
        }
    }
}

#[test]
fn the_guide_shows_every_operator_and_action() {
    for needle in [
        "\"value\"",
        "\"contains\"",
        "\"starts-with\"",
        "\"ends-with\"",
        "\"gt\"",
        "\"lt\"",
        "\"gte\"",
        "\"lte\"",
        "\"includes\"",
        "\"includes_all\"",
        "\"includes_any\"",
        "\"exists\"",
        "\"truthy\"",
        "\"any\": true",
        "\"case-sensitive\"",
        "\"reverse\"",
        "\"then\"",
        "\"all\"",
        "\"not\"",
        "\"placeholders\"",
        "\"sorts\"",
        "\"limit\"",
        "\"offset\"",
        "\"action\": \"create\"",
        "\"action\": \"select\"",
        "\"action\": \"update\"",
        "\"action\": \"delete\"",
        "\"action\": \"transaction\"",
        "\"action\": \"commit\"",
        "\"action\": \"rollback\"",
        "\"if_exists\"",
    ] {
        let shown = examples(GUIDE).iter().any(|e| e.request.contains(needle));
        assert!(shown, "docs/Q0.md has no tested example with {needle}");
    }
}
