//! Certificates: a self-signed pair for a new data directory.
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
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(|e| io::Error::other(format!("cannot make a certificate: {e}")))?;
    for p in [cert, key] {
        if let Some(dir) = p.parent() {
            create_private_dir(dir)?;
        }
    }
    write_durable(key, ck.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_durable(cert, ck.cert.pem().as_bytes(), 0o644)?;
    Ok(true)
}
