//! GETQUOTA and GETQUOTAROOT (RFC 9208): one quota root, `""`, for the
//! whole mailbox, when the operator set a limit.
//!
//! Imports the session's types, `render` and the `store` interface.

use std::io;

use crate::imap::render;
use crate::imap::session::{Io, Next, User};

pub async fn run(
    io: &mut Io<'_>,
    user: &mut User,
    tag: &str,
    root: Option<&[u8]>,
    mailbox: Option<&[u8]>,
) -> io::Result<Next> {
    let name = match mailbox.map(|m| user.decode_name(m)).transpose() {
        Ok(n) => n,
        Err(e) => return io.bad_name(tag, &e).await,
    };
    let usage = match user.session.quota().await {
        Ok(q) => q,
        Err(e) => return io.store_failed(tag, &e).await,
    };
    let mut buf = Vec::new();
    if let Some(name) = name {
        buf.extend_from_slice(b"* QUOTAROOT ");
        render::mailbox(&mut buf, &name, user.utf8);
        if usage.limit_bytes.is_some() {
            buf.extend_from_slice(b" \"\"");
        }
        buf.extend_from_slice(b"\r\n");
    } else if root.is_some_and(|r| !r.is_empty()) || usage.limit_bytes.is_none() {
        return io.no(tag, "[NONEXISTENT] no such quota root").await;
    }
    if let Some(limit) = usage.limit_bytes {
        buf.extend_from_slice(
            format!(
                "* QUOTA \"\" (STORAGE {} {})\r\n",
                usage.used_bytes.div_ceil(1024),
                limit / 1024
            )
            .as_bytes(),
        );
    }
    io.conn.write_all(&buf).await?;
    io.ok(tag, "GETQUOTA completed").await
}
