//! The shared Mikobase: one server process owns the engine; `n` forked workers each get a
//! [`Db`], the generated client over HTTP on the server's Unix socket. Assembled from the
//! toolbox (server, client, auth, orchestration), the generated dispatch table and client
//! proxy, and the engine: no per-method glue.
//!
//! Across workers every call is atomic and sees the store as it stands when the server
//! handles it. A worker's open transaction gives it exclusive use of the store: the other
//! workers' calls wait (within their deadline, then `transaction-busy`) until it commits or
//! rolls back; if the holder dies or its connection drops, its transaction is rolled back.

use std::path::Path;
use std::time::Duration;

use hyper::Method;
use serde_json::{json, Map, Value};

use super::engine::{Engine, Storage};
use super::engine_service::merged_update;
use super::generated::*;
use super::support::{failure_envelope, Answer, CallContext, Failure, Reply};
use super::transport::UdsTransport;
use crate::error::{Error, Result};
use crate::fork::{Worker, WorkerOutcome, WorkerResult};
use crate::run::{run, Progress, RunOptions, Supervision, Supervisor};
use crate::uds::{Client, ClientConfig, Handler, Request, Response, Token};

/// The shared-mikobase proxy a worker gets: every method is one request to the server.
pub type Db = MikobaseClient<UdsTransport>;

/// Connects a process that was not forked by [`mikobase`] to a served store (see
/// `mikobase serve`), given the socket path and token.
pub fn connect(path: impl AsRef<Path>, token: Option<&str>) -> Db {
    let client = Client::new(
        path.as_ref(),
        token.map(Token::from_string),
        ClientConfig::default(),
    );
    MikobaseClient::new(UdsTransport::new(client))
}

/// A write as listeners see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// `create`, `update` or `delete`.
    pub action: &'static str,
    /// The record's pk (`None` for a create before it happened).
    pub pk: Option<String>,
    /// The class named by the request, if any.
    pub class: Option<String>,
    /// The new bucket, if the request carries one.
    pub bucket: Option<Map<String, Value>>,
}

type BeforeSave = Box<dyn FnMut(&Change) -> std::result::Result<(), String>>;
type AfterSave = Box<dyn FnMut(&Change)>;

/// The server side: the engine, its limits and its listeners. Serve it with
/// [`crate::uds::spawn_server`] or [`crate::uds::serve`].
pub struct MikobaseServer {
    engine: Engine,
    body_limit: usize,
    before: Vec<BeforeSave>,
    after: Vec<AfterSave>,
}

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
            body_limit: 16 * 1024 * 1024,
            before: Vec::new(),
            after: Vec::new(),
        }
    }

    /// Runs `listener` before every create, update and delete; an `Err` vetoes the write
    /// (the worker gets `rejected-by-listener` with the message).
    pub fn before_save(
        mut self,
        listener: impl FnMut(&Change) -> std::result::Result<(), String> + 'static,
    ) -> Self {
        self.before.push(Box::new(listener));
        self
    }

    /// Runs `listener` after every successful create, update and delete.
    pub fn after_save(mut self, listener: impl FnMut(&Change) + 'static) -> Self {
        self.after.push(Box::new(listener));
        self
    }

    /// Runs a write through the listeners.
    fn write<T>(
        &mut self,
        change: Change,
        pk_of: impl Fn(&T) -> String,
        run: impl FnOnce(&mut Engine) -> Reply<T>,
    ) -> Reply<T> {
        for listener in &mut self.before {
            if let Err(message) = listener(&change) {
                return Err(Failure::one(
                    ErrorId::RejectedByListener.as_str(),
                    json!({ "message": message, "action": change.action }),
                ));
            }
        }
        let reply = run(&mut self.engine);
        if let Ok(Answer { results, .. }) = &reply {
            let done = Change {
                pk: Some(pk_of(results)),
                ..change
            };
            for listener in &mut self.after {
                listener(&done);
            }
        }
        reply
    }
}

impl MikobaseService for MikobaseServer {
    fn select(&mut self, c: &CallContext, r: SelectRequest) -> Reply<SelectResult> {
        self.engine.select(c, r)
    }
    fn create(&mut self, c: &CallContext, r: CreateRequest) -> Reply<PkResult> {
        let change = Change {
            action: "create",
            pk: None,
            class: r.class.clone(),
            bucket: Some(r.bucket.clone()),
        };
        self.write(change, |p: &PkResult| p.pk.clone(), |e| e.create(c, r))
    }
    fn update(&mut self, c: &CallContext, r: UpdateRequest) -> Reply<PkResult> {
        let change = Change {
            action: "update",
            pk: Some(r.pk.clone()),
            class: r.class.clone(),
            bucket: r.bucket.clone(),
        };
        self.write(change, |p: &PkResult| p.pk.clone(), |e| e.update(c, r))
    }
    fn delete(&mut self, c: &CallContext, r: DeleteRequest) -> Reply<DeleteResult> {
        let change = Change {
            action: "delete",
            pk: Some(r.pk.clone()),
            class: None,
            bucket: None,
        };
        self.write(change, |d: &DeleteResult| d.pk.clone(), |e| e.delete(c, r))
    }
    fn set_fields(&mut self, c: &CallContext, r: SetFieldsRequest) -> Reply<PkResult> {
        let update = merged_update(&mut self.engine, r)?;
        self.update(c, update)
    }
    fn transaction(&mut self, c: &CallContext, r: TransactionRequest) -> Reply<TransactionResult> {
        self.engine.transaction(c, r)
    }
    fn commit(&mut self, c: &CallContext, r: CommitRequest) -> Reply<EndResult> {
        self.engine.commit(c, r)
    }
    fn rollback(&mut self, c: &CallContext, r: RollbackRequest) -> Reply<EndResult> {
        self.engine.rollback(c, r)
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

impl Handler for MikobaseServer {
    /// While a worker's transaction is open, only that worker is served.
    fn ready(&self, request: &Request<'_>) -> bool {
        self.engine
            .transaction_owner()
            .is_none_or(|owner| owner == request.connection)
    }

    fn busy(&self, _: &Request<'_>) -> Response {
        let failure = Failure::one(
            ErrorId::TransactionBusy.as_str(),
            json!({ "reason": "another worker's transaction held the store for this call's whole deadline" }),
        );
        Response::json(
            ErrorId::TransactionBusy.http_status(),
            &failure_envelope(&failure),
        )
    }

    fn handle(&mut self, request: &Request<'_>) -> Response {
        if *request.method != Method::POST {
            let failure = Failure::one(
                ErrorId::InvalidRequest.as_str(),
                json!({ "method": request.method.as_str(), "allowed": ["POST"] }),
            );
            return Response::json(405, &failure_envelope(&failure)).with_header("allow", "POST");
        }
        let context = CallContext {
            owner: request.connection,
        };
        let limit = self.body_limit;
        let (status, body) = dispatch(self, &context, request.path, request.body, limit);
        Response::json_bytes(status, body)
    }

    /// A worker that went away (exited, was killed) leaves no transaction open.
    fn connection_closed(&mut self, connection: u64) {
        self.engine.release_owner(connection);
    }
}

/// What a shared-mikobase run returns when every worker finished cleanly.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// The final store as a worldlet: `{"format": "worldlet/1.0", "records": {pk: record}}`.
    pub worldlet: Value,
    /// How each worker went, in index order.
    pub workers: Vec<WorkerOutcome>,
}

/// Runs `body` in `workers` forked processes sharing one in-memory Mikobase, and returns
/// the final store as a worldlet once every worker has finished. Failure rules are those
/// of [`crate::share`]: failed workers are named and the worldlet is still returned (in
/// [`Error::WorkersFailed`]'s `state`).
pub fn mikobase<F, R>(workers: usize, body: F) -> Result<Finished>
where
    F: Fn(Worker, Db) -> R,
    R: WorkerResult,
{
    Mikobase::new(workers).run(body)
}

/// A shared-mikobase run with options.
pub struct Mikobase<'a> {
    options: RunOptions,
    storage: Storage,
    schema: Option<Value>,
    before: Vec<BeforeSave>,
    after: Vec<AfterSave>,
    supervisor: Option<Supervisor<'a>>,
}

impl<'a> Mikobase<'a> {
    /// A run with `workers` workers on an in-memory store.
    pub fn new(workers: usize) -> Self {
        Mikobase {
            options: RunOptions::new(workers),
            storage: Storage::Memory,
            schema: None,
            before: Vec::new(),
            after: Vec::new(),
            supervisor: None,
        }
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
        self.before.push(Box::new(listener));
        self
    }

    /// A listener run in the server after every successful write.
    pub fn after_save(mut self, listener: impl FnMut(&Change) + 'static) -> Self {
        self.after.push(Box::new(listener));
        self
    }

    /// Stops the workers still running after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Deadline of each call a worker makes (default 30 s); a call waiting behind another
    /// worker's transaction waits at most this long.
    pub fn call_deadline(mut self, deadline: Duration) -> Self {
        self.options.client.call_deadline = deadline;
        self
    }

    /// How long stopped children get between SIGTERM and SIGKILL (default 2 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.options.grace = grace;
        self
    }

    /// Forks even if this process has other threads (see [`crate::Error::ForkUnsafe`]).
    pub fn allow_threads(mut self, allow: bool) -> Self {
        self.options.allow_threads = allow;
        self
    }

    /// Calls `supervise` in the parent while the workers run.
    pub fn supervise(mut self, supervise: impl FnMut(&Progress) -> Supervision + 'a) -> Self {
        self.supervisor = Some(Box::new(supervise));
        self
    }

    /// Runs `body` in every worker and returns the final store as a worldlet.
    pub fn run<F, R>(self, body: F) -> Result<Finished>
    where
        F: Fn(Worker, Db) -> R,
        R: WorkerResult,
    {
        let Mikobase {
            options,
            storage,
            schema,
            before,
            after,
            supervisor,
        } = self;
        let make = move || {
            let engine = Engine::open(storage, "rw")
                .map_err(|p| format!("cannot open the store: {} {}", p.id, p.details))?;
            let mut server = MikobaseServer::new(engine);
            server.before = before;
            server.after = after;
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
            Ok(server)
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
            |client| MikobaseClient::new(UdsTransport::new(client)),
            body,
            collect,
        )
        .map(|(worldlet, workers)| Finished { worldlet, workers })
    }
}
