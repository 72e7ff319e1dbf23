//! The shared Mikobase: the generated surface (types, service trait, dispatch table,
//! client proxy), its hand-written support, and the engine on SQLite.

pub mod engine;
#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic)]
pub mod generated;
mod listeners;
pub mod record;
mod reply;
mod shared;
pub mod support;
mod transaction;
mod transport;
pub mod validator;

pub use generated::*;
pub use listeners::{Change, Target, VetoScope};
#[cfg(feature = "tls")]
pub use shared::connect_tls;
pub use shared::{connect, mikobase, Db, Finished, Mikobase, MikobaseServer, DEFAULT_MAX_HOLD};
pub use support::{Answer, CallContext, ClientError, Failure, Problem, Reply, Transport};
pub use transaction::Transaction;
pub use transport::{InProcess, UdsTransport};
