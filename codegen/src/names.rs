//! Rust names for spec names, and the one helper both emitters use for routes.

use heck::{ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};
use mikobase_spec::{ApiSpec, Operation};
use proc_macro2::{Ident, Span};

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for", "if",
    "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "static",
    "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn",
    "abstract", "become", "box", "do", "final", "macro", "override", "priv", "typeof", "unsized", "virtual",
    "yield", "try", "gen",
];

/// `snake_case`, raw when it is a keyword (`type` → `r#type`).
pub fn field(name: &str) -> Ident {
    let snake = name.to_snake_case();
    if KEYWORDS.contains(&snake.as_str()) {
        Ident::new_raw(&snake, Span::call_site())
    } else {
        Ident::new(&snake, Span::call_site())
    }
}

/// `UpperCamelCase`.
pub fn type_name(name: &str) -> Ident {
    Ident::new(&name.to_upper_camel_case(), Span::call_site())
}

/// The spec's name in `UpperCamelCase` (`Mikobase` for `spec: mikobase`): what the
/// service trait and the client proxy are named after.
pub fn api_name(spec: &ApiSpec) -> String {
    spec.name.to_upper_camel_case()
}

/// The service trait an engine implements: `MikobaseService` for `spec: mikobase`.
pub fn service_trait(spec: &ApiSpec) -> Ident {
    Ident::new(&format!("{}Service", api_name(spec)), Span::call_site())
}

/// The client proxy: `MikobaseClient` for `spec: mikobase`.
pub fn client_type(spec: &ApiSpec) -> Ident {
    Ident::new(&format!("{}Client", api_name(spec)), Span::call_site())
}

/// `SelectRequest` for operation `select`.
pub fn request_type(op: &Operation) -> Ident {
    Ident::new(
        &format!("{}Request", op.name.wire.to_upper_camel_case()),
        Span::call_site(),
    )
}

/// The const holding an operation's route: `ROUTE_RECORD_BY_PK`, or `ROUTE_Q0`.
pub fn route_const(spec_op: &Operation) -> Ident {
    match &spec_op.kind {
        mikobase_spec::OpKind::Q0 => Ident::new("ROUTE_Q0", Span::call_site()),
        mikobase_spec::OpKind::Method { .. } => Ident::new(
            &format!("ROUTE_{}", spec_op.name.wire.to_shouty_snake_case()),
            Span::call_site(),
        ),
    }
}

/// The route an operation is served on: the one place route strings come from, used by
/// the dispatch table, the client proxy and the OpenAPI document alike.
pub fn route(op: &Operation) -> &str {
    ApiSpec::route_of(op)
}

/// A doc attribute with a leading space (`/// text`, not `///text`).
pub fn doc(text: &str) -> proc_macro2::TokenStream {
    let lines: Vec<String> = text.lines().map(|l| format!(" {}", l.trim_end())).collect();
    quote::quote! { #(#[doc = #lines])* }
}
