//! `diff` on the fixture files: every change of `evolution_old.yaml` -> `evolution_new.yaml`
//! (breaking) and -> `evolution_compatible.yaml`, with its place in both files.

use std::path::Path;

use mikobase_spec::{diff, load_file, ApiSpec, Change, ChangeKind, Pos, Severity};

fn fixture(name: &str) -> ApiSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    match load_file(&path) {
        Ok((spec, _)) => spec,
        Err((d, source)) => panic!("{}", mikobase_spec::render_all(&d, name, &source)),
    }
}

fn pos(line: u32, column: u32) -> Option<Pos> {
    Some(Pos { line, column })
}

/// (kind, severity, old place, new place) of each change.
fn summary(changes: &[Change]) -> Vec<(ChangeKind, Severity, Option<Pos>, Option<Pos>)> {
    changes
        .iter()
        .map(|c| (c.kind, c.severity, c.old_span, c.new_span))
        .collect()
}

#[test]
fn every_breaking_change_of_the_fixture_is_found_and_located() {
    use ChangeKind::*;
    use Severity::*;
    let changes = diff(&fixture("evolution_old.yaml"), &fixture("evolution_new.yaml"));
    assert_eq!(
        summary(&changes),
        vec![
            (VersionChanged, Compatible, None, None),
            (EnumValueRemoved, Breaking, pos(12, 21), pos(10, 3)),
            (FieldAdded, Compatible, pos(14, 3), pos(21, 7)),
            (TypeRemoved, Breaking, pos(21, 3), None),
            (TypeAdded, Compatible, None, pos(22, 3)),
            (ErrorStatusChanged, Breaking, pos(31, 3), pos(32, 3)),
            (ErrorAdded, Compatible, None, pos(33, 3)),
            (DescriptionChanged, Compatible, pos(33, 3), pos(35, 3)),
            (RouteChanged, Breaking, pos(35, 12), pos(37, 12)),
            (FieldTypeChanged, Compatible, pos(46, 7), pos(48, 7)),
            (FieldMadeRequired, Breaking, pos(47, 7), pos(49, 7)),
            (OperationErrorAdded, Compatible, pos(41, 3), pos(51, 47)),
            (OperationRemoved, Breaking, pos(50, 3), None),
            (OperationAdded, Compatible, None, pos(52, 3)),
        ],
        "{changes:#?}"
    );
    let renamed = &changes[3];
    assert!(
        renamed.message.contains("`Cart` was added with the same shape"),
        "{}",
        renamed.message
    );
}

#[test]
fn the_compatible_fixture_breaks_nothing() {
    let changes = diff(
        &fixture("evolution_old.yaml"),
        &fixture("evolution_compatible.yaml"),
    );
    assert_eq!(changes.len(), 6, "{changes:#?}");
    assert!(changes.iter().all(|c| !c.is_breaking()), "{changes:#?}");
}

#[test]
fn each_fixture_against_itself_differs_in_nothing() {
    for name in [
        "evolution_old.yaml",
        "evolution_new.yaml",
        "evolution_compatible.yaml",
    ] {
        let spec = fixture(name);
        assert_eq!(diff(&spec, &spec), vec![], "{name}");
    }
}
