//! Transactions as scoped handles, the way rusqlite's are: [`MikobaseClient::begin`]
//! begins one and answers a [`Transaction`] guard that rolls back when dropped (on an
//! early return, an error, a panic) unless it was committed; [`MikobaseClient::in_transaction`]
//! is the closure form. The same code runs in-process, from forked workers and through
//! the typed record proxies, since the guard derefs to the client it came from.
//!
//! Inside a transaction every call of the client is in it: the server ties a transaction
//! to the connection that began it (D-M11), and while a handle is open the transport never
//! replaces that connection (a call would otherwise run outside the transaction:
//! `Error::TransactionLost` instead).

use std::ops::Deref;

use serde_json::json;

use super::generated::{
    CommitRequest, EndResult, ErrorId, MikobaseClient, RollbackRequest, TransactionRequest,
};
use super::support::{ClientError, Failure, Transport};

/// An open transaction: commits with [`Transaction::commit`], rolls back with
/// [`Transaction::rollback`] or when dropped. Derefs to the client, so every call made
/// through it (or through `tx.records::<R>()`) runs inside it.
///
/// ```
/// use caspian_ipc::mikobase::{engine::Engine, CreateRequest, InProcess, MikobaseClient, SelectRequest};
///
/// let db = MikobaseClient::new(InProcess::new(Engine::memory()));
/// let tx = db.begin()?;
/// tx.create(&CreateRequest { bucket: serde_json::Map::new(), ..Default::default() })?;
/// drop(tx); // not committed: rolled back
/// assert_eq!(db.select(&SelectRequest::default())?.results.count, 0);
///
/// db.in_transaction(|tx| tx.create(&CreateRequest { bucket: serde_json::Map::new(), ..Default::default() }))?;
/// assert_eq!(db.select(&SelectRequest::default())?.results.count, 1);
/// # Ok::<(), caspian_ipc::mikobase::ClientError>(())
/// ```
#[must_use = "a transaction rolls back when dropped: commit it"]
pub struct Transaction<'db, T: Transport> {
    db: &'db MikobaseClient<T>,
    /// The open transaction's id; `None` once ended.
    id: Option<String>,
    /// The transaction it is nested in (a later `checkpoint` reopens inside it).
    parent: Option<String>,
}

impl<T: Transport> std::fmt::Debug for Transaction<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("id", &self.id)
            .field("parent", &self.parent)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> MikobaseClient<T> {
    /// Begins a transaction, nested inside the innermost open one of this connection if
    /// there is one: the guard commits with [`Transaction::commit`] and rolls back when
    /// dropped. While it is open, other workers' calls wait (D-M4).
    ///
    /// (The generated [`MikobaseClient::transaction`] is the raw Q0 action: it begins one
    /// and leaves ending it to the caller.)
    pub fn begin(&self) -> Result<Transaction<'_, T>, ClientError> {
        Transaction::open(self, None)
    }

    /// Runs `body` in a transaction: committed when it answers `Ok`, rolled back when it
    /// answers `Err` or panics. A failed commit is the error (nothing was committed).
    pub fn in_transaction<R, E: From<ClientError>>(
        &self,
        body: impl FnOnce(&Transaction<'_, T>) -> Result<R, E>,
    ) -> Result<R, E> {
        let tx = self.begin()?;
        let value = body(&tx)?; // an `Err` (or a panic) drops `tx`: rolled back
        tx.commit()?;
        Ok(value)
    }
}

impl<'db, T: Transport> Transaction<'db, T> {
    fn open(db: &'db MikobaseClient<T>, parent: Option<String>) -> Result<Self, ClientError> {
        let request = TransactionRequest {
            parent: parent.clone(),
        };
        let id = db.transaction(&request)?.results.transaction;
        db.transport().hold_connection(true);
        Ok(Transaction {
            db,
            id: Some(id),
            parent,
        })
    }

    /// The open transaction's id, as requests name it (`"transaction": id`).
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }

    /// Begins a transaction nested in this one: its rollback undoes only its own work,
    /// its commit folds its work into this one (still undone if this one rolls back).
    pub fn begin(&self) -> Result<Transaction<'db, T>, ClientError> {
        Transaction::open(self.db, self.id.clone())
    }

    /// Commits (and ends) the transaction, and every one nested in it.
    pub fn commit(mut self) -> Result<EndResult, ClientError> {
        self.end(true)
    }

    /// Rolls the transaction back (and ends it): the documents' `exit()`.
    pub fn rollback(mut self) -> Result<EndResult, ClientError> {
        self.end(false)
    }

    /// Commits the work so far and goes on in a new transaction in the same handle (the
    /// documents' `commit()`, which "keeps the transaction usable"): a later rollback or
    /// drop undoes only what came after. The handle's [`Transaction::id`] changes.
    pub fn checkpoint(&mut self) -> Result<EndResult, ClientError> {
        let ended = self.end(true)?;
        let next = Transaction::open(self.db, self.parent.take())?;
        *self = next;
        Ok(ended)
    }

    fn end(&mut self, commit: bool) -> Result<EndResult, ClientError> {
        let Some(id) = self.id.take() else {
            return Err(ClientError::Failed(Failure::one(
                ErrorId::TransactionNotFound.as_str(),
                json!({
                    "reason": "this handle's transaction already ended (a checkpoint could not begin the next one)",
                    "fix": "begin a new transaction",
                }),
            )));
        };
        let answer = if commit {
            self.db.commit(&CommitRequest { transaction: id })
        } else {
            self.db.rollback(&RollbackRequest { transaction: id })
        };
        self.db.transport().hold_connection(false);
        answer.map(|answer| answer.results)
    }
}

impl<T: Transport> Deref for Transaction<'_, T> {
    type Target = MikobaseClient<T>;

    fn deref(&self) -> &MikobaseClient<T> {
        self.db
    }
}

impl<T: Transport> Drop for Transaction<'_, T> {
    /// Rolls back a transaction that was not ended. A failure cannot be reported from a
    /// drop; the server rolls the transaction back anyway when the connection closes.
    fn drop(&mut self) {
        if self.id.is_some() {
            let _ = self.end(false);
        }
    }
}
