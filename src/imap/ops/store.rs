//! STORE and UID STORE (RFC 3501 §6.4.6, RFC 7162 §3.1.3 UNCHANGEDSINCE and
//! MODIFIED).
//!
//! Imports the session's types, `view`, `render`, `proto::imap` and the
//! `store` interface. Invariants: only messages whose flags changed are
//! answered; the view records what the client was shown, so this session's
//! own changes are not echoed again as events.

use std::io;

use crate::imap::render;
use crate::imap::session::{Io, Next, User};
use crate::imap::view::{Moment, View, uid_set_text};
use crate::proto::imap::{Store, StoreOp};
use crate::store::{FlagOp, Flags, MessageMeta, StoreFlags, UidSet};

pub async fn run(
    io: &mut Io<'_>,
    user: &mut User,
    view: &mut View,
    tag: &str,
    store: Store,
) -> io::Result<Next> {
    let moment = if store.uid {
        Moment::Any
    } else {
        Moment::NoExpunge
    };
    if let Some(f) = &store.flags.invalid {
        return io.bad(Some(tag), &format!("flag {f} cannot be set")).await;
    }
    if view.read_only {
        return io.no(tag, "[READ-ONLY] mailbox is read-only").await;
    }
    let resolved = match view.resolve(&store.set, store.uid) {
        Ok(s) => s,
        Err(e) => return io.bad(Some(tag), &e).await,
    };
    let mut buf = Vec::new();
    if store.unchanged_since.is_some() {
        buf = user.enable_condstore(Some(view));
    }
    let req = StoreFlags {
        folder: view.name.clone(),
        uids: UidSet::from_uids(&view.members(&resolved)),
        op: match store.op {
            StoreOp::Add => FlagOp::Add,
            StoreOp::Remove => FlagOp::Remove,
            StoreOp::Replace => FlagOp::Replace,
        },
        flags: Flags {
            system: store.flags.system,
            keywords: store.flags.keywords,
        },
        unchanged_since: store.unchanged_since,
    };
    let result = match user.session.store_flags(req).await {
        Ok(r) => r,
        Err(e) => return io.store_failed(tag, &e).await,
    };
    view.note_own(&result.updated, !store.silent);
    buf.extend(fetch_lines(
        view,
        &result.updated,
        store.uid,
        store.silent,
        user.condstore,
    ));
    io.conn.write_all(&buf).await?;
    io.updates(user, Some(view), moment).await?;
    if result.modified.is_empty() {
        return io.ok(tag, "STORE completed").await;
    }
    let numbers: Vec<u32> = if store.uid {
        result.modified
    } else {
        result
            .modified
            .iter()
            .filter_map(|&u| view.seq_of(u))
            .collect()
    };
    let set = uid_set_text(&UidSet::from_uids(&numbers));
    io.ok(
        tag,
        &format!("[MODIFIED {set}] conditional STORE failed for some messages"),
    )
    .await
}

/// The untagged FETCH of each changed message: flags unless `.SILENT`,
/// and under CONDSTORE always UID and MODSEQ (RFC 7162 §3.1.3).
fn fetch_lines(
    view: &mut View,
    updated: &[MessageMeta],
    uid: bool,
    silent: bool,
    condstore: bool,
) -> Vec<u8> {
    let mut buf = Vec::new();
    if silent && !condstore {
        return buf;
    }
    for meta in updated {
        let Some(seq) = view.seq_of(meta.uid) else {
            continue;
        };
        if !silent {
            view.announce_keywords(&meta.flags, &mut buf);
        }
        let mut items = Vec::new();
        if uid || condstore {
            items.push(format!("UID {}", meta.uid));
        }
        if !silent {
            let recent = view.is_recent(meta.uid);
            items.push(format!(
                "FLAGS {}",
                render::flags_recent(&meta.flags, recent)
            ));
        }
        if condstore {
            items.push(format!("MODSEQ ({})", meta.modseq));
        }
        buf.extend_from_slice(format!("* {seq} FETCH ({})\r\n", items.join(" ")).as_bytes());
    }
    buf
}
