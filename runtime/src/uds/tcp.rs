//! TCP beside the Unix socket: the listener a server serves on besides its socket
//! ([`TcpListen`]: TLS, or plain TCP only when asked for and only on loopback unless asked
//! twice), and the address a client connects to ([`Remote`], from a
//! `caspian+tls://host:port` URL) (D-N1, D-N2).
//!
//! A TCP peer has no uid the server could check: a TCP connection is trusted by its
//! token alone (a TCP listener is refused without one), and on TLS the client trusts the
//! server by its certificate before it sends the token.

use std::net::{SocketAddr, ToSocketAddrs};
#[cfg(feature = "tls")]
use std::path::Path;
#[cfg(feature = "tls")]
use std::sync::Arc;

use crate::error::{Error, Result};

/// The URL scheme of a TLS server.
pub const TLS_SCHEME: &str = "caspian+tls";
/// The URL scheme of a plain-TCP server (`--insecure`; loopback, tests).
pub const TCP_SCHEME: &str = "caspian+tcp";

/// How the connections of a TCP listener are secured.
#[derive(Clone)]
pub(crate) enum ServerSecurity {
    /// TLS with this configuration (certificate and key).
    #[cfg(feature = "tls")]
    Tls(Arc<rustls::ServerConfig>),
    /// Plain TCP: anyone on the path reads the token.
    Insecure,
}

/// Where plain TCP may listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsecureScope {
    /// Loopback addresses only (127.0.0.0/8, ::1): the default, and the only use plain
    /// TCP is for (a test, a TLS-terminating proxy on the same host).
    LoopbackOnly,
    /// Any address: the token crosses the network in clear text. Named twice on the
    /// command line (`--insecure --insecure-non-loopback`), never implied.
    AnyAddress,
}

/// A bound TCP listener a server serves on beside its Unix socket, with how its
/// connections are secured. Bound when made, so its address (an ephemeral port too) is
/// known before the server starts; the server process serves a duplicate of it.
pub struct TcpListen {
    pub(crate) listener: std::net::TcpListener,
    pub(crate) security: ServerSecurity,
    url: String,
}

impl std::fmt::Debug for TcpListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListen")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn bind(address: &str) -> Result<std::net::TcpListener> {
    let addrs = resolve(address, address)?;
    let mut last = None;
    for addr in addrs {
        match std::net::TcpListener::bind(addr) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(Error::os(format!("binding {addr}"), e)),
        }
    }
    Err(last.unwrap_or_else(|| unresolved(address)))
}

fn unresolved(address: &str) -> Error {
    Error::Config {
        what: format!("address {address}"),
        problem: "resolves to no address".into(),
        fix: "write HOST:PORT, e.g. 127.0.0.1:7878".into(),
    }
}

fn resolve(address: &str, what: &str) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|e| Error::Config {
            what: format!("address {what}"),
            problem: format!("is not HOST:PORT: {e}"),
            fix: "write HOST:PORT, e.g. 127.0.0.1:7878 or [::1]:7878".into(),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(unresolved(what));
    }
    Ok(addrs)
}

impl TcpListen {
    /// Binds `address` (`HOST:PORT`; port 0 picks one) for TLS with the certificate chain
    /// in `cert` and the private key in `key` (PEM files).
    #[cfg(feature = "tls")]
    pub fn tls(address: &str, cert: &Path, key: &Path) -> Result<Self> {
        let config = super::tls::server_config(cert, key)?;
        let listener = bind(address)?;
        Self::made(listener, ServerSecurity::Tls(config), TLS_SCHEME)
    }

    /// Binds `address` for plain TCP. Refused ([`Error::Config`]) for an address that is
    /// not loopback unless `scope` is [`InsecureScope::AnyAddress`] (D-N2).
    pub fn insecure(address: &str, scope: InsecureScope) -> Result<Self> {
        if scope == InsecureScope::LoopbackOnly {
            let addrs = resolve(address, address)?;
            if let Some(outside) = addrs.iter().find(|addr| !addr.ip().is_loopback()) {
                return Err(Error::Config {
                    what: format!("plain-TCP listener on {address}"),
                    problem: format!("{} is not a loopback address, and plain TCP sends the token in clear text", outside.ip()),
                    fix: "listen with TLS (--tls-cert, --tls-key), or on 127.0.0.1; only if the network is yours, add --insecure-non-loopback".into(),
                });
            }
        }
        let listener = bind(address)?;
        Self::made(listener, ServerSecurity::Insecure, TCP_SCHEME)
    }

    fn made(listener: std::net::TcpListener, security: ServerSecurity, scheme: &str) -> Result<Self> {
        let local = listener
            .local_addr()
            .map_err(|e| Error::os("reading the listener's address", e))?;
        Ok(TcpListen {
            listener,
            security,
            url: format!("{scheme}://{local}"),
        })
    }

    /// The address bound (with the port picked for port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// The URL clients connect with: `caspian+tls://IP:PORT` (or `caspian+tcp://`). A
    /// client checking a CA-signed certificate connects with a host name the
    /// certificate names instead (`caspian+tls://NAME:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A duplicate of the listener on a non-blocking descriptor, for a server's runtime.
    pub(crate) fn tokio_listener(&self) -> Result<tokio::net::TcpListener> {
        let listener = self
            .listener
            .try_clone()
            .map_err(|e| Error::os("duplicating the TCP listener", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::os("making the TCP listener non-blocking", e))?;
        tokio::net::TcpListener::from_std(listener).map_err(|e| Error::os("registering the TCP listener", e))
    }
}

/// How a client secures its TCP connection.
#[derive(Clone)]
pub(crate) enum ClientSecurity {
    /// TLS: this configuration (what it trusts), checked against this name.
    #[cfg(feature = "tls")]
    Tls {
        config: Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
        trust: super::tls::Trust,
    },
    /// Plain TCP (`caspian+tcp://`).
    Insecure,
}

/// A server a client reaches over TCP: its URL, the host and port it names, and how the
/// connection is secured.
#[derive(Clone)]
pub struct Remote {
    url: String,
    host: String,
    port: u16,
    pub(crate) security: ClientSecurity,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// `(scheme, host, port)` of `scheme://host:port` (an IPv6 host in brackets).
fn split_url(url: &str) -> Result<(&str, &str, u16)> {
    let bad = |problem: &str| Error::Config {
        what: format!("URL {url}"),
        problem: problem.into(),
        fix: format!("write {TLS_SCHEME}://HOST:PORT (or {TCP_SCHEME}://HOST:PORT for a plain-TCP server)"),
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("has no scheme"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("has no port"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(['/', '@', '?', '#']) {
        return Err(bad("has no usable host"));
    }
    let port = port.parse::<u16>().map_err(|_| bad("has no usable port"))?;
    Ok((scheme, host, port))
}

impl Remote {
    /// A TLS server at `url` (`caspian+tls://host:port`) whose certificate must pass
    /// `trust`. Reads the trust files now: a missing or malformed one is refused here.
    #[cfg(feature = "tls")]
    pub fn tls(url: &str, trust: super::tls::Trust) -> Result<Self> {
        let (scheme, host, port) = split_url(url)?;
        if scheme != TLS_SCHEME {
            return Err(Error::Config {
                what: format!("URL {url}"),
                problem: format!("its scheme is `{scheme}`, not `{TLS_SCHEME}`"),
                fix: format!("write {TLS_SCHEME}://HOST:PORT"),
            });
        }
        let config = super::tls::client_config(&trust)?;
        let name = super::tls::server_name(host, url)?;
        Ok(Remote {
            url: url.to_owned(),
            host: host.to_owned(),
            port,
            security: ClientSecurity::Tls { config, name, trust },
        })
    }

    /// A plain-TCP server at `url` (`caspian+tcp://host:port`). The token crosses in clear
    /// text; refused for a host that is not loopback unless `scope` allows any address.
    pub fn insecure(url: &str, scope: InsecureScope) -> Result<Self> {
        let (scheme, host, port) = split_url(url)?;
        if scheme != TCP_SCHEME {
            return Err(Error::Config {
                what: format!("URL {url}"),
                problem: format!("its scheme is `{scheme}`, not `{TCP_SCHEME}`"),
                fix: format!("write {TCP_SCHEME}://HOST:PORT, or connect with TLS"),
            });
        }
        let remote = Remote {
            url: url.to_owned(),
            host: host.to_owned(),
            port,
            security: ClientSecurity::Insecure,
        };
        if scope == InsecureScope::LoopbackOnly && remote.addrs()?.iter().any(|a| !a.ip().is_loopback()) {
            return Err(Error::Config {
                what: format!("URL {url}"),
                problem: "plain TCP to an address that is not loopback sends the token in clear text".into(),
                fix: format!("connect with {TLS_SCHEME}://, or allow it with InsecureScope::AnyAddress"),
            });
        }
        Ok(remote)
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The addresses the host resolves to, in order.
    pub(crate) fn addrs(&self) -> Result<Vec<SocketAddr>> {
        resolve(&format!("{}:{}", bracketed(&self.host), self.port), &self.url)
    }
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_host_and_port() {
        assert_eq!(
            split_url("caspian+tls://127.0.0.1:7878").unwrap(),
            ("caspian+tls", "127.0.0.1", 7878)
        );
        assert_eq!(
            split_url("caspian+tls://[::1]:80/").unwrap(),
            ("caspian+tls", "::1", 80)
        );
        assert_eq!(
            split_url("caspian+tcp://localhost:1").unwrap(),
            ("caspian+tcp", "localhost", 1)
        );
        for bad in [
            "127.0.0.1:80",
            "caspian+tls://host",
            "caspian+tls://:80",
            "caspian+tls://h:99999",
            "caspian+tls://u@h:1",
        ] {
            assert!(matches!(split_url(bad), Err(Error::Config { .. })), "{bad}");
        }
    }

    #[test]
    fn plain_tcp_is_loopback_only_unless_asked_twice() {
        assert!(matches!(
            TcpListen::insecure("0.0.0.0:0", InsecureScope::LoopbackOnly),
            Err(Error::Config { .. })
        ));
        assert!(TcpListen::insecure("127.0.0.1:0", InsecureScope::LoopbackOnly).is_ok());
        assert!(matches!(
            Remote::insecure("caspian+tcp://10.1.2.3:80", InsecureScope::LoopbackOnly),
            Err(Error::Config { .. })
        ));
        assert!(matches!(
            Remote::insecure("caspian+tls://127.0.0.1:80", InsecureScope::LoopbackOnly),
            Err(Error::Config { .. })
        ));
    }
}
