//! Reads one whole IMAP command off a connection: its first line, and for
//! every literal the line announces, the literal's bytes and the line after.
//!
//! Imports `net::conn`, `proto::imap` and `util`. Invariants: a literal's
//! size is checked against the command's limit, and an APPEND literal held
//! against the memory budget, before a byte of it is read or a buffer is
//! grown for it; a synchronising literal gets its `+` only after those
//! checks; the whole command never exceeds its limit. An APPEND literal
//! over `SPILL_AT` goes to an encrypted spill file as it arrives (at most
//! `SPILL_AT` of it in memory at once), and the command carries in its
//! place a placeholder that names it, random per command so no client can
//! forge one ([`Spilled::claim`]).

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::net::conn::{Conn, Line};
use crate::proto::imap::{MAX_LINE, MAX_LITERALS, literal_at_end, tag_and_name};
use crate::util::spill::{Incoming, SPILL_AT, Spills};
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
    /// A whole command, lines joined by CRLF, literals inline (or, when
    /// spilled, a placeholder), with what its APPEND literals hold of the
    /// memory budget.
    Command(Vec<u8>, Reserved, Spilled),
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

/// The literals of one command that went to spill files, each named in
/// the command by a placeholder literal.
#[derive(Debug, Default)]
pub struct Spilled {
    /// Random per command: a client cannot send a placeholder.
    token: String,
    bodies: Vec<Option<Incoming>>,
}

impl Spilled {
    fn placeholder(&self, i: usize) -> Vec<u8> {
        format!("{}-{i}", self.token).into_bytes()
    }

    /// Bytes in all the spill files.
    pub fn bytes(&self) -> u64 {
        self.bodies.iter().flatten().map(Incoming::spilled).sum()
    }

    /// If `literal` is a placeholder of this command, the spilled literal
    /// it stands for (once).
    pub fn claim(&mut self, literal: &[u8]) -> Option<Incoming> {
        let rest = literal.strip_prefix(self.token.as_bytes())?;
        let i: usize = std::str::from_utf8(rest.strip_prefix(b"-")?)
            .ok()?
            .parse()
            .ok()?;
        self.bodies.get_mut(i)?.take()
    }
}

/// Reads the next command; `max_message` bounds APPEND's literal, and
/// `memory` (or, past `SPILL_AT`, `spills`) must have room for it.
pub async fn read_command(
    conn: &mut Conn,
    max_message: u64,
    memory: &Arc<MemoryBudget>,
    spills: &Arc<Spills>,
) -> io::Result<Read> {
    let mut cmd: Vec<u8> = Vec::new();
    let mut held = memory.start();
    let mut spilled = Spilled::default();
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
            return Ok(Read::Command(cmd, held, spilled));
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
        // A large APPEND literal goes to a spill file, which must have
        // room for it; what of it is in memory at once is held against the
        // memory budget. Both before a byte of it is read.
        let spill = append && !dropping && size > SPILL_AT as u64;
        let mut staging = memory.start();
        let (budget, in_memory) = if spill {
            (&mut staging, SPILL_AT as u64)
        } else {
            (&mut held, size)
        };
        let refused = if !append || dropping {
            None
        } else if spill && !spills.has_room(size) {
            Some("no disk left for messages in flight; APPEND refused")
        } else if !budget
            .receive_by(in_memory, Instant::now() + MEMORY_PATIENCE)
            .await
        {
            Some("no memory left for messages in flight; APPEND refused")
        } else {
            None
        };
        if let Some(why) = refused {
            tracing::warn!(bytes = size, "{why}");
            if !non_sync {
                return Ok(Read::NoMemory(first.map(|f| f.0)));
            }
            dropping = true;
        }
        if dropping {
            cmd = Vec::new();
            held.release();
            spilled = Spilled::default();
        } else if spill {
            if spilled.token.is_empty() {
                spilled.token = crate::util::random_id()?;
            }
            let placeholder = spilled.placeholder(spilled.bodies.len());
            let open = line.iter().rposition(|&b| b == b'{').unwrap_or(line.len());
            cmd.extend_from_slice(line.get(..open).unwrap_or_default());
            cmd.extend_from_slice(format!("{{{}}}\r\n", placeholder.len()).as_bytes());
            cmd.extend_from_slice(&placeholder);
        } else {
            cmd.extend_from_slice(&line);
            cmd.extend_from_slice(b"\r\n");
        }
        if !non_sync {
            conn.write_all(b"+ Ready for literal data\r\n").await?;
            conn.flush().await?;
        }
        if spill && !dropping {
            match spill_literal(conn, size, spills).await? {
                Some(Ok(body)) => spilled.bodies.push(Some(body)),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "cannot spill an APPEND literal; it is read and refused");
                    dropping = true;
                    cmd = Vec::new();
                    held.release();
                    spilled = Spilled::default();
                }
                None => return Ok(Read::Closed),
            }
            continue;
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

/// Reads a literal of `size` bytes into a spill file, `SPILL_AT` at a
/// time; on a spill failure the rest is read and dropped. `None`: the
/// client went away.
async fn spill_literal(
    conn: &mut Conn,
    size: u64,
    spills: &Arc<Spills>,
) -> io::Result<Option<io::Result<Incoming>>> {
    let mut body = Incoming::new(spills);
    let mut buffer = Vec::with_capacity(SPILL_AT);
    let mut failed = None;
    let mut need = size;
    while need > 0 {
        if conn.buffered().is_empty() && conn.fill().await? == 0 {
            return Ok(None);
        }
        let take = conn
            .buffered()
            .len()
            .min(usize::try_from(need).unwrap_or(usize::MAX));
        if failed.is_none() {
            buffer.extend_from_slice(&conn.buffered()[..take]);
        }
        conn.consume(take);
        need -= take as u64;
        if failed.is_none() && (buffer.len() >= SPILL_AT || need == 0) {
            let full = std::mem::replace(&mut buffer, Vec::with_capacity(SPILL_AT));
            if let Err(e) = body.put(full).await {
                failed = Some(e);
                body.discard();
                buffer = Vec::new();
            }
        }
    }
    Ok(Some(match failed {
        Some(e) => Err(e),
        None => Ok(body),
    }))
}
