//! EXPUNGE and UID EXPUNGE (RFC 3501 §6.4.3, RFC 4315 §2.1), with
//! VANISHED under QRESYNC (RFC 7162 §3.2.10).
//!
//! Imports the session's types, `proto::imap` and the `store` interface.

use std::io;

use crate::imap::session::{Io, Next, User};
use crate::imap::view::{Moment, View};
use crate::proto::imap::SeqSet;

pub async fn run(
    io: &mut Io<'_>,
    user: &mut User,
    view: &mut View,
    tag: &str,
    uids: Option<SeqSet>,
) -> io::Result<Next> {
    if view.read_only {
        return io.no(tag, "[READ-ONLY] mailbox is read-only").await;
    }
    let set = match uids.map(|s| view.resolve(&s, true)).transpose() {
        Ok(s) => s,
        Err(e) => return io.bad(Some(tag), &e).await,
    };
    match user.session.expunge(&view.name, set).await {
        Ok(gone) => {
            let mut buf = Vec::new();
            view.expunged(&gone, &mut user.out(&mut buf));
            io.conn.write_all(&buf).await?;
            io.updates(user, Some(view), Moment::Any).await?;
            io.ok(tag, "EXPUNGE completed").await
        }
        Err(e) => io.store_failed(tag, &e).await,
    }
}
