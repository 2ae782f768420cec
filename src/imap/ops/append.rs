//! APPEND (RFC 3501 §6.3.11, RFC 4315 APPENDUID, RFC 3516 literal8,
//! RFC 3502 MULTIAPPEND).
//!
//! Imports the session's types, `proto::imap` and the `store` interface.
//! Invariants: `\Recent` and `\*` are refused; a missing mailbox answers
//! `NO [TRYCREATE]`; the messages of one command are stored together or
//! not at all; binary parts are stored base64-encoded.

use std::io;

use crate::imap::session::{Io, Next, User};
use crate::imap::view::{Moment, View, uid_set_text};
use crate::proto::imap::Append;
use crate::store::{AppendRequest, Flags, StoreError, UidSet};

pub async fn run(
    io: &mut Io<'_>,
    user: &mut User,
    view: Option<&mut View>,
    tag: &str,
    append: Append,
) -> io::Result<Next> {
    let name = match user.decode_name(&append.mailbox) {
        Ok(n) => n,
        Err(e) => return io.bad_name(tag, &e).await,
    };
    let mut requests = Vec::with_capacity(append.messages.len());
    for m in append.messages {
        if let Some(f) = &m.flags.invalid {
            return io.bad(Some(tag), &format!("flag {f} cannot be set")).await;
        }
        // Binary content never goes out in an ordinary literal: its parts
        // are stored base64-encoded (RFC 3516 §4.2, §4.3).
        let message = if m.binary || m.message.contains(&0) {
            crate::store::mime::encode_binary_parts(&m.message).unwrap_or(m.message)
        } else {
            m.message
        };
        requests.push(AppendRequest {
            folder: name.clone(),
            message,
            flags: Flags {
                system: m.flags.system,
                keywords: m.flags.keywords,
            },
            internal_date: m.date,
        });
    }
    // All or nothing, in one transaction (RFC 3502 §6.3.11).
    let r = user.session.append_batch(requests).await;
    io.updates(user, view, Moment::Any).await?;
    match r {
        Ok(uids) => {
            let validity = uids.first().map_or(0, |a| a.uidvalidity);
            let set: Vec<u32> = uids.iter().map(|a| a.uid).collect();
            let text = format!(
                "[APPENDUID {validity} {}] APPEND completed",
                uid_set_text(&UidSet::from_uids(&set))
            );
            io.ok(tag, &text).await
        }
        Err(StoreError::NoSuchFolder(_)) => io.no(tag, "[TRYCREATE] no such mailbox").await,
        Err(e) => io.store_failed(tag, &e).await,
    }
}
