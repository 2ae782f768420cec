//! The selected mailbox as one session sees it: its sequence numbers, and
//! the changes other sessions made that it has not told its client yet.
//!
//! Imports `proto::imap` (sequence sets), `store` values and the sibling
//! `render`. Invariants: `uids` is sorted and changes only together with the
//! untagged EXISTS / EXPUNGE / VANISHED that tell the client; a set is
//! turned into UID ranges without ever being expanded; events for other
//! folders are not echoed.
//!
//! Flag updates (RFC 3501 §7.4.2, RFC 7162 §3.1): a message's state is sent
//! only when it is newer than the newest state this client already holds,
//! so a client that applies untagged FETCHes in order always ends on the
//! current flags and never sees a MODSEQ go down. Several pending changes
//! of one message are sent as one, the newest. A keyword first used while
//! the mailbox is selected is announced in `* FLAGS` and `PERMANENTFLAGS`
//! before the first FETCH that shows it.

use std::collections::{HashMap, VecDeque};

use crate::proto::imap::{SeqNum, SeqSet};
use crate::store::{Change, Changes, Flags, MessageMeta, SelectInfo, UidRange, UidSet};

use super::render;

pub struct View {
    /// The store's name of the folder.
    pub name: String,
    pub read_only: bool,
    pub uids: Vec<u32>,
    /// How many messages the client has been told exist.
    announced: usize,
    pub highestmodseq: u64,
    /// The mailbox's MODSEQ at selection: every change up to it is part of
    /// the state the client starts from, so its events are never sent.
    base_modseq: u64,
    /// Keywords announced in `* FLAGS`.
    keywords: Vec<String>,
    /// Per message changed since selection: the MODSEQ of the newest state
    /// the client was sent in full.
    shown: HashMap<u32, u64>,
    /// Per message: this session's own change the client was not shown in
    /// full (`.SILENT`, or CONDSTORE's flagless STORE reply). Its state is
    /// sent if an older change by another session shows up later.
    silent: HashMap<u32, MessageMeta>,
    /// Messages with another session's change folded into a newer pending
    /// one: that newer state must be sent even if it is this session's own.
    /// Holds the folded change's MODSEQ.
    merged: HashMap<u32, u64>,
    /// Events read from the store but not yet applied.
    backlog: VecDeque<Change>,
    /// Messages this session holds as `\Recent` (RFC 3501 §2.3.2), sorted;
    /// always empty under IMAP4rev2, which dropped the flag.
    pub recent: Vec<u32>,
    /// Whether this session reports `\Recent` at all (IMAP4rev1).
    with_recent: bool,
    /// How many recent messages the client has been told of.
    recent_announced: usize,
    /// `$`: UIDs of the last `SEARCH RETURN (SAVE)` (RFC 5182), sorted;
    /// expunged ones drop out, new messages never join.
    pub saved: Vec<u32>,
}

/// How updates may be sent (RFC 3501 §7.4.1: no EXPUNGE during FETCH, STORE
/// or SEARCH by sequence number).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    Any,
    NoExpunge,
}

pub struct Out<'a> {
    pub buf: &'a mut Vec<u8>,
    pub condstore: bool,
    pub qresync: bool,
}

impl View {
    pub fn new(name: String, read_only: bool, info: &SelectInfo) -> View {
        View {
            name,
            read_only,
            announced: info.uids.len(),
            uids: info.uids.clone(),
            highestmodseq: info.status.highestmodseq,
            base_modseq: info.status.highestmodseq,
            keywords: info.keywords.clone(),
            shown: HashMap::new(),
            silent: HashMap::new(),
            merged: HashMap::new(),
            recent: Vec::new(),
            with_recent: false,
            recent_announced: 0,
            backlog: VecDeque::new(),
            saved: Vec::new(),
        }
    }

    /// Starts reporting `\Recent`, holding `uids` as recent (already
    /// counted in SELECT's `* n RECENT`).
    pub fn hold_recent(&mut self, uids: Vec<u32>) {
        self.with_recent = true;
        self.recent_announced = uids.len();
        self.recent = uids;
    }

    /// Whether this session claims new messages as `\Recent` (IMAP4rev1,
    /// read-write).
    pub fn claims_recent(&self) -> bool {
        self.with_recent && !self.read_only
    }

    pub fn is_recent(&self, uid: u32) -> bool {
        self.recent.binary_search(&uid).is_ok()
    }

    /// The highest UID among pending arrivals in this folder: what a
    /// session that reports `\Recent` claims before applying them.
    pub fn arrivals(&self) -> Option<u32> {
        if !self.with_recent {
            return None;
        }
        let known = self.max_uid().unwrap_or(0);
        self.backlog
            .iter()
            .filter_map(|c| match c {
                Change::Exists { folder, uid } if folder == &self.name && *uid > known => {
                    Some(*uid)
                }
                _ => None,
            })
            .max()
    }

    /// Arrivals this session claimed (or, read-only, that nobody has).
    pub fn add_recent(&mut self, uids: &[u32]) {
        self.recent.extend_from_slice(uids);
        self.recent.sort_unstable();
        self.recent.dedup();
    }

    pub fn len(&self) -> u32 {
        self.uids.len() as u32
    }

    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        self.uids.binary_search(&uid).ok().map(|i| i as u32 + 1)
    }

    pub fn max_uid(&self) -> Option<u32> {
        self.uids.last().copied()
    }

    /// Resolves a set of sequence numbers or UIDs to UID ranges over this
    /// view. Sequence numbers beyond the view are an error (RFC 3501 §9:
    /// "BAD"); UIDs need not exist.
    pub fn resolve(&self, set: &SeqSet, uid: bool) -> Result<UidSet, String> {
        if set.is_saved() {
            return Ok(UidSet::from_uids(&self.saved));
        }
        let mut out = Vec::new();
        if uid {
            let star = self.max_uid().unwrap_or(0);
            for &(a, b) in &set.0 {
                let v = |n: SeqNum| match n {
                    SeqNum::Num(n) => n,
                    SeqNum::Star => star,
                };
                let (a, b) = (v(a).min(v(b)), v(a).max(v(b)));
                if b == 0 {
                    continue;
                }
                out.push(UidRange {
                    first: a.max(1),
                    last: b,
                });
            }
        } else {
            let n = self.len();
            for &(a, b) in &set.0 {
                let v = |s: SeqNum| match s {
                    SeqNum::Num(s) => s,
                    SeqNum::Star => n,
                };
                let (a, b) = (v(a).min(v(b)), v(a).max(v(b)));
                if n == 0 || a > n {
                    return Err("no such message (sequence number beyond the mailbox)".into());
                }
                let b = b.min(n);
                out.push(UidRange {
                    first: self.uids[a as usize - 1],
                    last: self.uids[b as usize - 1],
                });
            }
        }
        Ok(UidSet(out))
    }

    /// Sequence numbers as a SEARCH key: numbers beyond the view match
    /// nothing rather than being an error (as Dovecot; RFC 3501 §6.4.4 asks
    /// only for the messages that match).
    pub fn resolve_search(&self, set: &SeqSet) -> UidSet {
        let n = self.len();
        let v = |s: SeqNum| match s {
            SeqNum::Num(s) => s,
            SeqNum::Star => n,
        };
        let mut out = Vec::new();
        for &(a, b) in &set.0 {
            let (a, b) = (v(a).min(v(b)).max(1), v(a).max(v(b)).min(n));
            if a > b {
                continue;
            }
            if let (Some(&first), Some(&last)) =
                (self.uids.get(a as usize - 1), self.uids.get(b as usize - 1))
            {
                out.push(UidRange { first, last });
            }
        }
        UidSet(out)
    }

    /// A UID set with `*` read as "no upper bound": the UIDs VANISHED may
    /// name are gone from the view, so the view's last UID cannot bound
    /// them.
    pub fn resolve_open(set: &SeqSet) -> UidSet {
        let v = |n: SeqNum| match n {
            SeqNum::Num(n) => n,
            SeqNum::Star => u32::MAX,
        };
        UidSet(
            set.0
                .iter()
                .map(|&(a, b)| UidRange {
                    first: v(a).min(v(b)),
                    last: v(a).max(v(b)),
                })
                .collect(),
        )
    }

    /// The UIDs of the view inside `set`, in order.
    pub fn members(&self, set: &UidSet) -> Vec<u32> {
        let mut out = Vec::new();
        for r in &set.0 {
            let start = self.uids.partition_point(|&u| u < r.first);
            let end = self.uids.partition_point(|&u| u <= r.last);
            out.extend_from_slice(&self.uids[start..end.max(start)]);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Records flag changes this session made. `shown`: the client is
    /// sent their full state (their FETCH includes FLAGS).
    pub fn note_own(&mut self, metas: &[MessageMeta], shown: bool) {
        for m in metas {
            self.highestmodseq = self.highestmodseq.max(m.modseq);
            if shown {
                self.mark_shown(m.uid, m.modseq);
            } else if m.modseq > self.shown_modseq(m.uid)
                && self.silent.get(&m.uid).is_none_or(|s| s.modseq < m.modseq)
            {
                self.silent.insert(m.uid, m.clone());
            }
        }
    }

    /// The client was sent the state of `uid` at `modseq` in full.
    pub fn mark_shown(&mut self, uid: u32, modseq: u64) {
        if modseq <= self.base_modseq {
            return;
        }
        let e = self.shown.entry(uid).or_default();
        *e = (*e).max(modseq);
        if self.silent.get(&uid).is_some_and(|s| s.modseq <= modseq) {
            self.silent.remove(&uid);
        }
        if self.merged.get(&uid).is_some_and(|&m| m <= modseq) {
            self.merged.remove(&uid);
        }
    }

    fn shown_modseq(&self, uid: u32) -> u64 {
        self.shown.get(&uid).copied().unwrap_or(self.base_modseq)
    }

    /// Announces keywords in `flags` the client has not been told of:
    /// `* FLAGS` and, read-write, `PERMANENTFLAGS` (RFC 3501 §7.2.6).
    pub fn announce_keywords(&mut self, flags: &Flags, buf: &mut Vec<u8>) {
        let mut new = false;
        for k in &flags.keywords {
            if !self
                .keywords
                .iter()
                .any(|have| have.eq_ignore_ascii_case(k))
            {
                self.keywords.push(k.clone());
                new = true;
            }
        }
        if new {
            buf.extend_from_slice(flags_lines(&self.keywords, self.read_only).as_bytes());
        }
    }

    /// Writes the current state of a message that changed, with any new
    /// keyword announced first.
    fn flag_update(&mut self, seq: u32, meta: &MessageMeta, out: &mut Out<'_>) {
        self.announce_keywords(&meta.flags, out.buf);
        flag_line(out, seq, meta, self.is_recent(meta.uid));
        self.mark_shown(meta.uid, meta.modseq);
    }

    pub fn push_events(&mut self, events: impl IntoIterator<Item = Change>) {
        self.backlog.extend(events);
    }

    /// Removes expunged UIDs this session caused itself, writing EXPUNGE
    /// (or one VANISHED) responses.
    pub fn expunged(&mut self, uids: &[u32], out: &mut Out<'_>) {
        self.announce_exists(out);
        let mut vanished = Vec::new();
        for &uid in uids {
            if let Ok(i) = self.uids.binary_search(&uid) {
                if out.qresync {
                    vanished.push(uid);
                } else {
                    out.buf
                        .extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
                }
                self.uids.remove(i);
                self.announced -= 1;
            }
            if let Ok(j) = self.saved.binary_search(&uid) {
                self.saved.remove(j);
            }
            self.shown.remove(&uid);
            self.silent.remove(&uid);
            self.merged.remove(&uid);
            if let Ok(j) = self.recent.binary_search(&uid) {
                self.recent.remove(j);
                self.recent_announced = self.recent_announced.saturating_sub(1);
            }
        }
        if !vanished.is_empty() {
            vanished_line(out.buf, &vanished, false);
        }
    }

    /// `* n EXISTS` when the count grew, then `* n RECENT` when the
    /// number of recent messages changed with it (RFC 3501 §7.3.1, §7.3.2).
    fn announce_exists(&mut self, out: &mut Out<'_>) {
        if self.announced != self.uids.len() {
            self.announced = self.uids.len();
            out.buf
                .extend_from_slice(format!("* {} EXISTS\r\n", self.uids.len()).as_bytes());
            let recent = self
                .recent
                .iter()
                .filter(|&&u| self.seq_of(u).is_some())
                .count();
            if self.with_recent && recent != self.recent_announced {
                self.recent_announced = recent;
                out.buf
                    .extend_from_slice(format!("* {recent} RECENT\r\n").as_bytes());
            }
        }
    }

    /// Applies the backlog as far as `moment` allows, writing the untagged
    /// responses.
    pub fn apply(&mut self, moment: Moment, out: &mut Out<'_>) {
        // The newest pending change per message: older ones are not sent.
        let mut newest: HashMap<u32, u64> = HashMap::new();
        for c in &self.backlog {
            if let Change::Flags { folder, meta } = c
                && folder == &self.name
            {
                let e = newest.entry(meta.uid).or_default();
                *e = (*e).max(meta.modseq);
            }
        }
        while let Some(change) = self.backlog.front() {
            let mine = match change {
                Change::Exists { folder, .. }
                | Change::Flags { folder, .. }
                | Change::Expunged { folder, .. } => folder == &self.name,
                Change::FoldersChanged => false,
            };
            if mine && moment == Moment::NoExpunge && matches!(change, Change::Expunged { .. }) {
                break;
            }
            let Some(change) = self.backlog.pop_front() else {
                break;
            };
            if !mine {
                continue;
            }
            match change {
                Change::Exists { uid, .. } => {
                    if let Err(i) = self.uids.binary_search(&uid) {
                        if i == self.uids.len() {
                            self.uids.push(uid);
                        } else {
                            // An older UID (a late event): only unannounced
                            // positions may take it.
                            if i >= self.announced {
                                self.uids.insert(i, uid);
                            }
                        }
                    }
                }
                Change::Flags { meta, .. } => {
                    self.highestmodseq = self.highestmodseq.max(meta.modseq);
                    if newest.get(&meta.uid).is_some_and(|&m| m > meta.modseq) {
                        if meta.modseq > self.shown_modseq(meta.uid) {
                            let m = self.merged.entry(meta.uid).or_default();
                            *m = (*m).max(meta.modseq);
                        }
                        continue;
                    }
                    self.changed(meta, out);
                }
                Change::Expunged { uids, .. } => self.expunged(&uids, out),
                Change::FoldersChanged => {}
            }
        }
        self.announce_exists(out);
    }

    /// Sends another session's change of a message, unless the client
    /// already holds that state or a newer one.
    fn changed(&mut self, meta: MessageMeta, out: &mut Out<'_>) {
        let Some(seq) = self.seq_of(meta.uid) else {
            return;
        };
        if seq as usize > self.announced || meta.modseq <= self.shown_modseq(meta.uid) {
            return;
        }
        let meta = match self.silent.get(&meta.uid) {
            // This session's own change, not shown: the client knows it,
            // unless another session's change was folded into it.
            Some(own) if own.modseq == meta.modseq && !self.merged.contains_key(&meta.uid) => {
                return;
            }
            // An older change reached us after our own newer one: send the
            // newer state, which includes both.
            Some(own) if own.modseq > meta.modseq => own.clone(),
            _ => meta,
        };
        self.flag_update(seq, &meta, out);
    }

    /// Brings the view up to date after its event stream was lost: the
    /// store's changes since the last modseq known here.
    pub fn resync(&mut self, fresh: &SelectInfo, changes: &Changes, out: &mut Out<'_>) {
        self.backlog.clear();
        let gone: Vec<u32> = self
            .uids
            .iter()
            .copied()
            .filter(|u| fresh.uids.binary_search(u).is_err())
            .collect();
        self.expunged(&gone, out);
        for &uid in &fresh.uids {
            if self.uids.binary_search(&uid).is_err() && Some(uid) > self.max_uid() {
                self.uids.push(uid);
            }
        }
        self.announce_exists(out);
        for meta in &changes.changed {
            self.changed(meta.clone(), out);
        }
        self.highestmodseq = fresh.status.highestmodseq;
    }
}

/// `* 3 FETCH (UID 7 FLAGS (\Seen) MODSEQ (12))` for a flag change.
pub fn flag_line(out: &mut Out<'_>, seq: u32, meta: &MessageMeta, recent: bool) {
    let modseq = if out.condstore {
        format!(" MODSEQ ({})", meta.modseq)
    } else {
        String::new()
    };
    out.buf.extend_from_slice(
        format!(
            "* {seq} FETCH (UID {} FLAGS {}{modseq})\r\n",
            meta.uid,
            render::flags_recent(&meta.flags, recent)
        )
        .as_bytes(),
    );
}

/// `* FLAGS (...)` and `* OK [PERMANENTFLAGS (...)]` for a mailbox whose
/// keywords are `keywords` (RFC 3501 §7.2.6, §7.1).
pub fn flags_lines(keywords: &[String], read_only: bool) -> String {
    let mut flags = Flags::system(
        Flags::ANSWERED | Flags::FLAGGED | Flags::DELETED | Flags::SEEN | Flags::DRAFT,
    );
    flags.keywords = keywords.to_vec();
    let flag_text = render::flags(&flags);
    let mut text = format!("* FLAGS {flag_text}\r\n");
    if read_only {
        text.push_str("* OK [PERMANENTFLAGS ()] read-only\r\n");
    } else {
        let inner = flag_text.trim_end_matches(')');
        text.push_str(&format!(
            "* OK [PERMANENTFLAGS {inner} \\*)] flags permitted\r\n"
        ));
    }
    text
}

/// `* VANISHED [(EARLIER)] 1:3,7`
pub fn vanished_line(out: &mut Vec<u8>, uids: &[u32], earlier: bool) {
    if uids.is_empty() {
        return;
    }
    out.extend_from_slice(b"* VANISHED ");
    if earlier {
        out.extend_from_slice(b"(EARLIER) ");
    }
    out.extend_from_slice(uid_set_text(&UidSet::from_uids(uids)).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `1:3,7` — a set as IMAP writes it.
pub fn uid_set_text(set: &UidSet) -> String {
    set.0
        .iter()
        .map(|r| {
            if r.first == r.last {
                r.first.to_string()
            } else {
                format!("{}:{}", r.first, r.last)
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Flags, FolderStatus};

    fn view(uids: &[u32]) -> View {
        View::new(
            "INBOX".into(),
            false,
            &SelectInfo {
                status: FolderStatus {
                    name: "INBOX".into(),
                    uidvalidity: 1,
                    uidnext: 100,
                    highestmodseq: 5,
                    messages: uids.len() as u32,
                    unseen: 0,
                    deleted: 0,
                    size: 0,
                    recent: 0,
                },
                uids: uids.to_vec(),
                keywords: vec![],
                first_unseen: None,
            },
        )
    }

    #[test]
    fn sets_resolve_without_expansion() {
        let v = view(&[3, 5, 9, 20]);
        let s = |a, b| SeqSet(vec![(a, b)]);
        assert_eq!(
            v.resolve(&s(SeqNum::Num(1), SeqNum::Num(u32::MAX)), false)
                .unwrap(),
            UidSet::range(3, 20)
        );
        assert_eq!(
            v.resolve(&s(SeqNum::Num(2), SeqNum::Num(3)), false)
                .unwrap(),
            UidSet::range(5, 9)
        );
        assert!(
            v.resolve(&s(SeqNum::Num(5), SeqNum::Num(5)), false)
                .is_err()
        );
        // UID 100:* includes the last message (RFC 3501 §6.4.8).
        assert_eq!(
            v.resolve(&s(SeqNum::Num(100), SeqNum::Star), true).unwrap(),
            UidSet::range(20, 100)
        );
        assert_eq!(v.members(&UidSet::range(4, 100)), vec![5, 9, 20]);
        assert_eq!(v.members(&UidSet::all()), vec![3, 5, 9, 20]);
    }

    #[test]
    fn events_become_untagged_responses() {
        let mut v = view(&[3, 5, 9]);
        let meta = |uid, modseq| MessageMeta {
            uid,
            modseq,
            flags: Flags::system(Flags::SEEN),
            internal_date: String::new(),
            size: 0,
        };
        v.note_own(&[meta(3, 6)], true);
        v.push_events([
            Change::Flags {
                folder: "INBOX".into(),
                meta: meta(3, 6),
            },
            Change::Flags {
                folder: "INBOX".into(),
                meta: meta(5, 7),
            },
            Change::Exists {
                folder: "Other".into(),
                uid: 4,
            },
            Change::Exists {
                folder: "INBOX".into(),
                uid: 10,
            },
            Change::Expunged {
                folder: "INBOX".into(),
                uids: vec![5, 10],
            },
        ]);
        let mut buf = Vec::new();
        let mut out = Out {
            buf: &mut buf,
            condstore: true,
            qresync: false,
        };
        v.apply(Moment::NoExpunge, &mut out);
        assert_eq!(
            String::from_utf8(buf.clone()).unwrap(),
            "* 2 FETCH (UID 5 FLAGS (\\Seen) MODSEQ (7))\r\n* 4 EXISTS\r\n"
        );
        buf.clear();
        let mut out = Out {
            buf: &mut buf,
            condstore: true,
            qresync: false,
        };
        v.apply(Moment::Any, &mut out);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "* 2 EXPUNGE\r\n* 3 EXPUNGE\r\n"
        );
        assert_eq!(v.uids, vec![3, 9]);
    }
}
