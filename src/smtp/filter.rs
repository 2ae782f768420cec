//! Sieve at delivery on the MX: the owner's active script runs on each
//! message for their alias, in memory, after the sender checks and before
//! the message is stored or sealed; this module turns its outcome into
//! where the copies go (folders and flags, which travel inside the seal
//! when the owner is away), and carries out what leaves at once through
//! the outbound queue: redirects (SRS), vacation replies (DKIM-signed,
//! null sender) and rejection notices.
//!
//! Imports `queue`, `relay`, `sieve`, `store` (its interface) and `util`.
//! Invariants: a script never makes a message be lost: any run-time error
//! (limits included), a panic of the interpreter or a store that cannot
//! answer gives the implicit keep, logged; replies and redirects are queued only once the alias'
//! copies are stored; a reply's From is the alias itself, or it is not
//! sent; no reply or notice goes to the null sender.

use std::sync::Arc;

use crate::queue::{Kind, NewMessage, NewRecipient, Queue};
use crate::sieve::{Filing, Host, Interpreter, Outcome};
use crate::store::{Flags, JUNK, Placement, Recipient, SieveScripts, Store};
use crate::util::{now_unix, random_id, rfc5322_date};

/// What the MX filters with.
pub struct Filters {
    pub interpreter: Arc<Interpreter>,
    pub queue: Arc<Queue>,
    /// Tells the delivery loop that a message is waiting.
    pub wake: async_channel::Sender<()>,
}

/// What one alias' copy of a message becomes.
pub(super) struct Plan {
    /// Where copies are stored; none when discarded or rejected.
    pub placements: Vec<Placement>,
    /// The script's reason, when it rejected the message.
    pub reject: Option<String>,
    outcome: Outcome,
}

impl Plan {
    /// No script: INBOX, or the Junk folder.
    pub fn plain(junk: bool) -> Plan {
        Plan {
            placements: vec![if junk {
                Placement::junk()
            } else {
                Placement::default()
            }],
            reject: None,
            outcome: Outcome::default(),
        }
    }
}

/// The MX's answers to what a script asks while it runs; called on the
/// blocking pool, so the store's answers are waited for in place.
struct StoreHost {
    store: Store,
    alias: String,
    scripts: Vec<(String, String)>,
}

impl Host for StoreHost {
    fn script(&mut self, name: &str) -> Option<String> {
        self.scripts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
    }

    fn duplicate(&mut self, id: &str, expiry: u64) -> bool {
        // Unknown counts as seen: rather no reply than one too many.
        smol::block_on(self.store.sieve_seen(&self.alias, id, expiry)).unwrap_or(true)
    }

    fn folders_exist(&mut self, names: &[String]) -> bool {
        // The folder list is inside the owner's encrypted mailbox: only
        // INBOX is known to exist without their key.
        names.iter().all(|n| n.eq_ignore_ascii_case("INBOX"))
    }
}

impl Filters {
    /// Runs the alias' active script, if it has one, on `message` (as
    /// received, trace headers added) for `rcpt` from `from`; `junk` is
    /// what the sender checks decided for the implicit keep.
    pub(super) async fn plan(
        self: &Arc<Self>,
        store: &Store,
        (alias, rcpt, from): (&str, &str, &str),
        message: &[u8],
        junk: bool,
    ) -> Plan {
        let scripts = match store.sieve_scripts(alias).await {
            Ok(Some(s)) => s,
            Ok(None) => return Plan::plain(junk),
            Err(e) => {
                tracing::warn!(error = %e, "Sieve scripts unreadable; the message is kept in INBOX");
                return Plan::plain(junk);
            }
        };
        let SieveScripts { active, scripts } = scripts;
        let Some(text) = scripts
            .iter()
            .find(|(n, _)| *n == active)
            .map(|(_, t)| t.clone())
        else {
            return Plan::plain(junk);
        };
        let (me, store2) = (self.clone(), store.clone());
        let (alias_owned, rcpt, from) = (alias.to_string(), rcpt.to_string(), from.to_string());
        // The script sees at most the header and the start of the body: a
        // bounded copy for the blocking pool.
        let seen = crate::sieve::seen(message).to_vec();
        let outcome = blocking::unblock(move || {
            let script = match me.interpreter.compile_cached(text.as_bytes()) {
                Ok(s) => s,
                Err(e) => {
                    return Outcome {
                        error: Some(format!("the active script does not compile: {e}")),
                        ..Outcome::keep()
                    };
                }
            };
            let mut host = StoreHost {
                store: store2,
                alias: alias_owned.clone(),
                scripts,
            };
            let m = crate::sieve::Message {
                raw: &seen,
                from: &from,
                rcpt: &rcpt,
                alias: &alias_owned,
            };
            // The interpreter is not ours: should it panic, the message
            // is kept, not lost with the session.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                me.interpreter.run((&active, script), &m, &mut host)
            }))
            .unwrap_or_else(|_| Outcome {
                error: Some("the interpreter failed".into()),
                ..Outcome::keep()
            })
        })
        .await;
        if let Some(why) = &outcome.error {
            tracing::warn!(script_error = %why, "Sieve script failed; the message is kept in INBOX");
        }
        let placements = outcome.filings.iter().map(|f| placement(f, junk)).collect();
        let reject = outcome
            .reject
            .as_ref()
            .map(|r| super::deliver::printable(&r.reason));
        tracing::info!(
            filed = outcome.filings.len(),
            rejected = reject.is_some(),
            redirects = outcome.redirects.len(),
            replies = outcome.replies.len(),
            "Sieve"
        );
        Plan {
            placements,
            reject,
            outcome,
        }
    }

    /// Queues what the script sends once the alias' copies are stored:
    /// redirects, with the sender rewritten by SRS at the alias' domain,
    /// and replies, DKIM-signed with the alias' domain's keys.
    pub(super) async fn send(
        &self,
        ctx: &super::Smtp,
        (alias, from): (&str, &str),
        plan: &Plan,
        message: &[u8],
    ) {
        let domain = crate::queue::domain_of(alias);
        if !plan.outcome.redirects.is_empty() {
            let sender = match (&ctx.relay, from.is_empty()) {
                (Some(relay), false) => relay.srs.forward(from, &domain, super::envelope::today()),
                _ => from.to_string(),
            };
            let mut recipients = Vec::new();
            for to in &plan.outcome.redirects {
                recipients.push(recipient(&ctx.store, to).await);
            }
            self.enqueue(alias, sender, recipients, message.to_vec(), "redirect")
                .await;
        }
        for reply in &plan.outcome.replies {
            if !from_is(&reply.message, alias) {
                tracing::warn!("Sieve reply not sent: its From is not the alias");
                continue;
            }
            let body = super::dkim::signed_if_keys(
                &ctx.store,
                &domain,
                reply.message.clone(),
                "Sieve reply",
            )
            .await;
            let to = vec![recipient(&ctx.store, &reply.to).await];
            self.enqueue(alias, String::new(), to, body, "vacation reply")
                .await;
        }
    }

    /// Tells `sender` that `alias`' filter rejected their message (RFC
    /// 5429 §2.1: an MDN with a `deleted` disposition).
    pub(super) async fn notify_reject(
        &self,
        ctx: &super::Smtp,
        (alias, sender): (&str, &str),
        reason: &str,
        message: &[u8],
    ) {
        if sender.is_empty() {
            return;
        }
        let notice = rejection(&ctx.hostname, (alias, sender), reason, message);
        let to = vec![recipient(&ctx.store, sender).await];
        self.enqueue(alias, String::new(), to, notice, "rejection notice")
            .await;
    }

    async fn enqueue(
        &self,
        alias: &str,
        sender: String,
        recipients: Vec<NewRecipient>,
        body: Vec<u8>,
        what: &str,
    ) {
        let m = NewMessage {
            alias: alias.to_string(),
            sender,
            recipients,
            body,
        };
        let queue = self.queue.clone();
        match blocking::unblock(move || queue.enqueue(&m)).await {
            Ok(qid) => {
                tracing::info!(queue_id = %qid, "Sieve {what} queued");
                let _ = self.wake.try_send(());
            }
            Err(e) => tracing::error!(error = %e, "Sieve {what} not queued"),
        }
    }
}

/// Where a filing goes: the implicit or explicit keep goes to the Junk
/// folder when the sender checks said so; a named folder as named.
fn placement(f: &Filing, junk: bool) -> Placement {
    Placement {
        folder: match &f.folder {
            None if junk => Some(JUNK.to_string()),
            None => None,
            Some(name) => Some(name.clone()),
        },
        flags: flags(&f.flags),
        create: f.create,
    }
}

/// IMAP flags from a script's flag names: the system flags by name (any
/// case), keywords that are IMAP atoms; anything else is left out rather
/// than refuse the message.
pub(super) fn flags(names: &[String]) -> Flags {
    let mut out = Flags::default();
    for name in names {
        let bit = match name.to_ascii_lowercase().as_str() {
            "\\seen" => Flags::SEEN,
            "\\answered" => Flags::ANSWERED,
            "\\flagged" => Flags::FLAGGED,
            "\\deleted" => Flags::DELETED,
            "\\draft" => Flags::DRAFT,
            _ => 0,
        };
        if bit != 0 {
            out.system |= bit;
            continue;
        }
        let atom = !name.is_empty()
            && name.len() <= 200
            && !name.starts_with('\\')
            && name
                .chars()
                .all(|c| c.is_ascii_graphic() && !"(){%*\"\\]".contains(c));
        if atom && !out.keywords.contains(name) {
            out.keywords.push(name.clone());
        }
    }
    out
}

/// A queue recipient: a local alias is delivered here, anything else
/// relayed.
async fn recipient(store: &Store, address: &str) -> NewRecipient {
    let kind = match store.lookup(address).await {
        Ok(Recipient::Local(route)) if route.mailbox => {
            return NewRecipient {
                kind: Kind::Local,
                address: route.address,
                via: None,
            };
        }
        _ => Kind::Remote,
    };
    NewRecipient {
        kind,
        address: address.to_string(),
        via: None,
    }
}

/// Whether a message's From field names `alias` (and no one else).
fn from_is(message: &[u8], alias: &str) -> bool {
    let header = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .and_then(|i| message.get(..i))
        .unwrap_or(message);
    let text = String::from_utf8_lossy(header).to_ascii_lowercase();
    let alias = alias.to_ascii_lowercase();
    let Some(field) = text
        .split("\r\n")
        .find(|l| l.starts_with("from:"))
        .and_then(|l| l.get(5..))
    else {
        return false;
    };
    field.matches('@').count() == 1 && field.contains(&alias)
}

/// The rejection notice: an MDN (RFC 8098) with the `deleted`
/// disposition, the script's reason, and the original header.
fn rejection(
    hostname: &str,
    (alias, sender): (&str, &str),
    reason: &str,
    original: &[u8],
) -> Vec<u8> {
    let now = now_unix();
    let id = random_id().unwrap_or_else(|_| now.to_string());
    let id = id.get(..24).unwrap_or(&id);
    let boundary = format!("=_sealmail_mdn_{id}");
    let header_end = original
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(original.len(), |i| i + 2);
    let header = String::from_utf8_lossy(
        original
            .get(..header_end.min(64 * 1024))
            .unwrap_or_default(),
    );
    let original_id = header
        .split("\r\n")
        .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string());
    let mut m = String::new();
    m.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"
    ));
    m.push_str(&format!("To: <{sender}>\r\n"));
    m.push_str("Subject: Message rejected by its recipient's filter\r\n");
    m.push_str(&format!("Date: {}\r\n", rfc5322_date(now)));
    m.push_str(&format!("Message-ID: <{id}@{hostname}>\r\n"));
    m.push_str("Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=disposition-notification;\r\n\tboundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str(&format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    ));
    m.push_str(&format!(
        "Your message to <{alias}> was rejected by the recipient's mail filter:\r\n\r\n    {reason}\r\n\r\n"
    ));
    m.push_str(&format!(
        "--{boundary}\r\nContent-Type: message/disposition-notification\r\n\r\n"
    ));
    m.push_str(&format!("Reporting-UA: {hostname}; sealmail\r\n"));
    m.push_str(&format!("Final-Recipient: rfc822; {alias}\r\n"));
    if let Some(oid) = original_id {
        m.push_str(&format!(
            "Original-Message-ID: {}\r\n",
            super::deliver::printable(&oid)
        ));
    }
    m.push_str("Disposition: automatic-action/MDN-sent-automatically; deleted\r\n\r\n");
    m.push_str(&format!(
        "--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n{header}\r\n--{boundary}--\r\n"
    ));
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_from_names() {
        let names: Vec<String> = [
            "\\SEEN",
            "\\Flagged",
            "$Work",
            "bad flag",
            "\\Recent",
            "$Work",
            "(x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            flags(&names),
            Flags {
                system: Flags::SEEN | Flags::FLAGGED,
                keywords: vec!["$Work".into()],
            }
        );
    }

    #[test]
    fn reply_from_must_be_the_alias() {
        let m = b"From: Bob <bob@example.org>\r\nTo: a@example.net\r\n\r\nx";
        assert!(from_is(m, "bob@example.org"));
        assert!(!from_is(m, "carol@example.org"));
        let two = b"From: bob@example.org, eve@example.net\r\n\r\nx";
        assert!(!from_is(two, "bob@example.org"));
    }

    #[test]
    fn rejection_is_an_mdn() {
        let n = rejection(
            "mx.example.org",
            ("bob@example.org", "ann@example.net"),
            "no thanks",
            b"Subject: hi\r\nMessage-ID: <1@x>\r\n\r\nsecret body\r\n",
        );
        let n = String::from_utf8(n).unwrap_or_default();
        assert!(n.contains("report-type=disposition-notification"));
        assert!(n.contains("Disposition: automatic-action/MDN-sent-automatically; deleted"));
        assert!(n.contains("Original-Message-ID: <1@x>"));
        assert!(n.contains("no thanks"));
        assert!(!n.contains("secret body"));
    }
}
