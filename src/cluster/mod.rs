//! Several nodes: the link between a primary and its secondaries. A
//! secondary runs the protocol front ends over [`secondary::Remote`], a
//! `store::Backend` whose every request crosses a WebSocket (over TLS) to
//! the primary, where [`primary::serve`] runs it on the local backend.
//!
//! Imports `net` (TLS configurations), `store` (the interface: `Backend`,
//! its requests, replies and change events) and `util`. Invariants: the
//! secondary pins the primary's certificate and proves it knows the
//! cluster secret with an HMAC of a fresh challenge, so the secret never
//! crosses the link; every frame is decoded within [`Link::frame_limit`]
//! bytes before anything is allocated for it; a request names only
//! sessions its own link opened; a request the primary cannot decode gets
//! a typed error, and the link stays up.

pub mod away;
pub mod primary;
pub mod secondary;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bincode::Options;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::store::StoreError;
use crate::store::types::{Change, Response, SessionId};

/// The link protocol's version; nodes of different versions refuse each
/// other with a message naming both.
pub const VERSION: u32 = 2;

/// The primary's secret, in its data directory.
pub const SECRET_FILE: &str = "cluster.secret";
/// What a secondary needs to reach its primary, in its data directory.
pub const JOIN_FILE: &str = "cluster.join";

/// One encoded frame: a reference-counted buffer, so a call kept for a
/// resend and the copy on its way out share their bytes.
pub type Bytes = async_tungstenite::tungstenite::Bytes;

/// A link's writer: sends each frame that arrives on `frames` as one
/// binary WebSocket message until the channel closes or the peer is gone,
/// then closes the WebSocket.
async fn write_frames<S>(
    mut sender: async_tungstenite::WebSocketSender<S>,
    frames: async_channel::Receiver<Bytes>,
) where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
{
    use async_tungstenite::tungstenite::Message;
    while let Ok(bytes) = frames.recv().await {
        if sender.send(Message::Binary(bytes)).await.is_err() {
            break;
        }
    }
    let _ = sender.close(None).await;
}

/// What a running node writes every few seconds for `cluster status`.
pub const STATUS_FILE: &str = "cluster.status";

/// Writes `status()` (JSON) to [`STATUS_FILE`] every five seconds until
/// `stop` closes.
pub async fn report_status(
    data_dir: PathBuf,
    status: impl Fn() -> serde_json::Value + Send + 'static,
    stop: async_channel::Receiver<()>,
) {
    loop {
        let mut value = status();
        if let Some(map) = value.as_object_mut() {
            map.insert("written".into(), crate::util::now_unix().into());
        }
        let path = data_dir.join(STATUS_FILE);
        let bytes = value.to_string().into_bytes();
        let written =
            blocking::unblock(move || crate::util::write_durable(&path, &bytes, 0o600)).await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot write the cluster status file");
        }
        if !crate::util::wait_or_stop(Duration::from_secs(5), &stop).await {
            return;
        }
    }
}

/// Time for the TLS and WebSocket handshakes and the secret's proof.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A link with nothing received for this long is dead (heartbeats go
/// every third of it).
pub const SILENCE: Duration = Duration::from_secs(9);

/// One WebSocket message on the link, either way.
#[derive(Debug, Serialize, Deserialize)]
pub enum Frame {
    /// Primary, first: its version, a fresh challenge, and the random
    /// number of this run of the primary (a call sent to an earlier run
    /// is not sent again: that run's memory of what it applied is gone).
    Hello {
        version: u32,
        nonce: [u8; 32],
        boot: u64,
    },
    /// Secondary: its version and the HMAC of the challenge under the
    /// cluster secret ([`proof`]).
    Proof {
        version: u32,
        mac: Vec<u8>,
    },
    /// Primary: the proof holds; requests may follow.
    Welcome,
    /// Either side, then it closes: why the link is refused.
    Refused(String),
    /// A storage request. `key` makes a retry idempotent: the primary
    /// answers a repeated key from what the first call did. `request` is
    /// encoded on its own, so a kind the primary does not know gets an
    /// error reply instead of a broken link.
    Call {
        id: u64,
        key: (u64, u64),
        /// Milliseconds the caller still waits.
        deadline_ms: u64,
        request: Vec<u8>,
    },
    Reply {
        id: u64,
        result: Result<Response, StoreError>,
    },
    /// Change events of a session's mailbox, sent as `Event`s tagged `id`.
    Subscribe {
        id: u64,
        session: SessionId,
    },
    Event {
        id: u64,
        change: Change,
    },
    /// The secondary's session ended.
    Release {
        session: SessionId,
    },
    Ping(u64),
    Pong(u64),
    /// An operator's [`Command`], encoded on its own (as `Call`'s
    /// request is), from a node's command line.
    Command {
        id: u64,
        command: Vec<u8>,
    },
    /// What the command did: the line to print, or why it failed.
    Done {
        id: u64,
        result: Result<String, String>,
    },
}

/// What an operator on another node asks the primary to do: what only
/// the node holding the mailboxes can.
#[derive(Debug, Serialize, Deserialize)]
pub enum Command {
    /// `sealmail backup now ADDR` run on a secondary.
    BackupNow { address: String, password: String },
}

/// Runs [`Command`]s on the primary. The application supplies it:
/// backups are not the store's business, and this module does not
/// import the backup module.
pub trait Operator: Send + Sync + 'static {
    fn run(&self, command: Command) -> crate::store::BoxFuture<'_, Result<String, String>>;
}

/// The link's settings on both sides.
#[derive(Clone, Debug)]
pub struct Link {
    /// The largest frame either side takes: several maximum-size messages
    /// (an APPEND, a FETCH batch) and their envelope.
    pub frame_limit: usize,
    /// How long a secondary waits for a reply, the link's return included.
    pub timeout: Duration,
}

impl Link {
    /// Room for four messages of `max_message_bytes` and 1 MiB more, at
    /// least 64 MiB.
    pub fn new(max_message_bytes: u64, timeout: Duration) -> Link {
        let limit = max_message_bytes.saturating_mul(4).saturating_add(1 << 20);
        Link {
            frame_limit: usize::try_from(limit.max(64 << 20)).unwrap_or(usize::MAX),
            timeout,
        }
    }

    fn codec(&self) -> impl Options + Copy {
        bincode::options().with_limit(self.frame_limit as u64)
    }

    pub fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, StoreError> {
        self.codec()
            .serialize(value)
            .map_err(|e| StoreError::Unavailable(format!("cannot send over the cluster link: {e}")))
    }

    pub fn decode<'a, T: Deserialize<'a>>(&self, bytes: &'a [u8]) -> Result<T, String> {
        self.codec().deserialize(bytes).map_err(|e| e.to_string())
    }

    /// The WebSocket limits that match.
    pub fn websocket(&self) -> async_tungstenite::tungstenite::protocol::WebSocketConfig {
        async_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(self.frame_limit))
            .max_frame_size(Some(self.frame_limit))
    }
}

/// The cluster secret: 32 random bytes, hex in files.
pub type Secret = Zeroizing<[u8; 32]>;

/// The proof that the secondary knows the secret: HMAC-SHA256 over a
/// label and the primary's challenge.
pub fn proof(secret: &Secret, nonce: &[u8; 32]) -> Vec<u8> {
    let mut mac = mac(secret);
    mac.update(nonce);
    mac.finalize().into_bytes().to_vec()
}

/// Whether `given` is the proof for `nonce` (in constant time).
pub fn proof_holds(secret: &Secret, nonce: &[u8; 32], given: &[u8]) -> bool {
    let mut mac = mac(secret);
    mac.update(nonce);
    mac.verify_slice(given).is_ok()
}

#[allow(clippy::expect_used)] // INVARIANT below.
fn mac(secret: &Secret) -> Hmac<Sha256> {
    // INVARIANT: HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_ref()).expect("any key length");
    mac.update(b"sealmail cluster link v1\0");
    mac
}

/// Reads 64 hex digits.
pub fn parse_secret(hex_text: &str) -> Option<Secret> {
    let mut secret = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_text.trim(), secret.as_mut()).ok()?;
    Some(secret)
}

/// The primary's secret, made on first use (`sealmail cluster init`).
pub fn primary_secret(data_dir: &Path, create: bool) -> std::io::Result<Secret> {
    let path = data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_secret(&text)
            .ok_or_else(|| std::io::Error::other(format!("{}: not 64 hex digits", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let mut secret = Zeroizing::new([0u8; 32]);
            crate::util::random_fill(secret.as_mut())?;
            let text = Zeroizing::new(format!("{}\n", hex::encode(&secret[..])));
            crate::util::write_durable(&path, text.as_bytes(), 0o600)?;
            Ok(secret)
        }
        Err(e) => Err(std::io::Error::other(format!(
            "{}: {e} (run `sealmail cluster init` on the primary)",
            path.display()
        ))),
    }
}

/// The primary's own certificate and key for the link, in `cluster/` of
/// its data directory: not the mail ports' pair, so renewing that one
/// (and reloading it) leaves every secondary's pin valid.
pub fn link_pair(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("cluster");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// Makes the link's pair unless it exists (`cluster init`); returns its
/// pin.
pub fn ensure_link_pair(data_dir: &Path, host: &str) -> std::io::Result<[u8; 32]> {
    let (cert, key) = link_pair(data_dir);
    crate::net::tls::ensure_self_signed(&cert, &key, host)?;
    certificate_pin(&cert)
}

/// What a secondary keeps of its primary (`sealmail cluster join`).
#[derive(Clone)]
pub struct Join {
    /// `wss://host:port`.
    pub primary: String,
    pub secret: Secret,
    /// SHA-256 of the primary's certificate.
    pub pin: [u8; 32],
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinText {
    primary: String,
    secret: String,
    pin: String,
}

impl Join {
    /// Checks the three values `cluster init` printed.
    pub fn new(primary: &str, secret: &str, pin: &str) -> Result<Join, String> {
        host_port(primary)?;
        let secret = parse_secret(secret).ok_or("the secret is not 64 hex digits")?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(pin.trim().replace(':', ""), &mut bytes)
            .map_err(|_| "the certificate pin is not a SHA-256 in hex")?;
        Ok(Join {
            primary: primary.trim().to_string(),
            secret,
            pin: bytes,
        })
    }

    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(JOIN_FILE)
    }

    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        let text = JoinText {
            primary: self.primary.clone(),
            secret: hex::encode(&self.secret[..]),
            pin: hex::encode(self.pin),
        };
        let text = Zeroizing::new(toml::to_string(&text).map_err(std::io::Error::other)?);
        crate::util::write_durable(&Join::path(data_dir), text.as_bytes(), 0o600)
    }

    pub fn load(data_dir: &Path) -> Result<Join, String> {
        let path = Join::path(data_dir);
        let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: {e} (run `sealmail cluster join` on this node first)",
                path.display()
            )
        })?);
        let t: JoinText = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Join::new(&t.primary, &t.secret, &t.pin).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The pin of this node's certificate, for its secondaries.
pub fn certificate_pin(cert: &Path) -> std::io::Result<[u8; 32]> {
    crate::net::tls::fingerprint(cert)
}

/// `wss://host:port` → (`host`, `port`).
pub fn host_port(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .trim()
        .strip_prefix("wss://")
        .ok_or_else(|| format!("{url:?}: the primary's address must start with wss://"))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("{url:?}: no port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{url:?}: {port:?} is not a port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err(format!("{url:?}: no host or port"));
    }
    Ok((host.to_string(), port))
}

/// Which sessions a request names, if any: the primary refuses one its
/// link did not open.
pub fn session_of(request: &crate::store::types::Request) -> Option<SessionId> {
    use crate::store::types::Request as R;
    match request {
        R::Unlock { .. }
        | R::Lookup { .. }
        | R::Authenticate { .. }
        | R::DkimKeys { .. }
        | R::Deliver { .. }
        | R::DeliverSealed { .. }
        | R::SieveScripts { .. }
        | R::PgpKey { .. }
        | R::WkdKey { .. }
        | R::SieveSeen { .. }
        | R::Sieve { .. }
        | R::Directory => None,
        R::Settle { session }
        | R::ListFolders { session }
        | R::CreateFolder { session, .. }
        | R::RenameFolder { session, .. }
        | R::DeleteFolder { session, .. }
        | R::Subscribe { session, .. }
        | R::Select { session, .. }
        | R::Status { session, .. }
        | R::GetMetadata { session, .. }
        | R::SetMetadata { session, .. }
        | R::ClaimRecent { session, .. }
        | R::Listing { session, .. }
        | R::Append { session, .. }
        | R::Fetch { session, .. }
        | R::Store { session, .. }
        | R::Copy { session, .. }
        | R::Move { session, .. }
        | R::Expunge { session, .. }
        | R::Search { session, .. }
        | R::Sort { session, .. }
        | R::Thread { session, .. }
        | R::ChangesSince { session, .. }
        | R::Quota { session, .. }
        | R::Vacuum { session, .. }
        | R::Index { session } => Some(*session),
    }
}

/// Whether a request changes what is stored: its reply is kept for
/// retries with the same key.
pub fn is_write(request: &crate::store::types::Request) -> bool {
    use crate::store::types::Request as R;
    !matches!(
        request,
        R::Unlock { .. }
            | R::Lookup { .. }
            | R::Authenticate { .. }
            | R::DkimKeys { .. }
            | R::Directory
            | R::SieveScripts { .. }
            | R::PgpKey { .. }
            | R::WkdKey { .. }
            | R::Settle { .. }
            | R::ListFolders { .. }
            | R::Select { .. }
            | R::Status { .. }
            | R::GetMetadata { .. }
            | R::Listing { .. }
            | R::Fetch { .. }
            | R::Search { .. }
            | R::Sort { .. }
            | R::Thread { .. }
            | R::ChangesSince { .. }
            | R::Quota { .. }
            | R::Index { .. }
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn proofs_hold_only_for_their_secret_and_challenge() {
        let secret = parse_secret(&"ab".repeat(32)).unwrap();
        let other = parse_secret(&"cd".repeat(32)).unwrap();
        let nonce = [7u8; 32];
        let p = proof(&secret, &nonce);
        assert!(proof_holds(&secret, &nonce, &p));
        assert!(!proof_holds(&other, &nonce, &p));
        assert!(!proof_holds(&secret, &[8u8; 32], &p));
        assert!(!proof_holds(&secret, &nonce, &p[..31]));
    }

    #[test]
    fn addresses_and_join_values() {
        assert_eq!(
            host_port("wss://mail.example.org:7443").unwrap(),
            ("mail.example.org".into(), 7443)
        );
        assert_eq!(
            host_port("wss://[::1]:7443/").unwrap(),
            ("::1".into(), 7443)
        );
        for bad in ["ws://a:1", "wss://a", "wss://:1", "wss://a:0", "wss://a:x"] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
        let pin = "00".repeat(32);
        assert!(Join::new("wss://a:1", &"ab".repeat(32), &pin).is_ok());
        assert!(Join::new("wss://a:1", "short", &pin).is_err());
        assert!(Join::new("wss://a:1", &"ab".repeat(32), "zz").is_err());
    }

    #[test]
    fn frames_are_decoded_within_the_limit() {
        let link = Link::new(1 << 20, Duration::from_secs(1));
        let big = Frame::Call {
            id: 1,
            key: (2, 3),
            deadline_ms: 5,
            request: vec![0; 70 << 20],
        };
        assert!(link.encode(&big).is_err());
        let f = link.encode(&Frame::Ping(9)).unwrap();
        assert!(matches!(link.decode::<Frame>(&f), Ok(Frame::Ping(9))));
        // A length prefix claiming more than the limit is refused before
        // anything is allocated for it.
        let mut lying = link
            .encode(&Frame::Proof {
                version: 1,
                mac: vec![],
            })
            .unwrap();
        lying.truncate(lying.len() - 1);
        lying.extend_from_slice(&[0xfc, 0xff, 0xff, 0xff, 0x7f]);
        assert!(link.decode::<Frame>(&lying).is_err());
        for junk in [&b""[..], b"\xff\xff\xff", b"\x63"] {
            assert!(link.decode::<Frame>(junk).is_err());
        }
    }
}
