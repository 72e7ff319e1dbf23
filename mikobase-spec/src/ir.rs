//! The public IR: what a spec says, with every name's position in its file. Built by the
//! YAML loader ([`crate::load_str`]) or in code ([`crate::Builder`]). Serializable, so
//! front-end regressions show in IR snapshots.

use serde::Serialize;

/// A position in the spec file (1-based line and column, in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

/// A name as written in the spec, with where it was written (`None` when built in code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Name {
    /// The name exactly as on the wire (`record_not_found`, `class-not-found`, `select`).
    pub wire: String,
    /// Where the name stands in the spec file.
    pub pos: Option<Pos>,
}

impl Name {
    /// A name with no position (built in code).
    pub fn new(wire: impl Into<String>) -> Self {
        Name {
            wire: wire.into(),
            pos: None,
        }
    }
}

/// A type expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TypeRef {
    /// A string.
    String,
    /// A boolean.
    Bool,
    /// An unsigned integer.
    U64,
    /// A signed integer.
    I64,
    /// A float.
    F64,
    /// Any JSON number, kept exactly as written (integer or float).
    Number,
    /// Any JSON value.
    Json,
    /// A JSON object with arbitrary keys.
    Object,
    /// `list<T>`.
    List(Box<TypeRef>),
    /// `map<T>`: a JSON object with string keys and `T` values, in order.
    Map(Box<TypeRef>),
    /// A type declared in the spec's `types`.
    Named(Name),
}

/// As written in a spec: `list<Record>`, `map<json>`, `u64`, ...
impl std::fmt::Display for TypeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TypeRef::String => f.write_str("string"),
            TypeRef::Bool => f.write_str("bool"),
            TypeRef::U64 => f.write_str("u64"),
            TypeRef::I64 => f.write_str("i64"),
            TypeRef::F64 => f.write_str("f64"),
            TypeRef::Number => f.write_str("number"),
            TypeRef::Json => f.write_str("json"),
            TypeRef::Object => f.write_str("object"),
            TypeRef::List(inner) => write!(f, "list<{inner}>"),
            TypeRef::Map(inner) => write!(f, "map<{inner}>"),
            TypeRef::Named(name) => f.write_str(&name.wire),
        }
    }
}

/// One field of a struct type or of an operation's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    /// Field name as on the wire (may be kebab-case, e.g. `case-sensitive`).
    pub name: Name,
    /// Its type.
    pub ty: TypeRef,
    /// Whether it may be absent.
    pub optional: bool,
    /// Whether `null` is read as absent (only for optional fields); otherwise `null` must
    /// fit the type (only `json` takes it).
    pub nullable: bool,
    /// What it means.
    pub description: String,
    /// The decision (in `mikobase-spec/DECISIONS.md`) behind it, if it is ours.
    pub decision: Option<String>,
    /// What the server enforces of a string value beyond its type (`min_length`,
    /// `pattern`): published in the OpenAPI document.
    #[serde(skip_serializing_if = "Constraints::is_none")]
    pub constraints: Constraints,
}

/// What the server enforces of a string beyond its type (D-C2). The generated Rust types
/// do not check it (the engine does, with its own error); the OpenAPI document says it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Constraints {
    /// At least this many characters (`min_length: 1`: the server refuses `""`).
    pub min_length: Option<u64>,
    /// An ECMA-262 regular expression the string matches somewhere (`pattern`, as in
    /// JSON Schema: anchor it with `^` to match a prefix).
    pub pattern: Option<String>,
}

impl Constraints {
    /// Whether nothing is constrained.
    pub fn is_none(&self) -> bool {
        self.min_length.is_none() && self.pattern.is_none()
    }
}

/// What kind of type a declaration is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TypeKind {
    /// A JSON object with these fields.
    Struct {
        /// The fields, in spec order.
        fields: Vec<Field>,
        /// Whether keys beyond the fields are kept (`open: true`).
        open: bool,
    },
    /// Another name for a type expression.
    Alias(TypeRef),
    /// One of these strings.
    Enum(Vec<Name>),
    /// A JSON value of one of several shapes (untagged: the first variant that fits).
    Union(Vec<Variant>),
}

/// One variant of a union type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variant {
    /// Its name (UpperCamelCase in Rust).
    pub name: Name,
    /// The type of its value.
    pub ty: TypeRef,
    /// What it means.
    pub description: String,
}

/// A named type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TypeDef {
    /// Its name.
    pub name: Name,
    /// What it means.
    pub description: String,
    /// Its shape.
    pub kind: TypeKind,
    /// The decision behind it, if it is ours.
    pub decision: Option<String>,
    /// An alias of `string`: what the server enforces of its values.
    #[serde(skip_serializing_if = "Constraints::is_none")]
    pub constraints: Constraints,
    /// A struct whose unknown keys the server refuses although it is `open` (the typed
    /// view keeps them for the engine to report, `refuses_unknown: true`); the OpenAPI
    /// document says `additionalProperties: false`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub refuses_unknown: bool,
    /// With `refuses_unknown`: the pass-through keys (`misc`, `corporate`, `vibecode`,
    /// `comment`) are accepted and ignored too (`passthrough: true`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub passthrough: bool,
    /// Provided by the runtime's support module under its Rust name (`runtime: true`, one
    /// of [`RUNTIME_TYPES`]): the generated code re-exports it (`pub use
    /// __support::Problem;`) instead of declaring it; the OpenAPI document still describes
    /// it from the spec.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub runtime: bool,
}

/// The types the runtime's support module (`caspian_ipc::mikobase::support`) provides for
/// a spec to name with `runtime: true`, by their spec (and Rust) names. The loader refuses
/// any other name (MB004); the shipped spec marks each of them, so the runtime's own
/// generated code, which re-exports them, compiles only while the support module has them.
pub const RUNTIME_TYPES: &[&str] = &["Problem"];

/// An error id (or warning id) of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorDef {
    /// The id exactly as documented (mixed snake and kebab case kept).
    pub id: Name,
    /// The HTTP status that answers it.
    pub status: u16,
    /// What it means.
    pub description: String,
    /// `true` when Mikobase's documents define the id; `false` for ours.
    pub documented: bool,
}

/// How an operation travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum OpKind {
    /// A Q0 action: `POST /q0` with `{"action": name, ...}`.
    Q0,
    /// An engine method with its own route.
    Method {
        /// The route, e.g. `/record_by_pk`.
        route: Name,
    },
}

/// One operation of the surface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operation {
    /// Its name (the Q0 action or the method name).
    pub name: Name,
    /// Q0 action or method.
    pub kind: OpKind,
    /// What it does.
    pub description: String,
    /// Request fields (besides `action`).
    pub request: Vec<Field>,
    /// What `results` holds on success.
    pub result: TypeRef,
    /// Error ids it may answer.
    pub errors: Vec<Name>,
    /// Whether it writes (refused on read-only connections).
    pub writes: bool,
    /// The decision behind it, if it is ours.
    pub decision: Option<String>,
    /// Optional request fields of which the server needs at least one
    /// (`requires_any: [bucket, class]`); empty: none needed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requires_any: Vec<Name>,
}

/// A whole spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiSpec {
    /// The API's name (`mikobase`).
    pub name: String,
    /// The spec's version.
    pub version: String,
    /// What the API is.
    pub description: String,
    /// Named types, in spec order.
    pub types: Vec<TypeDef>,
    /// The error registry, in spec order.
    pub errors: Vec<ErrorDef>,
    /// Warning ids.
    pub warnings: Vec<ErrorDef>,
    /// Operations, in spec order.
    pub operations: Vec<Operation>,
}

impl ApiSpec {
    /// The route of the Q0 endpoint.
    pub const Q0_ROUTE: &'static str = "/q0";

    /// The type named `name`.
    pub fn type_named(&self, name: &str) -> Option<&TypeDef> {
        self.types.iter().find(|t| t.name.wire == name)
    }

    /// The route an operation is served on: `/q0` for Q0 actions.
    pub fn route_of(op: &Operation) -> &str {
        match &op.kind {
            OpKind::Q0 => Self::Q0_ROUTE,
            OpKind::Method { route } => &route.wire,
        }
    }
}
