//! ENABLE (RFC 5161): CONDSTORE, QRESYNC (RFC 7162), UTF8=ACCEPT (RFC
//! 6855) and IMAP4rev2 (RFC 9051).
//!
//! Imports the session's types and `view`. Invariants: only what is implemented is
//! enabled and echoed in `* ENABLED`, each name once.

use std::io;

use crate::imap::session::{Io, Next, User};
use crate::imap::view::View;

pub async fn run(
    io: &mut Io<'_>,
    user: &mut User,
    view: Option<&mut View>,
    tag: &str,
    caps: Vec<String>,
) -> io::Result<Next> {
    let mut enabled = Vec::new();
    let mut highest = Vec::new();
    for cap in caps {
        match cap.as_str() {
            "CONDSTORE" => highest.extend(user.enable_condstore(view.as_deref())),
            "QRESYNC" => {
                user.qresync = true;
                highest.extend(user.enable_condstore(view.as_deref()));
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
    io.conn.write_all(&highest).await?;
    io.ok(tag, "ENABLE completed").await
}
