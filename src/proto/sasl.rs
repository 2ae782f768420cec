//! SASL responses (RFC 4422) of the mechanisms sealmail offers: PLAIN
//! (RFC 4616) and LOGIN (draft-murchison-sasl-login), base64 on the wire.
//!
//! Imports base64 only. Invariants: total over any input; an authorization
//! identity other than the authenticating user is refused (nobody may act
//! for another); names and passwords with NUL or over `MAX_FIELD` octets
//! never reach a password check.

use base64::Engine;

/// Longest user name or password accepted (RFC 4616 allows 255 octets;
/// RFC 5321 addresses are at most 254).
pub const MAX_FIELD: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslError {
    /// Not valid base64.
    Base64,
    /// Not the mechanism's layout, not UTF-8, NUL inside, or too long.
    Malformed,
    /// authzid names someone else.
    AuthzMismatch,
}

impl SaslError {
    pub fn describe(self) -> &'static str {
        match self {
            SaslError::Base64 => "the response is not valid base64",
            SaslError::Malformed => "the response is malformed",
            SaslError::AuthzMismatch => "acting as another user is not allowed",
        }
    }
}

/// `authzid NUL authcid NUL password` → (user, password).
pub fn plain(b64: &str) -> Result<(String, String), SaslError> {
    let raw = decode(b64)?;
    let mut parts = raw.split(|&b| b == 0);
    let (Some(authz), Some(user), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    let user = field(user)?;
    let pass = field(pass)?;
    if user.is_empty() {
        return Err(SaslError::Malformed);
    }
    if !authz.is_empty() && !authz.eq_ignore_ascii_case(user.as_bytes()) {
        return Err(SaslError::AuthzMismatch);
    }
    Ok((user, pass))
}

/// One LOGIN step (user name or password): base64 of the text.
pub fn login_field(b64: &str) -> Result<String, SaslError> {
    let raw = decode(b64)?;
    if raw.contains(&0) {
        return Err(SaslError::Malformed);
    }
    field(&raw)
}

fn decode(b64: &str) -> Result<Vec<u8>, SaslError> {
    let b64 = b64.trim();
    if b64.len() > 4 * MAX_FIELD {
        return Err(SaslError::Malformed);
    }
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| SaslError::Base64)
}

fn field(b: &[u8]) -> Result<String, SaslError> {
    if b.len() > MAX_FIELD {
        return Err(SaslError::Malformed);
    }
    String::from_utf8(b.to_vec()).map_err(|_| SaslError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn plain_and_login() {
        assert_eq!(
            plain(&enc(b"\0ann@x\0pw")),
            Ok(("ann@x".into(), "pw".into()))
        );
        assert_eq!(
            plain(&enc(b"ANN@x\0ann@x\0pw")),
            Ok(("ann@x".into(), "pw".into()))
        );
        assert_eq!(
            plain(&enc(b"bob@x\0ann@x\0pw")),
            Err(SaslError::AuthzMismatch)
        );
        assert_eq!(plain("!!!"), Err(SaslError::Base64));
        assert_eq!(plain(&enc(b"ann@x\0pw")), Err(SaslError::Malformed));
        assert_eq!(plain(&enc(b"\0\0pw")), Err(SaslError::Malformed));
        assert_eq!(plain(&enc(b"\0a\0b\0c")), Err(SaslError::Malformed));
        assert_eq!(plain(&enc(&[b'a'; 10_000])), Err(SaslError::Malformed));
        assert_eq!(login_field(&enc(b"ann@x")), Ok("ann@x".into()));
        assert_eq!(login_field(&enc(b"a\0b")), Err(SaslError::Malformed));
        assert_eq!(login_field(&enc(&[0xff, 0xfe])), Err(SaslError::Malformed));
    }
}
