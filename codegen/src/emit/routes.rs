//! The route consts (`ROUTE_Q0`, `ROUTE_RECORD_BY_PK`, ...), one per route.

use mikobase_spec::{ApiSpec, OpKind};
use proc_macro2::TokenStream;
use quote::quote;

use crate::names::{doc, route, route_const};

/// One route const per route (`ROUTE_Q0`, `ROUTE_RECORD_BY_PK`, ...).
pub fn route_consts(spec: &ApiSpec) -> TokenStream {
    let mut seen = Vec::new();
    let mut out = TokenStream::new();
    for op in &spec.operations {
        let ident = route_const(op);
        if seen.contains(&ident.to_string()) {
            continue;
        }
        seen.push(ident.to_string());
        let path = route(op);
        let docs = match op.kind {
            OpKind::Q0 => doc("The route of every Q0 action (`POST`, body `{\"action\": ...}`)."),
            OpKind::Method { .. } => doc(&format!("The route of `{}` (`POST`).", op.name.wire)),
        };
        out.extend(quote! { #docs pub const #ident: &str = #path; });
    }
    out
}
