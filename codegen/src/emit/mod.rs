//! The emitters: IR → token streams, one file per [`Emitter`] (routes, types, requests,
//! ids, service, dispatch, client); here what they share (a type expression's Rust type),
//! [`part`] and the whole [`module`].

mod client;
mod dispatch;
mod ids;
mod requests;
mod routes;
mod service;
mod types;

use heck::ToUpperCamelCase;
use mikobase_spec::{ApiSpec, TypeRef};
use proc_macro2::TokenStream;
use quote::quote;

use crate::names::type_name;
use crate::Emitter;

/// The Rust type of a type expression (a named type by its Rust name).
fn rust_type(ty: &TypeRef) -> TokenStream {
    match ty {
        TypeRef::String => quote!(::std::string::String),
        TypeRef::Bool => quote!(bool),
        TypeRef::U64 => quote!(u64),
        TypeRef::I64 => quote!(i64),
        TypeRef::F64 => quote!(f64),
        TypeRef::Number => quote!(__support::serde_json::Number),
        TypeRef::Json => quote!(__support::serde_json::Value),
        TypeRef::Object => {
            quote!(__support::serde_json::Map<::std::string::String, __support::serde_json::Value>)
        }
        TypeRef::List(inner) => {
            let inner = rust_type(inner);
            quote!(::std::vec::Vec<#inner>)
        }
        TypeRef::Map(inner) if **inner == TypeRef::Json => {
            quote!(__support::serde_json::Map<::std::string::String, __support::serde_json::Value>)
        }
        TypeRef::Map(inner) => {
            // Keys keep their order (a stack's platters are ordered).
            let inner = rust_type(inner);
            quote!(__support::OrderedMap<#inner>)
        }
        TypeRef::Named(name) => {
            let ident = type_name(&name.wire);
            quote!(#ident)
        }
    }
}

/// The items one emitter makes.
pub fn part(spec: &ApiSpec, emitter: Emitter) -> TokenStream {
    match emitter {
        Emitter::Routes => routes::route_consts(spec),
        Emitter::Types => {
            let types = spec.types.iter().map(|t| types::type_def(spec, t));
            quote!(#(#types)*)
        }
        Emitter::Requests => {
            let requests = spec
                .operations
                .iter()
                .map(|op| requests::request_struct(spec, op));
            quote!(#(#requests)*)
        }
        Emitter::Ids => {
            let errors = ids::id_enum("ErrorId", "error", &spec.errors);
            let warnings = ids::id_enum("WarningId", "warning", &spec.warnings);
            quote!(#errors #warnings)
        }
        Emitter::Service => service::service_trait(spec),
        Emitter::Dispatch => dispatch::dispatch(spec),
        Emitter::Client => client::client(spec),
    }
}

/// The whole generated module; `support` is the path of the runtime's support module
/// (`crate::mikobase::support` inside the runtime, `::caspian_ipc::mikobase::support`
/// elsewhere).
pub fn module(spec: &ApiSpec, support: &TokenStream) -> TokenStream {
    let parts = Emitter::ALL.iter().map(|e| part(spec, *e));
    let name = spec.name.to_upper_camel_case();
    let about: Vec<String> = [
        "The generated surface: types, ids, routes, service trait, dispatch table and client proxy."
            .to_owned(),
        String::new(),
        format!("{name} {}: {}", spec.version, spec.description),
    ]
    .iter()
    .map(|l| format!(" {l}").trim_end().to_owned())
    .collect();
    quote! {
        #(#![doc = #about])*
        use #support as __support;
        #(#parts)*
    }
}
