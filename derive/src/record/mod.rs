//! `#[derive(Record)]`: lowers a struct and its `#[record]` / `#[serde]` attributes to a
//! [`Model`], then emits the `Record` impl (class name and field declarations as constants)
//! and the `{Struct}Proxy` type with one accessor per key. The generic layer it plugs into
//! is `caspian_ipc::mikobase::record`.
//!
//! - [`attributes`]: reading `#[record(..)]`, `#[serde(..)]` and doc comments (keys, flags,
//!   strings, literals, serde's renames);
//! - [`classes`]: field classes: the class a Rust type is stored as, what a class holds, UNS
//!   names;
//! - [`lower`]: the struct and its fields to a [`Model`], with every rule a derive checks;
//! - [`emit`]: the [`Model`] to the generated `Record` impl and proxy.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{DeriveInput, Ident, Type, Visibility};

pub(crate) mod attributes;
mod classes;
mod emit;
mod lower;

use emit::emit;
use lower::lower;

/// The expansion of `#[derive(Record)]` on `input`: the impl and proxy, or every problem as
/// a spanned `compile_error!`.
pub fn expand(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    match lower(&input) {
        Ok(model) => emit(&model),
        Err(e) => e.to_compile_error(),
    }
}

/// A struct as a class.
#[derive(Debug)]
struct Model<'a> {
    ident: &'a Ident,
    vis: &'a Visibility,
    /// The path of the `caspian_ipc` crate (`#[record(crate = "...")]`).
    krate: syn::Path,
    class: String,
    description: Option<String>,
    /// The parent classes (`#[record(inherits = ..)]`), in the order given.
    inherits: Vec<String>,
    fields: Vec<FieldModel<'a>>,
}

/// One bucket key.
#[derive(Debug)]
struct FieldModel<'a> {
    ident: &'a Ident,
    ty: &'a Type,
    key: String,
    class: Option<String>,
    required: bool,
    unique: bool,
    default: Option<Literal>,
    one_of: Vec<Literal>,
    description: Option<String>,
    /// Declared by a parent class (`#[record(inherited)]`): in the bucket and the proxy, not
    /// in this class's definition.
    inherited: bool,
    /// `#[record(one_of)]`: the values are `<this type as OneOf>::VALUES`.
    one_of_type: Option<&'a Type>,
    /// The class of an array's elements (a hash's values): the documents' `items`.
    items: Option<String>,
    /// `#[record(fields)]`: a hash whose sub-keys are `<this type as Record>::FIELDS`.
    nested: Option<&'a Type>,
}

/// A constant in `default` / `one_of`.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
}

/// Collects errors so that one run reports every problem.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn at(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }
}

#[cfg(test)]
mod tests;
