//! A bounded MIME structure scanner: part tree with byte offsets, the header
//! fields SEARCH and SORT need, the text that full-text search indexes, and
//! the ranges of attachment bodies that are stored once per SHA-256.
//!
//! Imports only `util` and mailparse (used for single header blocks and leaf
//! bodies, never for whole trees, because its recursion has no bounds).
//! Invariants: recursion depth is at most `Limits::max_depth` (deeper
//! multiparts are kept whole as one opaque part); a message with more than
//! `Limits::max_parts` parts is refused; no input panics.

#![deny(clippy::indexing_slicing)]

use serde::{Deserialize, Serialize};

use crate::util::date_only;

/// Bounds on the structure sealmail parses.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_depth: usize,
    pub max_parts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 32,
            max_parts: 1000,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MimeError {
    #[error("message has more than {0} MIME parts")]
    TooManyParts(usize),
}

/// Attachment bodies at least this long are stored once per SHA-256.
pub const ATTACHMENT_MIN: usize = 2048;

/// One MIME part: offsets into the whole message and the fields that an IMAP
/// BODYSTRUCTURE needs.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Part {
    pub header_start: u64,
    pub body_start: u64,
    pub end: u64,
    /// Lowercase type and subtype, `text`/`plain` by default.
    pub mime_type: String,
    pub subtype: String,
    pub params: Vec<(String, String)>,
    pub id: Option<String>,
    pub description: Option<String>,
    /// Lowercase Content-Transfer-Encoding, `7bit` by default.
    pub encoding: String,
    pub disposition: Option<(String, Vec<(String, String)>)>,
    pub language: Option<String>,
    pub location: Option<String>,
    pub md5: Option<String>,
    /// Body lines, for text/* and message/rfc822 parts.
    pub lines: u64,
    /// Subparts of a multipart, or the one encapsulated message.
    pub children: Vec<Part>,
    /// The envelope of an encapsulated message/rfc822.
    pub envelope: Option<Box<Envelope>>,
}

/// IMAP ENVELOPE data (RFC 3501 §7.4.2): strings as the header has them.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    pub date: Option<String>,
    pub subject: Option<String>,
    pub from: Vec<Address>,
    pub sender: Vec<Address>,
    pub reply_to: Vec<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub bcc: Vec<Address>,
    pub in_reply_to: Option<String>,
    pub message_id: Option<String>,
}

pub use super::address::Address;

/// Header fields that SEARCH and SORT read, decoded.
#[derive(Clone, Debug, Default)]
pub struct Fields {
    pub subject: String,
    pub from: String,
    pub to: String,
    pub cc: String,
    pub bcc: String,
    /// `YYYY-MM-DD` of the Date header in its own zone.
    pub sent_date: Option<String>,
    pub sent_ts: Option<i64>,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// RFC 5256 §2.1 base subject, lowercased.
    pub base_subject: String,
    pub sort_from: String,
    pub sort_to: String,
    pub sort_cc: String,
    /// SORT=DISPLAY (RFC 5957): the first address's decoded display name,
    /// else its `mailbox@host`, lowercased.
    pub display_from: String,
    pub display_to: String,
}

/// Everything the store keeps from one parse.
#[derive(Clone, Debug)]
pub struct Parsed {
    pub root: Part,
    pub envelope: Envelope,
    pub fields: Fields,
    /// Decoded header lines, indexed for TEXT.
    pub header_text: String,
    /// Decoded text of text/* parts, indexed for BODY and TEXT.
    pub body_text: String,
    /// Byte ranges of attachment bodies, in order, not overlapping.
    pub attachments: Vec<(usize, usize)>,
}

struct Ctx<'a> {
    buf: &'a [u8],
    limits: Limits,
    parts: usize,
    body_text: String,
    attachments: Vec<(usize, usize)>,
}

/// Parses a whole message.
pub fn parse(buf: &[u8], limits: Limits) -> Result<Parsed, MimeError> {
    let mut ctx = Ctx {
        buf,
        limits,
        parts: 0,
        body_text: String::new(),
        attachments: Vec::new(),
    };
    let root = ctx.part(0, buf.len(), 0, false)?;
    let (headers, _) = split_headers(buf, 0, buf.len());
    let envelope = envelope_of(&headers);
    let fields = fields_of(&headers, &envelope);
    let mut header_text = String::new();
    for h in &headers {
        header_text.push_str(&h.get_key());
        header_text.push_str(": ");
        header_text.push_str(&h.get_value());
        header_text.push('\n');
    }
    Ok(Parsed {
        root,
        envelope,
        fields,
        header_text,
        body_text: ctx.body_text,
        attachments: ctx.attachments,
    })
}

/// Parses a header block at `start`; returns the headers and where the body
/// begins. A block mailparse cannot read counts as no headers.
fn split_headers(buf: &[u8], start: usize, end: usize) -> (Vec<mailparse::MailHeader<'_>>, usize) {
    let slice = buf.get(start..end).unwrap_or_default();
    match mailparse::parse_headers(slice) {
        Ok((h, off)) => (h, start + off.min(slice.len())),
        Err(_) => (Vec::new(), start),
    }
}

fn header<'h>(
    headers: &'h [mailparse::MailHeader<'_>],
    name: &str,
) -> Option<&'h mailparse::MailHeader<'h>> {
    headers
        .iter()
        .find(|h| h.get_key_ref().eq_ignore_ascii_case(name))
}

fn value(headers: &[mailparse::MailHeader<'_>], name: &str) -> Option<String> {
    header(headers, name).map(|h| h.get_value().trim().to_string())
}

/// The header value with folding removed and encoded words kept.
fn raw_value(headers: &[mailparse::MailHeader<'_>], name: &str) -> Option<String> {
    header(headers, name).map(|h| {
        let raw = String::from_utf8_lossy(h.get_value_raw());
        raw.replace("\r\n", "").replace('\n', "").trim().to_string()
    })
}

impl Ctx<'_> {
    fn part(
        &mut self,
        start: usize,
        end: usize,
        depth: usize,
        digest_child: bool,
    ) -> Result<Part, MimeError> {
        self.parts += 1;
        if self.parts > self.limits.max_parts {
            return Err(MimeError::TooManyParts(self.limits.max_parts));
        }
        let (headers, body_start) = split_headers(self.buf, start, end);
        let mut p = describe(&headers, digest_child);
        p.header_start = start as u64;
        p.body_start = body_start as u64;
        p.end = end as u64;
        let body = self.buf.get(body_start..end).unwrap_or_default();
        let nested = depth < self.limits.max_depth;
        if p.mime_type == "multipart" && nested {
            let boundary = p
                .params
                .iter()
                .find(|(k, _)| k == "boundary")
                .map(|(_, v)| v.clone());
            if let Some(b) = boundary.filter(|b| !b.is_empty()) {
                let digest = p.subtype == "digest";
                for (s, e) in split_multipart(self.buf, body_start, end, b.as_bytes()) {
                    let child = self.part(s, e, depth + 1, digest)?;
                    p.children.push(child);
                }
            }
        } else if p.mime_type == "message" && p.subtype == "rfc822" && nested {
            p.lines = count_lines(body);
            let (inner_headers, _) = split_headers(self.buf, body_start, end);
            p.envelope = Some(Box::new(envelope_of(&inner_headers)));
            let child = self.part(body_start, end, depth + 1, false)?;
            p.children.push(child);
        } else if p.mime_type == "text" {
            p.lines = count_lines(body);
            self.index_text(&p, start, end);
        } else if p.mime_type == "message" && is_report_text(&p.subtype) {
            // Delivery and disposition reports are plain text fields that
            // a TEXT search should find (RFC 3464, RFC 8098).
            self.index_text(&p, start, end);
        } else if p.mime_type != "multipart"
            && p.mime_type != "message"
            && body.len() >= ATTACHMENT_MIN
        {
            self.attachments.push((body_start, end));
        }
        Ok(p)
    }

    fn index_text(&mut self, p: &Part, start: usize, end: usize) {
        // A leaf text part: mailparse does not recurse into it.
        let Ok(mail) = mailparse::parse_mail(self.buf.get(start..end).unwrap_or_default()) else {
            return;
        };
        let Ok(text) = mail.get_body() else { return };
        if !self.body_text.is_empty() {
            self.body_text.push('\n');
        }
        if p.subtype == "html" {
            self.body_text.push_str(&html_to_text(&text));
        } else {
            self.body_text.push_str(&text);
        }
    }
}

/// The `message/*` report parts that are text meant to be read.
fn is_report_text(subtype: &str) -> bool {
    matches!(
        subtype,
        "delivery-status" | "global-delivery-status" | "disposition-notification"
    )
}

/// A leaf part's body, transfer-decoded: as text (charset-converted) when
/// the part is text/*, else as bytes. `None` if it cannot be read.
pub fn decode_leaf(buf: &[u8], part: &Part) -> Option<Leaf> {
    let start = usize::try_from(part.header_start).ok()?;
    let end = usize::try_from(part.end).ok()?;
    let mail = mailparse::parse_mail(buf.get(start..end)?).ok()?;
    if part.mime_type == "text" {
        mail.get_body().ok().map(Leaf::Text)
    } else {
        mail.get_body_raw().ok().map(Leaf::Bytes)
    }
}

/// What [`decode_leaf`] returns.
pub enum Leaf {
    Text(String),
    Bytes(Vec<u8>),
}

fn describe(headers: &[mailparse::MailHeader<'_>], digest_child: bool) -> Part {
    let mut p = Part::default();
    let ct = value(headers, "Content-Type");
    let (mime_type, subtype, params) = match ct {
        Some(v) if v.contains('/') => {
            let parsed = mailparse::parse_content_type(&v);
            let (t, s) = parsed.mimetype.split_once('/').unwrap_or(("text", "plain"));
            let mut params: Vec<(String, String)> = parsed.params.into_iter().collect();
            if t == "text" && !params.iter().any(|(k, _)| k == "charset") {
                params.push(("charset".into(), parsed.charset));
            }
            (t.trim().to_lowercase(), s.trim().to_lowercase(), params)
        }
        _ if digest_child => ("message".into(), "rfc822".into(), Vec::new()),
        _ => (
            "text".into(),
            "plain".into(),
            vec![("charset".into(), "us-ascii".into())],
        ),
    };
    p.mime_type = mime_type;
    p.subtype = subtype;
    p.params = params;
    p.encoding = value(headers, "Content-Transfer-Encoding")
        .map(|v| v.to_lowercase())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "7bit".into());
    p.id = raw_value(headers, "Content-ID");
    p.description = raw_value(headers, "Content-Description");
    p.language = raw_value(headers, "Content-Language");
    p.location = raw_value(headers, "Content-Location");
    p.md5 = raw_value(headers, "Content-MD5");
    if let Some(v) = value(headers, "Content-Disposition") {
        let kind = v.split(';').next().unwrap_or("").trim().to_lowercase();
        if !kind.is_empty() {
            let parsed = mailparse::parse_content_disposition(&v);
            p.disposition = Some((kind, parsed.params.into_iter().collect()));
        }
    }
    p
}

/// Splits a multipart body into part ranges (RFC 2046 §5.1.1). The line break
/// before a delimiter belongs to the delimiter.
fn split_multipart(buf: &[u8], start: usize, end: usize, boundary: &[u8]) -> Vec<(usize, usize)> {
    let mut parts = Vec::new();
    let mut current: Option<usize> = None;
    let mut ls = start;
    while ls < end {
        let line_end = buf
            .get(ls..end)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
            .map_or(end, |i| ls + i + 1);
        let line = buf.get(ls..line_end).unwrap_or_default();
        if let Some(close) = delimiter(line, boundary) {
            if let Some(s) = current {
                let before = |e: usize| e.checked_sub(1).and_then(|i| buf.get(i)).copied();
                let mut e = ls;
                if e > s && before(e) == Some(b'\n') {
                    e -= 1;
                    if e > s && before(e) == Some(b'\r') {
                        e -= 1;
                    }
                }
                parts.push((s, e.max(s)));
            }
            if close {
                return parts;
            }
            current = Some(line_end);
        }
        ls = line_end;
    }
    if let Some(s) = current {
        parts.push((s, end));
    }
    parts
}

/// `Some(is_close)` if the line is `--boundary` or `--boundary--` followed by
/// optional whitespace.
fn delimiter(line: &[u8], boundary: &[u8]) -> Option<bool> {
    let rest = line.strip_prefix(b"--")?.strip_prefix(boundary)?;
    let (close, rest) = match rest.strip_prefix(b"--") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    rest.iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .then_some(close)
}

fn count_lines(body: &[u8]) -> u64 {
    let n = body.iter().filter(|&&b| b == b'\n').count() as u64;
    if body.last().is_some_and(|&b| b != b'\n') {
        n + 1
    } else {
        n
    }
}

/// A header's addresses as ENVELOPE gives them: names as the header has
/// them (encoded words kept), comments dropped or used as the name.
fn addresses(headers: &[mailparse::MailHeader<'_>], name: &str) -> Vec<Address> {
    raw_value(headers, name)
        .map(|v| super::address::parse_list(&v))
        .unwrap_or_default()
}

/// Text with RFC 2047 encoded words decoded.
fn decode_words(s: &str) -> String {
    if !s.contains("=?") {
        return s.to_string();
    }
    match mailparse::parse_header(format!("X: {s}").as_bytes()) {
        Ok((h, _)) => h.get_value(),
        Err(_) => s.to_string(),
    }
}

/// What SEARCH FROM/TO/CC/BCC match: the decoded header, then each address
/// as `Name <mailbox@host>` with comments and folding removed.
fn address_text(headers: &[mailparse::MailHeader<'_>], name: &str, list: &[Address]) -> String {
    let mut text = value(headers, name).unwrap_or_default();
    let canonical: Vec<String> = list
        .iter()
        .map(|a| {
            let mut a = a.clone();
            a.name = a.name.map(|n| decode_words(&n));
            a.canonical()
        })
        .filter(|c| !c.is_empty())
        .collect();
    if !canonical.is_empty() {
        text.push('\n');
        text.push_str(&canonical.join(", "));
    }
    text
}

fn envelope_of(headers: &[mailparse::MailHeader<'_>]) -> Envelope {
    let from = addresses(headers, "From");
    let mut sender = addresses(headers, "Sender");
    if sender.is_empty() {
        sender = from.clone();
    }
    let mut reply_to = addresses(headers, "Reply-To");
    if reply_to.is_empty() {
        reply_to = from.clone();
    }
    Envelope {
        date: raw_value(headers, "Date"),
        subject: raw_value(headers, "Subject"),
        from,
        sender,
        reply_to,
        to: addresses(headers, "To"),
        cc: addresses(headers, "Cc"),
        bcc: addresses(headers, "Bcc"),
        in_reply_to: raw_value(headers, "In-Reply-To"),
        message_id: raw_value(headers, "Message-ID"),
    }
}

/// SORT=DISPLAY's key for an address header (RFC 5957 §3): the first
/// mailbox's display name, decoded, else its address; lowercased.
fn display_name(list: &[Address]) -> String {
    let Some(a) = list.iter().find(|a| a.host.is_some()) else {
        return String::new();
    };
    match a.name.as_deref().filter(|n| !n.trim().is_empty()) {
        Some(n) => decode_words(n).to_lowercase(),
        None => a.canonical().to_lowercase(),
    }
}

/// SORT's key for an address header: the first mailbox's local part,
/// lowercased (group names skipped).
fn first_mailbox(list: &[Address]) -> String {
    list.iter()
        .find_map(|a| a.host.as_ref().and(a.mailbox.as_ref()))
        .map(|m| m.to_lowercase())
        .unwrap_or_default()
}

fn fields_of(headers: &[mailparse::MailHeader<'_>], envelope: &Envelope) -> Fields {
    let subject = value(headers, "Subject").unwrap_or_default();
    let (sent_ts, sent_date) = match value(headers, "Date") {
        Some(d) => match mailparse::dateparse(&d) {
            Ok(ts) => (Some(ts), Some(date_only(ts, zone_offset(&d)))),
            Err(_) => (None, None),
        },
        None => (None, None),
    };
    let references = value(headers, "References")
        .map(|r| r.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    Fields {
        base_subject: base_subject(&subject),
        subject,
        from: address_text(headers, "From", &envelope.from),
        to: address_text(headers, "To", &envelope.to),
        cc: address_text(headers, "Cc", &envelope.cc),
        bcc: address_text(headers, "Bcc", &envelope.bcc),
        sent_date,
        sent_ts,
        message_id: value(headers, "Message-ID"),
        in_reply_to: value(headers, "In-Reply-To"),
        references,
        sort_from: first_mailbox(&envelope.from),
        sort_to: first_mailbox(&envelope.to),
        sort_cc: first_mailbox(&envelope.cc),
        display_from: display_name(&envelope.from),
        display_to: display_name(&envelope.to),
    }
}

/// Seconds east of UTC of a Date header's trailing `+hhmm` (0 if absent).
fn zone_offset(date: &str) -> i64 {
    let Some(tok) = date.split_whitespace().find(|t| {
        (t.starts_with('+') || t.starts_with('-'))
            && t.len() == 5
            && t.bytes().skip(1).all(|b| b.is_ascii_digit())
    }) else {
        return 0;
    };
    let n: i64 = tok.get(1..).and_then(|d| d.parse().ok()).unwrap_or(0);
    let secs = (n / 100) * 3600 + (n % 100) * 60;
    if tok.starts_with('-') { -secs } else { secs }
}

/// RFC 5256 §2.2 step 5: the subject marks a reply or forward (a leading
/// `Re:`/`Fw:`/`Fwd:`, possibly after `[tags]`, a `[Fwd: …]` wrapper or a
/// trailing `(fwd)`).
pub fn is_reply_or_forward(subject: &str) -> bool {
    let s = subject.trim().to_lowercase();
    if s.ends_with("(fwd)") || s.starts_with("[fwd:") {
        return true;
    }
    let mut t = s.as_str();
    loop {
        let stripped = strip_blob(t);
        if stripped.len() == t.len() {
            break;
        }
        t = stripped;
    }
    ["re", "fwd", "fw"].iter().any(|p| {
        t.strip_prefix(p)
            .map(|r| strip_blob(r.trim_start()))
            .is_some_and(|r| r.starts_with(':'))
    })
}

/// RFC 5256 §2.1: the subject without reply/forward markers, lowercased.
pub fn base_subject(subject: &str) -> String {
    let mut s = subject
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    loop {
        let before = s.clone();
        while let Some(rest) = s.strip_suffix("(fwd)") {
            s = rest.trim_end().to_string();
        }
        loop {
            let t = s.trim_start();
            let stripped = strip_blob(t);
            let rest = stripped
                .strip_prefix("re")
                .or_else(|| stripped.strip_prefix("fwd"))
                .or_else(|| stripped.strip_prefix("fw"))
                .map(|r| strip_blob(r.trim_start()))
                .and_then(|r| r.strip_prefix(':'));
            match rest {
                Some(r) => s = r.trim_start().to_string(),
                None => break,
            }
        }
        let t = s.trim_start().to_string();
        let after_blob = strip_blob(&t).trim_start();
        if after_blob.len() < t.len() && !after_blob.is_empty() {
            s = after_blob.to_string();
        }
        if let Some(inner) = s.strip_prefix("[fwd:").and_then(|r| r.strip_suffix(']')) {
            s = inner.trim().to_string();
        }
        if s == before {
            return s.trim().to_string();
        }
    }
}

fn strip_blob(s: &str) -> &str {
    if let Some(rest) = s.strip_prefix('[')
        && let Some((inner, after)) = rest.split_once(']')
        && !inner.contains('[')
    {
        return after.trim_start();
    }
    s
}

/// Text of an HTML body for indexing: tags dropped, common entities decoded,
/// script and style content skipped.
fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some((text, from_lt)) = rest.split_once('<') {
        out.push_str(text);
        let (tag, after) = from_lt.split_once('>').unwrap_or((from_lt, ""));
        let tag = format!("<{}", tag.to_ascii_lowercase());
        rest = after;
        for skip in ["script", "style"] {
            if tag.starts_with(&format!("<{skip}")) {
                let close = format!("</{skip}");
                let lower = rest.to_ascii_lowercase();
                rest = lower.find(&close).and_then(|i| rest.get(i..)).unwrap_or("");
            }
        }
        let name: String = tag
            .trim_start_matches(['<', '/'])
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        const BLOCK: &[&str] = &[
            "p",
            "br",
            "div",
            "tr",
            "td",
            "th",
            "li",
            "ul",
            "ol",
            "table",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "blockquote",
            "hr",
            "title",
            "pre",
        ];
        if BLOCK.contains(&name.as_str()) {
            out.push('\n');
        }
    }
    out.push_str(rest);
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTI: &[u8] = b"From: Ann <ann@example.org>\r\nTo: bob@example.net\r\nSubject: Re: [list] Hello\r\nDate: Tue, 14 Nov 2023 23:13:20 +0100\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfirst part\r\n--b1\r\nContent-Type: text/html\r\n\r\n<p>second &amp; <b>bold</b></p>\r\n--b1--\r\nepilogue\r\n";

    #[test]
    fn delivery_reports_are_searchable_text() {
        let m = b"Subject: Undelivered\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\nsorry\r\n--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mail.example.org\r\n\r\nFinal-Recipient: rfc822; carol@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\nX-Failure-Category: unknown-user\r\n--r--\r\n";
        let p = parse(m, Limits::default()).unwrap();
        assert!(p.body_text.contains("sorry"));
        assert!(p.body_text.contains("X-Failure-Category: unknown-user"));
        assert!(p.body_text.contains("carol@remote.test"));
    }

    #[test]
    fn multipart_offsets_and_fields() {
        let p = parse(MULTI, Limits::default()).unwrap();
        assert_eq!(p.root.mime_type, "multipart");
        assert_eq!(p.root.children.len(), 2);
        let first = &p.root.children[0];
        assert_eq!(
            &MULTI[first.body_start as usize..first.end as usize],
            b"first part"
        );
        assert_eq!(first.lines, 1);
        assert!(p.body_text.contains("first part"));
        assert!(p.body_text.contains("second & bold"));
        assert_eq!(p.fields.base_subject, "hello");
        assert_eq!(p.fields.sent_date.as_deref(), Some("2023-11-14"));
        assert_eq!(p.fields.sort_from, "ann");
        assert_eq!(p.envelope.from[0].host.as_deref(), Some("example.org"));
        assert_eq!(p.envelope.sender, p.envelope.from);
    }

    #[test]
    fn deep_nesting_is_bounded_and_kept() {
        let mut msg = Vec::new();
        for i in 0..10_000 {
            msg.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n")
                    .as_bytes(),
            );
        }
        msg.extend_from_slice(b"\r\ninner\r\n");
        let p = parse(&msg, Limits::default()).unwrap();
        let mut depth = 0;
        let mut node = &p.root;
        while let Some(c) = node.children.first() {
            depth += 1;
            node = c;
        }
        assert_eq!(depth, Limits::default().max_depth);
    }

    #[test]
    fn too_many_parts_is_refused() {
        let mut msg = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n".to_vec();
        for _ in 0..100_000 {
            msg.extend_from_slice(b"--x\r\n\r\na\r\n");
        }
        assert_eq!(
            parse(&msg, Limits::default()).unwrap_err(),
            MimeError::TooManyParts(1000)
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for len in 0..400 {
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                buf.push(
                    b"\r\n:-=?;\"boundary multipart/mixed Content-Type base64 \xff\x00"
                        [(rng % 52) as usize],
                );
            }
            let _ = parse(&buf, Limits::default());
        }
    }

    #[test]
    fn delimiter_needs_whole_boundary() {
        assert_eq!(delimiter(b"--abc\r\n", b"abc"), Some(false));
        assert_eq!(delimiter(b"--abc-- \r\n", b"abc"), Some(true));
        assert_eq!(delimiter(b"--abcd\r\n", b"abc"), None);
    }

    #[test]
    fn replies_and_forwards() {
        for s in [
            "Re: x",
            "[list] RE: x",
            "Fwd: x",
            "fw[2]: x",
            "x (fwd)",
            "[Fwd: x]",
        ] {
            assert!(is_reply_or_forward(s), "{s}");
        }
        for s in ["x", "[list] x", "Reply needed", "Ref: x", ""] {
            assert!(!is_reply_or_forward(s), "{s}");
        }
    }

    #[test]
    fn base_subjects() {
        assert_eq!(base_subject("Re: Fwd: [x] Lunch (fwd)"), "lunch");
        assert_eq!(base_subject("RE:   re: hello   world"), "hello world");
        assert_eq!(base_subject("[fwd: Report]"), "report");
    }
}
