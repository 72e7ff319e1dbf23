//! `docs/ARCHITECTURE.md` stays true: it names every source file under a crate's `src/`
//! (by basename at least), and every `*/src/*.rs` path it names exists.

use std::path::{Path, PathBuf};

/// The workspace root (this crate is `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
        .to_path_buf()
}

/// Every `.rs` file below `dir`, relative to `root`, with `/` separators. Bounded: the
/// source tree is small, and a directory link loop cannot run it forever.
fn rust_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    const MOST: usize = 10_000;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if out.len() >= MOST {
            return;
        }
        let path = entry.path();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            rust_files(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            if let Ok(relative) = path.strip_prefix(root) {
                let parts: Vec<String> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
    }
}

/// The `.rs` files under `*/src/` of the workspace (each top-level directory's `src/`),
/// and those of the build crate's fixture (a user's crate of its own), leaving out
/// `target/`.
fn source_files(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return files;
    };
    let mut crates: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            !name.starts_with('.') && name != "target"
        })
        .collect();
    crates.sort();
    crates.push(root.join("build/tests/fixture"));
    for krate in crates {
        rust_files(root, &krate.join("src"), &mut files);
    }
    files.retain(|f| !f.starts_with("target/"));
    files
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

/// Whether `doc` mentions `name` as a file name: not as the tail of a longer name
/// (`lib.rs` is not found in `rustlib.rs`).
fn mentions_file_name(doc: &str, name: &str) -> bool {
    doc.match_indices(name).any(|(at, _)| {
        let before = doc[..at].chars().next_back();
        let after = doc[at + name.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// The source files whose basename `doc` never mentions.
fn unmentioned<'a>(doc: &str, files: &'a [String]) -> Vec<&'a str> {
    files
        .iter()
        .map(String::as_str)
        .filter(|file| {
            let name = file.rsplit('/').next().unwrap_or(file);
            !mentions_file_name(doc, name)
        })
        .collect()
}

/// Every `.../src/....rs` path `doc` names (a run of path characters around `/src/`
/// ending in `.rs`; patterns such as `*/src/*.rs` are not paths and are skipped).
fn named_source_paths(doc: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for (at, _) in doc.match_indices("/src/") {
        let start = doc[..at]
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_path_char(*c))
            .last()
            .map_or(at, |(i, _)| i);
        let end = doc[at..]
            .char_indices()
            .find(|(_, c)| !is_path_char(*c))
            .map_or(doc.len(), |(i, _)| at + i);
        let path = doc[start..end].trim_end_matches('.');
        let path = path.strip_prefix("./").unwrap_or(path);
        if start < at && path.ends_with(".rs") && !paths.iter().any(|p| p == path) {
            paths.push(path.to_owned());
        }
    }
    paths
}

#[test]
fn the_architecture_names_every_source_file_and_only_existing_ones() {
    let root = root();
    let doc_path = root.join("docs/ARCHITECTURE.md");
    let doc =
        std::fs::read_to_string(&doc_path).unwrap_or_else(|e| panic!("reading {}: {e}", doc_path.display()));
    let files = source_files(&root);
    assert!(
        files.iter().any(|f| f == "runtime/src/lib.rs"),
        "the source walk found no runtime/src/lib.rs under {}: {files:?}",
        root.display()
    );
    let missing = unmentioned(&doc, &files);
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md does not mention these source files: {missing:?}; add them to its code map"
    );
    let dangling: Vec<String> = named_source_paths(&doc)
        .into_iter()
        .filter(|p| !root.join(p).is_file())
        .collect();
    assert!(
        dangling.is_empty(),
        "docs/ARCHITECTURE.md names source paths that do not exist: {dangling:?}; fix or remove them"
    );
}

/// The checks themselves fail on a stale document.
#[test]
fn a_stale_document_is_caught() {
    let files = vec!["runtime/src/lib.rs".to_owned(), "xtask/src/bench.rs".to_owned()];
    assert_eq!(
        unmentioned("see `runtime/src/lib.rs`", &files),
        ["xtask/src/bench.rs"]
    );
    assert_eq!(
        unmentioned("`lib.rs` and `mybench.rs`", &files),
        ["xtask/src/bench.rs"]
    );
    assert!(unmentioned("`lib.rs`, `bench.rs`.", &files).is_empty());
    assert_eq!(
        named_source_paths(
            "a `runtime/src/uds/gone.rs`, `*/src/*.rs`, `runtime/src/uds/` and runtime/src/lib.rs."
        ),
        ["runtime/src/uds/gone.rs", "runtime/src/lib.rs"]
    );
}
