//! `cargo xtask check-spec [PATH]`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The project's spec, relative to the workspace root.
pub const DEFAULT_SPEC: &str = "mikobase-spec/mikobase.yaml";

/// The workspace root (xtask's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub fn run(path: Option<&str>) -> ExitCode {
    let shown = path.unwrap_or(DEFAULT_SPEC);
    let file = match path {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join(DEFAULT_SPEC),
    };
    match mikobase_spec::load_file(&file) {
        Ok((spec, _)) => {
            println!(
                "{shown}: ok ({} types, {} operations, {} error ids)",
                spec.types.len(),
                spec.operations.len(),
                spec.errors.len()
            );
            ExitCode::SUCCESS
        }
        Err((diagnostics, source)) => {
            eprint!("{}", mikobase_spec::render_all(&diagnostics, shown, &source));
            ExitCode::from(1)
        }
    }
}
