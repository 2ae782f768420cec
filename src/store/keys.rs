//! Password-derived keys: the argon2id derivation, the wrapped data key and
//! age identity, generated passwords, and the in-memory key cache.
//!
//! Imports only `util`. Invariants: a password is never stored; the server
//! keeps a verifier (SHA-256 of half of the argon2id output) and two blobs
//! sealed with XChaCha20-Poly1305 under the other half. Every secret lives in
//! a `Zeroizing` buffer. One argon2id run both checks a password and unwraps
//! the keys; at most one run per core (at least two) goes at once, so
//! memory stays bounded however many logins arrive.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::util::{constant_time_eq, random_fill};

/// A mailbox data key: the raw SQLCipher key of one mailbox file.
pub type Dek = Zeroizing<[u8; 32]>;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("wrong password")]
    WrongPassword,
    #[error("stored key material is damaged: {0}")]
    Damaged(&'static str),
    #[error("key derivation parameters rejected: {0}")]
    Params(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// argon2id cost, stored beside each credential so it can be raised later
/// without breaking existing passwords.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// OWASP's argon2id minimum (19 MiB, t=2, p=1): ~30 ms here.
    fn default() -> Self {
        KdfParams {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// What the control plane stores for one alias.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub salt: [u8; 16],
    pub params: KdfParams,
    pub verifier: [u8; 32],
    /// nonce (24) || ciphertext of the DEK.
    pub dek_wrapped: Vec<u8>,
    /// nonce (24) || ciphertext of the age identity string.
    pub identity_wrapped: Vec<u8>,
    /// The age recipient (`age1…`), in clear: anyone may seal to it.
    pub public_key: String,
}

/// Keys unwrapped by a correct password.
pub struct Unwrapped {
    pub dek: Dek,
    pub identity: Zeroizing<String>,
}

const AAD_DEK: &[u8] = b"sealmail/dek/v1";
const AAD_IDENTITY: &[u8] = b"sealmail/identity/v1";

/// Argon2id runs allowed at once in this process. Each holds its whole
/// memory cost (64 MiB by default), so without a bound a burst of logins,
/// failed ones included, would grow memory with the number of attempts;
/// more runs than cores would not finish sooner anyway.
fn kdf_slots() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

/// Holds one of the `kdf_slots` while alive.
struct KdfSlot;

static KDF_RUNNING: Mutex<usize> = Mutex::new(0);
static KDF_FREED: std::sync::Condvar = std::sync::Condvar::new();

impl KdfSlot {
    /// Waits (blocking: callers run on the blocking pool) for a free slot.
    fn take() -> KdfSlot {
        let mut running = KDF_RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= kdf_slots() {
            running = KDF_FREED.wait(running).unwrap_or_else(|e| e.into_inner());
        }
        *running += 1;
        KdfSlot
    }
}

impl Drop for KdfSlot {
    fn drop(&mut self) {
        let mut running = KDF_RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        *running = running.saturating_sub(1);
        KDF_FREED.notify_one();
    }
}

fn derive(password: &str, salt: &[u8; 16], p: KdfParams) -> Result<Zeroizing<[u8; 64]>, KeyError> {
    let params = Params::new(p.memory_kib, p.iterations, p.parallelism, Some(64))
        .map_err(|e| KeyError::Params(e.to_string()))?;
    let _slot = KdfSlot::take();
    let mut out = Zeroizing::new([0u8; 64]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(password.as_bytes(), salt, out.as_mut())
        .map_err(|e| KeyError::Params(e.to_string()))?;
    Ok(out)
}

fn verifier_of(derived: &[u8; 64]) -> [u8; 32] {
    Sha256::digest(&derived[..32]).into()
}

fn seal(kek: &[u8], aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, KeyError> {
    let cipher = XChaCha20Poly1305::new_from_slice(kek).map_err(|_| KeyError::Damaged("kek"))?;
    let mut nonce = [0u8; 24];
    random_fill(&mut nonce)?;
    let ct = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
        .map_err(|_| KeyError::Damaged("seal"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

fn open(kek: &[u8], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    if sealed.len() < 24 + 16 {
        return Err(KeyError::Damaged("wrapped key too short"));
    }
    let cipher = XChaCha20Poly1305::new_from_slice(kek).map_err(|_| KeyError::Damaged("kek"))?;
    let (nonce, ct) = sealed.split_at(24);
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .map(Zeroizing::new)
        .map_err(|_| KeyError::Damaged("wrapped key does not open"))
}

/// Creates fresh keys for an alias and wraps them under `password`.
pub fn create(password: &str, params: KdfParams) -> Result<(Credentials, Unwrapped), KeyError> {
    let mut dek = Zeroizing::new([0u8; 32]);
    random_fill(dek.as_mut())?;
    let id = age::x25519::Identity::generate();
    let identity = Zeroizing::new(secrecy_string(&id));
    let public_key = id.to_public().to_string();
    let keys = Unwrapped { dek, identity };
    let creds = wrap(password, params, &keys, public_key)?;
    Ok((creds, keys))
}

fn secrecy_string(id: &age::x25519::Identity) -> String {
    use age::secrecy::ExposeSecret;
    id.to_string().expose_secret().to_string()
}

/// Wraps existing keys under a (new) password with a fresh salt.
pub fn wrap(
    password: &str,
    params: KdfParams,
    keys: &Unwrapped,
    public_key: String,
) -> Result<Credentials, KeyError> {
    let mut salt = [0u8; 16];
    random_fill(&mut salt)?;
    let derived = derive(password, &salt, params)?;
    Ok(Credentials {
        salt,
        params,
        verifier: verifier_of(&derived),
        dek_wrapped: seal(&derived[32..], AAD_DEK, keys.dek.as_ref())?,
        identity_wrapped: seal(&derived[32..], AAD_IDENTITY, keys.identity.as_bytes())?,
        public_key,
    })
}

/// Checks `password` and unwraps the keys (one argon2id run).
pub fn unwrap(creds: &Credentials, password: &str) -> Result<Unwrapped, KeyError> {
    let derived = derive(password, &creds.salt, creds.params)?;
    if !constant_time_eq(&verifier_of(&derived), &creds.verifier) {
        return Err(KeyError::WrongPassword);
    }
    let dek_bytes = open(&derived[32..], AAD_DEK, &creds.dek_wrapped)?;
    let mut dek = Zeroizing::new([0u8; 32]);
    if dek_bytes.len() != 32 {
        return Err(KeyError::Damaged("data key has the wrong length"));
    }
    dek.copy_from_slice(&dek_bytes);
    let id_bytes = open(&derived[32..], AAD_IDENTITY, &creds.identity_wrapped)?;
    let identity = Zeroizing::new(
        std::str::from_utf8(&id_bytes)
            .map_err(|_| KeyError::Damaged("identity is not text"))?
            .to_string(),
    );
    Ok(Unwrapped { dek, identity })
}

/// Checks only the password (still one argon2id run), for submission AUTH.
pub fn verify(creds: &Credentials, password: &str) -> Result<(), KeyError> {
    let derived = derive(password, &creds.salt, creds.params)?;
    if constant_time_eq(&verifier_of(&derived), &creds.verifier) {
        Ok(())
    } else {
        Err(KeyError::WrongPassword)
    }
}

/// A new password of 150 bits: 30 symbols of a 32-letter alphabet without
/// look-alikes, grouped by five for reading aloud.
pub fn generate_password() -> Result<Zeroizing<String>, KeyError> {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut raw = Zeroizing::new([0u8; 30]);
    random_fill(raw.as_mut())?;
    let mut out = Zeroizing::new(String::with_capacity(35));
    for (i, b) in raw.iter().enumerate() {
        if i > 0 && i % 5 == 0 {
            out.push('-');
        }
        out.push(ALPHABET[(*b & 31) as usize] as char);
    }
    Ok(out)
}

/// The shortest password an owner may choose.
pub const MIN_CHOSEN_LENGTH: usize = 12;

/// Words that make up most guessed passwords: a chosen password that is
/// one of them (or several) padded with digits and symbols is refused.
const COMMON_WORDS: [&str; 24] = [
    "password", "passwort", "qwerty", "azerty", "qwertz", "asdf", "letmein", "welcome", "admin",
    "iloveyou", "monkey", "dragon", "sunshine", "football", "baseball", "master", "abc",
    "changeme", "secret", "login", "mail", "email", "sealmail", "hello",
];

/// Why a password an owner chose for `address` is too weak, or `None`:
/// at least 12 characters, not mostly one character, not the address or a
/// part of it, not only digits, symbols and common words. (Generated passwords need no check: they carry 150 bits.)
pub fn weak_password(password: &str, address: &str) -> Option<String> {
    let length = password.chars().count();
    if length < MIN_CHOSEN_LENGTH {
        return Some(format!(
            "it has {length} characters; at least {MIN_CHOSEN_LENGTH} are needed"
        ));
    }
    let lower = password.to_lowercase();
    let mut distinct: Vec<char> = lower.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 5 {
        return Some("it repeats too few different characters".into());
    }
    let (local, domain) = address
        .to_lowercase()
        .rsplit_once('@')
        .map_or((address.to_lowercase(), String::new()), |(l, d)| {
            (l.to_string(), d.to_string())
        });
    let parts = std::iter::once(local.as_str()).chain(domain.split('.'));
    if let Some(part) = parts.filter(|p| p.len() >= 4).find(|p| lower.contains(*p)) {
        return Some(format!("it contains {part:?}, part of the address"));
    }
    // Letters of its own once common words are taken out.
    let mut rest = lower;
    for word in COMMON_WORDS {
        rest = rest.replace(word, "");
    }
    if !rest.chars().any(char::is_alphabetic) {
        return Some("it is only digits, symbols or common words; add words of your own".into());
    }
    None
}

/// DEKs of aliases with a live session, so repeat logins and deliveries skip
/// argon2. An entry expires `ttl` after its last session closed.
pub struct KeyCache {
    ttl: Duration,
    /// Per-process secret for the fast password tag of warm unlocks.
    tag_key: [u8; 32],
    entries: Mutex<HashMap<i64, CacheEntry>>,
}

struct CacheEntry {
    dek: Dek,
    /// The verifier of the credential that unwrapped `dek`.
    verifier: [u8; 32],
    password_tag: [u8; 32],
    sessions: usize,
    idle_since: Option<Instant>,
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Result<KeyCache, KeyError> {
        let mut tag_key = [0u8; 32];
        random_fill(&mut tag_key)?;
        Ok(KeyCache {
            ttl,
            tag_key,
            entries: Mutex::new(HashMap::new()),
        })
    }

    /// Binds the password to the credential it unlocked: after a password
    /// change (another process may have made it) the old one no longer
    /// matches, even while the key is cached.
    fn tag(&self, alias: i64, verifier: &[u8; 32], password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.tag_key);
        h.update(alias.to_le_bytes());
        h.update(verifier);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, CacheEntry>> {
        // A poisoned map only means another thread panicked mid-update of a
        // plain HashMap; its entries are still whole.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A warm unlock: the DEK if `password` is the one that unlocked the
    /// cached entry. Counts a new session on success.
    pub fn acquire(&self, alias: i64, verifier: &[u8; 32], password: &str) -> Option<Dek> {
        let tag = self.tag(alias, verifier, password);
        let mut map = self.lock();
        let e = map.get_mut(&alias)?;
        if Self::expired(e, self.ttl) || !constant_time_eq(&e.password_tag, &tag) {
            return None;
        }
        e.sessions += 1;
        e.idle_since = None;
        Some(e.dek.clone())
    }

    /// True if `password` is the one that unlocked the cached key (no
    /// session is counted).
    pub fn matches(&self, alias: i64, verifier: &[u8; 32], password: &str) -> bool {
        let tag = self.tag(alias, verifier, password);
        let map = self.lock();
        map.get(&alias)
            .is_some_and(|e| !Self::expired(e, self.ttl) && constant_time_eq(&e.password_tag, &tag))
    }

    /// Stores the DEK after a cold unlock and counts a new session.
    pub fn insert(&self, alias: i64, verifier: &[u8; 32], password: &str, dek: &Dek) {
        let tag = self.tag(alias, verifier, password);
        let mut map = self.lock();
        let e = map.entry(alias).or_insert_with(|| CacheEntry {
            dek: dek.clone(),
            verifier: *verifier,
            password_tag: tag,
            sessions: 0,
            idle_since: None,
        });
        e.dek = dek.clone();
        e.verifier = *verifier;
        e.password_tag = tag;
        e.sessions += 1;
        e.idle_since = None;
    }

    /// A session closed; the key starts to age when none is left.
    pub fn release(&self, alias: i64) {
        let mut map = self.lock();
        if let Some(e) = map.get_mut(&alias) {
            e.sessions = e.sessions.saturating_sub(1);
            if e.sessions == 0 {
                e.idle_since = Some(Instant::now());
            }
        }
    }

    /// The DEK for a delivery, if the alias' key is present and still
    /// belongs to its current credential (no session is counted).
    pub fn peek(&self, alias: i64, verifier: &[u8; 32]) -> Option<Dek> {
        let map = self.lock();
        map.get(&alias)
            .filter(|e| !Self::expired(e, self.ttl) && constant_time_eq(&e.verifier, verifier))
            .map(|e| e.dek.clone())
    }

    /// Forgets an alias at once (password change, removal).
    pub fn forget(&self, alias: i64) {
        self.lock().remove(&alias);
    }

    /// Drops expired entries; returns the aliases dropped.
    pub fn sweep(&self) -> Vec<i64> {
        let mut map = self.lock();
        let gone: Vec<i64> = map
            .iter()
            .filter(|(_, e)| Self::expired(e, self.ttl))
            .map(|(k, _)| *k)
            .collect();
        for k in &gone {
            map.remove(k);
        }
        gone
    }

    fn expired(e: &CacheEntry, ttl: Duration) -> bool {
        e.sessions == 0 && e.idle_since.is_some_and(|t| t.elapsed() >= ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chosen_passwords_are_checked_for_strength() {
        let addr = "annabel@example.org";
        for weak in [
            "",
            "short-pw1",
            "aaaaaaaaaaaaaaa",
            "abababab1212",
            "Password12345",
            "qwerty123456!",
            "annabel-2026-xyz!",
            "my-example-horse-9",
            "123456789012",
            "iloveyou2026!!",
            "Welcome!Welcome!",
        ] {
            assert!(weak_password(weak, addr).is_some(), "{weak:?} passed");
        }
        for strong in [
            "correct horse battery staple",
            "Tr0ub4dor&3-plus-more",
            "grapefruit-lantern-74",
            "password-grapefruit-lantern",
            "xk4-9qm-2vv-pp7",
        ] {
            assert_eq!(weak_password(strong, addr), None, "{strong:?}");
        }
    }

    #[test]
    fn argon2_runs_are_bounded() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NOW: AtomicUsize = AtomicUsize::new(0);
        static MOST: AtomicUsize = AtomicUsize::new(0);
        let threads: Vec<_> = (0..4 * kdf_slots())
            .map(|_| {
                std::thread::spawn(|| {
                    let _slot = KdfSlot::take();
                    let n = NOW.fetch_add(1, Ordering::SeqCst) + 1;
                    MOST.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    NOW.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let most = MOST.load(Ordering::SeqCst);
        assert!(most >= 1 && most <= kdf_slots(), "{most} at once");
    }

    fn fast() -> KdfParams {
        KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn unwrap_needs_the_right_password() {
        let (creds, keys) = create("correct horse", fast()).unwrap();
        let got = unwrap(&creds, "correct horse").unwrap();
        assert_eq!(*got.dek, *keys.dek);
        assert_eq!(*got.identity, *keys.identity);
        assert!(matches!(
            unwrap(&creds, "wrong"),
            Err(KeyError::WrongPassword)
        ));
        assert!(verify(&creds, "correct horse").is_ok());
    }

    #[test]
    fn rewrap_keeps_the_data_key() {
        let (creds, keys) = create("old", fast()).unwrap();
        let new = wrap("new", fast(), &keys, creds.public_key.clone()).unwrap();
        assert_eq!(*unwrap(&new, "new").unwrap().dek, *keys.dek);
        assert!(unwrap(&new, "old").is_err());
    }

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), 35);
        assert_ne!(*a, *b);
    }

    #[test]
    fn cache_expires_after_last_session() {
        let cache = KeyCache::new(Duration::from_millis(0)).unwrap();
        let dek = Zeroizing::new([1u8; 32]);
        let v = [9u8; 32];
        cache.insert(1, &v, "pw", &dek);
        assert!(cache.acquire(1, &v, "other").is_none());
        assert!(
            cache.acquire(1, &[8u8; 32], "pw").is_none(),
            "changed credential"
        );
        assert!(cache.acquire(1, &v, "pw").is_some());
        cache.release(1);
        assert!(cache.peek(1, &v).is_some(), "one session still open");
        assert!(cache.peek(1, &[8u8; 32]).is_none(), "changed credential");
        cache.release(1);
        assert!(cache.peek(1, &v).is_none());
        assert_eq!(cache.sweep(), vec![1]);
    }
}
