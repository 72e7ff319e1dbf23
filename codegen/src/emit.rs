//! The emitters: IR → token streams. One function per generated item kind.

use heck::ToUpperCamelCase;
use mikobase_spec::{ApiSpec, ErrorDef, Field, OpKind, Operation, TypeDef, TypeKind, TypeRef, Variant};
use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

use crate::names::{doc, field, request_type, route, route_const, type_name};
use crate::Emitter;

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

/// Whether `ty`, held directly (not behind a list or a map), contains the type `owner`:
/// such a field or variant is boxed, or the type would have infinite size.
fn reaches(spec: &ApiSpec, ty: &TypeRef, owner: &str, seen: &mut Vec<String>) -> bool {
    let TypeRef::Named(name) = ty else {
        return false;
    };
    if name.wire == owner {
        return true;
    }
    if seen.contains(&name.wire) {
        return false;
    }
    seen.push(name.wire.clone());
    match spec.type_named(&name.wire).map(|t| &t.kind) {
        Some(TypeKind::Struct { fields, .. }) => fields.iter().any(|f| reaches(spec, &f.ty, owner, seen)),
        Some(TypeKind::Alias(target)) => reaches(spec, target, owner, seen),
        Some(TypeKind::Union(variants)) => variants.iter().any(|v| reaches(spec, &v.ty, owner, seen)),
        Some(TypeKind::Enum(_)) | None => false,
    }
}

/// The Rust type of a field or variant of `owner`, boxed when it is recursive.
fn member_type(spec: &ApiSpec, ty: &TypeRef, owner: &str) -> TokenStream {
    let inner = rust_type(ty);
    if reaches(spec, ty, owner, &mut Vec::new()) {
        quote!(::std::boxed::Box<#inner>)
    } else {
        inner
    }
}

/// Whether `ty` has a `Default` (enums and unions have none; a struct has one when every
/// required field does).
fn defaultable(spec: &ApiSpec, ty: &TypeRef, seen: &mut Vec<String>) -> bool {
    let TypeRef::Named(name) = ty else {
        return true;
    };
    if seen.contains(&name.wire) {
        return true;
    }
    seen.push(name.wire.clone());
    match spec.type_named(&name.wire).map(|t| &t.kind) {
        Some(TypeKind::Struct { fields, .. }) => required_defaultable(spec, fields, seen),
        Some(TypeKind::Alias(target)) => defaultable(spec, target, seen),
        Some(TypeKind::Enum(_) | TypeKind::Union(_)) | None => false,
    }
}

fn required_defaultable(spec: &ApiSpec, fields: &[Field], seen: &mut Vec<String>) -> bool {
    fields
        .iter()
        .filter(|f| !f.optional)
        .all(|f| defaultable(spec, &f.ty, seen))
}

/// The derives of a struct: `Default` only when every required field has one.
fn struct_derives(spec: &ApiSpec, fields: &[Field], deserialize: bool) -> TokenStream {
    let default =
        required_defaultable(spec, fields, &mut Vec::new()).then(|| quote!(::core::default::Default,));
    let deserialize = deserialize.then(|| quote!(__support::serde::Deserialize,));
    quote! {
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq, #default __support::serde::Serialize, #deserialize)]
        #[serde(crate = "__support::serde")]
    }
}

fn with_decision(text: &str, decision: &Option<String>) -> TokenStream {
    match decision {
        Some(d) => doc(&format!("{text}\n\nDecision {d} (mikobase-spec/DECISIONS.md).")),
        None => doc(text),
    }
}

/// The fields of a struct owned by `owner`. Absent optional fields are `None`; `null` is
/// `None` only for nullable ones (elsewhere it must fit the type, so `json` keeps it).
/// `derived_de`: the struct derives `Deserialize` (open structs have their own).
fn struct_fields(spec: &ApiSpec, owner: &str, fields: &[Field], derived_de: bool) -> TokenStream {
    let items = fields.iter().map(|f| {
        let ident = field(&f.name.wire);
        let wire = &f.name.wire;
        let docs = with_decision(&f.description, &f.decision);
        let ty = member_type(spec, &f.ty, owner);
        let present = (derived_de && !f.nullable).then(|| quote!(deserialize_with = "__support::present",));
        let default = derived_de.then(|| quote!(default,));
        if f.optional {
            quote! {
                #docs
                #[serde(rename = #wire, #default #present skip_serializing_if = "::core::option::Option::is_none")]
                pub #ident: ::core::option::Option<#ty>,
            }
        } else {
            quote! {
                #docs
                #[serde(rename = #wire)]
                pub #ident: #ty,
            }
        }
    });
    quote!(#(#items)*)
}

/// `Deserialize` for an open struct: keys beyond the fields, and optional fields whose
/// value does not fit their type, stay in `extra` as they are, so whoever validates the
/// object (the engine) sees exactly what was sent.
fn open_deserialize(ident: &Ident, fields: &[Field]) -> TokenStream {
    let inits = fields.iter().map(|f| {
        let name = field(&f.name.wire);
        let wire = &f.name.wire;
        let value = match (f.optional, f.nullable) {
            (false, _) => quote!(__support::require::<_, D::Error>(&mut extra, #wire)?),
            (true, false) => quote!(__support::take(&mut extra, #wire)),
            (true, true) => {
                quote!(__support::take::<::core::option::Option<_>>(&mut extra, #wire).flatten())
            }
        };
        quote!(#name: #value,)
    });
    let binding = if fields.is_empty() {
        quote!(let extra)
    } else {
        quote!(let mut extra)
    };
    quote! {
        impl<'de> __support::serde::Deserialize<'de> for #ident {
            fn deserialize<D: __support::serde::Deserializer<'de>>(deserializer: D) -> ::core::result::Result<Self, D::Error> {
                #binding: __support::serde_json::Map<::std::string::String, __support::serde_json::Value> =
                    __support::serde::Deserialize::deserialize(deserializer)?;
                ::core::result::Result::Ok(#ident { #(#inits)* extra })
            }
        }
    }
}

fn union_variants(spec: &ApiSpec, owner: &str, variants: &[Variant]) -> TokenStream {
    let items = variants.iter().map(|v| {
        let ident = type_name(&v.name.wire);
        let docs = doc(&v.description);
        let ty = member_type(spec, &v.ty, owner);
        quote! { #docs #ident(#ty), }
    });
    quote!(#(#items)*)
}

/// A named type of the spec.
pub fn type_def(spec: &ApiSpec, def: &TypeDef) -> TokenStream {
    let ident = type_name(&def.name.wire);
    let owner = def.name.wire.as_str();
    let docs = with_decision(&def.description, &def.decision);
    match &def.kind {
        TypeKind::Alias(target) => {
            let target = rust_type(target);
            quote! { #docs pub type #ident = #target; }
        }
        TypeKind::Struct { fields, open: false } => {
            let body = struct_fields(spec, owner, fields, true);
            let derives = struct_derives(spec, fields, true);
            quote! {
                #docs
                #derives
                #[serde(deny_unknown_fields)]
                pub struct #ident { #body }
            }
        }
        TypeKind::Struct { fields, open: true } => {
            let body = struct_fields(spec, owner, fields, false);
            let derives = struct_derives(spec, fields, false);
            let deserialize = open_deserialize(&ident, fields);
            quote! {
                #docs
                #derives
                pub struct #ident {
                    #body
                    /// Other keys (and optional fields whose value does not fit their
                    /// type), kept as they are.
                    #[serde(flatten)]
                    pub extra: __support::serde_json::Map<::std::string::String, __support::serde_json::Value>,
                }
                #deserialize
            }
        }
        TypeKind::Union(variants) => {
            let body = union_variants(spec, owner, variants);
            // What a value that fits no variant is told (serde's default names no shape).
            let shapes: Vec<String> = variants
                .iter()
                .map(|v| format!("`{}` ({})", v.name.wire, v.ty))
                .collect();
            let expecting = format!("a {owner}: {}", shapes.join(" or "));
            quote! {
                #docs
                #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq, __support::serde::Serialize, __support::serde::Deserialize)]
                #[serde(crate = "__support::serde", untagged, expecting = #expecting)]
                pub enum #ident { #body }
            }
        }
        TypeKind::Enum(values) => {
            let variants = values.iter().map(|v| {
                let variant = type_name(&v.wire);
                let wire = &v.wire;
                let docs = doc(&format!("`{wire}`."));
                quote! { #docs #[serde(rename = #wire)] #variant, }
            });
            quote! {
                #docs
                #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy, ::core::cmp::PartialEq, ::core::cmp::Eq, __support::serde::Serialize, __support::serde::Deserialize)]
                #[serde(crate = "__support::serde")]
                pub enum #ident { #(#variants)* }
            }
        }
    }
}

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
    quote! {
        /// The Mikobase surface an engine implements; the dispatch table calls it.
        pub trait MikobaseService {
            #(#methods)*
        }
    }
}

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
        pub fn dispatch<S: MikobaseService + ?Sized>(
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
    quote! {
        /// The Mikobase proxy: every operation is one request over the transport.
        #[derive(::core::fmt::Debug, ::core::clone::Clone)]
        pub struct MikobaseClient<T> {
            transport: T,
        }

        impl<T: __support::Transport> MikobaseClient<T> {
            /// A client over `transport`.
            pub fn new(transport: T) -> Self {
                MikobaseClient { transport }
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

/// The items one emitter makes.
pub fn part(spec: &ApiSpec, emitter: Emitter) -> TokenStream {
    match emitter {
        Emitter::Routes => route_consts(spec),
        Emitter::Types => {
            let types = spec.types.iter().map(|t| type_def(spec, t));
            quote!(#(#types)*)
        }
        Emitter::Requests => {
            let requests = spec.operations.iter().map(|op| request_struct(spec, op));
            quote!(#(#requests)*)
        }
        Emitter::Ids => {
            let errors = id_enum("ErrorId", "error", &spec.errors);
            let warnings = id_enum("WarningId", "warning", &spec.warnings);
            quote!(#errors #warnings)
        }
        Emitter::Service => service_trait(spec),
        Emitter::Dispatch => dispatch(spec),
        Emitter::Client => client(spec),
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
