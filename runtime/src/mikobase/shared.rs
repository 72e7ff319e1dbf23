//! The shared Mikobase: one server process owns the engine; `n` forked workers each get a
//! [`Db`], the generated client over HTTP on the server's Unix socket. Assembled from the
//! toolbox (server, client, auth, orchestration), the generated dispatch table and client
//! proxy, and the engine: no per-method glue.
//!
//! Across workers every call is atomic and sees the store as it stands when the server
//! handles it. A worker's open transaction gives it exclusive use of the store: the other
//! workers' calls wait (within their deadline, then `transaction-busy`) until it commits or
//! rolls back; if the holder dies or its connection drops, its transaction is rolled back.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{json, Map, Value};

use super::engine::{Engine, Storage};
use super::generated::*;
use super::listeners::{Change, Intent, Listeners, Target, VetoScope};
use super::mode::Mode;
use super::support::{failure_envelope, CallContext, Failure, Reply};
use super::transport::UdsTransport;
use crate::error::{Error, Result};
use crate::fork::{Worker, WorkerOutcome, WorkerResult};
use crate::run::{run, RunOptions, Supervisor};
use crate::uds::monitor::{OpLog, MONITOR_PATH, STATS_PATH};
use crate::uds::{
    Client, ClientConfig, Request, Response, RouteError, RouteRequest, RouteResult, RouteState, Router, Token,
};

/// The shared-mikobase proxy a worker gets: every method is one request to the server.
///
/// It is the generated [`MikobaseClient`] over HTTP on the server's socket: one method per
/// operation of the spec, typed requests in, [`Answer`](super::Answer)s or typed
/// [`ClientError`](super::ClientError)s out, plus [`q0`](MikobaseClient::q0) for raw Q0
/// and [`records`](MikobaseClient::records) for `#[derive(Record)]` types.
///
/// ```no_run
/// use caspian_ipc::mikobase::{ClassFilter, ClientError, CreateRequest, SelectRequest};
/// use serde_json::json;
///
/// caspian_ipc::mikobase(2, |worker, db| {
///     let bucket = json!({"serial": format!("W-{}", worker.index())});
///     let created = db.create(&CreateRequest {
///         bucket: bucket.as_object().cloned().unwrap_or_default(),
///         ..Default::default()
///     })?; // the default class, `puck.uno/record`
///     let mine = db.select(&SelectRequest {
///         pk: Some(created.results.pk),
///         class: Some(ClassFilter::One("puck.uno/record".into())),
///         ..Default::default()
///     })?;
///     assert_eq!(mine.results.count, 1);
///     Ok::<_, ClientError>(())
/// })?;
/// # Ok::<_, caspian_ipc::Error>(())
/// ```
pub type Db = MikobaseClient<UdsTransport>;

/// Connects a process that was not forked by [`mikobase`] to a served store (see
/// `mikobase serve`), given the socket path and token.
///
/// ```no_run
/// // `mikobase serve --socket /run/crew/uds.sock` printed the socket path and the token.
/// let db = caspian_ipc::mikobase::connect("/run/crew/uds.sock", Some("<the printed token>"));
/// let envelope = db.q0(&serde_json::json!({"action": "select", "limit": 10}))?;
/// println!("{envelope}");
/// # Ok::<_, caspian_ipc::mikobase::ClientError>(())
/// ```
pub fn connect(path: impl AsRef<Path>, token: Option<&str>) -> Db {
    connect_with(path, token, Mode::Cold)
}

/// [`connect`] with the mode records come back in (the documents' `hot:` at connect).
pub fn connect_with(path: impl AsRef<Path>, token: Option<&str>, mode: Mode) -> Db {
    let client = Client::new(
        path.as_ref(),
        token.map(Token::from_string),
        ClientConfig::default(),
    );
    MikobaseClient::new(UdsTransport::new(client).with_mode(mode))
}

/// A client of a shared mikobase served over TCP+TLS (`mikobase serve --listen`), on this
/// host or another: `url` is `caspian+tls://host:port`, `trust` what the server's
/// certificate must pass (checked before the token is sent), `token` the server's (from
/// its 0600 token file: [`crate::uds::Token::from_file`]). The trust files are read now.
#[cfg(feature = "tls")]
pub fn connect_tls(url: &str, trust: crate::uds::Trust, token: Token) -> crate::Result<Db> {
    let remote = crate::uds::Remote::tls(url, trust)?;
    let client = Client::remote(remote, token, ClientConfig::default());
    Ok(MikobaseClient::new(UdsTransport::new(client)))
}

/// The server side: the engine, its limits and its listeners. Serve it with
/// [`crate::uds::spawn_server`] or [`crate::uds::serve`].
pub struct MikobaseServer {
    engine: Engine,
    body_limit: usize,
    listeners: Listeners,
    /// How long one connection may keep a transaction open (`None`: for ever).
    max_hold: Option<Duration>,
    /// The connection holding the outermost open transaction, and since when.
    hold: Option<Hold>,
    /// Connections whose transaction was cut at the maximum hold, not told yet.
    expired: HashMap<u64, Value>,
    /// Counts requests; keeps the latest for `GET /monitor` while someone watches.
    log: OpLog,
    /// Whether `POST /worldlet` (the append-only ingress) is served.
    post_updates: bool,
}

/// Who holds the store, for the message a waiting worker gets.
#[derive(Debug, Clone, Copy)]
struct Hold {
    connection: u64,
    since: Instant,
    pid: i32,
    worker: Option<usize>,
}

impl Hold {
    fn describe(&self, now: Instant) -> Value {
        json!({
            "worker": self.worker,
            "pid": self.pid,
            "held_for_ms": now.saturating_duration_since(self.since).as_millis() as u64,
        })
    }
}

/// Default [`MikobaseServer::max_hold`]: longer than the default call deadline (30 s), so
/// a waiting worker gives up (`transaction-busy`) before a holder is cut.
pub const DEFAULT_MAX_HOLD: Duration = Duration::from_secs(60);

impl std::fmt::Debug for MikobaseServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MikobaseServer")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl MikobaseServer {
    /// Serves `engine`.
    pub fn new(engine: Engine) -> Self {
        MikobaseServer {
            engine,
            body_limit: crate::limits::DEFAULT_BODY_LIMIT,
            listeners: Listeners::default(),
            max_hold: Some(DEFAULT_MAX_HOLD),
            hold: None,
            expired: HashMap::new(),
            log: OpLog::new("shared-mikobase"),
            post_updates: false,
        }
    }

    /// Serves `POST /worldlet`, the append-only ingress (default off: the route then
    /// answers 403 `action-not-supported` saying how to turn it on). See
    /// [`MikobaseServer::post_worldlet`] and docs/PROTOCOL.md.
    pub fn post_updates(mut self, on: bool) -> Self {
        self.post_updates = on;
        self
    }

    /// How long one worker may keep a transaction open (default [`DEFAULT_MAX_HOLD`];
    /// `None`: for ever). Past it the transaction is rolled back, so the others go on,
    /// and the holder's next request answers `transaction-expired`.
    pub fn max_hold(mut self, max_hold: Option<Duration>) -> Self {
        self.max_hold = max_hold;
        self
    }

    /// Notes who holds the store after `request` was handled.
    fn track_hold(&mut self, request: &Request<'_>) {
        self.hold = match (self.engine.transaction_owner(), self.hold) {
            (None, _) => None,
            (Some(owner), Some(hold)) if hold.connection == owner => Some(hold),
            (Some(owner), _) => Some(Hold {
                connection: owner,
                since: Instant::now(),
                pid: if owner == request.connection {
                    request.peer.pid
                } else {
                    0
                },
                worker: request.worker.filter(|_| owner == request.connection),
            }),
        };
    }

    /// Runs `listener` before every create, update and delete is kept (inside the
    /// transaction, after the write); an `Err` vetoes it: the worker gets
    /// `rejected-by-listener` with the message, and the write (by default the whole
    /// transaction, see [`MikobaseServer::veto_scope`]) is rolled back. Runs in the server.
    pub fn before_save(
        mut self,
        listener: impl FnMut(&Change) -> std::result::Result<(), String> + 'static,
    ) -> Self {
        self.add_before_save(Target::All, listener);
        self
    }

    /// Runs `listener` after every create, update and delete once it is committed: at
    /// once outside a transaction, when the outermost transaction commits inside one, and
    /// never for a write that is rolled back. Runs in the server.
    pub fn after_save(mut self, listener: impl FnMut(&Change) + 'static) -> Self {
        self.add_after_save(Target::All, listener);
        self
    }

    /// [`MikobaseServer::before_save`] for the writes that hit `target` only.
    pub fn before_save_on(
        mut self,
        target: Target,
        listener: impl FnMut(&Change) -> std::result::Result<(), String> + 'static,
    ) -> Self {
        self.add_before_save(target, listener);
        self
    }

    /// [`MikobaseServer::after_save`] for the writes that hit `target` only.
    pub fn after_save_on(mut self, target: Target, listener: impl FnMut(&Change) + 'static) -> Self {
        self.add_after_save(target, listener);
        self
    }

    /// Registers a `before_save` listener on a server that is already serving (from code
    /// the serving process runs, e.g. a route or another listener's owner): it applies
    /// from the next write on.
    pub fn add_before_save(
        &mut self,
        target: Target,
        listener: impl FnMut(&Change) -> std::result::Result<(), String> + 'static,
    ) {
        self.listeners.add_before(target, Box::new(listener));
    }

    /// Registers an `after_save` listener on a server that is already serving.
    pub fn add_after_save(&mut self, target: Target, listener: impl FnMut(&Change) + 'static) {
        self.listeners.add_after(target, Box::new(listener));
    }

    /// What a `before_save` veto rolls back: the whole transaction (the default, as the
    /// Mikobase documents say) or only the vetoed write.
    pub fn veto_scope(mut self, scope: VetoScope) -> Self {
        self.listeners.veto = scope;
        self
    }
}

impl MikobaseService for MikobaseServer {
    fn select(&mut self, c: &CallContext, r: SelectRequest) -> Reply<SelectResult> {
        self.engine.select(c, r)
    }
    fn create(&mut self, c: &CallContext, r: CreateRequest) -> Reply<PkResult> {
        if self.listeners.is_empty() {
            return self.engine.create(c, r);
        }
        let (class, bucket) = (r.class.clone(), r.bucket.clone());
        let pk_of = |p: &PkResult| p.pk.clone();
        let intent = Intent {
            action: "create",
            pk: None,
            class: class.as_deref(),
            bucket: Some(&bucket),
        };
        self.listeners
            .write(&mut self.engine, c, intent, pk_of, |e| e.create(c, r))
    }
    fn update(&mut self, c: &CallContext, r: UpdateRequest) -> Reply<PkResult> {
        if self.listeners.is_empty() {
            return self.engine.update(c, r);
        }
        let (pk, class, bucket) = (r.pk.clone(), r.class.clone(), r.bucket.clone());
        let pk_of = |p: &PkResult| p.pk.clone();
        let intent = Intent {
            action: "update",
            pk: Some(&pk),
            class: class.as_deref(),
            bucket: bucket.as_ref(),
        };
        self.listeners
            .write(&mut self.engine, c, intent, pk_of, |e| e.update(c, r))
    }
    fn delete(&mut self, c: &CallContext, r: DeleteRequest) -> Reply<DeleteResult> {
        if self.listeners.is_empty() {
            return self.engine.delete(c, r);
        }
        let pk = r.pk.clone();
        let pk_of = |d: &DeleteResult| d.pk.clone();
        let intent = Intent {
            action: "delete",
            pk: Some(&pk),
            class: None,
            bucket: None,
        };
        self.listeners
            .write(&mut self.engine, c, intent, pk_of, |e| e.delete(c, r))
    }
    fn set_fields(&mut self, c: &CallContext, r: SetFieldsRequest) -> Reply<PkResult> {
        let update = self.engine.merged_update(r).map_err(|problem| Failure {
            errors: vec![problem],
            warnings: Vec::new(),
        })?;
        self.update(c, update)
    }
    fn transaction(&mut self, c: &CallContext, r: TransactionRequest) -> Reply<TransactionResult> {
        self.engine.transaction(c, r)
    }
    fn commit(&mut self, c: &CallContext, r: CommitRequest) -> Reply<EndResult> {
        let reply = self.engine.commit(c, r);
        self.listeners.fold_committed(self.engine.transaction_depth());
        reply
    }
    fn rollback(&mut self, c: &CallContext, r: RollbackRequest) -> Reply<EndResult> {
        let reply = self.engine.rollback(c, r);
        self.listeners.forget_rolled_back(self.engine.transaction_depth());
        reply
    }
    fn record_by_pk(&mut self, c: &CallContext, r: RecordByPkRequest) -> Reply<Record> {
        MikobaseService::record_by_pk(&mut self.engine, c, r)
    }
    fn by_class(&mut self, c: &CallContext, r: ByClassRequest) -> Reply<SelectResult> {
        MikobaseService::by_class(&mut self.engine, c, r)
    }
    fn validate(&mut self, c: &CallContext, r: ValidateRequest) -> Reply<ValidationReport> {
        MikobaseService::validate(&mut self.engine, c, r)
    }
    fn properties(&mut self, c: &CallContext, r: PropertiesRequest) -> Reply<Properties> {
        MikobaseService::properties(&mut self.engine, c, r)
    }
    fn export_schema(&mut self, c: &CallContext, r: ExportSchemaRequest) -> Reply<Schema> {
        MikobaseService::export_schema(&mut self.engine, c, r)
    }
    fn import_schema(&mut self, c: &CallContext, r: ImportSchemaRequest) -> Reply<ImportResult> {
        MikobaseService::import_schema(&mut self.engine, c, r)
    }
    fn export_worldlet(&mut self, c: &CallContext, r: ExportWorldletRequest) -> Reply<Worldlet> {
        MikobaseService::export_worldlet(&mut self.engine, c, r)
    }
    fn import_worldlet(&mut self, c: &CallContext, r: ImportWorldletRequest) -> Reply<ImportResult> {
        MikobaseService::import_worldlet(&mut self.engine, c, r)
    }
}

/// The holder hooks: while a worker's transaction is open, only that worker is served;
/// the others are parked (up to their deadline) without blocking it.
impl RouteState for MikobaseServer {
    /// While a worker's transaction is open, only that worker is served; a watcher's
    /// `/monitor` and `/stats` never wait for it (`/monitor` waits for news only).
    fn ready(&self, request: &Request<'_>) -> bool {
        if OpLog::is_own(request) {
            return !self.log.is_waiting(request);
        }
        self.engine
            .transaction_owner()
            .is_none_or(|owner| owner == request.connection)
    }

    fn handled(&mut self, request: &Request<'_>, response: &Response) {
        self.log.record(request, response);
    }

    fn busy(&self, request: &Request<'_>) -> Response {
        if OpLog::is_own(request) {
            return self.log.idle(request);
        }
        let failure = Failure::one(
            ErrorId::TransactionBusy.as_str(),
            json!({
                "reason": "another worker's transaction held the store for this call's whole deadline",
                "holder": self.hold.map(|hold| hold.describe(Instant::now())),
                "max_hold_ms": self.max_hold.map(|d| d.as_millis() as u64),
            }),
        );
        Response::json(
            ErrorId::TransactionBusy.http_status(),
            &failure_envelope(&failure),
        )
    }

    /// A worker that went away (exited, was killed) leaves no transaction open.
    fn connection_closed(&mut self, connection: u64) {
        self.engine.release_owner(connection);
        self.listeners.forget_rolled_back(self.engine.transaction_depth());
        self.expired.remove(&connection);
        if self.holds(connection) {
            self.hold = None;
        }
    }

    /// The holder's connection is neither idle-closed nor evicted.
    fn holds(&self, connection: u64) -> bool {
        self.hold.is_some_and(|hold| hold.connection == connection)
    }

    fn next_deadline(&self) -> Option<Instant> {
        Some(self.hold?.since + self.max_hold?)
    }

    /// The holder kept its transaction past the maximum hold: roll it back.
    fn deadline_passed(&mut self, now: Instant) {
        let (Some(hold), Some(max_hold), Some(due)) = (self.hold, self.max_hold, self.next_deadline()) else {
            return;
        };
        if now < due {
            return;
        }
        let details = json!({
            "held_for_ms": now.saturating_duration_since(hold.since).as_millis() as u64,
            "max_hold_ms": max_hold.as_millis() as u64,
            "reason": "the transaction was held open longer than the server's maximum hold, so it was rolled back for the others to go on",
            "fix": "its work is gone: keep transactions short (do slow work outside them), or raise the maximum hold",
        });
        self.engine.expire_owner(hold.connection, &details);
        self.listeners.forget_rolled_back(self.engine.transaction_depth());
        self.expired.insert(hold.connection, details);
        self.hold = None;
    }
}

/// Methods other than POST: the server's routes are all POST, and the refusal is a
/// Mikobase envelope like every other answer of this server.
const NOT_POST: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::TRACE,
];

impl MikobaseServer {
    /// The server as a [`Router`] of the toolbox, the way a user's server is built: every
    /// POST goes to the generated dispatch table, which knows the spec's routes and
    /// answers an unknown one as a Mikobase envelope, except `POST /worldlet`
    /// ([`MikobaseServer::post_worldlet`], refused unless
    /// [`MikobaseServer::post_updates`]); other methods get the 405 envelope.
    /// Serve it with [`crate::uds::serve`] or [`crate::uds::spawn_server`].
    pub fn into_router(self) -> std::result::Result<Router<MikobaseServer>, RouteError> {
        NOT_POST
            .into_iter()
            .fold(
                Router::builder(self)
                    .post("/{*operation}", MikobaseServer::answer)
                    .post(WORLDLET_PATH, MikobaseServer::post_worldlet)
                    .get(
                        MONITOR_PATH,
                        |server: &mut MikobaseServer, r: &RouteRequest<'_>| Ok(server.log.monitor(r)),
                    )
                    .get(STATS_PATH, |server: &mut MikobaseServer, _: &RouteRequest<'_>| {
                        Ok(server.log.stats())
                    }),
                |router, method| router.route(method, "/{*operation}", |_, request| Err(not_post(request))),
            )
            .build()
    }

    /// One POST: a transaction expiry to report, or the generated dispatch table.
    fn answer(&mut self, request: &RouteRequest<'_>) -> RouteResult {
        if let Some(details) = self.expired.remove(&request.connection) {
            let failure = Failure::one(ErrorId::TransactionExpired.as_str(), details);
            return Err(Response::json(
                ErrorId::TransactionExpired.http_status(),
                &failure_envelope(&failure),
            ));
        }
        let context = CallContext {
            owner: request.connection,
        };
        let limit = self.body_limit;
        let (status, body) = dispatch(self, &context, request.path, request.body, limit);
        self.track_hold(request);
        Ok(Response::json_bytes(status, body))
    }
}

/// The append-only ingress route (`mikobase serve --post-updates`).
pub const WORLDLET_PATH: &str = "/worldlet";

/// The stored record `pk` in the form a posted worldlet entry is compared in: its
/// `bucket` and `stack` (`updated_at` is when it was stored, not what it holds).
fn stored_content(record: &Value) -> Value {
    json!({ "bucket": record["bucket"], "stack": record["stack"] })
}

/// A posted worldlet entry as `{bucket, stack}`, the way an import stores it: the
/// whole-hash form of a class definition (`{"class": "puck.uno/class", "name", ...}`),
/// the long form `{class, bucket}` or `{bucket, stack}`. `None`: not an object.
fn posted_content(entry: &Value) -> Option<Value> {
    const CLASS_CLASS: &str = "puck.uno/class";
    let entry = entry.as_object()?;
    let platters = |class: &str| json!({ "shadow": {}, "a": { "class": class } });
    if entry.get("class").and_then(Value::as_str) == Some(CLASS_CLASS) {
        let mut bucket = entry.clone();
        bucket.shift_remove("class");
        bucket.shift_remove("updated_at");
        return Some(json!({ "bucket": bucket, "stack": platters(CLASS_CLASS) }));
    }
    let bucket = match entry.get("bucket") {
        None | Some(Value::Null) => json!({}),
        Some(bucket) => bucket.clone(),
    };
    let stack = match (entry.get("stack"), entry.get("class")) {
        (Some(stack), _) if !stack.is_null() => stack.clone(),
        (_, Some(Value::String(class))) => platters(class),
        _ => platters("puck.uno/record"),
    };
    Some(json!({ "bucket": bucket, "stack": stack }))
}

/// A refusal of the whole `POST /worldlet` body, as a Mikobase envelope.
fn worldlet_refusal(id: ErrorId, status: u16, details: Value) -> RouteResult {
    Err(Response::json(
        status,
        &failure_envelope(&Failure::one(id.as_str(), details)),
    ))
}

impl MikobaseServer {
    /// `POST /worldlet`: appends a worldlet's records, all or nothing. Per record (by
    /// pk): one identical to the stored one (same `bucket` and `stack`) is skipped; one
    /// whose pk is stored with other content, or deleted, is rejected; a new one is
    /// accepted. Any rejection, or any problem the import finds in the accepted ones,
    /// writes nothing. Answers `{"success", "accepted": [pk], "skipped": [pk],
    /// "rejected": [{"pk", "reason", ...}]}` (200 when written, 409 on a conflict, the
    /// import problem's status otherwise).
    ///
    /// Built from the engine's public calls: one `record_by_pk` per posted record, then
    /// one `import_worldlet` of the accepted ones; the server handles one request at a
    /// time, so nothing can come between the checks and the write.
    pub fn post_worldlet(&mut self, request: &RouteRequest<'_>) -> RouteResult {
        if !self.post_updates {
            return worldlet_refusal(
                ErrorId::ActionNotSupported,
                403,
                json!({
                    "route": "POST /worldlet",
                    "reason": "this server does not take posted updates",
                    "fix": "start the server with `mikobase serve --post-updates` (MikobaseServer::post_updates(true))",
                }),
            );
        }
        if self.engine.is_read_only() {
            let id = ErrorId::ReadOnlyConnection;
            return worldlet_refusal(
                id,
                id.http_status(),
                json!({ "route": "POST /worldlet", "fix": "serve the store read-write to post updates" }),
            );
        }
        if self.engine.transaction_owner().is_some() {
            return worldlet_refusal(
                ErrorId::InvalidRequest,
                409,
                json!({
                    "route": "POST /worldlet",
                    "reason": "a transaction is open on this connection",
                    "fix": "POST /worldlet stands alone: commit or roll back the transaction first",
                }),
            );
        }
        let worldlet: Value = match serde_json::from_slice(request.body) {
            Ok(value) => value,
            Err(e) => {
                return worldlet_refusal(
                    ErrorId::InvalidRequest,
                    400,
                    json!({ "reason": format!("the body is not JSON: {e}"), "fix": "send a worldlet {\"format\": \"worldlet/1.0\", \"records\": {pk: record}}" }),
                )
            }
        };
        let format = worldlet.get("format").and_then(Value::as_str).unwrap_or_default();
        if !format.starts_with("worldlet/1.") {
            return worldlet_refusal(
                ErrorId::InvalidRequest,
                400,
                json!({ "format": worldlet.get("format"), "fix": "a worldlet has \"format\": \"worldlet/1.0\"" }),
            );
        }
        let sections: Vec<&str> = ["history", "files", "file_chunks"]
            .into_iter()
            .filter(|key| match worldlet.get(*key) {
                None | Some(Value::Null) => false,
                Some(Value::Object(m)) => !m.is_empty(),
                Some(Value::Array(a)) => !a.is_empty(),
                Some(_) => true,
            })
            .collect();
        if !sections.is_empty() {
            return worldlet_refusal(
                ErrorId::InvalidRequest,
                400,
                json!({
                    "unsupported_sections": sections,
                    "fix": "this engine stores records only (no history, no files): post the worldlet without those sections",
                }),
            );
        }
        let records = match worldlet.get("records") {
            Some(Value::Object(records)) if worldlet.is_object() => records.clone(),
            None if worldlet.is_object() => Map::new(),
            _ => {
                return worldlet_refusal(
                    ErrorId::InvalidRequest,
                    400,
                    json!({ "reason": "the body is not a worldlet with a `records` object", "fix": "send a worldlet {\"format\": \"worldlet/1.0\", \"records\": {pk: record}}" }),
                )
            }
        };
        let (mut accepted, mut skipped, mut rejected) = (Map::new(), Vec::new(), Vec::new());
        for (pk, entry) in records {
            let stored = self.engine.record_by_pk(&pk);
            let missing = stored["errors"][0]["id"].as_str();
            if stored["success"] == true {
                let same =
                    posted_content(&entry).is_some_and(|posted| posted == stored_content(&stored["results"]));
                if same {
                    skipped.push(json!(pk));
                } else {
                    rejected.push(json!({
                        "pk": pk,
                        "reason": "conflict: a record with this pk is stored with other content",
                        "stored": stored_content(&stored["results"]),
                        "fix": "posted updates only append: post new records under new pks",
                    }));
                }
            } else if missing == Some(ErrorId::RecordNotFound.as_str()) {
                accepted.insert(pk, entry);
            } else {
                rejected.push(json!({
                    "pk": pk,
                    "reason": match missing {
                        Some(id) if id == ErrorId::RecordDeleted.as_str() => "conflict: the record with this pk was deleted".to_owned(),
                        _ => format!("the stored record cannot be read: {}", stored["errors"]),
                    },
                    "fix": "posted updates only append: post new records under new pks",
                }));
            }
        }
        let answer = |status: u16, accepted: Vec<Value>, skipped: Vec<Value>, rejected: Vec<Value>| {
            Ok(Response::json(
                status,
                &json!({ "success": rejected.is_empty(), "accepted": accepted, "skipped": skipped, "rejected": rejected }),
            ))
        };
        if !rejected.is_empty() {
            return answer(409, Vec::new(), skipped, rejected);
        }
        if accepted.is_empty() {
            return answer(200, Vec::new(), skipped, Vec::new());
        }
        let pks: Vec<Value> = accepted.keys().map(|pk| json!(pk)).collect();
        let mut body = worldlet.as_object().cloned().unwrap_or_default();
        body.insert("records".into(), Value::Object(accepted));
        let imported = self.engine.import_worldlet(&Value::Object(body));
        if imported["success"] == true {
            return answer(200, pks, skipped, Vec::new());
        }
        let problems = imported["errors"].as_array().cloned().unwrap_or_default();
        let status = problems
            .first()
            .and_then(|p| ErrorId::from_wire(p["id"].as_str()?))
            .map_or(422, ErrorId::http_status);
        let rejected = problems
            .into_iter()
            .map(|problem| {
                json!({
                    "pk": problem["details"]["record"],
                    "reason": problem["id"],
                    "details": problem["details"],
                })
            })
            .collect();
        answer(status, Vec::new(), skipped, rejected)
    }
}

fn not_post(request: &Request<'_>) -> Response {
    let failure = Failure::one(
        ErrorId::InvalidRequest.as_str(),
        json!({ "method": request.method.as_str(), "allowed": ["POST"], "fix": "send the request as a POST" }),
    );
    Response::json(405, &failure_envelope(&failure)).with_header("allow", "POST")
}

/// What a shared-mikobase run returns when every worker finished cleanly.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished<T = ()> {
    /// The final store as a worldlet: `{"format": "worldlet/1.0", "records": {pk: record}}`.
    pub worldlet: Value,
    /// How each worker went and what it returned (its closure's `Ok(value)`), in index
    /// order.
    pub workers: Vec<WorkerOutcome<T>>,
}

impl<T> Finished<T> {
    /// Each worker's value, in index order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.workers.iter().map(|worker| &worker.value)
    }
}

/// Runs `body` in `workers` forked processes sharing one in-memory Mikobase, and returns
/// the final store as a worldlet once every worker has finished. Failure rules are those
/// of [`crate::share()`]: failed workers are named and the worldlet is still returned (in
/// [`Error::WorkersFailed`]'s `state`).
///
/// ```no_run
/// use caspian_ipc::mikobase::{ClientError, CreateRequest};
/// use serde_json::json;
///
/// let finished = caspian_ipc::mikobase(4, |worker, db| {
///     let bucket = json!({"worker": worker.index()});
///     db.create(&CreateRequest {
///         bucket: bucket.as_object().cloned().unwrap_or_default(),
///         ..Default::default()
///     })?;
///     Ok::<_, ClientError>(())
/// })?;
/// assert_eq!(finished.workers.len(), 4);
/// println!("{}", finished.worldlet); // {"format": "worldlet/1.0", "records": {...}}
/// # Ok::<_, caspian_ipc::Error>(())
/// ```
pub fn mikobase<F, R>(workers: usize, body: F) -> Result<Finished<R::Value>>
where
    F: Fn(Worker, Db) -> R,
    R: WorkerResult,
{
    Mikobase::new(workers).run(body)
}

/// A shared-mikobase run with options.
///
/// ```no_run
/// use std::time::Duration;
/// use caspian_ipc::mikobase::{ClientError, CreateRequest, Mikobase};
/// use serde_json::json;
///
/// let finished = Mikobase::new(4)
///     // Applied in the server before any worker is forked.
///     .schema(json!({"classes": [{
///         "name": "example.org/crew/officer",
///         "fields": {"serial": {"class": "string", "required": true, "unique": true}},
///     }]}))
///     // Runs in the server before every write; an `Err` vetoes it.
///     .before_save(|change| match change.bucket.as_ref().and_then(|b| b.get("serial")) {
///         Some(serial) if serial.as_str().is_some_and(|s| s.starts_with("CM-")) => Ok(()),
///         Some(serial) => Err(format!("serial {serial} is not a Colonial Marines serial")),
///         None => Ok(()), // a delete
///     })
///     .max_hold(Some(Duration::from_secs(10))) // longest transaction of one worker
///     .timeout(Duration::from_secs(60))
///     .run(|worker, db| {
///         let bucket = json!({"serial": format!("CM-{}", worker.index())});
///         db.create(&CreateRequest {
///             class: Some("example.org/crew/officer".into()),
///             bucket: bucket.as_object().cloned().unwrap_or_default(),
///             ..Default::default()
///         })?;
///         Ok::<_, ClientError>(())
///     })?;
/// println!("{}", finished.worldlet);
/// # Ok::<_, caspian_ipc::Error>(())
/// ```
pub struct Mikobase<'a> {
    options: RunOptions,
    storage: Storage,
    schema: Option<Value>,
    listeners: Listeners,
    max_hold: Option<Duration>,
    mode: Mode,
    supervisor: Option<Supervisor<'a>>,
}

impl<'a> Mikobase<'a> {
    /// A run with `workers` workers on an in-memory store.
    pub fn new(workers: usize) -> Self {
        Mikobase {
            options: RunOptions::new(workers),
            storage: Storage::Memory,
            schema: None,
            listeners: Listeners::default(),
            max_hold: Some(DEFAULT_MAX_HOLD),
            mode: Mode::Cold,
            supervisor: None,
        }
    }

    /// How long one worker may keep a transaction open (default 60 s; `None`: for ever).
    /// Past it the transaction is rolled back so the others go on, and the holder's next
    /// call fails with `transaction-expired`.
    pub fn max_hold(mut self, max_hold: Option<Duration>) -> Self {
        self.max_hold = max_hold;
        self
    }

    /// Where the store lives (default: in memory). A file persists after the run.
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// Class definitions (`{"classes": [...]}`) or a whole worldlet, applied in the server
    /// before any worker starts. A bad schema fails the run before forking any worker.
    pub fn schema(mut self, schema: Value) -> Self {
        self.schema = Some(schema);
        self
    }

    /// A listener run in the server before every write; `Err` vetoes the write.
    pub fn before_save(
        mut self,
        listener: impl FnMut(&Change) -> std::result::Result<(), String> + 'static,
    ) -> Self {
        self.listeners.add_before(Target::All, Box::new(listener));
        self
    }

    /// Runs `listener` in the server after every committed write (see
    /// [`MikobaseServer::after_save`]).
    pub fn after_save(mut self, listener: impl FnMut(&Change) + 'static) -> Self {
        self.listeners.add_after(Target::All, Box::new(listener));
        self
    }

    /// [`Mikobase::before_save`] for the writes that hit `target` only.
    pub fn before_save_on(
        mut self,
        target: Target,
        listener: impl FnMut(&Change) -> std::result::Result<(), String> + 'static,
    ) -> Self {
        self.listeners.add_before(target, Box::new(listener));
        self
    }

    /// [`Mikobase::after_save`] for the writes that hit `target` only.
    pub fn after_save_on(mut self, target: Target, listener: impl FnMut(&Change) + 'static) -> Self {
        self.listeners.add_after(target, Box::new(listener));
        self
    }

    /// The mode the workers' records come back in (cold by default: local copies; hot:
    /// live proxies), as the documents choose it at connect (D-M14).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// What a `before_save` veto rolls back (see [`MikobaseServer::veto_scope`]).
    pub fn veto_scope(mut self, scope: VetoScope) -> Self {
        self.listeners.veto = scope;
        self
    }

    crate::run::run_option_setters!();

    /// Runs `body` in every worker and returns the final store as a worldlet.
    pub fn run<F, R>(self, body: F) -> Result<Finished<R::Value>>
    where
        F: Fn(Worker, Db) -> R,
        R: WorkerResult,
    {
        let Mikobase {
            options,
            storage,
            schema,
            listeners,
            max_hold,
            mode,
            supervisor,
        } = self;
        let body_limit = options.server.body_limit;
        let make = move || {
            let engine = Engine::open(storage, "rw")
                .map_err(|p| format!("cannot open the store: {} {}", p.id, p.details))?;
            let mut server = MikobaseServer::new(engine).max_hold(max_hold);
            server.body_limit = body_limit;
            server.listeners.extend(listeners);
            if let Some(schema) = schema {
                let envelope = if schema.get("format").is_some() {
                    server.engine.import_worldlet(&schema)
                } else {
                    server.engine.import_schema(&schema)
                };
                if envelope["success"] != true {
                    return Err(format!("the schema was refused: {}", envelope["errors"]));
                }
            }
            server.into_router().map_err(|e| e.to_string())
        };
        let collect = |client: &Client| -> Result<Value> {
            let db = MikobaseClient::new(UdsTransport::new(client.clone()));
            let worldlet = db
                .export_worldlet(&ExportWorldletRequest::default())
                .map_err(|e| match e {
                    super::support::ClientError::Transport(e) => e,
                    other => Error::Protocol(other.to_string()),
                })?;
            serde_json::to_value(worldlet.results).map_err(|e| Error::Protocol(e.to_string()))
        };
        run(
            &options,
            supervisor,
            make,
            move |client| MikobaseClient::new(UdsTransport::new(client).with_mode(mode)),
            body,
            collect,
            "shared-mikobase",
        )
        .map(|(worldlet, workers)| Finished { worldlet, workers })
    }
}
