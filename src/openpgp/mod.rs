//! OpenPGP for owners who gave their public key: the key checked when it
//! is imported, mail wrapped into PGP/MIME (RFC 3156) to it on arrival,
//! and the Web Key Directory's names for it.
//!
//! The implementation is rPGP (`pgp`, pure Rust on RustCrypto: no C
//! library to build or to keep patched, unlike sequoia's default nettle
//! backend). Only public keys ever reach this module; it holds no secret.
//!
//! Imports `util`. Invariants: [`check`] accepts only a transferable
//! public key whose self-signatures verify, that is neither revoked nor
//! expired, that names the address in a user ID and that has a usable
//! encryption key; [`wrap`] never wraps what is already encrypted (PGP/MIME
//! or S/MIME) and never returns plaintext of the message outside the
//! ciphertext except the header fields it keeps (`mime::OUTER`); nothing
//! here panics on any input.

mod mime;
pub mod wkd;

#[cfg(test)]
pub(crate) mod tests;

use pgp::composed::{Deserializable, SignedPublicKey, SignedSecretKey};
use pgp::packet::{Signature, SignatureType};
use pgp::ser::Serialize;
use pgp::types::KeyDetails;

pub use mime::{Wrapped, already_encrypted, wrap};

/// The largest key accepted (keys with many signatures from others can be
/// large; WKD asks for a minimal key, and mail waits on its parsing).
pub const MAX_KEY_BYTES: usize = 256 * 1024;

/// Why a key is refused, said to whoever imports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not an OpenPGP public key: {0}")]
    Unreadable(String),
    #[error("this is a secret key: give the public key only (gpg --export ADDRESS)")]
    Secret,
    #[error(
        "larger than {MAX_KEY_BYTES} bytes: export it minimal (gpg --export-options export-minimal)"
    )]
    TooLarge,
    #[error("its self-signatures do not verify: {0}")]
    BadSignature(String),
    #[error("the key is revoked")]
    Revoked,
    #[error("the key expired on {0}")]
    Expired(String),
    #[error("no user ID names {address} (it names: {found})")]
    WrongAddress { address: String, found: String },
    #[error("no encryption subkey that is valid now (the key can only sign)")]
    NoEncryptionKey,
}

/// A key that passed [`check`], with what `alias pgp show` prints.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The key as stored: binary transferable public key.
    pub bytes: Vec<u8>,
    /// Upper-case hex fingerprint of the primary key.
    pub fingerprint: String,
    pub user_ids: Vec<String>,
    /// When the primary key expires (Unix seconds), if it does.
    pub expires: Option<i64>,
    /// Fingerprint of the key mail is encrypted to.
    pub encryption_key: String,
    pub algorithm: String,
}

/// Parses and checks a public key (armored or binary) for `address` at
/// time `now` (Unix seconds).
pub fn check(input: &[u8], address: &str, now: i64) -> Result<Checked, Refusal> {
    if input.len() > MAX_KEY_BYTES {
        return Err(Refusal::TooLarge);
    }
    if SignedSecretKey::from_reader_single(input).is_ok() {
        return Err(Refusal::Secret);
    }
    let key = parse(input)?;
    key.verify_bindings()
        .map_err(|e| Refusal::BadSignature(e.to_string()))?;
    if !key.details.revocation_signatures.is_empty() {
        return Err(Refusal::Revoked);
    }
    let user_ids = user_ids(&key);
    let wanted = address.trim().to_ascii_lowercase();
    if !user_ids
        .iter()
        .any(|u| email_of(u).is_some_and(|e| e == wanted))
    {
        return Err(Refusal::WrongAddress {
            address: wanted,
            found: if user_ids.is_empty() {
                "nothing".into()
            } else {
                user_ids.join(", ")
            },
        });
    }
    let expires = expiry(key.primary_key.created_at().as_secs(), self_signature(&key));
    if let Some(at) = expires
        && at <= now
    {
        return Err(Refusal::Expired(crate::util::iso8601_utc(at)));
    }
    let target = encryption_target(&key, now).ok_or(Refusal::NoEncryptionKey)?;
    if target.expired {
        return Err(Refusal::NoEncryptionKey);
    }
    let bytes = key
        .to_bytes()
        .map_err(|e| Refusal::Unreadable(e.to_string()))?;
    Ok(Checked {
        bytes,
        fingerprint: hex_upper(key.fingerprint().as_bytes()),
        user_ids,
        expires,
        encryption_key: target.fingerprint,
        algorithm: format!("{:?}", key.primary_key.algorithm()),
    })
}

/// The message as it is stored (or forwarded) for an owner with this
/// stored key: wrapped into PGP/MIME, or as it came when it is already
/// encrypted. An expired key is still used: the owner's secret key still
/// opens what it encrypts, and mail is never kept in the clear for an
/// owner who asked for encryption.
pub fn encrypt_for(key: &[u8], message: Vec<u8>, protect_subject: bool) -> Result<Vec<u8>, String> {
    let parsed = parse(key).map_err(|e| e.to_string())?;
    match wrap(&parsed, &message, protect_subject, crate::util::now_unix())? {
        Wrapped::Encrypted(m) => Ok(m),
        Wrapped::AlreadyEncrypted => Ok(message),
    }
}

/// A stored key, parsed for use: no signature is verified again (that was
/// done at import), which keeps each delivery's cost to the encryption.
pub fn parse(input: &[u8]) -> Result<SignedPublicKey, Refusal> {
    SignedPublicKey::from_reader_single(input)
        .map(|(k, _)| k)
        .map_err(|e| Refusal::Unreadable(e.to_string()))
}

/// The key's user IDs, as text.
pub fn user_ids(key: &SignedPublicKey) -> Vec<String> {
    key.details
        .users
        .iter()
        .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
        .collect()
}

/// The address of a user ID such as `Ann <ann@example.org>` or a bare
/// address, lower-cased.
fn email_of(user_id: &str) -> Option<String> {
    let inner = match (user_id.rfind('<'), user_id.rfind('>')) {
        (Some(a), Some(b)) if a < b => user_id.get(a + 1..b)?,
        _ => user_id,
    };
    let inner = inner.trim();
    (inner.contains('@') && !inner.contains(char::is_whitespace))
        .then(|| inner.to_ascii_lowercase())
}

/// The primary key's newest self-signature: a user ID certification (or
/// a direct-key signature), which carries its expiry and flags.
fn self_signature(key: &SignedPublicKey) -> Option<&Signature> {
    key.details
        .users
        .iter()
        .flat_map(|u| u.signatures.iter())
        .chain(key.details.direct_signatures.iter())
        .filter(|s| {
            s.typ().is_some_and(|t| {
                matches!(
                    t,
                    SignatureType::CertGeneric
                        | SignatureType::CertPersona
                        | SignatureType::CertCasual
                        | SignatureType::CertPositive
                        | SignatureType::Key
                )
            })
        })
        .max_by_key(|s| s.created().map_or(0, |t| t.as_secs()))
}

/// When a key created at `created` expires by its signature `sig`.
fn expiry(created: u32, sig: Option<&Signature>) -> Option<i64> {
    let after = sig?.key_expiration_time()?;
    (after.as_secs() > 0).then(|| i64::from(created).saturating_add(after.as_secs() as i64))
}

/// The key mail is encrypted to.
pub(crate) struct Target {
    fingerprint: String,
    /// Which key: a subkey's index, or the primary key.
    which: Option<usize>,
    expired: bool,
}

/// The newest encryption-capable key of `key` that is not revoked,
/// preferring one that has not expired: a subkey, else the primary key
/// when its flags allow encryption.
pub(crate) fn encryption_target(key: &SignedPublicKey, now: i64) -> Option<Target> {
    let mut best: Option<(bool, u32, Target)> = None;
    for (i, sub) in key.public_subkeys.iter().enumerate() {
        if !sub.key.algorithm().can_encrypt()
            || sub
                .signatures
                .iter()
                .any(|s| s.typ() == Some(SignatureType::SubkeyRevocation))
        {
            continue;
        }
        let Some(binding) = sub
            .signatures
            .iter()
            .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding))
            .max_by_key(|s| s.created().map_or(0, |t| t.as_secs()))
        else {
            continue;
        };
        let flags = binding.key_flags();
        if !(flags.encrypt_comms() || flags.encrypt_storage()) {
            continue;
        }
        let created = sub.key.created_at().as_secs();
        let expired = expiry(created, Some(binding)).is_some_and(|at| at <= now);
        let rank = (!expired, created);
        if best.as_ref().is_none_or(|(e, c, _)| rank > (*e, *c)) {
            best = Some((
                !expired,
                created,
                Target {
                    fingerprint: hex_upper(sub.key.fingerprint().as_bytes()),
                    which: Some(i),
                    expired,
                },
            ));
        }
    }
    if best.is_none()
        && key.primary_key.algorithm().can_encrypt()
        && let Some(sig) = self_signature(key)
        && (sig.key_flags().encrypt_comms() || sig.key_flags().encrypt_storage())
    {
        let created = key.primary_key.created_at().as_secs();
        let expired = expiry(created, Some(sig)).is_some_and(|at| at <= now);
        best = Some((
            !expired,
            created,
            Target {
                fingerprint: hex_upper(key.fingerprint().as_bytes()),
                which: None,
                expired,
            },
        ));
    }
    best.map(|(_, _, t)| t)
}

fn hex_upper(bytes: &[u8]) -> String {
    hex::encode_upper(bytes)
}
