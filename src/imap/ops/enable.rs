//! ENABLE (RFC 5161): CONDSTORE, QRESYNC (RFC 7162), UTF8=ACCEPT (RFC
//! 6855) and IMAP4rev2 (RFC 9051).
//!
//! Imports the session's types. Invariants: only what is implemented is
//! enabled and echoed in `* ENABLED`, each name once.

use std::io;

use crate::imap::session::{Io, Next, User};

pub async fn run(
    io: &mut Io<'_>,
    user: &mut User,
    tag: &str,
    caps: Vec<String>,
) -> io::Result<Next> {
    let mut enabled = Vec::new();
    for cap in caps {
        match cap.as_str() {
            "CONDSTORE" => user.condstore = true,
            "QRESYNC" => {
                user.qresync = true;
                user.condstore = true;
            }
            "UTF8=ACCEPT" => user.utf8 = true,
            "IMAP4REV2" => {
                user.rev2 = true;
                user.utf8 = true;
            }
            _ => continue,
        }
        let cap = if cap == "IMAP4REV2" {
            "IMAP4rev2".to_string()
        } else {
            cap
        };
        if !enabled.contains(&cap) {
            enabled.push(cap);
        }
    }
    let line = format!("* ENABLED {}", enabled.join(" "));
    io.conn.reply(line.trim_end()).await?;
    io.ok(tag, "ENABLE completed").await
}
