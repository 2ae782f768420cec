//! COMPRESS=DEFLATE (RFC 4978): the OK goes out plain, everything after it
//! compressed.
//!
//! Imports the session's types. Invariants: compression starts once.

use std::io;

use crate::imap::session::{Io, Next};

pub async fn run(io: &mut Io<'_>, tag: &str, mechanism: &str) -> io::Result<Next> {
    if io.conn.is_compressed() {
        return io
            .no(tag, "[COMPRESSIONACTIVE] DEFLATE is already active")
            .await;
    }
    if mechanism != "DEFLATE" {
        return io.no(tag, "unknown compression mechanism").await;
    }
    io.ok(tag, "DEFLATE active").await?;
    io.conn.flush().await?;
    io.conn.start_deflate();
    Ok(Next::Continue)
}
