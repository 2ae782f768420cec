//! STATUS (RFC 3501 §6.3.10, RFC 7162 HIGHESTMODSEQ, RFC 8438 SIZE) and the
//! STATUS line LIST-STATUS (RFC 5819) shares.
//!
//! Imports the session's types, `render`, `proto::imap` and the `store`
//! interface.

use std::io;

use crate::imap::render;
use crate::imap::session::{Io, Next, User};
use crate::imap::view::{Moment, View};
use crate::proto::imap::StatusItem;
use crate::store::FolderStatus;

pub async fn run(
    io: &mut Io<'_>,
    user: &mut User,
    view: Option<&mut View>,
    tag: &str,
    mailbox: &[u8],
    items: &[StatusItem],
) -> io::Result<Next> {
    let name = match user.decode_name(mailbox) {
        Ok(n) => n,
        Err(e) => return io.bad_name(tag, &e).await,
    };
    let mut line = Vec::new();
    if items.contains(&StatusItem::HighestModSeq) {
        line = user.enable_condstore(view.as_deref());
    }
    match user.session.status(&name).await {
        Ok(s) => {
            line.extend(status_line(&s.name, &s, items, user.utf8));
            io.conn.write_all(&line).await?;
            io.updates(user, view, Moment::Any).await?;
            io.ok(tag, "STATUS completed").await
        }
        Err(e) => io.store_failed(tag, &e).await,
    }
}

pub fn status_line(name: &str, s: &FolderStatus, items: &[StatusItem], utf8: bool) -> Vec<u8> {
    let mut out = b"* STATUS ".to_vec();
    render::mailbox(&mut out, name, utf8);
    let values: Vec<String> = items
        .iter()
        .map(|i| match i {
            StatusItem::Messages => format!("MESSAGES {}", s.messages),
            StatusItem::Recent => format!("RECENT {}", s.recent),
            StatusItem::UidNext => format!("UIDNEXT {}", s.uidnext),
            StatusItem::UidValidity => format!("UIDVALIDITY {}", s.uidvalidity),
            StatusItem::Unseen => format!("UNSEEN {}", s.unseen),
            StatusItem::Deleted => format!("DELETED {}", s.deleted),
            StatusItem::Size => format!("SIZE {}", s.size),
            StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", s.highestmodseq),
            StatusItem::MailboxId => format!("MAILBOXID ({})", mailbox_id(s)),
        })
        .collect();
    out.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
    out
}

/// A folder's MAILBOXID (RFC 8474 §4): from its UIDVALIDITY, which no other
/// folder of the mailbox has had or will have, and which RENAME keeps.
pub fn mailbox_id(s: &FolderStatus) -> String {
    format!("F{}", s.uidvalidity)
}
