//! IMAP response data: flags, dates, ENVELOPE, BODY/BODYSTRUCTURE, header
//! field subsets and mailbox names on the wire.
//!
//! Imports `proto::imap` (string encoders) and `store` values. Invariants:
//! every string goes out through `push_string` (quoted or literal, never
//! raw); mailbox names are modified UTF-7 unless the client enabled
//! UTF8=ACCEPT.

use crate::proto::imap::{push_nstring, push_string, push_utf8_string};
use crate::proto::mutf7::mutf7_encode;
use crate::store::Flags;
use crate::store::mime::{Address, Envelope, Part};

/// `(\Seen \Flagged $Junk)`
pub fn flags(f: &Flags) -> String {
    flags_recent(f, false)
}

/// `(\Seen \Recent $Work)`: a message's flags, with the session flag
/// `\Recent` where this session holds it.
pub fn flags_recent(f: &Flags, recent: bool) -> String {
    let mut names: Vec<&str> = Vec::new();
    for (bit, name) in [
        (Flags::ANSWERED, "\\Answered"),
        (Flags::FLAGGED, "\\Flagged"),
        (Flags::DELETED, "\\Deleted"),
        (Flags::SEEN, "\\Seen"),
        (Flags::DRAFT, "\\Draft"),
    ] {
        if f.has(bit) {
            names.push(name);
        }
    }
    if recent {
        names.push("\\Recent");
    }
    names.extend(f.keywords.iter().map(String::as_str));
    format!("({})", names.join(" "))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// ISO-8601 UTC (`2024-01-31T10:00:00Z`) to `"31-Jan-2024 10:00:00 +0000"`.
pub fn internal_date(iso: &str) -> String {
    let num = |r: std::ops::Range<usize>| iso.get(r).and_then(|s| s.parse::<usize>().ok());
    match (num(0..4), num(5..7), num(8..10), iso.get(11..19)) {
        (Some(y), Some(m), Some(d), Some(time)) if (1..=12).contains(&m) => {
            format!("\"{d:02}-{}-{y:04} {time} +0000\"", MONTHS[m - 1])
        }
        _ => "\"01-Jan-1970 00:00:00 +0000\"".to_string(),
    }
}

/// A mailbox name as the client should see it.
pub fn mailbox(out: &mut Vec<u8>, name: &str, utf8: bool) {
    if utf8 {
        push_utf8_string(out, name.as_bytes());
    } else {
        push_string(out, mutf7_encode(name).as_bytes());
    }
}

fn opt(out: &mut Vec<u8>, s: &Option<String>) {
    push_nstring(out, s.as_deref().map(str::as_bytes));
}

fn addresses(out: &mut Vec<u8>, list: &[Address]) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in list {
        out.push(b'(');
        opt(out, &a.name);
        out.push(b' ');
        opt(out, &a.adl);
        out.push(b' ');
        opt(out, &a.mailbox);
        out.push(b' ');
        opt(out, &a.host);
        out.push(b')');
    }
    out.push(b')');
}

pub fn envelope(out: &mut Vec<u8>, e: &Envelope) {
    out.push(b'(');
    opt(out, &e.date);
    out.push(b' ');
    opt(out, &e.subject);
    for list in [&e.from, &e.sender, &e.reply_to, &e.to, &e.cc, &e.bcc] {
        out.push(b' ');
        addresses(out, list);
    }
    out.push(b' ');
    opt(out, &e.in_reply_to);
    out.push(b' ');
    opt(out, &e.message_id);
    out.push(b')');
}

fn params(out: &mut Vec<u8>, params: &[(String, String)]) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        push_string(out, k.to_ascii_uppercase().as_bytes());
        out.push(b' ');
        push_string(out, v.as_bytes());
    }
    out.push(b')');
}

/// BODY (`extended == false`) or BODYSTRUCTURE of a part (RFC 3501 §7.4.2).
pub fn body(out: &mut Vec<u8>, p: &Part, extended: bool) {
    out.push(b'(');
    if p.mime_type == "multipart" {
        if p.children.is_empty() {
            // A multipart without parts: shown as an empty text part.
            out.extend_from_slice(b"\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 0 0");
        }
        for c in &p.children {
            body(out, c, extended);
        }
        out.push(b' ');
        push_string(out, p.subtype.to_ascii_uppercase().as_bytes());
        if extended {
            out.push(b' ');
            params(out, &p.params);
            extension(out, p);
        }
        out.push(b')');
        return;
    }
    push_string(out, p.mime_type.to_ascii_uppercase().as_bytes());
    out.push(b' ');
    push_string(out, p.subtype.to_ascii_uppercase().as_bytes());
    out.push(b' ');
    params(out, &p.params);
    out.push(b' ');
    opt(out, &p.id);
    out.push(b' ');
    opt(out, &p.description);
    out.push(b' ');
    push_string(out, p.encoding.to_ascii_uppercase().as_bytes());
    out.extend_from_slice(format!(" {}", p.end.saturating_sub(p.body_start)).as_bytes());
    if p.mime_type == "message" && p.subtype == "rfc822" {
        out.push(b' ');
        match &p.envelope {
            Some(e) => envelope(out, e),
            None => envelope(out, &Envelope::default()),
        }
        out.push(b' ');
        match p.children.first() {
            Some(c) => body(out, c, extended),
            None => out.extend_from_slice(b"(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 0 0)"),
        }
        out.extend_from_slice(format!(" {}", p.lines).as_bytes());
    } else if p.mime_type == "text" {
        out.extend_from_slice(format!(" {}", p.lines).as_bytes());
    }
    if extended {
        out.push(b' ');
        opt(out, &p.md5);
        extension(out, p);
    }
    out.push(b')');
}

/// body-ext: disposition, language, location.
fn extension(out: &mut Vec<u8>, p: &Part) {
    out.push(b' ');
    match &p.disposition {
        Some((kind, ps)) => {
            out.push(b'(');
            push_string(out, kind.to_ascii_uppercase().as_bytes());
            out.push(b' ');
            params(out, ps);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    opt(out, &p.language);
    out.push(b' ');
    opt(out, &p.location);
}

/// The header fields named (or, with `not`, all others) of a header block,
/// with the blank line that ends it.
pub fn header_fields(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        let trimmed = line.strip_suffix(b"\n").unwrap_or(line);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        if trimmed.is_empty() {
            break;
        }
        if !matches!(line[0], b' ' | b'\t') {
            let name = line.split(|&b| b == b':').next().unwrap_or(b"");
            let name = String::from_utf8_lossy(name);
            let named = names.iter().any(|n| n.eq_ignore_ascii_case(name.trim()));
            keep = named != not;
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_dates() {
        let f = Flags {
            system: Flags::SEEN | Flags::DELETED,
            keywords: vec!["$Junk".into()],
        };
        assert_eq!(flags(&f), "(\\Deleted \\Seen $Junk)");
        assert_eq!(
            internal_date("2024-01-05T09:08:07Z"),
            "\"05-Jan-2024 09:08:07 +0000\""
        );
    }

    #[test]
    fn header_subsets() {
        let h = b"From: a\r\nSubject: x\r\n y\r\nTo: b\r\n\r\n";
        assert_eq!(
            header_fields(h, &["subject".into()], false),
            b"Subject: x\r\n y\r\n\r\n"
        );
        assert_eq!(
            header_fields(h, &["Subject".into()], true),
            b"From: a\r\nTo: b\r\n\r\n"
        );
    }
}
