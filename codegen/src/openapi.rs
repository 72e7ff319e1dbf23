//! The OpenAPI 3.1 document of the HTTP surface, built from the IR (no IO).

use mikobase_spec::{ApiSpec, Field, OpKind, TypeKind, TypeRef, Variant};
use serde_json::{json, Map, Value};

use crate::names::route;

fn schema(ty: &TypeRef) -> Value {
    match ty {
        TypeRef::String => json!({"type": "string"}),
        TypeRef::Bool => json!({"type": "boolean"}),
        TypeRef::U64 => json!({"type": "integer", "minimum": 0}),
        TypeRef::I64 => json!({"type": "integer"}),
        TypeRef::F64 | TypeRef::Number => json!({"type": "number"}),
        TypeRef::Json => json!({}),
        TypeRef::Object => json!({"type": "object"}),
        TypeRef::List(inner) => json!({"type": "array", "items": schema(inner)}),
        TypeRef::Map(inner) => json!({"type": "object", "additionalProperties": schema(inner)}),
        TypeRef::Named(n) => json!({"$ref": format!("#/components/schemas/{}", n.wire)}),
    }
}

fn object(fields: &[Field], open: bool) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for f in fields {
        let mut s = schema(&f.ty);
        if f.nullable && f.ty != TypeRef::Json {
            s = json!({"oneOf": [s, {"type": "null"}]});
        }
        if let Value::Object(m) = &mut s {
            m.insert("description".into(), json!(f.description));
        }
        properties.insert(f.name.wire.clone(), s);
        if !f.optional {
            required.push(f.name.wire.clone());
        }
    }
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": open})
}

/// `oneOf` the variants; a trailing `json` variant takes what no other variant takes, so
/// exactly one always matches.
fn union(variants: &[Variant]) -> Value {
    let mut taken: Vec<Value> = Vec::new();
    let mut one_of = Vec::new();
    for v in variants {
        let mut s = if v.ty == TypeRef::Json {
            json!({"not": {"anyOf": taken.clone()}})
        } else {
            schema(&v.ty)
        };
        taken.push(schema(&v.ty));
        if let Value::Object(m) = &mut s {
            m.insert("title".into(), json!(v.name.wire));
            m.insert("description".into(), json!(v.description));
        }
        one_of.push(s);
    }
    json!({"oneOf": one_of})
}

/// The document.
pub fn document(spec: &ApiSpec) -> Value {
    let mut schemas = Map::new();
    for t in &spec.types {
        let mut s = match &t.kind {
            TypeKind::Alias(target) => schema(target),
            TypeKind::Struct { fields, open } => object(fields, *open),
            TypeKind::Enum(values) => {
                json!({"type": "string", "enum": values.iter().map(|v| &v.wire).collect::<Vec<_>>()})
            }
            TypeKind::Union(variants) => union(variants),
        };
        if let Value::Object(m) = &mut s {
            m.insert("description".into(), json!(t.description));
        }
        schemas.insert(t.name.wire.clone(), s);
    }
    // Every answer is an envelope: the spec's own `Envelope` when it declares one.
    let problem = json!({"type": "object", "properties": {"id": {"type": "string"}, "details": {}}, "required": ["id"]});
    schemas.entry("Envelope").or_insert_with(|| {
        json!({
            "type": "object",
            "description": "Every answer: success with results, or the errors.",
            "properties": {
                "success": {"type": "boolean"},
                "results": {},
                "errors": {"type": "array", "items": problem},
                "warnings": {"type": "array", "items": problem}
            },
            "required": ["success"]
        })
    });
    let mut paths = Map::new();
    let mut q0_variants = Vec::new();
    for op in &spec.operations {
        let mut request = object(&op.request, false);
        let errors: Vec<&str> = op.errors.iter().map(|e| e.wire.as_str()).collect();
        match op.kind {
            OpKind::Q0 => {
                request["properties"]["action"] = json!({"const": op.name.wire});
                if let Some(required) = request["required"].as_array_mut() {
                    required.push(json!("action"));
                }
                request["title"] = json!(op.name.wire);
                request["description"] = json!(format!("{} Errors: {}.", op.description, errors.join(", ")));
                q0_variants.push(request);
            }
            OpKind::Method { .. } => {
                paths.insert(
                    route(op).to_owned(),
                    json!({"post": {
                        "operationId": op.name.wire,
                        "summary": op.description,
                        "description": format!("Errors: {}.", errors.join(", ")),
                        "requestBody": {"required": true, "content": {"application/json": {"schema": request}}},
                        "responses": {"default": {"description": "The envelope; `results` holds the result on success.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}}}
                    }}),
                );
            }
        }
    }
    paths.insert(
        ApiSpec::Q0_ROUTE.into(),
        json!({"post": {
            "operationId": "q0",
            "summary": "Runs one Q0 request.",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"oneOf": q0_variants}}}},
            "responses": {"default": {"description": "The envelope.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}}}
        }}),
    );
    let ids: Vec<Value> = spec
        .errors
        .iter()
        .map(|e| json!({"id": e.id.wire, "status": e.status, "description": e.description, "documented": e.documented}))
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": {"title": spec.name, "version": spec.version, "description": spec.description},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        },
        "security": [{"bearer": []}],
        "x-error-ids": ids,
    })
}
