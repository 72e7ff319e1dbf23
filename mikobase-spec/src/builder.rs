//! Making the IR in code, for front ends that do not start from YAML.

use crate::ir::{ApiSpec, ErrorDef, Field, Name, OpKind, Operation, TypeDef, TypeKind, TypeRef, Variant};

/// Builds an [`ApiSpec`]: `Builder::new("mikobase", "1.0.0").error(...).operation(...).build()`.
#[derive(Debug, Clone)]
pub struct Builder {
    spec: ApiSpec,
}

impl Builder {
    /// An empty spec.
    pub fn new(name: &str, version: &str) -> Self {
        Builder {
            spec: ApiSpec {
                name: name.into(),
                version: version.into(),
                description: String::new(),
                types: Vec::new(),
                errors: Vec::new(),
                warnings: Vec::new(),
                operations: Vec::new(),
            },
        }
    }

    /// Sets the description.
    pub fn description(mut self, text: &str) -> Self {
        self.spec.description = text.into();
        self
    }

    /// A field for [`Builder::structure`] or [`Builder::operation`].
    pub fn field(name: &str, ty: TypeRef, optional: bool, description: &str) -> Field {
        Field {
            name: Name::new(name),
            ty,
            optional,
            nullable: false,
            description: description.into(),
            decision: None,
            constraints: Default::default(),
        }
    }

    /// A variant for [`Builder::union`].
    pub fn variant(name: &str, ty: TypeRef, description: &str) -> Variant {
        Variant {
            name: Name::new(name),
            ty,
            description: description.into(),
        }
    }

    /// Declares a struct type.
    pub fn structure(mut self, name: &str, description: &str, fields: Vec<Field>) -> Self {
        self.spec.types.push(TypeDef {
            name: Name::new(name),
            description: description.into(),
            kind: TypeKind::Struct { fields, open: false },
            decision: None,
            constraints: Default::default(),
            refuses_unknown: false,
            passthrough: false,
            runtime: false,
        });
        self
    }

    /// Declares a union type (untagged: a JSON value of one of the variants' shapes).
    pub fn union(mut self, name: &str, description: &str, variants: Vec<Variant>) -> Self {
        self.spec.types.push(TypeDef {
            name: Name::new(name),
            description: description.into(),
            kind: TypeKind::Union(variants),
            decision: None,
            constraints: Default::default(),
            refuses_unknown: false,
            passthrough: false,
            runtime: false,
        });
        self
    }

    /// Declares an error id.
    pub fn error(mut self, id: &str, status: u16, description: &str) -> Self {
        self.spec.errors.push(ErrorDef {
            id: Name::new(id),
            status,
            description: description.into(),
            documented: true,
        });
        self
    }

    /// Declares a Q0 action (`route: None`) or a method with its route.
    pub fn operation(
        mut self,
        name: &str,
        route: Option<&str>,
        description: &str,
        request: Vec<Field>,
        result: TypeRef,
        errors: &[&str],
    ) -> Self {
        self.spec.operations.push(Operation {
            name: Name::new(name),
            kind: route.map_or(OpKind::Q0, |r| OpKind::Method { route: Name::new(r) }),
            description: description.into(),
            request,
            result,
            errors: errors.iter().map(|e| Name::new(*e)).collect(),
            writes: false,
            decision: None,
            requires_any: Vec::new(),
        });
        self
    }

    /// The spec.
    pub fn build(self) -> ApiSpec {
        self.spec
    }
}
