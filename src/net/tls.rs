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

/// The ALPN protocol of ACME's tls-alpn-01 challenge (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The server's certificates, swappable while the listeners run: each new
/// handshake takes the current ones, one in progress keeps its own.
///
/// The configured pair (`[tls]`, re-read on SIGHUP) answers unless an
/// issued certificate (ACME) covers the name the client asked for (SNI),
/// or the client named none and one was issued. A handshake offering only
/// `acme-tls/1` gets the challenge certificate of its name, if any.
#[derive(Debug)]
pub struct Certificates {
    current: std::sync::RwLock<std::sync::Arc<rustls::sign::CertifiedKey>>,
    issued: std::sync::RwLock<Vec<Issued>>,
    challenges: std::sync::RwLock<
        std::collections::HashMap<String, std::sync::Arc<rustls::sign::CertifiedKey>>,
    >,
}

/// An issued certificate and the names it is valid for (lowercase).
#[derive(Debug)]
struct Issued {
    names: Vec<String>,
    key: std::sync::Arc<rustls::sign::CertifiedKey>,
}

impl Certificates {
    pub fn load(cert: &Path, key: &Path) -> io::Result<std::sync::Arc<Certificates>> {
        Ok(std::sync::Arc::new(Certificates {
            current: std::sync::RwLock::new(std::sync::Arc::new(certified_key(cert, key)?)),
            issued: Default::default(),
            challenges: Default::default(),
        }))
    }

    /// Reads the pair again; on any error the pair in use stays.
    pub fn reload(&self, cert: &Path, key: &Path) -> io::Result<()> {
        let fresh = std::sync::Arc::new(certified_key(cert, key)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// Serves an issued chain (PEM) and its key (PEM) for `names` from the
    /// next handshake on, in place of the one issued for the same first
    /// name. Nothing changes unless both parse and belong together. The
    /// first installed answers clients that name no host.
    pub fn install_issued(&self, names: &[String], chain: &[u8], key: &[u8]) -> io::Result<()> {
        let fresh = std::sync::Arc::new(certified_key_pem(chain, key)?);
        let names: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        let mut issued = self.issued.write().unwrap_or_else(|e| e.into_inner());
        // In place, so the first one installed (the server's own name)
        // stays the one for clients that name none.
        match issued.iter_mut().find(|i| i.names.first() == names.first()) {
            Some(i) => *i = Issued { names, key: fresh },
            None => issued.push(Issued { names, key: fresh }),
        }
        Ok(())
    }

    /// Serves `key` to tls-alpn-01 handshakes for `name` (`None` removes it).
    pub fn set_challenge(&self, name: &str, key: Option<rustls::sign::CertifiedKey>) {
        let mut map = self.challenges.write().unwrap_or_else(|e| e.into_inner());
        match key {
            Some(k) => map.insert(name.to_ascii_lowercase(), std::sync::Arc::new(k)),
            None => map.remove(&name.to_ascii_lowercase()),
        };
    }

    /// SHA-256 of the configured end-entity certificate.
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

    /// The certificate for a client that named `name` (SNI).
    fn pick(&self, name: Option<&str>) -> std::sync::Arc<rustls::sign::CertifiedKey> {
        let issued = self.issued.read().unwrap_or_else(|e| e.into_inner());
        let found = match name {
            Some(n) => {
                let n = n.to_ascii_lowercase();
                issued
                    .iter()
                    .find(|i| i.names.iter().any(|p| name_matches(p, &n)))
            }
            None => issued.first(),
        };
        match found {
            Some(i) => i.key.clone(),
            None => {
                drop(issued);
                self.current()
            }
        }
    }
}

/// Whether a certificate name (`*.` wildcards of one label) covers `host`.
fn name_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => host
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == parent),
        None => pattern == host,
    }
}

impl rustls::server::ResolvesServerCert for Certificates {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<std::sync::Arc<rustls::sign::CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            let name = hello.server_name()?.to_ascii_lowercase();
            return self
                .challenges
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&name)
                .cloned();
        }
        Some(self.pick(hello.server_name()))
    }
}

/// Counts a finished server handshake by its TLS version
/// (`sealmail_tls_handshakes_total`).
pub fn count_handshake(conn: &rustls::ServerConnection) {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "other",
    };
    crate::util::metrics::inc("sealmail_tls_handshakes_total", &[("version", version)]);
}

/// A chain and its key from PEM text, checked to belong together.
pub fn certified_key_pem(chain: &[u8], key: &[u8]) -> io::Result<rustls::sign::CertifiedKey> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| io::Error::other(format!("certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(io::Error::other("no certificate in the chain"));
    }
    let key_der =
        PrivateKeyDer::from_pem_slice(key).map_err(|e| io::Error::other(format!("key: {e}")))?;
    rustls::sign::CertifiedKey::from_der(certs, key_der, &provider())
        .map_err(|e| io::Error::other(format!("the key does not belong to the certificate: {e}")))
}

/// A certificate and key in DER, as rustls serves them (a tls-alpn-01
/// challenge certificate). The pair is not matched through webpki, which
/// refuses the challenge's critical acmeIdentifier extension.
pub fn certified_key_der(cert: Vec<u8>, key: Vec<u8>) -> io::Result<rustls::sign::CertifiedKey> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key));
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| io::Error::other(format!("challenge key: {e}")))?;
    Ok(rustls::sign::CertifiedKey::new(
        vec![CertificateDer::from(cert)],
        signing,
    ))
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
    Ok(std::sync::Arc::new(server_config_with(certificates)?))
}

/// [`server_config`] for HTTPS: HTTP/1.1 and ACME's `acme-tls/1` offered
/// by ALPN.
pub fn web_server_config(
    certificates: std::sync::Arc<Certificates>,
) -> io::Result<std::sync::Arc<rustls::ServerConfig>> {
    let mut config = server_config_with(certificates)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    Ok(std::sync::Arc::new(config))
}

fn server_config_with(
    certificates: std::sync::Arc<Certificates>,
) -> io::Result<rustls::ServerConfig> {
    Ok(rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| io::Error::other(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(certificates))
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
