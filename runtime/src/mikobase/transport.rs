//! The two transports of the generated client: in-process and HTTP over a Unix socket.

use std::cell::RefCell;

use hyper::Method;
use serde_json::{json, Value};

use super::generated::{dispatch, MikobaseService};
use super::support::{CallContext, Transport};
use crate::uds::Client;
use crate::Error;

/// Calls a service directly through the generated dispatch table: the same bytes as over
/// HTTP, without a socket.
#[derive(Debug)]
pub struct InProcess<S> {
    service: RefCell<S>,
    limit: usize,
}

impl<S: MikobaseService> InProcess<S> {
    /// Wraps a service (e.g. an [`super::engine::Engine`]).
    pub fn new(service: S) -> Self {
        InProcess {
            service: RefCell::new(service),
            limit: crate::limits::DEFAULT_BODY_LIMIT,
        }
    }

    /// Runs `f` on the service between calls (e.g. to register a listener on a
    /// [`super::MikobaseServer`] that is already serving); refused during a call.
    pub fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> Result<R, Error> {
        let mut service = self
            .service
            .try_borrow_mut()
            .map_err(|_| Error::Protocol("re-entrant call".into()))?;
        Ok(f(&mut service))
    }

    /// The wrapped service.
    pub fn into_inner(self) -> S {
        self.service.into_inner()
    }
}

impl<S: MikobaseService> Transport for InProcess<S> {
    fn post(&self, route: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>), Error> {
        let mut service = self
            .service
            .try_borrow_mut()
            .map_err(|_| Error::Protocol("re-entrant call".into()))?;
        Ok(dispatch(
            &mut *service,
            &CallContext::default(),
            route,
            &body,
            self.limit,
        ))
    }
}

/// Sends each request over HTTP on the server's Unix socket (lazy per-process connection,
/// connect retry, deadline: see [`Client`]).
#[derive(Debug, Clone)]
pub struct UdsTransport {
    client: Client,
}

impl UdsTransport {
    /// A transport over `client`.
    pub fn new(client: Client) -> Self {
        UdsTransport { client }
    }
}

impl Transport for UdsTransport {
    fn hold_connection(&self, hold: bool) {
        self.client.hold_connection(hold);
    }

    fn post(&self, route: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>), Error> {
        let response = self.client.send(Method::POST, route, Some(body))?;
        match response.status {
            401 => Err(Error::Unauthorized),
            403 => Err(crate::uds::client::status_error(&response)),
            status if (200..300).contains(&status) => Ok((status, response.body.to_vec())),
            status => {
                // The toolbox's own refusals (`{"error", "details"}`, e.g. 413) become
                // envelopes, so the client sees one answer shape. Only refusals are looked
                // at: a success is decoded once, by the caller.
                let parsed: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
                if parsed.get("success").is_none() {
                    if let Some(id) = parsed.get("error") {
                        let envelope = json!({ "success": false, "errors": [{ "id": id, "details": parsed["details"] }] });
                        return Ok((status, serde_json::to_vec(&envelope).unwrap_or_default()));
                    }
                }
                Ok((status, response.body.to_vec()))
            }
        }
    }
}
