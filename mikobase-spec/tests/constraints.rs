//! The constraint keywords (D-C2 in docs/DECISIONS.md): loaded into the IR, and a
//! `requires_any` that names no optional request field refused.

use mikobase_spec::{load_str, Code};

const SPEC: &str = r#"
spec: t
version: 1.0.0
description: A spec.
types:
  Name: {kind: alias, type: string, min_length: 1, description: A name.}
  Block:
    kind: struct
    open: true
    refuses_unknown: true
    passthrough: true
    description: A block.
    fields:
      tag: {type: string, optional: true, pattern: "^t-", description: A tag.}
errors:
  invalid_request: {status: 400, description: Bad.}
  request-too-large: {status: 413, description: Big.}
  action-not-supported: {status: 501, description: No.}
operations:
  put:
    kind: q0
    description: Puts.
    requires_any: [REQUIRED]
    request:
      pk: {type: string, description: The pk.}
      a: {type: Name, optional: true, description: One.}
      b: {type: Block, optional: true, description: Other.}
    result: string
    errors: [invalid_request, request-too-large, action-not-supported]
"#;

#[test]
fn the_keywords_reach_the_ir() {
    let spec = load_str(&SPEC.replace("REQUIRED", "a, b")).unwrap_or_else(|d| panic!("{d:?}"));
    let name = spec.type_named("Name").unwrap();
    assert_eq!(name.constraints.min_length, Some(1));
    let block = spec.type_named("Block").unwrap();
    assert!(block.refuses_unknown && block.passthrough);
    let mikobase_spec::TypeKind::Struct { fields, .. } = &block.kind else {
        panic!("{block:?}")
    };
    assert_eq!(fields[0].constraints.pattern.as_deref(), Some("^t-"));
    let names: Vec<&str> = spec.operations[0]
        .requires_any
        .iter()
        .map(|n| n.wire.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn requires_any_names_optional_request_fields_only() {
    for wrong in ["pk", "nope"] {
        let problems = load_str(&SPEC.replace("REQUIRED", wrong)).expect_err(wrong);
        assert!(
            problems.iter().any(|d| d.code == Code::MB001
                && d.message.contains("requires_any")
                && d.message.contains(wrong)),
            "{wrong}: {problems:?}"
        );
    }
}

#[test]
fn spec_diff_judges_the_constraints() {
    let old = load_str(&SPEC.replace("REQUIRED", "a, b")).unwrap_or_else(|d| panic!("{d:?}"));
    // Narrowed in a request: breaking.
    let tighter = SPEC
        .replace("REQUIRED", "a")
        .replace("min_length: 1", "min_length: 2")
        .replace("    passthrough: true\n", "");
    let new = load_str(&tighter).unwrap_or_else(|d| panic!("{d:?}"));
    let changes = mikobase_spec::diff(&old, &new);
    let constraints: Vec<_> = changes
        .iter()
        .filter(|c| c.kind == mikobase_spec::ChangeKind::ConstraintsChanged)
        .collect();
    assert_eq!(constraints.len(), 3, "{changes:#?}");
    assert!(constraints.iter().all(|c| c.is_breaking()), "{constraints:#?}");
    // Widened in a request: compatible.
    let back = mikobase_spec::diff(&new, &old);
    let constraints: Vec<_> = back
        .iter()
        .filter(|c| c.kind == mikobase_spec::ChangeKind::ConstraintsChanged)
        .collect();
    assert_eq!(constraints.len(), 3, "{back:#?}");
    assert!(constraints.iter().all(|c| !c.is_breaking()), "{constraints:#?}");
}
