//! SEARCH criteria as a tree, compiled to one SQL statement over the
//! mailbox's indexed columns and its FTS5 trigram index.
//!
//! Imports rusqlite only. Invariants: every leaf compiles to an expression
//! that is exactly 0 or 1 (never NULL), so NOT and OR nest with two-valued
//! logic; string matching is case-insensitive substring matching with Unicode
//! lowercase folding (`imatch`), and the FTS5 index only narrows candidates
//! for needles of three or more characters, which the trigram tokenizer
//! matches as exact substrings (same folding).

use super::types::Flags;
pub use super::types::{Criteria, Date};
use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value;

impl Date {
    fn iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// A compiled WHERE clause and its parameters.
pub struct Compiled {
    pub sql: String,
    pub params: Vec<Value>,
    /// A full-text condition must hold for every match, so the query should
    /// start from the index's candidates rather than scan the folder.
    pub text_driven: bool,
}

/// Deepest nesting accepted, so a hostile tree cannot exhaust the stack.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("search criteria nest deeper than {MAX_DEPTH}")]
pub struct TooDeep;

/// Compiles criteria over `m` (messages) and `b` (bodies).
pub fn compile(c: &Criteria) -> Result<Compiled, TooDeep> {
    let mut out = Compiled {
        sql: String::new(),
        params: Vec::new(),
        text_driven: text_driven(c),
    };
    emit(c, &mut out, 0)?;
    Ok(out)
}

/// True if a BODY/TEXT key that the trigram index answers is required.
fn text_driven(c: &Criteria) -> bool {
    match c {
        Criteria::Body(s) | Criteria::Text(s) => s.chars().count() >= 3,
        Criteria::And(items) => items.iter().any(text_driven),
        _ => false,
    }
}

fn emit(c: &Criteria, out: &mut Compiled, depth: usize) -> Result<(), TooDeep> {
    if depth > MAX_DEPTH {
        return Err(TooDeep);
    }
    let p = param;
    let sql = match c {
        Criteria::All => "1".to_string(),
        Criteria::Uid(set) => {
            if set.0.is_empty() {
                "0".to_string()
            } else if set.0.len() > INLINE_RANGES {
                // Many ranges (a sequence set over a mailbox with gaps):
                // one parameter, searched by `in_ranges`, not thousands.
                let blob = p(out, Value::Blob(encode_ranges(set)));
                format!("in_ranges(m.uid, {blob})")
            } else {
                let parts: Vec<String> = set
                    .0
                    .iter()
                    .map(|r| {
                        let a = p(out, Value::Integer(r.first.into()));
                        let b = p(out, Value::Integer(r.last.into()));
                        format!("m.uid BETWEEN {a} AND {b}")
                    })
                    .collect();
                format!("({})", parts.join(" OR "))
            }
        }
        Criteria::Flag(bit, set) => {
            format!("((m.flags & {}) {} 0)", bit, if *set { "!=" } else { "=" })
        }
        Criteria::Keyword(k, set) => {
            let a = p(out, Value::Text(k.clone()));
            format!("(has_keyword(m.keywords, {a}) = {})", i32::from(*set))
        }
        Criteria::Larger(n) => format!("(m.size > {})", p(out, Value::Integer(*n as i64))),
        Criteria::Smaller(n) => format!("(m.size < {})", p(out, Value::Integer(*n as i64))),
        Criteria::Before(d) => day(out, "m.internal_date", "<", d),
        Criteria::On(d) => day(out, "m.internal_date", "=", d),
        Criteria::Since(d) => day(out, "m.internal_date", ">=", d),
        Criteria::ArrivedSince(t) => format!(
            "(m.internal_date >= {})",
            p(out, Value::Text(crate::util::iso8601_utc(*t)))
        ),
        Criteria::ArrivedBefore(t) => format!(
            "(m.internal_date < {})",
            p(out, Value::Text(crate::util::iso8601_utc(*t)))
        ),
        Criteria::EmailId(id) => format!(
            "(m.body_id IN (SELECT id FROM bodies WHERE object_id = {}))",
            p(out, Value::Integer(*id))
        ),
        Criteria::ThreadId(id) => format!("(m.thread_id = {})", p(out, Value::Integer(*id))),
        Criteria::SavedBefore(d) => day(out, SAVED, "<", d),
        Criteria::SavedOn(d) => day(out, SAVED, "=", d),
        Criteria::SavedSince(d) => day(out, SAVED, ">=", d),
        Criteria::SentBefore(d) => {
            format!("ifnull(b.sent_date < {}, 0)", p(out, Value::Text(d.iso())))
        }
        Criteria::SentOn(d) => format!("ifnull(b.sent_date = {}, 0)", p(out, Value::Text(d.iso()))),
        Criteria::SentSince(d) => {
            format!("ifnull(b.sent_date >= {}, 0)", p(out, Value::Text(d.iso())))
        }
        Criteria::Subject(s) => format!("imatch(b.subject, {})", p(out, Value::Text(s.clone()))),
        Criteria::From(s) => format!("imatch(b.from_text, {})", p(out, Value::Text(s.clone()))),
        Criteria::To(s) => format!("imatch(b.to_text, {})", p(out, Value::Text(s.clone()))),
        Criteria::Cc(s) => format!("imatch(b.cc_text, {})", p(out, Value::Text(s.clone()))),
        Criteria::Bcc(s) => format!("imatch(b.bcc_text, {})", p(out, Value::Text(s.clone()))),
        Criteria::Header(name, v) => {
            let a = p(out, Value::Text(name.clone()));
            let b = p(out, Value::Text(v.clone()));
            format!("header_match(b.header, {a}, {b})")
        }
        Criteria::Body(s) => fts(out, "body", s),
        Criteria::Text(s) => fts(out, "headers body", s),
        Criteria::ModSeq(n) => format!("(m.modseq >= {})", p(out, Value::Integer(*n as i64))),
        Criteria::Not(inner) => {
            let mut sub = Compiled {
                sql: String::new(),
                params: std::mem::take(&mut out.params),
                text_driven: false,
            };
            emit(inner, &mut sub, depth + 1)?;
            out.params = sub.params;
            format!("(NOT {})", sub.sql)
        }
        Criteria::And(items) if items.is_empty() => "1".to_string(),
        Criteria::And(items) => join(items, " AND ", out, depth)?,
        Criteria::Or(a, b) => join(&[(**a).clone(), (**b).clone()], " OR ", out, depth)?,
    };
    out.sql.push_str(&sql);
    Ok(())
}

fn join(items: &[Criteria], op: &str, out: &mut Compiled, depth: usize) -> Result<String, TooDeep> {
    let mut parts = Vec::with_capacity(items.len());
    for item in items {
        let mut sub = Compiled {
            sql: String::new(),
            params: std::mem::take(&mut out.params),
            text_driven: false,
        };
        emit(item, &mut sub, depth + 1)?;
        out.params = sub.params;
        parts.push(sub.sql);
    }
    Ok(balanced(&parts, op))
}

/// `parts` joined by `op` as a balanced tree of parentheses: SQLite parses
/// `a AND b AND c …` into a chain as deep as it is long, and refuses one
/// deeper than 1,000; halves keep a thousand keys ten levels deep.
fn balanced(parts: &[String], op: &str) -> String {
    if parts.len() <= 8 {
        return format!("({})", parts.join(op));
    }
    let (a, b) = parts.split_at(parts.len() / 2);
    format!("({}{op}{})", balanced(a, op), balanced(b, op))
}

/// UID ranges compiled inline as `BETWEEN`s; more go in one blob.
const INLINE_RANGES: usize = 16;

/// Sorted, merged `(first, last)` pairs, 8 big-endian bytes each, for
/// `in_ranges`.
fn encode_ranges(set: &super::types::UidSet) -> Vec<u8> {
    let mut pairs: Vec<(u32, u32)> = set
        .0
        .iter()
        .map(|r| (r.first.min(r.last), r.first.max(r.last)))
        .collect();
    pairs.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(pairs.len());
    for (a, b) in pairs {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
        .iter()
        .flat_map(|(a, b)| a.to_be_bytes().into_iter().chain(b.to_be_bytes()))
        .collect()
}

/// Whether `uid` falls in one of `encode_ranges`' pairs.
fn in_ranges(uid: i64, ranges: &[u8]) -> bool {
    let pair = |i: usize| -> Option<(i64, i64)> {
        let c = ranges.get(i * 8..i * 8 + 8)?;
        let a = u32::from_be_bytes([c.first().copied()?, *c.get(1)?, *c.get(2)?, *c.get(3)?]);
        let b = u32::from_be_bytes([*c.get(4)?, *c.get(5)?, *c.get(6)?, *c.get(7)?]);
        Some((i64::from(a), i64::from(b)))
    };
    // The first pair whose end is at or past `uid`.
    let (mut lo, mut hi) = (0, ranges.len() / 8);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match pair(mid) {
            Some((_, b)) if b < uid => lo = mid + 1,
            _ => hi = mid,
        }
    }
    pair(lo).is_some_and(|(a, b)| a <= uid && uid <= b)
}

/// Adds a parameter; returns its placeholder (`?3`).
fn param(out: &mut Compiled, v: Value) -> String {
    out.params.push(v);
    format!("?{}", out.params.len())
}

/// When a message was saved in its folder (RFC 8514), for rows that lack
/// it their internal date.
const SAVED: &str = "ifnull(m.saved_at, m.internal_date)";

/// `(day of <column> <op> ?)`: a timestamp column compared by calendar day
/// (RFC 3501 §6.4.4 disregards time and zone).
fn day(out: &mut Compiled, column: &str, op: &str, d: &Date) -> String {
    format!(
        "(substr({column}, 1, 10) {op} {})",
        param(out, Value::Text(d.iso()))
    )
}

/// BODY/TEXT: the trigram index answers needles of three or more
/// characters exactly for the bodies it holds; shorter needles, and bodies
/// still waiting for the index (`fts_pending`), are checked by `text_match`
/// over the stored text.
fn fts(out: &mut Compiled, columns: &str, needle: &str) -> String {
    if needle.is_empty() {
        return "1".into();
    }
    let with_headers = i32::from(columns.contains("headers"));
    let scan = |out: &mut Compiled| {
        out.params.push(Value::Text(needle.to_string()));
        format!("text_match(b.text, ?{}, {with_headers})", out.params.len())
    };
    if needle.chars().count() >= 3 {
        let q = format!("{{{columns}}} : \"{}\"", needle.replace('"', "\"\""));
        out.params.push(Value::Text(q));
        let indexed = out.params.len();
        // Bodies not yet in the index (at most `Limits::unindexed_max`,
        // more only after a spool import) are read.
        let unindexed = scan(out);
        format!(
            "(m.body_id IN (SELECT rowid FROM fts WHERE fts MATCH ?{indexed}) \
             OR (m.body_id IN (SELECT body_id FROM fts_pending) AND {unindexed}))"
        )
    } else {
        scan(out)
    }
}

/// Matches a needle in a stored text blob (zstd of headers, NUL, body).
fn text_match(blob: &[u8], needle: &str, with_headers: bool) -> bool {
    let Ok(text) = zstd::stream::decode_all(blob) else {
        return false;
    };
    let split = text.iter().position(|&b| b == 0).unwrap_or(0);
    let (headers, body) = text.split_at(split);
    let body = body.get(1..).unwrap_or_default();
    imatch(&String::from_utf8_lossy(body), needle)
        || (with_headers && imatch(&String::from_utf8_lossy(headers), needle))
}

/// Case-insensitive substring test with Unicode lowercase folding.
pub fn imatch(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if haystack.is_ascii() && needle.is_ascii() {
        let n = needle.as_bytes();
        return haystack
            .as_bytes()
            .windows(n.len())
            .any(|w| w.eq_ignore_ascii_case(n));
    }
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// True if the space-separated keyword list holds `k` (case-insensitive).
pub fn has_keyword(list: &str, k: &str) -> bool {
    list.split(' ')
        .any(|w| !w.is_empty() && w.eq_ignore_ascii_case(k))
}

/// HEADER name value over a raw header block.
fn header_match(raw: &[u8], name: &str, value: &str) -> bool {
    let Ok((headers, _)) = mailparse::parse_headers(raw) else {
        return false;
    };
    headers
        .iter()
        .filter(|h| h.get_key_ref().eq_ignore_ascii_case(name))
        .any(|h| imatch(&h.get_value(), value))
}

/// Registers the SQL functions the compiled criteria call.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("imatch", 2, flags, |ctx| {
        let h: Option<String> = ctx.get(0)?;
        let n: String = ctx.get(1)?;
        Ok(i32::from(imatch(h.as_deref().unwrap_or(""), &n)))
    })?;
    conn.create_scalar_function("text_match", 3, flags, |ctx| {
        let blob: Vec<u8> = ctx.get(0)?;
        let needle: String = ctx.get(1)?;
        let with_headers: bool = ctx.get(2)?;
        Ok(i32::from(text_match(&blob, &needle, with_headers)))
    })?;
    conn.create_scalar_function("has_keyword", 2, flags, |ctx| {
        let list: String = ctx.get(0)?;
        let k: String = ctx.get(1)?;
        Ok(i32::from(has_keyword(&list, &k)))
    })?;
    conn.create_scalar_function("in_ranges", 2, flags, |ctx| {
        let uid: i64 = ctx.get(0)?;
        let ranges = ctx
            .get_raw(1)
            .as_blob()
            .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?;
        Ok(i32::from(in_ranges(uid, ranges)))
    })?;
    conn.create_scalar_function("header_match", 3, flags, |ctx| {
        let raw: Vec<u8> = ctx.get(0)?;
        let name: String = ctx.get(1)?;
        let value: String = ctx.get(2)?;
        Ok(i32::from(header_match(&raw, &name, &value)))
    })?;
    Ok(())
}

/// Flag names for the protocol layer (RFC 3501 §2.3.2).
pub fn system_flag(name: &str) -> Option<u8> {
    match name.to_ascii_lowercase().as_str() {
        "\\seen" => Some(Flags::SEEN),
        "\\answered" => Some(Flags::ANSWERED),
        "\\flagged" => Some(Flags::FLAGGED),
        "\\deleted" => Some(Flags::DELETED),
        "\\draft" => Some(Flags::DRAFT),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imatch_is_case_insensitive_substring() {
        assert!(imatch("Hello World", "lo wo"));
        assert!(imatch("GRÜSSE aus Köln", "grüsse"));
        assert!(!imatch("abc", "abcd"));
        assert!(imatch("anything", ""));
    }

    #[test]
    fn many_ranges_go_in_one_blob_and_match_exactly() {
        use crate::store::types::{UidRange, UidSet};
        let set = UidSet(
            [(40, 42), (1, 3), (2, 5), (10, 10), (7, 8), (100, 200)]
                .iter()
                .map(|&(first, last)| UidRange { first, last })
                .collect(),
        );
        let blob = encode_ranges(&set);
        assert_eq!(blob.len(), 5 * 8, "1:5 and 7:8 merge");
        for uid in 0..250 {
            let want = set.0.iter().any(|r| r.first <= uid && uid <= r.last);
            assert_eq!(in_ranges(i64::from(uid), &blob), want, "{uid}");
        }
        assert!(!in_ranges(1, &[]));
        let many = UidSet(
            (1..100)
                .map(|i| UidRange {
                    first: i * 2,
                    last: i * 2,
                })
                .collect(),
        );
        let out = compile(&Criteria::Uid(many)).unwrap();
        assert_eq!(out.sql, "in_ranges(m.uid, ?1)");
        assert_eq!(out.params.len(), 1);
    }

    #[test]
    fn a_thousand_keys_nest_a_few_levels_deep() {
        let c = Criteria::And(
            (0..1000)
                .map(|i| Criteria::Subject(format!("s{i}")))
                .collect(),
        );
        let out = compile(&c).unwrap();
        let mut depth: usize = 0;
        let mut deepest = 0;
        for ch in out.sql.chars() {
            match ch {
                '(' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        assert!(deepest <= 16, "{deepest}");
        assert_eq!(out.params.len(), 1000);
    }

    #[test]
    fn too_deep_is_refused() {
        let mut c = Criteria::All;
        for _ in 0..100 {
            c = Criteria::Not(Box::new(c));
        }
        assert_eq!(compile(&c).err(), Some(TooDeep));
    }

    #[test]
    fn parameters_number_in_order() {
        let c = Criteria::Or(
            Box::new(Criteria::Subject("a".into())),
            Box::new(Criteria::Not(Box::new(Criteria::From("b".into())))),
        );
        let out = compile(&c).unwrap();
        assert_eq!(
            out.sql,
            "(imatch(b.subject, ?1) OR (NOT imatch(b.from_text, ?2)))"
        );
        assert_eq!(out.params.len(), 2);
    }
}
