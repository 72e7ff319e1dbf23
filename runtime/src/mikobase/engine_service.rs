//! The engine behind the generated service trait: typed requests in, the engine's JSON
//! Q0 core underneath, typed replies out. No per-operation logic lives here.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::engine::Engine;
use super::generated::*;
use super::support::{Answer, CallContext, Failure, Problem, Reply};

/// Reads an envelope into a typed reply.
fn reply<T: DeserializeOwned>(mut envelope: Value) -> Reply<T> {
    let problems = |key: &str| -> Vec<Problem> {
        serde_json::from_value(envelope.get(key).cloned().unwrap_or(json!([]))).unwrap_or_default()
    };
    if envelope["success"] != true {
        return Err(Failure {
            errors: problems("errors"),
            warnings: problems("warnings"),
        });
    }
    let warnings = problems("warnings");
    serde_json::from_value(envelope["results"].take())
        .map(|results| Answer { results, warnings })
        .map_err(|e| {
            Failure::one(
                "invalid_request",
                json!({ "internal": format!("the engine answered an unexpected shape: {e}") }),
            )
        })
}

/// The `update` a `set_fields` request amounts to (D9): the record's current bucket with
/// `fields` set. The engine and the shared server both run it as that update, so
/// validation and listeners see one kind of write.
pub(super) fn merged_update(
    engine: &mut Engine,
    request: SetFieldsRequest,
) -> Result<UpdateRequest, Failure> {
    let current: Answer<Record> = reply(engine.record_by_pk(&request.pk))?;
    let mut bucket = current.results.bucket;
    bucket.extend(request.fields);
    Ok(UpdateRequest {
        pk: request.pk,
        bucket: Some(bucket),
        class: None,
        transaction: request.transaction,
    })
}

/// A typed Q0 request as the engine's JSON, with its action.
fn q0<R: Serialize>(action: &str, request: &R) -> Value {
    let mut value = serde_json::to_value(request).unwrap_or_else(|_| json!({}));
    value["action"] = json!(action);
    value
}

impl MikobaseService for Engine {
    fn select(&mut self, context: &CallContext, request: SelectRequest) -> Reply<SelectResult> {
        reply(self.q0_as(context.owner, &q0("select", &request)))
    }
    fn create(&mut self, context: &CallContext, request: CreateRequest) -> Reply<PkResult> {
        reply(self.q0_as(context.owner, &q0("create", &request)))
    }
    fn update(&mut self, context: &CallContext, request: UpdateRequest) -> Reply<PkResult> {
        reply(self.q0_as(context.owner, &q0("update", &request)))
    }
    fn delete(&mut self, context: &CallContext, request: DeleteRequest) -> Reply<DeleteResult> {
        reply(self.q0_as(context.owner, &q0("delete", &request)))
    }
    fn transaction(
        &mut self,
        context: &CallContext,
        request: TransactionRequest,
    ) -> Reply<TransactionResult> {
        reply(self.q0_as(context.owner, &q0("transaction", &request)))
    }
    fn commit(&mut self, context: &CallContext, request: CommitRequest) -> Reply<EndResult> {
        reply(self.q0_as(context.owner, &q0("commit", &request)))
    }
    fn rollback(&mut self, context: &CallContext, request: RollbackRequest) -> Reply<EndResult> {
        reply(self.q0_as(context.owner, &q0("rollback", &request)))
    }
    fn record_by_pk(&mut self, _: &CallContext, request: RecordByPkRequest) -> Reply<Record> {
        reply(Engine::record_by_pk(self, &request.pk))
    }
    fn by_class(&mut self, _: &CallContext, request: ByClassRequest) -> Reply<SelectResult> {
        reply(Engine::by_class(self, &request.class))
    }
    fn validate(&mut self, _: &CallContext, request: ValidateRequest) -> Reply<ValidationReport> {
        let report = Engine::validate(self, &Value::Object(request.query));
        reply(json!({ "success": true, "results": report }))
    }
    fn export_schema(&mut self, _: &CallContext, _: ExportSchemaRequest) -> Reply<Schema> {
        reply(Engine::export_schema(self))
    }
    fn import_schema(&mut self, _: &CallContext, request: ImportSchemaRequest) -> Reply<ImportResult> {
        reply(Engine::import_schema(
            self,
            &json!({ "classes": request.classes }),
        ))
    }
    fn export_worldlet(&mut self, _: &CallContext, _: ExportWorldletRequest) -> Reply<Worldlet> {
        reply(Engine::export_worldlet(self))
    }
    fn import_worldlet(&mut self, _: &CallContext, request: ImportWorldletRequest) -> Reply<ImportResult> {
        let worldlet = serde_json::to_value(&request.worldlet).unwrap_or_default();
        reply(Engine::import_worldlet(self, &worldlet))
    }
    fn set_fields(&mut self, context: &CallContext, request: SetFieldsRequest) -> Reply<PkResult> {
        let update = merged_update(self, request)?;
        MikobaseService::update(self, context, update)
    }
}
