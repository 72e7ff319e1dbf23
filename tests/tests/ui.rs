//! Compile-time behaviour of the macros (trybuild): `ui/pass` must build warning-free and
//! run; `ui/fail` must fail with exactly the committed `.stderr` (what a user sees, spans
//! included). After a deliberate change or a toolchain bump, regenerate with
//! `TRYBUILD=overwrite cargo test -p caspian-ipc-tests --test ui` and review the diff.
//!
//! trybuild builds the cases in a project of its own, `<target dir>/tests/trybuild/
//! caspian-ipc-tests/`, which is the cases' `CARGO_MANIFEST_DIR`, and the target directory
//! is wherever `CARGO_TARGET_DIR` (or `build.target-dir`) puts it. So the cases name their
//! specs as a user's crate does, `"specs/..."` and `"mikobase-spec/mikobase.yaml"`, and this
//! test first links this crate's `specs/` and the workspace's `mikobase-spec/` into that
//! project. The macro canonicalizes the path, so its messages show the real file
//! (`$DIR/specs/...` once trybuild has normalized them), wherever the target directory is.

use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn ui() {
    let project = trybuild_project();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    link(&here.join("specs"), &project.join("specs"));
    link(&here.join("../mikobase-spec"), &project.join("mikobase-spec"));

    let cases = trybuild::TestCases::new();
    cases.pass("ui/pass/*.rs");
    cases.compile_fail("ui/fail/*.rs");
}

/// The directory trybuild builds the cases in: the one it computes, from the same
/// `cargo metadata` call (`target_directory`, then `tests/trybuild/<crate>`).
fn trybuild_project() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version=1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata is JSON");
    let target = metadata["target_directory"]
        .as_str()
        .expect("cargo metadata names the target directory");
    let project = Path::new(target)
        .join("tests/trybuild")
        .join(env!("CARGO_PKG_NAME"));
    std::fs::create_dir_all(&project).expect("the trybuild project directory can be created");
    project
}

/// `link` → `original` as a symbolic link, replacing whatever `link` was.
fn link(original: &Path, link: &Path) {
    let original = original
        .canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", original.display()));
    if std::fs::read_link(link).is_ok_and(|current| current == original) {
        return;
    }
    match std::fs::symlink_metadata(link) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(link),
        Ok(_) => std::fs::remove_file(link),
        Err(_) => Ok(()),
    }
    .unwrap_or_else(|e| panic!("{}: cannot replace it: {e}", link.display()));
    std::os::unix::fs::symlink(&original, link)
        .unwrap_or_else(|e| panic!("{} -> {}: {e}", link.display(), original.display()));
}
