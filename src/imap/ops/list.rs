//! LIST and LSUB (RFC 3501 §6.3.8, §6.3.9) with LIST-EXTENDED (RFC 5258),
//! SPECIAL-USE (RFC 6154), CHILDREN (RFC 3348) and LIST-STATUS (RFC 5819).
//!
//! Imports the session's types, `render`, `status`, `proto::imap` and the
//! `store` interface. Invariants: `*` matches any name, `%` any name
//! without the delimiter, in time linear in pattern × name.

use std::io;

use super::status::status_line;
use crate::imap::render;
use crate::imap::session::{Io, Next, User};
use crate::imap::view::{Moment, View};
use crate::proto::imap::ListOptions;
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
        match user.decode_name(&full) {
            Ok(n) => decoded.push(n),
            Err(e) => return io.bad(Some(tag), &e).await,
        }
    }
    let folders = match user.session.list_folders().await {
        Ok(f) => f,
        Err(e) => return io.store_failed(tag, &e).await,
    };
    let options = &q.options;
    let mut out = Vec::new();
    let mut matched: Vec<&FolderInfo> = Vec::new();
    for f in &folders {
        if !decoded.iter().any(|p| wildcard_match(p, &f.name)) {
            continue;
        }
        let mut child_info = false;
        if options.subscribed_only && !f.subscribed {
            let prefix = format!("{}/", f.name);
            child_info = options.recursive_match
                && folders
                    .iter()
                    .any(|c| c.subscribed && c.name.starts_with(&prefix));
            if !child_info {
                continue;
            }
        }
        if options.special_use_only && f.special_use.is_none() {
            continue;
        }
        let mut attrs = list_attributes(f);
        if options.return_subscribed && f.subscribed && !q.lsub {
            attrs.push("\\Subscribed");
        }
        out.extend_from_slice(format!("* {verb} ({}) \"/\" ", attrs.join(" ")).as_bytes());
        render::mailbox(&mut out, &f.name, utf8);
        if child_info {
            out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
        }
        out.extend_from_slice(b"\r\n");
        matched.push(f);
    }
    io.conn.write_all(&out).await?;
    if !options.return_status.is_empty() {
        for f in matched {
            if let Ok(s) = user.session.status(&f.name).await {
                let line = status_line(&f.name, &s, &options.return_status, utf8);
                io.conn.write_all(&line).await?;
            }
        }
    }
    io.updates(user, view, Moment::Any).await?;
    io.ok(tag, &format!("{verb} completed")).await
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
