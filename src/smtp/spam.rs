//! Spam filtering at the MX, before `250`, through rspamd
//! (`[mx.rspamd]`): the message is POSTed from memory to its normal
//! worker's `/checkv2` with the envelope, and its action decides:
//! `reject` refuses (550 5.7.1), `soft reject` and `greylist` defer
//! (451 4.7.1), `add header` and `rewrite subject` deliver to Junk, `no
//! action` to INBOX; every checked message gets an `X-Spam-Status` header.
//! When rspamd cannot answer in time, the message is delivered with a
//! header saying it was not checked.
//!
//! Imports `config` (`Rspamd`), `net::conn` (deadlines), `proto::rspamd`
//! and `relay::http`. Invariants: the message goes only to rspamd's
//! socket, never to a file of ours or the log; the check is bounded by
//! `Rspamd::timeout`, rspamd's reply by `MAX_REPLY` bytes.

use std::net::IpAddr;

use crate::config::Rspamd;
use crate::net::conn::with_timeout;
use crate::proto::rspamd::{self, Action, Verdict};
use crate::relay::http::{self, Request};

/// A reply longer than this is not rspamd's verdict.
const MAX_REPLY: usize = 1 << 20;

/// The header a message delivered without a check carries.
pub const UNCHECKED_HEADER: &str = "X-Sealmail-Spam-Scan";

/// What the MX knows of the message besides its bytes.
pub struct Envelope<'a> {
    pub client: IpAddr,
    pub helo: &'a str,
    pub from: &'a str,
    pub rcpts: &'a [String],
    pub id: &'a str,
}

/// rspamd's verdict, or why there is none.
pub async fn check(r: &Rspamd, message: &[u8], env: &Envelope<'_>) -> Result<Verdict, String> {
    let mut headers = vec![
        ("IP", env.client.to_string()),
        ("Helo", env.helo.to_string()),
        ("From", env.from.to_string()),
        ("Queue-Id", env.id.to_string()),
    ];
    headers.extend(env.rcpts.iter().map(|r| ("Rcpt", r.clone())));
    let host = r.address.ip().to_string();
    let req = Request {
        method: "POST",
        host: &host,
        path: "/checkv2",
        headers: &headers,
        body: message,
    };
    let response = with_timeout(r.timeout, http::send(r.address, None, &req, MAX_REPLY))
        .await
        .map_err(|e| format!("rspamd at {}: {e}", r.address))?;
    if response.status != 200 {
        return Err(format!("rspamd answered HTTP {}", response.status));
    }
    rspamd::reply(&response.body).map_err(|e| format!("rspamd: {e}"))
}

/// The header every checked message gets (SpamAssassin's field, which
/// filters and clients know).
pub fn status_header(v: &Verdict) -> String {
    let spam = matches!(
        v.action,
        Action::AddHeader | Action::RewriteSubject | Action::Reject | Action::SoftReject
    );
    let mut symbols = v.symbols.join(",");
    if symbols.len() > 700 {
        symbols = symbols.chars().take(700).collect();
    }
    format!(
        "X-Spam-Status: {}, score={:.2} required={:.2} action=\"{}\"\r\n\ttests={}\r\n",
        if spam { "Yes" } else { "No" },
        v.score,
        v.required_score,
        v.action.as_str(),
        if symbols.is_empty() {
            "none".into()
        } else {
            symbols
        }
    )
}

/// The header a message delivered unchecked gets, with the reason.
pub fn unchecked_header(why: &str) -> String {
    super::content::reason_header(UNCHECKED_HEADER, "not checked", why)
}
