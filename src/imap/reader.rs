//! Reads one whole IMAP command off a connection: its first line, and for
//! every literal the line announces, the literal's bytes and the line after.
//!
//! Imports `net::conn`, `proto::imap` and `util`. Invariants: a literal's
//! size is checked against the command's limit, and an APPEND literal held
//! against the memory budget, before a byte of it is read or a buffer is
//! grown for it; a synchronising literal gets its `+` only after those
//! checks; the whole command never exceeds its limit.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::net::conn::{Conn, Line};
use crate::proto::imap::{MAX_LINE, MAX_LITERALS, literal_at_end, tag_and_name};
use crate::util::{MemoryBudget, Reserved};

/// Literals of commands other than APPEND and REPLACE: names, search
/// strings, passwords.
const MAX_SMALL_LITERAL: u64 = 64 * 1024;
/// How long an APPEND literal may wait for room in the memory budget.
const MEMORY_PATIENCE: Duration = Duration::from_secs(60);
/// The whole of a command other than APPEND.
const MAX_SMALL_COMMAND: usize = 1024 * 1024;

#[derive(Debug)]
pub enum Read {
    /// A whole command, lines joined by CRLF, literals inline, with what
    /// its APPEND literals hold of the memory budget.
    Command(Vec<u8>, Reserved),
    /// A line over [`MAX_LINE`]; read to its end and dropped.
    TooLong(Option<String>),
    /// A literal over the limit. After a synchronising one the client sends
    /// nothing more of this command; after a non-synchronising one its bytes
    /// are on their way and the connection cannot be resynchronised.
    LiteralRefused {
        tag: Option<String>,
        non_sync: bool,
        limit: u64,
    },
    /// An APPEND literal the memory budget has no room for now: refused
    /// before the client sent it (synchronising), or read and dropped.
    NoMemory(Option<String>),
    Closed,
}

/// Reads the next command; `max_message` bounds APPEND's literal, and
/// `memory` must have room for it.
pub async fn read_command(
    conn: &mut Conn,
    max_message: u64,
    memory: &Arc<MemoryBudget>,
) -> io::Result<Read> {
    let mut cmd: Vec<u8> = Vec::new();
    let mut held = memory.start();
    // A non-synchronising literal found no memory: the rest of the command
    // is read and dropped.
    let mut dropping = false;
    let mut literals = 0;
    let mut first: Option<(String, String)> = None;
    // The tag of a line too long to keep, so its refusal can be tagged.
    if conn.buffered().is_empty() && conn.fill().await? == 0 {
        return Ok(Read::Closed);
    }
    let early_tag = conn
        .buffered()
        .iter()
        .position(|&b| b == b' ')
        .map(|sp| &conn.buffered()[..sp])
        .filter(|t| !t.is_empty() && t.iter().all(|c| c.is_ascii_graphic() && *c != b'+'))
        .map(|t| String::from_utf8_lossy(t).into_owned());
    loop {
        let line = match conn.read_line(MAX_LINE).await? {
            Line::Complete(l) => l,
            Line::TooLong => return Ok(Read::TooLong(first.map(|f| f.0).or(early_tag))),
            Line::Eof => return Ok(Read::Closed),
        };
        if first.is_none() {
            first = tag_and_name(&line);
        }
        let Some((size, non_sync)) = literal_at_end(&line) else {
            if dropping {
                return Ok(Read::NoMemory(first.map(|f| f.0)));
            }
            if cmd.len() + line.len() > MAX_SMALL_COMMAND + max_message as usize {
                return Ok(Read::TooLong(first.map(|f| f.0)));
            }
            cmd.extend_from_slice(&line);
            return Ok(Read::Command(cmd, held));
        };
        literals += 1;
        // Commands that carry a message (APPEND, with CATENATE's TEXT
        // parts; REPLACE).
        let append = first
            .as_ref()
            .is_some_and(|f| matches!(f.1.as_str(), "APPEND" | "REPLACE" | "UID REPLACE"));
        let limit = if append {
            max_message
        } else {
            MAX_SMALL_LITERAL
        };
        let total_limit = if append {
            MAX_SMALL_COMMAND + max_message as usize
        } else {
            MAX_SMALL_COMMAND
        };
        if size > limit
            || literals > MAX_LITERALS
            || cmd.len() + line.len() + size as usize > total_limit
        {
            return Ok(Read::LiteralRefused {
                tag: first.map(|f| f.0),
                non_sync,
                limit,
            });
        }
        // An APPEND literal is held against the memory budget before a
        // byte of it is read.
        if append
            && !dropping
            && !held
                .receive_by(size, Instant::now() + MEMORY_PATIENCE)
                .await
        {
            tracing::warn!(
                bytes = size,
                "no memory left for messages in flight; APPEND refused"
            );
            if !non_sync {
                return Ok(Read::NoMemory(first.map(|f| f.0)));
            }
            dropping = true;
            cmd = Vec::new();
            held.release();
        }
        if !dropping {
            cmd.extend_from_slice(&line);
            cmd.extend_from_slice(b"\r\n");
        }
        if !non_sync {
            conn.write_all(b"+ Ready for literal data\r\n").await?;
            conn.flush().await?;
        }
        let mut need = size as usize;
        if !dropping {
            cmd.reserve_exact(need);
        }
        while need > 0 {
            if conn.buffered().is_empty() && conn.fill().await? == 0 {
                return Ok(Read::Closed);
            }
            let take = need.min(conn.buffered().len());
            if !dropping {
                cmd.extend_from_slice(&conn.buffered()[..take]);
            }
            conn.consume(take);
            need -= take;
        }
    }
}
