//! `#[derive(OneOf)]`: an enum of unit variants as the allowed values of a field
//! (`#[record(one_of)]`): the variants' serde names, as `OneOf::VALUES`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields, LitStr};

use crate::record::attributes::{string, SerdeAttrs};

/// The expansion of `#[derive(OneOf)]` on `input`: the impl, or every problem as a spanned
/// `compile_error!`.
pub fn expand(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    match lower(&input) {
        Ok((krate, values)) => {
            let ident = &input.ident;
            quote! {
                #[automatically_derived]
                impl #krate::mikobase::record::OneOf for #ident {
                    const VALUES: &'static [#krate::mikobase::record::Literal] =
                        &[#(#krate::mikobase::record::Literal::Str(#values)),*];
                }
            }
        }
        Err(e) => e.to_compile_error(),
    }
}

/// The crate path and the serialized names of the variants.
fn lower(input: &DeriveInput) -> syn::Result<(syn::Path, Vec<String>)> {
    let shape = "`#[derive(OneOf)]` needs an enum of unit variants (they serialize as strings); \
                 for other types list the values: `#[record(one_of(\"a\", \"b\"))]`";
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new_spanned(&input.ident, shape));
    };
    let mut errors: Vec<syn::Error> = Vec::new();
    if !input.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &input.generics,
            "`#[derive(OneOf)]` does not support generic enums: name the values once",
        ));
    }
    let serde = SerdeAttrs::read(&input.attrs);
    if let Some((key, span)) = serde.tagging {
        errors.push(syn::Error::new(
            span,
            format!(
                "`#[serde({key})]` does not serialize unit variants as strings: remove it, or list the \
                 values: `#[record(one_of(..))]`"
            ),
        ));
    }
    let mut krate: syn::Path = syn::parse_quote!(::caspian_ipc);
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("record")) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let lit: LitStr = string(&meta)?;
                krate = lit.parse().map_err(|_| {
                    syn::Error::new_spanned(
                        &lit,
                        format!("`{}` is not a path: write e.g. `crate = \"ipc\"`", lit.value()),
                    )
                })?;
                Ok(())
            } else {
                Err(meta.error("unknown `record` key on an enum, expected `crate`"))
            }
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    let mut values: Vec<String> = Vec::new();
    for variant in &data.variants {
        if !matches!(variant.fields, Fields::Unit) {
            errors.push(syn::Error::new_spanned(
                &variant.ident,
                format!(
                    "`{}` has fields, so it does not serialize as a string: `#[derive(OneOf)]` needs unit \
                     variants",
                    variant.ident
                ),
            ));
            continue;
        }
        let own = SerdeAttrs::read(&variant.attrs);
        if own.skip {
            continue;
        }
        let name = own
            .rename
            .or_else(|| {
                serde
                    .rename_all
                    .as_deref()
                    .and_then(|rule| rename_variant(rule, &variant.ident.to_string()))
            })
            .unwrap_or_else(|| variant.ident.to_string());
        if values.contains(&name) {
            errors.push(syn::Error::new_spanned(
                &variant.ident,
                format!("two variants serialize as `{name}`"),
            ));
        }
        values.push(name);
    }
    if values.is_empty() && errors.is_empty() {
        errors.push(syn::Error::new_spanned(
            &input.ident,
            "`#[derive(OneOf)]` on an enum without (serialized) variants would allow no value: add a \
             variant",
        ));
    }
    let mut errors = errors.into_iter();
    match errors.next() {
        Some(mut all) => {
            all.extend(errors);
            Err(all)
        }
        None => Ok((krate, values)),
    }
}

/// `variant` (PascalCase) under serde's `rename_all` rule for variants.
pub(crate) fn rename_variant(rule: &str, variant: &str) -> Option<String> {
    let snake = || {
        let mut out = String::new();
        for (i, c) in variant.char_indices() {
            if c.is_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    };
    Some(match rule {
        "PascalCase" => variant.to_owned(),
        "lowercase" => variant.to_ascii_lowercase(),
        "UPPERCASE" => variant.to_ascii_uppercase(),
        "camelCase" => {
            let mut chars = variant.chars();
            chars
                .next()
                .map(|first| first.to_ascii_lowercase().to_string() + chars.as_str())
                .unwrap_or_default()
        }
        "snake_case" => snake(),
        "SCREAMING_SNAKE_CASE" => snake().to_ascii_uppercase(),
        "kebab-case" => snake().replace('_', "-"),
        "SCREAMING-KEBAB-CASE" => snake().to_ascii_uppercase().replace('_', "-"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(input: TokenStream) -> Result<Vec<String>, Vec<String>> {
        let input: DeriveInput = syn::parse2(input).unwrap();
        lower(&input)
            .map(|(_, v)| v)
            .map_err(|e| e.into_iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn variants_give_their_serde_names() {
        assert_eq!(
            values(quote! {
                #[serde(rename_all = "kebab-case")]
                enum Watch { Alpha, NightWatch, #[serde(rename = "G")] Gamma, #[serde(skip)] Hidden, #[serde(other)] Other }
            }),
            Ok(vec![
                "alpha".into(),
                "night-watch".into(),
                "G".into(),
                "other".into()
            ])
        );
        assert_eq!(
            values(quote!(
                enum W {
                    Alpha,
                    Beta,
                }
            )),
            Ok(vec!["Alpha".into(), "Beta".into()])
        );
        let cases = [
            ("lowercase", "nightwatch"),
            ("UPPERCASE", "NIGHTWATCH"),
            ("PascalCase", "NightWatch"),
            ("camelCase", "nightWatch"),
            ("snake_case", "night_watch"),
            ("SCREAMING_SNAKE_CASE", "NIGHT_WATCH"),
            ("kebab-case", "night-watch"),
            ("SCREAMING-KEBAB-CASE", "NIGHT-WATCH"),
        ];
        for (rule, expected) in cases {
            assert_eq!(
                rename_variant(rule, "NightWatch").as_deref(),
                Some(expected),
                "{rule}"
            );
        }
        let text = expand(quote!(
            #[record(crate = "ipc")]
            enum W {
                A,
            }
        ))
        .to_string();
        assert!(
            text.contains("impl ipc :: mikobase :: record :: OneOf for W"),
            "{text}"
        );
    }

    #[test]
    fn what_does_not_serialize_as_strings_is_refused() {
        let shape =
            "`#[derive(OneOf)]` needs an enum of unit variants (they serialize as strings); for other \
                     types list the values: `#[record(one_of(\"a\", \"b\"))]`";
        assert_eq!(
            values(quote!(
                struct S {
                    a: u8,
                }
            )),
            Err(vec![shape.to_owned()])
        );
        assert_eq!(
            values(quote! {
                #[serde(tag = "kind")]
                enum E { A(u8), B { x: u8 }, C, #[serde(rename = "C")] D }
            }),
            Err(vec![
                "`#[serde(tag)]` does not serialize unit variants as strings: remove it, or list the values: \
                 `#[record(one_of(..))]`"
                    .to_owned(),
                "`A` has fields, so it does not serialize as a string: `#[derive(OneOf)]` needs unit variants"
                    .to_owned(),
                "`B` has fields, so it does not serialize as a string: `#[derive(OneOf)]` needs unit variants"
                    .to_owned(),
                "two variants serialize as `C`".to_owned(),
            ])
        );
        assert_eq!(
            values(quote!(
                #[serde(untagged)]
                enum E {
                    A,
                }
            )),
            Err(vec![
                "`#[serde(untagged)]` does not serialize unit variants as strings: remove it, or list the \
                 values: `#[record(one_of(..))]`"
                    .to_owned()
            ])
        );
        assert_eq!(
            values(quote!(enum E {})),
            Err(vec![
                "`#[derive(OneOf)]` on an enum without (serialized) variants would allow no value: add a variant"
                    .to_owned()
            ])
        );
        assert_eq!(
            values(quote!(
                #[record(class = "x")]
                enum E<T> {
                    A,
                    B(T),
                }
            ))
            .unwrap_err()
            .len(),
            3
        );
    }
}
