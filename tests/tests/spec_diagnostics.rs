//! The spec loader: the shipped spec is valid; every invalid fixture (one error class
//! each) renders its diagnostics rustc-style (insta snapshots); no input panics it.

use mikobase_spec::{load_str, render_all, Builder, Code, TypeRef, MIKOBASE_YAML};

#[test]
fn the_shipped_spec_is_valid_and_complete() {
    let spec = load_str(MIKOBASE_YAML)
        .unwrap_or_else(|d| panic!("{}", render_all(&d, "mikobase.yaml", MIKOBASE_YAML)));
    let documented: Vec<&str> = spec
        .errors
        .iter()
        .filter(|e| e.documented)
        .map(|e| e.id.wire.as_str())
        .collect();
    assert_eq!(
        documented,
        [
            "invalid_request",
            "class-not-found",
            "record_not_found",
            "record_deleted",
            "invalid-mode",
            "mode-not-supported",
            "read-only-connection",
            "action-not-supported",
            "request-too-large",
            "transaction-not-found",
            "transaction-invalidated",
        ],
        "the eleven documented ids, exact strings"
    );
    let actions: Vec<&str> = spec.operations.iter().map(|o| o.name.wire.as_str()).collect();
    for action in [
        "select",
        "create",
        "update",
        "delete",
        "transaction",
        "commit",
        "rollback",
        "record_by_pk",
        "by_class",
        "validate",
        "import_schema",
        "export_schema",
        "import_worldlet",
        "export_worldlet",
    ] {
        assert!(actions.contains(&action), "{action} missing");
    }
    let record = spec.type_named("Record").unwrap();
    let pos = record.name.pos.unwrap();
    assert_eq!(
        MIKOBASE_YAML.lines().nth(pos.line as usize - 1).unwrap().trim(),
        "Record:",
        "names keep their line"
    );
}

#[test]
fn invalid_fixtures_render_their_diagnostics() {
    insta::glob!("../specs/invalid", "*.yaml", |path| {
        let source = std::fs::read_to_string(path).unwrap();
        let name = format!(
            "tests/specs/invalid/{}",
            path.file_name().unwrap().to_string_lossy()
        );
        let diagnostics = load_str(&source).expect_err("an invalid fixture must not load");
        insta::assert_snapshot!(render_all(&diagnostics, &name, &source));
    });
}

#[test]
fn every_fixture_is_named_after_its_code() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/invalid");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(code) = file.strip_prefix("mb").and_then(|f| f.get(..3)) else {
            continue;
        };
        let diagnostics = load_str(&std::fs::read_to_string(&path).unwrap()).unwrap_err();
        assert!(
            diagnostics.iter().all(|d| d.code.as_str() == format!("MB{code}")),
            "{file}: {:?}",
            diagnostics.iter().map(|d| d.code).collect::<Vec<_>>()
        );
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let source = include_str!("../specs/invalid/many_problems.yaml");
    let codes: Vec<Code> = load_str(source).unwrap_err().iter().map(|d| d.code).collect();
    assert_eq!(codes, vec![Code::MB004, Code::MB008, Code::MB009, Code::MB005]);
}

#[test]
fn every_problem_of_a_union_is_reported_at_once() {
    let source = include_str!("../specs/invalid/union_problems.yaml");
    let codes: Vec<Code> = load_str(source).unwrap_err().iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        vec![
            Code::MB001,
            Code::MB004,
            Code::MB006,
            Code::MB009,
            Code::MB013,
            Code::MB010
        ]
    );
}

/// The service trait and the client proxy are named after `spec:`, so a name that makes
/// no Rust type name is refused at its place (the generator would have nothing to call
/// them); any name that does is read.
#[test]
fn the_spec_name_must_make_a_rust_type_name() {
    let spec = |name: &str| format!("spec: {name}\nversion: 1.0.0\ndescription: d.\n");
    for bad in ["'123'", "'über'", "'-'"] {
        let diagnostics = load_str(&spec(bad)).unwrap_err();
        assert_eq!(diagnostics.len(), 1, "{bad}: {diagnostics:?}");
        assert_eq!(diagnostics[0].code, Code::MB002, "{bad}");
        assert!(
            diagnostics[0].message.contains("does not make a Rust type name"),
            "{bad}: {}",
            diagnostics[0].message
        );
        assert_eq!(
            diagnostics[0].pos.map(|p| (p.line, p.column)),
            Some((1, 7)),
            "{bad}"
        );
    }
    for good in ["mikobase", "my-api", "shop_v2", "Tiny"] {
        assert!(load_str(&spec(good)).is_ok(), "{good}");
    }
}

/// `runtime: true` names a type of the support module: the loader accepts only the names
/// it provides, and no alias, each refused at the type's name.
#[test]
fn a_runtime_type_is_one_the_support_module_provides() {
    let spec = |name: &str, kind: &str| {
        format!(
            "spec: t\nversion: 1.0.0\ndescription: d.\ntypes:\n  {name}:\n    {kind}\n    runtime: true\n    description: p.\n"
        )
    };
    let struct_kind = "kind: struct\n    fields: {id: {type: string, description: i.}}";
    let ok = load_str(&spec("Problem", struct_kind)).unwrap();
    assert!(ok.type_named("Problem").unwrap().runtime);

    let unknown = load_str(&spec("Problme", struct_kind)).unwrap_err();
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert_eq!(unknown[0].code, Code::MB004);
    assert_eq!(unknown[0].message, "the runtime provides no type `Problme`");
    assert_eq!(unknown[0].help.as_deref(), Some("did you mean `Problem`?"));
    assert_eq!(unknown[0].pos.map(|p| (p.line, p.column)), Some((5, 3)));
    let other = load_str(&spec("Widget", struct_kind)).unwrap_err();
    assert_eq!(other[0].code, Code::MB004);
    assert!(
        other[0]
            .help
            .as_deref()
            .unwrap()
            .contains("the runtime provides `Problem`"),
        "{other:?}"
    );

    let alias = load_str(&spec("Problem", "kind: alias\n    type: string")).unwrap_err();
    assert_eq!(alias.len(), 1, "{alias:?}");
    assert_eq!(alias[0].code, Code::MB001);
    assert!(alias[0].message.contains("is an alias"), "{alias:?}");
}

/// The shipped spec marks every runtime type, so the runtime's own generated code
/// re-exports each (it compiles only while the support module has them); the generated
/// `Problem` is the support module's, and it serializes with exactly the declared fields.
#[test]
fn the_shipped_spec_takes_every_runtime_type_from_the_runtime() {
    use caspian_ipc::mikobase::{generated, support, ValidationReport};

    let spec = load_str(MIKOBASE_YAML).unwrap();
    for name in mikobase_spec::RUNTIME_TYPES {
        let def = spec
            .type_named(name)
            .unwrap_or_else(|| panic!("the shipped spec declares `{name}`"));
        assert!(def.runtime, "`{name}` is the runtime's (`runtime: true`)");
    }
    let problem: support::Problem = generated::Problem::new("x", serde_json::json!({"fix": "y"}));
    let report = ValidationReport {
        errors: vec![problem.clone()],
        warnings: Vec::new(),
    };
    assert_eq!(report.errors[0], problem);
    let serialized = serde_json::to_value(&problem).unwrap();
    let mut keys: Vec<&str> = serialized
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mikobase_spec::TypeKind::Struct { fields, .. } = &spec.type_named("Problem").unwrap().kind else {
        panic!("`Problem` is a struct")
    };
    let mut declared: Vec<&str> = fields.iter().map(|f| f.name.wire.as_str()).collect();
    declared.sort_unstable();
    assert_eq!(
        keys, declared,
        "the runtime's `Problem` serializes as the spec declares it"
    );
    let back: support::Problem = serde_json::from_value(serialized).unwrap();
    assert_eq!(back, problem);
}

/// The IR as JSON without positions (the builder has none).
fn without_positions(spec: &mikobase_spec::ApiSpec) -> serde_json::Value {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("pos");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(spec).unwrap();
    strip(&mut value);
    value
}

#[test]
fn the_builder_makes_the_ir_the_loader_makes() {
    let loaded = load_str(
        "spec: mikobase\nversion: 1.0.0\ndescription: d\ntypes:\n  ClassFilter:\n    kind: union\n    description: One class name or several.\n    variants:\n      one: {type: string, description: One.}\n      many: {type: list<string>, description: Several.}\n",
    )
    .unwrap();
    let built = Builder::new("mikobase", "1.0.0")
        .description("d")
        .union(
            "ClassFilter",
            "One class name or several.",
            vec![
                Builder::variant("one", TypeRef::String, "One."),
                Builder::variant("many", TypeRef::List(Box::new(TypeRef::String)), "Several."),
            ],
        )
        .build();
    assert_eq!(without_positions(&built), without_positions(&loaded));
    let mikobase_spec::TypeKind::Union(variants) = &loaded.types[0].kind else {
        panic!("a union: {:?}", loaded.types[0].kind);
    };
    let pos = variants[1]
        .name
        .pos
        .expect("variants keep positions like every name");
    assert_eq!((pos.line, pos.column), (10, 7));
}

#[test]
fn no_input_panics_the_loader() {
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let inputs: Vec<String> = vec![
        String::new(),
        "---".into(),
        "[1, 2]".into(),
        "spec: [".into(),
        "\u{0}\u{1}\u{2}".into(),
        "spec: 3\nversion: {}".into(),
        deep,
        "spec: mikobase\nversion: 1.0.0\ntypes: 7".into(),
        "spec: mikobase\nversion: 1.0.0\noperations: {a: {kind: q0, result: 'list<list<'}}".into(),
        "a: &x [*x]".into(),
        "spec: mikobase\nversion: 1.0.0\nerrors: {e: {status: -1, description: x}}".into(),
        "spec: mikobase\nversion: 1.0.0\ntypes: {U: {kind: union, description: u, variants: 3}}".into(),
        "spec: mikobase\nversion: 1.0.0\ntypes: {U: {kind: union, description: u, variants: {a: {type: [1]}}}}"
            .into(),
        "spec: mikobase\nversion: 1.0.0\ntypes: {U: {kind: union, description: u, variants: {a: {type: U, description: a}, b: {type: U}}}}"
            .into(),
        "spec: mikobase\nversion: 1.0.0\ntypes: {A: {kind: alias, type: A, description: a}, U: {kind: union, description: u, variants: {a: {type: A, description: a}, b: {type: A, description: b}}}, X: {kind: struct, description: x, fields: {n: {type: u64, nullable: 1, description: n}}}}".into(),
    ];
    for (i, input) in inputs.iter().enumerate() {
        let outcome = std::panic::catch_unwind(|| load_str(input));
        assert!(outcome.is_ok(), "input {i} panicked");
        assert!(outcome.unwrap().is_err(), "input {i} is not a valid spec");
    }
}
