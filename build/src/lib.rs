//! The build-script front end of the Mikobase generator (the convention of prost-build and
//! tonic-build). Thin: loading, generating and formatting are `caspian_ipc_codegen`'s
//! ([`caspian_ipc_codegen::render_rust_with`], the function `cargo xtask codegen` writes
//! through), so this crate only resolves paths, writes files and talks to cargo.
//!
//! # Generating into `OUT_DIR`
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! caspian-ipc = "0.1"
//!
//! [build-dependencies]
//! caspian-ipc-build = "0.1"
//! ```
//!
//! `build.rs`:
//!
//! ```no_run
//! fn main() -> Result<(), caspian_ipc_build::Error> {
//!     caspian_ipc_build::compile("specs/my.yaml")
//! }
//! ```
//!
//! `src/lib.rs` (the file has no `//!` docs, so it can be `include!`d):
//!
//! ```ignore
//! pub mod api {
//!     include!(concat!(env!("OUT_DIR"), "/mikobase.rs"));
//! }
//! ```
//!
//! The build script prints `cargo:rerun-if-changed=<spec>`; a refused spec prints one
//! `cargo:warning=<spec>:LINE:COL: error[MBnnn]: ...` per problem and fails the build with
//! the same lines, each followed by the spec's line and a caret. [`configure`] gives a
//! [`Builder`] for the options (output directory and file name, the OpenAPI document).
//!
//! # Checking generated files into your repository
//!
//! To review generated code in diffs (or build without a build script), check the file in
//! (`src/api.rs`, used as `mod api;`) and let a test fail when it is stale:
//!
//! ```no_run
//! #[test]
//! fn generated_code_is_fresh() {
//!     caspian_ipc_build::check_fresh("specs/my.yaml", "src/api.rs").unwrap();
//! }
//! ```
//!
//! A stale (or missing) file fails with the command that regenerates it:
//! `CASPIAN_IPC_UPDATE=1 cargo test` rewrites it (then the test passes; review the diff and
//! commit). [`Builder::regenerate_command`] names another command, e.g. your own xtask.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The generator itself, for snapshot tests of a spec (`codegen::render_rust`,
/// `codegen::render_openapi`) with this crate as the only dev-dependency.
pub use caspian_ipc_codegen as codegen;
use caspian_ipc_codegen::{generated_header, openapi_json, render_rust_with, up_to_date, SpecSource};
pub use caspian_ipc_codegen::{Layout, Options};

/// The file [`compile`] writes into `OUT_DIR`.
pub const DEFAULT_FILE_NAME: &str = "mikobase.rs";
/// Set (to anything but `0` or empty) to make [`check_fresh`] rewrite a stale file.
pub const UPDATE_ENV: &str = "CASPIAN_IPC_UPDATE";
/// The command a [`Stale`] error names by default.
pub const DEFAULT_REGENERATE_COMMAND: &str = "CASPIAN_IPC_UPDATE=1 cargo test";
/// Who the header of generated files names.
const TOOL: &str = "caspian-ipc-build";

/// Generates `OUT_DIR/mikobase.rs` from `spec` (relative to the crate's root), for
/// `include!`. The call of a `build.rs`; [`configure`] for options.
pub fn compile(spec: impl AsRef<Path>) -> Result<(), Error> {
    Builder::new().compile(spec)
}

/// Fails when `checked_in` (relative to the crate's root) is not what `spec` generates as
/// a module file; with `CASPIAN_IPC_UPDATE` set it rewrites the file instead. For a test.
pub fn check_fresh(spec: impl AsRef<Path>, checked_in: impl AsRef<Path>) -> Result<(), Stale> {
    Builder::new().check_fresh(spec, checked_in)
}

/// A [`Builder`] with the defaults, to set options on.
pub fn configure() -> Builder {
    Builder::new()
}

/// The options of a generation.
#[derive(Debug, Clone)]
pub struct Builder {
    out_dir: Option<PathBuf>,
    file_name: String,
    openapi: Option<String>,
    options: Option<Options>,
    emit_rerun_if_changed: bool,
    regenerate_command: String,
    update: Option<bool>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// The defaults: `OUT_DIR/mikobase.rs`, no OpenAPI document, the support module at
    /// `::caspian_ipc::mikobase::support`, a `// @generated` header naming the spec.
    pub fn new() -> Self {
        Builder {
            out_dir: None,
            file_name: DEFAULT_FILE_NAME.to_owned(),
            openapi: None,
            options: None,
            emit_rerun_if_changed: true,
            regenerate_command: DEFAULT_REGENERATE_COMMAND.to_owned(),
            update: None,
        }
    }

    /// Where [`Builder::compile`] writes (default: `OUT_DIR`).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// The Rust file's name in the output directory (default `mikobase.rs`).
    pub fn file_name(mut self, name: impl Into<String>) -> Self {
        self.file_name = name.into();
        self
    }

    /// Also write the OpenAPI document of the spec, under this name in the output
    /// directory (e.g. `openapi.json`).
    pub fn openapi(mut self, name: impl Into<String>) -> Self {
        self.openapi = Some(name.into());
        self
    }

    /// The generator's options as given: support path, layout and header used verbatim
    /// (by default the layout is [`Layout::Include`] for [`Builder::compile`] and
    /// [`Layout::Module`] for [`Builder::check_fresh`], and the header names the spec).
    pub fn options(mut self, options: Options) -> Self {
        self.options = Some(options);
        self
    }

    /// Whether [`Builder::compile`] prints `cargo:rerun-if-changed=<spec>` (default yes).
    pub fn emit_rerun_if_changed(mut self, yes: bool) -> Self {
        self.emit_rerun_if_changed = yes;
        self
    }

    /// The command a [`Stale`] error says regenerates the file.
    pub fn regenerate_command(mut self, command: impl Into<String>) -> Self {
        self.regenerate_command = command.into();
        self
    }

    /// Whether [`Builder::check_fresh`] rewrites a stale file (default: when
    /// `CASPIAN_IPC_UPDATE` is set).
    pub fn update(mut self, yes: bool) -> Self {
        self.update = Some(yes);
        self
    }

    /// Writes the generated file(s) into the output directory (only those whose text
    /// changed, so their time stamps move only then). Prints the cargo directives to
    /// stdout: `rerun-if-changed`, and one `warning` per diagnostic.
    pub fn compile(&self, spec: impl AsRef<Path>) -> Result<(), Error> {
        self.compile_to(spec.as_ref(), &mut std::io::stdout().lock())
            .map(drop)
    }

    /// [`Builder::compile`] printing to `cargo`; returns the paths written.
    fn compile_to(&self, spec: &Path, cargo: &mut dyn Write) -> Result<Vec<PathBuf>, Error> {
        let file = resolve(spec);
        // Cargo's stdout is the build script's own: a failed print has nowhere to go.
        if self.emit_rerun_if_changed {
            let _ = writeln!(cargo, "cargo:rerun-if-changed={}", file.display());
        }
        let outputs = match self.render(spec, Layout::Include, self.openapi.is_some()) {
            Ok(outputs) => outputs,
            Err(error) => {
                for line in error.lines() {
                    let _ = writeln!(cargo, "cargo:warning={}", line.replace(['\r', '\n'], " "));
                }
                return Err(Error::Spec(error));
            }
        };
        let dir = match &self.out_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or(Error::NoOutDir)?,
        };
        let mut written = vec![dir.join(&self.file_name)];
        let mut texts = vec![outputs.rust];
        if let (Some(name), Some(text)) = (&self.openapi, outputs.openapi) {
            written.push(dir.join(name));
            texts.push(text);
        }
        for (path, text) in written.iter().zip(texts) {
            write_if_changed(path, &text).map_err(|error| Error::Write {
                path: path.clone(),
                error,
            })?;
        }
        Ok(written)
    }

    /// Fails when `checked_in` is not the Rust file `spec` generates (as a module file
    /// unless [`Builder::options`] says otherwise); in update mode rewrites it instead.
    pub fn check_fresh(&self, spec: impl AsRef<Path>, checked_in: impl AsRef<Path>) -> Result<(), Stale> {
        let outputs = self
            .render(spec.as_ref(), Layout::Module, false)
            .map_err(Stale::Spec)?;
        self.fresh(spec.as_ref(), checked_in.as_ref(), &outputs.rust)
    }

    /// [`Builder::check_fresh`] for a checked-in OpenAPI document.
    pub fn check_fresh_openapi(
        &self,
        spec: impl AsRef<Path>,
        checked_in: impl AsRef<Path>,
    ) -> Result<(), Stale> {
        let outputs = self
            .render(spec.as_ref(), Layout::Module, true)
            .map_err(Stale::Spec)?;
        let text = outputs.openapi.unwrap_or_default();
        self.fresh(spec.as_ref(), checked_in.as_ref(), &text)
    }

    fn fresh(&self, spec: &Path, checked_in: &Path, expected: &str) -> Result<(), Stale> {
        let file = resolve(checked_in);
        let current = std::fs::read_to_string(&file).ok();
        if current.as_deref().is_some_and(|c| up_to_date(c, expected)) {
            return Ok(());
        }
        let update = self
            .update
            .unwrap_or_else(|| std::env::var_os(UPDATE_ENV).is_some_and(|v| !v.is_empty() && v != "0"));
        if update {
            return write_if_changed(&file, expected).map_err(|error| Stale::Write { path: file, error });
        }
        let line = current
            .as_deref()
            .map(|c| first_difference(&c.replace("\r\n", "\n"), expected));
        Err(Stale::Differs {
            file: shown(checked_in),
            spec: shown(spec),
            first_difference: line,
            command: self.regenerate_command.clone(),
        })
    }

    fn render(
        &self,
        spec: &Path,
        layout: Layout,
        openapi: bool,
    ) -> Result<Outputs, caspian_ipc_codegen::Error> {
        let file = resolve(spec);
        let loaded = SpecSource::File(&file).load()?;
        let options = match &self.options {
            Some(options) => options.clone(),
            None => Options::external()
                .with_layout(layout)
                .with_header(generated_header(TOOL, &shown(spec))),
        };
        Ok(Outputs {
            rust: render_rust_with(&loaded, &options)?,
            openapi: if openapi {
                Some(openapi_json(&loaded)?)
            } else {
                None
            },
        })
    }
}

struct Outputs {
    rust: String,
    openapi: Option<String>,
}

/// `path` against the crate's root (`CARGO_MANIFEST_DIR`, set for build scripts and tests)
/// when relative, so it is found whatever the working directory.
fn resolve(path: &Path) -> PathBuf {
    match std::env::var_os("CARGO_MANIFEST_DIR") {
        Some(root) if path.is_relative() => Path::new(&root).join(path),
        _ => path.to_path_buf(),
    }
}

/// `path` as headers and [`Stale`] show it: relative to the crate's root, with `/`, so a
/// checked-in header is the same on every machine.
fn shown(path: &Path) -> String {
    let root = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let relative = root
        .as_deref()
        .and_then(|root| path.strip_prefix(root).ok())
        .unwrap_or(path);
    relative.to_string_lossy().replace('\\', "/")
}

fn write_if_changed(path: &Path, text: &str) -> Result<(), std::io::Error> {
    if std::fs::read_to_string(path).is_ok_and(|current| current == text) {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
}

/// The first line (1-based) where `a` and `b` differ.
fn first_difference(a: &str, b: &str) -> usize {
    let mut left = a.lines();
    let mut right = b.lines();
    let mut line = 1;
    loop {
        match (left.next(), right.next()) {
            (Some(x), Some(y)) if x == y => line += 1,
            _ => return line,
        }
    }
}

/// Why [`compile`] failed.
pub enum Error {
    /// The spec was refused (or unreadable): every diagnostic at `file:line:col`.
    Spec(caspian_ipc_codegen::Error),
    /// Neither `OUT_DIR` (set by cargo for build scripts) nor [`Builder::out_dir`].
    NoOutDir,
    /// An output could not be written.
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Spec(error) => write!(f, "{error}"),
            Error::NoOutDir => write!(
                f,
                "OUT_DIR is not set: call caspian_ipc_build::compile from build.rs, or give Builder::out_dir"
            ),
            Error::Write { path, error } => write!(f, "cannot write {}: {error}", path.display()),
        }
    }
}

/// The same text as `Display`, so `fn main() -> Result<(), Error>` in a build script (or
/// an `unwrap()`) shows the diagnostics readably.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spec(error) => Some(error),
            Error::Write { error, .. } => Some(error),
            Error::NoOutDir => None,
        }
    }
}

/// Why [`check_fresh`] failed.
pub enum Stale {
    /// The checked-in file is not what the spec generates (or is missing).
    Differs {
        /// The checked-in file, relative to the crate's root.
        file: String,
        /// The spec, relative to the crate's root.
        spec: String,
        /// The first line that differs (`None`: the file is missing).
        first_difference: Option<usize>,
        /// The command that regenerates it.
        command: String,
    },
    /// The spec was refused: every diagnostic at `file:line:col`.
    Spec(caspian_ipc_codegen::Error),
    /// In update mode, the file could not be written.
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

impl fmt::Display for Stale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stale::Differs {
                file,
                spec,
                first_difference: Some(line),
                command,
            } => write!(
                f,
                "{file} is stale: it is not what {spec} generates (first difference at {file}:{line}); \
                 regenerate it with `{command}`, then review and commit it"
            ),
            Stale::Differs {
                file, spec, command, ..
            } => write!(
                f,
                "{file} is missing: {spec} generates it; create it with `{command}`, then review and commit it"
            ),
            Stale::Spec(error) => write!(f, "{error}"),
            Stale::Write { path, error } => write!(f, "cannot write {}: {error}", path.display()),
        }
    }
}

/// The same text as `Display`, for `check_fresh(..).unwrap()` in a test.
impl fmt::Debug for Stale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Stale {}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = "../mikobase-spec/mikobase.yaml";
    const MINIMAL: &str = "../tests/specs/minimal.yaml";

    /// A fresh, empty directory of this test's own.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("caspian-ipc-build-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn workspace(path: &str) -> String {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)).unwrap()
    }

    #[test]
    fn compile_writes_an_include_file_and_tells_cargo_to_rerun_on_the_spec() {
        let dir = scratch("compile");
        let mut cargo = Vec::new();
        let written = Builder::new()
            .out_dir(&dir)
            .openapi("openapi.json")
            .compile_to(Path::new(MINIMAL), &mut cargo)
            .unwrap();
        assert_eq!(written, [dir.join("mikobase.rs"), dir.join("openapi.json")]);
        let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join(MINIMAL);
        assert_eq!(
            String::from_utf8(cargo).unwrap(),
            format!("cargo:rerun-if-changed={}\n", spec.display())
        );
        let rust = std::fs::read_to_string(&written[0]).unwrap();
        assert!(
            rust.starts_with(
                "// @generated by caspian-ipc-build from ../tests/specs/minimal.yaml — do not edit.\nuse ::caspian_ipc::mikobase::support as __support;\n"
            ),
            "{rust}"
        );
        assert!(!rust.contains("//!"), "include! refuses inner docs");
        // The module file of the same spec is these items plus the module docs.
        let module = workspace("tests/src/fixtures/minimal.rs");
        let body = |text: &str| {
            text.lines()
                .filter(|l| !l.starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n")
                .trim_start()
                .to_owned()
        };
        assert_eq!(body(&rust), body(&module));
        let openapi = std::fs::read_to_string(&written[1]).unwrap();
        assert_eq!(
            openapi,
            caspian_ipc_codegen::render_openapi(Path::new(&spec)).unwrap()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// With the xtask's options, the build script writes the checked-in `generated.rs` and
    /// `docs/openapi.json` byte for byte: one generator, one formatter.
    #[test]
    fn with_the_xtask_options_the_output_is_the_checked_in_bytes() {
        let dir = scratch("xtask");
        let options =
            Options::in_runtime().with_header(caspian_ipc_codegen::header("mikobase-spec/mikobase.yaml"));
        let written = Builder::new()
            .out_dir(&dir)
            .file_name("generated.rs")
            .openapi("openapi.json")
            .options(options)
            .emit_rerun_if_changed(false)
            .compile_to(Path::new(SHIPPED), &mut Vec::new())
            .unwrap();
        let checked_in = workspace("runtime/src/mikobase/generated.rs").replace("\r\n", "\n");
        assert!(std::fs::read_to_string(&written[0]).unwrap() == checked_in);
        let openapi = workspace("docs/openapi.json").replace("\r\n", "\n");
        assert!(std::fs::read_to_string(&written[1]).unwrap() == openapi);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_refused_spec_is_a_cargo_warning_per_problem_and_an_error_at_file_line_col() {
        let dir = scratch("broken");
        let spec = dir.join("broken.yaml");
        let text = workspace("tests/specs/minimal.yaml")
            .replace("result: Item", "result: Itme")
            .replace(
                "pk: {type: string, description: Its key.}\n      size",
                "pk: {type: Stirng, description: Its key.}\n      size",
            );
        std::fs::write(&spec, &text).unwrap();
        let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        let mut cargo = Vec::new();
        let error = Builder::new()
            .out_dir(&dir)
            .compile_to(&spec, &mut cargo)
            .unwrap_err();
        let first = format!(
            "{}:{}:18: error[MB004]: unknown type `Stirng`",
            spec.display(),
            line_of("Stirng")
        );
        let second = format!(
            "{}:{}:13: error[MB004]: unknown type `Itme`",
            spec.display(),
            line_of("Itme")
        );
        assert_eq!(
            String::from_utf8(cargo).unwrap(),
            format!(
                "cargo:rerun-if-changed={}\ncargo:warning={first}\ncargo:warning={second}\n",
                spec.display()
            )
        );
        let shown = error.to_string();
        assert!(shown.starts_with(&format!("{first}\n")), "{shown}");
        assert!(shown.contains(&format!("\n{second}\n")), "{shown}");
        assert!(shown.contains("= help: did you mean `Item`?"), "{shown}");
        assert!(
            shown.ends_with(&format!("error: 2 problems in {}", spec.display())),
            "{shown}"
        );
        assert_eq!(format!("{error:?}"), shown, "a build script's `main` shows Debug");
        assert!(!dir.join("mikobase.rs").exists(), "nothing is written");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn check_fresh_names_the_stale_line_and_the_command_and_updates_on_request() {
        let dir = scratch("fresh");
        let file = dir.join("api.rs");
        let builder = Builder::new().update(false);
        // Missing.
        let missing = builder.check_fresh(MINIMAL, &file).unwrap_err();
        assert!(matches!(
            missing,
            Stale::Differs {
                first_difference: None,
                ..
            }
        ));
        assert_eq!(
            missing.to_string(),
            format!(
                "{} is missing: ../tests/specs/minimal.yaml generates it; create it with `CASPIAN_IPC_UPDATE=1 cargo test`, then review and commit it",
                file.display()
            )
        );
        // Written in update mode, then fresh (also with CRLF line ends).
        builder.clone().update(true).check_fresh(MINIMAL, &file).unwrap();
        builder.check_fresh(MINIMAL, &file).unwrap();
        let fresh = std::fs::read_to_string(&file).unwrap();
        assert!(
            fresh.contains("\n//! Minimal 1.0.0"),
            "a module file keeps its docs: {fresh}"
        );
        std::fs::write(&file, fresh.replace('\n', "\r\n")).unwrap();
        builder.check_fresh(MINIMAL, &file).unwrap();
        // Stale: one changed line.
        std::fs::write(&file, fresh.replacen("pub size", "pub length", 1)).unwrap();
        let line = fresh.lines().position(|l| l.contains("pub size")).unwrap() + 1;
        let stale = builder
            .clone()
            .regenerate_command("cargo xtask codegen")
            .check_fresh(MINIMAL, &file)
            .unwrap_err();
        assert_eq!(
            stale.to_string(),
            format!(
                "{0} is stale: it is not what ../tests/specs/minimal.yaml generates (first difference at {0}:{line}); regenerate it with `cargo xtask codegen`, then review and commit it",
                file.display()
            )
        );
        assert_eq!(format!("{stale:?}"), stale.to_string());
        // A refused spec is its diagnostics, not "stale".
        let broken = dir.join("broken.yaml");
        std::fs::write(&broken, "spec: x\n").unwrap();
        let refused = builder.check_fresh(&broken, &file).unwrap_err();
        assert!(matches!(refused, Stale::Spec(_)), "{refused}");
        assert!(
            refused.to_string().starts_with(&format!("{}:", broken.display())),
            "{refused}"
        );
        // The OpenAPI document the same way.
        let json = dir.join("openapi.json");
        assert!(builder.check_fresh_openapi(MINIMAL, &json).is_err());
        builder
            .clone()
            .update(true)
            .check_fresh_openapi(MINIMAL, &json)
            .unwrap();
        builder.check_fresh_openapi(MINIMAL, &json).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn headers_show_paths_relative_to_the_crate() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert_eq!(shown(&root.join("specs/my.yaml")), "specs/my.yaml");
        assert_eq!(shown(Path::new("specs/my.yaml")), "specs/my.yaml");
        assert_eq!(resolve(Path::new("specs/my.yaml")), root.join("specs/my.yaml"));
        assert_eq!(resolve(Path::new("/abs/my.yaml")), Path::new("/abs/my.yaml"));
    }

    #[test]
    fn first_difference_counts_from_one() {
        assert_eq!(first_difference("a\nb\n", "a\nc\n"), 2);
        assert_eq!(first_difference("a\n", "a\nb\n"), 2);
        assert_eq!(first_difference("", "a"), 1);
    }
}
