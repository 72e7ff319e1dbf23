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
/// - On fields: `required`, `unique`, `one_of(lit, ...)`, `default = lit`,
///   `class = "..."` (overrides the class the field's type maps to).
///
/// Field classes come from the Rust types: strings and `char` → `string`, integers and
/// floats → `number`, `bool` → `boolean`, sequences, sets, tuples and arrays → `array`,
/// maps and other types → `hash`, `serde_json::Value` → untyped; `Option<T>`, `Box<T>`,
/// `Rc<T>`, `Arc<T>` and `&T` → `T`'s. A field is `required` unless it is an `Option`, has
/// a `default` (ours or serde's) or may be skipped when serializing. Enums, newtypes and
/// type aliases look like other types (`hash`): give them `class = "string"` (or the class
/// they serialize as).
///
/// See `caspian_ipc::mikobase::record` for a complete example.
#[proc_macro_derive(Record, attributes(record))]
pub fn derive_record(input: TokenStream) -> TokenStream {
    record::expand(input.into()).into()
}
