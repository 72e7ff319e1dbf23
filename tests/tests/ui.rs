//! Compile-time behaviour of the macros (trybuild): `ui/pass` must build warning-free and
//! run; `ui/fail` must fail with exactly the committed `.stderr` (what a user sees, spans
//! included). After a deliberate change or a toolchain bump, regenerate with
//! `TRYBUILD=overwrite cargo test -p caspian-ipc-tests --test ui` and review the diff.
//!
//! trybuild builds the cases in its own project under `target/tests/trybuild/`, which is
//! the cases' `CARGO_MANIFEST_DIR`: spec paths in `ui/` cases are written relative to it.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui/pass/*.rs");
    cases.compile_fail("ui/fail/*.rs");
}
