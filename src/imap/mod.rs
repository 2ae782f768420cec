//! The IMAP server (RFC 3501 and the extensions in [`CAPABILITIES`]): one
//! task per connection, speaking to the mailbox through the storage
//! interface.
//!
//! Imports `net`, `proto::{imap, mutf7, sasl}` and `store` (its interface
//! only).
//! Invariants: a command is read whole (lines and literals) within bounds
//! checked before any allocation; every capability announced is
//! implemented; sequence numbers are the session's own view, changed only by
//! the untagged EXISTS/EXPUNGE/VANISHED it has sent; plaintext
//! authentication needs TLS except from loopback in development mode.

mod fetch;
mod ops;
mod reader;
mod render;
mod session;
mod view;

use std::sync::Arc;

use futures_rustls::TlsAcceptor;

use crate::net::limits::AuthThrottle;
use crate::net::listener::Refusals;
use crate::store::Store;

pub use session::serve;

/// What every IMAP connection shares.
pub struct Imap {
    pub store: Store,
    pub tls: TlsAcceptor,
    pub throttle: Arc<AuthThrottle>,
    /// Development mode: plaintext logins allowed from loopback.
    pub dev: bool,
    /// APPENDLIMIT: the largest message accepted.
    pub max_message_bytes: u64,
    /// The server's name: an absolute IMAP URL (CATENATE) must name it.
    pub hostname: String,
    /// Memory for messages in flight (APPEND), shared with the MX.
    pub memory: Arc<crate::util::MemoryBudget>,
    /// Where APPEND literals over `util::spill::SPILL_AT` wait, encrypted,
    /// while they arrive; shared with the MX.
    pub spills: Arc<crate::util::spill::Spills>,
}

/// Capabilities in every state (the session adds the login mechanisms
/// before login and COMPRESS=DEFLATE after). Each one is implemented in
/// full; nothing is listed that is not.
pub const CAPABILITIES: &str = "IMAP4rev1 IMAP4rev2 LITERAL+ ID ENABLE IDLE NAMESPACE UIDPLUS MOVE MULTIAPPEND UNSELECT UNAUTHENTICATE CHILDREN SPECIAL-USE ESEARCH STATUS=SIZE QUOTA QUOTA=RES-STORAGE CONDSTORE QRESYNC UTF8=ACCEPT SORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES BINARY SEARCHRES LIST-EXTENDED LIST-STATUS WITHIN PREVIEW OBJECTID SAVEDATE ESORT PARTIAL REPLACE SORT=DISPLAY METADATA LIST-METADATA CATENATE";

/// The last lines of a client the accept loop refuses.
pub const REFUSALS: Refusals = Refusals {
    protocol: "imap",
    per_ip: b"* BYE [UNAVAILABLE] Too many connections from your address\r\n",
    busy: b"* BYE [UNAVAILABLE] Server busy; try again later\r\n",
};
