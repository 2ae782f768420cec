//! FETCH: asks the store for a few messages at a time and writes each
//! message's response as soon as it has it.
//!
//! Imports `proto::imap`, `store` and the siblings `render` and `view`.
//! Invariants: at most [`BODY_BATCH`] message bodies are in memory at once
//! (metadata-only fetches go [`META_BATCH`] at a time), so `1:*` over a large
//! mailbox streams; a non-PEEK body fetch in a writable folder sets `\Seen`
//! before the data is sent, and the response then carries FLAGS.

use std::borrow::Cow;

use crate::proto::imap::{FetchAtt, SectionSpec, SectionText};
use crate::store::{
    FetchWhat, FetchedMessage, FlagOp, Flags, Section, SectionKind, Session, StoreError,
    StoreFlags, UidSet,
};

use super::render;
use super::view::View;

const BODY_BATCH: usize = 4;
const META_BATCH: usize = 500;

pub struct Request<'a> {
    pub atts: &'a [FetchAtt],
    pub uid: bool,
    pub changed_since: Option<u64>,
    pub condstore: bool,
}

/// FETCH over a list of UIDs, a batch at a time.
pub struct Fetcher<'a> {
    req: &'a Request<'a>,
    what: FetchWhat,
    sets_seen: bool,
    batch: usize,
    uids: Vec<u32>,
    pos: usize,
    unknown_cte: bool,
}

impl<'a> Fetcher<'a> {
    /// `uids` are members of the view, in order.
    pub fn new(view: &View, uids: Vec<u32>, req: &'a Request<'a>) -> Fetcher<'a> {
        let mut what = FetchWhat::default();
        let mut sets_seen = false;
        for att in req.atts {
            match att {
                FetchAtt::Envelope => what.envelope = true,
                FetchAtt::Body | FetchAtt::BodyStructure => what.structure = true,
                FetchAtt::Preview { .. } => what.preview = true,
                FetchAtt::EmailId | FetchAtt::ThreadId | FetchAtt::SaveDate => what.ids = true,
                FetchAtt::Section { peek, section, .. } => {
                    sets_seen |= !peek;
                    let s = store_section(section);
                    if !what.sections.contains(&s) {
                        what.sections.push(s);
                    }
                }
                FetchAtt::Binary { .. } | FetchAtt::BinarySize { .. } => {
                    if let FetchAtt::Binary { peek, .. } = att {
                        sets_seen |= !peek;
                    }
                    let s = binary_section(att);
                    if !what.sections.contains(&s) {
                        what.sections.push(s);
                    }
                }
                _ => {}
            }
        }
        let batch = if what.sections.iter().any(|s| !is_top_header(s)) {
            BODY_BATCH
        } else {
            META_BATCH
        };
        Fetcher {
            req,
            what,
            sets_seen: sets_seen && !view.read_only,
            batch,
            uids,
            pos: 0,
            unknown_cte: false,
        }
    }

    /// Some message had a BINARY section in an encoding sealmail cannot
    /// undo; its response was left out and the command must end
    /// `NO [UNKNOWN-CTE]` (RFC 3516 §4.2).
    pub fn unknown_cte(&self) -> bool {
        self.unknown_cte
    }

    /// The responses of the next batch, or `None` when all are done.
    pub async fn next(
        &mut self,
        session: &Session,
        view: &mut View,
    ) -> Option<Result<Vec<u8>, StoreError>> {
        if self.pos >= self.uids.len() {
            return None;
        }
        let end = (self.pos + self.batch).min(self.uids.len());
        let set = UidSet::from_uids(&self.uids[self.pos..end]);
        self.pos = end;
        Some(self.batch(session, view, set).await)
    }

    async fn batch(
        &mut self,
        session: &Session,
        view: &mut View,
        set: UidSet,
    ) -> Result<Vec<u8>, StoreError> {
        let mut flagged = Vec::new();
        if self.sets_seen {
            let r = session
                .store_flags(StoreFlags {
                    folder: view.name.clone(),
                    uids: set.clone(),
                    op: FlagOp::Add,
                    flags: Flags::system(Flags::SEEN),
                    unchanged_since: None,
                })
                .await?;
            view.note_own(&r.updated, false);
            flagged = r.updated.iter().map(|m| m.uid).collect();
        }
        let fetched = session.fetch(&view.name, set, self.what.clone()).await?;
        let mut out = Vec::new();
        for m in &fetched {
            if let Some(since) = self.req.changed_since
                && m.meta.modseq <= since
            {
                continue;
            }
            let Some(seq) = view.seq_of(m.meta.uid) else {
                continue;
            };
            if !m.undecodable.is_empty() {
                self.unknown_cte = true;
                continue;
            }
            let flags = self.req.atts.contains(&FetchAtt::Flags) || flagged.contains(&m.meta.uid);
            if flags {
                view.announce_keywords(&m.meta.flags, &mut out);
                view.mark_shown(m.meta.uid, m.meta.modseq);
            }
            let recent = flags && view.is_recent(m.meta.uid);
            message(&mut out, seq, m, self.req, flags.then_some(recent));
        }
        Ok(out)
    }
}

/// A section of a fetched message as `BODY[section]` shows it.
fn section_of<'m>(m: &'m FetchedMessage, section: &SectionSpec) -> Cow<'m, [u8]> {
    let wanted = store_section(section);
    let bytes = m
        .sections
        .iter()
        .find(|(s, _)| *s == wanted)
        .map(|(_, b)| b.as_slice())
        .unwrap_or(&[]);
    match &section.text {
        SectionText::HeaderFields { not, fields } => {
            Cow::Owned(render::header_fields(bytes, fields, *not))
        }
        _ => Cow::Borrowed(bytes),
    }
}

/// What an IMAP URL names (RFC 5092 §5): a section of one message, as
/// `BODY.PEEK[section]<partial>` returns it; `None` without that message.
/// A partial without a length runs to the end.
pub async fn url_section(
    session: &Session,
    folder: &str,
    uid: u32,
    section: &SectionSpec,
    partial: Option<(u32, Option<u32>)>,
) -> Result<Option<Vec<u8>>, StoreError> {
    let what = FetchWhat {
        sections: vec![store_section(section)],
        ..FetchWhat::default()
    };
    let fetched = session
        .fetch(folder, UidSet::from_uids(&[uid]), what)
        .await?;
    let Some(m) = fetched.iter().find(|m| m.meta.uid == uid) else {
        return Ok(None);
    };
    let bytes = section_of(m, section);
    let (start, end) = match partial {
        Some((origin, count)) => {
            let start = (origin as usize).min(bytes.len());
            let end = count.map_or(bytes.len(), |c| {
                start.saturating_add(c as usize).min(bytes.len())
            });
            (start, end)
        }
        None => (0, bytes.len()),
    };
    Ok(bytes.get(start..end).map(<[u8]>::to_vec))
}

fn is_top_header(s: &Section) -> bool {
    s.path.is_empty() && s.kind == SectionKind::Header
}

/// The store section a BINARY or BINARY.SIZE item reads.
fn binary_section(att: &FetchAtt) -> Section {
    let path = match att {
        FetchAtt::Binary { path, .. } | FetchAtt::BinarySize { path } => path.clone(),
        _ => Vec::new(),
    };
    Section {
        path,
        kind: SectionKind::Binary,
    }
}

fn store_section(s: &SectionSpec) -> Section {
    let kind = match s.text {
        SectionText::Whole => SectionKind::Whole,
        SectionText::Header | SectionText::HeaderFields { .. } => SectionKind::Header,
        SectionText::Text => SectionKind::Text,
        SectionText::Mime => SectionKind::Mime,
    };
    Section {
        path: s.path.clone(),
        kind,
    }
}

/// `BODY[1.2.HEADER.FIELDS (From To)]`
fn section_name(s: &SectionSpec) -> String {
    let mut parts: Vec<String> = s.path.iter().map(u32::to_string).collect();
    let text = match &s.text {
        SectionText::Whole => None,
        SectionText::Header => Some("HEADER".to_string()),
        SectionText::Text => Some("TEXT".to_string()),
        SectionText::Mime => Some("MIME".to_string()),
        SectionText::HeaderFields { not, fields } => {
            let mut names = Vec::new();
            for f in fields {
                let mut b = Vec::new();
                crate::proto::imap::push_astring(&mut b, f.as_bytes());
                names.push(String::from_utf8_lossy(&b).into_owned());
            }
            Some(format!(
                "HEADER.FIELDS{} ({})",
                if *not { ".NOT" } else { "" },
                names.join(" ")
            ))
        }
    };
    parts.extend(text);
    format!("BODY[{}]", parts.join("."))
}

/// `flags`: whether FLAGS goes out, and then whether with `\Recent`.
fn message(
    out: &mut Vec<u8>,
    seq: u32,
    m: &FetchedMessage,
    req: &Request<'_>,
    flags: Option<bool>,
) {
    let mut items: Vec<Vec<u8>> = Vec::new();
    let has = |a: &FetchAtt| req.atts.contains(a);
    if req.uid || has(&FetchAtt::Uid) {
        items.push(format!("UID {}", m.meta.uid).into_bytes());
    }
    if let Some(recent) = flags {
        items.push(format!("FLAGS {}", render::flags_recent(&m.meta.flags, recent)).into_bytes());
    }
    if req.condstore || has(&FetchAtt::ModSeq) {
        items.push(format!("MODSEQ ({})", m.meta.modseq).into_bytes());
    }
    for att in req.atts {
        let mut item = Vec::new();
        match att {
            FetchAtt::InternalDate => item.extend_from_slice(
                format!(
                    "INTERNALDATE {}",
                    render::internal_date(&m.meta.internal_date)
                )
                .as_bytes(),
            ),
            FetchAtt::Size => {
                item.extend_from_slice(format!("RFC822.SIZE {}", m.meta.size).as_bytes())
            }
            FetchAtt::Envelope => {
                item.extend_from_slice(b"ENVELOPE ");
                render::envelope(
                    &mut item,
                    m.envelope.as_ref().map_or(&Default::default(), |e| e),
                );
            }
            FetchAtt::Body | FetchAtt::BodyStructure => {
                let extended = *att == FetchAtt::BodyStructure;
                item.extend_from_slice(if extended {
                    b"BODYSTRUCTURE "
                } else {
                    b"BODY "
                });
                match &m.structure {
                    Some(p) => render::body(&mut item, p, extended),
                    None => item.extend_from_slice(b"NIL"),
                }
            }
            FetchAtt::Section {
                section,
                partial,
                legacy,
                ..
            } => {
                let whole = section_of(m, section);
                let mut bytes = whole.as_ref();
                let name = match legacy {
                    Some(l) => l.to_string(),
                    None => section_name(section),
                };
                item.extend_from_slice(name.as_bytes());
                if let Some((origin, count)) = partial {
                    item.extend_from_slice(format!("<{origin}>").as_bytes());
                    let start = (*origin as usize).min(bytes.len());
                    let end = start.saturating_add(*count as usize).min(bytes.len());
                    bytes = &bytes[start..end];
                }
                item.extend_from_slice(format!(" {{{}}}\r\n", bytes.len()).as_bytes());
                item.extend_from_slice(bytes);
            }
            FetchAtt::Binary { path, .. } | FetchAtt::BinarySize { path } => {
                let partial = match att {
                    FetchAtt::Binary { partial, .. } => *partial,
                    _ => None,
                };
                let wanted = binary_section(att);
                let mut bytes = m
                    .sections
                    .iter()
                    .find(|(s, _)| *s == wanted)
                    .map(|(_, b)| b.as_slice())
                    .unwrap_or(&[]);
                let part: Vec<String> = path.iter().map(u32::to_string).collect();
                let part = part.join(".");
                if matches!(att, FetchAtt::BinarySize { .. }) {
                    item.extend_from_slice(
                        format!("BINARY.SIZE[{part}] {}", bytes.len()).as_bytes(),
                    );
                } else {
                    item.extend_from_slice(format!("BINARY[{part}]").as_bytes());
                    if let Some((origin, count)) = partial {
                        item.extend_from_slice(format!("<{origin}>").as_bytes());
                        let start = (origin as usize).min(bytes.len());
                        let end = start.saturating_add(count as usize).min(bytes.len());
                        bytes = &bytes[start..end];
                    }
                    // NULs need a literal8 (RFC 3516 §4.3).
                    let tilde = if bytes.contains(&0) { "~" } else { "" };
                    item.extend_from_slice(format!(" {tilde}{{{}}}\r\n", bytes.len()).as_bytes());
                    item.extend_from_slice(bytes);
                }
            }
            FetchAtt::Preview { .. } => {
                item.extend_from_slice(b"PREVIEW ");
                crate::proto::imap::push_nstring(
                    &mut item,
                    m.preview.as_deref().map(str::as_bytes),
                );
            }
            FetchAtt::EmailId | FetchAtt::ThreadId | FetchAtt::SaveDate => {
                let Some(ids) = &m.ids else { continue };
                let text = match att {
                    FetchAtt::EmailId => format!("EMAILID (M{})", ids.email_id),
                    FetchAtt::ThreadId => format!("THREADID (T{})", ids.thread_id),
                    _ => format!("SAVEDATE \"{}\"", render::internal_date(&ids.saved_at)),
                };
                item.extend_from_slice(text.as_bytes());
            }
            FetchAtt::Uid | FetchAtt::Flags | FetchAtt::ModSeq => continue,
        }
        items.push(item);
    }
    out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b")\r\n");
}
