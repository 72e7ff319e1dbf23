//! Each layer of the generator, per valid spec (every `tests/specs/*.yaml` and the shipped
//! spec): the IR the loader makes, then the formatted output (prettyplease, as checked
//! in) of each emitter on its own, and the OpenAPI document. One snapshot per emitter, so
//! a change to the dispatch table shows as one small diff.

use caspian_ipc_codegen::{generate_part, openapi, render_file, Emitter};
use mikobase_spec::{load_str, render_all, MIKOBASE_YAML};

fn snapshot_every_layer(name: &str, source: &str) {
    let spec = load_str(source).unwrap_or_else(|d| panic!("{}", render_all(&d, name, source)));
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

#[test]
fn the_shipped_spec() {
    insta::with_settings!({snapshot_suffix => "mikobase.yaml"}, {
        snapshot_every_layer("mikobase-spec/mikobase.yaml", MIKOBASE_YAML);
    });
}
