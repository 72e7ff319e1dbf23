//! Lowering: a struct and its fields to a [`Model`], checking every rule of the derive
//! (the class name, parents, keys, `required` against `Option`, defaults and `one_of`
//! against the class, what serde skips or flattens); every problem is collected.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Expr, Fields, LitStr, Token};

use super::attributes::{
    doc_text, field_class, flag, literal, parents, record_attrs, rename, string, SerdeAttrs, FIELD_KEYS,
    STRUCT_KEYS,
};
use super::classes::{classify, element_class, fits, looks_like_uns, value_type};
use super::{Errors, FieldModel, Model};

/// Methods a proxy gets from `Stored` (and `Clone`); an accessor may not hide them.
const PROXY_METHODS: &[&str] = &["pk", "get", "update", "delete", "field", "clone"];

pub(super) fn lower(input: &DeriveInput) -> syn::Result<Model<'_>> {
    let shape = "`#[derive(Record)]` needs a struct with named fields (a record's bucket is a JSON object)";
    let named = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => named,
            _ => return Err(syn::Error::new_spanned(&input.ident, shape)),
        },
        Data::Enum(data) => return Err(syn::Error::new(data.enum_token.span, shape)),
        Data::Union(data) => return Err(syn::Error::new(data.union_token.span, shape)),
    };
    let mut errors = Errors::default();
    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        errors.at(
            &input.generics,
            "`#[derive(Record)]` does not support generic structs: a class has one field layout",
        );
    }
    let serde = SerdeAttrs::read(&input.attrs);
    if let Some(span) = serde.transparent {
        errors.push(syn::Error::new(
            span,
            "`#[serde(transparent)]` does not give a bucket (a JSON object)",
        ));
    }
    let mut class = None;
    let mut description = doc_text(&input.attrs);
    let mut krate: syn::Path = syn::parse_quote!(::caspian_ipc);
    let mut inherits: Vec<LitStr> = Vec::new();
    record_attrs(&input.attrs, STRUCT_KEYS, &mut errors, |key, meta| {
        if key == "inherits" {
            inherits = parents(meta)?;
            return Ok(());
        }
        let lit = string(meta)?;
        match key {
            "description" => description = Some(lit.value()),
            "crate" => {
                krate = lit.parse().map_err(|_| {
                    syn::Error::new_spanned(
                        &lit,
                        format!(
                            "`{}` is not a path: write the name the dependency has in Cargo.toml, \
                             e.g. `crate = \"ipc\"` (or a path such as `crate = \"crate::ipc\"`)",
                            lit.value()
                        ),
                    )
                })?;
            }
            _ => class = Some(lit),
        }
        Ok(())
    });
    let class = match class {
        Some(lit) => {
            if let Err(why) = looks_like_uns(&lit.value()) {
                errors.at(
                    &lit,
                    format!("`{}` is not a UNS class name: it {why}", lit.value()),
                );
            }
            lit.value()
        }
        None => {
            errors.at(
                &input.ident,
                "`#[derive(Record)]` needs the class name: add `#[record(class = \"example.org/...\")]`",
            );
            String::new()
        }
    };
    for (i, parent) in inherits.iter().enumerate() {
        let name = parent.value();
        if let Err(why) = looks_like_uns(&name) {
            errors.at(parent, format!("`{name}` is not a UNS class name: it {why}"));
        } else if name == class {
            errors.at(
                parent,
                format!("`{name}` cannot inherit from itself: name its parent class"),
            );
        } else if inherits[..i].iter().any(|p| p.value() == name) {
            errors.at(parent, format!("`{name}` is inherited twice: name it once"));
        }
    }
    let fields: Vec<FieldModel<'_>> = named
        .named
        .iter()
        .filter_map(|field| lower_field(field, &serde, &mut errors))
        .collect();
    if inherits.is_empty() {
        for field in fields.iter().filter(|f| f.inherited) {
            errors.at(
                field.ident,
                format!(
                    "`{}` is `inherited`, but the struct names no parent class: add \
                     `#[record(inherits = \"example.org/...\")]` to the struct",
                    field.ident
                ),
            );
        }
    }
    for (i, field) in fields.iter().enumerate() {
        if let Some(first) = fields[..i].iter().find(|f| f.key == field.key) {
            errors.at(
                field.ident,
                format!(
                    "`{}` and `{}` have the same key `{}`",
                    first.ident, field.ident, field.key
                ),
            );
        }
    }
    errors.finish(Model {
        ident: &input.ident,
        vis: &input.vis,
        krate,
        class,
        description,
        inherits: inherits.iter().map(LitStr::value).collect(),
        fields,
    })
}

/// A field as a key; `None` when serde skips it.
fn lower_field<'a>(
    field: &'a syn::Field,
    container: &SerdeAttrs,
    errors: &mut Errors,
) -> Option<FieldModel<'a>> {
    let ident = field.ident.as_ref()?;
    let serde = SerdeAttrs::read(&field.attrs);
    let name = ident.unraw().to_string();
    let (mut class, optional) = classify(&field.ty);
    let (mut required, mut unique, mut default, mut one_of) = (None, false, None, Vec::new());
    let mut description = doc_text(&field.attrs);
    let mut inherited: Option<Span> = None;
    let mut one_of_type: Option<Span> = None;
    let mut nested: Option<Span> = None;
    let mut items: Option<(String, Span)> = None;
    let mut explicit_class = false;
    let mut declares: Vec<(String, Span)> = Vec::new();
    record_attrs(&field.attrs, FIELD_KEYS, errors, |key, meta| {
        if key == "inherited" {
            inherited = Some(flag(meta)?);
            return Ok(());
        }
        declares.push((key.to_owned(), meta.path.span()));
        match key {
            "description" => description = Some(string(meta)?.value()),
            "required" => required = Some(flag(meta)?),
            "unique" => {
                flag(meta)?;
                unique = true;
            }
            "default" => {
                let expr: Expr = meta.value()?.parse()?;
                default = Some((literal(&expr)?, expr));
            }
            "fields" => nested = Some(flag(meta)?),
            "one_of" if !meta.input.peek(syn::token::Paren) => {
                if meta.input.peek(Token![=]) {
                    return Err(meta.error(
                        "write `one_of` alone (the values of the field's enum, which derives `OneOf`) \
                         or list them: `one_of(\"a\", \"b\")`",
                    ));
                }
                one_of_type = Some(meta.path.span());
            }
            "items" => {
                let (lit, value) = field_class(meta)?;
                items = Some((value, lit.span()));
            }
            "one_of" => {
                let content;
                syn::parenthesized!(content in meta.input);
                for expr in Punctuated::<Expr, Token![,]>::parse_terminated(&content)? {
                    one_of.push((literal(&expr)?, expr));
                }
            }
            "class" => {
                let (_, value) = field_class(meta)?;
                class = Some(value);
                explicit_class = true;
            }
            _ => {} // `record_attrs` passes known keys only
        }
        Ok(())
    });
    if one_of_type.is_some() && !explicit_class {
        class = Some("string".to_owned());
    }
    if let Some(span) = nested {
        if explicit_class && class.as_deref() != Some("hash") {
            errors.push(syn::Error::new(
                span,
                format!(
                    "`{name}` has `fields`, so it is a `hash`: remove `class = \"{}\"`",
                    class.as_deref().unwrap_or_default()
                ),
            ));
        }
        if one_of_type.is_some() || !one_of.is_empty() {
            errors.push(syn::Error::new(
                span,
                "a hash with `fields` has no `one_of`: constrain its sub-keys in the nested struct",
            ));
        }
        class = Some("hash".to_owned());
    }
    let items = match items {
        Some((value, span)) => {
            if !matches!(class.as_deref(), Some("array" | "hash")) {
                errors.push(syn::Error::new(
                    span,
                    format!(
                        "`items` is the class of an array's elements (or a hash's values), and `{name}` is \
                         a `{}`: remove `items`, or give the field `class = \"array\"`",
                        class.as_deref().unwrap_or("any")
                    ),
                ));
            }
            Some(value)
        }
        None => element_class(&field.ty),
    };
    if serde.skip {
        if field.attrs.iter().any(|a| a.path().is_ident("record")) {
            errors.at(
                ident,
                format!("`{name}` is skipped by serde: it has no key to declare"),
            );
        }
        return None;
    }
    if let Some(span) = serde.flatten {
        errors.push(syn::Error::new(
            span,
            "`#[serde(flatten)]` is not supported by `#[derive(Record)]`: the class declares each key",
        ));
    }
    if inherited.is_some() {
        for (key, span) in &declares {
            errors.push(syn::Error::new(
                *span,
                format!(
                    "`{name}` is `inherited`: its parent class declares it, so `{key}` here would \
                     not apply; remove `{key}` (or `inherited`, to redeclare the key in this class)"
                ),
            ));
        }
    }
    if PROXY_METHODS.contains(&name.as_str()) {
        errors.at(
            ident,
            format!(
                "a field named `{name}` would hide the proxy's own `{name}()`: rename the Rust field and keep \
                 the key with `#[serde(rename = \"{name}\")]`"
            ),
        );
    }
    if let (Some(span), true) = (required, optional) {
        errors.push(syn::Error::new(
            span,
            format!("`{name}` is an `Option`, so it cannot be required: use the inner type"),
        ));
    }
    for (value, expr) in one_of.iter().chain(&default) {
        if !fits(class.as_deref(), value) {
            errors.at(
                expr,
                format!(
                    "this value does not fit `{name}`, whose class is `{}`",
                    class.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    if let Some((value, expr)) = &default {
        if !one_of.is_empty() && !one_of.iter().any(|(allowed, _)| allowed == value) {
            errors.at(
                expr,
                format!("the default of `{name}` is not one of its `one_of` values"),
            );
        }
    }
    let key = serde
        .rename
        .or_else(|| {
            container
                .rename_all
                .as_deref()
                .and_then(|rule| rename(rule, &name))
        })
        .unwrap_or(name);
    let defaulted = default.is_some() || serde.default || container.default || serde.skip_if;
    Some(FieldModel {
        ident,
        ty: &field.ty,
        key,
        class,
        required: required.is_some() || !(optional || defaulted),
        unique,
        default: default.map(|(value, _)| value),
        one_of: one_of.into_iter().map(|(value, _)| value).collect(),
        description,
        inherited: inherited.is_some(),
        one_of_type: one_of_type.map(|_| value_type(&field.ty)),
        items,
        nested: nested.map(|_| value_type(&field.ty)),
    })
}
