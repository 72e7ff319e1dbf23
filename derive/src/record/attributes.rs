//! Reading the attributes: the keys of `#[record(..)]` (unknown and repeated ones
//! reported), their values (flags, strings, literals, field classes, parents), doc comments,
//! and what `#[serde(..)]` says about the keys (renames, skips, defaults).

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Ident, Lit, LitStr, Token};

use super::classes::{looks_like_uns, PRIMITIVES};
use super::{Errors, Literal};

/// Keys of `#[record(...)]` on the struct and on a field.
pub(super) const STRUCT_KEYS: &[&str] = &["class", "crate", "description", "inherits"];
pub(super) const FIELD_KEYS: &[&str] = &[
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

/// Runs `on` for each key of every `#[record(...)]` in `attrs`; unknown and repeated keys
/// are reported (with a "did you mean") and skipped.
pub(super) fn record_attrs(
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
pub(super) fn flag(meta: &ParseNestedMeta<'_>) -> syn::Result<Span> {
    if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
        return Err(meta.error(format!(
            "`{}` is a flag: write it alone",
            meta.path.get_ident().map(Ident::to_string).unwrap_or_default()
        )));
    }
    Ok(meta.path.span())
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
pub(super) fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<TokenStream>()?;
    }
    Ok(())
}

/// The value of `class = ".."` or `items = ".."`: a field class or a UNS class name, or a
/// spanned error naming the classes (and the nearest one).
pub(super) fn field_class(meta: &ParseNestedMeta<'_>) -> syn::Result<(LitStr, String)> {
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

/// The parents of `inherits = "a"` or `inherits = ["a", "b"]`.
pub(super) fn parents(meta: &ParseNestedMeta<'_>) -> syn::Result<Vec<LitStr>> {
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

/// A literal expression (`"alpha"`, `3`, `-1.5`, `true`, `'x'`) as a JSON scalar.
pub(super) fn literal(expr: &Expr) -> syn::Result<Literal> {
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

/// The doc comments (`///`, `/** */`, `#[doc = "..."]`) in `attrs` as one text: the lines
/// joined with `\n`, each without the one space after `///`, the whole trimmed; `None`
/// when there is none (or only `#[doc = macro!(..)]`, which a derive cannot expand).
pub(super) fn doc_text(attrs: &[Attribute]) -> Option<String> {
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

/// What `#[serde(...)]` says about the keys; other serde keys are skipped (serde_derive
/// checks them, and reports malformed serde attributes itself).
#[derive(Debug, Default)]
pub(crate) struct SerdeAttrs {
    pub rename: Option<String>,
    pub rename_all: Option<String>,
    pub default: bool,
    pub skip: bool,
    pub skip_if: bool,
    pub flatten: Option<Span>,
    pub transparent: Option<Span>,
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

/// `field` under serde's `rename_all` rule (`None` for a rule serde does not know: serde
/// reports it).
pub(super) fn rename(rule: &str, field: &str) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

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
}
