//! Spec evolution: what a change from one spec to another breaks (docs/SPEC.md, "Spec
//! evolution"; decisions D17–D20 in `mikobase-spec/DECISIONS.md`).
//!
//! [`diff`] is a pure function over two loaded specs. A change is **breaking** when a
//! client built from the old spec can fail against a server built from the new one (the
//! wire), or when a name the generated bindings export disappears (a type, field,
//! operation or id removed or renamed). Whether a type change breaks depends on the
//! direction its values travel: a request (client to server) may widen, a result
//! (server to client) may narrow.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::ir::{
    ApiSpec, Constraints, ErrorDef, Field, Name, OpKind, Operation, Pos, TypeDef, TypeKind, TypeRef, Variant,
};

/// Whether a change can break an existing client or server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// A client of the old spec can fail against a server of the new one, or a name of the
    /// generated bindings disappears.
    Breaking,
    /// Old clients keep working.
    Compatible,
}

impl Severity {
    /// `breaking` or `compatible`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Breaking => "breaking",
            Severity::Compatible => "compatible",
        }
    }
}

/// What changed. [`ChangeKind::as_str`] is its stable kebab-case id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// The spec's `version` changed.
    VersionChanged,
    /// A description changed (of the spec, a type, field, variant, operation or id).
    DescriptionChanged,
    /// A `decision:` reference changed.
    DecisionChanged,
    /// A type was declared.
    TypeAdded,
    /// A type is gone (a rename is a removal plus an addition).
    TypeRemoved,
    /// A type became another kind (struct, alias, enum, union).
    TypeKindChanged,
    /// An alias names another type expression.
    AliasChanged,
    /// A closed struct became open (`open: true`).
    StructOpened,
    /// An open struct became closed.
    StructClosed,
    /// A field (of a struct or a request) was added.
    FieldAdded,
    /// A field is gone.
    FieldRemoved,
    /// An optional field became required.
    FieldMadeRequired,
    /// A required field became optional.
    FieldMadeOptional,
    /// A field now reads `null` as absent.
    FieldMadeNullable,
    /// A field no longer reads `null` as absent.
    FieldMadeNonNullable,
    /// A field's type changed (widened, narrowed, or neither).
    FieldTypeChanged,
    /// An enum value was added.
    EnumValueAdded,
    /// An enum value is gone.
    EnumValueRemoved,
    /// A union variant was added.
    VariantAdded,
    /// A union variant is gone.
    VariantRemoved,
    /// A union variant's type changed.
    VariantTypeChanged,
    /// An operation was added.
    OperationAdded,
    /// An operation is gone (a rename is a removal plus an addition).
    OperationRemoved,
    /// An operation is served on another route (or moved between Q0 and its own route).
    RouteChanged,
    /// An operation's result type changed.
    ResultTypeChanged,
    /// An operation now writes (refused on read-only connections) or no longer does.
    WritesChanged,
    /// An operation may answer an error id it did not list.
    OperationErrorAdded,
    /// An operation no longer lists an error id.
    OperationErrorRemoved,
    /// An error id was added to the registry.
    ErrorAdded,
    /// An error id is gone from the registry.
    ErrorRemoved,
    /// An error id is answered with another HTTP status.
    ErrorStatusChanged,
    /// An error id's `documented` flag changed.
    ErrorDocumentedChanged,
    /// A warning id was added.
    WarningAdded,
    /// A warning id is gone.
    WarningRemoved,
    /// A warning id comes with another HTTP status.
    WarningStatusChanged,
    /// What the server enforces beyond a type changed: `min_length` or `pattern` of a
    /// field or alias, `refuses_unknown`/`passthrough` of a struct, `requires_any` of an
    /// operation (D-C2).
    ConstraintsChanged,
}

impl ChangeKind {
    /// The stable id, e.g. `field-made-required`.
    pub fn as_str(self) -> &'static str {
        use ChangeKind::*;
        match self {
            VersionChanged => "version-changed",
            DescriptionChanged => "description-changed",
            DecisionChanged => "decision-changed",
            TypeAdded => "type-added",
            TypeRemoved => "type-removed",
            TypeKindChanged => "type-kind-changed",
            AliasChanged => "alias-changed",
            StructOpened => "struct-opened",
            StructClosed => "struct-closed",
            FieldAdded => "field-added",
            FieldRemoved => "field-removed",
            FieldMadeRequired => "field-made-required",
            FieldMadeOptional => "field-made-optional",
            FieldMadeNullable => "field-made-nullable",
            FieldMadeNonNullable => "field-made-non-nullable",
            FieldTypeChanged => "field-type-changed",
            EnumValueAdded => "enum-value-added",
            EnumValueRemoved => "enum-value-removed",
            VariantAdded => "variant-added",
            VariantRemoved => "variant-removed",
            VariantTypeChanged => "variant-type-changed",
            OperationAdded => "operation-added",
            OperationRemoved => "operation-removed",
            RouteChanged => "route-changed",
            ResultTypeChanged => "result-type-changed",
            WritesChanged => "writes-changed",
            OperationErrorAdded => "operation-error-added",
            OperationErrorRemoved => "operation-error-removed",
            ErrorAdded => "error-added",
            ErrorRemoved => "error-removed",
            ErrorStatusChanged => "error-status-changed",
            ErrorDocumentedChanged => "error-documented-changed",
            WarningAdded => "warning-added",
            WarningRemoved => "warning-removed",
            WarningStatusChanged => "warning-status-changed",
            ConstraintsChanged => "constraints-changed",
        }
    }
}

/// One difference between two specs, located in both files where it has a place there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What changed.
    pub kind: ChangeKind,
    /// Whether it breaks.
    pub severity: Severity,
    /// Where in the old spec (the thing itself, or for an addition the thing that gained
    /// it); `None` when it has no place there (a new type, or a spec built in code).
    pub old_span: Option<Pos>,
    /// Where in the new spec (for a removal: the thing that lost it).
    pub new_span: Option<Pos>,
    /// What changed and, for a breaking change, who it breaks.
    pub message: String,
}

impl Change {
    /// Whether the change is breaking.
    pub fn is_breaking(&self) -> bool {
        self.severity == Severity::Breaking
    }
}

/// Every difference between `old` and `new`, in spec order: the spec itself, types, error
/// ids, warning ids, operations. Two equal specs give none.
pub fn diff(old: &ApiSpec, new: &ApiSpec) -> Vec<Change> {
    let mut d = Differ {
        old,
        new,
        old_dirs: directions(old),
        new_dirs: directions(new),
        changes: Vec::new(),
    };
    d.spec();
    d.types();
    d.ids(&old.errors, &new.errors, IdKinds::ERRORS);
    d.ids(&old.warnings, &new.warnings, IdKinds::WARNINGS);
    d.operations();
    d.changes
}

/// The changes as a report: one block per change, `OLD:LINE:COL` and `NEW:LINE:COL` under
/// it (`PATH: -` where the change has no place in that file: the new side of a removal,
/// the old side of a new type, operation or id, a spec-wide change), then a count.
pub fn render_changes(changes: &[Change], old_path: &str, new_path: &str) -> String {
    let mut out = String::new();
    let at = |path: &str, pos: Option<Pos>| match pos {
        Some(p) => format!("{path}:{}:{}", p.line, p.column),
        None => format!("{path}: -"),
    };
    for c in changes {
        let _ = writeln!(out, "{}[{}]: {}", c.severity.as_str(), c.kind.as_str(), c.message);
        let _ = writeln!(out, "  old: {}", at(old_path, c.old_span));
        let _ = writeln!(out, "  new: {}", at(new_path, c.new_span));
    }
    let breaking = changes.iter().filter(|c| c.is_breaking()).count();
    let compatible = changes.len() - breaking;
    if changes.is_empty() {
        let _ = writeln!(out, "no changes from {old_path} to {new_path}");
    } else {
        let _ = writeln!(
            out,
            "{breaking} breaking change{}, {compatible} compatible change{} from {old_path} to {new_path}",
            if breaking == 1 { "" } else { "s" },
            if compatible == 1 { "" } else { "s" },
        );
    }
    out
}

/// Which way a type's values travel. A type no operation reaches (e.g. `Envelope`), and
/// what it holds, is judged both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Dir {
    /// In a request: a client sends it, the server reads it.
    input: bool,
    /// In a result: the server sends it, a client reads it.
    output: bool,
}

impl Dir {
    const INPUT: Dir = Dir {
        input: true,
        output: false,
    };
    const OUTPUT: Dir = Dir {
        input: false,
        output: true,
    };
    const BOTH: Dir = Dir {
        input: true,
        output: true,
    };

    fn union(self, other: Dir) -> Dir {
        Dir {
            input: self.input || other.input,
            output: self.output || other.output,
        }
    }

    /// Breaking when a direction it travels in breaks. Returns the severity and the
    /// reason of the first breaking direction.
    fn judge(self, input: Option<&str>, output: Option<&str>) -> (Severity, String) {
        if let (true, Some(why)) = (self.input, input) {
            return (Severity::Breaking, why.to_owned());
        }
        if let (true, Some(why)) = (self.output, output) {
            return (Severity::Breaking, why.to_owned());
        }
        (Severity::Compatible, String::new())
    }
}

/// For every named type, the directions it travels in (requests, results).
fn directions(spec: &ApiSpec) -> HashMap<String, Dir> {
    fn mark(spec: &ApiSpec, ty: &TypeRef, dir: Dir, dirs: &mut HashMap<String, Dir>) {
        match ty {
            TypeRef::List(inner) | TypeRef::Map(inner) => mark(spec, inner, dir, dirs),
            TypeRef::Named(n) => {
                let seen = dirs.entry(n.wire.clone()).or_default();
                let merged = seen.union(dir);
                if merged == *seen {
                    return;
                }
                *seen = merged;
                let Some(def) = spec.type_named(&n.wire) else {
                    return;
                };
                match &def.kind {
                    TypeKind::Struct { fields, .. } => {
                        for f in fields {
                            mark(spec, &f.ty, dir, dirs);
                        }
                    }
                    TypeKind::Alias(target) => mark(spec, target, dir, dirs),
                    TypeKind::Union(variants) => {
                        for v in variants {
                            mark(spec, &v.ty, dir, dirs);
                        }
                    }
                    TypeKind::Enum(_) => {}
                }
            }
            _ => {}
        }
    }
    let mut dirs = HashMap::new();
    for op in &spec.operations {
        for f in &op.request {
            mark(spec, &f.ty, Dir::INPUT, &mut dirs);
        }
        mark(spec, &op.result, Dir::OUTPUT, &mut dirs);
    }
    // A type no operation reaches travels both ways, and so does what it holds.
    for def in &spec.types {
        if !dirs.contains_key(&def.name.wire) {
            mark(spec, &TypeRef::Named(def.name.clone()), Dir::BOTH, &mut dirs);
        }
    }
    dirs
}

/// How a type expression relates to the one it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    /// Written the same way.
    Same,
    /// Written differently, the same values (an alias spelt out, a renamed type of the
    /// same shape).
    Equivalent,
    /// Takes every value the old one took, and more.
    Widened,
    /// Takes only some of the values the old one took.
    Narrowed,
    /// Neither: some old values are refused and some new ones are not understood.
    Changed,
}

/// How a string's constraints relate: more `min_length` or a new `pattern` narrow it, less
/// or a dropped `pattern` widen it, another `pattern` changes it.
fn constraint_relation(old: &Constraints, new: &Constraints) -> Relation {
    use std::cmp::Ordering::*;
    let length = match new.min_length.unwrap_or(0).cmp(&old.min_length.unwrap_or(0)) {
        Greater => Relation::Narrowed,
        Less => Relation::Widened,
        Equal => Relation::Same,
    };
    let pattern = match (&old.pattern, &new.pattern) {
        (a, b) if a == b => Relation::Same,
        (None, Some(_)) => Relation::Narrowed,
        (Some(_), None) => Relation::Widened,
        _ => Relation::Changed,
    };
    combine(length, pattern)
}

/// Two relations of one thing, taken together.
fn combine(a: Relation, b: Relation) -> Relation {
    match (a, b) {
        (Relation::Same, other) | (other, Relation::Same) => other,
        (a, b) if a == b => a,
        _ => Relation::Changed,
    }
}

/// How the keys a struct refuses relate: refusing unknown keys narrows it, taking the
/// pass-through keys again widens it.
fn refusal_relation(old: &TypeDef, new: &TypeDef) -> Relation {
    let takes = |t: &TypeDef| (!t.refuses_unknown, !t.refuses_unknown || t.passthrough);
    let (old_all, old_pass) = takes(old);
    let (new_all, new_pass) = takes(new);
    let rel = |o: bool, n: bool| match (o, n) {
        (true, false) => Relation::Narrowed,
        (false, true) => Relation::Widened,
        _ => Relation::Same,
    };
    combine(rel(old_all, new_all), rel(old_pass, new_pass))
}

/// How long an alias chain may be before it is taken for a cycle.
const ALIAS_DEPTH: usize = 64;

/// Follows aliases; `None` on a cycle.
fn resolve<'a>(spec: &'a ApiSpec, mut ty: &'a TypeRef) -> Option<&'a TypeRef> {
    for _ in 0..ALIAS_DEPTH {
        match ty {
            TypeRef::Named(n) => match spec.type_named(&n.wire).map(|d| &d.kind) {
                Some(TypeKind::Alias(target)) => ty = target,
                _ => return Some(ty),
            },
            _ => return Some(ty),
        }
    }
    None
}

/// The definition a (resolved) type names.
fn named<'a>(spec: &'a ApiSpec, ty: &TypeRef) -> Option<&'a TypeDef> {
    match ty {
        TypeRef::Named(n) => spec.type_named(&n.wire),
        _ => None,
    }
}

/// How many comparisons one [`relation`] may make before it gives up ("changed"): types
/// recurse through unions, lists and maps, and this bounds the work on any spec.
const STEP_BUDGET: usize = 10_000;

/// How deep one comparison may nest (types within types) before it gives up ("changed").
const MAX_NESTING: usize = 128;

/// The state of one comparison: the pairs of named types being compared (a pair met again
/// inside itself is assumed to fit, as recursive types are compared), and the steps left.
struct Fit<'s> {
    sa: &'s ApiSpec,
    sb: &'s ApiSpec,
    open: Vec<(String, String)>,
    steps: usize,
    depth: usize,
}

impl Fit<'_> {
    /// Whether every JSON value that `a` (of spec `sa`) takes, `b` (of spec `sb`) takes
    /// too, without loss. Same-named types are taken to fit (their own changes are
    /// reported where they are declared); unknown cases, an alias cycle, an exhausted
    /// budget and too deep a nesting are `false`, so a doubt is reported as breaking.
    fn fits(&mut self, a: &TypeRef, b: &TypeRef) -> bool {
        if self.steps == 0 || self.depth >= MAX_NESTING {
            return false;
        }
        self.steps -= 1;
        self.depth += 1;
        let fits = self.fits_named(a, b);
        self.depth -= 1;
        fits
    }

    fn fits_named(&mut self, a: &TypeRef, b: &TypeRef) -> bool {
        let (sa, sb) = (self.sa, self.sb);
        if let (TypeRef::Named(x), TypeRef::Named(y)) = (a, b) {
            if x.wire == y.wire {
                return true;
            }
        }
        let (Some(ra), Some(rb)) = (resolve(sa, a), resolve(sb, b)) else {
            return false;
        };
        if let (TypeRef::Named(x), TypeRef::Named(y)) = (ra, rb) {
            if x.wire == y.wire {
                return true;
            }
        }
        let (da, db) = (named(sa, ra), named(sb, rb));
        let recursive = matches!(da.map(|d| &d.kind), Some(TypeKind::Union(_)))
            || matches!(db.map(|d| &d.kind), Some(TypeKind::Union(_)));
        let pair = (ra.to_string(), rb.to_string());
        if recursive {
            if self.open.contains(&pair) {
                return true;
            }
            self.open.push(pair);
        }
        let fits = self.fits_resolved(ra, da, rb, db);
        if recursive {
            self.open.pop();
        }
        fits
    }

    fn fits_resolved(
        &mut self,
        ra: &TypeRef,
        da: Option<&TypeDef>,
        rb: &TypeRef,
        db: Option<&TypeDef>,
    ) -> bool {
        // A union on the right takes a value when one of its variants does.
        if let Some(TypeKind::Union(variants)) = db.map(|d| &d.kind) {
            if variants.iter().any(|v| self.fits(ra, &v.ty)) {
                return true;
            }
        }
        // A union on the left fits when each of its variants does.
        if let Some(TypeKind::Union(variants)) = da.map(|d| &d.kind) {
            return variants.iter().all(|v| self.fits(&v.ty, rb));
        }
        match (ra, rb) {
            (_, TypeRef::Json) => true,
            (TypeRef::String, TypeRef::String)
            | (TypeRef::Bool, TypeRef::Bool)
            | (TypeRef::U64, TypeRef::U64)
            | (TypeRef::I64, TypeRef::I64)
            | (TypeRef::F64, TypeRef::F64)
            | (TypeRef::Number, TypeRef::Number)
            | (TypeRef::Object, TypeRef::Object)
            | (TypeRef::U64 | TypeRef::I64 | TypeRef::F64, TypeRef::Number)
            | (TypeRef::Map(_), TypeRef::Object) => true,
            (TypeRef::Object, TypeRef::Map(inner)) => self.fits(&TypeRef::Json, inner),
            (TypeRef::List(x), TypeRef::List(y)) | (TypeRef::Map(x), TypeRef::Map(y)) => self.fits(x, y),
            (TypeRef::Named(_), TypeRef::Object) => {
                matches!(da.map(|d| &d.kind), Some(TypeKind::Struct { .. }))
            }
            (TypeRef::Named(_), TypeRef::String) => matches!(da.map(|d| &d.kind), Some(TypeKind::Enum(_))),
            (TypeRef::Named(_), TypeRef::Named(_)) => match (da.map(|d| &d.kind), db.map(|d| &d.kind)) {
                (Some(TypeKind::Enum(x)), Some(TypeKind::Enum(y))) => {
                    x.iter().all(|v| y.iter().any(|w| w.wire == v.wire))
                }
                (Some(x @ TypeKind::Struct { .. }), Some(y @ TypeKind::Struct { .. })) => {
                    shape(x) == shape(y)
                }
                _ => false,
            },
            _ => false,
        }
    }
}

/// Whether every value `a` (of `sa`) takes, `b` (of `sb`) takes.
fn fits(a: &TypeRef, sa: &ApiSpec, b: &TypeRef, sb: &ApiSpec) -> bool {
    Fit {
        sa,
        sb,
        open: Vec::new(),
        steps: STEP_BUDGET,
        depth: 0,
    }
    .fits(a, b)
}

/// How `b` (new) relates to `a` (old).
fn relation(a: &TypeRef, sa: &ApiSpec, b: &TypeRef, sb: &ApiSpec) -> Relation {
    if a.to_string() == b.to_string() {
        return Relation::Same;
    }
    match (fits(a, sa, b, sb), fits(b, sb, a, sa)) {
        (true, true) => Relation::Equivalent,
        (true, false) => Relation::Widened,
        (false, true) => Relation::Narrowed,
        (false, false) => Relation::Changed,
    }
}

/// A serializable IR value without positions, descriptions and decisions: what its shape
/// is, to tell a rename (same shape, another name) from a new thing.
fn shape<T: serde::Serialize>(value: &T) -> Value {
    fn strip(v: Value) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "pos" | "description" | "decision"))
                    .map(|(k, v)| (k, strip(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.into_iter().map(strip).collect()),
            other => other,
        }
    }
    strip(serde_json::to_value(value).unwrap_or(Value::Null))
}

/// The hint appended to a removal when an addition of the same shape looks like its new
/// name.
fn rename_hint(what: &str, to: Option<&str>) -> String {
    match to {
        Some(to) => format!(
            " (`{to}` was added with the same shape: a rename is a removal plus an addition, so the old {what} is gone for existing clients)"
        ),
        None => String::new(),
    }
}

/// The registry being compared: errors or warnings.
struct IdKinds {
    what: &'static str,
    added: ChangeKind,
    removed: ChangeKind,
    status: ChangeKind,
}

impl IdKinds {
    const ERRORS: IdKinds = IdKinds {
        what: "error id",
        added: ChangeKind::ErrorAdded,
        removed: ChangeKind::ErrorRemoved,
        status: ChangeKind::ErrorStatusChanged,
    };
    const WARNINGS: IdKinds = IdKinds {
        what: "warning id",
        added: ChangeKind::WarningAdded,
        removed: ChangeKind::WarningRemoved,
        status: ChangeKind::WarningStatusChanged,
    };
}

/// What owns a list of fields: a struct type or an operation's request.
struct Owner<'a> {
    /// `` `Record` `` or `` the request of `select` ``.
    label: String,
    old_pos: Option<Pos>,
    new_pos: Option<Pos>,
    dir: Dir,
    /// Whether the new owner keeps unknown keys (a field added to an open result is
    /// kept in `extra` by old clients).
    new_open: bool,
    old: &'a [Field],
    new: &'a [Field],
}

struct Differ<'a> {
    old: &'a ApiSpec,
    new: &'a ApiSpec,
    old_dirs: HashMap<String, Dir>,
    new_dirs: HashMap<String, Dir>,
    changes: Vec<Change>,
}

impl<'a> Differ<'a> {
    fn push(
        &mut self,
        kind: ChangeKind,
        severity: Severity,
        old_span: Option<Pos>,
        new_span: Option<Pos>,
        message: String,
    ) {
        self.changes.push(Change {
            kind,
            severity,
            old_span,
            new_span,
            message,
        });
    }

    /// A judged change: `why` (who it breaks) is appended to a breaking message.
    fn judged(
        &mut self,
        kind: ChangeKind,
        (severity, why): (Severity, String),
        spans: (Option<Pos>, Option<Pos>),
        message: String,
    ) {
        let message = if why.is_empty() {
            message
        } else {
            format!("{message}: {why}")
        };
        self.push(kind, severity, spans.0, spans.1, message);
    }

    fn described(&mut self, what: &str, old: (&str, Option<Pos>), new: (&str, Option<Pos>)) {
        if old.0 != new.0 {
            self.push(
                ChangeKind::DescriptionChanged,
                Severity::Compatible,
                old.1,
                new.1,
                format!("the description of {what} changed"),
            );
        }
    }

    fn decided(
        &mut self,
        what: &str,
        old: (&Option<String>, Option<Pos>),
        new: (&Option<String>, Option<Pos>),
    ) {
        if old.0 != new.0 {
            let show = |d: &Option<String>| d.clone().unwrap_or_else(|| "none".into());
            self.push(
                ChangeKind::DecisionChanged,
                Severity::Compatible,
                old.1,
                new.1,
                format!(
                    "the decision of {what} changed from {} to {}",
                    show(old.0),
                    show(new.0)
                ),
            );
        }
    }

    fn spec(&mut self) {
        if self.old.version != self.new.version {
            self.push(
                ChangeKind::VersionChanged,
                Severity::Compatible,
                None,
                None,
                format!(
                    "the spec version changed from `{}` to `{}`",
                    self.old.version, self.new.version
                ),
            );
        }
        let (old, new) = (self.old, self.new);
        self.described("the spec", (&old.description, None), (&new.description, None));
    }

    fn dir_of(&self, name: &str) -> Dir {
        let old = self.old_dirs.get(name).copied().unwrap_or_default();
        let new = self.new_dirs.get(name).copied().unwrap_or_default();
        old.union(new)
    }

    fn types(&mut self) {
        let (old, new) = (self.old, self.new);
        for def in &old.types {
            match new.type_named(&def.name.wire) {
                Some(now) => self.type_def(def, now),
                None => {
                    let to = new
                        .types
                        .iter()
                        .filter(|t| old.type_named(&t.name.wire).is_none())
                        .find(|t| shape(&t.kind) == shape(&def.kind))
                        .map(|t| t.name.wire.as_str());
                    self.push(
                        ChangeKind::TypeRemoved,
                        Severity::Breaking,
                        def.name.pos,
                        None,
                        format!("type `{}` was removed{}", def.name.wire, rename_hint("name", to)),
                    );
                }
            }
        }
        for def in &new.types {
            if old.type_named(&def.name.wire).is_none() {
                self.push(
                    ChangeKind::TypeAdded,
                    Severity::Compatible,
                    None,
                    def.name.pos,
                    format!("type `{}` was added", def.name.wire),
                );
            }
        }
    }

    fn type_def(&mut self, old: &TypeDef, new: &TypeDef) {
        let name = &old.name.wire;
        let spans = (old.name.pos, new.name.pos);
        let dir = self.dir_of(name);
        self.described(
            &format!("type `{name}`"),
            (&old.description, spans.0),
            (&new.description, spans.1),
        );
        self.decided(
            &format!("type `{name}`"),
            (&old.decision, spans.0),
            (&new.decision, spans.1),
        );
        match (&old.kind, &new.kind) {
            (
                TypeKind::Struct {
                    fields: old_fields,
                    open: old_open,
                },
                TypeKind::Struct {
                    fields: new_fields,
                    open: new_open,
                },
            ) => {
                if old_open != new_open {
                    let (kind, verdict, message) = if *new_open {
                        (
                            ChangeKind::StructOpened,
                            dir.judge(
                                None,
                                Some("a server may now pass keys it does not declare, which old clients refuse (closed structs refuse unknown keys)"),
                            ),
                            format!("struct `{name}` became open"),
                        )
                    } else {
                        (
                            ChangeKind::StructClosed,
                            dir.judge(
                                Some("keys it used to keep are now refused when old clients send them"),
                                None,
                            ),
                            format!("struct `{name}` became closed"),
                        )
                    };
                    self.judged(kind, verdict, spans, message);
                }
                self.retyped(
                    ChangeKind::ConstraintsChanged,
                    refusal_relation(old, new),
                    dir,
                    spans,
                    format!("the keys struct `{name}` refuses changed (`refuses_unknown`, `passthrough`)"),
                );
                self.fields(Owner {
                    label: format!("`{name}`"),
                    old_pos: spans.0,
                    new_pos: spans.1,
                    dir,
                    new_open: *new_open,
                    old: old_fields,
                    new: new_fields,
                });
            }
            (TypeKind::Alias(a), TypeKind::Alias(b)) => {
                let relation = relation(a, self.old, b, self.new);
                self.retyped(
                    ChangeKind::AliasChanged,
                    relation,
                    dir,
                    spans,
                    format!("alias `{name}` changed from `{a}` to `{b}`"),
                );
                self.retyped(
                    ChangeKind::ConstraintsChanged,
                    constraint_relation(&old.constraints, &new.constraints),
                    dir,
                    spans,
                    format!("the constraints of alias `{name}` changed (`min_length`, `pattern`)"),
                );
            }
            (TypeKind::Enum(a), TypeKind::Enum(b)) => {
                for value in a {
                    if !b.iter().any(|v| v.wire == value.wire) {
                        let verdict = dir.judge(Some("old clients that send it are refused"), None);
                        self.judged(
                            ChangeKind::EnumValueRemoved,
                            verdict,
                            (value.pos, spans.1),
                            format!(
                                "value `{}` of enum `{name}` was removed (the enum narrowed)",
                                value.wire
                            ),
                        );
                    }
                }
                for value in b {
                    if !a.iter().any(|v| v.wire == value.wire) {
                        let verdict = dir.judge(None, Some("old clients refuse it when a server sends it"));
                        self.judged(
                            ChangeKind::EnumValueAdded,
                            verdict,
                            (spans.0, value.pos),
                            format!(
                                "value `{}` was added to enum `{name}` (the enum widened)",
                                value.wire
                            ),
                        );
                    }
                }
            }
            (TypeKind::Union(a), TypeKind::Union(b)) => self.variants(name, spans, dir, a, b),
            (a, b) => {
                let kind_name = |k: &TypeKind| match k {
                    TypeKind::Struct { .. } => "struct",
                    TypeKind::Alias(_) => "alias",
                    TypeKind::Enum(_) => "enum",
                    TypeKind::Union(_) => "union",
                };
                self.push(
                    ChangeKind::TypeKindChanged,
                    Severity::Breaking,
                    spans.0,
                    spans.1,
                    format!(
                        "type `{name}` changed from {} to {}: its values and its generated type change",
                        kind_name(a),
                        kind_name(b)
                    ),
                );
            }
        }
    }

    fn variants(
        &mut self,
        name: &str,
        spans: (Option<Pos>, Option<Pos>),
        dir: Dir,
        a: &[Variant],
        b: &[Variant],
    ) {
        for old in a {
            match b.iter().find(|v| v.name.wire == old.name.wire) {
                Some(new) => {
                    let what = format!("variant `{}` of `{name}`", old.name.wire);
                    let here = (old.name.pos, new.name.pos);
                    self.described(&what, (&old.description, here.0), (&new.description, here.1));
                    let relation = relation(&old.ty, self.old, &new.ty, self.new);
                    self.retyped(
                        ChangeKind::VariantTypeChanged,
                        relation,
                        dir,
                        here,
                        format!("the type of {what} changed from `{}` to `{}`", old.ty, new.ty),
                    );
                }
                None => {
                    let verdict = dir.judge(
                        Some("old clients that send a value of its shape are refused"),
                        None,
                    );
                    self.judged(
                        ChangeKind::VariantRemoved,
                        verdict,
                        (old.name.pos, spans.1),
                        format!("variant `{}` of union `{name}` was removed", old.name.wire),
                    );
                }
            }
        }
        for new in b {
            if !a.iter().any(|v| v.name.wire == new.name.wire) {
                let verdict = dir.judge(
                    None,
                    Some("old clients refuse a value of its shape when a server sends one"),
                );
                self.judged(
                    ChangeKind::VariantAdded,
                    verdict,
                    (spans.0, new.name.pos),
                    format!("variant `{}` was added to union `{name}`", new.name.wire),
                );
            }
        }
    }

    /// A changed type expression, judged by its relation and direction.
    fn retyped(
        &mut self,
        kind: ChangeKind,
        relation: Relation,
        dir: Dir,
        spans: (Option<Pos>, Option<Pos>),
        message: String,
    ) {
        let (what, input, output) = match relation {
            Relation::Same => return,
            Relation::Equivalent => ("the same values", None, None),
            Relation::Widened => (
                "widened",
                None,
                Some("a server may now send values old clients refuse"),
            ),
            Relation::Narrowed => (
                "narrowed",
                Some("values old clients send may now be refused"),
                None,
            ),
            Relation::Changed => (
                "changed",
                Some("values old clients send may now be refused"),
                Some("a server may now send values old clients refuse"),
            ),
        };
        let verdict = dir.judge(input, output);
        self.judged(kind, verdict, spans, format!("{message} ({what})"));
    }

    fn fields(&mut self, owner: Owner<'_>) {
        let dir = owner.dir;
        let label = &owner.label;
        for old in owner.old {
            let Some(new) = owner.new.iter().find(|f| f.name.wire == old.name.wire) else {
                let to = owner
                    .new
                    .iter()
                    .filter(|f| !owner.old.iter().any(|o| o.name.wire == f.name.wire))
                    .find(|f| shape(*f).get("ty") == shape(old).get("ty"))
                    .map(|f| f.name.wire.as_str());
                self.push(
                    ChangeKind::FieldRemoved,
                    Severity::Breaking,
                    old.name.pos,
                    owner.new_pos,
                    format!(
                        "field `{}` of {label} was removed{}",
                        old.name.wire,
                        rename_hint("field", to)
                    ),
                );
                continue;
            };
            let what = format!("field `{}` of {label}", old.name.wire);
            let spans = (old.name.pos, new.name.pos);
            self.described(&what, (&old.description, spans.0), (&new.description, spans.1));
            self.decided(&what, (&old.decision, spans.0), (&new.decision, spans.1));
            if old.optional && !new.optional {
                let verdict = dir.judge(Some("old clients that leave it out are refused"), None);
                self.judged(
                    ChangeKind::FieldMadeRequired,
                    verdict,
                    spans,
                    format!("{what} was made required"),
                );
            } else if !old.optional && new.optional {
                let verdict = dir.judge(
                    None,
                    Some("old clients that need it fail when a server leaves it out"),
                );
                self.judged(
                    ChangeKind::FieldMadeOptional,
                    verdict,
                    spans,
                    format!("{what} was made optional"),
                );
            } else if old.optional && new.optional && old.nullable != new.nullable {
                if new.nullable {
                    self.push(
                        ChangeKind::FieldMadeNullable,
                        Severity::Compatible,
                        spans.0,
                        spans.1,
                        format!("{what} was made nullable (`null` now reads as absent)"),
                    );
                } else {
                    let verdict = dir.judge(Some("old clients that send `null` for it are refused"), None);
                    self.judged(
                        ChangeKind::FieldMadeNonNullable,
                        verdict,
                        spans,
                        format!("{what} was made non-nullable"),
                    );
                }
            }
            let relation = relation(&old.ty, self.old, &new.ty, self.new);
            self.retyped(
                ChangeKind::FieldTypeChanged,
                relation,
                dir,
                spans,
                format!("the type of {what} changed from `{}` to `{}`", old.ty, new.ty),
            );
            self.retyped(
                ChangeKind::ConstraintsChanged,
                constraint_relation(&old.constraints, &new.constraints),
                dir,
                spans,
                format!("the constraints of {what} changed (`min_length`, `pattern`)"),
            );
        }
        for new in owner.new {
            if owner.old.iter().any(|f| f.name.wire == new.name.wire) {
                continue;
            }
            let input = (!new.optional).then_some("old clients do not send it and are refused");
            let output = (!owner.new_open).then_some(
                "old clients refuse the unknown key when a server sends it (closed structs refuse unknown keys; make the struct `open: true` to grow it)",
            );
            let verdict = dir.judge(input, output);
            let required = if new.optional { "optional" } else { "required" };
            self.judged(
                ChangeKind::FieldAdded,
                verdict,
                (owner.old_pos, new.name.pos),
                format!("{required} field `{}` was added to {label}", new.name.wire),
            );
        }
    }

    fn ids(&mut self, old: &[ErrorDef], new: &[ErrorDef], kinds: IdKinds) {
        let what = kinds.what;
        for def in old {
            let id = &def.id.wire;
            match new.iter().find(|e| &e.id.wire == id) {
                Some(now) => {
                    let spans = (def.id.pos, now.id.pos);
                    if def.status != now.status {
                        self.push(
                            kinds.status,
                            Severity::Breaking,
                            spans.0,
                            spans.1,
                            format!(
                                "{what} `{id}` changed status from {} to {}: clients that act on the HTTP status see another one",
                                def.status, now.status
                            ),
                        );
                    }
                    if def.documented != now.documented {
                        self.push(
                            ChangeKind::ErrorDocumentedChanged,
                            Severity::Compatible,
                            spans.0,
                            spans.1,
                            format!("{what} `{id}` changed `documented` to {}", now.documented),
                        );
                    }
                    self.described(
                        &format!("{what} `{id}`"),
                        (&def.description, spans.0),
                        (&now.description, spans.1),
                    );
                }
                None => {
                    let to = new
                        .iter()
                        .filter(|e| !old.iter().any(|o| o.id.wire == e.id.wire))
                        .find(|e| e.status == def.status && e.description == def.description)
                        .map(|e| e.id.wire.as_str());
                    self.push(
                        kinds.removed,
                        Severity::Breaking,
                        def.id.pos,
                        None,
                        format!(
                            "{what} `{id}` was removed: clients that match on it never see it again and its generated id is gone{}",
                            rename_hint(what, to)
                        ),
                    );
                }
            }
        }
        for def in new {
            if !old.iter().any(|e| e.id.wire == def.id.wire) {
                self.push(
                    kinds.added,
                    Severity::Compatible,
                    None,
                    def.id.pos,
                    format!("{what} `{}` was added", def.id.wire),
                );
            }
        }
    }

    fn operations(&mut self) {
        let (old, new) = (self.old, self.new);
        let find = |spec: &'a ApiSpec, name: &str| spec.operations.iter().find(|o| o.name.wire == name);
        for op in &old.operations {
            match find(new, &op.name.wire) {
                Some(now) => self.operation(op, now),
                None => {
                    let same = |o: &Operation| {
                        shape(&o.request) == shape(&op.request) && shape(&o.result) == shape(&op.result)
                    };
                    let to = new
                        .operations
                        .iter()
                        .filter(|o| find(old, &o.name.wire).is_none())
                        .find(|o| same(o))
                        .map(|o| o.name.wire.as_str());
                    self.push(
                        ChangeKind::OperationRemoved,
                        Severity::Breaking,
                        op.name.pos,
                        None,
                        format!(
                            "operation `{}` was removed: old clients that call it are refused{}",
                            op.name.wire,
                            rename_hint("operation", to)
                        ),
                    );
                }
            }
        }
        for op in &new.operations {
            if find(old, &op.name.wire).is_none() {
                self.push(
                    ChangeKind::OperationAdded,
                    Severity::Compatible,
                    None,
                    op.name.pos,
                    format!("operation `{}` was added", op.name.wire),
                );
            }
        }
    }

    fn operation(&mut self, old: &Operation, new: &Operation) {
        let name = &old.name.wire;
        let spans = (old.name.pos, new.name.pos);
        let what = format!("operation `{name}`");
        self.described(&what, (&old.description, spans.0), (&new.description, spans.1));
        self.decided(&what, (&old.decision, spans.0), (&new.decision, spans.1));
        let (old_route, new_route) = (ApiSpec::route_of(old), ApiSpec::route_of(new));
        if old_route != new_route {
            let route_pos = |op: &Operation| match &op.kind {
                OpKind::Method { route } => route.pos.or(op.name.pos),
                OpKind::Q0 => op.name.pos,
            };
            self.push(
                ChangeKind::RouteChanged,
                Severity::Breaking,
                route_pos(old),
                route_pos(new),
                format!(
                    "{what} moved from `POST {old_route}` to `POST {new_route}`: old clients post to the old route"
                ),
            );
        }
        let names = |op: &Operation| op.requires_any.iter().map(|n| n.wire.clone()).collect::<Vec<_>>();
        let (old_any, new_any) = (names(old), names(new));
        let needs = match (old_any.is_empty(), new_any.is_empty()) {
            _ if old_any == new_any => Relation::Same,
            (true, false) => Relation::Narrowed,
            (false, true) => Relation::Widened,
            _ if new_any.iter().all(|n| old_any.contains(n)) => Relation::Narrowed,
            _ if old_any.iter().all(|n| new_any.contains(n)) => Relation::Widened,
            _ => Relation::Changed,
        };
        self.retyped(
            ChangeKind::ConstraintsChanged,
            needs,
            Dir::INPUT,
            spans,
            format!("the `requires_any` of {what} changed from {old_any:?} to {new_any:?}"),
        );
        if old.writes != new.writes {
            let (severity, message) = if new.writes {
                (
                    Severity::Breaking,
                    format!("{what} now writes: it is refused on read-only connections, where old clients could call it"),
                )
            } else {
                (Severity::Compatible, format!("{what} no longer writes"))
            };
            self.push(ChangeKind::WritesChanged, severity, spans.0, spans.1, message);
        }
        self.fields(Owner {
            label: format!("the request of `{name}`"),
            old_pos: spans.0,
            new_pos: spans.1,
            dir: Dir::INPUT,
            new_open: false,
            old: &old.request,
            new: &new.request,
        });
        let relation = relation(&old.result, self.old, &new.result, self.new);
        self.retyped(
            ChangeKind::ResultTypeChanged,
            relation,
            Dir::OUTPUT,
            spans,
            format!(
                "the result of {what} changed from `{}` to `{}`",
                old.result, new.result
            ),
        );
        let listed = |list: &[Name], id: &str| list.iter().any(|n| n.wire == id);
        for id in &old.errors {
            if !listed(&new.errors, &id.wire) {
                self.push(
                    ChangeKind::OperationErrorRemoved,
                    Severity::Compatible,
                    id.pos,
                    spans.1,
                    format!("{what} no longer lists error id `{}`", id.wire),
                );
            }
        }
        for id in &new.errors {
            if !listed(&old.errors, &id.wire) {
                self.push(
                    ChangeKind::OperationErrorAdded,
                    Severity::Compatible,
                    spans.0,
                    id.pos,
                    format!(
                        "{what} may now answer error id `{}` (clients handle ids they do not know as failures)",
                        id.wire
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_str;

    /// A small spec: `Query` travels only in requests, `Thing` only in results, `Both` both
    /// ways.
    const BASE: &str = r#"spec: t
version: 1.0.0
description: A test API.
types:
  Pk: {kind: alias, type: string, description: A pk.}
  Colour: {kind: enum, values: [red, green], description: A colour asked for.}
  Shade: {kind: enum, values: [light, dark], description: A shade answered.}
  Query:
    kind: struct
    description: What to look for.
    fields:
      name: {type: string, description: The name.}
      colour: {type: Colour, optional: true, description: The colour.}
  Thing:
    kind: struct
    description: A thing.
    fields:
      pk: {type: Pk, description: Its pk.}
      size: {type: u64, optional: true, description: Its size.}
      shade: {type: Shade, optional: true, description: Its shade.}
  Both:
    kind: struct
    description: Sent and answered.
    fields:
      note: {type: string, description: A note.}
  OneOrMany:
    kind: union
    description: One name or several.
    variants:
      one: {type: string, description: One.}
errors:
  invalid_request: {status: 400, description: Malformed.}
  request-too-large: {status: 413, description: Too large.}
  action-not-supported: {status: 501, description: Not supported.}
  thing-not-found: {status: 404, description: No such thing.}
operations:
  get:
    kind: method
    route: /get
    description: Gets a thing.
    request:
      pk: {type: Pk, description: Which thing.}
      limit: {type: number, optional: true, description: At most this many.}
      count: {type: u64, optional: true, description: How many.}
      tx: {type: string, nullable: true, description: A transaction.}
      names: {type: OneOrMany, optional: true, description: Names.}
    result: Thing
    errors: [invalid_request, thing-not-found]
  find:
    kind: q0
    description: Finds things.
    request:
      query: {type: Query, description: What to find.}
      both: {type: Both, optional: true, description: Both ways.}
    result: Both
    errors: [invalid_request]
"#;

    fn load(text: &str) -> ApiSpec {
        match load_str(text) {
            Ok(spec) => spec,
            Err(d) => panic!("{}", crate::render_all(&d, "test.yaml", text)),
        }
    }

    /// BASE with each `(from, to)` replaced (each `from` must occur exactly once).
    fn edited(edits: &[(&str, &str)]) -> String {
        let mut text = BASE.to_owned();
        for (from, to) in edits {
            assert_eq!(text.matches(from).count(), 1, "`{from}` occurs once");
            text = text.replace(from, to);
        }
        text
    }

    fn changes(edits: &[(&str, &str)]) -> Vec<Change> {
        diff(&load(BASE), &load(&edited(edits)))
    }

    /// The only change of `kind` (there must be exactly one).
    fn only(changes: &[Change], kind: ChangeKind) -> Change {
        let found: Vec<&Change> = changes.iter().filter(|c| c.kind == kind).collect();
        assert_eq!(found.len(), 1, "one {kind:?} in {changes:#?}");
        found[0].clone()
    }

    /// Where `needle` first starts in `text`, after `after` when given.
    fn at(text: &str, after: &str, needle: &str) -> Option<Pos> {
        let from = text.find(after).expect("anchor present");
        let offset = from + text[from..].find(needle).expect("needle present");
        let before = &text[..offset];
        let line = before.matches('\n').count() as u32 + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() as u32 + 1;
        Some(Pos { line, column })
    }

    #[test]
    fn equal_specs_and_the_shipped_spec_against_itself_differ_in_nothing() {
        assert_eq!(changes(&[]), vec![]);
        let shipped = load(crate::MIKOBASE_YAML);
        assert_eq!(diff(&shipped, &shipped), vec![]);
        // Positions alone (the same spec reformatted) are no change either.
        let moved = format!("# a comment\n\n{}", crate::MIKOBASE_YAML);
        assert_eq!(diff(&shipped, &load(&moved)), vec![]);
    }

    #[test]
    fn a_removed_type_is_breaking_and_a_rename_says_so() {
        let new = edited(&[
            ("  Both:\n", "  Pair:\n"),
            ("    result: Both\n", "    result: Pair\n"),
            ("both: {type: Both,", "both: {type: Pair,"),
        ]);
        let found = diff(&load(BASE), &load(&new));
        let removed = only(&found, ChangeKind::TypeRemoved);
        assert!(removed.is_breaking());
        assert_eq!(removed.old_span, at(BASE, "types:", "Both:"));
        assert_eq!(removed.new_span, None);
        assert!(
            removed.message.contains("`Pair` was added with the same shape"),
            "{}",
            removed.message
        );
        assert!(removed.message.contains("a rename is a removal plus an addition"));
        let added = only(&found, ChangeKind::TypeAdded);
        assert_eq!(added.severity, Severity::Compatible);
        assert_eq!(added.new_span, at(&new, "types:", "Pair:"));
        // The references now name a type of the same shape: the same values.
        let result = only(&found, ChangeKind::ResultTypeChanged);
        assert_eq!(result.severity, Severity::Compatible, "{}", result.message);
        assert!(result.message.contains("the same values"));
    }

    #[test]
    fn a_removed_or_renamed_operation_is_breaking_an_added_one_compatible() {
        let found = changes(&[("  find:\n", "  search:\n")]);
        let removed = only(&found, ChangeKind::OperationRemoved);
        assert!(removed.is_breaking());
        assert!(
            removed.message.contains("`search` was added with the same shape"),
            "{}",
            removed.message
        );
        assert_eq!(removed.old_span, at(BASE, "operations:", "find:"));
        let added = only(&found, ChangeKind::OperationAdded);
        assert_eq!(added.severity, Severity::Compatible);
        assert_eq!(found.len(), 2, "{found:#?}");
    }

    #[test]
    fn a_request_field_made_required_is_breaking_made_optional_compatible() {
        let found = changes(&[("limit: {type: number, optional: true,", "limit: {type: number,")]);
        let c = only(&found, ChangeKind::FieldMadeRequired);
        assert!(c.is_breaking(), "{}", c.message);
        assert_eq!(c.old_span, at(BASE, "operations:", "limit:"));
        let found = changes(&[(
            "pk: {type: Pk, description: Which thing.}",
            "pk: {type: Pk, optional: true, description: Which thing.}",
        )]);
        assert_eq!(
            only(&found, ChangeKind::FieldMadeOptional).severity,
            Severity::Compatible
        );
    }

    #[test]
    fn a_result_field_made_optional_is_breaking_made_required_compatible() {
        let found = changes(&[(
            "pk: {type: Pk, description: Its pk.}",
            "pk: {type: Pk, optional: true, description: Its pk.}",
        )]);
        let c = only(&found, ChangeKind::FieldMadeOptional);
        assert!(c.is_breaking(), "{}", c.message);
        assert!(c.message.contains("old clients that need it"));
        let found = changes(&[("size: {type: u64, optional: true,", "size: {type: u64,")]);
        assert_eq!(
            only(&found, ChangeKind::FieldMadeRequired).severity,
            Severity::Compatible
        );
    }

    #[test]
    fn a_new_required_request_field_is_breaking_a_new_optional_one_compatible() {
        let required = "      extra: {type: string, description: New.}\n    result: Thing\n";
        let found = changes(&[("    result: Thing\n", required)]);
        let c = only(&found, ChangeKind::FieldAdded);
        assert!(c.is_breaking());
        assert!(
            c.message
                .contains("required field `extra` was added to the request of `get`"),
            "{}",
            c.message
        );
        assert_eq!(c.old_span, at(BASE, "operations:", "get:"));
        let optional = "      extra: {type: string, optional: true, description: New.}\n    result: Thing\n";
        let found = changes(&[("    result: Thing\n", optional)]);
        assert_eq!(
            only(&found, ChangeKind::FieldAdded).severity,
            Severity::Compatible
        );
    }

    #[test]
    fn a_field_added_to_a_closed_result_struct_is_breaking_to_an_open_one_compatible() {
        let add = "      shade: {type: Shade, optional: true, description: Its shade.}\n      colour: {type: string, optional: true, description: New.}\n";
        let from = "      shade: {type: Shade, optional: true, description: Its shade.}\n";
        let found = changes(&[(from, add)]);
        let c = only(&found, ChangeKind::FieldAdded);
        assert!(c.is_breaking());
        assert!(
            c.message.contains("closed structs refuse unknown keys"),
            "{}",
            c.message
        );
        let found = changes(&[
            (from, add),
            (
                "    description: A thing.\n",
                "    description: A thing.\n    open: true\n",
            ),
        ]);
        assert_eq!(
            only(&found, ChangeKind::FieldAdded).severity,
            Severity::Compatible
        );
        // Opening a result struct is itself breaking (a server may pass unknown keys).
        assert!(only(&found, ChangeKind::StructOpened).is_breaking());
        // And an optional field added to a request-only struct is compatible.
        let found = changes(&[(
            "      colour: {type: Colour, optional: true, description: The colour.}\n",
            "      colour: {type: Colour, optional: true, description: The colour.}\n      more: {type: bool, optional: true, description: More.}\n",
        )]);
        assert_eq!(
            only(&found, ChangeKind::FieldAdded).severity,
            Severity::Compatible
        );
    }

    #[test]
    fn a_removed_field_is_breaking_and_a_rename_says_so() {
        let found = changes(&[("count: {type: u64,", "total: {type: u64,")]);
        let c = only(&found, ChangeKind::FieldRemoved);
        assert!(c.is_breaking());
        assert!(
            c.message.contains("`total` was added with the same shape"),
            "{}",
            c.message
        );
        assert_eq!(c.old_span, at(BASE, "operations:", "count:"));
        assert_eq!(c.new_span, at(BASE, "operations:", "get:"));
        assert_eq!(
            only(&found, ChangeKind::FieldAdded).severity,
            Severity::Compatible
        );
    }

    #[test]
    fn a_request_field_narrowed_is_breaking_widened_compatible() {
        // integer from number: a narrowing.
        let found = changes(&[("limit: {type: number,", "limit: {type: u64,")]);
        let c = only(&found, ChangeKind::FieldTypeChanged);
        assert!(c.is_breaking());
        assert!(
            c.message.contains("from `number` to `u64` (narrowed)"),
            "{}",
            c.message
        );
        let found = changes(&[("count: {type: u64,", "count: {type: number,")]);
        let c = only(&found, ChangeKind::FieldTypeChanged);
        assert_eq!(c.severity, Severity::Compatible, "{}", c.message);
        assert!(c.message.contains("(widened)"));
        // Neither: breaking.
        let found = changes(&[("count: {type: u64,", "count: {type: string,")]);
        assert!(only(&found, ChangeKind::FieldTypeChanged)
            .message
            .contains("(changed)"));
        assert!(only(&found, ChangeKind::FieldTypeChanged).is_breaking());
    }

    #[test]
    fn a_result_field_widened_is_breaking_narrowed_compatible() {
        let found = changes(&[("size: {type: u64,", "size: {type: number,")]);
        assert!(only(&found, ChangeKind::FieldTypeChanged).is_breaking());
        let found = changes(&[("size: {type: u64,", "size: {type: Shade,")]);
        assert!(only(&found, ChangeKind::FieldTypeChanged)
            .message
            .contains("(changed)"));
        let found = changes(&[("note: {type: string,", "note: {type: json,")]);
        // `Both` travels both ways: widening it breaks old clients reading results.
        assert!(only(&found, ChangeKind::FieldTypeChanged).is_breaking());
        let found = changes(&[(
            "pk: {type: Pk, description: Its pk.}",
            "pk: {type: Shade, description: Its pk.}",
        )]);
        let c = only(&found, ChangeKind::FieldTypeChanged);
        assert_eq!(c.severity, Severity::Compatible, "{}", c.message);
        assert!(c.message.contains("(narrowed)"));
    }

    #[test]
    fn an_alias_spelt_out_is_the_same_values() {
        let found = changes(&[(
            "pk: {type: Pk, description: Which thing.}",
            "pk: {type: string, description: Which thing.}",
        )]);
        let c = only(&found, ChangeKind::FieldTypeChanged);
        assert_eq!(c.severity, Severity::Compatible);
        assert!(c.message.contains("the same values"), "{}", c.message);
        // The alias itself narrowed: judged where it is declared, in both directions it
        // travels (`Pk` is in a request and a result).
        let found = changes(&[(
            "Pk: {kind: alias, type: string,",
            "Pk: {kind: alias, type: Colour,",
        )]);
        let c = only(&found, ChangeKind::AliasChanged);
        assert!(c.is_breaking(), "{}", c.message);
        assert!(c.message.contains("(narrowed)"));
        assert_eq!(found.len(), 1, "{found:#?}");
    }

    #[test]
    fn an_enum_value_removed_from_a_request_breaks_added_to_a_result_breaks() {
        let found = changes(&[("values: [red, green]", "values: [red]")]);
        let c = only(&found, ChangeKind::EnumValueRemoved);
        assert!(c.is_breaking());
        assert!(c
            .message
            .contains("value `green` of enum `Colour` was removed (the enum narrowed)"));
        assert_eq!(c.old_span, at(BASE, "values: [red, ", "green"));
        let found = changes(&[("values: [red, green]", "values: [red, green, blue]")]);
        assert_eq!(
            only(&found, ChangeKind::EnumValueAdded).severity,
            Severity::Compatible
        );
        let found = changes(&[("values: [light, dark]", "values: [light, dark, dim]")]);
        let c = only(&found, ChangeKind::EnumValueAdded);
        assert!(c.is_breaking());
        assert_eq!(
            c.new_span,
            at(
                &edited(&[("values: [light, dark]", "values: [light, dark, dim]")]),
                "dark, ",
                "dim"
            )
        );
        let found = changes(&[("values: [light, dark]", "values: [light]")]);
        assert_eq!(
            only(&found, ChangeKind::EnumValueRemoved).severity,
            Severity::Compatible
        );
    }

    #[test]
    fn union_variants_and_widening_into_a_union() {
        let two = "      one: {type: string, description: One.}\n      many: {type: list<string>, description: Several.}\n";
        let found = changes(&[("      one: {type: string, description: One.}\n", two)]);
        // `OneOrMany` is only in a request: a new variant is compatible.
        assert_eq!(
            only(&found, ChangeKind::VariantAdded).severity,
            Severity::Compatible
        );
        // A string field becoming a union with a string variant widens.
        let found = changes(&[("note: {type: string,", "note: {type: OneOrMany,")]);
        assert!(only(&found, ChangeKind::FieldTypeChanged)
            .message
            .contains("(the same values)"));
        let found = changes(&[
            ("note: {type: string,", "note: {type: OneOrMany,"),
            ("      one: {type: string, description: One.}\n", two),
        ]);
        let c = only(&found, ChangeKind::FieldTypeChanged);
        assert!(c.message.contains("(widened)"), "{}", c.message);
        // `Both` is in a result too, and `OneOrMany` now as well: both break old clients.
        assert!(c.is_breaking());
        assert!(only(&found, ChangeKind::VariantAdded).is_breaking());
        let found = changes(&[(
            "      one: {type: string, description: One.}\n",
            "      one: {type: u64, description: One.}\n",
        )]);
        assert!(only(&found, ChangeKind::VariantTypeChanged).is_breaking());
    }

    #[test]
    fn nullable_made_non_nullable_breaks_a_request() {
        let found = changes(&[(
            "tx: {type: string, nullable: true,",
            "tx: {type: string, optional: true,",
        )]);
        let c = only(&found, ChangeKind::FieldMadeNonNullable);
        assert!(c.is_breaking());
        assert!(c.message.contains("send `null`"), "{}", c.message);
        let found = changes(&[(
            "count: {type: u64, optional: true,",
            "count: {type: u64, nullable: true,",
        )]);
        assert_eq!(
            only(&found, ChangeKind::FieldMadeNullable).severity,
            Severity::Compatible
        );
        // In a result the server never sends `null` for an absent value: compatible.
        let made = edited(&[(
            "size: {type: u64, optional: true,",
            "size: {type: u64, nullable: true,",
        )]);
        let found = diff(&load(&made), &load(BASE));
        assert_eq!(
            only(&found, ChangeKind::FieldMadeNonNullable).severity,
            Severity::Compatible
        );
    }

    #[test]
    fn error_ids_removed_or_restatused_break_added_ones_do_not() {
        let found = changes(&[
            (
                "  thing-not-found: {status: 404, description: No such thing.}\n",
                "",
            ),
            (
                "errors: [invalid_request, thing-not-found]",
                "errors: [invalid_request]",
            ),
        ]);
        let c = only(&found, ChangeKind::ErrorRemoved);
        assert!(c.is_breaking());
        assert_eq!(c.old_span, at(BASE, "errors:", "thing-not-found"));
        assert_eq!(
            only(&found, ChangeKind::OperationErrorRemoved).severity,
            Severity::Compatible
        );
        let found = changes(&[("thing-not-found: {status: 404,", "thing-not-found: {status: 410,")]);
        let c = only(&found, ChangeKind::ErrorStatusChanged);
        assert!(c.is_breaking());
        assert!(c.message.contains("from 404 to 410"));
        assert_eq!(c.new_span, at(BASE, "errors:", "thing-not-found"));
        let found = changes(&[(
            "  thing-not-found: {status: 404, description: No such thing.}\n",
            "  thing-not-found: {status: 404, description: No such thing.}\n  gone: {status: 410, description: Gone.}\n",
        )]);
        assert_eq!(
            only(&found, ChangeKind::ErrorAdded).severity,
            Severity::Compatible
        );
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn a_route_change_breaks_and_is_located_at_both_routes() {
        let new = edited(&[("route: /get", "route: /fetch")]);
        let found = diff(&load(BASE), &load(&new));
        let c = only(&found, ChangeKind::RouteChanged);
        assert!(c.is_breaking());
        assert_eq!(c.old_span, at(BASE, "route:", "/get"));
        assert_eq!(c.new_span, at(&new, "route:", "/fetch"));
        assert!(c.message.contains("`POST /get` to `POST /fetch`"));
        // Moving a Q0 action to its own route too.
        let found = changes(&[("    kind: q0\n", "    kind: method\n    route: /find\n")]);
        assert!(only(&found, ChangeKind::RouteChanged)
            .message
            .contains("`POST /q0` to `POST /find`"));
    }

    #[test]
    fn descriptions_are_compatible_writes_are_not() {
        let found = changes(&[("description: Gets a thing.", "description: Fetches a thing.")]);
        assert_eq!(
            only(&found, ChangeKind::DescriptionChanged).severity,
            Severity::Compatible
        );
        let found = changes(&[(
            "description: Finds things.",
            "description: Finds things.\n    writes: true",
        )]);
        assert!(only(&found, ChangeKind::WritesChanged).is_breaking());
    }

    #[test]
    fn recursive_unions_compare_in_bounded_time() {
        // Compared naively, each level recurses twice (through `list` and `map`), 64 deep.
        let union = |name: &str| {
            format!(
                "  {name}:\n    kind: union\n    description: A tree.\n    variants:\n      leaf: {{type: string, description: A leaf.}}\n      list: {{type: list<{name}>, description: Children.}}\n      map: {{type: map<{name}>, description: Named children.}}\n"
            )
        };
        let old = edited(&[
            ("types:\n", &format!("types:\n{}", union("Tree"))),
            ("note: {type: string,", "note: {type: Tree,"),
        ]);
        let new = edited(&[
            ("types:\n", &format!("types:\n{}", union("Forest"))),
            ("note: {type: string,", "note: {type: Forest,"),
        ]);
        let started = std::time::Instant::now();
        let found = diff(&load(&old), &load(&new));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(only(&found, ChangeKind::TypeRemoved).is_breaking());
        let c = only(&found, ChangeKind::FieldTypeChanged);
        assert!(c.message.contains("(the same values)"), "{}", c.message);
    }

    #[test]
    fn a_type_no_operation_reaches_is_judged_both_ways_with_what_it_holds() {
        let extra = "  Loose:\n    kind: struct\n    description: Reached by no operation.\n    fields:\n      inner: {type: Inner, description: Held.}\n  Inner:\n    kind: struct\n    description: Held by Loose only.\n    fields:\n      a: {type: string, optional: true, description: A.}\n";
        // `Inner` is in a request too: only being held by `Loose` makes it travel both ways.
        let old = edited(&[
            ("types:\n", &format!("types:\n{extra}")),
            (
                "      both: {type: Both, optional: true, description: Both ways.}\n",
                "      both: {type: Both, optional: true, description: Both ways.}\n      inner: {type: Inner, optional: true, description: In.}\n",
            ),
        ]);
        // Made required: compatible in a result, breaking in a request.
        let new = old.replace("a: {type: string, optional: true,", "a: {type: string,");
        let found = diff(&load(&old), &load(&new));
        assert!(only(&found, ChangeKind::FieldMadeRequired).is_breaking());
        // Made optional: breaking in a result.
        let found = diff(&load(&new), &load(&old));
        assert!(only(&found, ChangeKind::FieldMadeOptional).is_breaking());
    }

    #[test]
    fn version_and_decision_changes_are_compatible() {
        let found = changes(&[
            ("version: 1.0.0", "version: 1.2.0"),
            (
                "    description: Finds things.\n",
                "    description: Finds things.\n    decision: D9\n",
            ),
        ]);
        let c = only(&found, ChangeKind::VersionChanged);
        assert_eq!(c.severity, Severity::Compatible);
        assert!(c.message.contains("from `1.0.0` to `1.2.0`"));
        let c = only(&found, ChangeKind::DecisionChanged);
        assert_eq!(c.severity, Severity::Compatible);
        assert!(
            c.message.contains("operation `find` changed from none to D9"),
            "{}",
            c.message
        );
        assert_eq!(found.len(), 2);
    }

    #[test]
    fn a_kind_change_breaks() {
        let found = changes(&[(
            "Shade: {kind: enum, values: [light, dark],",
            "Shade: {kind: alias, type: string,",
        )]);
        assert!(only(&found, ChangeKind::TypeKindChanged).is_breaking());
    }

    #[test]
    fn closing_a_request_struct_breaks() {
        let open = edited(&[(
            "    description: What to look for.\n",
            "    description: What to look for.\n    open: true\n",
        )]);
        let found = diff(&load(&open), &load(BASE));
        assert!(only(&found, ChangeKind::StructClosed).is_breaking());
        // Opening a request-only struct: compatible.
        let found = diff(&load(BASE), &load(&open));
        assert_eq!(
            only(&found, ChangeKind::StructOpened).severity,
            Severity::Compatible
        );
    }

    #[test]
    fn the_report_locates_each_change_in_both_files() {
        let new = edited(&[("route: /get", "route: /fetch")]);
        let found = diff(&load(BASE), &load(&new));
        let text = render_changes(&found, "old.yaml", "new.yaml");
        let start = at(BASE, "route:", "/get").unwrap();
        assert!(
            text.starts_with("breaking[route-changed]: operation `get` moved"),
            "{text}"
        );
        assert!(
            text.contains(&format!("  old: old.yaml:{}:{}\n", start.line, start.column)),
            "{text}"
        );
        assert!(
            text.contains(&format!("  new: new.yaml:{}:{}\n", start.line, start.column)),
            "{text}"
        );
        assert!(text.ends_with("1 breaking change, 0 compatible changes from old.yaml to new.yaml\n"));
        assert_eq!(render_changes(&[], "a", "b"), "no changes from a to b\n");
    }
}
