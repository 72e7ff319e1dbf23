use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::DeriveInput;

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
    let shape = "`#[derive(Record)]` needs a struct with named fields (a record's bucket is a JSON object)";
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
