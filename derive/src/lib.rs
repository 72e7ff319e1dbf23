//! The proc macros of caspian-ipc, `mikobase_api!` and `#[derive(Record)]`. Depend on
//! `caspian-ipc`, which re-exports both (`caspian_ipc::mikobase_api!`,
//! `caspian_ipc::Record`); the examples there are tested.
//!
//! Thin front ends: `mikobase_api!` loads the spec and generates with `mikobase-spec` and
//! `caspian-ipc-codegen` (what `cargo xtask codegen` runs); `#[derive(Record)]` only lowers
//! the struct and its attributes to a `Record` impl and a proxy type, and the generic
//! record layer (`caspian_ipc::mikobase::record`) does the rest. Each expansion is a plain
//! function over `proc_macro2` (unit-tested here); every problem is a spanned compile
//! error, never a panic.

mod api;
mod one_of;
mod record;

use proc_macro::TokenStream;

/// Generates a Mikobase surface from a spec file: the same code `cargo xtask codegen`
/// checks in as `caspian_ipc::mikobase::generated`, for a spec of your own (e.g. the shipped
/// one extended with operations).
///
/// The path is relative to the invoking crate's `CARGO_MANIFEST_DIR`. Two forms:
///
/// ```text
/// caspian_ipc::mikobase_api!(pub mod api = "specs/mikobase.yaml");   // a module, with its docs
///
/// mod api { caspian_ipc::mikobase_api!("specs/mikobase.yaml"); }     // items in your module
/// ```
///
/// The first wraps the surface in a module carrying the generated module docs; the second
/// expands to the items only (a macro cannot emit the generated inner `#![doc]`
/// attributes there, so they are left out: document the module yourself).
///
/// The generated client runs over the runtime's transports (`InProcess`, `UdsTransport`).
/// The generated code reaches serde and serde_json through `caspian_ipc`, so the invoking
/// crate needs no other dependency. Cargo rebuilds the crate when the spec changes.
/// A spec with problems fails the build with every diagnostic, each pointing at
/// `path:line:col` in the spec (attached to the path literal).
#[proc_macro]
pub fn mikobase_api(input: TokenStream) -> TokenStream {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default();
    api::expand(input.into(), std::path::Path::new(&manifest_dir)).into()
}

/// Makes a struct with named fields a Mikobase class: implements
/// `caspian_ipc::mikobase::record::Record` and generates `{Struct}Proxy`, the hot proxy of
/// one stored record with one accessor per bucket key (`officer.rank().get()` /
/// `.set(v)`, one round trip each).
///
/// The struct also derives serde's `Serialize` and `Deserialize`, which decide the bucket;
/// `#[serde(rename)]`, `rename_all`, `skip`, `default` and `skip_serializing_if` are
/// honoured for the class definition.
///
/// - `#[record(class = "example.org/crew/officer")]` on the struct (required): the class's
///   UNS name.
/// - `#[record(crate = "ipc")]` on the struct: the path of the `caspian-ipc` crate when the
///   dependency is renamed (as serde's `#[serde(crate)]`); the expansion names only it.
/// - Doc comments on the struct and its fields are the `description`s of the class and of
///   its keys; `#[record(description = "...")]` (struct or field) replaces one.
/// - `#[record(inherits = "example.org/crew/member")]` (or a list, `inherits = ["...",
///   "..."]`) on the struct: the parent classes, defined first. A field marked
///   `#[record(inherited)]` is a key a parent declares: it stays in the bucket and the
///   proxy, and this class does not redeclare it (a redeclaration would replace the
///   parent's constraints).
/// - On fields: `required`, `unique`, `one_of(lit, ...)`, `default = lit`,
///   `class = "..."` (overrides the class the field's type maps to), `description = "..."`,
///   `inherited` (see `inherits`), and:
///   - `one_of` alone: the field's type is an enum deriving [`OneOf`](derive@OneOf); its
///     variants' serde names are the allowed values, and the field is a `string`;
///   - `items = "..."`: the class of a sequence's elements (`Vec<String>` → `string` is
///     found from the type; an enum or struct element needs the key);
///   - `fields`: the field's type derives `Record` too; the field is a `hash` whose
///     sub-keys are that struct's declarations.
///
/// Field classes come from the Rust types: strings and `char` → `string`, integers and
/// floats → `number`, `bool` → `boolean`, sequences, sets, tuples and arrays → `array`,
/// maps and other types → `hash`, `serde_json::Value` → untyped; `Option<T>`, `Box<T>`,
/// `Rc<T>`, `Arc<T>` and `&T` → `T`'s. A field is `required` unless it is an `Option`, has
/// a `default` (ours or serde's) or may be skipped when serializing. Enums, newtypes and
/// type aliases look like other types (`hash`): give them `class = "string"` (or the class
/// they serialize as).
///
/// ```
/// use caspian_ipc::mikobase::{engine::Engine, InProcess, MikobaseClient};
/// use caspian_ipc::Record;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize, Record)]
/// #[record(class = "example.org/crew/officer")]
/// struct Officer {
///     #[record(unique)]
///     serial: String, // required: not an `Option`
///     #[serde(rename = "grade")]
///     rank: String, // stored under `grade`
///     #[record(one_of("alpha", "beta", "gamma"), default = "alpha")]
///     watch: String,
///     nickname: Option<String>, // optional
/// }
///
/// let db = MikobaseClient::new(InProcess::new(Engine::memory())); // or a worker's `Db`
/// let officers = db.records::<Officer>();
/// officers.define()?; // installs the class; idempotent
/// let hicks = officers.create(&Officer {
///     serial: "CM-221".into(),
///     rank: "Corporal".into(),
///     watch: "beta".into(),
///     nickname: None,
/// })?; // an `OfficerProxy`
/// hicks.rank().set("Sergeant")?; // one `set_fields` request
/// assert_eq!(hicks.rank().get()?, "Sergeant"); // one `record_by_pk` request
/// assert_eq!(hicks.watch().set("delta").unwrap_err().id(), Some("validation-failed"));
/// # Ok::<_, caspian_ipc::mikobase::record::RecordError>(())
/// ```
///
/// See `caspian_ipc::mikobase::record` for the generic layer (`Records`, `Stored`,
/// `Field`).
#[proc_macro_derive(Record, attributes(record))]
pub fn derive_record(input: TokenStream) -> TokenStream {
    record::expand(input.into()).into()
}

/// Makes an enum of unit variants the allowed values of a record field: implements
/// `caspian_ipc::mikobase::record::OneOf` with the variants' serde names (`rename`,
/// `rename_all` and `skip` honoured). A field of that type marked `#[record(one_of)]` is a
/// `string` field with those values as its `one_of`:
///
/// ```text
/// #[derive(Serialize, Deserialize, OneOf)]
/// #[serde(rename_all = "lowercase")]
/// enum Watch { Alpha, Beta, Gamma }
///
/// #[derive(Serialize, Deserialize, Record)]
/// #[record(class = "example.org/crew/officer")]
/// struct Officer { #[record(one_of, default = "alpha")] watch: Option<Watch> }
/// ```
///
/// Variants with fields, `#[serde(tag)]` and `#[serde(untagged)]` are refused (the values
/// would not be strings); `#[record(crate = "...")]` names a renamed `caspian-ipc`.
#[proc_macro_derive(OneOf, attributes(record))]
pub fn derive_one_of(input: TokenStream) -> TokenStream {
    one_of::expand(input.into()).into()
}
