//! SEARCH, SORT and THREAD: search keys turned into store criteria over
//! the session's view, the saved result `$` (SEARCHRES, RFC 5182), and the
//! ESEARCH (RFC 4731), SORT and THREAD (RFC 5256) responses.
//!
//! Imports the session's types, `view`, `proto::imap` and the `store`
//! interface. Invariants: every number answered is a UID or a sequence
//! number of the view; SORT and THREAD only see messages the client has
//! been told about; a failed `RETURN (SAVE)` leaves `$` empty.

use std::io;

use crate::imap::session::{Io, Next, User};
use crate::imap::view::{Moment, View, uid_set_text};
use crate::proto::imap::{self as proto, Search, SearchKey, SearchReturn, Sort, Thread};
use crate::store::{Criteria, Date, SortCriterion, SortKey, ThreadAlgorithm, ThreadNode, UidSet};

pub async fn search(
    io: &mut Io<'_>,
    user: &mut User,
    view: &mut View,
    tag: &str,
    search: Search,
) -> io::Result<Next> {
    let Search { uid, ret, key } = search;
    // IMAP4rev2 answers every SEARCH with ESEARCH (RFC 9051 §6.4.4).
    let ret = ret.or_else(|| user.rev2.then(|| vec![SearchReturn::All]));
    let save = ret
        .as_ref()
        .is_some_and(|o| o.contains(&SearchReturn::Save));
    if save {
        // A failed SEARCH ... RETURN (SAVE) leaves `$` empty (RFC 5182 §2.1).
        view.saved.clear();
    }
    if key_count(&key) > MAX_KEYS {
        return io.no(tag, TOO_MANY_KEYS).await;
    }
    let mut uses_modseq = false;
    let criteria = match criteria(&key, view, &mut uses_modseq) {
        Ok(c) => c,
        Err(e) => return io.bad(Some(tag), &e).await,
    };
    if uses_modseq {
        let highest = user.enable_condstore(Some(view));
        io.conn.write_all(&highest).await?;
    }
    let found = match user.session.search(&view.name, criteria).await {
        Ok(f) => f,
        Err(e) => return io.store_failed(tag, &e).await,
    };
    let hits: Vec<u32> = view.members(&UidSet::from_uids(&found.uids));
    let numbers: Vec<u32> = if uid {
        hits.clone()
    } else {
        hits.iter().filter_map(|&u| view.seq_of(u)).collect()
    };
    let mut modseq = found
        .highest_modseq
        .filter(|_| uses_modseq && !hits.is_empty());
    if let (Some(_), Some(opts)) = (modseq, &ret) {
        // MIN and/or MAX alone: the MODSEQ is that of the messages returned
        // (RFC 7162 §3.1.5, RFC 4731 §3.2).
        let returned = returned_by_min_max(opts, &hits);
        if !returned.is_empty() {
            match user
                .session
                .fetch(&view.name, UidSet::from_uids(&returned), Default::default())
                .await
            {
                Ok(f) => modseq = f.iter().map(|m| m.meta.modseq).max(),
                Err(e) => return io.store_failed(tag, &e).await,
            }
        }
    }
    let mut line = String::new();
    match ret {
        None => {
            line.push_str("* SEARCH");
            for n in &numbers {
                line.push_str(&format!(" {n}"));
            }
            if let Some(m) = modseq {
                line.push_str(&format!(" (MODSEQ {m})"));
            }
        }
        Some(opts) => {
            if save {
                view.saved = saved_result(&opts, &hits);
            }
            if opts.iter().any(|o| *o != SearchReturn::Save) {
                line.push_str(&esearch_line(tag, uid, &opts, &numbers, modseq, false));
            }
        }
    }
    answer(
        io,
        user,
        view,
        tag,
        Answer {
            verb: "SEARCH",
            uid,
            line: &line,
        },
    )
    .await
}

/// Keys one SEARCH, SORT or THREAD may combine. Each key compiles to at
/// most 32 SQL parameters, and SQLite takes 32,766.
const MAX_KEYS: usize = 1000;
const TOO_MANY_KEYS: &str = "[LIMIT] a search may combine at most 1000 keys; split it";

/// The keys in a search, NOT and OR included.
fn key_count(key: &SearchKey) -> usize {
    match key {
        SearchKey::Not(k) => 1 + key_count(k),
        SearchKey::Or(a, b) => 1 + key_count(a) + key_count(b),
        SearchKey::And(keys) => keys.iter().map(key_count).sum(),
        _ => 1,
    }
}

/// The store criteria of a SORT or THREAD, limited to the messages this
/// session has been told about (so every UID has a sequence number).
/// A key that enables CONDSTORE has that said first; an `Err` is the
/// client's mistake, for a `BAD`.
async fn view_criteria(
    io: &mut Io<'_>,
    user: &mut User,
    view: &View,
    key: &SearchKey,
) -> io::Result<Result<Criteria, String>> {
    let mut uses_modseq = false;
    let c = match criteria(key, view, &mut uses_modseq) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    if uses_modseq {
        let highest = user.enable_condstore(Some(view));
        io.conn.write_all(&highest).await?;
    }
    // Messages the client has not been told about yet all have higher
    // UIDs than the view's last (UIDs only grow), so one range is
    // exact however many gaps expunges left.
    let known = Criteria::Uid(match view.max_uid() {
        Some(max) => UidSet::range(1, max),
        None => UidSet(Vec::new()),
    });
    Ok(Ok(Criteria::And(vec![known, c])))
}

/// The number a client sees for a UID: itself under `UID`, else its
/// sequence number.
fn number(view: &View, uid_mode: bool, uid: u32) -> Option<u32> {
    if uid_mode {
        Some(uid)
    } else {
        view.seq_of(uid)
    }
}

pub async fn sort(
    io: &mut Io<'_>,
    user: &mut User,
    view: &mut View,
    tag: &str,
    sort: Sort,
) -> io::Result<Next> {
    if key_count(&sort.key) > MAX_KEYS {
        return io.no(tag, TOO_MANY_KEYS).await;
    }
    let criteria = match view_criteria(io, user, view, &sort.key).await? {
        Ok(c) => c,
        Err(e) => return io.bad(Some(tag), &e).await,
    };
    let keys = sort
        .keys
        .iter()
        .map(|&(by, reverse)| SortCriterion {
            key: match by {
                proto::SortBy::Arrival => SortKey::Arrival,
                proto::SortBy::Cc => SortKey::Cc,
                proto::SortBy::Date => SortKey::Date,
                proto::SortBy::From => SortKey::From,
                proto::SortBy::Size => SortKey::Size,
                proto::SortBy::Subject => SortKey::Subject,
                proto::SortBy::To => SortKey::To,
                proto::SortBy::DisplayFrom => SortKey::DisplayFrom,
                proto::SortBy::DisplayTo => SortKey::DisplayTo,
            },
            reverse,
        })
        .collect();
    let uids = match user.session.sort(&view.name, criteria, keys).await {
        Ok(u) => u,
        Err(e) => return io.store_failed(tag, &e).await,
    };
    let numbers: Vec<u32> = uids
        .into_iter()
        .filter_map(|u| number(view, sort.uid, u))
        .collect();
    let line = match &sort.ret {
        // ESORT (RFC 5267 §3): ESEARCH, the numbers in sort order.
        Some(opts) => esearch_line(tag, sort.uid, opts, &numbers, None, true),
        None => {
            let mut line = String::from("* SORT");
            for n in numbers {
                line.push_str(&format!(" {n}"));
            }
            line
        }
    };
    answer(
        io,
        user,
        view,
        tag,
        Answer {
            verb: "SORT",
            uid: sort.uid,
            line: &line,
        },
    )
    .await
}

pub async fn thread(
    io: &mut Io<'_>,
    user: &mut User,
    view: &mut View,
    tag: &str,
    thread: Thread,
) -> io::Result<Next> {
    if key_count(&thread.key) > MAX_KEYS {
        return io.no(tag, TOO_MANY_KEYS).await;
    }
    let criteria = match view_criteria(io, user, view, &thread.key).await? {
        Ok(c) => c,
        Err(e) => return io.bad(Some(tag), &e).await,
    };
    let algorithm = match thread.algorithm {
        proto::ThreadBy::OrderedSubject => ThreadAlgorithm::OrderedSubject,
        proto::ThreadBy::References => ThreadAlgorithm::References,
    };
    let threads = match user.session.thread(&view.name, criteria, algorithm).await {
        Ok(t) => t,
        Err(e) => return io.store_failed(tag, &e).await,
    };
    let mut line = String::from("* THREAD ");
    let mut number = |u: u32| number(view, thread.uid, u);
    for t in &threads {
        line.push('(');
        thread_members(t, &mut number, &mut line);
        line.push(')');
    }
    let line = line.trim_end().to_string();
    answer(
        io,
        user,
        view,
        tag,
        Answer {
            verb: "THREAD",
            uid: thread.uid,
            line: &line,
        },
    )
    .await
}

/// The untagged line of a SEARCH, SORT or THREAD, and how it was asked.
struct Answer<'a> {
    verb: &'a str,
    uid: bool,
    line: &'a str,
}

/// Ends a SEARCH, SORT or THREAD: its untagged line, then pending updates
/// (no EXPUNGE unless answering with UIDs), then the tagged OK.
async fn answer(
    io: &mut Io<'_>,
    user: &mut User,
    view: &mut View,
    tag: &str,
    a: Answer<'_>,
) -> io::Result<Next> {
    let Answer { verb, uid, line } = a;
    if !line.is_empty() {
        io.conn.reply(line).await?;
    }
    let moment = if uid { Moment::Any } else { Moment::NoExpunge };
    io.updates(user, Some(view), moment).await?;
    io.ok(tag, &format!("{verb} completed")).await
}

/// The matches MIN and MAX return when they are the only results asked
/// for besides SAVE; empty otherwise.
fn returned_by_min_max(opts: &[SearchReturn], hits: &[u32]) -> Vec<u32> {
    let only_min_max = opts
        .iter()
        .any(|o| matches!(o, SearchReturn::Min | SearchReturn::Max))
        && !opts
            .iter()
            .any(|o| matches!(o, SearchReturn::All | SearchReturn::Count));
    let mut kept = Vec::new();
    if only_min_max {
        if opts.contains(&SearchReturn::Min) {
            kept.extend(hits.first());
        }
        if opts.contains(&SearchReturn::Max) {
            kept.extend(hits.last());
        }
        kept.dedup();
    }
    kept
}

/// What `RETURN (SAVE)` keeps as `$` (RFC 5182 §2.1): the minimum and/or
/// maximum when only those were asked for with it, else every match.
fn saved_result(opts: &[SearchReturn], hits: &[u32]) -> Vec<u32> {
    if let Some(&SearchReturn::Partial(a, b)) =
        opts.iter().find(|o| matches!(o, SearchReturn::Partial(..)))
    {
        return window(hits, a, b).to_vec();
    }
    let kept = returned_by_min_max(opts, hits);
    if kept.is_empty() { hits.to_vec() } else { kept }
}

/// A result as a set: ascending ranges for SEARCH, runs in the given
/// order for SORT.
fn set_text(numbers: &[u32], sorted: bool) -> String {
    if sorted {
        ordered_set_text(numbers)
    } else {
        uid_set_text(&UidSet::from_uids(numbers))
    }
}

/// The part of a result a PARTIAL range names (RFC 9394 §2): positions
/// `a..=b` from 1, or with negative numbers from the end.
pub fn window(numbers: &[u32], a: i64, b: i64) -> &[u32] {
    let len = numbers.len() as i64;
    let (from, to) = if a < 0 {
        (len + a.min(b), len + a.max(b) + 1)
    } else {
        (a.min(b) - 1, a.max(b))
    };
    let (from, to) = (from.clamp(0, len) as usize, to.clamp(0, len) as usize);
    numbers.get(from..to.max(from)).unwrap_or_default()
}

/// `3:5,9` for numbers in the order given: runs that count up by one
/// become ranges (ESORT keeps sort order, RFC 5267 §3.2).
fn ordered_set_text(numbers: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(&start) = numbers.get(i) {
        let mut end = start;
        while numbers.get(i + 1) == Some(&end.wrapping_add(1)) {
            end += 1;
            i += 1;
        }
        out.push(if end == start {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    out.join(",")
}

/// `* ESEARCH (TAG "t") [UID] …` with the requested return data (RFC 4731;
/// RFC 5267 for SORT, whose `numbers` are in sort order; RFC 9394 PARTIAL).
fn esearch_line(
    tag: &str,
    uid: bool,
    opts: &[SearchReturn],
    numbers: &[u32],
    modseq: Option<u64>,
    sorted: bool,
) -> String {
    let mut line = String::from("* ESEARCH (TAG ");
    let mut quoted = Vec::new();
    proto::push_string(&mut quoted, tag.as_bytes());
    line.push_str(&String::from_utf8_lossy(&quoted));
    line.push(')');
    if uid {
        line.push_str(" UID");
    }
    for o in opts {
        match o {
            SearchReturn::Min => {
                if let Some(n) = numbers.first() {
                    line.push_str(&format!(" MIN {n}"));
                }
            }
            SearchReturn::Max => {
                if let Some(n) = numbers.last() {
                    line.push_str(&format!(" MAX {n}"));
                }
            }
            SearchReturn::Count => line.push_str(&format!(" COUNT {}", numbers.len())),
            SearchReturn::All => {
                if !numbers.is_empty() {
                    line.push_str(&format!(" ALL {}", set_text(numbers, sorted)));
                }
            }
            SearchReturn::Partial(a, b) => {
                let part = window(numbers, *a, *b);
                let set = if part.is_empty() {
                    "NIL".to_string()
                } else {
                    set_text(part, sorted)
                };
                line.push_str(&format!(" PARTIAL ({} {set})", proto::window_range(*a, *b)));
            }
            SearchReturn::Save => {}
        }
    }
    if let Some(m) = modseq {
        line.push_str(&format!(" MODSEQ {m}"));
    }
    line
}

/// One thread in RFC 5256 §4 form without its outer parentheses: a
/// message, then its only reply after a space, or its replies each in
/// parentheses. Iterative, since reply chains can be long.
fn thread_members(
    root: &ThreadNode,
    number: &mut impl FnMut(u32) -> Option<u32>,
    out: &mut String,
) {
    enum Step<'a> {
        Node(&'a ThreadNode),
        Text(&'static str),
    }
    let mut stack = vec![Step::Node(root)];
    while let Some(step) = stack.pop() {
        let n = match step {
            Step::Text(t) => {
                out.push_str(t);
                continue;
            }
            Step::Node(n) => n,
        };
        if let Some(num) = n.uid.and_then(&mut *number) {
            out.push_str(&num.to_string());
            if !n.children.is_empty() {
                out.push(' ');
            }
        }
        match n.children.as_slice() {
            [] => {}
            [only] => stack.push(Step::Node(only)),
            many => {
                for c in many.iter().rev() {
                    stack.push(Step::Text(")"));
                    stack.push(Step::Node(c));
                    stack.push(Step::Text("("));
                }
            }
        }
    }
}

/// SEARCH keys to store criteria over this view.
fn criteria(key: &SearchKey, view: &View, modseq: &mut bool) -> Result<Criteria, String> {
    let date = |d: &proto::Date| Date {
        year: d.year,
        month: d.month,
        day: d.day,
    };
    Ok(match key {
        SearchKey::All => Criteria::All,
        SearchKey::Seq(s) if s.is_saved() => Criteria::Uid(view.resolve(s, false)?),
        SearchKey::Seq(s) => Criteria::Uid(view.resolve_search(s)),
        SearchKey::Uid(s) => Criteria::Uid(view.resolve(s, true)?),
        SearchKey::Flag(bit, set) => Criteria::Flag(*bit, *set),
        SearchKey::Keyword(k, set) => Criteria::Keyword(k.clone(), *set),
        SearchKey::Recent => Criteria::Uid(UidSet::from_uids(&view.recent)),
        SearchKey::Larger(n) => Criteria::Larger(*n),
        SearchKey::Smaller(n) => Criteria::Smaller(*n),
        SearchKey::Before(d) => Criteria::Before(date(d)),
        SearchKey::EmailId(id) => {
            object_id(id, 'M').map_or(Criteria::Uid(UidSet::default()), Criteria::EmailId)
        }
        SearchKey::ThreadId(id) => {
            object_id(id, 'T').map_or(Criteria::Uid(UidSet::default()), Criteria::ThreadId)
        }
        SearchKey::SavedBefore(d) => Criteria::SavedBefore(date(d)),
        SearchKey::SavedOn(d) => Criteria::SavedOn(date(d)),
        SearchKey::SavedSince(d) => Criteria::SavedSince(date(d)),
        SearchKey::SaveDateSupported => Criteria::All,
        SearchKey::Older(n) => Criteria::ArrivedBefore(crate::util::now_unix() - *n as i64),
        SearchKey::Younger(n) => Criteria::ArrivedSince(crate::util::now_unix() - *n as i64),
        SearchKey::On(d) => Criteria::On(date(d)),
        SearchKey::Since(d) => Criteria::Since(date(d)),
        SearchKey::SentBefore(d) => Criteria::SentBefore(date(d)),
        SearchKey::SentOn(d) => Criteria::SentOn(date(d)),
        SearchKey::SentSince(d) => Criteria::SentSince(date(d)),
        SearchKey::Subject(s) => Criteria::Subject(s.clone()),
        SearchKey::From(s) => Criteria::From(s.clone()),
        SearchKey::To(s) => Criteria::To(s.clone()),
        SearchKey::Cc(s) => Criteria::Cc(s.clone()),
        SearchKey::Bcc(s) => Criteria::Bcc(s.clone()),
        SearchKey::Header(f, v) => Criteria::Header(f.clone(), v.clone()),
        SearchKey::Body(s) => Criteria::Body(s.clone()),
        SearchKey::Text(s) => Criteria::Text(s.clone()),
        SearchKey::ModSeq(m) => {
            *modseq = true;
            Criteria::ModSeq(*m)
        }
        SearchKey::Not(k) => Criteria::Not(Box::new(criteria(k, view, modseq)?)),
        SearchKey::Or(a, b) => Criteria::Or(
            Box::new(criteria(a, view, modseq)?),
            Box::new(criteria(b, view, modseq)?),
        ),
        SearchKey::And(keys) => Criteria::And(
            keys.iter()
                .map(|k| criteria(k, view, modseq))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// The number in an object id this server hands out (`M12`, `T7`); any
/// other id matches nothing.
fn object_id(id: &str, prefix: char) -> Option<i64> {
    id.strip_prefix(prefix)?.parse().ok().filter(|n| *n != 0)
}
