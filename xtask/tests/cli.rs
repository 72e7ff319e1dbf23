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
