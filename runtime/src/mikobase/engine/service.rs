//! The engine as the generated service trait: each operation on its typed request,
//! answering its typed result. The generated dispatch table calls these for every entry
//! point (the socket, `Engine::q0`, the CLI, in-process clients); nothing else decodes a
//! request for the engine.

use serde_json::{json, Value};

use super::problem::{error, Problem};
use super::select;
use super::store;
use super::{fail, Engine};
use crate::mikobase::generated::*;
use crate::mikobase::reply::{Answer, CallContext, Failure, Reply};

/// A reply from an operation's outcome and the warnings gathered on the way.
fn reply<T>(outcome: Result<T, Vec<Problem>>, warnings: Vec<Problem>) -> Reply<T> {
    match outcome {
        Ok(results) => Ok(Answer { results, warnings }),
        Err(errors) => Err(Failure { errors, warnings }),
    }
}

/// A reply from an outcome with at most one problem and no warnings.
fn reply_one<T>(outcome: Result<T, Problem>) -> Reply<T> {
    reply(outcome.map_err(fail), Vec::new())
}

/// A typed result from the JSON an export builds (its shape is the spec's by
/// construction; a mismatch is the engine's bug, reported, never a panic).
fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Vec<Problem>> {
    serde_json::from_value(value).map_err(|e| {
        fail(error(
            ErrorId::StorageFailed,
            json!({ "storage_error": format!("a stored value does not have the documented shape: {e}"), "fix": "export the store with an older version, or report this" }),
        ))
    })
}

impl Engine {
    /// A request bound to a transaction must name an open one.
    fn bound(&self, transaction: Option<&str>) -> Result<(), Vec<Problem>> {
        match transaction {
            None => Ok(()),
            Some(id) => self.find(id).map(|_| ()).map_err(fail),
        }
    }

    /// A write's checks: a writable connection and, if bound, an open transaction.
    fn may_write(&self, transaction: Option<&str>) -> Result<(), Vec<Problem>> {
        self.writable("write").map_err(fail)?;
        self.bound(transaction)
    }

    /// Runs a write. On a shared store (PostgreSQL) outside any transaction it is a
    /// transaction of its own, so its reads, checks and write see one snapshot, run again
    /// (a bounded number of times) when it conflicted with another connection's write; a
    /// store with one connection (SQLite) just runs it.
    fn unit<T>(
        &mut self,
        mut body: impl FnMut(&mut Engine) -> Result<T, Vec<Problem>>,
    ) -> Result<T, Vec<Problem>> {
        if !self.store.shared() || self.store.in_transaction() {
            return body(self);
        }
        let mut attempt = 1;
        loop {
            self.store.savepoint("write").map_err(fail)?;
            let outcome = match self.refresh_classes().map_err(fail).and_then(|()| body(self)) {
                Ok(value) => self.store.release("write").map(|()| value).map_err(fail),
                Err(problems) => {
                    let _ = self.store.rollback_to("write");
                    Err(problems)
                }
            };
            match outcome {
                Ok(value) => return Ok(value),
                Err(problems) => {
                    // What the rolled-back write did to the classes is undone too.
                    let _ = self.refresh_classes();
                    if attempt >= WRITE_ATTEMPTS || !problems.iter().any(conflicted) {
                        return Err(problems);
                    }
                }
            }
            attempt += 1;
        }
    }

    /// Reloads the classes another server changed, before a read outside a transaction
    /// of a shared store.
    fn fresh(&mut self) -> Result<(), Vec<Problem>> {
        if self.store.shared() && !self.store.in_transaction() {
            self.refresh_classes().map_err(fail)?;
        }
        Ok(())
    }
}

/// How many times a write of its own is tried against concurrent writers.
const WRITE_ATTEMPTS: usize = 16;

/// Whether a write failed only because another connection wrote at the same time: a
/// serialization failure or deadlock (`retryable`), or a unique key taken by a record
/// this snapshot cannot see (no `existing_pk`). Run again, it sees the other write.
fn conflicted(problem: &Problem) -> bool {
    (problem.id == ErrorId::StorageFailed.as_str() && problem.details["retryable"] == true)
        || (problem.id == ErrorId::UniqueViolation.as_str() && problem.details["existing_pk"].is_null())
}

impl MikobaseService for Engine {
    fn select(&mut self, _: &CallContext, request: SelectRequest) -> Reply<SelectResult> {
        let mut warnings = Vec::new();
        let outcome = self.bound(request.transaction.as_deref()).and_then(|()| {
            self.fresh()?;
            let query = select::parse(&request, &mut warnings).map_err(fail)?;
            self.matching(&query)
                .map(super::matching::select_result)
                .map_err(fail)
        });
        reply(outcome, warnings)
    }

    fn create(&mut self, _: &CallContext, request: CreateRequest) -> Reply<PkResult> {
        let mut warnings = Vec::new();
        let outcome = self.may_write(request.transaction.as_deref()).and_then(|()| {
            self.unit(|engine| {
                warnings.clear();
                engine.create_record(request.clone(), &mut warnings)
            })
        });
        reply(outcome, warnings)
    }

    fn update(&mut self, _: &CallContext, request: UpdateRequest) -> Reply<PkResult> {
        let outcome = self
            .may_write(request.transaction.as_deref())
            .and_then(|()| self.unit(|engine| engine.update_record(request.clone())));
        reply(outcome, Vec::new())
    }

    fn delete(&mut self, _: &CallContext, request: DeleteRequest) -> Reply<DeleteResult> {
        let outcome = self
            .may_write(request.transaction.as_deref())
            .and_then(|()| self.unit(|engine| engine.delete_record(request.clone()).map_err(fail)));
        reply(outcome, Vec::new())
    }

    fn transaction(
        &mut self,
        context: &CallContext,
        request: TransactionRequest,
    ) -> Reply<TransactionResult> {
        reply_one(self.begin(context.owner, request.parent.as_deref()))
    }

    fn commit(&mut self, _: &CallContext, request: CommitRequest) -> Reply<EndResult> {
        reply_one(self.end(&request.transaction, true))
    }

    fn rollback(&mut self, _: &CallContext, request: RollbackRequest) -> Reply<EndResult> {
        reply_one(self.end(&request.transaction, false))
    }

    fn record_by_pk(&mut self, _: &CallContext, request: RecordByPkRequest) -> Reply<Record> {
        reply_one(self.live(&request.pk).map(store::Row::into_record))
    }

    fn by_class(&mut self, context: &CallContext, request: ByClassRequest) -> Reply<SelectResult> {
        let select = SelectRequest {
            class: Some(ClassFilter::One(request.class)),
            ..SelectRequest::default()
        };
        MikobaseService::select(self, context, select)
    }

    fn validate(&mut self, _: &CallContext, request: ValidateRequest) -> Reply<ValidationReport> {
        reply_one(Ok(self.dry_run(&Value::Object(request.query))))
    }

    fn export_schema(&mut self, _: &CallContext, _: ExportSchemaRequest) -> Reply<Schema> {
        reply(self.schema_json().and_then(typed), Vec::new())
    }

    fn import_schema(&mut self, _: &CallContext, request: ImportSchemaRequest) -> Reply<ImportResult> {
        let outcome = serde_json::to_value(&request.classes)
            .map_err(|e| fail(super::problem::invalid(json!({ "classes": e.to_string() }))))
            .and_then(|classes| self.import_schema_json(&json!({ "classes": classes })))
            .and_then(typed);
        reply(outcome, Vec::new())
    }

    fn export_worldlet(&mut self, _: &CallContext, _: ExportWorldletRequest) -> Reply<Worldlet> {
        reply(self.worldlet_json().and_then(typed), Vec::new())
    }

    fn import_worldlet(&mut self, _: &CallContext, request: ImportWorldletRequest) -> Reply<ImportResult> {
        let outcome = serde_json::to_value(&request.worldlet)
            .map_err(|e| fail(super::problem::invalid(json!({ "worldlet": e.to_string() }))))
            .and_then(|worldlet| self.import_worldlet_json(&worldlet))
            .and_then(typed);
        reply(outcome, Vec::new())
    }

    fn properties(&mut self, _: &CallContext, _: PropertiesRequest) -> Reply<Properties> {
        reply_one(self.executable().map(|executable| Properties { executable }))
    }

    fn set_fields(&mut self, context: &CallContext, request: SetFieldsRequest) -> Reply<PkResult> {
        if !self.store.shared() {
            return match self.merged_update(request) {
                Ok(update) => MikobaseService::update(self, context, update),
                Err(problem) => reply_one(Err(problem)),
            };
        }
        // Read, merge and write in one transaction: a concurrent write to the record
        // conflicts (and is retried) instead of being lost.
        let outcome = self.unit(|engine| {
            let update = engine.merged_update(request.clone()).map_err(fail)?;
            engine.may_write(update.transaction.as_deref())?;
            engine.update_record(update)
        });
        reply(outcome, Vec::new())
    }
}
