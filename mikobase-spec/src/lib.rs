//! The Mikobase surface as a spec file: loader, validator and IR.
//!
//! One YAML file (`mikobase-spec/mikobase.yaml`) describes every type, operation, error
//! id and route of the Mikobase surface. [`load_str`] turns it into an [`ApiSpec`] whose
//! names all keep their `line:col`, or returns *every* problem as a [`Diagnostic`] with
//! a stable code, rendered rustc-style by [`Diagnostic::render`]. [`Builder`] makes the
//! same IR in code. No syn or quote here: the generator (`codegen/`) reads the IR.
//!
//! YAML is read with serde-saphyr: serde-compatible, maintained, and it keeps source
//! positions for every value (`Spanned<T>`), where serde_yaml (archived) locates only
//! syntax errors.
//!
//! [`diff()`] compares two loaded specs: what a change breaks for existing clients and
//! servers ([`Change`], rendered by [`render_changes`]).

mod builder;
mod diagnostic;
mod diff;
mod ir;
mod load;

pub use builder::Builder;
pub use diagnostic::{render_all, suggest, Code, Diagnostic};
pub use diff::{diff, render_changes, Change, ChangeKind, Severity};
pub use ir::{
    ApiSpec, Constraints, ErrorDef, Field, Name, OpKind, Operation, Pos, TypeDef, TypeKind, TypeRef, Variant,
    RUNTIME_TYPES,
};
pub use load::{load_str, parse_type};

/// The spec shipped with the project.
pub const MIKOBASE_YAML: &str = include_str!("../mikobase.yaml");

/// Loads a spec file; an unreadable file is a diagnostic too.
pub fn load_file(path: &std::path::Path) -> Result<(ApiSpec, String), (Vec<Diagnostic>, String)> {
    match std::fs::read_to_string(path) {
        Ok(source) => match load_str(&source) {
            Ok(spec) => Ok((spec, source)),
            Err(diagnostics) => Err((diagnostics, source)),
        },
        Err(e) => Err((
            vec![Diagnostic::new(
                Code::MB001,
                format!("cannot read the spec: {e}"),
                None,
                1,
            )],
            String::new(),
        )),
    }
}
