//! Emitting: a [`Model`] to the `Record` impl (class, description, parents and field
//! declarations as constants) and the `{Struct}Proxy` type, naming only the runtime's
//! path and `::core`.

use proc_macro2::{Group, TokenStream, TokenTree};
use quote::{format_ident, quote, ToTokens};
use syn::Ident;

use super::{FieldModel, Literal, Model};

pub(super) fn emit(model: &Model<'_>) -> TokenStream {
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
