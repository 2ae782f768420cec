//! Certificates and TLS configurations: a self-signed pair for a new data
//! directory, the rustls server configuration serving the pair in use
//! (swapped in place on reload), and the client configurations for
//! connections the server opens.
//!
//! Imports `util`. Invariants: an existing pair is never overwritten; a
//! pair replaces the one in use only once both files parsed and the key
//! matched the certificate; a client configuration that skips chain
//! verification is only used where the result is recorded (opportunistic
//! STARTTLS between MTAs).

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

/// The server's certificate and key, swappable while the listeners run:
/// each new handshake takes the current pair, one in progress keeps its
/// own ([`Certificates::reload`] on SIGHUP).
#[derive(Debug)]
pub struct Certificates {
    current: std::sync::RwLock<std::sync::Arc<rustls::sign::CertifiedKey>>,
}

impl Certificates {
    pub fn load(cert: &Path, key: &Path) -> io::Result<std::sync::Arc<Certificates>> {
        Ok(std::sync::Arc::new(Certificates {
            current: std::sync::RwLock::new(std::sync::Arc::new(certified_key(cert, key)?)),
        }))
    }

    /// Reads the pair again; on any error the pair in use stays.
    pub fn reload(&self, cert: &Path, key: &Path) -> io::Result<()> {
        let fresh = std::sync::Arc::new(certified_key(cert, key)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// SHA-256 of the end-entity certificate in use.
    pub fn fingerprint(&self) -> [u8; 32] {
        use sha2::Digest;
        let current = self.current();
        current
            .cert
            .first()
            .map(|c| sha2::Sha256::digest(c.as_ref()).into())
            .unwrap_or_default()
    }

    fn current(&self) -> std::sync::Arc<rustls::sign::CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl rustls::server::ResolvesServerCert for Certificates {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<std::sync::Arc<rustls::sign::CertifiedKey>> {
        Some(self.current())
    }
}

/// A chain and its key, checked to belong together.
fn certified_key(cert: &Path, key: &Path) -> io::Result<rustls::sign::CertifiedKey> {
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
    rustls::sign::CertifiedKey::from_der(certs, key_der, &provider()).map_err(|e| {
        bad(
            key,
            &format!("{e} (does the key belong to {}?)", cert.display()),
        )
    })
}

/// The rustls server configuration (ring provider, TLS 1.2 and 1.3) that
/// serves whatever `certificates` holds at each handshake.
pub fn server_config(
    certificates: std::sync::Arc<Certificates>,
) -> io::Result<std::sync::Arc<rustls::ServerConfig>> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| io::Error::other(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(certificates);
    Ok(std::sync::Arc::new(config))
}

fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// Checks a server's chain against the public web roots and `extra`
/// (`relay.ca_file`: a private CA the operator trusts too).
#[allow(clippy::expect_used)] // INVARIANT below: `build` fails only on an empty store.
pub fn web_verifier(
    extra: &[rustls::pki_types::CertificateDer<'static>],
) -> std::sync::Arc<rustls::client::WebPkiServerVerifier> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
    roots.add_parsable_certificates(extra.iter().cloned());
    rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        provider(),
    )
    .build()
    // INVARIANT: the roots include the bundled webpki list; `build` only
    // fails on an empty store.
    .expect("the bundled roots are valid")
}

/// A client configuration that verifies servers against the web roots
/// and `extra` (webhooks and MTA-STS policies over https, IMAP migration).
#[allow(clippy::expect_used)] // INVARIANT below.
pub fn verifying_client(
    extra: &[rustls::pki_types::CertificateDer<'static>],
) -> std::sync::Arc<rustls::ClientConfig> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        // INVARIANT: ring implements every default protocol version.
        .expect("ring supports the default versions")
        .with_webpki_verifier(web_verifier(extra))
        .with_no_client_auth();
    std::sync::Arc::new(config)
}

/// The certificates of a PEM file (a CA bundle); an error names the file.
pub fn read_certificates(
    path: &Path,
) -> io::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(io::Error::other(format!(
            "{}: no certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// A client configuration for opportunistic STARTTLS between mail
/// servers (RFC 3207 §4.1: an unverifiable certificate is still better
/// than plaintext). Handshake signatures are checked; the chain is not,
/// and the caller records what [`verify_chain`] says about it.
#[allow(clippy::expect_used)] // INVARIANT below.
pub fn opportunistic_client() -> std::sync::Arc<rustls::ClientConfig> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        // INVARIANT: ring implements every default protocol version.
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyChain(provider())))
        .with_no_client_auth();
    std::sync::Arc::new(config)
}

/// The SHA-256 of the first certificate in a PEM file: what a cluster
/// secondary pins its primary by.
pub fn fingerprint(cert: &Path) -> io::Result<[u8; 32]> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use sha2::Digest;
    let first = CertificateDer::pem_file_iter(cert)
        .map_err(|e| io::Error::other(format!("{}: {e}", cert.display())))?
        .next()
        .ok_or_else(|| io::Error::other(format!("{}: no certificate", cert.display())))?
        .map_err(|e| io::Error::other(format!("{}: {e}", cert.display())))?;
    Ok(sha2::Sha256::digest(first.as_ref()).into())
}

/// A client configuration that accepts exactly one server certificate,
/// named by its SHA-256 (a cluster secondary's link to its primary): no
/// chain, no names, no expiry; the handshake signatures are checked.
#[allow(clippy::expect_used)] // INVARIANT below.
pub fn pinned_client(pin: [u8; 32]) -> std::sync::Arc<rustls::ClientConfig> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        // INVARIANT: ring implements every default protocol version.
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(Pinned {
            pin,
            signatures: AnyChain(provider()),
        }))
        .with_no_client_auth();
    std::sync::Arc::new(config)
}

#[derive(Debug)]
struct Pinned {
    pin: [u8; 32],
    signatures: AnyChain,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use sha2::Digest;
        let seen: [u8; 32] = sha2::Sha256::digest(end_entity.as_ref()).into();
        // The pin is public: a plain comparison is fine.
        if seen == self.pin {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the certificate's fingerprint {} is not the pinned one",
                hex::encode(seen)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.signatures.supported_verify_schemes()
    }
}

/// Whether `chain` is valid for `name` under the verifier's roots, and
/// if not, why.
pub fn verify_chain(
    verifier: &rustls::client::WebPkiServerVerifier,
    chain: &[rustls::pki_types::CertificateDer<'static>],
    name: &rustls::pki_types::ServerName<'static>,
) -> Result<(), rustls::Error> {
    use rustls::client::danger::ServerCertVerifier;
    let Some((end, intermediates)) = chain.split_first() else {
        return Err(rustls::Error::NoCertificatesPresented);
    };
    verifier
        .verify_server_cert(
            end,
            intermediates,
            name,
            &[],
            rustls::pki_types::UnixTime::now(),
        )
        .map(|_| ())
}

/// Whether `chain` is valid for `name` when its certificate at `anchor`
/// (an issuer: 1 or more) is the only trust anchor (DANE-TA, RFC 7672
/// §3.2.2: the name is checked).
pub fn verify_to_anchor(
    chain: &[rustls::pki_types::CertificateDer<'static>],
    anchor: usize,
    name: &rustls::pki_types::ServerName<'static>,
) -> Result<(), rustls::Error> {
    let ta = chain
        .get(anchor)
        .filter(|_| anchor > 0)
        .ok_or(rustls::Error::NoCertificatesPresented)?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ta.clone())
        .map_err(|e| rustls::Error::General(format!("the trust anchor: {e}")))?;
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        provider(),
    )
    .build()
    .map_err(|e| rustls::Error::General(e.to_string()))?;
    verify_chain(&verifier, chain.get(..anchor).unwrap_or_default(), name)
}

#[derive(Debug)]
struct AnyChain(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyChain {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
