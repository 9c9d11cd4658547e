//! TLS material from PEM files, for the TCP listener (mutual TLS: the server's
//! certificate and the CA that client certificates must be signed by) and for clients of
//! `https://` targets (the CA they trust and the certificate they present). rustls does
//! the work, through tonic's `tls-ring` feature.
//!
//! Everything is read and checked once, at start, so that a missing or malformed file is
//! a configuration error (exit 64) naming the file, not a failed handshake later.

use std::{path::Path, time::Duration};

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig};

use crate::config::{ClientTlsFiles, ServerTlsFiles};

/// A TLS handshake that takes longer is dropped (it holds no request yet).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The listener's TLS: `cert` + `key` as its identity, and client certificates required
/// and verified against `client_ca`.
pub fn server_config(files: &ServerTlsFiles) -> Result<ServerTlsConfig, TlsError> {
    let identity = identity(&files.cert, &files.key)?;
    let client_ca = certificates(&files.client_ca, "server.tls.client_ca")?;
    let config = ServerTlsConfig::new()
        .identity(identity)
        .client_ca_root(client_ca)
        .client_auth_optional(false)
        .timeout(HANDSHAKE_TIMEOUT);
    // tonic parses the PEM only when the acceptor is built: build one now.
    Server::builder().tls_config(config.clone()).map_err(|e| {
        TlsError(format!(
            "[server.tls] cert {}, key {}, client_ca {}: {}",
            files.cert.display(),
            files.key.display(),
            files.client_ca.display(),
            root_cause(&e)
        ))
    })?;
    Ok(config)
}

/// A client's TLS: the CA it trusts and, if given, the certificate it presents.
pub fn client_config(files: &ClientTlsFiles) -> Result<ClientTlsConfig, TlsError> {
    let mut config = ClientTlsConfig::new()
        .ca_certificate(certificates(&files.ca, "CA certificate")?)
        .timeout(HANDSHAKE_TIMEOUT);
    match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => config = config.identity(identity(cert, key)?),
        (None, None) => {}
        (Some(_), None) => return Err(TlsError("a client certificate needs its key".into())),
        (None, Some(_)) => return Err(TlsError("a client key needs its certificate".into())),
    }
    if let Some(name) = &files.server_name {
        config = config.domain_name(name.clone());
    }
    // As for the server: make tonic parse the files now.
    Endpoint::from_static("https://localhost").tls_config(config.clone()).map_err(|e| {
        TlsError(format!("client TLS (CA {}): {}", files.ca.display(), root_cause(&e)))
    })?;
    Ok(config)
}

fn identity(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
    let cert_pem = read(cert)?;
    if !cert_pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(TlsError(format!("{}: no PEM certificate in it", cert.display())));
    }
    let key_pem = read(key)?;
    if !key_pem.contains("PRIVATE KEY-----") {
        return Err(TlsError(format!(
            "{}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it",
            key.display()
        )));
    }
    Ok(Identity::from_pem(cert_pem, key_pem))
}

fn certificates(path: &Path, what: &str) -> Result<Certificate, TlsError> {
    let pem = read(path)?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(TlsError(format!("{what} {}: no PEM certificate in it", path.display())));
    }
    Ok(Certificate::from_pem(pem))
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|e| TlsError(format!("read {}: {e}", path.display())))
}

/// The innermost error's message: tonic's own are generic ("transport error").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = error;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string()
}
