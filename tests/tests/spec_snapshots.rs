//! Each layer of the generator, per valid spec fixture (every `tests/specs/*.yaml`): the
//! IR the loader makes, then the formatted output (prettyplease, as checked in) of each
//! emitter on its own, and the OpenAPI document. One snapshot per emitter, so a change to
//! the dispatch table shows as one small diff.
//!
//! The shipped spec has only its IR here: its generated texts have one golden copy each,
//! the checked-in `runtime/src/mikobase/generated.rs` and `docs/openapi.json`, which
//! `cargo xtask codegen --check` and xtask's `generated_code_is_fresh` (part of `cargo
//! test`) compare with the generator's output (D-G4).

use caspian_ipc_codegen::{generate_part, openapi, render_file, Emitter};
use mikobase_spec::{load_str, render_all, MIKOBASE_YAML};

fn load(name: &str, source: &str) -> mikobase_spec::ApiSpec {
    load_str(source).unwrap_or_else(|d| panic!("{}", render_all(&d, name, source)))
}

fn snapshot_every_layer(name: &str, source: &str) {
    let spec = load(name, source);
    insta::assert_yaml_snapshot!("ir", spec);
    for emitter in Emitter::ALL {
        let text = render_file(generate_part(&spec, emitter), "")
            .unwrap_or_else(|e| panic!("{name}, {}: {e}", emitter.name()));
        insta::assert_snapshot!(emitter.name(), text);
    }
    let document = serde_json::to_string_pretty(&openapi(&spec)).unwrap();
    insta::assert_snapshot!("openapi", document);
}

#[test]
fn every_valid_fixture() {
    insta::glob!("../specs", "*.yaml", |path| {
        let source = std::fs::read_to_string(path).unwrap();
        snapshot_every_layer(&path.display().to_string(), &source);
    });
}

/// The shipped spec's IR (its generated texts are checked in once, as the runtime's
/// `generated.rs` and `docs/openapi.json`).
#[test]
fn the_shipped_spec_ir() {
    insta::with_settings!({snapshot_suffix => "mikobase.yaml"}, {
        insta::assert_yaml_snapshot!("ir", load("mikobase-spec/mikobase.yaml", MIKOBASE_YAML));
    });
}

/// Every snapshot file belongs to a fixture and a layer that still exist: a removed
/// fixture or emitter cannot leave a stale snapshot behind (what `cargo insta test
/// --unreferenced=reject` would check, without needing cargo-insta).
#[test]
fn no_snapshot_is_orphaned() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // The sorted names of the files in `sub` that end with `suffix`.
    let names = |sub: &str, suffix: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(suffix))
            .collect();
        names.sort();
        names
    };
    let mut layers: Vec<&str> = Emitter::ALL.iter().map(|e| e.name()).collect();
    layers.extend(["ir", "openapi"]);
    let mut expected: Vec<String> = Vec::new();
    for fixture in names("specs", ".yaml") {
        for layer in &layers {
            expected.push(format!("spec_snapshots__{layer}@{fixture}.snap"));
        }
    }
    expected.push("spec_snapshots__ir@mikobase.yaml.snap".to_owned());
    for fixture in names("specs/invalid", ".yaml") {
        expected.push(format!(
            "spec_diagnostics__invalid_fixtures_render_their_diagnostics@{fixture}.snap"
        ));
    }
    expected.sort();
    let present = names("tests/snapshots", ".snap");
    assert_eq!(present, expected, "snapshot files and fixtures × layers differ");
}
