//! CREATE, DELETE, RENAME, SUBSCRIBE and UNSUBSCRIBE (RFC 3501 §6.3.3–6.3.7;
//! RFC 9051 §6.3.6 for RENAME's LIST line).
//!
//! Imports the session's types, `render` and the `store` interface.
//! Invariants: a name that does not decode is refused before the store
//! sees it.

use std::io;

use crate::imap::render;
use crate::imap::session::{Io, Next, User};
use crate::imap::view::View;

pub async fn create(
    io: &mut Io<'_>,
    user: &mut User,
    view: Option<&mut View>,
    tag: &str,
    raw: &[u8],
) -> io::Result<Next> {
    let name = match user.decode_name(raw) {
        Ok(n) => n,
        Err(e) => return io.bad_name(tag, &e).await,
    };
    let name = name.trim_end_matches('/');
    let r = user.session.create_folder(name).await;
    // The new folder's MAILBOXID in the tagged reply (RFC 8474 §4.1).
    let done = match (&r, user.session.status(name).await) {
        (Ok(()), Ok(s)) => format!(
            "[MAILBOXID ({})] CREATE completed",
            super::status::mailbox_id(&s)
        ),
        _ => "CREATE completed".to_string(),
    };
    io.done(user, view, tag, r, &done).await
}

pub async fn delete(
    io: &mut Io<'_>,
    user: &mut User,
    view: Option<&mut View>,
    tag: &str,
    raw: &[u8],
) -> io::Result<Next> {
    let name = match user.decode_name(raw) {
        Ok(n) => n,
        Err(e) => return io.bad_name(tag, &e).await,
    };
    let r = user.session.delete_folder(&name).await;
    io.done(user, view, tag, r, "DELETE completed").await
}

pub async fn rename(
    io: &mut Io<'_>,
    user: &mut User,
    view: Option<&mut View>,
    tag: &str,
    from: &[u8],
    to: &[u8],
) -> io::Result<Next> {
    let (from, to) = match (user.decode_name(from), user.decode_name(to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return io.bad_name(tag, &e).await,
    };
    let r = user.session.rename_folder(&from, &to).await;
    if r.is_ok() && user.rev2 {
        // RFC 9051 §6.3.6: tell the client the new name.
        let mut line = b"* LIST () \"/\" ".to_vec();
        render::mailbox(&mut line, to.trim_end_matches('/'), true);
        line.extend_from_slice(b" (\"OLDNAME\" (");
        render::mailbox(&mut line, &from, true);
        line.extend_from_slice(b"))\r\n");
        io.conn.write_all(&line).await?;
    }
    io.done(user, view, tag, r, "RENAME completed").await
}

pub async fn subscribe(
    io: &mut Io<'_>,
    user: &mut User,
    view: Option<&mut View>,
    tag: &str,
    raw: &[u8],
    on: bool,
) -> io::Result<Next> {
    let name = match user.decode_name(raw) {
        Ok(n) => n,
        Err(e) => return io.bad_name(tag, &e).await,
    };
    let r = user.session.subscribe_folder(&name, on).await;
    let verb = if on { "SUBSCRIBE" } else { "UNSUBSCRIBE" };
    io.done(user, view, tag, r, &format!("{verb} completed"))
        .await
}
