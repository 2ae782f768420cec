//! A typed command written back to the wire, as a client would send it:
//! the inverse of `parse`, so that `parse(emit(c)) == c` for every command
//! `parse` can return (the round-trip property tests and the fuzz target
//! check exactly that).
//!
//! Imports the parent's types and string writers. Invariants: literals are
//! written inline (`{n}` CRLF and the bytes), the form `parse` takes; every
//! choice the grammar leaves open is made one way (flags as a list, FETCH
//! items as a list, dates in UTC unless the year would leave 1000..=9999).

use super::encode::{push_astring, push_string};
use super::*;

/// The bytes of `cmd`, without the final CRLF.
pub fn command(cmd: &Command) -> Vec<u8> {
    let mut out = cmd.tag.as_bytes().to_vec();
    out.push(b' ');
    kind(&mut out, &cmd.kind);
    out
}

fn word(out: &mut Vec<u8>, w: &str) {
    out.extend_from_slice(w.as_bytes());
}

fn sp_astring(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b' ');
    push_astring(out, bytes);
}

fn kind(out: &mut Vec<u8>, kind: &Kind) {
    match kind {
        Kind::Capability => word(out, "CAPABILITY"),
        Kind::Noop => word(out, "NOOP"),
        Kind::Logout => word(out, "LOGOUT"),
        Kind::StartTls => word(out, "STARTTLS"),
        Kind::Login { user, password } => {
            word(out, "LOGIN");
            sp_astring(out, user);
            sp_astring(out, password);
        }
        Kind::Authenticate { mechanism, initial } => {
            word(out, "AUTHENTICATE ");
            word(out, mechanism);
            if let Some(initial) = initial {
                out.push(b' ');
                out.extend_from_slice(initial);
            }
        }
        Kind::Id => word(out, "ID NIL"),
        Kind::Enable(caps) => {
            word(out, "ENABLE");
            for c in caps {
                out.push(b' ');
                word(out, c);
            }
        }
        Kind::Select(s) => select(out, s),
        Kind::Create(m) => mailbox_command(out, "CREATE", m),
        Kind::Delete(m) => mailbox_command(out, "DELETE", m),
        Kind::Rename(from, to) => {
            word(out, "RENAME");
            sp_astring(out, from);
            sp_astring(out, to);
        }
        Kind::Subscribe(m) => mailbox_command(out, "SUBSCRIBE", m),
        Kind::Unsubscribe(m) => mailbox_command(out, "UNSUBSCRIBE", m),
        Kind::List {
            reference,
            patterns,
            options,
        } => list(out, reference, patterns, options),
        Kind::Lsub { reference, pattern } => {
            word(out, "LSUB");
            sp_astring(out, reference);
            out.push(b' ');
            list_pattern(out, pattern);
        }
        Kind::Namespace => word(out, "NAMESPACE"),
        Kind::Status { mailbox, items } => {
            word(out, "STATUS");
            sp_astring(out, mailbox);
            out.push(b' ');
            status_items(out, items);
        }
        Kind::Append(a) => append(out, a),
        Kind::Replace(r) => replace(out, r),
        Kind::GetMetadata(g) => {
            word(out, "GETMETADATA");
            let mut opts = Vec::new();
            if let Some(n) = g.max_size {
                opts.push(format!("MAXSIZE {n}"));
            }
            match g.depth {
                MetadataDepth::Zero => {}
                MetadataDepth::One => opts.push("DEPTH 1".into()),
                MetadataDepth::Infinity => opts.push("DEPTH infinity".into()),
            }
            if !opts.is_empty() {
                word(out, &format!(" ({})", opts.join(" ")));
            }
            out.push(b' ');
            push_astring(out, &g.mailbox);
            word(out, " (");
            for (i, e) in g.entries.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                push_astring(out, e.as_bytes());
            }
            out.push(b')');
        }
        Kind::SetMetadata(m) => {
            word(out, "SETMETADATA");
            sp_astring(out, &m.mailbox);
            word(out, " (");
            for (i, (name, value)) in m.entries.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                push_astring(out, name.as_bytes());
                out.push(b' ');
                match value {
                    Some(v) => literal(out, v),
                    None => word(out, "NIL"),
                }
            }
            out.push(b')');
        }
        Kind::Idle => word(out, "IDLE"),
        Kind::Check => word(out, "CHECK"),
        Kind::Close => word(out, "CLOSE"),
        Kind::Unselect => word(out, "UNSELECT"),
        Kind::Unauthenticate => word(out, "UNAUTHENTICATE"),
        Kind::Expunge(None) => word(out, "EXPUNGE"),
        Kind::Expunge(Some(set)) => {
            word(out, "UID EXPUNGE ");
            seq_set(out, set);
        }
        Kind::Search(s) => {
            uid_prefix(out, s.uid, "SEARCH");
            return_options(out, &s.ret);
            out.push(b' ');
            search_key(out, &s.key, true);
        }
        Kind::Sort(s) => {
            uid_prefix(out, s.uid, "SORT");
            return_options(out, &s.ret);
            word(out, " (");
            let keys: Vec<String> = s
                .keys
                .iter()
                .map(|&(by, reverse)| {
                    let name = sort_by(by);
                    if reverse {
                        format!("REVERSE {name}")
                    } else {
                        name.to_string()
                    }
                })
                .collect();
            word(out, &keys.join(" "));
            word(out, ") UTF-8 ");
            search_key(out, &s.key, true);
        }
        Kind::Thread(t) => {
            uid_prefix(out, t.uid, "THREAD ");
            word(
                out,
                match t.algorithm {
                    ThreadBy::OrderedSubject => "ORDEREDSUBJECT",
                    ThreadBy::References => "REFERENCES",
                },
            );
            word(out, " UTF-8 ");
            search_key(out, &t.key, true);
        }
        Kind::Compress(m) => {
            word(out, "COMPRESS ");
            word(out, m);
        }
        Kind::Fetch(f) => fetch(out, f),
        Kind::Store(s) => store(out, s),
        Kind::Copy(c) => copy(out, "COPY ", c),
        Kind::Move(c) => copy(out, "MOVE ", c),
        Kind::GetQuota(m) => mailbox_command(out, "GETQUOTA", m),
        Kind::GetQuotaRoot(m) => mailbox_command(out, "GETQUOTAROOT", m),
        Kind::SetQuota => word(out, "SETQUOTA"),
    }
}

fn mailbox_command(out: &mut Vec<u8>, name: &str, mailbox: &[u8]) {
    word(out, name);
    sp_astring(out, mailbox);
}

fn uid_prefix(out: &mut Vec<u8>, uid: bool, rest: &str) {
    if uid {
        word(out, "UID ");
    }
    word(out, rest);
}

fn select(out: &mut Vec<u8>, s: &Select) {
    word(out, if s.read_only { "EXAMINE" } else { "SELECT" });
    sp_astring(out, &s.mailbox);
    let mut params = Vec::new();
    if s.condstore {
        params.push(b"CONDSTORE".to_vec());
    }
    if let Some(q) = &s.qresync {
        let mut p = format!("QRESYNC ({} {}", q.uidvalidity, q.modseq).into_bytes();
        if let Some(known) = &q.known_uids {
            p.push(b' ');
            seq_set(&mut p, known);
        }
        p.push(b')');
        params.push(p);
    }
    if !params.is_empty() {
        word(out, " (");
        out.extend_from_slice(&params.join(&b' '));
        out.push(b')');
    }
}

fn list(out: &mut Vec<u8>, reference: &[u8], patterns: &[Vec<u8>], o: &ListOptions) {
    word(out, "LIST");
    let mut selection = Vec::new();
    if o.subscribed_only {
        selection.push("SUBSCRIBED");
    }
    if o.special_use_only {
        selection.push("SPECIAL-USE");
    }
    if o.recursive_match {
        selection.push("RECURSIVEMATCH");
    }
    if !selection.is_empty() {
        word(out, " (");
        word(out, &selection.join(" "));
        out.push(b')');
    }
    sp_astring(out, reference);
    out.push(b' ');
    if let [only] = patterns {
        list_pattern(out, only);
    } else {
        out.push(b'(');
        for (i, p) in patterns.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            list_pattern(out, p);
        }
        out.push(b')');
    }
    // The SUBSCRIBED selection option implies RETURN (SUBSCRIBED).
    let mut returns = Vec::new();
    if o.return_subscribed && !o.subscribed_only {
        returns.push(b"SUBSCRIBED".to_vec());
    }
    if o.return_special_use {
        returns.push(b"SPECIAL-USE".to_vec());
    }
    if !o.return_status.is_empty() {
        let mut s = b"STATUS ".to_vec();
        status_items(&mut s, &o.return_status);
        returns.push(s);
    }
    if let Some(m) = &o.return_metadata {
        let mut s = b"METADATA (".to_vec();
        if let Some(max) = m.max_size {
            s.extend_from_slice(format!("MAXSIZE {max} ").as_bytes());
        }
        for (i, e) in m.entries.iter().enumerate() {
            if i > 0 {
                s.push(b' ');
            }
            push_astring(&mut s, e.as_bytes());
        }
        s.push(b')');
        returns.push(s);
    }
    if !returns.is_empty() {
        word(out, " RETURN (");
        out.extend_from_slice(&returns.join(&b' '));
        out.push(b')');
    }
}

/// A LIST pattern: as an atom with `%` and `*` when it can be one.
fn list_pattern(out: &mut Vec<u8>, p: &[u8]) {
    if !p.is_empty() && p.iter().all(|&c| super::lexer::is_list_char(c)) {
        out.extend_from_slice(p);
    } else {
        push_string(out, p);
    }
}

fn status_items(out: &mut Vec<u8>, items: &[StatusItem]) {
    let names: Vec<&str> = items
        .iter()
        .map(|i| match i {
            StatusItem::Messages => "MESSAGES",
            StatusItem::Recent => "RECENT",
            StatusItem::UidNext => "UIDNEXT",
            StatusItem::UidValidity => "UIDVALIDITY",
            StatusItem::Unseen => "UNSEEN",
            StatusItem::Deleted => "DELETED",
            StatusItem::Size => "SIZE",
            StatusItem::HighestModSeq => "HIGHESTMODSEQ",
            StatusItem::MailboxId => "MAILBOXID",
        })
        .collect();
    out.push(b'(');
    word(out, &names.join(" "));
    out.push(b')');
}

fn append(out: &mut Vec<u8>, a: &Append) {
    word(out, "APPEND");
    sp_astring(out, &a.mailbox);
    for m in &a.messages {
        append_message(out, m);
    }
}

fn replace(out: &mut Vec<u8>, r: &Replace) {
    uid_prefix(out, r.uid, &format!("REPLACE {}", r.number));
    sp_astring(out, &r.mailbox);
    append_message(out, &r.message);
}

/// ` [flags] [date] literal`
fn append_message(out: &mut Vec<u8>, m: &AppendMessage) {
    if m.flags != FlagList::default() {
        out.push(b' ');
        flag_list(out, &m.flags);
    }
    if let Some(date) = m.date {
        out.push(b' ');
        date_time(out, date);
    }
    out.push(b' ');
    match &m.data {
        AppendData::Literal { message, binary } => {
            if *binary {
                out.push(b'~');
            }
            literal(out, message);
        }
        AppendData::Catenate(parts) => {
            word(out, "CATENATE (");
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                match part {
                    CatPart::Text(bytes) => {
                        word(out, "TEXT ");
                        literal(out, bytes);
                    }
                    CatPart::Url(url) => {
                        word(out, "URL");
                        sp_astring(out, url.as_bytes());
                    }
                }
            }
            out.push(b')');
        }
    }
}

fn literal(out: &mut Vec<u8>, bytes: &[u8]) {
    word(out, &format!("{{{}}}\r\n", bytes.len()));
    out.extend_from_slice(bytes);
}

/// `"dd-Mon-yyyy hh:mm:ss +zzzz"`: in UTC, or with the smallest zone that
/// keeps the year within what `parse_date` takes.
fn date_time(out: &mut Vec<u8>, unix: i64) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let offsets = [0i64, 23 * 3600 + 59 * 60, -(23 * 3600 + 59 * 60)];
    for offset in offsets {
        let local = unix + offset;
        let (y, m, d) = crate::util::civil_from_days(local.div_euclid(86_400));
        if !(1000..=9999).contains(&y) {
            continue;
        }
        let secs = local.rem_euclid(86_400);
        let zone = offset / 60;
        let month = MONTHS.get((m as usize).saturating_sub(1)).unwrap_or(&"Jan");
        word(
            out,
            &format!(
                "\"{d}-{month}-{y} {:02}:{:02}:{:02} {}{:02}{:02}\"",
                secs / 3600,
                secs / 60 % 60,
                secs % 60,
                if zone < 0 { '-' } else { '+' },
                zone.abs() / 60,
                zone.abs() % 60
            ),
        );
        return;
    }
    // No zone brings it within range: a date `parse` never returns.
    word(out, "\"1-Jan-1000 00:00:00 +0000\"");
}

fn flag_list(out: &mut Vec<u8>, f: &FlagList) {
    let mut names: Vec<String> = [
        (SEEN, "\\Seen"),
        (ANSWERED, "\\Answered"),
        (FLAGGED, "\\Flagged"),
        (DELETED, "\\Deleted"),
        (DRAFT, "\\Draft"),
    ]
    .iter()
    .filter(|(bit, _)| f.system & bit != 0)
    .map(|(_, name)| name.to_string())
    .collect();
    names.extend(f.keywords.iter().cloned());
    names.extend(f.invalid.iter().cloned());
    out.push(b'(');
    word(out, &names.join(" "));
    out.push(b')');
}

pub(super) fn seq_set(out: &mut Vec<u8>, set: &SeqSet) {
    if set.is_saved() {
        out.push(b'$');
        return;
    }
    let num = |n: &SeqNum| match n {
        SeqNum::Num(n) => n.to_string(),
        SeqNum::Star => "*".to_string(),
    };
    let ranges: Vec<String> = set
        .0
        .iter()
        .map(|(a, b)| {
            if a == b {
                num(a)
            } else {
                format!("{}:{}", num(a), num(b))
            }
        })
        .collect();
    word(out, &ranges.join(","));
}

fn search_return(r: SearchReturn) -> String {
    match r {
        SearchReturn::Min => "MIN".into(),
        SearchReturn::Max => "MAX".into(),
        SearchReturn::All => "ALL".into(),
        SearchReturn::Count => "COUNT".into(),
        SearchReturn::Save => "SAVE".into(),
        SearchReturn::Partial(a, b) => format!("PARTIAL {}", window_range(a, b)),
    }
}

/// `1:100` or `-1:-100`.
pub fn window_range(a: i64, b: i64) -> String {
    format!("{a}:{b}")
}

fn return_options(out: &mut Vec<u8>, ret: &Option<Vec<SearchReturn>>) {
    if let Some(ret) = ret {
        word(out, " RETURN (");
        let names: Vec<String> = ret.iter().map(|r| search_return(*r)).collect();
        word(out, &names.join(" "));
        out.push(b')');
    }
}

fn sort_by(by: SortBy) -> &'static str {
    match by {
        SortBy::Arrival => "ARRIVAL",
        SortBy::DisplayFrom => "DISPLAYFROM",
        SortBy::DisplayTo => "DISPLAYTO",
        SortBy::Cc => "CC",
        SortBy::Date => "DATE",
        SortBy::From => "FROM",
        SortBy::Size => "SIZE",
        SortBy::Subject => "SUBJECT",
        SortBy::To => "TO",
    }
}

fn date(out: &mut Vec<u8>, d: &Date) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS
        .get(usize::from(d.month).saturating_sub(1))
        .unwrap_or(&"Jan");
    word(out, &format!("{}-{month}-{}", d.day, d.year));
}

/// A search key; `top` keys are the command's own list (an `And` there is
/// written without parentheses).
fn search_key(out: &mut Vec<u8>, key: &SearchKey, top: bool) {
    let flag_name = |bit: u8| match bit {
        SEEN => "SEEN",
        ANSWERED => "ANSWERED",
        FLAGGED => "FLAGGED",
        DELETED => "DELETED",
        _ => "DRAFT",
    };
    match key {
        SearchKey::All => word(out, "ALL"),
        SearchKey::Seq(set) => seq_set(out, set),
        SearchKey::Uid(set) => {
            word(out, "UID ");
            seq_set(out, set);
        }
        SearchKey::Flag(bit, true) => word(out, flag_name(*bit)),
        SearchKey::Flag(bit, false) => {
            word(out, "UN");
            word(out, flag_name(*bit));
        }
        SearchKey::Keyword(k, set) => {
            word(out, if *set { "KEYWORD " } else { "UNKEYWORD " });
            word(out, k);
        }
        SearchKey::Recent => word(out, "RECENT"),
        SearchKey::Larger(n) => word(out, &format!("LARGER {n}")),
        SearchKey::Smaller(n) => word(out, &format!("SMALLER {n}")),
        SearchKey::Before(d) => dated(out, "BEFORE ", d),
        SearchKey::On(d) => dated(out, "ON ", d),
        SearchKey::Since(d) => dated(out, "SINCE ", d),
        SearchKey::Older(n) => word(out, &format!("OLDER {n}")),
        SearchKey::EmailId(id) => word(out, &format!("EMAILID {id}")),
        SearchKey::ThreadId(id) => word(out, &format!("THREADID {id}")),
        SearchKey::SavedBefore(d) => dated(out, "SAVEDBEFORE ", d),
        SearchKey::SavedOn(d) => dated(out, "SAVEDON ", d),
        SearchKey::SavedSince(d) => dated(out, "SAVEDSINCE ", d),
        SearchKey::SaveDateSupported => word(out, "SAVEDATESUPPORTED"),
        SearchKey::Younger(n) => word(out, &format!("YOUNGER {n}")),
        SearchKey::SentBefore(d) => dated(out, "SENTBEFORE ", d),
        SearchKey::SentOn(d) => dated(out, "SENTON ", d),
        SearchKey::SentSince(d) => dated(out, "SENTSINCE ", d),
        SearchKey::Subject(s) => text(out, "SUBJECT", s),
        SearchKey::From(s) => text(out, "FROM", s),
        SearchKey::To(s) => text(out, "TO", s),
        SearchKey::Cc(s) => text(out, "CC", s),
        SearchKey::Bcc(s) => text(out, "BCC", s),
        SearchKey::Header(f, v) => {
            text(out, "HEADER", f);
            sp_astring(out, v.as_bytes());
        }
        SearchKey::Body(s) => text(out, "BODY", s),
        SearchKey::Text(s) => text(out, "TEXT", s),
        SearchKey::ModSeq(m) => word(out, &format!("MODSEQ {m}")),
        SearchKey::Not(k) => {
            word(out, "NOT ");
            search_key(out, k, false);
        }
        SearchKey::Or(a, b) => {
            word(out, "OR ");
            search_key(out, a, false);
            out.push(b' ');
            search_key(out, b, false);
        }
        SearchKey::And(keys) => {
            if !top {
                out.push(b'(');
            }
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                search_key(out, k, false);
            }
            if !top {
                out.push(b')');
            }
        }
    }
}

fn dated(out: &mut Vec<u8>, name: &str, d: &Date) {
    word(out, name);
    date(out, d);
}

fn text(out: &mut Vec<u8>, name: &str, s: &str) {
    word(out, name);
    sp_astring(out, s.as_bytes());
}

fn fetch(out: &mut Vec<u8>, f: &Fetch) {
    uid_prefix(out, f.uid, "FETCH ");
    seq_set(out, &f.set);
    word(out, " (");
    for (i, a) in f.atts.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        fetch_att(out, a);
    }
    out.push(b')');
    let mut modifiers = Vec::new();
    if let Some(n) = f.changed_since {
        modifiers.push(format!("CHANGEDSINCE {n}"));
    }
    if f.vanished {
        modifiers.push("VANISHED".into());
    }
    if let Some((a, b)) = f.partial {
        modifiers.push(format!("PARTIAL {}", window_range(a, b)));
    }
    if !modifiers.is_empty() {
        word(out, &format!(" ({})", modifiers.join(" ")));
    }
}

fn fetch_att(out: &mut Vec<u8>, a: &FetchAtt) {
    match a {
        FetchAtt::Uid => word(out, "UID"),
        FetchAtt::Flags => word(out, "FLAGS"),
        FetchAtt::InternalDate => word(out, "INTERNALDATE"),
        FetchAtt::Size => word(out, "RFC822.SIZE"),
        FetchAtt::Envelope => word(out, "ENVELOPE"),
        FetchAtt::Body => word(out, "BODY"),
        FetchAtt::BodyStructure => word(out, "BODYSTRUCTURE"),
        FetchAtt::ModSeq => word(out, "MODSEQ"),
        FetchAtt::Preview { lazy: false } => word(out, "PREVIEW"),
        FetchAtt::Preview { lazy: true } => word(out, "PREVIEW (LAZY)"),
        FetchAtt::EmailId => word(out, "EMAILID"),
        FetchAtt::ThreadId => word(out, "THREADID"),
        FetchAtt::SaveDate => word(out, "SAVEDATE"),
        FetchAtt::Section {
            legacy: Some(name), ..
        } => word(out, name),
        FetchAtt::Section {
            peek,
            section,
            partial,
            legacy: None,
        } => {
            word(out, if *peek { "BODY.PEEK[" } else { "BODY[" });
            section_spec(out, section);
            out.push(b']');
            partial_range(out, *partial);
        }
        FetchAtt::Binary {
            peek,
            path,
            partial,
        } => {
            word(out, if *peek { "BINARY.PEEK[" } else { "BINARY[" });
            part_path(out, path);
            out.push(b']');
            partial_range(out, *partial);
        }
        FetchAtt::BinarySize { path } => {
            word(out, "BINARY.SIZE[");
            part_path(out, path);
            out.push(b']');
        }
    }
}

fn part_path(out: &mut Vec<u8>, path: &[u32]) {
    let parts: Vec<String> = path.iter().map(u32::to_string).collect();
    word(out, &parts.join("."));
}

fn partial_range(out: &mut Vec<u8>, partial: Option<(u32, u32)>) {
    if let Some((origin, count)) = partial {
        word(out, &format!("<{origin}.{count}>"));
    }
}

fn section_spec(out: &mut Vec<u8>, s: &SectionSpec) {
    part_path(out, &s.path);
    let text = match &s.text {
        SectionText::Whole => return,
        SectionText::Header => "HEADER",
        SectionText::Text => "TEXT",
        SectionText::Mime => "MIME",
        SectionText::HeaderFields { not, fields } => {
            if !s.path.is_empty() {
                out.push(b'.');
            }
            word(
                out,
                if *not {
                    "HEADER.FIELDS.NOT ("
                } else {
                    "HEADER.FIELDS ("
                },
            );
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                push_astring(out, f.as_bytes());
            }
            out.push(b')');
            return;
        }
    };
    if !s.path.is_empty() {
        out.push(b'.');
    }
    word(out, text);
}

fn store(out: &mut Vec<u8>, s: &Store) {
    uid_prefix(out, s.uid, "STORE ");
    seq_set(out, &s.set);
    if let Some(n) = s.unchanged_since {
        word(out, &format!(" (UNCHANGEDSINCE {n})"));
    }
    out.push(b' ');
    word(
        out,
        match s.op {
            StoreOp::Add => "+",
            StoreOp::Remove => "-",
            StoreOp::Replace => "",
        },
    );
    word(out, if s.silent { "FLAGS.SILENT " } else { "FLAGS " });
    flag_list(out, &s.flags);
}

fn copy(out: &mut Vec<u8>, name: &str, c: &CopyTo) {
    uid_prefix(out, c.uid, name);
    seq_set(out, &c.set);
    sp_astring(out, &c.mailbox);
}
