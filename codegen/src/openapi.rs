//! The OpenAPI 3.1 document of the HTTP surface, built from the IR (no IO).
//!
//! It describes what a server answers, not only what it accepts (D-C1): every status a
//! route can answer with the schema of that answer's body, the generated dispatch
//! table's (the spec's error registry, first error decisive) and the toolbox
//! transport's (`TRANSPORT`, the refusals of `caspian_ipc::uds`'s server, before any
//! handler runs), and request schemas that say what the server enforces.
//! `tests/tests/contract.rs` drives a real server and validates every answer against the
//! document.

use std::collections::BTreeMap;

use mikobase_spec::{ApiSpec, Constraints, Field, OpKind, Operation, TypeKind, TypeRef, Variant};
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

/// `minLength` and `pattern` on `s` (beside a `$ref` too: JSON Schema 2020-12 applies
/// both).
fn constrain(s: &mut Value, constraints: &Constraints) {
    if let Value::Object(m) = s {
        if let Some(min) = constraints.min_length {
            m.insert("minLength".into(), json!(min));
        }
        if let Some(pattern) = &constraints.pattern {
            m.insert("pattern".into(), json!(pattern));
        }
    }
}

/// A field's schema: its type, `null` too when nullable, and its constraints.
fn field_schema(f: &Field) -> Value {
    let mut s = schema(&f.ty);
    constrain(&mut s, &f.constraints);
    if f.nullable && f.ty != TypeRef::Json {
        s = json!({"oneOf": [s, {"type": "null"}]});
    }
    if let Value::Object(m) = &mut s {
        m.insert("description".into(), json!(f.description));
    }
    s
}

fn object(fields: &[Field], open: bool) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for f in fields {
        properties.insert(f.name.wire.clone(), field_schema(f));
        if !f.optional {
            required.push(f.name.wire.clone());
        }
    }
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": open})
}

/// Keys every request (and every struct that refuses unknown keys) may carry, which the
/// server accepts and ignores (the runtime's `support::PASSTHROUGH`).
const PASSTHROUGH: [&str; 4] = ["misc", "corporate", "vibecode", "comment"];

/// A closed object schema that takes the pass-through keys its fields do not declare.
fn with_passthrough(mut object: Value, fields: &[Field]) -> Value {
    for key in PASSTHROUGH {
        if fields.iter().all(|f| f.name.wire != key) {
            object["properties"][key] = json!({"description": "Pass-through: accepted and ignored."});
        }
    }
    object
}

/// An operation's request body: closed (the dispatch table refuses unknown keys) but for
/// the pass-through keys, and with the spec's `requires_any` as an `anyOf`.
fn request(op: &Operation) -> Value {
    let mut request = with_passthrough(object(&op.request, false), &op.request);
    if !op.requires_any.is_empty() {
        let any: Vec<Value> = op
            .requires_any
            .iter()
            .map(|n| json!({"required": [n.wire]}))
            .collect();
        request["anyOf"] = json!(any);
    }
    request
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

/// One refusal of the toolbox's transport, answered before any handler runs, with the
/// body `{"error": id, "details": {..., "fix"}}` (docs/PROTOCOL.md): status, id, when,
/// and the header it carries. Mirrors `runtime/src/uds/server.rs` and `connection.rs`;
/// the contract test provokes each one.
struct Refusal {
    status: u16,
    id: &'static str,
    when: &'static str,
    header: Option<(&'static str, &'static str)>,
}

const TRANSPORT: [Refusal; 9] = [
    Refusal {
        status: 400,
        id: "bad-request",
        when: "The request head cannot be parsed (not HTTP/1.x, bad framing); the connection closes.",
        header: None,
    },
    Refusal {
        status: 400,
        id: "bad_body",
        when: "The body's framing broke while it was read (a malformed chunk); the connection closes.",
        header: None,
    },
    Refusal {
        status: 401,
        id: "unauthorized",
        when: "The bearer token is missing, malformed or wrong (one identical answer); the connection closes.",
        header: Some(("WWW-Authenticate", "`Bearer realm=\"caspian-ipc\"`.")),
    },
    Refusal {
        status: 403,
        id: "forbidden_peer",
        when: "The connecting process runs as another user (SO_PEERCRED); the connection closes.",
        header: None,
    },
    Refusal {
        status: 408,
        id: "request-timeout",
        when: "The body did not arrive within the server's body timeout; the connection closes.",
        header: None,
    },
    Refusal {
        status: 413,
        id: "request-too-large",
        when: "The body is over the server's body limit (declared, or counted while read); the connection closes.",
        header: None,
    },
    Refusal {
        status: 431,
        id: "request-head-too-large",
        when: "The request head (request line and headers, so a long path too) is over 64 KiB or 100 header lines.",
        header: None,
    },
    Refusal {
        status: 503,
        id: "server-busy",
        when: "Too many request bodies are being received at once; the connection closes.",
        header: Some(("Retry-After", "Seconds to wait before retrying.")),
    },
    Refusal {
        status: 503,
        id: "too-many-connections",
        when: "Every connection slot answers a request; the connection closes.",
        header: Some(("Retry-After", "Seconds to wait before retrying.")),
    },
];

/// The answers of one route: for each status, the schemas a body may have, what they
/// mean, and their headers.
#[derive(Default, Clone)]
struct Answers(BTreeMap<u16, Answer>);

#[derive(Default, Clone)]
struct Answer {
    schemas: Vec<Value>,
    description: Vec<String>,
    headers: Map<String, Value>,
    /// Whether a body other than the transport's is possible (else the answer is the
    /// shared `components/responses/transport-STATUS`).
    own: bool,
}

impl Answers {
    fn add(&mut self, status: u16, schema: Value, description: String) -> &mut Answer {
        let answer = self.add_transport(status, schema, description);
        answer.own = true;
        answer
    }

    fn add_transport(&mut self, status: u16, schema: Value, description: String) -> &mut Answer {
        let answer = self.0.entry(status).or_default();
        answer.schemas.push(schema);
        answer.description.push(description);
        answer
    }

    /// The failure envelopes of `ids` (the dispatch table's answers), by their status.
    fn failures(&mut self, spec: &ApiSpec, ids: &[&str]) {
        let mut by_status: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
        for id in ids {
            // The dispatch table answers an id the registry lacks with 500.
            let status = spec
                .errors
                .iter()
                .find(|e| e.id.wire == *id)
                .map_or(500, |e| e.status);
            let at = by_status.entry(status).or_default();
            if !at.contains(id) {
                at.push(id);
            }
        }
        for (status, ids) in by_status {
            let text = format!("The envelope of a failure: `{}`.", ids.join("`, `"));
            self.add(status, failure(&ids), text);
        }
    }

    /// The transport's refusals, which every route can answer.
    fn transport(&mut self) {
        for refusal in &TRANSPORT {
            let body = json!({"allOf": [{"$ref": "#/components/schemas/TransportError"},
                {"properties": {"error": {"const": refusal.id}}}]});
            let answer = self.add_transport(
                refusal.status,
                body,
                format!("`{}` (the toolbox's): {}", refusal.id, refusal.when),
            );
            if let Some((name, what)) = refusal.header {
                answer.headers.insert(
                    name.into(),
                    json!({"description": what, "schema": {"type": "string"}}),
                );
            }
        }
    }

    /// The responses; an answer only the transport gives refers to the shared one.
    fn into_responses(self) -> Value {
        let mut responses = Map::new();
        for (status, answer) in self.0 {
            if !answer.own {
                responses.insert(
                    status.to_string(),
                    json!({"$ref": format!("#/components/responses/transport-{status}")}),
                );
                continue;
            }
            responses.insert(status.to_string(), answer.into_response());
        }
        Value::Object(responses)
    }

    /// The shared responses of the transport's statuses (`transport-STATUS`).
    fn shared() -> Map<String, Value> {
        let mut answers = Answers::default();
        answers.transport();
        answers
            .0
            .into_iter()
            .map(|(status, answer)| (format!("transport-{status}"), answer.into_response()))
            .collect()
    }
}

impl Answer {
    fn into_response(self) -> Value {
        let schema = match <[Value; 1]>::try_from(self.schemas) {
            Ok([one]) => one,
            Err(many) => json!({"anyOf": many}),
        };
        let mut response = json!({
            "description": self.description.join(" Or: "),
            "content": {"application/json": {"schema": schema}},
        });
        if !self.headers.is_empty() {
            response["headers"] = Value::Object(self.headers);
        }
        response
    }
}

/// A success envelope whose `results` is `result`.
fn success(result: Value) -> Value {
    json!({"allOf": [{"$ref": "#/components/schemas/Envelope"}, {
        "properties": {"success": {"const": true}, "results": result, "errors": {"maxItems": 0}},
        "required": ["success", "results", "errors"],
    }]})
}

/// A failure envelope whose first error (the one that decides the status) is one of
/// `ids`.
fn failure(ids: &[&str]) -> Value {
    json!({"allOf": [{"$ref": "#/components/schemas/Envelope"}, {
        "properties": {
            "success": {"const": false},
            "errors": {"minItems": 1, "prefixItems": [{"properties": {"id": {"enum": ids}}, "required": ["id"]}]},
        },
        "required": ["success", "errors"],
        "not": {"required": ["results"]},
    }]})
}

/// The ids the generated dispatch table answers on every route itself: a body it cannot
/// decode, one over the size limit.
const DISPATCH_OWN: [&str; 2] = ["invalid_request", "request-too-large"];

/// The answer of every method but POST on the server's routes: the 405 envelope.
const NOT_POST: [&str; 7] = ["get", "put", "delete", "patch", "head", "options", "trace"];

/// The 405 envelope every method but POST gets (`components/responses/not-post`).
fn not_post_response() -> Value {
    let mut answers = Answers::default();
    answers
        .add(
            405,
            failure(&["invalid_request"]),
            "Only POST is served here (`Allow: POST`): the envelope of `invalid_request` (details: `method`, `allowed`).".into(),
        )
        .headers
        .insert("Allow".into(), json!({"description": "`POST`.", "schema": {"type": "string"}}));
    answers.0.remove(&405).map_or(Value::Null, Answer::into_response)
}

/// Every method but POST on a route: the transport's refusals, else 405.
fn not_post() -> Value {
    let mut answers = Answers::default();
    answers.transport();
    let mut responses = answers.into_responses();
    responses["405"] = json!({"$ref": "#/components/responses/not-post"});
    let mut item = Map::new();
    for method in NOT_POST {
        item.insert(
            method.into(),
            json!({"summary": "Not served: every route takes POST (a HEAD answer has no body).",
                "responses": responses}),
        );
    }
    Value::Object(item)
}

/// A path item: `post` (the route's operation) and 405 for every other method.
fn path_item(post: Value) -> Value {
    let mut item = not_post();
    item["post"] = post;
    item
}

/// The toolbox's own GET routes, which the server answers beside the spec's
/// (`runtime/src/uds/monitor.rs`, docs/PROTOCOL.md): `/stats` and `/monitor`. A POST to
/// them is the dispatch table's 404, like any path it does not know.
fn watch_routes() -> [(&'static str, Value); 2] {
    let integer = json!({"type": "integer", "minimum": 0});
    let stats = json!({
        "type": "object",
        "properties": {"flavour": {"type": "string"}, "requests": integer, "uptime_ms": integer, "pid": integer},
        "required": ["flavour", "requests", "uptime_ms", "pid"],
        "additionalProperties": false,
    });
    let op = json!({
        "type": "object",
        "properties": {"seq": integer, "at_ms": {"type": "number"}, "worker": {"oneOf": [integer, {"type": "null"}]},
            "request": {"type": "string"}, "body": {}, "status": integer},
        "required": ["seq", "at_ms", "worker", "request", "body", "status"],
    });
    let monitor = json!({
        "type": "object",
        "properties": {"ops": {"type": "array", "items": op, "maxItems": 1000}, "next": integer, "missed": integer, "requests": integer},
        "required": ["ops", "next", "missed", "requests"],
        "additionalProperties": false,
    });
    let item = |summary: &str, body: Value, query: bool| {
        let mut answers = Answers::default();
        answers.add(200, body, summary.to_owned());
        answers.transport();
        let mut item = not_post();
        let mut get = json!({"summary": summary, "responses": answers.into_responses()});
        if query {
            get["parameters"] = json!([{"name": "after", "in": "query", "required": false,
                "description": "Wait for operations after this `next` (up to `X-Deadline-Ms`).",
                "schema": {"type": "integer", "minimum": 0}}]);
        }
        item["get"] = get;
        let mut post = Answers::default();
        post.add(
            404,
            failure(&["invalid_request"]),
            "Not an operation: the envelope of `invalid_request`.".into(),
        );
        post.transport();
        item["post"] = json!({"summary": "Not an operation.", "responses": post.into_responses()});
        item
    };
    [
        (
            "/stats",
            item(
                "The server's kind, requests answered, uptime and pid.",
                stats,
                false,
            ),
        ),
        (
            "/monitor",
            item(
                "Operations answered since `after` (docs/PROTOCOL.md, D-U22).",
                monitor,
                true,
            ),
        ),
    ]
}

/// The document.
pub fn document(spec: &ApiSpec) -> Value {
    let mut schemas = Map::new();
    for t in &spec.types {
        let mut s = match &t.kind {
            TypeKind::Alias(target) => {
                let mut s = schema(target);
                constrain(&mut s, &t.constraints);
                s
            }
            TypeKind::Struct { fields, .. } if t.refuses_unknown && t.passthrough => {
                with_passthrough(object(fields, false), fields)
            }
            TypeKind::Struct { fields, .. } if t.refuses_unknown => object(fields, false),
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
    schemas.insert(
        "TransportError".into(),
        json!({
            "type": "object",
            "description": "A refusal of the toolbox's transport, before any handler ran (docs/PROTOCOL.md).",
            "properties": {
                "error": {"type": "string", "description": "The stable id."},
                "details": {
                    "type": "object",
                    "description": "What went wrong; `fix` says what to do.",
                    "properties": {"fix": {"type": "string", "minLength": 1}},
                    "required": ["fix"],
                },
            },
            "required": ["error", "details"],
            "additionalProperties": false,
        }),
    );
    let mut paths = Map::new();
    let mut q0_variants = Vec::new();
    let mut q0_errors: Vec<&str> = Vec::new();
    let mut q0_results = Vec::new();
    for op in &spec.operations {
        let mut body = request(op);
        let errors: Vec<&str> = op.errors.iter().map(|e| e.wire.as_str()).collect();
        // An empty body reads as `{}`: a request whose fields are all optional may be
        // sent without one.
        let body_required = op.request.iter().any(|f| !f.optional);
        match op.kind {
            OpKind::Q0 => {
                body["properties"]["action"] = json!({"const": op.name.wire});
                if let Some(required) = body["required"].as_array_mut() {
                    required.push(json!("action"));
                }
                body["title"] = json!(op.name.wire);
                body["description"] = json!(format!("{} Errors: {}.", op.description, errors.join(", ")));
                q0_variants.push(body);
                for e in &errors {
                    if !q0_errors.contains(e) {
                        q0_errors.push(e);
                    }
                }
                q0_results.push(schema(&op.result));
            }
            OpKind::Method { .. } => {
                let mut answers = Answers::default();
                answers.add(
                    200,
                    success(schema(&op.result)),
                    "The envelope of a success.".into(),
                );
                // The dispatch table answers these itself on every route (MB005), whether
                // or not the operation lists them.
                let mut errors = errors.clone();
                for own in DISPATCH_OWN {
                    if !errors.contains(&own) {
                        errors.push(own);
                    }
                }
                answers.failures(spec, &errors);
                answers.transport();
                let empty = if body_required {
                    ""
                } else {
                    " An empty body reads as `{}`."
                };
                paths.insert(
                    route(op).to_owned(),
                    path_item(json!({
                        "operationId": op.name.wire,
                        "summary": op.description,
                        "description": format!("Errors: {}.{empty}", errors.join(", ")),
                        "requestBody": {"required": body_required, "content": {"application/json": {"schema": body}}},
                        "responses": answers.into_responses(),
                    })),
                );
            }
        }
    }
    // The dispatch table's own answers on /q0: a missing action (`invalid_request`) and
    // an unknown one.
    for own in DISPATCH_OWN.into_iter().chain(["action-not-supported"]) {
        if !q0_errors.contains(&own) {
            q0_errors.push(own);
        }
    }
    let mut answers = Answers::default();
    answers.add(
        200,
        success(json!({"anyOf": q0_results})),
        "The envelope of a success; `results` is the action's result.".into(),
    );
    answers.failures(spec, &q0_errors);
    answers.transport();
    paths.insert(
        ApiSpec::Q0_ROUTE.into(),
        path_item(json!({
            "operationId": "q0",
            "summary": "Runs one Q0 request.",
            "description": "`action` names the operation; a missing one is `invalid_request`, an unknown one `action-not-supported`.",
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"oneOf": q0_variants}}}},
            "responses": answers.into_responses(),
        })),
    );
    // Any other path: the dispatch table's 404 envelope.
    let mut answers = Answers::default();
    answers.add(
        404,
        failure(&["invalid_request"]),
        "No such route: the envelope of `invalid_request` (details: `unknown_route`, `routes`).".into(),
    );
    answers.transport();
    let mut unknown = path_item(json!({
        "operationId": "unknown_route",
        "summary": "Any path not listed here (one segment or several): no operation.",
        "requestBody": {"required": false, "content": {"application/json": {"schema": {}}}},
        "responses": answers.into_responses(),
    }));
    unknown["parameters"] = json!([{"name": "route", "in": "path", "required": true,
        "description": "Any path but the listed ones.", "schema": {"type": "string"}}]);
    paths.insert("/{route}".into(), unknown);
    for (route, item) in watch_routes() {
        paths.insert(route.into(), item);
    }
    let mut responses = Answers::shared();
    responses.insert("not-post".into(), not_post_response());
    let ids: Vec<Value> = spec
        .errors
        .iter()
        .map(|e| json!({"id": e.id.wire, "status": e.status, "description": e.description, "documented": e.documented}))
        .collect();
    let transport: Vec<Value> = TRANSPORT
        .iter()
        .map(|r| json!({"id": r.id, "status": r.status, "description": r.when}))
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": {"title": spec.name, "version": spec.version, "description": spec.description},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        },
        "security": [{"bearer": []}],
        "x-error-ids": ids,
        "x-transport-error-ids": transport,
    })
}
