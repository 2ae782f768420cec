//! LIST and LSUB (RFC 3501 §6.3.8, §6.3.9) with LIST-EXTENDED (RFC 5258),
//! SPECIAL-USE (RFC 6154), CHILDREN (RFC 3348), LIST-STATUS (RFC 5819) and
//! LIST-METADATA (RFC 9590).
//!
//! Imports the session's types, `render`, `status`, `metadata`,
//! `proto::imap` and the
//! `store` interface. Invariants: `*` matches any name, `%` any name
//! without the delimiter, in time linear in pattern × name.

use std::io;

use super::metadata;
use super::status::status_line;
use crate::imap::render;
use crate::imap::session::{Io, Next, User};
use crate::imap::view::{Moment, View};
use crate::proto::imap::{ListMetadata, ListOptions};
use crate::store::FolderInfo;

/// A LIST or LSUB: LSUB is LIST of subscribed names (RFC 3501 §6.3.9).
pub struct Query<'a> {
    pub reference: &'a [u8],
    pub patterns: &'a [Vec<u8>],
    pub options: ListOptions,
    pub lsub: bool,
}

impl<'a> Query<'a> {
    pub fn lsub(reference: &'a [u8], pattern: &'a [Vec<u8>]) -> Query<'a> {
        Query {
            reference,
            patterns: pattern,
            options: ListOptions {
                subscribed_only: true,
                return_subscribed: true,
                ..Default::default()
            },
            lsub: true,
        }
    }
}

pub async fn run(
    io: &mut Io<'_>,
    user: &mut User,
    view: Option<&mut View>,
    tag: &str,
    q: Query<'_>,
) -> io::Result<Next> {
    let verb = if q.lsub { "LSUB" } else { "LIST" };
    let utf8 = user.utf8;
    if let Some(m) = &q.options.return_metadata
        && let Some(why) = m.entries.iter().find_map(|e| metadata::bad_entry(e))
    {
        return io.bad(Some(tag), why).await;
    }
    if let [only] = q.patterns
        && only.is_empty()
    {
        io.conn
            .reply(&format!("* {verb} (\\Noselect) \"/\" \"\""))
            .await?;
        return io.ok(tag, &format!("{verb} completed")).await;
    }
    let mut decoded = Vec::new();
    for p in q.patterns {
        let mut full = q.reference.to_vec();
        full.extend_from_slice(p);
        // A pattern that is no valid name matches nothing (as Dovecot).
        if let Ok(n) = user.decode_name(&full) {
            decoded.push(n);
        }
    }
    let folders = match user.session.list_folders().await {
        Ok(f) => f,
        Err(e) => return io.store_failed(tag, &e).await,
    };
    let options = &q.options;
    let mut out = Vec::new();
    let mut matched: Vec<&FolderInfo> = Vec::new();
    for c in candidates(&folders) {
        let Some(pattern) = decoded.iter().find(|p| wildcard_match(p, &c.name)) else {
            continue;
        };
        let subscribed = c.folder.is_some_and(|f| f.subscribed);
        let has_subscribed_child = || {
            let prefix = format!("{}/", c.name);
            folders
                .iter()
                .filter(|f| f.subscribed && f.name.starts_with(&prefix))
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
        };
        let mut child_info = false;
        let mut noselect = false;
        if options.subscribed_only && !subscribed {
            let children = has_subscribed_child();
            if q.lsub {
                // LSUB names an unsubscribed parent `\Noselect` when the
                // pattern matches it but not its subscribed child (RFC 3501
                // §6.3.9: `%`).
                if children.is_empty()
                    || !pattern.contains('%')
                    || children.iter().any(|n| wildcard_match(pattern, n))
                {
                    continue;
                }
                noselect = true;
            } else if options.recursive_match && !children.is_empty() {
                child_info = true;
            } else {
                continue;
            }
        } else if c.folder.is_none_or(|f| f.nonexistent) && !options.subscribed_only {
            continue;
        }
        if options.special_use_only && c.folder.is_none_or(|f| f.special_use.is_none()) {
            continue;
        }
        let mut attrs = match c.folder {
            Some(f) if !f.nonexistent => list_attributes(f),
            // A name with no folder: LIST-EXTENDED's `\NonExistent`, plain
            // `\Noselect` for LSUB (RFC 5258 §3.4, RFC 3501 §7.2.2).
            _ if q.lsub => vec!["\\Noselect"],
            _ => vec!["\\NonExistent"],
        };
        if noselect && !attrs.contains(&"\\Noselect") {
            attrs.push("\\Noselect");
        }
        if options.return_subscribed && subscribed && !q.lsub {
            attrs.push("\\Subscribed");
        }
        out.extend_from_slice(format!("* {verb} ({}) \"/\" ", attrs.join(" ")).as_bytes());
        render::mailbox(&mut out, &c.name, utf8);
        if child_info {
            out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
        }
        out.extend_from_slice(b"\r\n");
        if let Some(f) = c.folder.filter(|f| !f.nonexistent) {
            matched.push(f);
        }
    }
    io.conn.write_all(&out).await?;
    let mut longest = 0;
    for f in matched {
        if !options.return_status.is_empty()
            && let Ok(s) = user.session.status(&f.name).await
        {
            let line = status_line(&f.name, &s, &options.return_status, utf8);
            io.conn.write_all(&line).await?;
        }
        if let Some(m) = &options.return_metadata {
            longest = longest.max(list_metadata(io, user, &f.name, m).await?);
        }
    }
    io.updates(user, view, Moment::Any).await?;
    io.ok(tag, &metadata::completed(verb, longest)).await
}

/// LIST-METADATA (RFC 9590): after a mailbox's LIST line, the entries
/// asked for, NIL where unset. A mailbox whose entries cannot be read now
/// gets no METADATA line (the RFC allows leaving it out).
async fn list_metadata(
    io: &mut Io<'_>,
    user: &User,
    folder: &str,
    m: &ListMetadata,
) -> io::Result<usize> {
    let Ok(found) = user
        .session
        .get_metadata(folder, m.entries.clone(), 0)
        .await
    else {
        return Ok(0);
    };
    let entries: Vec<(&str, Option<&[u8]>)> = m
        .entries
        .iter()
        .map(|e| {
            let value = found
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(e))
                .map(|(_, v)| v.as_slice());
            (e.as_str(), value)
        })
        .collect();
    let mut mailbox = Vec::new();
    render::mailbox(&mut mailbox, folder, user.utf8);
    let (line, longest) = metadata::metadata_line(&mailbox, &entries, m.max_size);
    if let Some(line) = line {
        io.conn.write_all(&line).await?;
    }
    Ok(longest)
}

/// A name LIST may answer: a folder, a subscribed name without one, or
/// the parent of a subscribed name that is neither (for LSUB's `%` and
/// RECURSIVEMATCH).
struct Candidate<'a> {
    name: String,
    folder: Option<&'a FolderInfo>,
}

/// Every name LIST may answer, INBOX first, then in name order.
fn candidates(folders: &[FolderInfo]) -> Vec<Candidate<'_>> {
    let mut out: Vec<Candidate<'_>> = folders
        .iter()
        .map(|f| Candidate {
            name: f.name.clone(),
            folder: Some(f),
        })
        .collect();
    for f in folders.iter().filter(|f| f.subscribed) {
        let mut parent = f.name.as_str();
        while let Some((p, _)) = parent.rsplit_once('/') {
            parent = p;
            if !out.iter().any(|c| c.name == parent) {
                out.push(Candidate {
                    name: parent.to_string(),
                    folder: None,
                });
            }
        }
    }
    out.sort_by(|a, b| (a.name != "INBOX", &a.name).cmp(&(b.name != "INBOX", &b.name)));
    out
}

/// A folder's LIST attributes: CHILDREN's and its special use.
pub fn list_attributes(f: &FolderInfo) -> Vec<&str> {
    let mut attrs: Vec<&str> = vec![if f.has_children {
        "\\HasChildren"
    } else {
        "\\HasNoChildren"
    }];
    if let Some(s) = &f.special_use {
        attrs.push(s);
    }
    attrs
}

/// LIST pattern matching: `*` matches anything, `%` anything but the
/// hierarchy delimiter; INBOX matches case-insensitively.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = crate::store::normalize_folder_name(pattern)
        .chars()
        .collect();
    let n: Vec<char> = name.chars().collect();
    // prev[j]: the pattern so far matches the first j characters of name.
    let mut prev = vec![false; n.len() + 1];
    if let Some(first) = prev.first_mut() {
        *first = true;
    }
    for &c in &p {
        let mut cur = vec![false; n.len() + 1];
        for j in 0..=n.len() {
            let before = j.checked_sub(1);
            let prev_j = prev.get(j).copied().unwrap_or(false);
            let cur_before = before.and_then(|b| cur.get(b)).copied().unwrap_or(false);
            let prev_before = before.and_then(|b| prev.get(b)).copied().unwrap_or(false);
            let name_before = before.and_then(|b| n.get(b)).copied();
            let m = match c {
                '*' => prev_j || cur_before,
                '%' => prev_j || (cur_before && name_before != Some('/')),
                c => prev_before && name_before == Some(c),
            };
            if let Some(slot) = cur.get_mut(j) {
                *slot = m;
            }
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_wildcards() {
        assert!(wildcard_match("*", "a/b/c"));
        assert!(wildcard_match("%", "Sent"));
        assert!(!wildcard_match("%", "a/b"));
        assert!(wildcard_match("a/%", "a/b"));
        assert!(wildcard_match("inbox", "INBOX"));
        assert!(wildcard_match("Inbox/*", "INBOX/x"));
        assert!(!wildcard_match("sent", "Sent"));
        let many = "%*".repeat(500) + "x";
        assert!(!wildcard_match(&many, &"a".repeat(1000)));
        assert!(wildcard_match("%/%x", "ab/cx"));
    }
}
