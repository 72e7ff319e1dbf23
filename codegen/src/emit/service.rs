//! The service trait an engine implements: one method per operation.

use mikobase_spec::{ApiSpec, OpKind};
use proc_macro2::TokenStream;
use quote::quote;

use super::rust_type;
use crate::names::{api_name, doc, field, request_type, route, service_trait as trait_name};

/// The service trait an engine implements.
pub fn service_trait(spec: &ApiSpec) -> TokenStream {
    let methods = spec.operations.iter().map(|op| {
        let method = field(&op.name.wire);
        let request = request_type(op);
        let result = rust_type(&op.result);
        let errors: Vec<String> = op.errors.iter().map(|e| format!("`{}`", e.wire)).collect();
        let docs = doc(&format!(
            "{}\n\n`POST {}`{}. Errors: {}.",
            op.description,
            route(op),
            match op.kind {
                OpKind::Q0 => format!(" with `\"action\": \"{}\"`", op.name.wire),
                OpKind::Method { .. } => String::new(),
            },
            errors.join(", ")
        ));
        quote! {
            #docs
            fn #method(&mut self, context: &__support::CallContext, request: #request)
                -> __support::Reply<#result>;
        }
    });
    let ident = trait_name(spec);
    let docs = doc(&format!(
        "The {} surface an engine implements; the dispatch table calls it.",
        api_name(spec)
    ));
    quote! {
        #docs
        pub trait #ident {
            #(#methods)*
        }
    }
}
