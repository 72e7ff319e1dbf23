//! `mikobase_api!`: the spec file through `mikobase_spec::load_file` and
//! `caspian_ipc_codegen::generate` (what `cargo xtask codegen` runs), placed in the caller's
//! code. Only the placement, the rebuild tracking and the error spans are the macro's own.

use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Ident, LitStr, Token, Visibility};

/// `"path"` or `#[attrs] vis mod name = "path"`.
struct Input {
    module: Option<(Vec<Attribute>, Visibility, Ident)>,
    path: LitStr,
}

impl Parse for Input {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(LitStr) {
            let path = input.parse()?;
            input.parse::<Option<Token![;]>>()?;
            return Ok(Input { module: None, path });
        }
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        input.parse::<Token![mod]>().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected a spec path (`\"specs/api.yaml\"`) or `mod name = \"specs/api.yaml\"`",
            )
        })?;
        let name: Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        let path = input.parse()?;
        input.parse::<Option<Token![;]>>()?;
        Ok(Input {
            module: Some((attrs, vis, name)),
            path,
        })
    }
}

/// The expansion for `input`, with the spec path resolved against `manifest_dir`; problems
/// become `compile_error!`s.
pub fn expand(input: TokenStream, manifest_dir: &Path) -> TokenStream {
    match try_expand(input, manifest_dir) {
        Ok(tokens) => tokens,
        Err(error) => error.to_compile_error(),
    }
}

fn try_expand(input: TokenStream, manifest_dir: &Path) -> syn::Result<TokenStream> {
    let Input { module, path } = syn::parse2(input)?;
    let file = resolve(manifest_dir, &path.value());
    let shown = file.display().to_string();
    let (spec, _) = mikobase_spec::load_file(&file).map_err(|(diagnostics, source)| {
        diagnostics
            .iter()
            .map(|d| {
                // `path:line:col: error[CODE]: message` (the form editors and terminals
                // link), then the spec's line with a caret and the hint.
                syn::Error::new(path.span(), d.linked(&shown, &source).trim_end())
            })
            .reduce(|mut all, next| {
                all.combine(next);
                all
            })
            .unwrap_or_else(|| syn::Error::new(path.span(), format!("{shown}: the spec was refused")))
    })?;
    let surface = caspian_ipc_codegen::generate(&spec, &caspian_ipc_codegen::Options::external());
    // Cargo rebuilds the crate when a file it includes changes.
    let tracked = quote! { const _: &[u8] = ::core::include_bytes!(#shown); };
    Ok(match module {
        Some((attrs, vis, name)) => quote! {
            #(#attrs)*
            #vis mod #name {
                #surface
                #tracked
            }
        },
        None => {
            let mut file: syn::File = syn::parse2(surface)?;
            file.attrs.clear(); // inner attributes cannot stand in a macro's expansion
            quote! { #file #tracked }
        }
    })
}

/// `relative` against `manifest_dir`, canonical as far as it exists (so messages show a
/// clean absolute path, also for a missing file).
fn resolve(manifest_dir: &Path, relative: &str) -> PathBuf {
    let joined = manifest_dir.join(relative);
    if let Ok(path) = joined.canonicalize() {
        return path;
    }
    match (joined.parent().map(Path::canonicalize), joined.file_name()) {
        (Some(Ok(dir)), Some(name)) => dir.join(name),
        _ => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// The macro's expansion of the shipped spec is the checked-in `generated.rs` that
    /// `cargo xtask codegen` writes, but for the support path and the rebuild tracker.
    #[test]
    fn the_expansion_is_the_xtask_output() {
        let expansion = expand(quote!(mod api = "mikobase-spec/mikobase.yaml"), &workspace());
        let module: syn::ItemMod = syn::parse2(expansion).expect("one module");
        let mut items = module.content.expect("an inline module").1;
        let tracker = items.pop().expect("the tracker comes last");
        assert!(
            quote!(#tracker).to_string().contains("include_bytes"),
            "{}",
            quote!(#tracker)
        );
        let body = quote!(#(#items)*);
        let attrs = &module.attrs;
        let rendered = caspian_ipc_codegen::render_file(
            quote!(#(#attrs)* #body),
            &caspian_ipc_codegen::header("mikobase-spec/mikobase.yaml"),
        )
        .expect("renders");
        let checked_in = std::fs::read_to_string(workspace().join("runtime/src/mikobase/generated.rs"))
            .expect("generated.rs");
        let rendered = rendered.replace("::caspian_ipc::mikobase::support", "crate::mikobase::support");
        let checked_in = checked_in.replace("\r\n", "\n");
        if let Some((line, (ours, theirs))) = rendered
            .lines()
            .zip(checked_in.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
        {
            panic!(
                "generated.rs:{}: the macro has `{ours}`, the xtask `{theirs}`",
                line + 1
            );
        }
        assert_eq!(rendered.lines().count(), checked_in.lines().count());
    }

    #[test]
    fn the_module_form_keeps_attributes_and_docs_and_the_bare_form_drops_inner_ones() {
        let module = expand(
            quote!(#[allow(dead_code)] pub(crate) mod api = "mikobase-spec/mikobase.yaml";),
            &workspace(),
        );
        let module: syn::ItemMod = syn::parse2(module).unwrap();
        assert_eq!(module.ident, "api");
        assert!(matches!(module.vis, Visibility::Restricted(_)));
        let outer = |a: &&Attribute| matches!(a.style, syn::AttrStyle::Outer);
        assert_eq!(
            module.attrs.iter().filter(outer).count(),
            1,
            "the user's attribute"
        );
        assert!(
            module
                .attrs
                .iter()
                .any(|a| !outer(&a) && a.path().is_ident("doc")),
            "the module docs"
        );
        let bare: syn::File =
            syn::parse2(expand(quote!("mikobase-spec/mikobase.yaml"), &workspace())).unwrap();
        assert!(bare.attrs.is_empty(), "no inner attributes at item position");
        assert!(bare
            .items
            .iter()
            .any(|i| matches!(i, syn::Item::Struct(s) if s.ident == "MikobaseClient")));
    }

    #[test]
    fn spec_problems_are_spanned_errors_with_file_line_col() {
        let path = workspace()
            .join("tests/specs/invalid/many_problems.yaml")
            .canonicalize()
            .unwrap();
        let (diagnostics, _) = mikobase_spec::load_file(&path).unwrap_err();
        let tokens = expand(quote!("tests/specs/invalid/many_problems.yaml"), &workspace()).to_string();
        assert_eq!(
            tokens.matches("compile_error").count(),
            diagnostics.len(),
            "every diagnostic: {tokens}"
        );
        assert!(
            tokens.contains(&format!(
                "{}:9:18: error[MB004]: unknown type `Pk`",
                path.display()
            )),
            "{tokens}"
        );
        let missing = expand(quote!("tests/specs/no-such.yaml"), &workspace()).to_string();
        let expected = format!(
            "{}: error[MB001]: cannot read the spec",
            workspace()
                .canonicalize()
                .unwrap()
                .join("tests/specs/no-such.yaml")
                .display()
        );
        assert!(missing.contains(&expected), "{missing}");
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for input in [
            quote!(),
            quote!(42),
            quote!(mod = "x"),
            quote!(struct X),
            quote!("a" "b"),
        ] {
            assert!(
                expand(input.clone(), &workspace())
                    .to_string()
                    .contains("compile_error"),
                "{input}"
            );
        }
    }
}
