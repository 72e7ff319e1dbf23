//! Field classes: the class a value of a Rust type is stored as (from the type's
//! spelling), the class of a sequence's elements, which literals a class holds, and the
//! shape of a UNS class name.

use syn::{GenericArgument, Type};

use super::Literal;

/// Field classes the store knows besides UNS class names.
pub(super) const PRIMITIVES: &[&str] = &[
    "string",
    "number",
    "integer",
    "boolean",
    "array",
    "hash",
    "timestamp",
    "any",
];

/// The class a value of type `ty` is stored as (`None`: untyped), and whether the type is
/// an `Option`. Decided from the type's spelling: see the derive's documentation.
pub(super) fn classify(ty: &Type) -> (Option<String>, bool) {
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

/// The class of the elements of a sequence type (`Vec<T>`, sets, `[T; N]`, `[T]`), when
/// `T`'s class is known from its spelling (a type that only falls back to `hash` gives
/// none: enums and newtypes serialize otherwise).
pub(super) fn element_class(ty: &Type) -> Option<String> {
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

/// `ty` without the wrappers that serialize as their content (`Option`, `Box`, `Rc`, `Arc`,
/// `&`): the type a field's value has.
pub(super) fn value_type(ty: &Type) -> &Type {
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

/// Whether `value` has the JSON type a field of `class` holds.
pub(super) fn fits(class: Option<&str>, value: &Literal) -> bool {
    match class {
        Some("string" | "timestamp") => matches!(value, Literal::Str(_)),
        Some("number") => matches!(value, Literal::Int(_) | Literal::UInt(_) | Literal::Float(_)),
        Some("integer") => matches!(value, Literal::Int(_) | Literal::UInt(_)),
        Some("boolean") => matches!(value, Literal::Bool(_)),
        Some("array" | "hash") => false,
        _ => true,
    }
}

/// Whether `name` looks like a UNS name (`example.org/crew/officer`): letters, digits and
/// `_ - . / ?`, a dotted domain first, no empty segment. The store applies the full rule
/// when the class is defined.
pub(super) fn looks_like_uns(name: &str) -> Result<(), String> {
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
