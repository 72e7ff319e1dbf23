//! The client proxy: one method per operation over any transport.

use mikobase_spec::{ApiSpec, OpKind, Operation};
use proc_macro2::TokenStream;
use quote::quote;

use super::rust_type;
use crate::names::{api_name, client_type, doc, field, request_type, route, route_const};

/// The client proxy: one method per operation over any transport.
pub fn client(spec: &ApiSpec) -> TokenStream {
    let methods = spec.operations.iter().map(|op| {
        let method = field(&op.name.wire);
        let request = request_type(op);
        let result = rust_type(&op.result);
        let route = route_const(op);
        let docs = doc(&format!(
            "{}\n\nOne `POST {}` request.",
            op.description,
            route_path(op)
        ));
        let action = match op.kind {
            OpKind::Q0 => {
                let action = &op.name.wire;
                quote!(::core::option::Option::Some(#action))
            }
            OpKind::Method { .. } => quote!(::core::option::Option::None),
        };
        quote! {
            #docs
            pub fn #method(&self, request: &#request)
                -> ::core::result::Result<__support::Answer<#result>, __support::ClientError> {
                let bytes = __support::encode_request(request, #action)?;
                let (_, answer) = self.transport.post(#route, bytes)?;
                __support::decode_reply(&answer)
            }
        }
    });
    let raw_q0 = spec.operations.iter().any(|op| op.kind == OpKind::Q0).then(|| {
        quote! {
            /// Sends a raw Q0 request; the whole envelope when it succeeded,
            /// `ClientError::Failed` (its errors and warnings) when it did not.
            pub fn q0(&self, request: &__support::serde_json::Value)
                -> ::core::result::Result<__support::serde_json::Value, __support::ClientError> {
                let bytes = __support::serde_json::to_vec(request)
                    .map_err(|e| __support::ClientError::Encode(e.to_string()))?;
                let (_, answer) = self.transport.post(ROUTE_Q0, bytes)?;
                __support::decode_raw(&answer)
            }
        }
    });
    let ident = client_type(spec);
    let docs = doc(&format!(
        "The {} proxy: every operation is one request over the transport.",
        api_name(spec)
    ));
    quote! {
        #docs
        #[derive(::core::fmt::Debug, ::core::clone::Clone)]
        pub struct #ident<T> {
            transport: T,
        }

        impl<T: __support::Transport> #ident<T> {
            /// A client over `transport`.
            pub fn new(transport: T) -> Self {
                #ident { transport }
            }

            /// The transport.
            pub fn transport(&self) -> &T {
                &self.transport
            }

            #raw_q0

            #(#methods)*
        }
    }
}

fn route_path(op: &Operation) -> String {
    route(op).to_owned()
}
