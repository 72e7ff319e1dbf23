//! The server dispatch table: route (and Q0 action) → service call.

use mikobase_spec::{ApiSpec, OpKind, Operation};
use proc_macro2::TokenStream;
use quote::quote;

use crate::names::{field, route_const, service_trait};

/// The server dispatch table: route (and Q0 action) → trait call. Thin: reading and
/// checking the body, picking the action, decoding and writing the envelope are the
/// runtime's (`support::request_object`, `take_action`, `call`).
pub fn dispatch(spec: &ApiSpec) -> TokenStream {
    let call = |op: &Operation| {
        let method = field(&op.name.wire);
        quote! { __support::call::<ErrorId, _, _>(body, |request| service.#method(context, request)) }
    };
    let q0_ops: Vec<&Operation> = spec
        .operations
        .iter()
        .filter(|op| op.kind == OpKind::Q0)
        .collect();
    let actions: Vec<&str> = q0_ops.iter().map(|op| op.name.wire.as_str()).collect();
    let q0_arms = q0_ops.iter().map(|op| {
        let action = &op.name.wire;
        let call = call(op);
        quote! { #action => #call, }
    });
    let q0_branch = (!q0_ops.is_empty()).then(|| {
        quote! {
            if route == ROUTE_Q0 {
                const ACTIONS: &[&str] = &[#(#actions),*];
                return match __support::take_action::<ErrorId>(&mut body, ACTIONS) {
                    ::core::result::Result::Ok(action) => match action.as_str() {
                        #(#q0_arms)*
                        other => __support::unsupported_action::<ErrorId>(other, ACTIONS),
                    },
                    ::core::result::Result::Err(refused) => refused,
                };
            }
        }
    });
    let method_arms: Vec<TokenStream> = spec
        .operations
        .iter()
        .filter(|op| op.kind != OpKind::Q0)
        .map(|op| {
            let route = route_const(op);
            let call = call(op);
            quote! { #route => #call, }
        })
        .collect();
    let routes: Vec<TokenStream> = {
        let mut seen = Vec::new();
        spec.operations
            .iter()
            .map(route_const)
            .filter(|r| {
                let fresh = !seen.contains(&r.to_string());
                seen.push(r.to_string());
                fresh
            })
            .map(|r| quote!(#r))
            .collect()
    };
    let unknown = quote! { __support::unknown_route::<ErrorId>(route, ROUTES) };
    let by_route = if method_arms.is_empty() {
        unknown
    } else {
        quote! { match route { #(#method_arms)* _ => #unknown } }
    };
    let action_not_supported = if q0_ops.is_empty() {
        quote!(ErrorId::InvalidRequest)
    } else {
        quote!(ErrorId::ActionNotSupported)
    };
    let service_trait = service_trait(spec);
    quote! {
        impl __support::DispatchErrors for ErrorId {
            const INVALID_REQUEST: Self = ErrorId::InvalidRequest;
            const REQUEST_TOO_LARGE: Self = ErrorId::RequestTooLarge;
            const ACTION_NOT_SUPPORTED: Self = #action_not_supported;
            fn wire(self) -> &'static str {
                self.as_str()
            }
            fn status_of(id: &str) -> u16 {
                ErrorId::from_wire(id).map_or(500, ErrorId::http_status)
            }
        }

        /// Answers one request: `route` and the JSON `body` in, HTTP status and envelope out.
        ///
        /// A body over `limit` bytes is `request-too-large`; a body that does not decode
        /// into the operation's request is `invalid_request` naming the missing, unknown or
        /// mistyped field; an unknown Q0 action is `action-not-supported`.
        pub fn dispatch<S: #service_trait + ?Sized>(
            service: &mut S,
            context: &__support::CallContext,
            route: &str,
            body: &[u8],
            limit: usize,
        ) -> (u16, ::std::vec::Vec<u8>) {
            const ROUTES: &[&str] = &[#(#routes),*];
            if !ROUTES.contains(&route) {
                return __support::unknown_route::<ErrorId>(route, ROUTES);
            }
            #[allow(unused_mut)]
            let mut body = match __support::request_object::<ErrorId>(body, limit) {
                ::core::result::Result::Ok(body) => body,
                ::core::result::Result::Err(refused) => return refused,
            };
            #q0_branch
            #by_route
        }
    }
}
