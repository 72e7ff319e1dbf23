//! `cargo xtask`: developer tasks. Thin front end: all logic lives in the library crates.
//!
//! - `cargo xtask codegen [--check]`: regenerate `runtime/src/mikobase/generated.rs` and
//!   `docs/openapi.json` from the spec, and `tests/src/fixtures/` from the valid spec
//!   fixtures (compiled there); with `--check`, exit 1 when any is stale.
//! - `cargo xtask check-spec [PATH]`: print every diagnostic of a spec file (rustc-style,
//!   `PATH:LINE:COL`); exit 1 on errors, 0 when the spec is valid.
//! - `cargo xtask spec-diff OLD NEW`: what the change from OLD to NEW breaks for existing
//!   clients and servers, each change located in both files; exit 1 on a breaking change,
//!   0 when every change is compatible, 2 when a spec does not load.
//! - `cargo xtask bench [--quick] [--rounds N]`: run the benchmarks (pinned and unpinned,
//!   interleaved) and rewrite their tables in `docs/BENCHMARKS.md`.
//! - `cargo xtask corpus [--mib N] OUT`: write the deterministic text `word_count` is
//!   measured on (100 MiB by default).

mod bench;
mod check_spec;
mod codegen;
mod corpus;
mod spec_diff;

use std::process::ExitCode;

const USAGE: &str =
    "usage: cargo xtask codegen [--check] | cargo xtask check-spec [PATH] | cargo xtask spec-diff OLD NEW | cargo xtask bench [--quick] [--rounds N] | cargo xtask corpus [--mib N] OUT";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => bench::run(&args[1..]),
        Some("corpus") => corpus::run(&args[1..]),
        Some("check-spec") => check_spec::run(args.get(1).map(String::as_str)),
        Some("spec-diff") => match &args[1..] {
            [old, new] => spec_diff::run(old, new),
            _ => {
                eprintln!("spec-diff takes two spec files, OLD and NEW\n{USAGE}");
                ExitCode::from(2)
            }
        },
        Some("codegen") => match args.get(1).map(String::as_str) {
            None => codegen::run(false),
            Some("--check") => codegen::run(true),
            Some(other) => {
                eprintln!("unknown option `{other}`\n{USAGE}");
                ExitCode::from(2)
            }
        },
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
