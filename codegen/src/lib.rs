//! The generator: a Mikobase spec IR in, Rust token streams and an OpenAPI document out.
//! No file IO of its own: the front ends (`cargo xtask codegen`, the `mikobase_api!` macro,
//! the `caspian-ipc-build` build-script crate) write the files; a spec given by path is
//! read by `mikobase_spec::load_file`.
//!
//! One module per concern: [`names`] (Rust names and the single route helper both sides
//! use), `emit` (types, ids, routes, service trait, dispatch table, client proxy: one
//! [`Emitter`] each), `openapi`.
//!
//! # Snapshot-testing your spec
//!
//! [`render_rust`] and [`render_openapi`] turn a spec (a path, a text or a loaded
//! [`ApiSpec`]) into the formatted text the front ends write, so a test of yours can pin
//! it with `insta::assert_snapshot!(caspian_ipc_codegen::render_rust(Path::new("specs/my.yaml"))?)`:
//!
//! ```
//! use caspian_ipc_codegen::{render_openapi, render_rust, SpecSource};
//!
//! let yaml = r#"
//! spec: tiny
//! version: 1.0.0
//! description: One record type, read by pk.
//! types:
//!   Item:
//!     kind: struct
//!     description: A stored item.
//!     fields:
//!       pk: {type: string, description: Its key.}
//! errors:
//!   invalid_request: {status: 400, description: The request is malformed.}
//!   request-too-large: {status: 413, description: The body is over the limit.}
//! operations:
//!   get:
//!     kind: method
//!     route: /get
//!     description: The item with this key.
//!     request:
//!       pk: {type: string, description: Its key.}
//!     result: Item
//!     errors: [invalid_request]
//! "#;
//! let rust = render_rust(SpecSource::text(yaml))?;
//! assert!(rust.contains("pub struct Item {"));
//! assert!(rust.contains("pub const ROUTE_GET: &str = \"/get\";"));
//! // In a test of yours: insta::assert_snapshot!(rust);
//! let openapi = render_openapi(SpecSource::text(yaml))?;
//! assert!(openapi.contains("\"/get\""));
//!
//! // A refused spec is an error whose text points at `file:line:col`.
//! let broken = yaml.replace("result: Item", "result: Itme");
//! let error = render_rust(SpecSource::named_text("specs/tiny.yaml", &broken)).unwrap_err();
//! assert!(error.to_string().starts_with("specs/tiny.yaml:21:13: error[MB004]: unknown type `Itme`"), "{error}");
//! # Ok::<(), caspian_ipc_codegen::Error>(())
//! ```

mod emit;
pub mod names;
mod openapi;

use std::fmt;
use std::path::{Path, PathBuf};

use mikobase_spec::{ApiSpec, Diagnostic};
use proc_macro2::TokenStream;

/// Where the generated code finds the runtime's support module, how the rendered file sits
/// in the crate, and its header comment.
#[derive(Debug, Clone)]
pub struct Options {
    /// Path of `caspian_ipc::mikobase::support` as seen from the generated code.
    pub support_path: TokenStream,
    /// Module file or `include!` file (used by [`render_rust_with`]).
    pub layout: Layout,
    /// Comment lines on top of the rendered file, without the `// ` (empty: none).
    pub header: String,
}

/// How a rendered file sits in the crate that uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// A module file of its own (`mod api;`): the module docs are `//!` lines on top. What
    /// `cargo xtask codegen` writes.
    #[default]
    Module,
    /// A file for `include!` inside a module the crate writes (`mod api { include!(..); }`):
    /// the same items without the module's `//!` docs, which `include!` refuses. What the
    /// build-script front end writes to `OUT_DIR`.
    Include,
}

impl Options {
    /// For code checked into the runtime crate itself.
    pub fn in_runtime() -> Self {
        Options {
            support_path: quote::quote!(crate::mikobase::support),
            layout: Layout::Module,
            header: String::new(),
        }
    }

    /// For code in a crate that depends on `caspian-ipc`.
    pub fn external() -> Self {
        Options {
            support_path: quote::quote!(::caspian_ipc::mikobase::support),
            layout: Layout::Module,
            header: String::new(),
        }
    }

    /// These options with another layout.
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// These options with another header (see [`generated_header`]).
    pub fn with_header(mut self, header: impl Into<String>) -> Self {
        self.header = header.into();
        self
    }
}

/// One emitter of the generated module (for snapshots of each part on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Emitter {
    /// Route consts (`ROUTE_Q0`, `ROUTE_RECORD_BY_PK`, ...).
    Routes,
    /// The spec's named types.
    Types,
    /// One request struct per operation.
    Requests,
    /// `ErrorId` and `WarningId`.
    Ids,
    /// The service trait an engine implements.
    Service,
    /// The server dispatch table.
    Dispatch,
    /// The client proxy.
    Client,
}

impl Emitter {
    /// Every emitter, in the order of the generated module.
    pub const ALL: [Emitter; 7] = [
        Emitter::Routes,
        Emitter::Types,
        Emitter::Requests,
        Emitter::Ids,
        Emitter::Service,
        Emitter::Dispatch,
        Emitter::Client,
    ];

    /// A short name (`types`, `dispatch`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Emitter::Routes => "routes",
            Emitter::Types => "types",
            Emitter::Requests => "requests",
            Emitter::Ids => "ids",
            Emitter::Service => "service",
            Emitter::Dispatch => "dispatch",
            Emitter::Client => "client",
        }
    }
}

/// Every generated item for `spec`, as one module body.
pub fn generate(spec: &ApiSpec, options: &Options) -> TokenStream {
    emit::module(spec, &options.support_path)
}

/// The items of one emitter (they name the support module as `__support`, which
/// [`generate`] imports).
pub fn generate_part(spec: &ApiSpec, emitter: Emitter) -> TokenStream {
    emit::part(spec, emitter)
}

/// The OpenAPI 3.1 document of the HTTP surface.
pub fn openapi(spec: &ApiSpec) -> serde_json::Value {
    openapi::document(spec)
}

/// Formats tokens as a file (prettyplease), with `header` comment lines on top and a
/// blank line between items. Deterministic: the same tokens always give the same text.
pub fn render_file(tokens: TokenStream, header: &str) -> Result<String, String> {
    let file: syn::File =
        syn::parse2(tokens).map_err(|e| format!("internal error: generated code does not parse: {e}"))?;
    Ok(unparse(file, header))
}

fn unparse(file: syn::File, header: &str) -> String {
    let alone = |attrs: Vec<syn::Attribute>, items: Vec<syn::Item>| {
        prettyplease::unparse(&syn::File {
            shebang: None,
            frontmatter: None,
            attrs,
            items,
        })
    };
    // Each item on its own, so a blank line separates items and nothing else.
    let mut chunks = Vec::new();
    if !file.attrs.is_empty() {
        chunks.push(alone(file.attrs, Vec::new()));
    }
    chunks.extend(file.items.into_iter().map(|item| alone(Vec::new(), vec![item])));
    let mut out = String::new();
    for line in header.lines() {
        out.push_str("// ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&chunks.join("\n"));
    out
}

/// The formatted Rust file of `spec`: [`generate`], laid out and headed as `options` say.
/// Every front end that writes a file goes through here, so they write the same bytes.
pub fn render_rust_with(spec: &ApiSpec, options: &Options) -> Result<String, Error> {
    let mut file: syn::File = syn::parse2(generate(spec, options))
        .map_err(|e| Error::Internal(format!("generated code does not parse: {e}")))?;
    if options.layout == Layout::Include {
        file.attrs.clear();
    }
    Ok(unparse(file, &options.header))
}

/// The OpenAPI document of `spec` as the front ends write it: pretty JSON and a final
/// newline.
pub fn openapi_json(spec: &ApiSpec) -> Result<String, Error> {
    serde_json::to_string_pretty(&openapi(spec))
        .map(|text| text + "\n")
        .map_err(|e| Error::Internal(format!("the OpenAPI document does not serialize: {e}")))
}

/// The formatted Rust source a spec generates (with [`Options::external`], as a module
/// file, no header), for snapshot tests: `insta::assert_snapshot!(render_rust(path)?)`.
pub fn render_rust<'a>(spec: impl Into<SpecSource<'a>>) -> Result<String, Error> {
    render_rust_with(&spec.into().load()?, &Options::external())
}

/// The OpenAPI JSON a spec generates (what [`openapi_json`] gives), for snapshot tests.
pub fn render_openapi<'a>(spec: impl Into<SpecSource<'a>>) -> Result<String, Error> {
    openapi_json(&spec.into().load()?)
}

/// Whether a checked-in file holds `generated` (line endings aside: a checkout may turn
/// `\n` into `\r\n`).
pub fn up_to_date(checked_in: &str, generated: &str) -> bool {
    checked_in.replace("\r\n", "\n") == generated
}

/// The header of generated files: who wrote them from what.
pub fn generated_header(tool: &str, source: &str) -> String {
    format!("@generated by {tool} from {source} — do not edit.")
}

/// The header of the files `cargo xtask codegen` writes.
pub fn header(source: &str) -> String {
    generated_header("`cargo xtask codegen`", source)
}

/// A spec to render: a file, a text, or an already loaded IR.
#[derive(Debug, Clone, Copy)]
pub enum SpecSource<'a> {
    /// A spec file (read by `mikobase_spec::load_file`); diagnostics show the path as given.
    File(&'a Path),
    /// A spec text; diagnostics show `name` as its path.
    Text {
        /// The path diagnostics show.
        name: &'a str,
        /// The YAML.
        text: &'a str,
    },
    /// A loaded spec.
    Loaded(&'a ApiSpec),
}

impl<'a> SpecSource<'a> {
    /// A spec text, shown as `<spec>` in diagnostics.
    pub fn text(text: &'a str) -> Self {
        SpecSource::Text { name: "<spec>", text }
    }

    /// A spec text, shown as `name` in diagnostics.
    pub fn named_text(name: &'a str, text: &'a str) -> Self {
        SpecSource::Text { name, text }
    }

    /// The IR, or every diagnostic.
    pub fn load(self) -> Result<ApiSpec, Error> {
        match self {
            SpecSource::File(path) => {
                mikobase_spec::load_file(path)
                    .map(|(spec, _)| spec)
                    .map_err(|(diagnostics, source)| Error::Spec {
                        path: path.display().to_string(),
                        source,
                        diagnostics,
                    })
            }
            SpecSource::Text { name, text } => {
                mikobase_spec::load_str(text).map_err(|diagnostics| Error::Spec {
                    path: name.to_owned(),
                    source: text.to_owned(),
                    diagnostics,
                })
            }
            SpecSource::Loaded(spec) => Ok(spec.clone()),
        }
    }
}

impl<'a> From<&'a Path> for SpecSource<'a> {
    fn from(path: &'a Path) -> Self {
        SpecSource::File(path)
    }
}

impl<'a> From<&'a PathBuf> for SpecSource<'a> {
    fn from(path: &'a PathBuf) -> Self {
        SpecSource::File(path)
    }
}

impl<'a> From<&'a ApiSpec> for SpecSource<'a> {
    fn from(spec: &'a ApiSpec) -> Self {
        SpecSource::Loaded(spec)
    }
}

/// Why a spec did not render.
#[derive(Clone)]
pub enum Error {
    /// The spec was refused (or could not be read): every diagnostic.
    Spec {
        /// The spec's path as shown in the diagnostics.
        path: String,
        /// Its text (empty when unreadable), for the snippets.
        source: String,
        /// Every problem, in file order.
        diagnostics: Vec<Diagnostic>,
    },
    /// A generator bug: the generated code or document did not form.
    Internal(String),
}

impl Error {
    /// One `PATH:LINE:COL: error[MBnnn]: message` line per diagnostic (the form terminals
    /// and editors link; the build script prints each as a `cargo:warning`).
    pub fn lines(&self) -> Vec<String> {
        match self {
            Error::Spec {
                path, diagnostics, ..
            } => diagnostics.iter().map(|d| d.one_line(path)).collect(),
            Error::Internal(message) => vec![format!("internal error: {message}")],
        }
    }
}

impl fmt::Display for Error {
    /// Each diagnostic as `PATH:LINE:COL: error[MBnnn]: message`, then the spec's line
    /// with a caret and the hint; then the count.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Spec {
                path,
                source,
                diagnostics,
            } => {
                for d in diagnostics {
                    writeln!(f, "{}", d.linked(path, source).trim_end())?;
                }
                write!(
                    f,
                    "error: {} problem{} in {path}",
                    diagnostics.len(),
                    if diagnostics.len() == 1 { "" } else { "s" }
                )
            }
            Error::Internal(message) => write!(f, "internal error: {message}"),
        }
    }
}

/// The same text as `Display`: a build script's `main` returning this error, or an
/// `unwrap()` on it, shows the diagnostics readably.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_PROBLEMS: &str =
        "spec: t\nversion: 1.0.0\ndescription: d.\ntypes:\n  A: {kind: alias, type: Strin, description: a.}\n  B: {kind: alias, type: Nope, description: b.}\n";

    /// The `include!` layout is the module file without its `//!` docs (and the blank line
    /// after them): nothing else differs.
    #[test]
    fn the_include_layout_is_the_module_file_without_its_docs() {
        let spec = SpecSource::text(mikobase_spec::MIKOBASE_YAML).load().unwrap();
        let module = render_rust_with(&spec, &Options::external().with_header("top")).unwrap();
        let include = render_rust_with(
            &spec,
            &Options::external()
                .with_header("top")
                .with_layout(Layout::Include),
        )
        .unwrap();
        assert!(!include.contains("//!"), "{include}");
        let docs: String = module
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("//!"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(docs.lines().count() >= 2, "{module}");
        assert_eq!(
            module,
            include.replacen("// top\n", &format!("// top\n{docs}\n"), 1)
        );
    }

    #[test]
    fn a_refused_spec_lists_every_problem_at_path_line_col() {
        let error = render_rust(SpecSource::named_text("my.yaml", TWO_PROBLEMS)).unwrap_err();
        assert_eq!(
            error.lines(),
            [
                "my.yaml:5:26: error[MB004]: unknown type `Strin`",
                "my.yaml:6:26: error[MB004]: unknown type `Nope`"
            ]
        );
        let text = error.to_string();
        assert!(
            text.starts_with("my.yaml:5:26: error[MB004]: unknown type `Strin`\n  |\n5 |"),
            "{text}"
        );
        assert!(text.contains("\nmy.yaml:6:26: error[MB004]"), "{text}");
        assert!(text.ends_with("error: 2 problems in my.yaml"), "{text}");
        assert_eq!(format!("{error:?}"), text, "Debug reads like Display");
        let missing = render_openapi(Path::new("/nonexistent/spec.yaml")).unwrap_err();
        assert!(
            missing.lines()[0].starts_with("/nonexistent/spec.yaml: error[MB001]: cannot read the spec"),
            "{missing}"
        );
    }

    #[test]
    fn a_checkout_with_crlf_line_ends_is_up_to_date() {
        assert!(up_to_date("a\r\nb\n", "a\nb\n"));
        assert!(!up_to_date("a\nb\n", "a\nc\n"));
        assert!(!up_to_date("", "a\n"));
    }
}
