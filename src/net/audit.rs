//! One log line per login attempt on IMAP, POP3 and submission, in a form
//! fail2ban matches (`packaging/fail2ban/`).
//!
//! Imports its sibling `limits` (why a login was refused) and `util`
//! (address redaction). Invariants: a password never reaches
//! this module; the client's address comes before any text the client
//! chose, and that text is quoted with its quotes and control characters
//! escaped, so no user name can pose as another client's address.

use std::net::SocketAddr;

use super::limits::Refused;

/// How a login attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Login {
    Ok,
    /// A wrong password or an unknown user (the store tells neither apart).
    Failed,
    /// The client's address is refused for a while after failures.
    Banned,
    /// The account is under attack: this attempt waited too long its turn.
    Busy,
    /// Credentials that could not be read, or a user acting as another.
    Malformed,
    /// The password may have been right, the mailbox could not be opened.
    Unavailable,
}

impl From<Refused> for Login {
    fn from(refused: Refused) -> Login {
        match refused {
            Refused::AddressBanned => Login::Banned,
            Refused::AccountBusy => Login::Busy,
        }
    }
}

impl Login {
    fn reason(self) -> &'static str {
        match self {
            Login::Ok => "ok",
            Login::Failed => "auth-failed",
            Login::Banned => "banned",
            Login::Busy => "throttled",
            Login::Malformed => "malformed",
            Login::Unavailable => "unavailable",
        }
    }
}

/// Logs one attempt: `login ok ...` at info, `login failed ...` at warn
/// (what fail2ban counts; an unavailable mailbox is not the client's
/// fault and says `login unavailable`).
pub fn login(protocol: &str, peer: SocketAddr, user: &str, mechanism: &str, outcome: Login) {
    let (ip, port) = (peer.ip(), peer.port());
    let user = crate::util::log::addr(user);
    let user = user.as_ref();
    match outcome {
        Login::Ok => tracing::info!(
            target: "sealmail::login",
            proto = %protocol, client = %ip, port, user, mechanism = %mechanism,
            "login ok"
        ),
        Login::Unavailable => tracing::warn!(
            target: "sealmail::login",
            proto = %protocol, client = %ip, port, user, mechanism = %mechanism,
            "login unavailable"
        ),
        failed => tracing::warn!(
            target: "sealmail::login",
            proto = %protocol, client = %ip, port, user, mechanism = %mechanism, reason = %failed.reason(),
            "login failed"
        ),
    }
}
