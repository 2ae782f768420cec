//! FETCH: message metadata, envelope, structure and byte sections.
//!
//! Imports `store::{mime, types}` and the sibling `bodies`. Invariants: a
//! message's bytes are loaded only when a section needs more than the
//! top-level header; section paths follow RFC 3501 §6.4.5 numbering.

use rusqlite::params;

use super::{Mailbox, bodies, messages::split_keywords};
use crate::store::StoreError;
use crate::store::mime::{Envelope, Part};
use crate::store::types::{
    FetchWhat, FetchedMessage, Flags, MessageIds, MessageMeta, Section, SectionKind, UidSet,
};

impl Mailbox {
    pub fn fetch(
        &mut self,
        folder: &str,
        uids: &UidSet,
        what: &FetchWhat,
    ) -> Result<Vec<FetchedMessage>, StoreError> {
        // A savepoint: on a reader it nests in the read transaction.
        let tx = self.conn.savepoint()?;
        let f = Mailbox::folder(&tx, folder)?;
        let header_only = what
            .sections
            .iter()
            .all(|s| s.path.is_empty() && s.kind == SectionKind::Header);
        let needs_structure = what.structure || !header_only;
        let mut out = Vec::new();
        for range in &uids.0 {
            // Metadata alone (POP3 STAT, flag syncs) never touches bodies.
            let sql = match (needs_structure || what.envelope, what.ids) {
                (true, false) => {
                    "SELECT m.uid, m.modseq, m.flags, m.keywords, m.internal_date, m.size, m.body_id, b.structure, b.envelope
                     FROM messages m JOIN bodies b ON b.id = m.body_id
                     WHERE m.folder_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid"
                }
                (true, true) => {
                    "SELECT m.uid, m.modseq, m.flags, m.keywords, m.internal_date, m.size, m.body_id, b.structure, b.envelope,
                            b.object_id, m.thread_id, ifnull(m.saved_at, m.internal_date)
                     FROM messages m JOIN bodies b ON b.id = m.body_id
                     WHERE m.folder_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid"
                }
                (false, false) => {
                    "SELECT m.uid, m.modseq, m.flags, m.keywords, m.internal_date, m.size, m.body_id, '', ''
                     FROM messages m WHERE m.folder_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid"
                }
                (false, true) => {
                    "SELECT m.uid, m.modseq, m.flags, m.keywords, m.internal_date, m.size, m.body_id, '', '',
                            b.object_id, m.thread_id, ifnull(m.saved_at, m.internal_date)
                     FROM messages m JOIN bodies b ON b.id = m.body_id
                     WHERE m.folder_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid"
                }
            };
            let mut stmt = tx.prepare_cached(sql)?;
            let rows = stmt.query_map(params![f.id, range.first, range.last], |r| {
                Ok((
                    MessageMeta {
                        uid: r.get(0)?,
                        modseq: r.get::<_, i64>(1)? as u64,
                        flags: Flags {
                            system: r.get(2)?,
                            keywords: split_keywords(&r.get::<_, String>(3)?),
                        },
                        internal_date: r.get(4)?,
                        size: r.get::<_, i64>(5)? as u64,
                    },
                    r.get::<_, i64>(6)?,
                    if needs_structure {
                        r.get::<_, String>(7)?
                    } else {
                        String::new()
                    },
                    if what.envelope {
                        r.get::<_, String>(8)?
                    } else {
                        String::new()
                    },
                    if what.ids {
                        Some(MessageIds {
                            email_id: r.get::<_, Option<i64>>(9)?.unwrap_or_default(),
                            thread_id: r.get(10)?,
                            saved_at: r.get(11)?,
                        })
                    } else {
                        None
                    },
                ))
            })?;
            for row in rows {
                let (meta, body_id, structure, envelope, ids) = row?;
                let structure: Option<Part> = if needs_structure {
                    Some(from_json(&structure)?)
                } else {
                    None
                };
                let envelope: Option<Envelope> = if what.envelope {
                    Some(from_json(&envelope)?)
                } else {
                    None
                };
                let mut undecodable = Vec::new();
                let sections = if what.sections.is_empty() {
                    Vec::new()
                } else if header_only {
                    let h = bodies::load_header(&tx, body_id)?;
                    what.sections
                        .iter()
                        .map(|s| (s.clone(), h.clone()))
                        .collect()
                } else {
                    let raw = bodies::load_message(&tx, body_id)?;
                    let root = structure.as_ref();
                    what.sections
                        .iter()
                        .map(|s| {
                            let bytes = match root {
                                Some(p) => section(&raw, p, s).unwrap_or_else(|| {
                                    undecodable.push(s.clone());
                                    Vec::new()
                                }),
                                None => raw.clone(),
                            };
                            (s.clone(), bytes)
                        })
                        .collect()
                };
                let preview = if what.preview {
                    Some(bodies::load_preview(&tx, body_id)?)
                } else {
                    None
                };
                out.push(FetchedMessage {
                    meta,
                    envelope,
                    structure: if what.structure { structure } else { None },
                    sections,
                    undecodable,
                    preview,
                    ids,
                });
            }
        }
        tx.commit()?;
        Ok(out)
    }
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s)
        .map_err(|e| StoreError::Internal(format!("damaged stored structure: {e}")))
}

fn slice(raw: &[u8], from: u64, to: u64) -> Vec<u8> {
    raw.get(from as usize..to as usize)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// The n-th (1-based) subpart in IMAP numbering.
fn child(p: &Part, n: u32) -> Option<&Part> {
    let i = (n as usize).checked_sub(1)?;
    if p.mime_type == "multipart" {
        return p.children.get(i);
    }
    if p.mime_type == "message" && p.subtype == "rfc822" {
        let inner = p.children.first()?;
        return if inner.mime_type == "multipart" {
            inner.children.get(i)
        } else if i == 0 {
            Some(inner)
        } else {
            None
        };
    }
    None
}

/// The part a non-empty section path names (RFC 3501 §6.4.5 numbering).
fn find_part<'a>(root: &'a Part, path: &[u32]) -> Option<&'a Part> {
    let (&first, rest) = path.split_first()?;
    // The top level acts as an encapsulated message: part 1 of a
    // single-part message is its body.
    let mut part = if root.mime_type == "multipart" {
        root.children.get((first as usize).wrapping_sub(1))
    } else if first == 1 {
        Some(root)
    } else {
        None
    };
    for &n in rest {
        part = part.and_then(|p| child(p, n));
    }
    part
}

/// Resolves a section against the part tree; empty for a missing part.
/// `None` only for a BINARY section whose transfer encoding cannot be
/// undone.
pub fn section(raw: &[u8], root: &Part, s: &Section) -> Option<Vec<u8>> {
    if s.path.is_empty() {
        return Some(match s.kind {
            SectionKind::Whole | SectionKind::Binary => raw.to_vec(),
            SectionKind::Header => slice(raw, root.header_start, root.body_start),
            SectionKind::Text => slice(raw, root.body_start, root.end),
            SectionKind::Mime => Vec::new(),
        });
    }
    let Some(p) = find_part(root, &s.path) else {
        return Some(Vec::new());
    };
    let encapsulated = || {
        p.children
            .first()
            .filter(|_| p.mime_type == "message" && p.subtype == "rfc822")
    };
    Some(match s.kind {
        SectionKind::Whole => slice(raw, p.body_start, p.end),
        SectionKind::Mime => slice(raw, p.header_start, p.body_start),
        SectionKind::Header => {
            encapsulated().map_or_else(Vec::new, |m| slice(raw, m.header_start, m.body_start))
        }
        SectionKind::Text => {
            encapsulated().map_or_else(Vec::new, |m| slice(raw, m.body_start, m.end))
        }
        SectionKind::Binary => return transfer_decode(raw, p),
    })
}

/// A part's body without its Content-Transfer-Encoding (RFC 3516 §4.2).
/// Multiparts and identity encodings come back as they are.
fn transfer_decode(raw: &[u8], p: &Part) -> Option<Vec<u8>> {
    let body = slice(raw, p.body_start, p.end);
    if p.mime_type == "multipart" || p.mime_type == "message" {
        return Some(body);
    }
    match p.encoding.as_str() {
        "7bit" | "8bit" | "binary" => Some(body),
        "base64" | "quoted-printable" => {
            let whole = slice(raw, p.header_start, p.end);
            mailparse::parse_mail(&whole).ok()?.get_body_raw().ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::mime::{Limits, parse};

    const MSG: &[u8] = b"Subject: outer\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--b--\r\n";

    fn get_in(msg: &[u8], path: &[u32], kind: SectionKind) -> Option<Vec<u8>> {
        let p = parse(msg, Limits::default()).unwrap();
        section(
            msg,
            &p.root,
            &Section {
                path: path.to_vec(),
                kind,
            },
        )
    }

    fn get(path: &[u32], kind: SectionKind) -> Vec<u8> {
        get_in(MSG, path, kind).unwrap()
    }

    #[test]
    fn binary_sections_undo_transfer_encodings() {
        let msg = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC/w==\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 =\r\nau lait\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n--b--\r\n";
        assert_eq!(
            get_in(msg, &[1], SectionKind::Binary).unwrap(),
            [0u8, 1, 2, 255]
        );
        assert_eq!(
            get_in(msg, &[2], SectionKind::Binary).unwrap(),
            "café au lait".as_bytes()
        );
        assert_eq!(get_in(msg, &[3], SectionKind::Binary), None);
        assert_eq!(get_in(msg, &[9], SectionKind::Binary).unwrap(), b"");
        assert_eq!(get_in(msg, &[], SectionKind::Binary).unwrap(), msg);
    }

    #[test]
    fn sections_follow_imap_numbering() {
        assert_eq!(get(&[1], SectionKind::Whole), b"one");
        assert_eq!(
            get(&[1], SectionKind::Mime),
            b"Content-Type: text/plain\r\n\r\n"
        );
        assert_eq!(get(&[2], SectionKind::Header), b"Subject: inner\r\n\r\n");
        assert_eq!(get(&[2], SectionKind::Text), b"inner body");
        assert_eq!(get(&[2, 1], SectionKind::Whole), b"inner body");
        assert_eq!(get(&[3], SectionKind::Whole), b"");
        assert_eq!(
            get(&[], SectionKind::Header),
            b"Subject: outer\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        );
    }
}
