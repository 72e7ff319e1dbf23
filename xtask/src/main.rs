//! `cargo xtask`: developer tasks. Thin front end: all logic lives in the library crates.
//!
//! - `cargo xtask check-spec [PATH]`: print every diagnostic of a spec file (rustc-style,
//!   `PATH:LINE:COL`); exit 1 on errors, 0 when the spec is valid.

mod check_spec;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask check-spec [PATH]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("check-spec") => check_spec::run(args.get(1).map(String::as_str)),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
