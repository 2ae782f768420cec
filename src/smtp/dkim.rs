//! DKIM (RFC 6376) for mail this server sends: per-domain keys (RSA 2048
//! for rsa-sha256, Ed25519 for ed25519-sha256, RFC 8463), the DNS records
//! that publish them, and signing with relaxed/relaxed canonicalisation.
//!
//! Imports mail-auth and `store` (its interface: `DkimKey`, and the keys
//! of a domain for [`signed_if_keys`]). Invariants:
//! private keys leave this module only inside a `DkimKey` (zeroised on
//! drop); a message is signed with every key of its domain, so a verifier
//! that knows only RSA still finds a signature it can check.

use base64::Engine;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::generate::DkimKeyPair;
use mail_auth::dkim::{Canonicalization, DkimSigner};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer};

use crate::store::DkimKey;

/// Header fields signed when present. From is required by RFC 6376; the
/// rest are what a forger would most like to change.
const SIGNED: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
];

const RSA_BITS: usize = 2048;

/// A new RSA and Ed25519 key for a domain; selectors name the algorithm and
/// the day (`rsa20261124`, `ed20261124`), so a later rotation gets new names.
pub fn generate(now_unix: i64) -> Result<Vec<DkimKey>, String> {
    let day: String = crate::util::iso8601_utc(now_unix)
        .chars()
        .take(10)
        .filter(char::is_ascii_digit)
        .collect();
    let rsa = DkimKeyPair::generate_rsa(RSA_BITS).map_err(|e| format!("RSA key: {e}"))?;
    let ed = DkimKeyPair::generate_ed25519().map_err(|e| format!("Ed25519 key: {e}"))?;
    let (rsa_private, rsa_public) = rsa.into_inner();
    let (ed_private, ed_public) = ed.into_inner();
    Ok(vec![
        DkimKey {
            selector: format!("rsa{day}"),
            algorithm: "rsa".into(),
            private_key: rsa_private,
            public_key: rsa_spki(&rsa_public),
        },
        DkimKey {
            selector: format!("ed{day}"),
            algorithm: "ed25519".into(),
            private_key: ed_private,
            public_key: ed_public,
        },
    ])
}

/// The TXT record at `<selector>._domainkey.<domain>`.
pub fn record(key: &DkimKey) -> String {
    let k = if key.algorithm == "ed25519" {
        "ed25519"
    } else {
        "rsa"
    };
    let p = base64::engine::general_purpose::STANDARD.encode(&key.public_key);
    format!("v=DKIM1; k={k}; p={p}")
}

/// `message` with `DKIM-Signature` fields on top when `domain` has keys
/// in the store; as it is otherwise (and when signing fails, logged with
/// `what` the message is).
pub async fn signed_if_keys(
    store: &crate::store::Store,
    domain: &str,
    message: Vec<u8>,
    what: &'static str,
) -> Vec<u8> {
    let keys = match store.dkim_keys(domain).await {
        Ok(keys) if !keys.is_empty() => keys,
        _ => return message,
    };
    let domain = domain.to_string();
    blocking::unblock(move || match sign(&domain, &keys, &message) {
        Ok(header) => {
            let mut m = header.into_bytes();
            m.extend_from_slice(&message);
            m
        }
        Err(e) => {
            tracing::warn!(error = %e, "{what} sent unsigned");
            message
        }
    })
    .await
}

/// `DKIM-Signature` header fields for `message` (one per key, each ending
/// in CRLF), to be put in front of it.
pub fn sign(domain: &str, keys: &[DkimKey], message: &[u8]) -> Result<String, String> {
    let mut out = String::new();
    for key in keys {
        let header = match key.algorithm.as_str() {
            "ed25519" => {
                let k = Ed25519Key::from_pkcs8_maybe_unchecked_der(&key.private_key)
                    .map_err(|e| format!("DKIM key {}: {e}", key.selector))?;
                signer_header(DkimSigner::from_key(k), domain, &key.selector, message)?
            }
            _ => {
                let der =
                    PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(key.private_key.as_slice()));
                let k = RsaKey::<Sha256>::from_key_der(der)
                    .map_err(|e| format!("DKIM key {}: {e}", key.selector))?;
                signer_header(DkimSigner::from_key(k), domain, &key.selector, message)?
            }
        };
        out.push_str(&header);
    }
    Ok(out)
}

fn signer_header<T: mail_auth::common::crypto::SigningKey>(
    signer: DkimSigner<T>,
    domain: &str,
    selector: &str,
    message: &[u8],
) -> Result<String, String> {
    let signature = signer
        .domain(domain)
        .selector(selector)
        .headers(SIGNED.iter().copied())
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
        .sign(message)
        .map_err(|e| format!("DKIM signing: {e}"))?;
    Ok(signature.to_header())
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo, the form DKIM
/// records carry (RFC 6376 §3.6.1).
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    const RSA_ALGORITHM: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0u8];
    bits.extend_from_slice(pkcs1);
    let mut body = RSA_ALGORITHM.to_vec();
    body.extend(der(0x03, &bits));
    der(0x30, &body)
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let len = n.to_be_bytes();
        let skip = len.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (len.len() - skip) as u8);
        out.extend_from_slice(&len[skip..]);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_with_both_keys_and_publishes_records() {
        let keys = generate(1_795_000_000).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys[0].selector.starts_with("rsa2026"));
        assert!(record(&keys[0]).starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"));
        assert!(record(&keys[1]).starts_with("v=DKIM1; k=ed25519; p="));
        let msg = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nbody\r\n";
        let headers = sign("example.org", &keys, msg).unwrap();
        assert_eq!(headers.matches("DKIM-Signature:").count(), 2);
        assert!(headers.contains("a=rsa-sha256"));
        assert!(headers.contains("a=ed25519-sha256"));
        assert!(headers.contains("c=relaxed/relaxed"));
        assert!(headers.contains("d=example.org"));
    }

    #[test]
    fn der_lengths() {
        assert_eq!(der(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = der(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }
}
