//! APPEND (RFC 3501 §6.3.11, RFC 4315 APPENDUID, RFC 3516 literal8,
//! RFC 3502 MULTIAPPEND, RFC 4469 CATENATE) and REPLACE (RFC 8508).
//!
//! Imports the session's types, `fetch` (for CATENATE's URLs),
//! `proto::imap` and the `store` interface. Invariants: `\Recent` and `\*`
//! are refused; a missing mailbox answers `NO [TRYCREATE]`; the messages of
//! one command are stored together or not at all; binary parts are stored
//! base64-encoded; a CATENATE URL reads only the user's own mailboxes, and
//! a message it builds is bounded by APPENDLIMIT as it grows.

use std::io;

use crate::imap::fetch::url_section;
use crate::imap::session::{Io, NO_MEMORY, Next, User};
use crate::imap::view::{Moment, View, uid_set_text};
use crate::proto::imap::{
    Append, AppendData, AppendMessage, CatPart, ImapUrl, Replace, SectionSpec, SectionText,
    parse_url,
};
use crate::store::{AppendRequest, FlagOp, Flags, StoreError, StoreFlags, UidSet};

/// Why a message of an APPEND cannot be stored: the tagged reply.
enum Refusal {
    Bad(String),
    No(String),
    Store(StoreError),
}

impl Refusal {
    async fn send(self, io: &mut Io<'_>, tag: &str) -> io::Result<Next> {
        match self {
            Refusal::Bad(text) => io.bad(Some(tag), &text).await,
            Refusal::No(text) => io.no(tag, &text).await,
            Refusal::Store(e) => io.store_failed(tag, &e).await,
        }
    }
}

pub async fn run(
    io: &mut Io<'_>,
    user: &mut User,
    view: Option<&mut View>,
    tag: &str,
    append: Append,
) -> io::Result<Next> {
    let name = match user.decode_name(&append.mailbox) {
        Ok(n) => n,
        Err(e) => return io.bad_name(tag, &e).await,
    };
    let mut view = view;
    let selected = view.as_deref().map(|v| v.name.clone());
    let mut requests = Vec::with_capacity(append.messages.len());
    for m in append.messages {
        match request(io, user, selected.as_deref(), &name, m).await {
            Ok(r) => requests.push(r),
            Err(refusal) => return refusal.send(io, tag).await,
        }
    }
    // All or nothing, in one transaction (RFC 3502 §6.3.11). Into the
    // selected folder, the same transaction claims them as \Recent.
    let r = match view.as_deref_mut() {
        Some(v) if v.claims_recent() && crate::store::normalize_folder_name(&name) == v.name => {
            match user.session.append_recent(requests).await {
                Ok((uids, claimed)) => {
                    if claimed {
                        let new: Vec<u32> = uids.iter().map(|a| a.uid).collect();
                        v.add_recent(&new);
                    }
                    Ok(uids)
                }
                Err(e) => Err(e),
            }
        }
        _ => user.session.append_batch(requests).await,
    };
    io.updates(user, view, Moment::Any).await?;
    match r {
        Ok(uids) => {
            let validity = uids.first().map_or(0, |a| a.uidvalidity);
            let set: Vec<u32> = uids.iter().map(|a| a.uid).collect();
            let text = format!(
                "[APPENDUID {validity} {}] APPEND completed",
                uid_set_text(&UidSet::from_uids(&set))
            );
            io.ok(tag, &text).await
        }
        Err(StoreError::NoSuchFolder(_)) => io.no(tag, "[TRYCREATE] no such mailbox").await,
        Err(e) => io.store_failed(tag, &e).await,
    }
}

/// One message to store: its flags checked, its CATENATE parts joined.
async fn request(
    io: &mut Io<'_>,
    user: &User,
    selected: Option<&str>,
    folder: &str,
    m: AppendMessage,
) -> Result<AppendRequest, Refusal> {
    if let Some(f) = &m.flags.invalid {
        return Err(Refusal::Bad(format!("flag {f} cannot be set")));
    }
    let (message, binary) = match m.data {
        AppendData::Literal { message, binary } => (unspill(io, message).await?, binary),
        AppendData::Catenate(parts) => (catenate(io, user, selected, parts).await?, false),
    };
    // Binary content never goes out in an ordinary literal: its parts are
    // stored base64-encoded (RFC 3516 §4.2, §4.3).
    let message = if binary || message.contains(&0) {
        crate::store::binary::encode_binary_parts(&message).unwrap_or(message)
    } else {
        message
    };
    Ok(AppendRequest {
        folder: folder.to_string(),
        message,
        flags: Flags {
            system: m.flags.system,
            keywords: m.flags.keywords,
        },
        internal_date: m.date,
        if_missing: Default::default(),
    })
}

/// A literal of the command, read back from its spill file if it went to
/// one (its memory was held with the command's).
async fn unspill(io: &mut Io<'_>, literal: Vec<u8>) -> Result<Vec<u8>, Refusal> {
    let Some(body) = io.spilled.claim(&literal) else {
        return Ok(literal);
    };
    body.finish(Vec::new()).await.map_err(|e| {
        tracing::error!(error = %e, "cannot read a spilled APPEND literal back");
        Refusal::No("[SERVERBUG] the message could not be read back; try again".into())
    })
}

/// CATENATE (RFC 4469 §3): the parts in order, each URL read as
/// `BODY.PEEK[section]<partial>` of a message in the user's mailboxes.
async fn catenate(
    io: &mut Io<'_>,
    user: &User,
    selected: Option<&str>,
    parts: Vec<CatPart>,
) -> Result<Vec<u8>, Refusal> {
    let limit = io.ctx.max_message_bytes as usize;
    let mut message = Vec::new();
    for part in parts {
        let from_store = matches!(part, CatPart::Url(_));
        let bytes = match part {
            CatPart::Text(text) => unspill(io, text).await?,
            CatPart::Url(url) => {
                let bad =
                    |why: &str| Refusal::No(format!("[BADURL {}] {why}", url_resp_text(&url)));
                let parsed = parse_url(&url).map_err(|e| bad(&e.to_string()))?;
                let folder = url_folder(io, user, selected, &parsed).map_err(|why| bad(&why))?;
                if let Some(validity) = parsed.uidvalidity {
                    let status = user.session.status(&folder).await;
                    match status {
                        Ok(s) if s.uidvalidity == validity => {}
                        Ok(_) => return Err(bad("the mailbox's UIDVALIDITY has changed")),
                        Err(StoreError::NoSuchFolder(_)) => return Err(bad("no such mailbox")),
                        Err(e) => return Err(Refusal::Store(e)),
                    }
                }
                let whole = SectionSpec {
                    path: Vec::new(),
                    text: SectionText::Whole,
                };
                let section = parsed.section.as_ref().unwrap_or(&whole);
                let found =
                    url_section(&user.session, &folder, parsed.uid, section, parsed.partial).await;
                match found {
                    Ok(Some(bytes)) => bytes,
                    Ok(None) => return Err(bad("no message with that UID")),
                    Err(StoreError::NoSuchFolder(_)) => return Err(bad("no such mailbox")),
                    Err(e) => return Err(Refusal::Store(e)),
                }
            }
        };
        if message.len().saturating_add(bytes.len()) > limit {
            return Err(Refusal::No(format!(
                "[TOOBIG] the message would be larger than APPENDLIMIT={limit}"
            )));
        }
        // A part read from the store is memory the command's literals did
        // not bring: held against the budget too (twice: read, and joined).
        if from_store
            && let Some(m) = io.memory.as_mut()
            && !m.receive(2 * bytes.len() as u64)
        {
            return Err(Refusal::No(NO_MEMORY.into()));
        }
        message.extend_from_slice(&bytes);
    }
    if message.is_empty() {
        return Err(Refusal::No("the message would be empty".into()));
    }
    Ok(message)
}

/// The folder a URL reads: its own server and user only (RFC 4469 §3).
fn url_folder(
    io: &Io<'_>,
    user: &User,
    selected: Option<&str>,
    url: &ImapUrl,
) -> Result<String, String> {
    if let Some(server) = &url.server {
        if !server.host.eq_ignore_ascii_case(&io.ctx.hostname) {
            return Err("the URL names another server".into());
        }
        if let Some(u) = &server.user
            && !u.eq_ignore_ascii_case(&user.session.info().address)
        {
            return Err("the URL names another user's mailbox".into());
        }
    }
    match (&url.mailbox, selected) {
        (Some(name), _) => Ok(crate::store::normalize_folder_name(name)),
        (None, Some(name)) => Ok(name.to_string()),
        (None, None) => Err("a relative URL needs a selected mailbox".into()),
    }
}

/// A URL as `[BADURL …]` may carry it: no `]`, no controls (RFC 4469 §5).
fn url_resp_text(url: &str) -> String {
    url.chars()
        .filter(|c| *c != ']' && !c.is_control())
        .collect()
}

/// REPLACE and UID REPLACE (RFC 8508): the new message is stored, then the
/// old one expunged, so a failure part-way loses nothing (both are kept).
pub async fn replace(
    io: &mut Io<'_>,
    user: &mut User,
    view: &mut View,
    tag: &str,
    r: Replace,
) -> io::Result<Next> {
    if view.read_only {
        return io.no(tag, "[READ-ONLY] mailbox is read-only").await;
    }
    let old = if r.uid {
        view.seq_of(r.number).map(|_| r.number)
    } else {
        view.uids.get(r.number as usize - 1).copied()
    };
    let Some(old) = old else {
        if r.uid {
            return io.no(tag, "[NONEXISTENT] no message with that UID").await;
        }
        return io
            .bad(
                Some(tag),
                "no such message (sequence number beyond the mailbox)",
            )
            .await;
    };
    let name = match user.decode_name(&r.mailbox) {
        Ok(n) => n,
        Err(e) => return io.bad_name(tag, &e).await,
    };
    let req = match request(io, user, Some(&view.name), &name, r.message).await {
        Ok(req) => req,
        Err(refusal) => return refusal.send(io, tag).await,
    };
    let new = match user.session.append(req).await {
        Ok(a) => a,
        Err(StoreError::NoSuchFolder(_)) => return io.no(tag, "[TRYCREATE] no such mailbox").await,
        Err(e) => return io.store_failed(tag, &e).await,
    };
    let mut buf = format!(
        "* OK [APPENDUID {} {}] replacement stored\r\n",
        new.uidvalidity, new.uid
    )
    .into_bytes();
    let one = UidSet::from_uids(&[old]);
    let deleted = user
        .session
        .store_flags(StoreFlags {
            folder: view.name.clone(),
            uids: one.clone(),
            op: FlagOp::Add,
            flags: Flags::system(Flags::DELETED),
            unchanged_since: None,
        })
        .await;
    let gone = match deleted {
        Ok(d) => {
            view.note_own(&d.updated, false);
            user.session.expunge(&view.name, Some(one)).await
        }
        Err(e) => Err(e),
    };
    match gone {
        Ok(gone) => {
            view.expunged(&gone, &mut user.out(&mut buf));
            io.conn.write_all(&buf).await?;
            io.updates(user, Some(view), Moment::Any).await?;
            io.ok(tag, "REPLACE completed").await
        }
        Err(e) => {
            io.conn.write_all(&buf).await?;
            io.store_failed(tag, &e).await
        }
    }
}
