//! TLS for TCP connections (feature `tls`): the rustls configurations of the server (its
//! certificate and key from PEM files) and of the client (what it trusts: a CA file, a
//! pinned certificate file, or a certificate's SHA-256 fingerprint), on the ring
//! provider (D-N1, D-N3).
//!
//! The server sends no TLS 1.3 session tickets: a client checks an idle connection for
//! unasked bytes before reusing it (as on the Unix socket), and a ticket arriving late
//! would look like one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::error::{Error, Result};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config_error(what: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Error {
    Error::Config {
        what: what.into(),
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// Every certificate of a PEM file, refusing a file with none.
fn certificates(path: &Path, role: &str) -> Result<Vec<CertificateDer<'static>>> {
    let what = format!("{role} file {}", path.display());
    let certs: std::result::Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| config_error(&what, format!("cannot be read: {e}"), "pass a PEM file"))?
        .collect();
    let certs =
        certs.map_err(|e| config_error(&what, format!("is not valid PEM: {e}"), "pass a PEM file"))?;
    if certs.is_empty() {
        return Err(config_error(
            &what,
            "holds no `BEGIN CERTIFICATE` block",
            "pass a PEM file with the certificate(s)",
        ));
    }
    Ok(certs)
}

/// The rustls configuration of a TLS listener: the certificate chain in `cert` (PEM,
/// the server's own first) and its private key in `key` (PEM: PKCS#8, PKCS#1 or SEC1).
pub(crate) fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let chain = certificates(cert, "certificate")?;
    let key_what = format!("key file {}", key.display());
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        config_error(
            &key_what,
            format!("holds no usable private key: {e}"),
            "pass the PEM private key of the certificate (PKCS#8, PKCS#1 or SEC1)",
        )
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("the TLS provider", e.to_string(), "report this"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            config_error(
                format!("{} with {}", cert.display(), key.display()),
                format!("the certificate and key do not make a TLS identity: {e}"),
                "pass the key that belongs to the certificate",
            )
        })?;
    config.send_tls13_tickets = 0;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What a TLS client trusts as the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Certificates signed by the CA(s) in this PEM file, for the URL's host name (or IP
    /// address), as a browser checks them.
    CaFile(PathBuf),
    /// Exactly the certificate in this PEM file (its first certificate), whatever its
    /// name, issuer or dates: a pinned self-signed certificate.
    PinnedCertificate(PathBuf),
    /// Exactly the certificate whose DER encoding has this SHA-256 digest (as
    /// `openssl x509 -noout -fingerprint -sha256` prints it, colons optional).
    Fingerprint([u8; 32]),
}

impl Trust {
    /// Parses a SHA-256 fingerprint: 64 hex digits, colons between pairs allowed.
    pub fn fingerprint(text: &str) -> Result<Self> {
        let hex: String = text.chars().filter(|c| *c != ':').collect();
        let mut digest = [0u8; 32];
        let valid = hex.len() == 64
            && hex.is_ascii()
            && digest.iter_mut().enumerate().all(|(i, byte)| {
                u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                    .map(|b| *byte = b)
                    .is_ok()
            });
        if !valid {
            return Err(config_error(
                format!("fingerprint `{text}`"),
                "is not a SHA-256 digest (64 hex digits)",
                "pass the output of `openssl x509 -noout -fingerprint -sha256 -in CERT`",
            ));
        }
        Ok(Trust::Fingerprint(digest))
    }

    /// The fix an untrusted certificate's error names.
    pub(crate) fn fix(&self) -> String {
        match self {
            Trust::CaFile(path) => format!(
                "pass the CA file that signed the server's certificate (now {}), and connect with a host name the certificate names",
                path.display()
            ),
            Trust::PinnedCertificate(path) => format!(
                "pin the server's current certificate (now {}), or trust its CA instead",
                path.display()
            ),
            Trust::Fingerprint(_) => {
                "pin the SHA-256 fingerprint of the server's current certificate, or trust its CA instead".into()
            }
        }
    }
}

/// The SHA-256 digest of a certificate's DER encoding, as hex pairs with colons.
pub fn fingerprint_of(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The rustls configuration of a client that trusts `trust`.
pub(crate) fn client_config(trust: &Trust) -> Result<Arc<rustls::ClientConfig>> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("the TLS provider", e.to_string(), "report this"))?;
    let mut config = match trust {
        Trust::CaFile(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(path, "CA")? {
                roots.add(cert).map_err(|e| {
                    config_error(
                        format!("CA file {}", path.display()),
                        format!("holds a certificate that is not a usable CA: {e}"),
                        "pass the CA's certificate",
                    )
                })?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::PinnedCertificate(path) => {
            let pinned = certificates(path, "pinned certificate")?.remove(0);
            let digest = ring::digest::digest(&ring::digest::SHA256, pinned.as_ref());
            let mut pin = [0u8; 32];
            pin.copy_from_slice(digest.as_ref());
            pinned_config(builder, pin)
        }
        Trust::Fingerprint(pin) => pinned_config(builder, *pin),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn pinned_config(
    builder: rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>,
    pin: [u8; 32],
) -> rustls::ClientConfig {
    let algorithms = provider().signature_verification_algorithms;
    builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { pin, algorithms }))
        .with_no_client_auth()
}

/// Accepts exactly one certificate (by its SHA-256), and checks that the server holds its
/// key (the handshake signature), as any verifier does.
#[derive(Debug)]
struct Pinned {
    pin: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let digest = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        // Not secret: a plain comparison.
        if digest.as_ref() == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "its SHA-256 fingerprint {} is not the pinned one",
                fingerprint_of(end_entity.as_ref())
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The server name a client checks the certificate against: the URL's host (a DNS name
/// or an IP address).
pub(crate) fn server_name(host: &str, url: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(host.to_owned()).map_err(|e| {
        config_error(
            format!("URL {url}"),
            format!("its host `{host}` is not a DNS name or IP address: {e}"),
            "write caspian+tls://HOST:PORT",
        )
    })
}

/// Whether a handshake error is about the server's certificate (so the fix is to trust
/// the right one), rather than the connection.
pub(crate) fn is_certificate_error(error: &std::io::Error) -> Option<String> {
    let inner = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    match inner {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            Some(inner.to_string())
        }
        // What the pinning verifier answers for another certificate.
        rustls::Error::General(reason) => Some(reason.clone()),
        _ => None,
    }
}
