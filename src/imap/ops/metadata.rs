//! GETMETADATA and SETMETADATA (RFC 5464): annotations on mailboxes and on
//! the server, kept in the owner's encrypted mailbox file.
//!
//! Imports the session's types, `view`, `proto::imap` and the `store`
//! interface. Invariants: entry names are checked before the store is asked
//! (under `/private/` or `/shared/`, no wildcards, no empty component); a
//! value over `MAX_VALUE` is refused whole, with the size allowed.

use std::io;

use crate::imap::session::{Io, Next, User};
use crate::imap::view::{Moment, View};
use crate::proto::imap::{GetMetadata, MetadataDepth, SetMetadata, push_astring, push_string};

/// The largest value one entry may hold (a command's literals are read up
/// to 64 KiB).
const MAX_VALUE: usize = 32 * 1024;

/// Why an entry name is refused (RFC 5464 §3.2), if it is.
pub(super) fn bad_entry(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if !(lower.starts_with("/private/") || lower.starts_with("/shared/")) {
        return Some("an entry name starts with /private/ or /shared/");
    }
    if name.ends_with('/') || name.contains("//") {
        return Some("an entry name has no empty component");
    }
    if name.chars().any(|c| c == '*' || c == '%' || c.is_control()) {
        return Some("an entry name has no wildcards or controls");
    }
    None
}

/// The store's name for the mailbox argument; `""` is the server.
fn folder(user: &User, mailbox: &[u8]) -> Result<String, String> {
    if mailbox.is_empty() {
        Ok(String::new())
    } else {
        user.decode_name(mailbox)
    }
}

pub async fn get(
    io: &mut Io<'_>,
    user: &mut User,
    view: Option<&mut View>,
    tag: &str,
    g: GetMetadata,
) -> io::Result<Next> {
    let name = match folder(user, &g.mailbox) {
        Ok(n) => n,
        Err(e) => return io.bad_name(tag, &e).await,
    };
    if let Some(why) = g.entries.iter().find_map(|e| bad_entry(e)) {
        return io.bad(Some(tag), why).await;
    }
    let depth = match g.depth {
        MetadataDepth::Zero => 0,
        MetadataDepth::One => 1,
        MetadataDepth::Infinity => u8::MAX,
    };
    let entries = match user.session.get_metadata(&name, g.entries, depth).await {
        Ok(e) => e,
        Err(e) => return io.store_failed(tag, &e).await,
    };
    // MAXSIZE leaves out larger values and says how large the largest was
    // (RFC 5464 §4.2.1).
    let mut mailbox = Vec::new();
    push_astring(&mut mailbox, &g.mailbox);
    let found: Vec<(&str, Option<&[u8]>)> = entries
        .iter()
        .map(|(e, v)| (e.as_str(), Some(v.as_slice())))
        .collect();
    let (line, longest) = metadata_line(&mailbox, &found, g.max_size);
    if let Some(line) = line {
        io.conn.write_all(&line).await?;
    }
    io.updates(user, view, Moment::Any).await?;
    io.ok(tag, &completed("GETMETADATA", longest)).await
}

/// `* METADATA mailbox (entry value …)` for `entries` (a `None` value is
/// NIL), leaving out values over `max_size`; with the longest left out.
/// No line when every entry was left out.
pub(super) fn metadata_line(
    mailbox: &[u8],
    entries: &[(&str, Option<&[u8]>)],
    max_size: Option<u32>,
) -> (Option<Vec<u8>>, usize) {
    let mut longest = 0;
    let mut line = b"* METADATA ".to_vec();
    line.extend_from_slice(mailbox);
    line.extend_from_slice(b" (");
    let mut any = false;
    for (entry, value) in entries {
        let len = value.map_or(0, <[u8]>::len);
        if max_size.is_some_and(|max| len > max as usize) {
            longest = longest.max(len);
            continue;
        }
        if any {
            line.push(b' ');
        }
        any = true;
        push_astring(&mut line, entry.as_bytes());
        line.push(b' ');
        match value {
            None => line.extend_from_slice(b"NIL"),
            Some(v) if v.contains(&0) => {
                line.extend_from_slice(format!("~{{{}}}\r\n", v.len()).as_bytes());
                line.extend_from_slice(v);
            }
            Some(v) => push_string(&mut line, v),
        }
    }
    line.extend_from_slice(b")\r\n");
    (any.then_some(line), longest)
}

/// The tagged OK's text, saying how long the longest value left out was.
pub(super) fn completed(verb: &str, longest: usize) -> String {
    if longest > 0 {
        format!("[METADATA LONGENTRIES {longest}] {verb} completed")
    } else {
        format!("{verb} completed")
    }
}

pub async fn set(
    io: &mut Io<'_>,
    user: &mut User,
    view: Option<&mut View>,
    tag: &str,
    m: SetMetadata,
) -> io::Result<Next> {
    let name = match folder(user, &m.mailbox) {
        Ok(n) => n,
        Err(e) => return io.bad_name(tag, &e).await,
    };
    if let Some(why) = m.entries.iter().find_map(|(e, _)| bad_entry(e)) {
        return io.bad(Some(tag), why).await;
    }
    if m.entries
        .iter()
        .any(|(_, v)| v.as_ref().is_some_and(|v| v.len() > MAX_VALUE))
    {
        let text = format!("[METADATA MAXSIZE {MAX_VALUE}] value too large");
        return io.no(tag, &text).await;
    }
    let r = user.session.set_metadata(&name, m.entries).await;
    io.done(user, view, tag, r, "SETMETADATA completed").await
}
