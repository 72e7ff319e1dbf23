//! The published contract is the server's behaviour (issue 16 part 4, D-C1): a real
//! shared-mikobase server on a Unix socket, driven with raw HTTP (valid requests, invalid
//! ones, malformed heads, missing tokens, wrong methods, oversize and slow bodies), and
//! every answer's status and body checked against `docs/openapi.json` with a JSON Schema
//! validator; then requests generated from the document's own request schemas (proptest)
//! must get a status the document lists for their route, with a body matching it.
//! Runs serially on the main thread (servers are forked).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use caspian_ipc::mikobase::engine::Engine;
use caspian_ipc::mikobase::MikobaseServer;
use caspian_ipc::uds::ServerConfig;
use caspian_ipc_tests::{check, check_nothing_left, run_serially, Failed, ForkedServer, Trial};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

type Outcome = Result<(), Failed>;

/// The checked-in document.
fn document() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The document, with a validator per answer schema, built once each.
struct Contract {
    doc: Value,
    validators: RefCell<HashMap<String, std::rc::Rc<jsonschema::Validator>>>,
}

impl Contract {
    fn new() -> Self {
        Contract {
            doc: document(),
            validators: RefCell::new(HashMap::new()),
        }
    }

    /// The document's path key for a request path: itself when listed, else `/{route}`.
    fn path_key(&self, path: &str) -> String {
        let path = path.split('?').next().unwrap_or(path);
        if self.doc["paths"].get(path).is_some() && path != "/{route}" {
            path.to_owned()
        } else {
            "/{route}".to_owned()
        }
    }

    /// A validator of `schema` whose `$ref`s resolve into the document's components.
    fn validator(&self, key: &str, schema: &Value) -> Result<std::rc::Rc<jsonschema::Validator>, String> {
        if let Some(v) = self.validators.borrow().get(key) {
            return Ok(v.clone());
        }
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"],
            "allOf": [schema],
        });
        let validator = jsonschema::draft202012::new(&root)
            .map_err(|e| format!("{key}: the schema does not build: {e}"))?;
        let validator = std::rc::Rc::new(validator);
        self.validators
            .borrow_mut()
            .insert(key.to_owned(), validator.clone());
        Ok(validator)
    }

    /// Checks one answer against the document: its status is listed for the route and
    /// method, and its body (unless a HEAD's) matches that status's schema.
    fn check_answer(&self, method: &str, path: &str, answer: &Answer) -> Result<(), String> {
        let key = self.path_key(path);
        let method_lc = method.to_ascii_lowercase();
        let route = format!("{method} {path} (document: {key})");
        let operation = self.doc["paths"][&key]
            .get(&method_lc)
            .ok_or_else(|| format!("{route}: the document has no {method_lc} operation"))?;
        let status = answer.status.to_string();
        let mut response = operation["responses"].get(&status).ok_or_else(|| {
            let listed: Vec<&String> = operation["responses"]
                .as_object()
                .map(|m| m.keys().collect())
                .unwrap_or_default();
            format!(
                "{route}: status {status} is not documented (documented: {listed:?}); body {}",
                answer.text()
            )
        })?;
        if let Some(shared) = response["$ref"].as_str() {
            let name = shared.trim_start_matches("#/components/responses/");
            response = self.doc["components"]["responses"]
                .get(name)
                .ok_or_else(|| format!("{route}: status {status} refers to a missing `{shared}`"))?;
        }
        if method == "HEAD" {
            return if answer.body.is_empty() {
                Ok(())
            } else {
                Err(format!("{route}: a HEAD answer with a body"))
            };
        }
        let schema = &response["content"]["application/json"]["schema"];
        let body: Value = serde_json::from_slice(&answer.body).map_err(|e| {
            format!(
                "{route}: status {status}: the body is not JSON ({e}): {}",
                answer.text()
            )
        })?;
        let validator = self.validator(&format!("{key} {method_lc} {status}"), schema)?;
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{e} (at `{}`)", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{route}: status {status}: the body does not match its schema: {}; body {body}",
                errors.join("; ")
            ))
        }
    }

    /// Whether `body` matches the request schema of `POST path`.
    fn request_is_valid(&self, path: &str, body: &Value) -> Result<bool, String> {
        let schema = &self.doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"];
        Ok(self.validator(&format!("{path} request"), schema)?.is_valid(body))
    }
}

/// One answer read off the socket.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Reads one answer from `stream` (a HEAD's has no body).
fn read_answer(stream: &mut UnixStream, head_request: bool) -> Result<Answer, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream
            .read(&mut chunk)
            .map_err(|e| format!("reading the answer: {e}"))?;
        if n == 0 {
            return Err(format!(
                "the connection closed before a whole answer: {:?}",
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not a status line: {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[end..].to_vec();
    if head_request {
        body.clear();
    } else {
        while body.len() < length {
            let n = stream
                .read(&mut chunk)
                .map_err(|e| format!("reading the body: {e}"))?;
            if n == 0 {
                return Err("the connection closed inside the body".into());
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body.truncate(length);
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// The server under test and how to talk to it by hand.
struct Target {
    server: ForkedServer,
}

impl Target {
    fn start(config: ServerConfig) -> Result<Target, Failed> {
        let server = ForkedServer::start(config, || {
            MikobaseServer::new(Engine::memory())
                .into_router()
                .map_err(|e| e.to_string())
        })?;
        Ok(Target { server })
    }

    fn connect(&self) -> Result<UnixStream, Failed> {
        let stream = UnixStream::connect(self.server.dir.socket_path())?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(stream)
    }

    fn auth(&self) -> String {
        format!("Authorization: Bearer {}\r\n", self.server.token.as_str())
    }

    /// A request head with the token, `extra` header lines and a body, on a fresh
    /// connection.
    fn request(&self, method: &str, path: &str, extra: &str, body: Option<&[u8]>) -> Result<Answer, Failed> {
        let mut stream = self.connect()?;
        let length = body.map_or(String::new(), |b| format!("Content-Length: {}\r\n", b.len()));
        let mut raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{}{extra}{length}Connection: close\r\n\r\n",
            self.auth()
        )
        .into_bytes();
        raw.extend_from_slice(body.unwrap_or_default());
        stream.write_all(&raw)?;
        Ok(read_answer(&mut stream, method == "HEAD")?)
    }

    /// Raw bytes on a fresh connection.
    fn raw(&self, raw: &[u8]) -> Result<Answer, Failed> {
        let mut stream = self.connect()?;
        stream.write_all(raw)?;
        Ok(read_answer(&mut stream, false)?)
    }

    fn post(&self, path: &str, body: &Value) -> Result<Answer, Failed> {
        self.request("POST", path, "", Some(body.to_string().as_bytes()))
    }
}

/// Collects the disagreements of a scenario, so one run names them all.
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    /// Checks `answer` to `method path` against the document and against the `expected`
    /// status; returns the body.
    fn see(
        &mut self,
        contract: &Contract,
        what: &str,
        method: &str,
        path: &str,
        expected: u16,
        answer: &Answer,
    ) -> Value {
        if answer.status != expected {
            self.0.push(format!(
                "{what}: {method} {path} answered {} (expected {expected}): {}",
                answer.status,
                answer.text()
            ));
        }
        if let Err(e) = contract.check_answer(method, path, answer) {
            self.0.push(format!("{what}: {e}"));
        }
        answer.json()
    }

    fn done(self) -> Outcome {
        check(
            self.0.is_empty(),
            format!("{} disagreements:\n{}", self.0.len(), self.0.join("\n")),
        )
    }
}

const SHIP: &str = "example.org/fleet/ship";

/// Every operation, valid and invalid, through a server with default limits but a short
/// body timeout.
fn every_operation_answers_as_documented() -> Outcome {
    let contract = Contract::new();
    let target = Target::start(ServerConfig {
        body_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })?;
    let mut f = Findings::default();
    let post =
        |f: &mut Findings, what: &str, path: &str, body: Value, expected: u16| -> Result<Value, Failed> {
            let answer = target.post(path, &body)?;
            Ok(f.see(&contract, what, "POST", path, expected, &answer))
        };
    // The schema, then records of its class.
    let schema = json!({"classes": [{
        "name": SHIP, "description": "A ship.", "misc": "kept apart", "corporate": 1,
        "fields": {"name": {"class": "string", "required": true}, "serial": {"class": "string", "unique": true, "format": ""}},
    }]});
    post(&mut f, "import a schema", "/import_schema", schema, 200)?;
    // The pass-through keys: accepted in a block, refused in a field declaration (as the
    // document says of each).
    post(
        &mut f,
        "pass-through keys in a field declaration",
        "/import_schema",
        json!({"classes": [{"name": "example.org/fleet/dock", "fields": {"berth": {"class": "integer", "comment": "c"}}}]}),
        422,
    )?;
    post(
        &mut f,
        "pass-through keys in a block",
        "/q0",
        json!({"action": "select", "then": {"path": ["name", "x"], "vibecode": 1, "corporate": 2}}),
        200,
    )?;
    post(&mut f, "export the schema", "/export_schema", json!({}), 200)?;
    let created = post(
        &mut f,
        "create",
        "/q0",
        json!({"action": "create", "class": SHIP, "bucket": {"name": "Nostromo", "serial": "N-1"}}),
        200,
    )?;
    let pk = created["results"]["pk"].as_str().unwrap_or_default().to_owned();
    post(
        &mut f,
        "create with pass-through keys",
        "/q0",
        json!({"action": "create", "bucket": {}, "vibecode": 1, "comment": "c"}),
        200,
    )?;
    post(
        &mut f,
        "select",
        "/q0",
        json!({"action": "select", "class": SHIP, "sort": ["name"], "then": {"path": ["name", {"starts-with": "N"}]}}),
        200,
    )?;
    post(
        &mut f,
        "select by pk",
        "/q0",
        json!({"action": "select", "pk": pk, "limit": 1, "offset": null}),
        200,
    )?;
    post(&mut f, "record_by_pk", "/record_by_pk", json!({"pk": pk}), 200)?;
    post(&mut f, "by_class", "/by_class", json!({"class": SHIP}), 200)?;
    post(
        &mut f,
        "update with a class only",
        "/q0",
        json!({"action": "update", "pk": pk, "class": SHIP}),
        200,
    )?;
    post(
        &mut f,
        "update",
        "/q0",
        json!({"action": "update", "pk": pk, "bucket": {"name": "Nostromo", "serial": "N-2"}}),
        200,
    )?;
    post(
        &mut f,
        "set_fields",
        "/set_fields",
        json!({"pk": pk, "fields": {"serial": "N-3"}}),
        200,
    )?;
    post(
        &mut f,
        "validate",
        "/validate",
        json!({"query": {"action": "select", "bogus": 1}}),
        200,
    )?;
    post(&mut f, "export_worldlet", "/export_worldlet", json!({}), 200)?;
    post(
        &mut f,
        "import_worldlet",
        "/import_worldlet",
        json!({"worldlet": {"format": "worldlet/1.0", "records": {}}}),
        200,
    )?;
    // Requests without a body: a request whose fields are all optional reads as `{}`.
    for (path, expected) in [
        ("/export_schema", 200),
        ("/export_worldlet", 200),
        ("/q0", 400),
        ("/record_by_pk", 400),
    ] {
        let answer = target.request("POST", path, "", None)?;
        f.see(&contract, "no body", "POST", path, expected, &answer);
        let required = contract.doc["paths"][path]["post"]["requestBody"]["required"] == true;
        if required != (expected != 200) {
            f.0.push(format!("no body: POST {path} answered {expected} but the document says requestBody.required {required}"));
        }
    }
    // Transactions: one held on a connection of its own parks the others.
    let mut holder = target.connect()?;
    let begin = json!({"action": "transaction"}).to_string();
    write!(
        holder,
        "POST /q0 HTTP/1.1\r\nHost: localhost\r\n{}Content-Length: {}\r\n\r\n{begin}",
        target.auth(),
        begin.len()
    )?;
    let opened = read_answer(&mut holder, false)?;
    let tx = f.see(&contract, "begin a transaction", "POST", "/q0", 200, &opened)["results"]["transaction"]
        .clone();
    let parked = target.request(
        "POST",
        "/by_class",
        "X-Deadline-Ms: 100\r\n",
        Some(json!({"class": SHIP}).to_string().as_bytes()),
    )?;
    f.see(
        &contract,
        "a call parked behind a transaction",
        "POST",
        "/by_class",
        503,
        &parked,
    );
    let commit = json!({"action": "commit", "transaction": tx}).to_string();
    write!(
        holder,
        "POST /q0 HTTP/1.1\r\nHost: localhost\r\n{}Content-Length: {}\r\nConnection: close\r\n\r\n{commit}",
        target.auth(),
        commit.len()
    )?;
    let committed = read_answer(&mut holder, false)?;
    f.see(&contract, "commit", "POST", "/q0", 200, &committed);
    drop(holder);
    post(
        &mut f,
        "rollback of an unknown transaction",
        "/q0",
        json!({"action": "rollback", "transaction": "tx-none"}),
        404,
    )?;
    // The engine's refusals.
    post(
        &mut f,
        "a duplicate unique value",
        "/q0",
        json!({"action": "create", "class": SHIP, "bucket": {"name": "Sulaco", "serial": "N-3"}}),
        409,
    )?;
    post(
        &mut f,
        "a bucket missing a required field",
        "/q0",
        json!({"action": "create", "class": SHIP, "bucket": {}}),
        422,
    )?;
    post(
        &mut f,
        "an unknown key in a class definition",
        "/import_schema",
        json!({"classes": [{"name": "example.org/x/y", "bogus": 1}]}),
        422,
    )?;
    post(
        &mut f,
        "an unknown class",
        "/by_class",
        json!({"class": "example.org/no/such"}),
        404,
    )?;
    post(
        &mut f,
        "an unknown pk",
        "/record_by_pk",
        json!({"pk": "no-such-pk"}),
        404,
    )?;
    post(
        &mut f,
        "an update with neither bucket nor class",
        "/q0",
        json!({"action": "update", "pk": pk}),
        400,
    )?;
    post(
        &mut f,
        "delete",
        "/q0",
        json!({"action": "delete", "pk": pk}),
        200,
    )?;
    post(
        &mut f,
        "a deleted record",
        "/record_by_pk",
        json!({"pk": pk}),
        410,
    )?;
    post(
        &mut f,
        "an unknown action",
        "/q0",
        json!({"action": "frobnicate"}),
        501,
    )?;
    post(&mut f, "no action", "/q0", json!({}), 400)?;
    post(
        &mut f,
        "an empty class name",
        "/q0",
        json!({"action": "select", "class": ""}),
        400,
    )?;
    post(
        &mut f,
        "an empty class name",
        "/by_class",
        json!({"class": ""}),
        400,
    )?;
    post(
        &mut f,
        "an unknown key",
        "/q0",
        json!({"action": "select", "bogus": 1}),
        400,
    )?;
    post(
        &mut f,
        "an unknown key in a block",
        "/q0",
        json!({"action": "select", "then": {"bogus": 1}}),
        400,
    )?;
    post(&mut f, "an unknown key", "/export_schema", json!({"x": 1}), 400)?;
    post(
        &mut f,
        "a wrong type",
        "/q0",
        json!({"action": "select", "limit": "ten"}),
        400,
    )?;
    post(
        &mut f,
        "a bad worldlet format",
        "/import_worldlet",
        json!({"worldlet": {"format": ""}}),
        400,
    )?;
    post(&mut f, "a body that is not an object", "/q0", json!([1]), 400)?;
    post(&mut f, "an unknown route", "/no_such_operation", json!({}), 404)?;
    post(&mut f, "an unknown route of two segments", "/a/b", json!({}), 404)?;
    let answer = target.request("POST", "/q0", "", Some(b"{\"action\": "))?;
    f.see(&contract, "malformed JSON", "POST", "/q0", 400, &answer);
    // The toolbox's own routes.
    for path in ["/stats", "/monitor", "/monitor?after=0"] {
        let answer = target.request("GET", path, "X-Deadline-Ms: 100\r\n", None)?;
        f.see(&contract, "a watch route", "GET", path, 200, &answer);
    }
    post(&mut f, "a POST to a watch route", "/stats", json!({}), 404)?;
    // Other methods.
    for method in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "HEAD"] {
        for path in ["/q0", "/record_by_pk", "/nowhere", "/a/b"] {
            let answer = target.request(method, path, "", None)?;
            f.see(&contract, "another method", method, path, 405, &answer);
            if answer.header("allow") != Some("POST") {
                f.0.push(format!("{method} {path}: Allow {:?}", answer.header("allow")));
            }
        }
    }
    // The transport's refusals.
    for (what, authorization) in [
        ("no token", ""),
        ("a wrong token", "Authorization: Bearer 00\r\n"),
    ] {
        let answer = target.raw(
            format!("POST /q0 HTTP/1.1\r\nHost: localhost\r\n{authorization}Content-Length: 2\r\n\r\n{{}}")
                .as_bytes(),
        )?;
        f.see(&contract, what, "POST", "/q0", 401, &answer);
        if answer.header("www-authenticate") != Some("Bearer realm=\"caspian-ipc\"") {
            f.0.push(format!(
                "{what}: WWW-Authenticate {:?}",
                answer.header("www-authenticate")
            ));
        }
    }
    let answer = target.raw(b"NOT HTTP AT ALL\r\n\r\n")?;
    f.see(&contract, "a malformed head", "POST", "/q0", 400, &answer);
    let answer = target.raw(
        format!(
            "POST /q0 HTTP/1.1\r\n{}Content-Length: 1\r\nContent-Length: 2\r\n\r\n",
            target.auth()
        )
        .as_bytes(),
    )?;
    f.see(&contract, "disagreeing lengths", "POST", "/q0", 400, &answer);
    let answer = target.raw(
        format!(
            "POST /q0 HTTP/1.1\r\n{}Transfer-Encoding: chunked\r\n\r\nzz\r\n",
            target.auth()
        )
        .as_bytes(),
    )?;
    f.see(&contract, "a malformed chunk", "POST", "/q0", 400, &answer);
    let answer = target.request("POST", &format!("/{}", "a".repeat(70_000)), "", Some(b"{}"))?;
    f.see(&contract, "a long path", "POST", "/q0", 431, &answer);
    let many: String = (0..120).map(|i| format!("X-Filler-{i}: 1\r\n")).collect();
    let answer = target.request("POST", "/q0", &many, Some(b"{}"))?;
    f.see(&contract, "too many header lines", "POST", "/q0", 431, &answer);
    let answer = target.raw(
        format!(
            "POST /q0 HTTP/1.1\r\n{}Content-Length: 99999999\r\n\r\n",
            target.auth()
        )
        .as_bytes(),
    )?;
    f.see(&contract, "a declared oversize body", "POST", "/q0", 413, &answer);
    let answer = target.raw(
        format!(
            "POST /set_fields HTTP/1.1\r\n{}Content-Length: 10\r\n\r\n{{",
            target.auth()
        )
        .as_bytes(),
    )?;
    f.see(
        &contract,
        "a body that never finishes",
        "POST",
        "/set_fields",
        408,
        &answer,
    );
    let answer = target.raw(format!("POST /q0 HTTP/1.0\r\n{}\r\n", target.auth()).as_bytes())?;
    f.see(&contract, "HTTP/1.0 without a body", "POST", "/q0", 400, &answer);
    // The peer check: a process of another user.
    let answer = as_other_user(&target)?;
    f.see(&contract, "another user", "POST", "/q0", 403, &answer);
    drop(target);
    f.done()?;
    check_nothing_left()
}

/// A request from a child running as `nobody`, which the peer check refuses.
fn as_other_user(target: &Target) -> Result<Answer, Failed> {
    std::fs::set_permissions(target.server.dir.dir(), std::fs::Permissions::from_mode(0o711))?;
    std::fs::set_permissions(
        target.server.dir.socket_path(),
        std::fs::Permissions::from_mode(0o666),
    )?;
    let (read_end, write_end) = nix::unistd::pipe()?;
    let path = target.server.dir.socket_path().to_owned();
    let request = format!(
        "POST /q0 HTTP/1.1\r\nHost: localhost\r\n{}Content-Length: 2\r\n\r\n{{}}",
        target.auth()
    );
    // SAFETY: single-threaded test process; the child only calls and exits.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            drop(read_end);
            let mut out = std::fs::File::from(write_end);
            let answer = (|| -> Option<Vec<u8>> {
                nix::unistd::setuid(nix::unistd::Uid::from_raw(65534)).ok()?;
                let mut stream = UnixStream::connect(&path).ok()?;
                stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                stream.write_all(request.as_bytes()).ok()?;
                let mut answer = Vec::new();
                stream.read_to_end(&mut answer).ok()?;
                Some(answer)
            })()
            .unwrap_or_default();
            let _ = out.write_all(&answer);
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(write_end);
            let mut raw = Vec::new();
            std::fs::File::from(read_end).read_to_end(&mut raw)?;
            nix::sys::wait::waitpid(child, None)?;
            let (mut a, mut b) = std::os::unix::net::UnixStream::pair()?;
            a.write_all(&raw)?;
            drop(a);
            Ok(read_answer(&mut b, false)?)
        }
    }
}

/// The limits on connections and bodies in flight: 503 with the toolbox's bodies.
fn busy_servers_answer_as_documented() -> Outcome {
    let contract = Contract::new();
    let mut f = Findings::default();
    let target = Target::start(ServerConfig {
        max_body_bytes_in_flight: 1024,
        ..ServerConfig::default()
    })?;
    // Bytes received count, not the declared length: half of the body is over the budget.
    let mut raw = format!(
        "POST /q0 HTTP/1.1\r\n{}Content-Length: 4096\r\n\r\n",
        target.auth()
    )
    .into_bytes();
    raw.extend_from_slice(&[b' '; 2048]);
    let answer = target.raw(&raw)?;
    f.see(
        &contract,
        "too many body bytes at once",
        "POST",
        "/q0",
        503,
        &answer,
    );
    drop(target);
    let target = Target::start(ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    })?;
    // The one connection holds a transaction, so it is never evicted for a newcomer.
    let mut first = target.connect()?;
    let begin = json!({"action": "transaction"}).to_string();
    write!(
        first,
        "POST /q0 HTTP/1.1\r\n{}Content-Length: {}\r\n\r\n{begin}",
        target.auth(),
        begin.len()
    )?;
    let opened = read_answer(&mut first, false)?;
    f.see(&contract, "begin a transaction", "POST", "/q0", 200, &opened);
    let mut second = target.connect()?;
    let body = b"{\"action\": \"select\"}";
    write!(
        second,
        "POST /q0 HTTP/1.1\r\n{}Content-Length: {}\r\n\r\n",
        target.auth(),
        body.len()
    )?;
    second.write_all(body)?;
    let answer = read_answer(&mut second, false)?;
    f.see(&contract, "too many connections", "POST", "/q0", 503, &answer);
    drop(first);
    drop(target);
    f.done()?;
    check_nothing_left()
}

/// A connection of its own, for requests that must share it (a transaction's).
struct Session {
    stream: UnixStream,
    auth: String,
}

impl Session {
    fn open(target: &Target) -> Result<Session, Failed> {
        Ok(Session {
            stream: target.connect()?,
            auth: target.auth(),
        })
    }

    fn post(&mut self, path: &str, body: &Value) -> Result<Answer, Failed> {
        let body = body.to_string();
        write!(
            self.stream,
            "POST {path} HTTP/1.1\r\nHost: localhost\r\n{}Content-Length: {}\r\n\r\n{body}",
            self.auth,
            body.len()
        )?;
        Ok(read_answer(&mut self.stream, false)?)
    }
}

/// The transaction refusals: a nested transaction invalidated by its parent's rollback,
/// a holder cut at the maximum hold (the call it parked goes on), a placeholder never
/// defined.
fn transaction_refusals_answer_as_documented() -> Outcome {
    let contract = Contract::new();
    let mut f = Findings::default();
    let server = ForkedServer::start(ServerConfig::default(), || {
        MikobaseServer::new(Engine::memory())
            .max_hold(Some(Duration::from_millis(200)))
            .into_router()
            .map_err(|e| e.to_string())
    })?;
    let target = Target { server };
    let mut holder = Session::open(&target)?;
    let outer = holder.post("/q0", &json!({"action": "transaction"}))?;
    let outer = f.see(&contract, "begin", "POST", "/q0", 200, &outer)["results"]["transaction"].clone();
    let inner = holder.post("/q0", &json!({"action": "transaction"}))?;
    let inner =
        f.see(&contract, "begin nested", "POST", "/q0", 200, &inner)["results"]["transaction"].clone();
    let answer = holder.post("/q0", &json!({"action": "rollback", "transaction": outer}))?;
    f.see(&contract, "roll the outer one back", "POST", "/q0", 200, &answer);
    let answer = holder.post("/q0", &json!({"action": "commit", "transaction": inner}))?;
    f.see(
        &contract,
        "commit the invalidated one",
        "POST",
        "/q0",
        409,
        &answer,
    );
    let answer = holder.post("/q0", &json!({"action": "transaction"}))?;
    f.see(&contract, "begin again", "POST", "/q0", 200, &answer);
    // Parked behind the holder until the server cuts it at the maximum hold.
    let answer = target.request(
        "POST",
        "/q0",
        "X-Deadline-Ms: 10000\r\n",
        Some(json!({"action": "select"}).to_string().as_bytes()),
    )?;
    f.see(
        &contract,
        "a call parked until the holder is cut",
        "POST",
        "/q0",
        200,
        &answer,
    );
    let answer = holder.post("/by_class", &json!({"class": "puck.uno/record"}))?;
    f.see(
        &contract,
        "the holder after its cut",
        "POST",
        "/by_class",
        409,
        &answer,
    );
    // A placeholder is resolved when a record reaches it.
    let answer = target.post("/q0", &json!({"action": "create", "bucket": {"name": "Ripley"}}))?;
    f.see(&contract, "create", "POST", "/q0", 200, &answer);
    let answer = target.post(
        "/q0",
        &json!({"action": "select", "path": ["name", {"placeholder": "nowhere"}]}),
    )?;
    f.see(&contract, "an undefined placeholder", "POST", "/q0", 400, &answer);
    drop(holder);
    drop(target);
    f.done()?;
    check_nothing_left()
}

/// A strategy of JSON values that (mostly) match `schema`; `$ref`s resolve into `doc`.
fn values(doc: &Value, schema: &Value, depth: u32) -> BoxedStrategy<Value> {
    let leaf = || {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-5i64..100).prop_map(Value::from),
            "[a-z]{0,6}".prop_map(Value::from),
        ]
        .boxed()
    };
    let Some(object) = schema.as_object() else {
        return leaf();
    };
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/components/schemas/");
        let target = doc["components"]["schemas"][name].clone();
        let mut merged = object.clone();
        merged.remove("$ref");
        let inner = values(doc, &target, depth.saturating_sub(1));
        return if merged.keys().any(|k| k == "minLength") {
            inner
                .prop_filter("minLength", |v| v.as_str().is_none_or(|s| !s.is_empty()))
                .boxed()
        } else {
            inner
        };
    }
    if let Some(value) = object.get("const") {
        return Just(value.clone()).boxed();
    }
    if let Some(Value::Array(options)) = object.get("enum") {
        return proptest::sample::select(options.clone()).boxed();
    }
    for key in ["oneOf", "anyOf"] {
        if let (Some(Value::Array(branches)), None) = (object.get(key), object.get("type")) {
            let branches: Vec<BoxedStrategy<Value>> =
                branches.iter().map(|b| values(doc, b, depth)).collect();
            return proptest::strategy::Union::new(branches).boxed();
        }
    }
    match object.get("type").and_then(Value::as_str) {
        Some("string") => {
            if let Some(pattern) = object.get("pattern").and_then(Value::as_str) {
                let regex = format!("{}[0-9]", pattern.trim_start_matches('^'));
                return proptest::string::string_regex(&regex)
                    .map(|s| s.prop_map(Value::from).boxed())
                    .unwrap_or_else(|_| leaf());
            }
            let min = object.get("minLength").and_then(Value::as_u64).unwrap_or(0);
            let words = vec![
                "example.org/fleet/ship".to_owned(),
                "puck.uno/record".to_owned(),
                "name".to_owned(),
                "tx1".to_owned(),
            ];
            prop_oneof![proptest::sample::select(words), "[a-z./]{0,8}"]
                .prop_filter("minLength", move |s| s.chars().count() as u64 >= min)
                .prop_map(Value::from)
                .boxed()
        }
        Some("boolean") => any::<bool>().prop_map(Value::from).boxed(),
        Some("integer") => {
            let min = object.get("minimum").and_then(Value::as_i64).unwrap_or(-5);
            (min..min + 20).prop_map(Value::from).boxed()
        }
        Some("number") => prop_oneof![
            (-5i64..50).prop_map(Value::from),
            (-5.0f64..50.0).prop_map(Value::from)
        ]
        .boxed(),
        Some("null") => Just(Value::Null).boxed(),
        Some("array") if depth == 0 => Just(json!([])).boxed(),
        Some("array") => {
            let items = object.get("items").cloned().unwrap_or(json!({}));
            proptest::collection::vec(values(doc, &items, depth - 1), 0..=3)
                .prop_map(Value::Array)
                .boxed()
        }
        Some("object") => objects(doc, object, depth),
        _ if depth > 0 => prop_oneof![
            leaf(),
            proptest::collection::vec(leaf(), 0..3).prop_map(Value::Array)
        ]
        .boxed(),
        _ => leaf(),
    }
}

/// Objects of an object schema: the required properties, some optional ones (none past
/// the depth), those an `anyOf` of `required` lists need, and values of
/// `additionalProperties` when it is a schema.
fn objects(doc: &Value, object: &Map<String, Value>, depth: u32) -> BoxedStrategy<Value> {
    let required: Vec<String> = object
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let one_of_needed: Vec<String> = object
        .get("anyOf")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|b| b["required"][0].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut fields: Vec<BoxedStrategy<Option<(String, Value)>>> = Vec::new();
    if let Some(Value::Object(properties)) = object.get("properties") {
        for (name, schema) in properties {
            let key = name.clone();
            if required.contains(name) {
                let values = values(doc, schema, depth.saturating_sub(1));
                fields.push(values.prop_map(move |v| Some((key.clone(), v))).boxed());
            } else if depth > 0 {
                let values = values(doc, schema, depth - 1);
                fields.push(
                    proptest::option::weighted(0.5, values.prop_map(move |v| (key.clone(), v))).boxed(),
                );
            }
        }
    }
    let extra = match object.get("additionalProperties") {
        Some(schema @ Value::Object(_)) if depth > 0 => {
            proptest::collection::vec(("[a-z]{1,5}", values(doc, schema, depth - 1)), 0..3).boxed()
        }
        _ => Just(Vec::new()).boxed(),
    };
    let needed = if one_of_needed.is_empty() {
        Just(None).boxed()
    } else {
        let names = one_of_needed;
        let schemas: Vec<BoxedStrategy<(String, Value)>> = names
            .iter()
            .map(|n| {
                let key = n.clone();
                values(doc, &object["properties"][n], depth.saturating_sub(1))
                    .prop_map(move |v| (key.clone(), v))
                    .boxed()
            })
            .collect();
        proptest::strategy::Union::new(schemas).prop_map(Some).boxed()
    };
    (fields, extra, needed)
        .prop_map(|(fields, extra, needed)| {
            let mut map = Map::new();
            for (k, v) in extra {
                map.insert(k, v);
            }
            for (k, v) in fields.into_iter().flatten().chain(needed) {
                map.insert(k, v);
            }
            Value::Object(map)
        })
        .boxed()
}

/// Variations of a valid request: an unknown key, each top-level key left out, and each
/// top-level value replaced by `""`.
fn mutants(body: &Value) -> Vec<Value> {
    let Some(object) = body.as_object() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut unknown = object.clone();
    unknown.insert("zz_unknown".into(), json!(1));
    out.push(Value::Object(unknown));
    for key in object.keys().filter(|k| *k != "action") {
        let mut without = object.clone();
        without.remove(key);
        out.push(Value::Object(without));
        let mut empty = object.clone();
        empty.insert(key.clone(), json!(""));
        out.push(Value::Object(empty));
    }
    out
}

/// Requests generated from the document's request schemas: each valid one gets a status
/// the document lists for its route, with a body matching that status's schema.
fn generated_requests_get_documented_answers() -> Outcome {
    let contract = Contract::new();
    let target = Target::start(ServerConfig::default())?;
    // A class for generated requests to name.
    target.post(
        "/import_schema",
        &json!({"classes": [{"name": SHIP, "fields": {"name": {"class": "string"}}}]}),
    )?;
    let routes: Vec<String> = contract.doc["paths"]
        .as_object()
        .map(|p| {
            p.iter()
                .filter(|(k, item)| *k != "/{route}" && item["post"].get("requestBody").is_some())
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    // One strategy per operation (each Q0 action its own), so each is drawn as often.
    let mut strategies: Vec<BoxedStrategy<(String, Value)>> = Vec::new();
    for route in &routes {
        let schema =
            &contract.doc["paths"][route]["post"]["requestBody"]["content"]["application/json"]["schema"];
        let variants = match schema["oneOf"].as_array() {
            Some(actions) => actions.clone(),
            None => vec![schema.clone()],
        };
        for variant in variants {
            let route = route.clone();
            strategies.push(
                values(&contract.doc, &variant, 4)
                    .prop_map(move |body| (route.clone(), body))
                    .boxed(),
            );
        }
    }
    let strategy = proptest::strategy::Union::new(strategies);
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let mut checked = 0;
    let mut invalid = 0;
    let mut mutated = 0;
    let mut failures = Vec::new();
    // Bounded: at most this many draws for the 64 valid requests.
    for _ in 0..1000 {
        if checked == 64 {
            break;
        }
        let tree = strategy.new_tree(&mut runner).map_err(|e| e.to_string())?;
        let (route, body) = tree.current();
        if !contract.request_is_valid(&route, &body)? {
            // The few the strategy gets wrong: the schema refuses them, so must the server.
            let answer = target.post(&route, &body)?;
            if answer.status < 400 {
                failures.push(format!(
                    "request {body}: POST {route}: the document refuses it, the server answered {}: {}",
                    answer.status,
                    answer.text()
                ));
            }
            invalid += 1;
            continue;
        }
        checked += 1;
        let answer = target.post(&route, &body)?;
        if let Err(e) = contract.check_answer("POST", &route, &answer) {
            failures.push(format!("request {body}: {e}"));
        }
        // Its mutants: those the document refuses, the server must refuse too.
        for mutant in mutants(&body) {
            let answer = target.post(&route, &mutant)?;
            let refused = !contract.request_is_valid(&route, &mutant)?;
            if refused && answer.status < 400 {
                failures.push(format!(
                    "request {mutant}: POST {route}: the document refuses it, the server answered {}: {}",
                    answer.status,
                    answer.text()
                ));
            }
            if let Err(e) = contract.check_answer("POST", &route, &answer) {
                failures.push(format!("request {mutant}: {e}"));
            }
            mutated += 1;
        }
    }
    drop(target);
    check(
        checked == 64,
        format!("only {checked} valid requests were generated in 1000 draws ({invalid} invalid)"),
    )?;
    eprintln!("{checked} valid and {invalid} invalid generated requests, {mutated} mutants checked");
    check(failures.is_empty(), failures.join("\n"))?;
    check_nothing_left()
}

/// Every documented status of every POST route has a body schema that builds, and every
/// failure lists the ids of its status only.
fn the_document_is_well_formed() -> Outcome {
    let contract = Contract::new();
    let mut problems = Vec::new();
    let ids: HashMap<String, u64> = contract.doc["x-error-ids"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["id"].as_str().unwrap_or_default().to_owned(),
                e["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    for (path, item) in contract.doc["paths"].as_object().into_iter().flatten() {
        let item = item
            .as_object()
            .map(|m| m.iter().filter(|(k, _)| *k != "parameters").collect::<Vec<_>>())
            .unwrap_or_default();
        for (method, operation) in item {
            for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                let response = match response["$ref"].as_str() {
                    Some(shared) => {
                        &contract.doc["components"]["responses"]
                            [shared.trim_start_matches("#/components/responses/")]
                    }
                    None => response,
                };
                if response["content"].is_null() {
                    problems.push(format!("{method} {path} {status}: no body described"));
                }
                let schema = &response["content"]["application/json"]["schema"];
                if let Err(e) = contract.validator(&format!("{path} {method} {status}"), schema) {
                    problems.push(e);
                }
                let text = schema.to_string();
                for (id, id_status) in &ids {
                    if text.contains(&format!("\"{id}\""))
                        && status != "404"
                        && status != "405"
                        && *status != id_status.to_string()
                    {
                        problems.push(format!(
                            "{method} {path} {status} names `{id}`, whose status is {id_status}"
                        ));
                    }
                }
            }
        }
    }
    check(problems.is_empty(), problems.join("\n"))
}

fn main() {
    run_serially(vec![
        Trial::test("the_document_is_well_formed", the_document_is_well_formed),
        Trial::test(
            "every_operation_answers_as_documented",
            every_operation_answers_as_documented,
        ),
        Trial::test(
            "busy_servers_answer_as_documented",
            busy_servers_answer_as_documented,
        ),
        Trial::test(
            "transaction_refusals_answer_as_documented",
            transaction_refusals_answer_as_documented,
        ),
        Trial::test(
            "generated_requests_get_documented_answers",
            generated_requests_get_documented_answers,
        ),
    ])
}
