//! Transactions: nested savepoints (PostgreSQL: a transaction, savepoints inside) owned by a caller (a worker connection), ended
//! by commit or rollback, rolled back when their owner goes away or holds them too long;
//! the ids of ended ones are remembered (a bounded number) to explain later uses.

use serde_json::{json, Value};

use super::problem::{error, invalid, Problem};
use super::{forget_oldest, Engine, Open};
use crate::mikobase::generated::{EndResult, ErrorId, TransactionResult};

impl Engine {
    pub(crate) fn find(&self, id: &str) -> Result<usize, Problem> {
        match self.open.iter().position(|t| t.id == id) {
            Some(i) => Ok(i),
            None if self.expired.iter().any(|(t, _)| t == id) => {
                let details = self.expired.iter().find(|(t, _)| t == id).map(|(_, d)| d.clone());
                Err(error(ErrorId::TransactionExpired, details.unwrap_or(Value::Null)))
            }
            None if self.invalidated.iter().any(|t| t == id) => Err(error(
                ErrorId::TransactionInvalidated,
                json!({
                    "transaction": id,
                    "reason": "an enclosing transaction was rolled back",
                    "fix": "its work is gone: begin a new transaction and redo it",
                }),
            )),
            None => Err(error(
                ErrorId::TransactionNotFound,
                json!({
                    "transaction": id,
                    "open": self.open.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
                    "fix": "use the id an open transaction answered ({\"action\": \"transaction\"} begins one); a committed or rolled back transaction is gone",
                }),
            )),
        }
    }

    /// Begins a transaction for `owner`, nested inside the innermost open one (`parent`,
    /// when given, must be it).
    pub(crate) fn begin(&mut self, owner: u64, parent: Option<&str>) -> Result<TransactionResult, Problem> {
        if let Some(parent) = parent {
            let at = self.find(parent)?;
            if at + 1 != self.open.len() {
                return Err(invalid(json!({
                    "parent": parent,
                    "reason": "a nested transaction opens inside the innermost open one",
                    "innermost": self.open.last().map(|t| t.id.clone()),
                    "fix": "give the innermost open transaction as `parent` (or none)",
                })));
            }
        }
        let id = if self.dry {
            String::new()
        } else {
            let id = format!("tx{}", self.next_transaction);
            self.next_transaction += 1;
            self.store.savepoint(&id)?;
            if self.open.is_empty() {
                // A transaction of a shared store sees the classes of its snapshot.
                if let Err(e) = self.refresh_classes() {
                    let _ = self.store.rollback_to(&id);
                    return Err(e);
                }
            }
            self.open.push(Open {
                id: id.clone(),
                owner,
            });
            id
        };
        Ok(TransactionResult { transaction: id })
    }

    /// Commits or rolls back the open transaction `id` and every one nested inside it.
    pub(crate) fn end(&mut self, id: &str, commit: bool) -> Result<EndResult, Problem> {
        let at = self.find(id)?;
        let ended = EndResult {
            transaction: id.to_owned(),
            committed: commit,
        };
        if self.dry {
            return Ok(ended);
        }
        let done = if commit {
            self.store.release(id)
        } else {
            self.store.rollback_to(id)
        };
        if let Err(e) = done {
            if at == 0 && self.store.shared() && !self.store.in_transaction() {
                // PostgreSQL ended the transaction (a failed COMMIT rolls back): every id
                // in it is gone.
                let closed: Vec<Open> = self.open.drain(..).collect();
                self.invalidated.extend(closed.iter().map(|t| t.id.clone()));
                forget_oldest(&mut self.invalidated);
                let _ = self.reload_classes();
            }
            return Err(e);
        }
        let closed: Vec<Open> = self.open.drain(at..).collect();
        if !commit {
            // Everything nested inside is gone with it.
            self.invalidated
                .extend(closed.iter().skip(1).map(|t| t.id.clone()));
            forget_oldest(&mut self.invalidated);
            self.reload_classes()?;
        }
        Ok(ended)
    }

    /// Rolls back every open transaction begun by `owner` (its connection went away).
    pub fn release_owner(&mut self, owner: u64) {
        if let Some(first) = self.open.iter().position(|t| t.owner == owner) {
            let id = self.open[first].id.clone();
            let _ = self.end(&id, false);
        }
    }

    /// Rolls back every open transaction begun by `owner` because it held them too long;
    /// later uses of their ids answer `transaction-expired` with `details`.
    pub fn expire_owner(&mut self, owner: u64, details: &Value) {
        let ids: Vec<String> = self
            .open
            .iter()
            .filter(|t| t.owner == owner)
            .map(|t| t.id.clone())
            .collect();
        self.release_owner(owner);
        for id in ids {
            let mut told = details.clone();
            told["transaction"] = Value::String(id.clone());
            self.expired.push((id, told));
        }
        forget_oldest(&mut self.expired);
    }

    /// The owner of the outermost open transaction, if any: while one is open, only its
    /// owner should be served (the others wait).
    pub fn transaction_owner(&self) -> Option<u64> {
        self.open.first().map(|t| t.owner)
    }

    /// How many transactions are open (nested ones included).
    pub fn transaction_depth(&self) -> usize {
        self.open.len()
    }
}
