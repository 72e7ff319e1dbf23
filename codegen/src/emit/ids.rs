//! `ErrorId` and `WarningId`: the registry's ids with their wire strings and statuses.

use mikobase_spec::ErrorDef;
use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

use crate::names::{doc, type_name};

/// An id enum (`ErrorId` or `WarningId`) with the exact wire strings.
pub fn id_enum(name: &str, what: &str, defs: &[ErrorDef]) -> TokenStream {
    let ident = Ident::new(name, Span::call_site());
    let variants: Vec<Ident> = defs.iter().map(|e| type_name(&e.id.wire)).collect();
    let wires: Vec<&str> = defs.iter().map(|e| e.id.wire.as_str()).collect();
    let statuses: Vec<u16> = defs.iter().map(|e| e.status).collect();
    let documented: Vec<bool> = defs.iter().map(|e| e.documented).collect();
    let docs = defs.iter().map(|e| {
        let origin = if e.documented {
            ""
        } else {
            " (ours: not in the Mikobase documents)"
        };
        doc(&format!(
            "`{}` (HTTP {}){origin}: {}",
            e.id.wire, e.status, e.description
        ))
    });
    let enum_docs = doc(&format!(
        "Every {what} id, with its exact wire string and HTTP status."
    ));
    let from_wire = if defs.is_empty() {
        quote! { let _ = id; ::core::option::Option::None }
    } else {
        quote! {
            match id { #(#wires => ::core::option::Option::Some(#ident::#variants),)* _ => ::core::option::Option::None }
        }
    };
    quote! {
        #enum_docs
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy, ::core::cmp::PartialEq, ::core::cmp::Eq, ::core::hash::Hash)]
        pub enum #ident { #(#docs #variants,)* }

        impl #ident {
            /// Every id, in spec order.
            pub const ALL: &'static [#ident] = &[#(#ident::#variants),*];

            /// The id exactly as on the wire.
            pub fn as_str(self) -> &'static str {
                match self { #(#ident::#variants => #wires,)* }
            }

            /// The HTTP status that answers it.
            pub fn http_status(self) -> u16 {
                match self { #(#ident::#variants => #statuses,)* }
            }

            /// Whether the Mikobase documents define it (false: a project decision).
            pub fn documented(self) -> bool {
                match self { #(#ident::#variants => #documented,)* }
            }

            /// The id for a wire string.
            pub fn from_wire(id: &str) -> ::core::option::Option<#ident> {
                #from_wire
            }
        }
    }
}
