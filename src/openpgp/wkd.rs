//! The Web Key Directory's names for an address (draft-koch-openpgp-
//! webkey-service §3.1): the local part, lower-cased, hashed with SHA-1
//! and written in z-base-32, under the advanced (`openpgpkey.DOMAIN`) or
//! the direct (`DOMAIN`) host.
//!
//! Imports nothing of ours. Invariants: [`hash`] is total; [`parse_path`]
//! accepts only the two documented path shapes and a domain and hash
//! that could be ours (no `/`, no `..`).

use sha1::{Digest, Sha1};

const ZBASE32: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// The z-base-32 SHA-1 of the lower-cased local part (32 characters).
pub fn hash(local: &str) -> String {
    zbase32(&Sha1::digest(local.to_ascii_lowercase().as_bytes()))
}

fn zbase32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            let i = ((acc >> bits) & 31) as usize;
            out.push(char::from(ZBASE32.get(i).copied().unwrap_or(b'y')));
        }
    }
    if bits > 0 {
        let i = ((acc << (5 - bits)) & 31) as usize;
        out.push(char::from(ZBASE32.get(i).copied().unwrap_or(b'y')));
    }
    out
}

/// Where an address' key is looked up, as host and path: the advanced
/// method's (`openpgpkey.DOMAIN`), then the direct method's (`DOMAIN`).
pub fn locations(address: &str) -> Option<[(String, String); 2]> {
    let (local, domain) = address.rsplit_once('@')?;
    let domain = domain.to_ascii_lowercase();
    let hash = hash(local);
    Some([
        (
            format!("openpgpkey.{domain}"),
            format!("/.well-known/openpgpkey/{domain}/hu/{hash}?l={local}"),
        ),
        (
            domain.clone(),
            format!("/.well-known/openpgpkey/hu/{hash}?l={local}"),
        ),
    ])
}

/// What a WKD request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// The key of a hashed local part of a domain.
    Key { domain: String, hash: String },
    /// The domain's policy file (empty: no options).
    Policy { domain: String },
}

/// A request path, on `host`: `/.well-known/openpgpkey/DOMAIN/hu/HASH`
/// or `…/DOMAIN/policy` (advanced, `host` is `openpgpkey.DOMAIN`), or
/// `/.well-known/openpgpkey/hu/HASH` or `…/policy` (direct, `host` is
/// the domain).
pub fn parse_path(host: &str, path: &str) -> Option<Request> {
    let rest = path.strip_prefix("/.well-known/openpgpkey/")?;
    let segs: Vec<&str> = rest.split('/').collect();
    let host = host.to_ascii_lowercase();
    let (domain, tail) = match segs.as_slice() {
        [d, "hu", h] => (d.to_ascii_lowercase(), Some(*h)),
        [d, "policy"] => (d.to_ascii_lowercase(), None),
        ["hu", h] => (host.clone(), Some(*h)),
        ["policy"] => (host.clone(), None),
        _ => return None,
    };
    let plausible = !domain.is_empty()
        && domain.len() <= 253
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !domain.contains("..");
    // Advanced: the host is openpgpkey.DOMAIN; direct: the domain itself.
    let host_fits = host == domain || host.strip_prefix("openpgpkey.") == Some(domain.as_str());
    if !plausible || !host_fits {
        return None;
    }
    match tail {
        None => Some(Request::Policy { domain }),
        Some(h) if h.len() == 32 && h.bytes().all(|b| ZBASE32.contains(&b)) => Some(Request::Key {
            domain,
            hash: h.to_string(),
        }),
        Some(_) => None,
    }
}
