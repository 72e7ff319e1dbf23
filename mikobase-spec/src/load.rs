//! YAML → IR, collecting every problem. The raw model keeps each name's position
//! (serde-saphyr `Spanned`); nothing here panics on any input.

use std::collections::HashMap;
use std::fmt;

use heck::{ToSnakeCase, ToUpperCamelCase};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diagnostic::{suggest, Code, Diagnostic};
use crate::ir::{
    ApiSpec, Constraints, ErrorDef, Field, Name, OpKind, Operation, Pos, TypeDef, TypeKind, TypeRef, Variant,
};

/// A YAML mapping whose keys keep their positions, in file order.
struct Named<T>(Vec<(Spanned<String>, T)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Entries<T> {
            type Value = Named<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of names")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named<T>, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Named(entries))
            }
        }
        deserializer.deserialize_map(Entries(std::marker::PhantomData))
    }
}

impl<T> Default for Named<T> {
    fn default() -> Self {
        Named(Vec::new())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    spec: Spanned<String>,
    version: Spanned<String>,
    description: Option<String>,
    #[serde(default)]
    types: Named<RawType>,
    #[serde(default)]
    errors: Named<RawError>,
    #[serde(default)]
    warnings: Named<RawError>,
    #[serde(default)]
    operations: Named<RawOperation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawType {
    kind: Spanned<String>,
    description: Option<String>,
    #[serde(default)]
    fields: Named<RawField>,
    #[serde(default)]
    open: bool,
    #[serde(rename = "type")]
    target: Option<Spanned<String>>,
    #[serde(default)]
    values: Vec<Spanned<String>>,
    #[serde(default)]
    variants: Named<RawVariant>,
    decision: Option<String>,
    min_length: Option<u64>,
    pattern: Option<String>,
    #[serde(default)]
    refuses_unknown: bool,
    #[serde(default)]
    passthrough: bool,
    #[serde(default)]
    runtime: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariant {
    #[serde(rename = "type")]
    ty: Spanned<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    #[serde(rename = "type")]
    ty: Spanned<String>,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    nullable: bool,
    description: Option<String>,
    decision: Option<String>,
    min_length: Option<u64>,
    pattern: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawError {
    status: Spanned<u32>,
    description: Option<String>,
    #[serde(default = "yes")]
    documented: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperation {
    kind: Spanned<String>,
    route: Option<Spanned<String>>,
    description: Option<String>,
    #[serde(default)]
    request: Named<RawField>,
    result: Spanned<String>,
    #[serde(default)]
    errors: Vec<Spanned<String>>,
    #[serde(default)]
    writes: bool,
    decision: Option<String>,
    #[serde(default)]
    requires_any: Vec<Spanned<String>>,
}

/// Whether `camel` (a name in `UpperCamelCase`) is a Rust type name the generator can
/// build on: an ASCII letter, then ASCII letters and digits.
fn rust_type_name(camel: &str) -> bool {
    camel.starts_with(|c: char| c.is_ascii_alphabetic()) && camel.chars().all(|c| c.is_ascii_alphanumeric())
}

fn pos<T>(s: &Spanned<T>) -> Pos {
    Pos {
        line: s.referenced.line() as u32,
        column: s.referenced.column() as u32,
    }
}

fn name(s: &Spanned<String>) -> Name {
    Name {
        wire: s.value.clone(),
        pos: Some(pos(s)),
    }
}

/// Parses and validates a spec; on any problem returns every diagnostic found.
pub fn load_str(source: &str) -> Result<ApiSpec, Vec<Diagnostic>> {
    let raw: RawSpec = match serde_saphyr::from_str(source) {
        Ok(raw) => raw,
        Err(e) => return Err(vec![syntax_error(source, &e)]),
    };
    Lowering::default().lower(raw)
}

/// A serde-saphyr error as a diagnostic: the message without its repeated location, the
/// caret on the offending key when it can be found, and a "did you mean" for unknown keys.
fn syntax_error(source: &str, error: &serde_saphyr::Error) -> Diagnostic {
    let mut at = error.location().map(|l| Pos {
        line: l.line() as u32,
        column: l.column() as u32,
    });
    let text = error.to_string();
    let mut message = text
        .lines()
        .next()
        .unwrap_or("not a spec")
        .trim_start_matches("error: ")
        .to_owned();
    if let Some(rest) = message.strip_prefix("line ") {
        if let Some((_, tail)) = rest.split_once(": ") {
            message = tail.to_owned();
        }
    }
    if let Some(cut) = message.rfind(" at line ") {
        message.truncate(cut);
    }
    let mut width = 1;
    let mut help = None;
    if let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|m| m.split_once('`'))
        .map(|(f, _)| f.to_owned())
    {
        if let Some((_, expected)) = message.split_once("expected one of ") {
            help = suggest(&field, expected.split(", ").map(str::trim));
        }
        // Point at the key itself: the first line at or after the reported one holding it.
        let from = at.map_or(0, |p| p.line.saturating_sub(1) as usize);
        let key = format!("{field}:");
        if let Some((i, line)) = source
            .lines()
            .enumerate()
            .skip(from)
            .find(|(_, l)| l.trim_start().starts_with(&key))
        {
            at = Some(Pos {
                line: i as u32 + 1,
                column: (line.len() - line.trim_start().len()) as u32 + 1,
            });
            width = field.chars().count();
        }
    }
    Diagnostic::new(Code::MB001, message, at, width).help(help)
}

#[derive(Default)]
struct Lowering {
    diagnostics: Vec<Diagnostic>,
}

impl Lowering {
    fn error(&mut self, code: Code, message: String, at: &Name, help: Option<String>) {
        self.diagnostics
            .push(Diagnostic::new(code, message, at.pos, at.wire.chars().count()).help(help));
    }

    fn describe(&mut self, what: &str, at: &Name, description: Option<String>) -> String {
        match description.filter(|d| !d.trim().is_empty()) {
            Some(d) => d.trim().to_owned(),
            None => {
                self.error(
                    Code::MB009,
                    format!("{what} `{}` has no description", at.wire),
                    at,
                    None,
                );
                String::new()
            }
        }
    }

    /// Reports names that collide once converted with `convert`.
    fn collisions(&mut self, what: &str, names: &[Name], convert: fn(&str) -> String) {
        let mut seen: HashMap<String, &Name> = HashMap::new();
        let mut found = Vec::new();
        for n in names {
            let converted = convert(&n.wire);
            match seen.get(&converted) {
                Some(first) if first.wire == n.wire => found.push((
                    Code::MB003,
                    format!("{what} `{}` is declared twice", n.wire),
                    n.clone(),
                    None,
                )),
                Some(first) => found.push((
                    Code::MB006,
                    format!(
                        "{what} `{}` and `{}` both become `{converted}` in Rust",
                        first.wire, n.wire
                    ),
                    n.clone(),
                    first
                        .pos
                        .map(|p| format!("`{}` is at line {}", first.wire, p.line)),
                )),
                None => {
                    seen.insert(converted, n);
                }
            }
        }
        for (code, message, at, help) in found {
            self.error(code, message, &at, help);
        }
    }

    fn lower(mut self, raw: RawSpec) -> Result<ApiSpec, Vec<Diagnostic>> {
        let spec_name = name(&raw.spec);
        if spec_name.wire.trim().is_empty() {
            self.error(Code::MB002, "`spec` must name the API".into(), &spec_name, None);
        } else if !rust_type_name(&spec_name.wire.to_upper_camel_case()) {
            // The service trait and the client proxy are named after it.
            self.error(
                Code::MB002,
                format!(
                    "`spec: {}` does not make a Rust type name (`{}Service`, `{}Client`)",
                    spec_name.wire,
                    spec_name.wire.to_upper_camel_case(),
                    spec_name.wire.to_upper_camel_case()
                ),
                &spec_name,
                Some("start the name with an ASCII letter; use letters, digits, `_` and `-`".into()),
            );
        }
        let version = name(&raw.version);
        if !version.wire.starts_with("1.") {
            self.error(
                Code::MB002,
                format!("unsupported spec version `{}`", version.wire),
                &version,
                Some("this generator reads versions 1.x".into()),
            );
        }
        let type_names: Vec<String> = raw.types.0.iter().map(|(n, _)| n.value.clone()).collect();
        let error_names: Vec<String> = raw.errors.0.iter().map(|(n, _)| n.value.clone()).collect();

        let mut types = Vec::new();
        for (key, raw_type) in raw.types.0 {
            let at = name(&key);
            let description = self.describe("type", &at, raw_type.description);
            let kind_name = name(&raw_type.kind);
            let kind = match kind_name.wire.as_str() {
                "struct" => {
                    let fields = self.fields(&at.wire, raw_type.fields, &type_names);
                    TypeKind::Struct {
                        fields,
                        open: raw_type.open,
                    }
                }
                "alias" => match raw_type.target {
                    Some(target) => TypeKind::Alias(self.type_ref(&target, &type_names)),
                    None => {
                        self.error(
                            Code::MB001,
                            format!("alias `{}` needs a `type`", at.wire),
                            &at,
                            None,
                        );
                        TypeKind::Alias(TypeRef::Json)
                    }
                },
                "enum" => {
                    let values: Vec<Name> = raw_type.values.iter().map(name).collect();
                    if values.is_empty() {
                        self.error(
                            Code::MB001,
                            format!("enum `{}` needs `values`", at.wire),
                            &at,
                            None,
                        );
                    }
                    self.collisions("enum value", &values, |s| s.to_upper_camel_case());
                    TypeKind::Enum(values)
                }
                "union" => TypeKind::Union(self.variants(&at, raw_type.variants, &type_names)),
                other => {
                    self.error(
                        Code::MB012,
                        format!("unknown kind `{other}` for type `{}`", at.wire),
                        &kind_name,
                        suggest(other, KINDS.iter().copied())
                            .or(Some("expected `struct`, `alias`, `enum` or `union`".into())),
                    );
                    TypeKind::Alias(TypeRef::Json)
                }
            };
            if raw_type.runtime {
                self.runtime_type(&at, &kind);
            }
            types.push(TypeDef {
                name: at,
                description,
                kind,
                decision: raw_type.decision,
                constraints: Constraints {
                    min_length: raw_type.min_length,
                    pattern: raw_type.pattern,
                },
                refuses_unknown: raw_type.refuses_unknown,
                passthrough: raw_type.passthrough,
                runtime: raw_type.runtime,
            });
        }
        let names: Vec<Name> = types.iter().map(|t| t.name.clone()).collect();
        self.collisions("type", &names, |s| s.to_upper_camel_case());
        for def in &types {
            if let TypeKind::Union(variants) = &def.kind {
                self.distinguishable(&def.name, variants, &types);
            }
        }

        let mut errors = Vec::new();
        for (key, raw_error) in raw.errors.0 {
            errors.push(self.error_def("error id", &key, raw_error));
        }
        let ids: Vec<Name> = errors.iter().map(|e| e.id.clone()).collect();
        self.collisions("error id", &ids, |s| s.to_upper_camel_case());
        let mut warnings = Vec::new();
        for (key, raw_warning) in raw.warnings.0 {
            warnings.push(self.error_def("warning id", &key, raw_warning));
        }

        let mut operations = Vec::new();
        let mut routes: HashMap<String, Name> = HashMap::new();
        for (key, raw_op) in raw.operations.0 {
            let at = name(&key);
            let description = self.describe("operation", &at, raw_op.description);
            let kind_name = name(&raw_op.kind);
            let kind = match (kind_name.wire.as_str(), raw_op.route) {
                ("q0", None) => OpKind::Q0,
                ("q0", Some(route)) => {
                    let route = name(&route);
                    self.error(
                        Code::MB007,
                        format!("Q0 action `{}` is served on /q0 and takes no `route`", at.wire),
                        &route,
                        None,
                    );
                    OpKind::Q0
                }
                ("method", Some(route)) => {
                    let route = name(&route);
                    self.route(&route, &mut routes);
                    OpKind::Method { route }
                }
                ("method", None) => {
                    self.error(
                        Code::MB007,
                        format!("method `{}` needs a `route`", at.wire),
                        &at,
                        Some(format!("e.g. `route: /{}`", at.wire)),
                    );
                    OpKind::Q0
                }
                (other, _) => {
                    self.error(
                        Code::MB012,
                        format!("unknown kind `{other}` for operation `{}`", at.wire),
                        &kind_name,
                        suggest(other, ["q0", "method"]).or(Some("expected `q0` or `method`".into())),
                    );
                    OpKind::Q0
                }
            };
            let request = self.fields(&at.wire, raw_op.request, &type_names);
            let result = self.type_ref(&raw_op.result, &type_names);
            let mut op_errors = Vec::new();
            for id in &raw_op.errors {
                let id = name(id);
                if !error_names.contains(&id.wire) {
                    let help = suggest(&id.wire, error_names.iter().map(String::as_str));
                    self.error(Code::MB005, format!("unknown error id `{}`", id.wire), &id, help);
                }
                op_errors.push(id);
            }
            let mut requires_any = Vec::new();
            for field in &raw_op.requires_any {
                let field = name(field);
                if !request.iter().any(|f| f.name.wire == field.wire && f.optional) {
                    let help = suggest(&field.wire, request.iter().map(|f| f.name.wire.as_str()));
                    self.error(
                        Code::MB001,
                        format!(
                            "`requires_any` of `{}` names `{}`, which is not an optional field of its request",
                            at.wire, field.wire
                        ),
                        &field,
                        help,
                    );
                }
                requires_any.push(field);
            }
            operations.push(Operation {
                name: at,
                kind,
                description,
                request,
                result,
                errors: op_errors,
                writes: raw_op.writes,
                decision: raw_op.decision,
                requires_any,
            });
        }
        let op_names: Vec<Name> = operations.iter().map(|o| o.name.clone()).collect();
        self.collisions("operation", &op_names, |s| s.to_snake_case());
        self.dispatch_ids(&spec_name, &operations, &error_names);

        if !self.diagnostics.is_empty() {
            self.diagnostics.sort_by_key(|d| (d.pos, d.code));
            return Err(self.diagnostics);
        }
        Ok(ApiSpec {
            name: spec_name.wire,
            version: version.wire,
            description: raw.description.unwrap_or_default().trim().to_owned(),
            types,
            errors,
            warnings,
            operations,
        })
    }

    /// The generated dispatch table answers these ids itself, so the registry must have
    /// them: a malformed body, an oversized one, and (with Q0 actions) an unknown action.
    /// A `runtime: true` type: one the support module provides (the loader cannot see the
    /// runtime; [`crate::RUNTIME_TYPES`] is its list), and a struct, enum or union (an alias
    /// is a name for another type already).
    fn runtime_type(&mut self, at: &Name, kind: &TypeKind) {
        if !crate::RUNTIME_TYPES.contains(&at.wire.as_str()) {
            let provided: Vec<String> = crate::RUNTIME_TYPES.iter().map(|t| format!("`{t}`")).collect();
            let help = suggest(&at.wire, crate::RUNTIME_TYPES.iter().copied()).unwrap_or(format!(
                "the runtime provides {}; leave `runtime` out to generate the type",
                provided.join(", ")
            ));
            self.error(
                Code::MB004,
                format!("the runtime provides no type `{}`", at.wire),
                at,
                Some(help),
            );
        } else if matches!(kind, TypeKind::Alias(_)) {
            self.error(
                Code::MB001,
                format!(
                    "`runtime` type `{}` is an alias: declare it with the runtime type's shape",
                    at.wire
                ),
                at,
                Some("use `kind: struct`, `enum` or `union`, as the runtime's type serializes".into()),
            );
        }
    }

    fn dispatch_ids(&mut self, spec: &Name, operations: &[Operation], declared: &[String]) {
        let mut needed = Vec::new();
        if !operations.is_empty() {
            needed.extend([("invalid_request", 400), ("request-too-large", 413)]);
        }
        if operations.iter().any(|o| o.kind == OpKind::Q0) {
            needed.push(("action-not-supported", 501));
        }
        for (id, status) in needed {
            if !declared.iter().any(|d| d == id) {
                self.error(
                    Code::MB005,
                    format!("the dispatch table answers `{id}`, which `errors` does not declare"),
                    spec,
                    Some(format!(
                        "add `{id}: {{status: {status}, description: ...}}` to `errors`"
                    )),
                );
            }
        }
    }

    fn error_def(&mut self, what: &str, key: &Spanned<String>, raw: RawError) -> ErrorDef {
        let id = name(key);
        let description = self.describe(what, &id, raw.description);
        let status = raw.status.value;
        let at = Name {
            wire: status.to_string(),
            pos: Some(pos(&raw.status)),
        };
        if !(100..=599).contains(&status) {
            self.error(
                Code::MB008,
                format!("HTTP status `{status}` of `{}` is not in 100..=599", id.wire),
                &at,
                None,
            );
        } else if what == "error id" && !(400..=599).contains(&status) {
            // An error answer carries the envelope: 1xx, 204 and 304 answers have no body
            // at all, and 2xx / 3xx would tell clients the call worked.
            self.error(
                Code::MB008,
                format!(
                    "HTTP status `{status}` of error `{}` is not an error status: an error is answered with a body, as 4xx or 5xx",
                    id.wire
                ),
                &at,
                Some("use a 4xx status for the caller's mistakes, 5xx for the server's".into()),
            );
        }
        ErrorDef {
            id,
            status: status.min(599) as u16,
            description,
            documented: raw.documented,
        }
    }

    fn route(&mut self, route: &Name, routes: &mut HashMap<String, Name>) {
        let ok = route.wire.starts_with('/')
            && route.wire.len() > 1
            && !route.wire.ends_with('/')
            && route.wire[1..].split('/').all(|seg| {
                !seg.is_empty()
                    && seg
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
            });
        if !ok {
            self.error(
                Code::MB007,
                format!("bad route `{}`", route.wire),
                route,
                Some("a route is `/` then lower-case segments of a-z 0-9 _ - separated by `/`".into()),
            );
        } else if route.wire == ApiSpec::Q0_ROUTE {
            self.error(
                Code::MB007,
                "route `/q0` is reserved for Q0 actions".into(),
                route,
                None,
            );
        } else if let Some(first) = routes.get(&route.wire) {
            let help = first.pos.map(|p| format!("first used at line {}", p.line));
            self.error(
                Code::MB011,
                format!("route `{}` is used twice", route.wire),
                route,
                help,
            );
        } else {
            routes.insert(route.wire.clone(), route.clone());
        }
    }

    fn fields(&mut self, owner: &str, raw: Named<RawField>, types: &[String]) -> Vec<Field> {
        let mut fields = Vec::new();
        for (key, raw_field) in raw.0 {
            let at = name(&key);
            let description = self.describe(&format!("field of `{owner}`"), &at, raw_field.description);
            let ty = self.type_ref(&raw_field.ty, types);
            fields.push(Field {
                name: at,
                ty,
                optional: raw_field.optional || raw_field.nullable,
                nullable: raw_field.nullable,
                description,
                decision: raw_field.decision,
                constraints: Constraints {
                    min_length: raw_field.min_length,
                    pattern: raw_field.pattern,
                },
            });
        }
        let names: Vec<Name> = fields.iter().map(|f| f.name.clone()).collect();
        self.collisions(&format!("field of `{owner}`"), &names, |s| s.to_snake_case());
        fields
    }

    fn variants(&mut self, owner: &Name, raw: Named<RawVariant>, types: &[String]) -> Vec<Variant> {
        if raw.0.is_empty() {
            self.error(
                Code::MB001,
                format!("union `{}` needs `variants`", owner.wire),
                owner,
                Some("e.g. `variants: {one: {type: string, description: ...}}`".into()),
            );
        }
        let mut variants = Vec::new();
        for (key, raw_variant) in raw.0 {
            let at = name(&key);
            let what = format!("variant of `{}`", owner.wire);
            let description = self.describe(&what, &at, raw_variant.description);
            let ty = self.type_ref(&raw_variant.ty, types);
            variants.push(Variant {
                name: at,
                ty,
                description,
            });
        }
        let names: Vec<Name> = variants.iter().map(|v| v.name.clone()).collect();
        self.collisions(&format!("variant of `{}`", owner.wire), &names, |s| {
            s.to_upper_camel_case()
        });
        variants
    }

    /// Untagged variants are tried in order, so each must take JSON values no earlier
    /// variant takes: distinct shapes, and `json` (which takes all) only last.
    fn distinguishable(&mut self, owner: &Name, variants: &[Variant], types: &[TypeDef]) {
        let shapes: Vec<Option<Vec<Shape>>> = variants
            .iter()
            .map(|v| shapes(&v.ty, types, &mut Vec::new()))
            .collect();
        for (i, variant) in variants.iter().enumerate() {
            let Some(mine) = &shapes[i] else { continue };
            let clash = variants[..i]
                .iter()
                .zip(&shapes[..i])
                .find_map(|(earlier, theirs)| {
                    let theirs = theirs.as_ref()?;
                    if theirs.contains(&Shape::Any) {
                        return Some((earlier, None));
                    }
                    let common = mine.iter().find(|s| **s != Shape::Any && theirs.contains(s))?;
                    Some((earlier, Some(*common)))
                });
            if let Some((earlier, common)) = clash {
                let message = match common {
                    None => format!(
                        "variant `{}` of `{}` is never reached: `{}` before it takes any JSON",
                        variant.name.wire, owner.wire, earlier.name.wire
                    ),
                    Some(common) => format!(
                        "variants `{}` and `{}` of `{}` cannot be told apart: both take a JSON {}",
                        earlier.name.wire,
                        variant.name.wire,
                        owner.wire,
                        common.as_str()
                    ),
                };
                self.error(
                    Code::MB013,
                    message,
                    &variant.name,
                    Some("untagged variants need distinct JSON shapes; a `json` variant goes last".into()),
                );
            }
        }
    }

    fn type_ref(&mut self, text: &Spanned<String>, types: &[String]) -> TypeRef {
        let at = name(text);
        match parse_type(&at.wire) {
            Ok(ty) => {
                self.check_named(&ty, &at, types);
                ty
            }
            Err(why) => {
                self.error(
                    Code::MB010,
                    format!("malformed type `{}`: {why}", at.wire),
                    &at,
                    None,
                );
                TypeRef::Json
            }
        }
    }

    fn check_named(&mut self, ty: &TypeRef, at: &Name, types: &[String]) {
        match ty {
            TypeRef::Named(n) if !types.contains(&n.wire) => {
                let help = suggest(
                    &n.wire,
                    types.iter().map(String::as_str).chain(PRIMITIVES.iter().copied()),
                );
                self.error(Code::MB004, format!("unknown type `{}`", n.wire), at, help);
            }
            TypeRef::List(inner) | TypeRef::Map(inner) => self.check_named(inner, at, types),
            _ => {}
        }
    }
}

const PRIMITIVES: &[&str] = &["string", "bool", "u64", "i64", "f64", "number", "json", "object"];
const KINDS: &[&str] = &["struct", "alias", "enum", "union"];

/// The JSON shape of a value a type takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    String,
    Number,
    Boolean,
    Array,
    Object,
    /// Any JSON (`json`).
    Any,
}

impl Shape {
    fn as_str(self) -> &'static str {
        match self {
            Shape::String => "string",
            Shape::Number => "number",
            Shape::Boolean => "boolean",
            Shape::Array => "array",
            Shape::Object => "object",
            Shape::Any => "value",
        }
    }
}

/// The JSON shapes `ty` takes; `None` when unknown (an unknown type, already reported, or
/// an alias cycle).
fn shapes(ty: &TypeRef, types: &[TypeDef], visiting: &mut Vec<String>) -> Option<Vec<Shape>> {
    Some(match ty {
        TypeRef::String => vec![Shape::String],
        TypeRef::Bool => vec![Shape::Boolean],
        TypeRef::U64 | TypeRef::I64 | TypeRef::F64 | TypeRef::Number => vec![Shape::Number],
        TypeRef::Json => vec![Shape::Any],
        TypeRef::Object | TypeRef::Map(_) => vec![Shape::Object],
        TypeRef::List(_) => vec![Shape::Array],
        TypeRef::Named(n) => {
            if visiting.contains(&n.wire) {
                return None;
            }
            let def = types.iter().find(|t| t.name.wire == n.wire)?;
            visiting.push(n.wire.clone());
            let found = match &def.kind {
                TypeKind::Struct { .. } => Some(vec![Shape::Object]),
                TypeKind::Enum(_) => Some(vec![Shape::String]),
                TypeKind::Alias(target) => shapes(target, types, visiting),
                TypeKind::Union(variants) => variants
                    .iter()
                    .map(|v| shapes(&v.ty, types, visiting))
                    .collect::<Option<Vec<_>>>()
                    .map(|all| all.concat()),
            };
            visiting.pop();
            return found;
        }
    })
}

/// Parses `string`, `list<Record>`, `map<json>`, `Record`, ...
pub fn parse_type(text: &str) -> Result<TypeRef, String> {
    let text = text.trim();
    if let Some(inner) = text.strip_prefix("list<").and_then(|t| t.strip_suffix('>')) {
        return Ok(TypeRef::List(Box::new(parse_type(inner)?)));
    }
    if let Some(inner) = text.strip_prefix("map<").and_then(|t| t.strip_suffix('>')) {
        return Ok(TypeRef::Map(Box::new(parse_type(inner)?)));
    }
    Ok(match text {
        "string" => TypeRef::String,
        "bool" => TypeRef::Bool,
        "u64" => TypeRef::U64,
        "i64" => TypeRef::I64,
        "f64" => TypeRef::F64,
        "number" => TypeRef::Number,
        "json" => TypeRef::Json,
        "object" => TypeRef::Object,
        "" => return Err("empty".into()),
        name if name.chars().all(|c| c.is_ascii_alphanumeric())
            && name.starts_with(|c: char| c.is_ascii_uppercase()) =>
        {
            TypeRef::Named(Name::new(name))
        }
        _ => {
            return Err(format!(
                "expected one of {}, `list<T>`, `map<T>` or a declared type name (UpperCamelCase)",
                PRIMITIVES.join(", ")
            ))
        }
    })
}
