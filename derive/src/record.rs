//! `#[derive(Record)]`: lowers a struct and its `#[record]` / `#[serde]` attributes to a
//! [`Model`], then emits the `Record` impl (class name and field declarations as constants)
//! and the `{Struct}Proxy` type with one accessor per key. The generic layer it plugs into
//! is `caspian_ipc::mikobase::record`.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, ToTokens};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, Data, DeriveInput, Expr, Fields, GenericArgument, Ident, Lit, LitStr, Token, Type, Visibility,
};

/// The expansion of `#[derive(Record)]` on `input`: the impl and proxy, or every problem as
/// a spanned `compile_error!`.
pub fn expand(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    match lower(&input) {
        Ok(model) => emit(&model),
        Err(e) => e.to_compile_error(),
    }
}

/// Field classes the store knows besides UNS class names.
const PRIMITIVES: &[&str] = &[
    "string",
    "number",
    "integer",
    "boolean",
    "array",
    "hash",
    "timestamp",
    "any",
];
/// Keys of `#[record(...)]` on the struct and on a field.
const STRUCT_KEYS: &[&str] = &["class", "crate", "description", "inherits"];
const FIELD_KEYS: &[&str] = &[
    "required",
    "unique",
    "one_of",
    "default",
    "class",
    "description",
    "inherited",
    "items",
    "fields",
];
/// Methods a proxy gets from `Stored` (and `Clone`); an accessor may not hide them.
const PROXY_METHODS: &[&str] = &["pk", "get", "update", "delete", "field", "clone"];

/// A struct as a class.
#[derive(Debug)]
struct Model<'a> {
    ident: &'a Ident,
    vis: &'a Visibility,
    /// The path of the `caspian_ipc` crate (`#[record(crate = "...")]`).
    krate: syn::Path,
    class: String,
    description: Option<String>,
    /// The parent classes (`#[record(inherits = ..)]`), in the order given.
    inherits: Vec<String>,
    fields: Vec<FieldModel<'a>>,
}

/// One bucket key.
#[derive(Debug)]
struct FieldModel<'a> {
    ident: &'a Ident,
    ty: &'a Type,
    key: String,
    class: Option<String>,
    required: bool,
    unique: bool,
    default: Option<Literal>,
    one_of: Vec<Literal>,
    description: Option<String>,
    /// Declared by a parent class (`#[record(inherited)]`): in the bucket and the proxy, not
    /// in this class's definition.
    inherited: bool,
    /// `#[record(one_of)]`: the values are `<this type as OneOf>::VALUES`.
    one_of_type: Option<&'a Type>,
    /// The class of an array's elements (a hash's values): the documents' `items`.
    items: Option<String>,
    /// `#[record(fields)]`: a hash whose sub-keys are `<this type as Record>::FIELDS`.
    nested: Option<&'a Type>,
}

/// A constant in `default` / `one_of`.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
}

/// Collects errors so that one run reports every problem.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn at(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }
}

fn lower(input: &DeriveInput) -> syn::Result<Model<'_>> {
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

/// The parents of `inherits = "a"` or `inherits = ["a", "b"]`.
fn parents(meta: &ParseNestedMeta<'_>) -> syn::Result<Vec<LitStr>> {
    let hint = "`inherits` takes a class name or a list of them: write \
                `inherits = \"example.org/...\"` or `inherits = [\"example.org/a\", \"example.org/b\"]`";
    if !meta.input.peek(Token![=]) {
        return Err(meta.error(hint));
    }
    let expr: Expr = meta.value()?.parse()?;
    let string = |expr: &Expr| match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(lit.clone()),
        other => Err(syn::Error::new_spanned(other, hint)),
    };
    match &expr {
        Expr::Array(list) if !list.elems.is_empty() => list.elems.iter().map(string).collect(),
        other => Ok(vec![string(other)?]),
    }
}

/// The doc comments (`///`, `/** */`, `#[doc = "..."]`) in `attrs` as one text: the lines
/// joined with `\n`, each without the one space after `///`, the whole trimmed; `None`
/// when there is none (or only `#[doc = macro!(..)]`, which a derive cannot expand).
fn doc_text(attrs: &[Attribute]) -> Option<String> {
    let docs: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(syn::MetaNameValue {
                value: Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }),
                ..
            }) => Some(s.value()),
            _ => None,
        })
        .collect();
    let lines: Vec<&str> = docs
        .iter()
        .flat_map(|doc| doc.split('\n'))
        .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end())
        .collect();
    let text = lines.join("\n");
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
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

/// Runs `on` for each key of every `#[record(...)]` in `attrs`; unknown and repeated keys
/// are reported (with a "did you mean") and skipped.
fn record_attrs(
    attrs: &[Attribute],
    known: &[&str],
    errors: &mut Errors,
    mut on: impl FnMut(&str, &ParseNestedMeta<'_>) -> syn::Result<()>,
) {
    let mut seen: Vec<String> = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("record")) {
        let parsed = attr.parse_nested_meta(|meta| {
            let key = meta.path.get_ident().map(Ident::to_string).unwrap_or_default();
            if !known.contains(&key.as_str()) {
                let hint = mikobase_spec::suggest(&key, known.iter().copied())
                    .map_or_else(String::new, |h| format!("; {h}"));
                let expected = known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                errors.at(
                    &meta.path,
                    format!("unknown `record` key `{key}`, expected one of: {expected}{hint}"),
                );
                return skip_value(&meta);
            }
            if seen.contains(&key) {
                errors.at(&meta.path, format!("`{key}` is given twice"));
                return skip_value(&meta);
            }
            seen.push(key.clone());
            on(&key, &meta)
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
}

/// A flag key (`required`), not `required = ...`; its span.
fn flag(meta: &ParseNestedMeta<'_>) -> syn::Result<Span> {
    if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
        return Err(meta.error(format!(
            "`{}` is a flag: write it alone",
            meta.path.get_ident().map(Ident::to_string).unwrap_or_default()
        )));
    }
    Ok(meta.path.span())
}

/// The value of `class = ".."` or `items = ".."`: a field class or a UNS class name, or a
/// spanned error naming the classes (and the nearest one).
fn field_class(meta: &ParseNestedMeta<'_>) -> syn::Result<(LitStr, String)> {
    let lit = string(meta)?;
    let value = lit.value();
    if !PRIMITIVES.contains(&value.as_str()) && looks_like_uns(&value).is_err() {
        let hint = mikobase_spec::suggest(&value, PRIMITIVES.iter().copied())
            .map_or_else(String::new, |h| format!("; {h}"));
        return Err(syn::Error::new_spanned(
            &lit,
            format!(
                "`{value}` is neither a field class ({}) nor a UNS class name{hint}",
                PRIMITIVES.join(", ")
            ),
        ));
    }
    Ok((lit, value))
}

/// The string of `key = "..."`; anything else is refused with the form to write.
pub(crate) fn string(meta: &ParseNestedMeta<'_>) -> syn::Result<LitStr> {
    let key = meta.path.get_ident().map(Ident::to_string).unwrap_or_default();
    let hint = || format!("`{key}` takes a string: write `{key} = \"...\"`");
    if !meta.input.peek(Token![=]) {
        return Err(meta.error(hint()));
    }
    let value = meta.value()?;
    let expr: Expr = value.parse()?;
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(lit),
        other => Err(syn::Error::new_spanned(other, hint())),
    }
}

/// Consumes a key's `= value` or `(...)`, for keys we do not read.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<TokenStream>()?;
    }
    Ok(())
}

/// A literal expression (`"alpha"`, `3`, `-1.5`, `true`, `'x'`) as a JSON scalar.
fn literal(expr: &Expr) -> syn::Result<Literal> {
    let value = match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Str(s) => Some(Literal::Str(s.value())),
            Lit::Char(c) => Some(Literal::Str(c.value().to_string())),
            Lit::Bool(b) => Some(Literal::Bool(b.value)),
            // Finite only: `1e400` parses to infinity, which is no JSON number.
            Lit::Float(f) => Some(f.base10_parse::<f64>()?)
                .filter(|f| f.is_finite())
                .map(Literal::Float),
            Lit::Int(i) => Some(match i.base10_parse::<i64>() {
                Ok(n) => Literal::Int(n),
                Err(_) => Literal::UInt(i.base10_parse()?),
            }),
            _ => None,
        },
        Expr::Unary(neg) if matches!(neg.op, syn::UnOp::Neg(_)) => match literal(&neg.expr)? {
            Literal::Int(n) => n.checked_neg().map(Literal::Int),
            Literal::UInt(n) => i64::try_from(-i128::from(n)).ok().map(Literal::Int),
            Literal::Float(f) => Some(Literal::Float(-f)),
            _ => None,
        },
        _ => None,
    };
    value.ok_or_else(|| syn::Error::new_spanned(expr, "expected a literal: a string, a number or a boolean"))
}

/// Whether `value` has the JSON type a field of `class` holds.
fn fits(class: Option<&str>, value: &Literal) -> bool {
    match class {
        Some("string" | "timestamp") => matches!(value, Literal::Str(_)),
        Some("number") => matches!(value, Literal::Int(_) | Literal::UInt(_) | Literal::Float(_)),
        Some("integer") => matches!(value, Literal::Int(_) | Literal::UInt(_)),
        Some("boolean") => matches!(value, Literal::Bool(_)),
        Some("array" | "hash") => false,
        _ => true,
    }
}

/// `ty` without the wrappers that serialize as their content (`Option`, `Box`, `Rc`, `Arc`,
/// `&`): the type a field's value has.
fn value_type(ty: &Type) -> &Type {
    match ty {
        Type::Reference(r) => value_type(&r.elem),
        Type::Paren(p) => value_type(&p.elem),
        Type::Group(g) => value_type(&g.elem),
        Type::Path(path) if path.qself.is_none() => {
            let Some(last) = path.path.segments.last() else {
                return ty;
            };
            let inner = match &last.arguments {
                syn::PathArguments::AngleBracketed(args) => args.args.iter().find_map(|a| match a {
                    GenericArgument::Type(t) => Some(t),
                    _ => None,
                }),
                _ => None,
            };
            match (last.ident.to_string().as_str(), inner) {
                ("Option" | "Box" | "Rc" | "Arc", Some(inner)) => value_type(inner),
                _ => ty,
            }
        }
        _ => ty,
    }
}

/// The class of the elements of a sequence type (`Vec<T>`, sets, `[T; N]`, `[T]`), when
/// `T`'s class is known from its spelling (a type that only falls back to `hash` gives
/// none: enums and newtypes serialize otherwise).
fn element_class(ty: &Type) -> Option<String> {
    fn last_type_arg(path: &syn::Path) -> Option<(String, &Type)> {
        let last = path.segments.last()?;
        let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
            return None;
        };
        args.args.iter().find_map(|a| match a {
            GenericArgument::Type(t) => Some((last.ident.to_string(), t)),
            _ => None,
        })
    }
    let element = match value_type(ty) {
        Type::Array(a) => &*a.elem,
        Type::Slice(s) => &*s.elem,
        Type::Path(p) if p.qself.is_none() => match last_type_arg(&p.path) {
            Some((name, t))
                if matches!(
                    name.as_str(),
                    "Vec" | "VecDeque" | "LinkedList" | "HashSet" | "BTreeSet" | "BinaryHeap" | "IndexSet"
                ) =>
            {
                t
            }
            _ => return None,
        },
        _ => return None,
    };
    let class = classify(element).0?;
    let map = match value_type(element) {
        Type::Path(p) => p.path.segments.last().is_some_and(|last| {
            matches!(
                last.ident.to_string().as_str(),
                "HashMap" | "BTreeMap" | "IndexMap" | "Map"
            )
        }),
        _ => false,
    };
    (class != "hash" || map).then_some(class)
}

/// The class a value of type `ty` is stored as (`None`: untyped), and whether the type is
/// an `Option`. Decided from the type's spelling: see the derive's documentation.
fn classify(ty: &Type) -> (Option<String>, bool) {
    let class = |c: &str| (Some(c.to_owned()), false);
    match ty {
        Type::Reference(r) => classify(&r.elem),
        Type::Paren(p) => classify(&p.elem),
        Type::Group(g) => classify(&g.elem),
        Type::Array(_) | Type::Slice(_) => class("array"),
        Type::Tuple(t) if !t.elems.is_empty() => class("array"),
        Type::Path(path) if path.qself.is_none() => {
            let Some(last) = path.path.segments.last() else {
                return (None, false);
            };
            let inner = match &last.arguments {
                syn::PathArguments::AngleBracketed(args) => args.args.iter().find_map(|a| match a {
                    GenericArgument::Type(t) => Some(t),
                    _ => None,
                }),
                _ => None,
            };
            let name = last.ident.to_string();
            match (name.as_str(), inner) {
                ("Option", Some(inner)) => (classify(inner).0, true),
                ("Box" | "Rc" | "Arc" | "Cow", Some(inner)) => classify(inner),
                ("String" | "str" | "char", _) => class("string"),
                ("bool", _) => class("boolean"),
                (
                    "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128"
                    | "usize" | "f32" | "f64",
                    _,
                ) => class("number"),
                (n, _) if n.starts_with("NonZero") => class("number"),
                (
                    "Vec" | "VecDeque" | "LinkedList" | "HashSet" | "BTreeSet" | "BinaryHeap" | "IndexSet",
                    _,
                ) => class("array"),
                ("Value", _) => (None, false),
                _ => class("hash"),
            }
        }
        _ => (None, false),
    }
}

/// `field` under serde's `rename_all` rule (`None` for a rule serde does not know: serde
/// reports it).
fn rename(rule: &str, field: &str) -> Option<String> {
    let pascal = || {
        field
            .split('_')
            .map(|word| {
                let mut chars = word.chars();
                chars
                    .next()
                    .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect::<String>()
    };
    Some(match rule {
        "lowercase" | "snake_case" => field.to_owned(),
        "UPPERCASE" | "SCREAMING_SNAKE_CASE" => field.to_ascii_uppercase(),
        "PascalCase" => pascal(),
        "camelCase" => {
            let pascal = pascal();
            let mut chars = pascal.chars();
            chars
                .next()
                .map(|first| first.to_ascii_lowercase().to_string() + chars.as_str())
                .unwrap_or_default()
        }
        "kebab-case" => field.replace('_', "-"),
        "SCREAMING-KEBAB-CASE" => field.to_ascii_uppercase().replace('_', "-"),
        _ => return None,
    })
}

/// Whether `name` looks like a UNS name (`example.org/crew/officer`): letters, digits and
/// `_ - . / ?`, a dotted domain first, no empty segment. The store applies the full rule
/// when the class is defined.
fn looks_like_uns(name: &str) -> Result<(), String> {
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_-./?".contains(*c)))
    {
        return Err(format!(
            "has the character {c:?} (allowed: letters, digits, _ - . / ?)"
        ));
    }
    let domain = name.split('/').next().unwrap_or_default();
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
        return Err("does not start with a dotted domain (e.g. example.org/...)".into());
    }
    if name.split('/').any(str::is_empty) {
        return Err("has an empty segment".into());
    }
    Ok(())
}

/// What `#[serde(...)]` says about the keys; other serde keys are skipped (serde_derive
/// checks them, and reports malformed serde attributes itself).
#[derive(Debug, Default)]
pub(crate) struct SerdeAttrs {
    pub rename: Option<String>,
    pub rename_all: Option<String>,
    default: bool,
    pub skip: bool,
    skip_if: bool,
    flatten: Option<Span>,
    transparent: Option<Span>,
    /// `tag`, `content` or `untagged` (enums): unit variants are then no strings.
    pub tagging: Option<(&'static str, Span)>,
}

impl SerdeAttrs {
    pub(crate) fn read(attrs: &[Attribute]) -> Self {
        let mut out = SerdeAttrs::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
            let _ = attr.parse_nested_meta(|meta| {
                let key = meta.path.get_ident().map(Ident::to_string).unwrap_or_default();
                match key.as_str() {
                    "rename" => out.rename = serialize_name(&meta)?,
                    "rename_all" => out.rename_all = serialize_name(&meta)?,
                    "skip" | "skip_serializing" => out.skip = true,
                    "flatten" => out.flatten = Some(meta.path.span()),
                    "transparent" => out.transparent = Some(meta.path.span()),
                    "untagged" => out.tagging = Some(("untagged", meta.path.span())),
                    "tag" => {
                        out.tagging = Some(("tag", meta.path.span()));
                        skip_value(&meta)?;
                    }
                    "default" => {
                        out.default = true;
                        skip_value(&meta)?;
                    }
                    "skip_serializing_if" => {
                        out.skip_if = true;
                        skip_value(&meta)?;
                    }
                    _ => skip_value(&meta)?,
                }
                Ok(())
            });
        }
        out
    }
}

/// The serialize-side name of `rename = "x"` or `rename(serialize = "x", ...)`.
fn serialize_name(meta: &ParseNestedMeta<'_>) -> syn::Result<Option<String>> {
    if meta.input.peek(Token![=]) {
        return Ok(Some(meta.value()?.parse::<LitStr>()?.value()));
    }
    let mut name = None;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("serialize") {
            name = Some(inner.value()?.parse::<LitStr>()?.value());
            Ok(())
        } else {
            skip_value(&inner)
        }
    })?;
    Ok(name)
}

/// `Self` in a field type means the struct; in the proxy's impl it would mean the proxy.
fn replace_self(tokens: TokenStream, with: &Ident) -> TokenStream {
    tokens
        .into_iter()
        .map(|tree| match tree {
            TokenTree::Ident(i) if i == "Self" => TokenTree::Ident(with.clone()),
            TokenTree::Group(g) => {
                let mut group = Group::new(g.delimiter(), replace_self(g.stream(), with));
                group.set_span(g.span());
                TokenTree::Group(group)
            }
            other => other,
        })
        .collect()
}

impl Literal {
    /// The literal as a `caspian_ipc::mikobase::record::Literal` under `record`.
    fn tokens(&self, record: &TokenStream) -> TokenStream {
        let literal = quote!(#record::Literal);
        match self {
            Literal::Str(s) => quote!(#literal::Str(#s)),
            Literal::Int(n) => quote!(#literal::Int(#n)),
            Literal::UInt(n) => quote!(#literal::UInt(#n)),
            Literal::Float(f) => quote!(#literal::Float(#f)),
            Literal::Bool(b) => quote!(#literal::Bool(#b)),
        }
    }
}

fn emit(model: &Model<'_>) -> TokenStream {
    let Model {
        ident,
        vis,
        krate,
        class,
        description,
        inherits,
        fields,
    } = model;
    let some_str = |s: &Option<String>| match s {
        Some(s) => quote!(::core::option::Option::Some(#s)),
        None => quote!(::core::option::Option::None),
    };
    let description = some_str(description);
    let record = quote!(#krate::mikobase::record);
    let transport = quote!(#krate::mikobase::Transport);
    let proxy = format_ident!("{}Proxy", ident);
    let decls = fields.iter().filter(|f| !f.inherited).map(|f| {
        let FieldModel {
            key,
            required,
            unique,
            one_of,
            ..
        } = f;
        let class = match &f.class {
            Some(c) => quote!(::core::option::Option::Some(#c)),
            None => quote!(::core::option::Option::None),
        };
        let default = match &f.default {
            Some(d) => {
                let d = d.tokens(&record);
                quote!(::core::option::Option::Some(#d))
            }
            None => quote!(::core::option::Option::None),
        };
        let one_of = match f.one_of_type {
            Some(ty) => {
                let ty = replace_self(ty.to_token_stream(), ident);
                quote!(<#ty as #record::OneOf>::VALUES)
            }
            None => {
                let one_of = one_of.iter().map(|l| l.tokens(&record));
                quote!(&[#(#one_of),*])
            }
        };
        let description = some_str(&f.description);
        let items = some_str(&f.items);
        let sub_fields = match f.nested {
            Some(ty) => {
                let ty = replace_self(ty.to_token_stream(), ident);
                quote!(<#ty as #record::Record>::FIELDS)
            }
            None => quote!(&[]),
        };
        quote! {
            #record::FieldDecl {
                key: #key,
                class: #class,
                required: #required,
                unique: #unique,
                default: #default,
                one_of: #one_of,
                items: #items,
                fields: #sub_fields,
                description: #description,
            }
        }
    });
    let accessors = fields.iter().map(|f| {
        let name = f.ident;
        let ty = replace_self(f.ty.to_token_stream(), ident);
        let key = &f.key;
        let doc =
            format!(" The `{key}` key of this record: `get()` and `set(value)` are one round trip each.");
        quote! {
            #[doc = #doc]
            pub fn #name(&self) -> #record::Field<'db, #ident, #ty, __T> {
                self.0.field(#key)
            }
        }
    });
    let doc = format!(
        " The hot proxy of a stored [`{ident}`] (class `{class}`): one accessor per key, and the \
         methods of `caspian_ipc::mikobase::record::Stored` (`pk`, `get`, `update`, `delete`) \
         through `Deref`. Made by `#[derive(Record)]`."
    );
    quote! {
        #[automatically_derived]
        impl #record::Record for #ident {
            const CLASS: &'static str = #class;
            const DESCRIPTION: ::core::option::Option<&'static str> = #description;
            const INHERITS: &'static [&'static str] = &[#(#inherits),*];
            const FIELDS: &'static [#record::FieldDecl] = &[#(#decls),*];
            type Proxy<'db, __T: #transport + 'db> = #proxy<'db, __T>;
        }

        #[doc = #doc]
        #vis struct #proxy<'db, __T>(#record::Stored<'db, #ident, __T>);

        #[automatically_derived]
        impl<'db, __T: #transport + 'db> ::core::convert::From<#record::Stored<'db, #ident, __T>> for #proxy<'db, __T> {
            fn from(stored: #record::Stored<'db, #ident, __T>) -> Self {
                #proxy(stored)
            }
        }

        #[automatically_derived]
        impl<'db, __T> ::core::ops::Deref for #proxy<'db, __T> {
            type Target = #record::Stored<'db, #ident, __T>;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        #[automatically_derived]
        impl<'db, __T> ::core::clone::Clone for #proxy<'db, __T> {
            fn clone(&self) -> Self {
                #proxy(::core::clone::Clone::clone(&self.0))
            }
        }

        #[automatically_derived]
        impl<'db, __T> ::core::fmt::Debug for #proxy<'db, __T> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Debug::fmt(&self.0, f)
            }
        }

        #[allow(dead_code)]
        impl<'db, __T: #transport + 'db> #proxy<'db, __T> {
            #(#accessors)*
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key as (key, class, required, unique).
    type Key = (String, Option<String>, bool, bool);

    fn model(input: TokenStream) -> (Vec<Key>, String) {
        let input: DeriveInput = syn::parse2(input).unwrap();
        let model = lower(&input).unwrap_or_else(|e| panic!("{e}"));
        let fields = model
            .fields
            .iter()
            .map(|f| (f.key.clone(), f.class.clone(), f.required, f.unique))
            .collect();
        (fields, model.class)
    }

    /// Every message of the errors `input` gives.
    fn errors(input: TokenStream) -> Vec<String> {
        let input: DeriveInput = syn::parse2(input).unwrap();
        lower(&input)
            .map(|m| panic!("no error: {m:?}"))
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    fn field(
        key: &str,
        class: Option<&str>,
        required: bool,
        unique: bool,
    ) -> (String, Option<String>, bool, bool) {
        (key.to_owned(), class.map(str::to_owned), required, unique)
    }

    #[test]
    fn types_map_to_classes_and_options_are_not_required() {
        let (fields, class) = model(quote! {
            #[record(class = "example.org/all/types")]
            struct All {
                a: String, b: &'static str, c: char, d: u32, e: f64, f: i128, g: bool,
                h: Vec<String>, i: [u8; 4], j: std::collections::BTreeSet<u8>, k: (u8, u8),
                l: HashMap<String, u8>, m: Other, n: serde_json::Value, o: Option<u8>,
                p: Option<Option<Vec<u8>>>, q: Box<str>, r: std::sync::Arc<Vec<u8>>,
                s: std::borrow::Cow<'static, str>, t: std::num::NonZeroU16, u: (),
            }
        });
        assert_eq!(class, "example.org/all/types");
        let classes: Vec<(String, Option<String>, bool)> =
            fields.into_iter().map(|(k, c, r, _)| (k, c, r)).collect();
        let expected = [
            ("a", Some("string"), true),
            ("b", Some("string"), true),
            ("c", Some("string"), true),
            ("d", Some("number"), true),
            ("e", Some("number"), true),
            ("f", Some("number"), true),
            ("g", Some("boolean"), true),
            ("h", Some("array"), true),
            ("i", Some("array"), true),
            ("j", Some("array"), true),
            ("k", Some("array"), true),
            ("l", Some("hash"), true),
            ("m", Some("hash"), true),
            ("n", None, true),
            ("o", Some("number"), false),
            ("p", Some("array"), false),
            ("q", Some("string"), true),
            ("r", Some("array"), true),
            ("s", Some("string"), true),
            ("t", Some("number"), true),
            ("u", None, true),
        ];
        let expected: Vec<(String, Option<String>, bool)> = expected
            .iter()
            .map(|(k, c, r)| (k.to_string(), c.map(str::to_owned), *r))
            .collect();
        assert_eq!(classes, expected);
    }

    #[test]
    fn defaults_and_skippable_keys_are_not_required_and_renames_give_the_keys() {
        let (fields, _) = model(quote! {
            #[derive(Serialize)]
            #[serde(rename_all = "camelCase")]
            #[record(class = "example.org/crew/officer")]
            struct Officer {
                #[record(required, unique)] serial_no: String,
                #[record(one_of("alpha", "beta"), default = "alpha")] night_watch: String,
                #[serde(default)] years: u32,
                #[serde(skip_serializing_if = "Vec::is_empty")] medals: Vec<String>,
                #[serde(rename = "Rank")] rank: String,
                #[serde(rename(serialize = "ship_name", deserialize = "ship"))] ship: String,
                #[serde(skip)] cache: u8,
                #[record(class = "string")] status: Status,
                r#type: String,
            }
        });
        assert_eq!(
            fields,
            [
                field("serialNo", Some("string"), true, true),
                field("nightWatch", Some("string"), false, false),
                field("years", Some("number"), false, false),
                field("medals", Some("array"), false, false),
                field("Rank", Some("string"), true, false),
                field("ship_name", Some("string"), true, false),
                field("status", Some("string"), true, false),
                field("type", Some("string"), true, false),
            ]
        );
        let (fields, _) = model(quote! {
            #[serde(default)]
            #[record(class = "example.org/x")]
            struct Defaults { a: u8 }
        });
        assert_eq!(fields, [field("a", Some("number"), false, false)]);
    }

    #[test]
    fn serde_rename_all_rules() {
        let cases = [
            ("lowercase", "night_watch"),
            ("snake_case", "night_watch"),
            ("UPPERCASE", "NIGHT_WATCH"),
            ("SCREAMING_SNAKE_CASE", "NIGHT_WATCH"),
            ("PascalCase", "NightWatch"),
            ("camelCase", "nightWatch"),
            ("kebab-case", "night-watch"),
            ("SCREAMING-KEBAB-CASE", "NIGHT-WATCH"),
        ];
        for (rule, expected) in cases {
            assert_eq!(rename(rule, "night_watch").as_deref(), Some(expected), "{rule}");
        }
        assert_eq!(rename("Title Case", "a"), None);
    }

    #[test]
    fn literals_keep_their_type_and_sign() {
        let parse = |tokens: TokenStream| literal(&syn::parse2(tokens).unwrap());
        assert_eq!(parse(quote!(-3)).unwrap(), Literal::Int(-3));
        assert_eq!(
            parse(quote!(18446744073709551615)).unwrap(),
            Literal::UInt(u64::MAX)
        );
        assert_eq!(
            parse(quote!(-9223372036854775808)).unwrap(),
            Literal::Int(i64::MIN)
        );
        assert_eq!(parse(quote!(-1.5)).unwrap(), Literal::Float(-1.5));
        assert_eq!(parse(quote!('x')).unwrap(), Literal::Str("x".into()));
        assert!(parse(quote!(-"a")).is_err());
        assert!(parse(quote!(-18446744073709551615)).is_err());
        assert!(parse(quote!(some::path)).is_err());
        assert!(parse(quote!(1e400)).is_err(), "no infinity");
        assert!(parse(quote!(--9223372036854775808)).is_err(), "no overflow");
        assert_eq!(parse(quote!(--5)).unwrap(), Literal::Int(5));
    }

    #[test]
    fn attribute_mistakes_are_named() {
        let all = errors(quote! {
            #[record(class = "example.org/crew/officer", clas = "x")]
            struct Officer {
                #[record(requird)] a: String,
                #[record(unique, unique)] b: String,
                #[record(required = true)] c: String,
                #[record(required)] d: Option<String>,
                #[record(default = 3)] e: String,
                #[record(one_of("a", "b"), default = "c")] f: String,
                #[record(default = "x")] g: Vec<String>,
                #[record(class = "strng")] h: Other,
                #[record(default = some_fn())] i: String,
                #[serde(flatten)] j: Other,
                get: String,
                #[serde(skip)] #[record(unique)] k: String,
                #[record] l: String,
            }
        });
        let expected = [
            "unknown `record` key `clas`, expected one of: `class`, `crate`, `description`, `inherits`; did you mean `class`?",
            "unknown `record` key `requird`, expected one of: `required`, `unique`, `one_of`, `default`, `class`, `description`, `inherited`, `items`, `fields`; did you mean `required`?",
            "`unique` is given twice",
            "`required` is a flag: write it alone",
            "`d` is an `Option`, so it cannot be required: use the inner type",
            "this value does not fit `e`, whose class is `string`",
            "the default of `f` is not one of its `one_of` values",
            "this value does not fit `g`, whose class is `array`",
            "`strng` is neither a field class (string, number, integer, boolean, array, hash, timestamp, any) nor a UNS class name; did you mean `string`?",
            "expected a literal: a string, a number or a boolean",
            "`#[serde(flatten)]` is not supported by `#[derive(Record)]`: the class declares each key",
            "a field named `get` would hide the proxy's own `get()`: rename the Rust field and keep the key with `#[serde(rename = \"get\")]`",
            "`k` is skipped by serde: it has no key to declare",
        ];
        for message in expected {
            assert!(
                all.iter().any(|m| m == message),
                "missing `{message}` in {all:#?}"
            );
        }
        assert_eq!(all.len(), expected.len() + 1, "{all:#?}");
        assert!(
            all.iter()
                .any(|m| m.contains("expected attribute arguments in parentheses")),
            "{all:#?}"
        );
    }

    #[test]
    fn struct_level_mistakes_are_named() {
        assert_eq!(
            errors(quote!(
                struct Officer {
                    a: String,
                }
            )),
            ["`#[derive(Record)]` needs the class name: add `#[record(class = \"example.org/...\")]`"]
        );
        for bad in [
            "officer",
            "example.org//x",
            "exa mple.org/x",
            ".org/x",
            "example.org/x/",
        ] {
            let message = errors(quote!(
                #[record(class = #bad)]
                struct Officer {
                    a: String,
                }
            ));
            assert!(
                message[0].starts_with(&format!("`{bad}` is not a UNS class name: it ")),
                "{message:?}"
            );
        }
        let shape =
            "`#[derive(Record)]` needs a struct with named fields (a record's bucket is a JSON object)";
        for input in [
            quote!(
                #[record(class = "example.org/x")]
                enum E {
                    A,
                }
            ),
            quote!(
                #[record(class = "example.org/x")]
                struct T(String);
            ),
            quote!(
                #[record(class = "example.org/x")]
                struct U;
            ),
            quote!(#[record(class = "example.org/x")] union N { a: u8 }),
        ] {
            assert_eq!(errors(input), [shape]);
        }
        assert_eq!(
            errors(quote!(
                #[record(class = "example.org/x")]
                struct G<T> {
                    a: T,
                }
            )),
            ["`#[derive(Record)]` does not support generic structs: a class has one field layout"]
        );
        assert_eq!(
            errors(quote!(
                #[serde(transparent)]
                #[record(class = "example.org/x")]
                struct T {
                    a: String,
                }
            )),
            ["`#[serde(transparent)]` does not give a bucket (a JSON object)"]
        );
        assert_eq!(
            errors(quote! {
                #[serde(rename_all = "camelCase")]
                #[record(class = "example.org/x")]
                struct T { night_watch: u8, #[serde(rename = "nightWatch")] other: u8 }
            }),
            ["`night_watch` and `other` have the same key `nightWatch`"]
        );
    }

    #[test]
    fn the_expansion_names_only_absolute_paths_and_replaces_self() {
        let tokens = expand(quote! {
            #[record(class = "example.org/tree/node")]
            pub struct Node { children: Vec<Self>, #[record(default = -1)] depth: i64 }
        });
        let file: syn::File = syn::parse2(tokens.clone()).expect("items");
        let text = tokens.to_string();
        assert!(text.contains("pub struct NodeProxy"), "{text}");
        assert!(
            text.contains("Field < 'db , Node , Vec < Node > , __T >"),
            "{text}"
        );
        assert!(
            text.contains("Literal :: Int (- 1i64)") || text.contains("Literal :: Int (-1i64)"),
            "{text}"
        );
        assert!(!text.contains("serde_json"), "no direct serde_json dependency");
        assert_eq!(file.items.len(), 7);
    }

    #[test]
    fn a_renamed_crate_is_the_only_path_to_the_runtime() {
        let tokens = expand(quote! {
            #[record(class = "example.org/tree/node", crate = "ipc")]
            pub struct Node { #[record(one_of(1, 2), default = 1)] depth: i64 }
        });
        syn::parse2::<syn::File>(tokens.clone()).expect("items");
        let text = tokens.to_string();
        assert!(!text.contains("caspian_ipc ::"), "{text}");
        assert!(
            text.contains("impl ipc :: mikobase :: record :: Record for Node"),
            "{text}"
        );
        assert!(
            text.contains("ipc :: mikobase :: record :: Literal :: Int"),
            "{text}"
        );
        let tokens = expand(quote! {
            #[record(class = "example.org/x", crate = "crate::vendored::ipc")]
            struct A { a: u8 }
        });
        assert!(tokens
            .to_string()
            .contains("crate :: vendored :: ipc :: mikobase :: Transport"));
        assert_eq!(
            errors(quote!(
                #[record(class = "example.org/x", crate = "not a path")]
                struct A {
                    a: u8,
                }
            )),
            [
                "`not a path` is not a path: write the name the dependency has in Cargo.toml, e.g. \
              `crate = \"ipc\"` (or a path such as `crate = \"crate::ipc\"`)"
            ]
        );
    }

    #[test]
    fn doc_comments_are_descriptions_and_the_key_overrides_them() {
        let input: DeriveInput = syn::parse2(quote! {
            /// A ship's officer.
            ///
            ///   Indented, with `code`.
            #[doc = "Last line.  "]
            #[doc = concat!("not", "expanded")]
            #[record(class = "example.org/crew/officer")]
            struct Officer {
                /** The rank,
                 as spoken. */
                rank: String,
                /// Ignored.
                #[record(description = "The serial number.")]
                serial: String,
                #[doc = ""]
                /// ``
                years: u8,
                watch: u8,
            }
        })
        .unwrap();
        let model = lower(&input).unwrap();
        assert_eq!(
            model.description.as_deref(),
            Some("A ship's officer.\n\n  Indented, with `code`.\nLast line.")
        );
        let descriptions: Vec<Option<&str>> = model.fields.iter().map(|f| f.description.as_deref()).collect();
        let block = descriptions[0].unwrap_or_default();
        assert!(
            block.starts_with("The rank,\n ") && block.ends_with(" as spoken."),
            "a block comment keeps its lines: {block:?}"
        );
        assert_eq!(descriptions[1..], [Some("The serial number."), Some("``"), None]);
        let text = expand(quote! {
            #[record(class = "example.org/x", description = "An x.")]
            struct X { /// The a.
                a: u8 }
        })
        .to_string();
        assert!(text.contains("const DESCRIPTION : :: core :: option :: Option < & 'static str > = :: core :: option :: Option :: Some (\"An x.\")"), "{text}");
        assert!(
            text.contains("description : :: core :: option :: Option :: Some (\"The a.\")"),
            "{text}"
        );
        assert_eq!(
            errors(quote!(
                #[record(class = "example.org/x", description = 3)]
                struct X {
                    #[record(description)]
                    a: u8,
                }
            )),
            [
                "`description` takes a string: write `description = \"...\"`",
                "`description` takes a string: write `description = \"...\"`"
            ]
        );
    }

    #[test]
    fn inherits_names_parents_and_inherited_keys_are_not_redeclared() {
        let input: DeriveInput = syn::parse2(quote! {
            #[record(class = "example.org/crew/pilot", inherits = "example.org/crew/member")]
            struct Pilot {
                /// The parent's.
                #[record(inherited)] name: String,
                craft: String,
            }
        })
        .unwrap();
        let model = lower(&input).unwrap();
        assert_eq!(model.inherits, ["example.org/crew/member"]);
        let inherited: Vec<(&str, bool)> = model
            .fields
            .iter()
            .map(|f| (f.key.as_str(), f.inherited))
            .collect();
        assert_eq!(inherited, [("name", true), ("craft", false)]);
        let text = emit(&model).to_string();
        assert!(
            text.contains("const INHERITS : & 'static [& 'static str] = & [\"example.org/crew/member\"]"),
            "{text}"
        );
        assert!(!text.contains("key : \"name\""), "not declared: {text}");
        assert!(text.contains("key : \"craft\""), "{text}");
        assert!(text.contains("pub fn name"), "an accessor all the same: {text}");
        let input: DeriveInput = syn::parse2(quote! {
            #[record(class = "example.org/x", inherits = ["example.org/b", "example.org/a"])]
            struct X { a: u8 }
        })
        .unwrap();
        assert_eq!(
            lower(&input).unwrap().inherits,
            ["example.org/b", "example.org/a"],
            "in order"
        );
        assert_eq!(
            errors(quote! {
                #[record(class = "example.org/crew/pilot",
                         inherits = ["example.org/crew/pilot", "member", "example.org/a", "example.org/a"])]
                struct Pilot {
                    #[record(inherited, unique, description = "x")] name: String,
                }
            }),
            [
                "`example.org/crew/pilot` cannot inherit from itself: name its parent class",
                "`member` is not a UNS class name: it does not start with a dotted domain (e.g. example.org/...)",
                "`example.org/a` is inherited twice: name it once",
                "`name` is `inherited`: its parent class declares it, so `unique` here would not apply; \
                 remove `unique` (or `inherited`, to redeclare the key in this class)",
                "`name` is `inherited`: its parent class declares it, so `description` here would not \
                 apply; remove `description` (or `inherited`, to redeclare the key in this class)",
            ]
        );
        assert_eq!(
            errors(quote! {
                #[record(class = "example.org/crew/pilot")]
                struct Pilot { #[record(inherited)] name: String }
            }),
            [
                "`name` is `inherited`, but the struct names no parent class: add \
              `#[record(inherits = \"example.org/...\")]` to the struct"
            ]
        );
        let hint = "`inherits` takes a class name or a list of them: write `inherits = \"example.org/...\"` \
                    or `inherits = [\"example.org/a\", \"example.org/b\"]`";
        for bad in [
            quote!(
                #[record(class = "example.org/x", inherits)]
                struct A {
                    a: u8,
                }
            ),
            quote!(
                #[record(class = "example.org/x", inherits = [])]
                struct A {
                    a: u8,
                }
            ),
            quote!(
                #[record(class = "example.org/x", inherits = example)]
                struct A {
                    a: u8,
                }
            ),
            quote!(
                #[record(class = "example.org/x", inherits = ["example.org/a", 3])]
                struct A {
                    a: u8,
                }
            ),
        ] {
            assert_eq!(errors(bad), [hint]);
        }
        assert_eq!(
            errors(quote! {
                #[record(class = "example.org/x")]
                struct A { #[record(inherited = true)] a: u8 }
            }),
            ["`inherited` is a flag: write it alone"]
        );
    }

    #[test]
    fn enum_values_and_element_classes() {
        let input: DeriveInput = syn::parse2(quote! {
            #[record(class = "example.org/x")]
            struct X {
                #[record(one_of, default = "alpha")] a: Option<Watch>,
                #[record(one_of, class = "any")] b: Box<Watch>,
                c: Vec<String>, d: [u8; 3], e: Option<std::collections::BTreeSet<bool>>,
                f: Vec<Watch>, g: Vec<Vec<u8>>, h: Vec<HashMap<String, u8>>, i: (u8, u8),
                #[record(items = "string")] j: Vec<Watch>, k: Vec<serde_json::Value>, l: &'static [char],
            }
        })
        .unwrap();
        let model = lower(&input).unwrap();
        type Row<'a> = (&'a str, Option<&'a str>, Option<String>, Option<&'a str>);
        let got: Vec<Row<'_>> = model
            .fields
            .iter()
            .map(|f| {
                (
                    f.key.as_str(),
                    f.class.as_deref(),
                    f.one_of_type.map(|t| t.to_token_stream().to_string()),
                    f.items.as_deref(),
                )
            })
            .collect();
        let watch = || Some("Watch".to_owned());
        assert_eq!(
            got,
            [
                ("a", Some("string"), watch(), None),
                ("b", Some("any"), watch(), None),
                ("c", Some("array"), None, Some("string")),
                ("d", Some("array"), None, Some("number")),
                ("e", Some("array"), None, Some("boolean")),
                ("f", Some("array"), None, None),
                ("g", Some("array"), None, Some("array")),
                ("h", Some("array"), None, Some("hash")),
                ("i", Some("array"), None, None),
                ("j", Some("array"), None, Some("string")),
                ("k", Some("array"), None, None),
                ("l", Some("array"), None, Some("string")),
            ]
        );
        let text = emit(&model).to_string();
        assert!(
            text.contains("one_of : < Watch as :: caspian_ipc :: mikobase :: record :: OneOf > :: VALUES"),
            "{text}"
        );
        assert!(
            text.contains("items : :: core :: option :: Option :: Some (\"number\")"),
            "{text}"
        );
        assert_eq!(
            errors(quote! {
                #[record(class = "example.org/x")]
                struct X {
                    #[record(one_of, one_of("a"))] a: Watch,
                    #[record(one_of = Watch)] b: Watch,
                    #[record(items = "string")] c: String,
                    #[record(items = "strin")] d: Vec<String>,
                    #[record(one_of, default = 3)] e: Watch,
                }
            }),
            [
                "`one_of` is given twice",
                "write `one_of` alone (the values of the field's enum, which derives `OneOf`) or list them: \
                 `one_of(\"a\", \"b\")`",
                "`items` is the class of an array's elements (or a hash's values), and `c` is a `string`: \
                 remove `items`, or give the field `class = \"array\"`",
                "`strin` is neither a field class (string, number, integer, boolean, array, hash, timestamp, any) \
                 nor a UNS class name; did you mean `string`?",
                "this value does not fit `e`, whose class is `string`",
            ]
        );
    }

    #[test]
    fn nested_records_are_hashes_with_sub_keys() {
        let input: DeriveInput = syn::parse2(quote! {
            #[record(class = "example.org/x")]
            struct X { #[record(fields)] name: Option<Name>, #[record(fields, class = "hash")] other: Box<Name> }
        })
        .unwrap();
        let model = lower(&input).unwrap();
        let got: Vec<(Option<&str>, Option<String>, bool)> = model
            .fields
            .iter()
            .map(|f| {
                (
                    f.class.as_deref(),
                    f.nested.map(|t| t.to_token_stream().to_string()),
                    f.required,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (Some("hash"), Some("Name".into()), false),
                (Some("hash"), Some("Name".into()), true)
            ]
        );
        let text = emit(&model).to_string();
        assert!(
            text.contains("fields : < Name as :: caspian_ipc :: mikobase :: record :: Record > :: FIELDS"),
            "{text}"
        );
        assert_eq!(
            errors(quote! {
                #[record(class = "example.org/x")]
                struct X {
                    #[record(fields, class = "string")] a: Name,
                    #[record(fields, one_of("a"))] b: Name,
                    #[record(fields = Name)] c: Name,
                }
            }),
            [
                "`a` has `fields`, so it is a `hash`: remove `class = \"string\"`",
                "a hash with `fields` has no `one_of`: constrain its sub-keys in the nested struct",
                "this value does not fit `b`, whose class is `hash`",
                "`fields` is a flag: write it alone",
            ]
        );
    }

    #[test]
    fn odd_input_never_panics() {
        for input in [
            quote!(),
            quote!(
                fn f() {}
            ),
            quote!(
                #[record(class = 3)]
                struct A {
                    a: u8,
                }
            ),
            quote!(
                #[record(class)]
                struct A {
                    a: u8,
                }
            ),
            quote!(
                #[record(class = "example.org/x")]
                #[record(class = "example.org/y")]
                struct A {
                    a: u8,
                }
            ),
            quote!(
                #[record(class = "example.org/x")]
                struct A {
                    #[record(one_of = 3)]
                    a: u8,
                }
            ),
            quote!(
                #[record(class = "example.org/x")]
                struct A {
                    #[record(one_of())]
                    a: u8,
                }
            ),
            quote!(
                #[record(class = "example.org/x")]
                struct A {
                    #[serde(rename(serialize = 3))]
                    a: u8,
                }
            ),
            quote!(
                #[record(class = "example.org/x")]
                struct A {
                    #[serde = "x"]
                    #[record(default = -true)]
                    a: u8,
                }
            ),
            quote!(
                #[record(class = "example.org/x")]
                struct A {
                    a: <u8 as X>::Y,
                    b: fn(),
                    c: impl Sized,
                }
            ),
        ] {
            let _ = expand(input);
        }
    }
}
