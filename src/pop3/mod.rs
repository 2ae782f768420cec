//! The POP3 server (RFC 1939, 2449, 2595, 3206, 5034): one task per
//! connection, speaking to the mailbox through the storage interface.
//!
//! Imports `net`, `proto::{pop3, sasl}` and `store` (its interface only).
//! Invariants: the maildrop is a snapshot of INBOX taken at login; DELE only
//! marks, and nothing changes in the mailbox before QUIT (UPDATE state), so
//! a dropped connection deletes nothing; plaintext authentication needs TLS
//! except from loopback in development mode.

mod maildrop;
mod session;

use std::sync::Arc;

use futures_rustls::TlsAcceptor;

use crate::net::limits::AuthThrottle;
use crate::net::listener::Refusals;
use crate::store::Store;

pub use session::serve;

/// What every POP3 connection shares.
pub struct Pop3 {
    pub store: Store,
    pub tls: TlsAcceptor,
    pub throttle: Arc<AuthThrottle>,
    /// Development mode: plaintext logins allowed from loopback.
    pub dev: bool,
}

/// The last lines of a client the accept loop refuses.
pub const REFUSALS: Refusals = Refusals {
    protocol: "pop3",
    per_ip: b"-ERR [SYS/TEMP] Too many connections from your address\r\n",
    busy: b"-ERR [SYS/TEMP] Server busy; try again later\r\n",
};
