//! APPEND (RFC 3501 §6.3.11, RFC 4315 APPENDUID, RFC 3516 literal8).
//!
//! Imports the session's types, `proto::imap` and the `store` interface.
//! Invariants: `\Recent` and `\*` are refused; a missing mailbox answers
//! `NO [TRYCREATE]`.

use std::io;

use crate::imap::session::{Io, Next, User};
use crate::imap::view::{Moment, View};
use crate::proto::imap::Append;
use crate::store::{AppendRequest, Flags, StoreError};

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
    if let Some(f) = &append.flags.invalid {
        return io.bad(Some(tag), &format!("flag {f} cannot be set")).await;
    }
    let req = AppendRequest {
        folder: name,
        message: append.message,
        flags: Flags {
            system: append.flags.system,
            keywords: append.flags.keywords,
        },
        internal_date: append.date,
    };
    let r = user.session.append(req).await;
    io.updates(user, view, Moment::Any).await?;
    match r {
        Ok(a) => {
            let text = format!("[APPENDUID {} {}] APPEND completed", a.uidvalidity, a.uid);
            io.ok(tag, &text).await
        }
        Err(StoreError::NoSuchFolder(_)) => io.no(tag, "[TRYCREATE] no such mailbox").await,
        Err(e) => io.store_failed(tag, &e).await,
    }
}
