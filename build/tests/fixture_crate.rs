//! The build-script front end in a real crate: `build/tests/fixture` (its own workspace,
//! dependencies by path) is built and tested by cargo, offline, in a target directory of
//! its own under this workspace's `target/` (kept between runs, so only the first is slow).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A cold build compiles the runtime and SQLite; on a busy machine that takes minutes.
const DEADLINE: Duration = Duration::from_secs(1200);

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixture")
}

fn target() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("build-fixture")
}

struct Outcome {
    success: bool,
    stdout: String,
    stderr: String,
}

/// `cargo <args>` on the fixture with `envs`, within [`DEADLINE`] (killed past it).
fn cargo(args: &[&str], envs: &[(&str, &str)]) -> Outcome {
    let logs = target().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let (out, err) = (logs.join("stdout"), logs.join("stderr"));
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .args(args)
        .arg("--offline")
        .arg("--manifest-path")
        .arg(fixture().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target())
        .env_remove("CASPIAN_IPC_UPDATE")
        .env_remove("FIXTURE_SPEC")
        .env_remove("FIXTURE_CHECKED_IN")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    let mut child = command.spawn().expect("cargo runs");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "cargo {args:?} took over {DEADLINE:?}; its stderr:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Outcome {
        success: status.success(),
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    }
}

/// One test, so the steps share the target directory one after the other.
#[test]
fn a_crate_using_the_build_script_builds_tests_and_reports_spec_errors() {
    // 1. Builds: the generated client reaches the generated dispatch table, and the
    //    checked-in copy is fresh.
    let run = cargo(&["test"], &[]);
    assert!(run.success, "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    // The generated code compiles without a warning in a user's crate (cargo replays
    // cached warnings, so this holds on a warm run too).
    assert!(
        !run.stderr.lines().any(|l| l.starts_with("warning")),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("test checked_in_code_is_fresh ... ok"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("test the_generated_client_reaches_the_generated_dispatch_table ... ok"),
        "{}",
        run.stdout
    );

    // 2. The build script told cargo to rerun on the spec, and wrote into OUT_DIR.
    let spec = fixture().join("specs/tiny.yaml");
    let runs: Vec<PathBuf> = std::fs::read_dir(target().join("debug/build"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("output").exists())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("caspian-ipc-build-fixture-"))
        })
        .collect();
    assert!(!runs.is_empty(), "no build script output");
    let directive = format!("cargo:rerun-if-changed={}", spec.display());
    assert!(
        runs.iter().any(|run| {
            std::fs::read_to_string(run.join("output"))
                .unwrap_or_default()
                .lines()
                .any(|l| l == directive)
                && run.join("out/mikobase.rs").exists()
                && run.join("out/openapi.json").exists()
        }),
        "no build script run printed `{directive}` and wrote out/mikobase.rs"
    );

    // 3. A stale checked-in copy fails the user's test, naming the command; that command
    //    rewrites it.
    let stale = target().join("stale_checked_in.rs");
    let fresh = std::fs::read_to_string(fixture().join("src/checked_in.rs")).unwrap();
    std::fs::write(&stale, fresh.replacen("pub size", "pub length", 1)).unwrap();
    let stale_path = stale.display().to_string();
    let only_fresh = ["test", "--test", "fresh", "checked_in_code_is_fresh"];
    let run = cargo(&only_fresh, &[("FIXTURE_CHECKED_IN", &stale_path)]);
    assert!(!run.success, "a stale file passed:\n{}", run.stdout);
    let said = format!(
        "{stale_path} is stale: it is not what specs/tiny.yaml generates (first difference at {stale_path}:"
    );
    assert!(run.stdout.contains(&said), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("regenerate it with `CASPIAN_IPC_UPDATE=1 cargo test`, then review and commit it"),
        "{}",
        run.stdout
    );
    let run = cargo(
        &only_fresh,
        &[("FIXTURE_CHECKED_IN", &stale_path), ("CASPIAN_IPC_UPDATE", "1")],
    );
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert!(
        std::fs::read_to_string(&stale).unwrap() == fresh,
        "the update rewrote it"
    );

    // 4. A refused spec fails the build: one cargo warning per problem and the error, each
    //    at file:line:col.
    //    (`test --no-run`: the features of step 1, so only the build script reruns.)
    let run = cargo(&["test", "--no-run"], &[("FIXTURE_SPEC", "specs/broken.yaml")]);
    assert!(!run.success, "a broken spec built:\n{}", run.stderr);
    let broken = fixture().join("specs/broken.yaml");
    let text = std::fs::read_to_string(&broken).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let unknown = format!(
        "{}:{}:13: error[MB004]: unknown type `Itme`",
        broken.display(),
        line_of("Itme")
    );
    let status = format!("{}:{}:", broken.display(), line_of("status: 99"));
    assert!(
        run.stderr
            .contains(&format!("warning: caspian-ipc-build-fixture@0.0.0: {unknown}")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&format!("Error: {status}")), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("  {unknown}\n")), "{}", run.stderr);
    assert!(
        run.stderr.contains("= help: did you mean `Item`?"),
        "{}",
        run.stderr
    );
}
