//! The maildrop of one POP3 session: a snapshot of INBOX with deletion
//! marks, and the UPDATE state that applies them.
//!
//! Imports `store`. Invariants: message numbers are positions in the
//! snapshot and never change during the session; UIDLs are Dovecot's
//! default form (`%08X` UID, `%08X` UIDVALIDITY), so they match the IMAP UIDs
//! and stay stable across sessions.

use crate::store::{
    FetchWhat, FlagOp, Flags, Section, SectionKind, Session, StoreError, StoreFlags, UidSet,
};

pub struct Entry {
    pub uid: u32,
    pub size: u64,
    pub deleted: bool,
    pub retrieved: bool,
}

pub struct Maildrop {
    pub session: Session,
    pub uidvalidity: u32,
    pub entries: Vec<Entry>,
}

const INBOX: &str = "INBOX";

impl Maildrop {
    pub async fn load(session: Session) -> Result<Maildrop, StoreError> {
        // The maildrop is the whole INBOX (RFC 1939): sealed mail still
        // being imported belongs in it.
        session.settle().await?;
        let listing = session.listing(INBOX).await?;
        let entries = listing
            .entries
            .into_iter()
            .map(|(uid, size)| Entry {
                uid,
                size,
                deleted: false,
                retrieved: false,
            })
            .collect();
        Ok(Maildrop {
            session,
            uidvalidity: listing.uidvalidity,
            entries,
        })
    }

    /// The live (not deleted) entry numbered `n`.
    pub fn get(&self, n: u32) -> Option<&Entry> {
        self.entries
            .get((n as usize).checked_sub(1)?)
            .filter(|e| !e.deleted)
    }

    pub fn get_mut(&mut self, n: u32) -> Option<&mut Entry> {
        self.entries
            .get_mut((n as usize).checked_sub(1)?)
            .filter(|e| !e.deleted)
    }

    pub fn uidl(&self, e: &Entry) -> String {
        format!("{:08X}{:08X}", e.uid, self.uidvalidity)
    }

    /// (count, octets) of messages not marked deleted.
    pub fn stat(&self) -> (usize, u64) {
        self.entries
            .iter()
            .filter(|e| !e.deleted)
            .fold((0, 0), |(n, s), e| (n + 1, s + e.size))
    }

    /// The stored bytes of a message, or `None` if another session removed
    /// it since the snapshot.
    pub async fn message(&self, uid: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let what = FetchWhat {
            sections: vec![Section {
                path: vec![],
                kind: SectionKind::Whole,
            }],
            ..FetchWhat::default()
        };
        let mut got = self
            .session
            .fetch(INBOX, UidSet::range(uid, uid), what)
            .await?;
        Ok(got
            .pop()
            .and_then(|m| m.sections.into_iter().next())
            .map(|(_, b)| b))
    }

    pub fn reset(&mut self) {
        for e in &mut self.entries {
            e.deleted = false;
        }
    }

    /// UPDATE state (RFC 1939 §6): retrieved messages become `\Seen`,
    /// deleted ones are expunged (or moved to Trash). Returns how many were
    /// removed.
    pub async fn update(self) -> Result<usize, StoreError> {
        let seen: Vec<u32> = self
            .entries
            .iter()
            .filter(|e| e.retrieved && !e.deleted)
            .map(|e| e.uid)
            .collect();
        let gone: Vec<u32> = self
            .entries
            .iter()
            .filter(|e| e.deleted)
            .map(|e| e.uid)
            .collect();
        if !seen.is_empty() {
            self.flag(&seen, Flags::SEEN).await?;
        }
        if gone.is_empty() {
            return Ok(0);
        }
        if self.session.info().pop3_trash {
            self.session
                .move_messages(INBOX, UidSet::from_uids(&gone), "Trash")
                .await?;
        } else {
            self.flag(&gone, Flags::DELETED).await?;
            self.session
                .expunge(INBOX, Some(UidSet::from_uids(&gone)))
                .await?;
        }
        Ok(gone.len())
    }

    async fn flag(&self, uids: &[u32], bit: u8) -> Result<(), StoreError> {
        self.session
            .store_flags(StoreFlags {
                folder: INBOX.into(),
                uids: UidSet::from_uids(uids),
                op: FlagOp::Add,
                flags: Flags::system(bit),
                unchanged_since: None,
            })
            .await
            .map(drop)
    }
}

/// Dot-stuffs a message for a multi-line response (RFC 1939 §3), with CRLF
/// line ends; `body_lines` limits the lines after the header (TOP).
pub fn stuffed(raw: &[u8], body_lines: Option<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 50 + 8);
    let mut in_body = false;
    let mut left = body_lines.unwrap_or(u64::MAX);
    let mut lines = raw.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if lines.peek().is_none() && line.is_empty() {
            break; // the message ended with a line break
        }
        if in_body {
            if left == 0 {
                break;
            }
            left -= 1;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
        if !in_body && line.is_empty() {
            in_body = true;
        }
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffing_and_top() {
        let m = b"Subject: x\r\n\r\n.hidden\r\nline2\nline3";
        assert_eq!(
            stuffed(m, None),
            b"Subject: x\r\n\r\n..hidden\r\nline2\r\nline3\r\n.\r\n"
        );
        assert_eq!(stuffed(m, Some(1)), b"Subject: x\r\n\r\n..hidden\r\n.\r\n");
        assert_eq!(stuffed(m, Some(0)), b"Subject: x\r\n\r\n.\r\n");
        assert_eq!(stuffed(b"a\r\n", None), b"a\r\n.\r\n");
        assert_eq!(stuffed(b"", None), b".\r\n");
    }
}
