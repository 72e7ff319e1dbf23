//! The examples, run as a user would run them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// `cargo test` builds the examples next to the test binaries' parent directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target dir");
    dir.join("examples").join(name)
}

/// A reference word count: maximal runs of Unicode alphanumerics, lowercased.
fn reference(text: &str) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        *counts.entry(word.to_lowercase()).or_insert(0) += 1;
    }
    counts
}

/// Deterministic pseudo-random text with ASCII, accented, CJK and punctuation runs.
fn text(seed: u64, words: usize) -> String {
    let vocabulary = [
        "alpha",
        "Beta",
        "GAMMA",
        "straße",
        "Ünïcode",
        "日本語",
        "x1",
        "42",
        "naïve",
        "ÉTÉ",
        "a",
    ];
    let separators = [" ", ", ", "\n", "\t", "--", "!", "_", "  \r\n", "é-"];
    let mut state = seed;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = String::new();
    for _ in 0..words {
        out.push_str(vocabulary[(next() % vocabulary.len() as u64) as usize]);
        out.push_str(separators[(next() % separators.len() as u64) as usize]);
    }
    out
}

#[test]
fn word_count_matches_a_reference_count_for_any_worker_count() {
    let dir = std::env::temp_dir().join(format!("caspian-wc-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let texts = [text(7, 20_000), text(99, 3), String::new(), text(5, 9_000)];
    let mut files = Vec::new();
    let mut all = String::new();
    for (i, t) in texts.iter().enumerate() {
        let path = dir.join(format!("in{i}.txt"));
        std::fs::write(&path, t).unwrap();
        files.push(path);
        all.push_str(t);
        all.push('\n');
    }
    let expected = reference(&all);
    for workers in [1, 2, 3, 7] {
        let output = Command::new(example("word_count"))
            .arg("--workers")
            .arg(workers.to_string())
            .args(&files)
            .output()
            .expect("run word_count");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert_eq!(
            stdout.lines().count(),
            1,
            "one JSON object and nothing else on stdout"
        );
        let got: BTreeMap<String, i64> = serde_json::from_str(&stdout).unwrap();
        assert_eq!(got, expected, "with {workers} workers");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn word_count_explains_bad_arguments() {
    for args in [
        vec!["--workers", "0", "x"],
        vec!["--workers"],
        vec![],
        vec!["/nonexistent/file"],
    ] {
        let output = Command::new(example("word_count")).args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty());
        assert!(String::from_utf8_lossy(&output.stderr).contains("usage"));
    }
}

#[test]
fn quickstart_prints_the_final_state() {
    let output = Command::new(example("quickstart")).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let state: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(state["increments"], 4000);
    assert_eq!(state["batches"], 4);
    assert_eq!(state["workers"].as_object().unwrap().len(), 4);
    assert_eq!(state["log"].as_array().unwrap().len(), 4);
}

#[cfg(feature = "mikobase")]
#[test]
fn crew_enlists_every_officer_once_and_promotes_one_per_worker() {
    let output = Command::new(example("crew"))
        .args(["--workers", "3", "--per-worker", "7"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["officers"], 21, "{summary}");
    assert_eq!(
        summary["by_rank"],
        serde_json::json!({"ensign": 18, "lieutenant": 3}),
        "the impostors were refused, one promotion each"
    );
    assert_eq!(
        summary["by_ship"],
        serde_json::json!({"Betty": 7, "Nostromo": 7, "Sulaco": 7})
    );
    let workers: Vec<u64> = summary["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["index"].as_u64().unwrap())
        .collect();
    assert_eq!(workers, [0, 1, 2]);
    let bad = Command::new(example("crew"))
        .args(["--workers", "0"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("usage"));
}

#[test]
fn round_trips_runs_each_kind_of_call() {
    for kind in ["get", "set", "incr"] {
        let output = Command::new(example("round_trips"))
            .args(["20", kind])
            .output()
            .expect("run round_trips");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{kind}: {output:?}");
        let ns: f64 = text
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{kind}: no figure in {text:?}"));
        assert!(ns > 0.0 && text.contains(&format!("per {kind}")), "{text}");
    }
}
