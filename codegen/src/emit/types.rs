//! The spec's named types: structs (closed and open), aliases, enums and untagged unions,
//! and the struct layout (fields, derives, boxing of recursive members) the request
//! structs reuse.

use mikobase_spec::{ApiSpec, Field, TypeDef, TypeKind, TypeRef, Variant};
use proc_macro2::{Ident, TokenStream};
use quote::quote;

use super::rust_type;
use crate::names::{doc, field, type_name};

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
    match spec
        .type_named(&name.wire)
        .filter(|t| !t.runtime)
        .map(|t| &t.kind)
    {
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
    // A runtime type's impls are the runtime's: no `Default` is assumed.
    match spec
        .type_named(&name.wire)
        .filter(|t| !t.runtime)
        .map(|t| &t.kind)
    {
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
pub(super) fn struct_derives(spec: &ApiSpec, fields: &[Field], deserialize: bool) -> TokenStream {
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
pub(super) fn struct_fields(spec: &ApiSpec, owner: &str, fields: &[Field], derived_de: bool) -> TokenStream {
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
    if def.runtime {
        // One Rust type for the concept: the runtime's, described by the spec.
        return quote! { #docs pub use __support::#ident; };
    }
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
