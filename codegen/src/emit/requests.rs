//! One request struct per operation (closed, with the operation's fields).

use mikobase_spec::{ApiSpec, Operation};
use proc_macro2::TokenStream;
use quote::quote;

use super::types::{struct_derives, struct_fields};
use crate::names::{doc, request_type};

/// The request struct of an operation.
pub fn request_struct(spec: &ApiSpec, op: &Operation) -> TokenStream {
    let ident = request_type(op);
    let body = struct_fields(spec, &ident.to_string(), &op.request, true);
    let derives = struct_derives(spec, &op.request, true);
    let docs = doc(&format!("The request of `{}`: {}", op.name.wire, op.description));
    quote! {
        #docs
        #derives
        #[serde(deny_unknown_fields)]
        pub struct #ident { #body }
    }
}
