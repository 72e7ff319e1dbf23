//! Hot and cold records (the documents' connection modes) on the typed-record layer.
//! Cold (the default): a select answers local copies, changed in memory and written back
//! by an explicit `save`. Hot: a select answers live proxies, every access a round trip
//! (the right choice for coordinating forked workers). A connection's mode is chosen when
//! it is made ([`Transport::mode`]: `UdsTransport::with_mode`, `InProcess::with_mode`,
//! `Mikobase::mode`) and a query can override it (`records.in_mode(Mode::Hot)`). D-M14.

use std::fmt;
use std::ops::{Deref, DerefMut};

use super::generated::{MikobaseClient, Pk, SelectRequest};
use super::record::{Record, RecordError, Records, Stored};
use super::support::Transport;

/// Whether records come back as local copies or live proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Local copies; write back with [`Local::save`] (the documents' default).
    #[default]
    Cold,
    /// Live records: each read and write is one round trip.
    Hot,
}

/// A record as a query answers it in the records' mode.
pub enum Fetched<'db, R: Record, T: Transport> {
    /// A local copy.
    Cold(Local<'db, R, T>),
    /// A live proxy.
    Hot(R::Proxy<'db, T>),
}

impl<'db, R: Record, T: Transport + 'db> Fetched<'db, R, T> {
    /// The local copy, if cold.
    pub fn cold(self) -> Option<Local<'db, R, T>> {
        match self {
            Fetched::Cold(local) => Some(local),
            Fetched::Hot(_) => None,
        }
    }

    /// The live proxy, if hot.
    pub fn hot(self) -> Option<R::Proxy<'db, T>> {
        match self {
            Fetched::Hot(proxy) => Some(proxy),
            Fetched::Cold(_) => None,
        }
    }
}

/// A local copy of a record: read and change it as an `R`; [`Local::save`] writes it
/// back (one `update`), [`Local::refresh`] reads it again. Nothing is sent until then.
pub struct Local<'db, R, T> {
    stored: Stored<'db, R, T>,
    value: R,
}

impl<R: Record + fmt::Debug, T> fmt::Debug for Local<'_, R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Local")
            .field("stored", &self.stored)
            .field("value", &self.value)
            .finish()
    }
}

impl<'db, R: Record, T: Transport + 'db> Local<'db, R, T> {
    /// The record's primary key.
    pub fn pk(&self) -> &str {
        self.stored.pk()
    }

    /// Writes the local value back (its bucket replaces the stored one).
    pub fn save(&self) -> Result<(), RecordError> {
        self.stored.update(&self.value)
    }

    /// Replaces the local value with the stored one.
    pub fn refresh(&mut self) -> Result<(), RecordError> {
        self.value = self.stored.get()?;
        Ok(())
    }

    /// The local value.
    pub fn into_inner(self) -> R {
        self.value
    }
}

impl<R, T> Deref for Local<'_, R, T> {
    type Target = R;

    fn deref(&self) -> &R {
        &self.value
    }
}

impl<R, T> DerefMut for Local<'_, R, T> {
    fn deref_mut(&mut self) -> &mut R {
        &mut self.value
    }
}

impl<'db, R: Record, T: Transport + 'db> Records<'db, R, T> {
    /// Record `pk` in the records' mode: a local copy (one read) or a live proxy (no
    /// round trip until it is used).
    pub fn fetch(&self, pk: impl Into<Pk>) -> Result<Fetched<'db, R, T>, RecordError> {
        let pk = pk.into();
        Ok(match self.mode() {
            Mode::Hot => Fetched::Hot(self.at(pk)),
            Mode::Cold => Fetched::Cold(self.local(pk)?),
        })
    }

    /// A local copy of record `pk`, whatever the mode.
    pub fn local(&self, pk: impl Into<Pk>) -> Result<Local<'db, R, T>, RecordError> {
        let stored = Stored::new(self.db(), pk.into());
        let value = stored.get()?;
        Ok(Local { stored, value })
    }

    /// The records `request` selects (as [`Records::select`]) in the records' mode: one
    /// select either way; hot records then read live on each access.
    pub fn query(&self, request: &SelectRequest) -> Result<Vec<Fetched<'db, R, T>>, RecordError> {
        let found = self.select(request)?;
        Ok(found
            .into_iter()
            .map(|(pk, value)| match self.mode() {
                Mode::Hot => Fetched::Hot(self.at(pk)),
                Mode::Cold => Fetched::Cold(Local {
                    stored: Stored::new(self.db(), pk),
                    value,
                }),
            })
            .collect())
    }
}

impl<T: Transport> MikobaseClient<T> {
    /// The mode this connection was made with.
    pub fn mode(&self) -> Mode {
        self.transport().mode()
    }
}
