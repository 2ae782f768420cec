//! APPEND (RFC 3501 §6.3.11, RFC 4315 APPENDUID, RFC 3516 literal8,
//! RFC 3502 MULTIAPPEND) and REPLACE (RFC 8508).
//!
//! Imports the session's types, `proto::imap` and the `store` interface.
//! Invariants: `\Recent` and `\*` are refused; a missing mailbox answers
//! `NO [TRYCREATE]`; the messages of one command are stored together or
//! not at all; binary parts are stored base64-encoded.

use std::io;

use crate::imap::session::{Io, Next, User};
use crate::imap::view::{Moment, View, uid_set_text};
use crate::proto::imap::{Append, AppendMessage, Replace};
use crate::store::{AppendRequest, FlagOp, Flags, StoreError, StoreFlags, UidSet};

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
        match request(&name, m) {
            Ok(r) => requests.push(r),
            Err(e) => return io.bad(Some(tag), &e).await,
        }
    }
    // All or nothing, in one transaction (RFC 3502 §6.3.11). Into the
    // selected folder, the same transaction claims them as \Recent.
    let mut view = view;
    let r = match view.as_deref_mut() {
        Some(v) if v.claims_recent() && crate::store::normalize_folder_name(&name) == v.name => {
            match user.session.append_recent(requests).await {
                Ok((uids, claimed)) => {
                    if claimed {
                        let new: Vec<u32> = uids.iter().map(|a| a.uid).collect();
                        v.add_recent(&new);
                    }
                    Ok(uids)
                }
                Err(e) => Err(e),
            }
        }
        _ => user.session.append_batch(requests).await,
    };
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

/// One message to store; an error names a flag that cannot be set.
fn request(folder: &str, m: AppendMessage) -> Result<AppendRequest, String> {
    if let Some(f) = &m.flags.invalid {
        return Err(format!("flag {f} cannot be set"));
    }
    // Binary content never goes out in an ordinary literal: its parts are
    // stored base64-encoded (RFC 3516 §4.2, §4.3).
    let message = if m.binary || m.message.contains(&0) {
        crate::store::binary::encode_binary_parts(&m.message).unwrap_or(m.message)
    } else {
        m.message
    };
    Ok(AppendRequest {
        folder: folder.to_string(),
        message,
        flags: Flags {
            system: m.flags.system,
            keywords: m.flags.keywords,
        },
        internal_date: m.date,
    })
}

/// REPLACE and UID REPLACE (RFC 8508): the new message is stored, then the
/// old one expunged, so a failure part-way loses nothing (both are kept).
pub async fn replace(
    io: &mut Io<'_>,
    user: &mut User,
    view: &mut View,
    tag: &str,
    r: Replace,
) -> io::Result<Next> {
    if view.read_only {
        return io.no(tag, "[READ-ONLY] mailbox is read-only").await;
    }
    let old = if r.uid {
        view.seq_of(r.number).map(|_| r.number)
    } else {
        view.uids.get(r.number as usize - 1).copied()
    };
    let Some(old) = old else {
        if r.uid {
            return io.no(tag, "[NONEXISTENT] no message with that UID").await;
        }
        return io
            .bad(
                Some(tag),
                "no such message (sequence number beyond the mailbox)",
            )
            .await;
    };
    let name = match user.decode_name(&r.mailbox) {
        Ok(n) => n,
        Err(e) => return io.bad_name(tag, &e).await,
    };
    let req = match request(&name, r.message) {
        Ok(req) => req,
        Err(e) => return io.bad(Some(tag), &e).await,
    };
    let new = match user.session.append(req).await {
        Ok(a) => a,
        Err(StoreError::NoSuchFolder(_)) => return io.no(tag, "[TRYCREATE] no such mailbox").await,
        Err(e) => return io.store_failed(tag, &e).await,
    };
    let mut buf = format!(
        "* OK [APPENDUID {} {}] replacement stored\r\n",
        new.uidvalidity, new.uid
    )
    .into_bytes();
    let one = UidSet::from_uids(&[old]);
    let deleted = user
        .session
        .store_flags(StoreFlags {
            folder: view.name.clone(),
            uids: one.clone(),
            op: FlagOp::Add,
            flags: Flags::system(Flags::DELETED),
            unchanged_since: None,
        })
        .await;
    let gone = match deleted {
        Ok(d) => {
            view.note_own(&d.updated, false);
            user.session.expunge(&view.name, Some(one)).await
        }
        Err(e) => Err(e),
    };
    match gone {
        Ok(gone) => {
            view.expunged(&gone, &mut user.out(&mut buf));
            io.conn.write_all(&buf).await?;
            io.updates(user, Some(view), Moment::Any).await?;
            io.ok(tag, "REPLACE completed").await
        }
        Err(e) => {
            io.conn.write_all(&buf).await?;
            io.store_failed(tag, &e).await
        }
    }
}
