//! `cargo xtask codegen [--check]`: writes the checked-in bindings from the spec.

use std::path::Path;
use std::process::ExitCode;

use crate::check_spec::{workspace_root, DEFAULT_SPEC};

/// Where the generated Rust goes.
pub const GENERATED_RS: &str = "runtime/src/mikobase/generated.rs";
/// Where the OpenAPI document goes.
pub const OPENAPI_JSON: &str = "docs/openapi.json";

/// The files the spec produces: (path relative to the root, contents).
pub fn outputs(root: &Path) -> Result<Vec<(&'static str, String)>, String> {
    let (spec, _) = mikobase_spec::load_file(&root.join(DEFAULT_SPEC))
        .map_err(|(diagnostics, source)| mikobase_spec::render_all(&diagnostics, DEFAULT_SPEC, &source))?;
    let tokens = caspian_ipc_codegen::generate(&spec, &caspian_ipc_codegen::Options::in_runtime());
    let rust = caspian_ipc_codegen::render_file(tokens, &caspian_ipc_codegen::header(DEFAULT_SPEC))?;
    let openapi =
        serde_json::to_string_pretty(&caspian_ipc_codegen::openapi(&spec)).map_err(|e| e.to_string())? + "\n";
    Ok(vec![(GENERATED_RS, rust), (OPENAPI_JSON, openapi)])
}

/// Writes the outputs (or, with `check`, only reports which are stale). Returns the stale
/// paths.
pub fn generate(root: &Path, check: bool) -> Result<Vec<&'static str>, String> {
    let mut stale = Vec::new();
    for (path, text) in outputs(root)? {
        let file = root.join(path);
        let current = std::fs::read_to_string(&file)
            .unwrap_or_default()
            .replace("\r\n", "\n");
        if current != text {
            stale.push(path);
            if !check {
                std::fs::write(&file, text).map_err(|e| format!("writing {path}: {e}"))?;
            }
        }
    }
    Ok(stale)
}

pub fn run(check: bool) -> ExitCode {
    match generate(&workspace_root(), check) {
        Ok(stale) if stale.is_empty() => {
            println!("generated files are up to date");
            ExitCode::SUCCESS
        }
        Ok(stale) if check => {
            eprintln!(
                "stale: {}\nrun `cargo xtask codegen` and commit the result",
                stale.join(", ")
            );
            ExitCode::from(1)
        }
        Ok(stale) => {
            println!("wrote {}", stale.join(", "));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stale generated code fails `cargo test`: locally the files are rewritten (then this
    /// fails once, so the change is noticed); on CI nothing is written.
    #[test]
    fn generated_code_is_fresh() {
        let root = workspace_root();
        let on_ci = std::env::var_os("CI").is_some();
        let stale = generate(&root, on_ci).expect("the spec generates");
        assert!(
            stale.is_empty(),
            "stale generated files: {}; {}",
            stale.join(", "),
            if on_ci {
                "run `cargo xtask codegen` and commit"
            } else {
                "they were regenerated: review and commit"
            }
        );
    }

    #[test]
    fn generation_is_deterministic() {
        let root = workspace_root();
        assert_eq!(outputs(&root).unwrap(), outputs(&root).unwrap());
    }
}
