//! `cargo xtask spec-diff OLD NEW`: what the change from OLD to NEW breaks. The comparison
//! is `mikobase_spec::diff`; this only loads, prints and sets the exit status.

use std::path::Path;
use std::process::ExitCode;

/// 0: only compatible changes (or none); 1: a breaking change; 2: a spec does not load.
pub fn run(old_path: &str, new_path: &str) -> ExitCode {
    let old = mikobase_spec::load_file(Path::new(old_path));
    let new = mikobase_spec::load_file(Path::new(new_path));
    let (old, new) = match (old, new) {
        (Ok((old, _)), Ok((new, _))) => (old, new),
        (old, new) => {
            for (path, loaded) in [(old_path, old), (new_path, new)] {
                if let Err((diagnostics, source)) = loaded {
                    eprint!("{}", mikobase_spec::render_all(&diagnostics, path, &source));
                }
            }
            eprintln!("spec-diff: cannot compare specs that do not load");
            return ExitCode::from(2);
        }
    };
    let changes = mikobase_spec::diff(&old, &new);
    print!("{}", mikobase_spec::render_changes(&changes, old_path, new_path));
    if changes.iter().any(mikobase_spec::Change::is_breaking) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
