//! `cargo xtask` as a user runs it: exit codes and the diagnostics' `PATH:LINE:COL`.

use std::path::Path;
use std::process::Command;

fn xtask(args: &[&str]) -> (i32, String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(root)
        .output()
        .expect("xtask runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_spec_accepts_the_shipped_spec() {
    let (code, stdout, _) = xtask(&["check-spec"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("mikobase-spec/mikobase.yaml: ok"), "{stdout}");
    let (code, _, _) = xtask(&["check-spec", "tests/specs/minimal.yaml"]);
    assert_eq!(code, 0);
}

#[test]
fn check_spec_prints_every_problem_at_path_line_col_and_exits_1() {
    let path = "tests/specs/invalid/many_problems.yaml";
    let (code, _, stderr) = xtask(&["check-spec", path]);
    assert_eq!(code, 1, "{stderr}");
    let located: Vec<&str> = stderr
        .lines()
        .filter(|l| l.trim_start().starts_with(&format!("--> {path}:")))
        .collect();
    assert!(located.len() >= 3, "every problem located: {stderr}");
    for line in located {
        let place = line.trim_start().trim_start_matches("--> ");
        let mut parts = place.rsplitn(3, ':');
        let (col, row) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        assert!(
            col.parse::<u32>().is_ok() && row.parse::<u32>().is_ok(),
            "`{line}` is PATH:LINE:COL"
        );
    }
    let (code, _, stderr) = xtask(&["check-spec", "tests/specs/no-such-file.yaml"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read the spec"), "{stderr}");
}

#[test]
fn codegen_check_passes_on_fresh_bindings_and_usage_errors_exit_2() {
    let (code, stdout, stderr) = xtask(&["codegen", "--check"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for args in [&[][..], &["codegen", "--bogus"], &["frobnicate"]] {
        let (code, _, stderr) = xtask(args);
        assert_eq!(code, 2, "{args:?}");
        assert!(stderr.contains("usage"), "{stderr}");
    }
}

const OLD: &str = "mikobase-spec/tests/fixtures/evolution_old.yaml";
const NEW: &str = "mikobase-spec/tests/fixtures/evolution_new.yaml";
const COMPATIBLE: &str = "mikobase-spec/tests/fixtures/evolution_compatible.yaml";

#[test]
fn spec_diff_exits_1_on_a_breaking_change_and_locates_it_in_both_files() {
    let (code, stdout, stderr) = xtask(&["spec-diff", OLD, NEW]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let expected = format!(
        "breaking[route-changed]: operation `item` moved from `POST /item` to `POST /items`: old clients post to the old route\n  old: {OLD}:35:12\n  new: {NEW}:37:12\n"
    );
    assert!(stdout.contains(&expected), "{stdout}");
    let expected = format!(
        "breaking[field-made-required]: field `note` of the request of `order` was made required: old clients that leave it out are refused\n  old: {OLD}:47:7\n  new: {NEW}:49:7\n"
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(stdout.contains(&format!("breaking[operation-removed]: operation `stock` was removed: old clients that call it are refused\n  old: {OLD}:50:3\n  new: {NEW}: -\n")), "{stdout}");
    assert!(
        stdout.contains(
            "breaking[type-removed]: type `Basket` was removed (`Cart` was added with the same shape"
        ),
        "{stdout}"
    );
    assert!(
        stdout.ends_with(&format!(
            "6 breaking changes, 8 compatible changes from {OLD} to {NEW}\n"
        )),
        "{stdout}"
    );
}

#[test]
fn spec_diff_exits_0_when_every_change_is_compatible_or_there_is_none() {
    let (code, stdout, stderr) = xtask(&["spec-diff", OLD, COMPATIBLE]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!stdout.contains("breaking["), "{stdout}");
    assert!(stdout.contains(&format!("compatible[field-added]: optional field `gift` was added to the request of `order`\n  old: {OLD}:41:3\n  new: {COMPATIBLE}:50:7\n")), "{stdout}");
    assert!(
        stdout.ends_with(&format!(
            "0 breaking changes, 6 compatible changes from {OLD} to {COMPATIBLE}\n"
        )),
        "{stdout}"
    );
    let shipped = "mikobase-spec/mikobase.yaml";
    let (code, stdout, _) = xtask(&["spec-diff", shipped, shipped]);
    assert_eq!(code, 0);
    assert_eq!(stdout, format!("no changes from {shipped} to {shipped}\n"));
}

#[test]
fn spec_diff_exits_2_with_diagnostics_on_a_spec_that_does_not_load_or_a_bad_call() {
    let broken = "tests/specs/invalid/mb004_unknown_type.yaml";
    let (code, stdout, stderr) = xtask(&["spec-diff", OLD, broken]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains(&format!("--> {broken}:15:13")), "{stderr}");
    assert!(stderr.contains("error[MB004]: unknown type `Recrod`"), "{stderr}");
    let (code, _, stderr) = xtask(&["spec-diff", "mikobase-spec/no-such.yaml", OLD]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read the spec"), "{stderr}");
    for args in [
        &["spec-diff"][..],
        &["spec-diff", OLD],
        &["spec-diff", OLD, NEW, NEW],
    ] {
        let (code, _, stderr) = xtask(args);
        assert_eq!(code, 2, "{args:?}");
        assert!(stderr.contains("usage"), "{stderr}");
    }
}
