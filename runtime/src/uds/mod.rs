//! The toolbox both flavours stand on: an HTTP server on a Unix socket with token auth
//! and peer checks, a blocking client (and an async one, feature `tokio`), and the private
//! socket directory.

#[cfg(feature = "tokio")]
pub mod async_client;
pub mod client;
mod connection;
mod exchange;
pub mod expose;
pub mod http;
pub mod monitor;
pub mod process;
pub mod router;
pub mod server;
pub mod socket;
mod stop_signals;
pub mod tcp;
#[cfg(feature = "tls")]
pub mod tls;
pub mod token;

#[cfg(feature = "tokio")]
pub use async_client::AsyncClient;
pub use client::{Client, ClientConfig, Headers, RawResponse};
pub use expose::{Exposed, Exposure};
pub use http::{Handler, Peer, Request, Response};
pub use monitor::OpLog;
pub use process::{spawn_server, spawn_server_with};
pub use router::{RouteError, RouteRequest, RouteResult, RouteState, Router};
pub use server::{serve, serve_with, ServerConfig};
pub use socket::SocketDir;
pub use tcp::{InsecureScope, Remote, TcpListen};
#[cfg(feature = "tls")]
pub use tls::{fingerprint_of, Trust};
pub use token::Token;
