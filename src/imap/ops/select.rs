//! SELECT and EXAMINE (RFC 3501 §6.3.1, §6.3.2; RFC 7162 §3.1.8 CONDSTORE,
//! §3.2.5 QRESYNC; RFC 9051 §6.3.2), and CLOSE (§6.4.2).
//!
//! Imports the session's types, `view`, `render`, `list`, `proto::imap` and
//! the `store` interface. Invariants: a SELECT that fails leaves nothing
//! selected; the untagged data goes out before the tagged OK in one write.

use std::io;

use super::list::list_attributes;
use crate::imap::render;
use crate::imap::session::{Io, Next, Selection, User};
use crate::imap::view::{Out, View, flag_line, flags_lines, vanished_line};
use crate::proto::imap::{Qresync, Select};
use crate::store::SelectInfo;

pub async fn run(
    io: &mut Io<'_>,
    user: &mut User,
    had_view: bool,
    tag: &str,
    select: Select,
) -> io::Result<(Next, Selection)> {
    let name = match user.decode_name(&select.mailbox) {
        Ok(n) => n,
        Err(e) => return Ok((io.bad_name(tag, &e).await?, Selection::Keep)),
    };
    if select.qresync.is_some() && !user.qresync {
        let next = io.bad(Some(tag), "QRESYNC must be enabled first").await?;
        return Ok((next, Selection::Keep));
    }
    let mut head = Vec::new();
    if had_view && (user.qresync || user.rev2) {
        head.extend_from_slice(b"* OK [CLOSED] previous mailbox closed\r\n");
    }
    while user.events.try_recv().is_ok() {}
    let info = match user.session.select(&name).await {
        Ok(i) => i,
        Err(e) => {
            io.conn.write_all(&head).await?;
            return Ok((io.store_failed(tag, &e).await?, Selection::Deselect));
        }
    };
    if select.condstore {
        user.condstore = true;
    }
    let mut view = View::new(info.status.name.clone(), select.read_only, &info);
    if !user.rev2 {
        let recent = if select.read_only {
            // EXAMINE claims nothing: the messages no session has claimed
            // are recent, the last UIDs (RFC 3501 §6.3.2).
            let unclaimed = (info.status.recent as usize).min(info.uids.len());
            info.uids[info.uids.len() - unclaimed..].to_vec()
        } else if info.status.recent == 0 {
            // Nothing unclaimed: no write to make.
            Vec::new()
        } else {
            let up_to = view.max_uid().unwrap_or(0);
            match user.session.claim_recent(&view.name, up_to).await {
                Ok(uids) => uids,
                Err(e) => {
                    io.conn.write_all(&head).await?;
                    return Ok((io.store_failed(tag, &e).await?, Selection::Deselect));
                }
            }
        };
        view.hold_recent(recent);
    }
    head.extend_from_slice(untagged(user, &view, &info).as_bytes());
    if user.rev2 {
        // IMAP4rev2 SELECT names the mailbox in a LIST line (§6.3.2).
        let folders = user.session.list_folders().await.unwrap_or_default();
        if let Some(f) = folders.iter().find(|f| f.name == view.name) {
            let attrs = list_attributes(f).join(" ");
            head.extend_from_slice(format!("* LIST ({attrs}) \"/\" ").as_bytes());
            render::mailbox(&mut head, &view.name, true);
            head.extend_from_slice(b"\r\n");
        }
    }
    if let Some(q) = select
        .qresync
        .filter(|q| q.uidvalidity == info.status.uidvalidity)
        && let Err(e) = resync(user, &view, &q, &mut head).await
    {
        io.conn.write_all(&head).await?;
        return Ok((io.store_failed(tag, &e).await?, Selection::Deselect));
    }
    io.conn.write_all(&head).await?;
    let (code, verb) = if select.read_only {
        ("[READ-ONLY]", "EXAMINE")
    } else {
        ("[READ-WRITE]", "SELECT")
    };
    let next = io.ok(tag, &format!("{code} {verb} completed")).await?;
    Ok((next, Selection::Select(Box::new(view))))
}

/// FLAGS, PERMANENTFLAGS, EXISTS, RECENT, UNSEEN, UIDVALIDITY, UIDNEXT and
/// HIGHESTMODSEQ (RFC 3501 §6.3.1, RFC 7162 §3.1.2).
fn untagged(user: &User, view: &View, info: &SelectInfo) -> String {
    let mut text = flags_lines(&info.keywords, view.read_only);
    text.push_str(&format!("* {} EXISTS\r\n", info.uids.len()));
    if !user.rev2 {
        // IMAP4rev2 dropped RECENT and the UNSEEN code (RFC 9051 §6.3.2).
        text.push_str(&format!("* {} RECENT\r\n", view.recent.len()));
        if let Some(seq) = info.first_unseen.and_then(|u| view.seq_of(u)) {
            text.push_str(&format!("* OK [UNSEEN {seq}] first unseen\r\n"));
        }
    }
    text.push_str(&format!(
        "* OK [UIDVALIDITY {}] UIDs valid\r\n* OK [UIDNEXT {}] next UID\r\n* OK [HIGHESTMODSEQ {}] modseq\r\n* OK [MAILBOXID ({})] mailbox id\r\n",
        info.status.uidvalidity,
        info.status.uidnext,
        info.status.highestmodseq,
        super::status::mailbox_id(&info.status)
    ));
    text
}

/// QRESYNC's VANISHED (EARLIER) and the flag changes since the client's
/// modseq (RFC 7162 §3.2.5.1).
async fn resync(
    user: &User,
    view: &View,
    q: &Qresync,
    head: &mut Vec<u8>,
) -> Result<(), crate::store::StoreError> {
    let changes = user.session.changes_since(&view.name, q.modseq).await?;
    let known = q
        .known_uids
        .as_ref()
        .map(|s| view.resolve(s, true).unwrap_or_default());
    let vanished: Vec<u32> = changes
        .vanished
        .iter()
        .copied()
        .filter(|u| known.as_ref().is_none_or(|k| k.contains(*u)))
        .collect();
    vanished_line(head, &vanished, true);
    let mut out = Out {
        buf: head,
        condstore: true,
        qresync: true,
    };
    for meta in &changes.changed {
        if let Some(seq) = view.seq_of(meta.uid) {
            flag_line(&mut out, seq, meta, view.is_recent(meta.uid));
        }
    }
    Ok(())
}

/// CLOSE: expunges silently unless read-only (RFC 3501 §6.4.2); the
/// session then leaves the selected state.
pub async fn close(io: &mut Io<'_>, user: &mut User, view: &View, tag: &str) -> io::Result<Next> {
    if !view.read_only
        && let Err(e) = user.session.expunge(&view.name, None).await
    {
        return io.store_failed(tag, &e).await;
    }
    io.ok(tag, "CLOSE completed").await
}
