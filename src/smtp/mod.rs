//! The inbound SMTP server (MX, port 25): accepts mail for local aliases and
//! hands it to the store, which files it into INBOX when the owner's key is
//! in memory and seals it to the owner's public key otherwise.
//!
//! Imports `net`, `proto::smtp`, `store` (its interface) and `util`.
//! Invariants: `250` after DATA/BDAT LAST only once every recipient's copy
//! is durable; only `<CRLF>.<CRLF>` ends DATA; a command pipelined after
//! STARTTLS is discarded; never relays (a foreign recipient gets 550 5.7.1).

mod auth;
mod session;

pub use auth::InboundAuth;

use futures_rustls::TlsAcceptor;

use crate::store::Store;

pub use session::serve;

/// What every SMTP connection shares.
pub struct Smtp {
    pub store: Store,
    /// SPF/DKIM/DMARC checks; `None` when `mx.check_senders` is off.
    pub auth: Option<std::sync::Arc<InboundAuth>>,
    pub tls: TlsAcceptor,
    pub hostname: String,
    pub max_message_bytes: u64,
}

/// The line a client over its address' connection cap reads.
pub const TOO_MANY: &[u8] = b"421 4.7.0 Too many connections from your address\r\n";
