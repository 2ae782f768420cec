//! The SMTP server. On the MX (port 25) it accepts mail for local aliases
//! and hands it to the store, which files it into INBOX when the owner's
//! key is in memory and seals it to the owner's public key otherwise. On
//! the submission ports (587 STARTTLS, 465 TLS; `submit`) authenticated
//! users send anywhere: their mail is DKIM-signed (`dkim`) and committed
//! to the outbound queue.
//!
//! Forward targets and webhooks get the message in memory through
//! `relay` during the session; a temporary failure there answers 451.
//!
//! Imports `config`, `dns`, `net`, `proto::{smtp, sasl}`, `queue`, `relay`,
//! `sieve`, `store` (its interface) and `util`. Invariants: `250` after DATA/BDAT LAST only once
//! every destination has the message (durable for mailboxes, committed to
//! the queue for submissions); only `<CRLF>.<CRLF>` ends DATA; a command
//! pipelined after STARTTLS is discarded; the MX never relays (a foreign
//! recipient gets 550 5.7.1), submission only for an authenticated user.

mod auth;
pub mod content;
mod data;
mod deliver;
pub mod dkim;
mod envelope;
pub mod filter;
mod retry;
mod session;
mod spam;
pub mod submit;
mod virus;

pub use auth::InboundAuth;

use std::sync::Arc;

use futures_rustls::TlsAcceptor;

use crate::net::listener::Refusals;
use crate::store::Store;
use crate::util::Live;

pub use session::serve;

/// What every SMTP connection shares.
pub struct Smtp {
    pub store: Store,
    /// SPF/DKIM/DMARC checks; `None` when `mx.check_senders` is off.
    pub auth: Option<Arc<InboundAuth>>,
    pub tls: TlsAcceptor,
    pub hostname: String,
    /// Incoming results fields naming it are removed (`mx.authserv_id`).
    pub authserv_id: String,
    /// `mx.refuse_executables`, and who opted out (`smtp::content`).
    pub refuse_executables: bool,
    pub allow_executables: Arc<Vec<String>>,
    /// Virus scanning (`[mx.clamd]`, `virus`); `None` when not set up.
    pub clamd: Option<Arc<crate::config::Clamd>>,
    /// Spam filtering (`[mx.rspamd]`, `spam`); `None` when not set up.
    pub rspamd: Option<Arc<crate::config::Rspamd>>,
    /// DNS blocklists asked about MX clients (`mx.dnsbl`); `None` when
    /// none are set or there is no resolver.
    pub dnsbl: Option<Arc<Dnsbl>>,
    /// Messages and recipients per client address and minute (MX only).
    pub inbound_rate: Arc<crate::net::rate::InboundRate>,
    pub max_message_bytes: u64,
    /// Recipients per transaction (452 4.5.3 past it); a reload changes it.
    pub max_recipients: Live<usize>,
    /// Memory for messages in flight, shared with IMAP.
    pub memory: Arc<crate::util::MemoryBudget>,
    /// Where messages over `util::spill::SPILL_AT` wait, encrypted, while
    /// they arrive; shared with IMAP.
    pub spills: Arc<crate::util::spill::Spills>,
    pub mime_limits: crate::store::mime::Limits,
    /// Forwards and webhooks; `None` when no DNS resolver could be set up.
    pub relay: Option<Arc<crate::relay::Relay>>,
    /// A reload changes them: read where they apply.
    pub timeouts: Live<Timeouts>,
    /// Destinations already served for messages whose transaction got 4xx.
    pub delivered: retry::Delivered,
    /// Set on the submission listeners (587, 465): AUTH, sender rules and
    /// the outbound queue instead of local delivery.
    pub submission: Option<Arc<submit::Submission>>,
    /// Owners' Sieve scripts, run at delivery (MX only).
    pub filters: Option<Arc<filter::Filters>>,
}

impl Smtp {
    /// `mx` or `submission`, as logs and metrics name the port.
    pub fn port_name(&self) -> &'static str {
        if self.submission.is_some() {
            "submission"
        } else {
            "mx"
        }
    }
}

/// DNS blocklists and the resolver that asks them.
pub struct Dnsbl {
    pub dns: crate::dns::Dns,
    pub zones: Vec<String>,
}

/// How long a client may take.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// To send a command line (RFC 5321 §4.5.3.2: 5 minutes).
    pub command: std::time::Duration,
    /// For the whole of DATA, or of one BDAT chunk.
    pub data: std::time::Duration,
    /// Silence the MX keeps before its greeting (early talkers get 554).
    pub greet_pause: std::time::Duration,
}

/// The last lines of a client the accept loop refuses.
pub const REFUSALS: Refusals = Refusals {
    protocol: "smtp",
    per_ip: b"421 4.7.0 Too many connections from your address\r\n",
    busy: b"421 4.7.0 Server busy; try again later\r\n",
};
