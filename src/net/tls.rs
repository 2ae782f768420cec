//! Certificates: a self-signed pair for a new data directory, and the
//! rustls server configuration built from the pair in use.
//!
//! Imports `util`. Invariants: an existing pair is never overwritten.

use std::io;
use std::path::Path;

use crate::util::{create_private_dir, write_durable};

/// Writes a self-signed certificate for `hostname` (and localhost) unless
/// both files exist. Returns true if it wrote them.
pub fn ensure_self_signed(cert: &Path, key: &Path, hostname: &str) -> io::Result<bool> {
    if cert.exists() && key.exists() {
        return Ok(false);
    }
    let mut names = vec![hostname.to_string()];
    if hostname != "localhost" {
        names.push("localhost".into());
    }
    let fail = |e: rcgen::Error| io::Error::other(format!("cannot make a certificate: {e}"));
    let mut params = rcgen::CertificateParams::new(names).map_err(fail)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "sealmail (self-signed)");
    let signing_key = rcgen::KeyPair::generate().map_err(fail)?;
    let ck = rcgen::CertifiedKey {
        cert: params.self_signed(&signing_key).map_err(fail)?,
        signing_key,
    };
    for p in [cert, key] {
        if let Some(dir) = p.parent() {
            create_private_dir(dir)?;
        }
    }
    write_durable(key, ck.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_durable(cert, ck.cert.pem().as_bytes(), 0o644)?;
    Ok(true)
}

/// Loads a certificate chain and key into a rustls server configuration
/// (ring provider, TLS 1.2 and 1.3).
pub fn server_config(cert: &Path, key: &Path) -> io::Result<std::sync::Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad =
        |p: &Path, e: &dyn std::fmt::Display| io::Error::other(format!("{}: {e}", p.display()));
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, &e))?;
    if certs.is_empty() {
        return Err(bad(cert, &"no certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(cert, &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| bad(cert, &e))?;
    Ok(std::sync::Arc::new(config))
}
