//! `cargo xtask codegen [--check]`: writes the checked-in bindings from the spec.

use std::path::Path;
use std::process::ExitCode;

use crate::check_spec::{workspace_root, DEFAULT_SPEC};

/// Where the generated Rust goes.
pub const GENERATED_RS: &str = "runtime/src/mikobase/generated.rs";
/// Where the OpenAPI document goes.
pub const OPENAPI_JSON: &str = "docs/openapi.json";
/// The valid spec fixtures, whose generated code is compiled (and linted) in the tests crate.
pub const FIXTURES: &str = "tests/specs";
/// Where their generated code goes, one module each.
pub const FIXTURES_RS: &str = "tests/src/fixtures";

fn load(root: &Path, path: &str) -> Result<mikobase_spec::ApiSpec, String> {
    mikobase_spec::load_file(&root.join(path))
        .map(|(spec, _)| spec)
        .map_err(|(diagnostics, source)| mikobase_spec::render_all(&diagnostics, path, &source))
}

fn rust(
    spec: &mikobase_spec::ApiSpec,
    options: caspian_ipc_codegen::Options,
    source: &str,
) -> Result<String, String> {
    let options = options.with_header(caspian_ipc_codegen::header(source));
    caspian_ipc_codegen::render_rust_with(spec, &options).map_err(|e| e.to_string())
}

/// The files the spec and the fixtures produce: (path relative to the root, contents).
pub fn outputs(root: &Path) -> Result<Vec<(String, String)>, String> {
    let spec = load(root, DEFAULT_SPEC)?;
    let openapi = caspian_ipc_codegen::openapi_json(&spec).map_err(|e| e.to_string())?;
    let mut files = vec![
        (
            GENERATED_RS.to_owned(),
            rust(&spec, caspian_ipc_codegen::Options::in_runtime(), DEFAULT_SPEC)?,
        ),
        (OPENAPI_JSON.to_owned(), openapi),
    ];
    let mut fixtures: Vec<String> = std::fs::read_dir(root.join(FIXTURES))
        .map_err(|e| format!("reading {FIXTURES}: {e}"))?
        .flatten()
        .filter_map(|entry| {
            entry
                .file_name()
                .to_str()?
                .strip_suffix(".yaml")
                .map(str::to_owned)
        })
        .collect();
    fixtures.sort();
    let mut modules = format!("// {}\n", caspian_ipc_codegen::header(FIXTURES));
    modules
        .push_str("//! The code generated from each valid spec fixture, compiled so it is known to build\n");
    modules.push_str("//! under `deny(missing_docs)` and clippy.\n#![deny(missing_docs)]\n");
    for name in &fixtures {
        let source = format!("{FIXTURES}/{name}.yaml");
        let spec = load(root, &source)?;
        files.push((
            format!("{FIXTURES_RS}/{name}.rs"),
            rust(&spec, caspian_ipc_codegen::Options::external(), &source)?,
        ));
        modules.push_str(&format!("\n#[rustfmt::skip]\npub mod {name};\n"));
    }
    files.push((format!("{FIXTURES_RS}/mod.rs"), modules));
    Ok(files)
}

/// Writes the outputs (or, with `check`, only reports which are stale). Returns the stale
/// paths.
pub fn generate(root: &Path, check: bool) -> Result<Vec<String>, String> {
    let mut stale = Vec::new();
    for (path, text) in outputs(root)? {
        let file = root.join(&path);
        let current = std::fs::read_to_string(&file).unwrap_or_default();
        if !caspian_ipc_codegen::up_to_date(&current, &text) {
            if !check {
                if let Some(dir) = file.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
                }
                std::fs::write(&file, text).map_err(|e| format!("writing {path}: {e}"))?;
            }
            stale.push(path);
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
