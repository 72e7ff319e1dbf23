//! Listeners of the shared Mikobase's server (D-M5, D-M12): `before_save` (the
//! consistency hook: runs inside the transaction, after the write and before it is
//! kept; a veto undoes it, and by default rolls the whole transaction back) and
//! `after_save` (the side-effect hook: runs once the write is committed for good). Each
//! listener has a [`Target`]: every write, one record, a class (with subclasses), or a
//! Q0 query matched after the change, so a record entering the set fires it.
//!
//! The listeners wrap the engine's service: a write runs in a savepoint owned by the
//! caller's connection, the targets are judged with the engine's own `select` inside it,
//! and the savepoint is released or rolled back. Imports (`import_worldlet`,
//! `import_schema`) do not run listeners (D-M12).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::engine::Engine;
use super::generated::{
    ClassFilter, CommitRequest, ErrorId, MikobaseService, RecordByPkRequest, RollbackRequest, SelectRequest,
    TransactionRequest,
};
use super::reply::{CallContext, Failure, Reply};

/// A write the listeners are told about (Mikobase's `$change`).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// `create`, `update` or `delete` (`set_fields` is an `update`).
    pub action: &'static str,
    /// The record's pk.
    pub pk: Option<String>,
    /// The class the request names, else the record's current class.
    pub class: Option<String>,
    /// The bucket the write stores (`None` for a delete).
    pub bucket: Option<Map<String, Value>>,
    /// The bucket before the write (`None` for a create).
    pub old: Option<Map<String, Value>>,
}

impl Change {
    /// The top-level fields the write changes, as `field → (old, new)`; `None` is absent.
    pub fn fields(&self) -> BTreeMap<String, (Option<Value>, Option<Value>)> {
        let empty = Map::new();
        let old = self.old.as_ref().unwrap_or(&empty);
        let new = self.bucket.as_ref().unwrap_or(&empty);
        old.keys()
            .chain(new.keys())
            .filter(|key| old.get(*key) != new.get(*key))
            .map(|key| (key.clone(), (old.get(key).cloned(), new.get(key).cloned())))
            .collect()
    }
}

/// Which writes a listener is told about.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Target {
    /// Every write.
    #[default]
    All,
    /// Writes of the record with this pk.
    Record(String),
    /// Writes of records of this class or one of its subclasses.
    Class(String),
    /// Writes after which the record matches this select (its `pk`, if any, must be the
    /// record's): a record entering the set fires it. A delete is judged on the record
    /// as it was.
    Query(Box<SelectRequest>),
}

/// What a `before_save` veto undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VetoScope {
    /// The whole transaction the write was in, as the Mikobase documents say (the
    /// default); outside a transaction, the write.
    #[default]
    Transaction,
    /// Only the vetoed write; the transaction stays open and its holder decides.
    Write,
}

type BeforeSave = Box<dyn FnMut(&Change) -> Result<(), String>>;
type AfterSave = Box<dyn FnMut(&Change)>;

/// The listeners of one server and the `after_save` calls waiting for a commit.
#[derive(Default)]
pub(crate) struct Listeners {
    before: Vec<(Target, BeforeSave)>,
    after: Vec<(Target, AfterSave)>,
    /// Writes made inside open transactions, with the depth they were made at and the
    /// `after_save` listeners they hit: those run when the outermost transaction
    /// commits, never if the write is rolled back.
    pending: Vec<(usize, Vec<usize>, Change)>,
    pub(crate) veto: VetoScope,
}

impl Listeners {
    pub(crate) fn add_before(&mut self, target: Target, listener: BeforeSave) {
        self.before.push((target, listener));
    }

    pub(crate) fn add_after(&mut self, target: Target, listener: AfterSave) {
        self.after.push((target, listener));
    }

    /// Whether nobody listens: then a write costs no copy of its bucket, no read of the
    /// record and no savepoint.
    pub(crate) fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after.is_empty()
    }

    /// Moves `other`'s listeners into these (a run's builder into its server).
    pub(crate) fn extend(&mut self, other: Listeners) {
        self.before.extend(other.before);
        self.after.extend(other.after);
        self.veto = other.veto;
    }

    /// Runs one write (`run`) with the listeners around it; `pk_of` names the written
    /// record from the write's result.
    pub(crate) fn write<T>(
        &mut self,
        engine: &mut Engine,
        context: &CallContext,
        intent: Intent<'_>,
        pk_of: impl Fn(&T) -> String,
        run: impl FnOnce(&mut Engine) -> Reply<T>,
    ) -> Reply<T> {
        if self.is_empty() {
            return run(engine);
        }
        let action = intent.action;
        let mut change = current(engine, context, intent);
        let savepoint = MikobaseService::transaction(engine, context, TransactionRequest::default())?
            .results
            .transaction;
        // A delete is judged on the record as it was; any other write as it is after.
        let judged_before = (action == "delete").then(|| self.hits(engine, context, &change));
        let reply = run(engine);
        let results = match reply {
            Ok(ref answer) => &answer.results,
            Err(mut failure) => {
                // The write failed: its savepoint holds nothing, but it must go.
                if let Err(undo) = end(engine, context, &savepoint, false) {
                    failure.errors.extend(undo.errors);
                }
                return Err(failure);
            }
        };
        change.pk = Some(pk_of(results));
        let (before, after) = match judged_before {
            Some(hits) => hits,
            None => self.hits(engine, context, &change),
        };
        for i in before {
            if let Err(message) = (self.before[i].1)(&change) {
                let undone = end(engine, context, &savepoint, false);
                let whole =
                    self.veto == VetoScope::Transaction && engine.transaction_owner() == Some(context.owner);
                if whole {
                    engine.release_owner(context.owner);
                    self.forget_rolled_back(engine.transaction_depth());
                }
                let fix = if whole {
                    "the whole transaction was rolled back (its work is gone): begin a new one and redo it without the refused change"
                } else {
                    "change the write so the listener accepts it"
                };
                let mut failure = Failure::one(
                    ErrorId::RejectedByListener.as_str(),
                    json!({ "message": message, "action": action, "pk": change.pk, "rolled_back_transaction": whole, "fix": fix }),
                );
                if let Err(undo) = undone {
                    failure.errors.extend(undo.errors);
                }
                return Err(failure);
            }
        }
        end(engine, context, &savepoint, true)?;
        if !after.is_empty() {
            self.pending.push((engine.transaction_depth(), after, change));
            self.run_after_save(engine.transaction_depth());
        }
        reply
    }

    /// The `before_save` and `after_save` listeners whose target the change hits.
    fn hits(&self, engine: &mut Engine, context: &CallContext, change: &Change) -> (Vec<usize>, Vec<usize>) {
        let mut judge = |target: &Target| hit(engine, context, target, change);
        let before = (0..self.before.len())
            .filter(|i| judge(&self.before[*i].0))
            .collect();
        let after = (0..self.after.len())
            .filter(|i| judge(&self.after[*i].0))
            .collect();
        (before, after)
    }

    /// Runs the waiting `after_save` calls once no transaction is open.
    fn run_after_save(&mut self, depth: usize) {
        if depth == 0 {
            for (_, hits, change) in std::mem::take(&mut self.pending) {
                for i in hits {
                    (self.after[i].1)(&change);
                }
            }
        }
    }

    /// After a commit: writes of the committed transaction now belong to the enclosing
    /// one (or to none: then their `after_save` runs).
    pub(crate) fn fold_committed(&mut self, depth: usize) {
        for (made_at, _, _) in &mut self.pending {
            *made_at = (*made_at).min(depth);
        }
        self.run_after_save(depth);
    }

    /// After a rollback: writes made deeper than `depth` are gone.
    pub(crate) fn forget_rolled_back(&mut self, depth: usize) {
        self.pending.retain(|(made_at, _, _)| *made_at <= depth);
    }
}

/// What a write asks for, as the listeners' change is made from it.
pub(crate) struct Intent<'a> {
    /// `create`, `update` or `delete`.
    pub action: &'static str,
    /// The record written (none yet for a create).
    pub pk: Option<&'a str>,
    /// The class the request names.
    pub class: Option<&'a str>,
    /// The bucket the request stores.
    pub bucket: Option<&'a Map<String, Value>>,
}

/// The change a write makes, with the record's current bucket and class.
fn current(engine: &mut Engine, context: &CallContext, intent: Intent<'_>) -> Change {
    let Intent {
        action,
        pk,
        class,
        bucket,
    } = intent;
    let record = pk.and_then(|pk| {
        MikobaseService::record_by_pk(engine, context, RecordByPkRequest { pk: pk.to_owned() })
            .ok()
            .map(|answer| answer.results)
    });
    let old = record.as_ref().map(|r| r.bucket.clone());
    let current_class = record
        .as_ref()
        .and_then(|r| r.stack.values().find_map(|p| p.class.clone()));
    Change {
        action,
        pk: pk.map(str::to_owned),
        class: class.map(str::to_owned).or(current_class),
        bucket: match action {
            "delete" => None,
            _ => bucket.cloned().or_else(|| old.clone()),
        },
        old,
    }
}

/// Whether `change` hits `target`: judged with the engine's own select, inside the
/// write's savepoint.
fn hit(engine: &mut Engine, context: &CallContext, target: &Target, change: &Change) -> bool {
    let query = match target {
        Target::All => return true,
        Target::Record(pk) => return change.pk.as_deref() == Some(pk),
        Target::Class(class) => SelectRequest {
            class: Some(ClassFilter::One(class.clone())),
            ..SelectRequest::default()
        },
        Target::Query(query) => SelectRequest::clone(query),
    };
    if query.pk.is_some() && query.pk != change.pk {
        return false;
    }
    let query = SelectRequest {
        pk: change.pk.clone(),
        ..query
    };
    MikobaseService::select(engine, context, query).is_ok_and(|answer| answer.results.count > 0)
}

/// Releases (`keep`) or rolls back the write's savepoint.
fn end(engine: &mut Engine, context: &CallContext, savepoint: &str, keep: bool) -> Result<(), Failure> {
    let transaction = savepoint.to_owned();
    if keep {
        MikobaseService::commit(engine, context, CommitRequest { transaction }).map(drop)
    } else {
        MikobaseService::rollback(engine, context, RollbackRequest { transaction }).map(drop)
    }
}
