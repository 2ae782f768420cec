//! SORT and THREAD (RFC 5256) over the rows a search matched: the sort keys
//! and both threading algorithms, ORDEREDSUBJECT and REFERENCES.
//!
//! Imports `store::mime` (base subjects) only; pure functions over
//! [`OrderRow`]s, so the algorithms are tested without a mailbox.
//! Invariants: every ordering ends with the UID as the last key, so results
//! are total and repeatable; every row given comes out exactly once (a sort
//! permutes, a thread forest holds each UID once); Message-ID links never
//! form a loop.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::mime;

/// One SORT key (RFC 5256 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
    /// SORT=DISPLAY (RFC 5957).
    DisplayFrom,
    DisplayTo,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortCriterion {
    pub key: SortKey,
    pub reverse: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThreadAlgorithm {
    OrderedSubject,
    References,
}

/// A thread: a message (`uid`) or a placeholder for one that is missing
/// (`None`, only ever at the top with two or more children), and its
/// replies in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadNode {
    pub uid: Option<u32>,
    pub children: Vec<ThreadNode>,
}

/// What sorting and threading read of one message.
#[derive(Clone, Debug, Default)]
pub struct OrderRow {
    pub uid: u32,
    /// INTERNALDATE, seconds since the epoch.
    pub arrival: i64,
    /// The Date header in UTC seconds, or the arrival time without one.
    pub date: i64,
    pub size: u64,
    /// The decoded Subject header.
    pub subject: String,
    /// The RFC 5256 base subject.
    pub base_subject: String,
    /// Local parts of the first From/To/Cc mailbox, lowercased.
    pub from: String,
    pub to: String,
    pub cc: String,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: String,
    /// SORT=DISPLAY keys: display name or address, lowercased.
    pub display_from: String,
    pub display_to: String,
}

/// Sorts rows by `keys`, then by UID (RFC 5256: ties go by sequence
/// number, which follows UID order).
pub fn sort(rows: &mut [OrderRow], keys: &[SortCriterion]) {
    rows.sort_by(|a, b| {
        for c in keys {
            let o = compare(a, b, c.key);
            let o = if c.reverse { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.uid.cmp(&b.uid)
    });
}

fn compare(a: &OrderRow, b: &OrderRow, key: SortKey) -> Ordering {
    match key {
        SortKey::Arrival => a.arrival.cmp(&b.arrival),
        SortKey::Cc => a.cc.cmp(&b.cc),
        SortKey::Date => a.date.cmp(&b.date),
        SortKey::From => a.from.cmp(&b.from),
        SortKey::Size => a.size.cmp(&b.size),
        SortKey::Subject => a.base_subject.cmp(&b.base_subject),
        SortKey::To => a.to.cmp(&b.to),
        SortKey::DisplayFrom => a.display_from.cmp(&b.display_from),
        SortKey::DisplayTo => a.display_to.cmp(&b.display_to),
    }
}

/// Threads rows with `algorithm`; threads and siblings come in order of
/// sent date (RFC 5256 §2.1 and §2.2).
pub fn thread(rows: Vec<OrderRow>, algorithm: ThreadAlgorithm) -> Vec<ThreadNode> {
    match algorithm {
        ThreadAlgorithm::OrderedSubject => ordered_subject(rows),
        ThreadAlgorithm::References => references(rows),
    }
}

/// ORDEREDSUBJECT: one thread per base subject, its earliest message the
/// parent of all the others, threads ordered by their first message.
fn ordered_subject(mut rows: Vec<OrderRow>) -> Vec<ThreadNode> {
    rows.sort_by(|a, b| {
        a.base_subject
            .cmp(&b.base_subject)
            .then(a.date.cmp(&b.date))
            .then(a.uid.cmp(&b.uid))
    });
    let mut threads: Vec<(i64, u32, ThreadNode)> = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let first = &rows[i];
        let mut j = i + 1;
        while j < rows.len() && rows[j].base_subject == first.base_subject {
            j += 1;
        }
        let children = rows[i + 1..j].iter().map(|r| leaf(r.uid)).collect();
        threads.push((
            first.date,
            first.uid,
            ThreadNode {
                uid: Some(first.uid),
                children,
            },
        ));
        i = j;
    }
    threads.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    threads.into_iter().map(|(_, _, t)| t).collect()
}

fn leaf(uid: u32) -> ThreadNode {
    ThreadNode {
        uid: Some(uid),
        children: Vec::new(),
    }
}

/// A container of the REFERENCES algorithm: a message or a placeholder for
/// a Message-ID only seen in references.
#[derive(Default)]
struct Container {
    row: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

/// The angle-bracketed message IDs in a header value, in order.
fn message_ids(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find('<') {
        let from_open = rest.get(open..).unwrap_or("");
        let Some(close) = from_open.find('>') else {
            break;
        };
        let (id, after) = from_open
            .split_at_checked(close + 1)
            .unwrap_or((from_open, ""));
        if id.len() > 2 {
            out.push(id);
        }
        rest = after;
    }
    out
}

struct Forest {
    nodes: Vec<Container>,
}

impl Forest {
    fn is_ancestor(&self, maybe: usize, of: usize) -> bool {
        let mut at = Some(of);
        // Parent links never form a loop, so this walk ends; the bound is
        // a second guard.
        for _ in 0..=self.nodes.len() {
            match at {
                Some(n) if n == maybe => return true,
                Some(n) => at = self.nodes[n].parent,
                None => return false,
            }
        }
        true
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.nodes[child].parent.take() {
            self.nodes[p].children.retain(|&c| c != child);
        }
    }

    /// Makes `parent` the parent of `child` unless that makes a loop.
    fn link(&mut self, parent: usize, child: usize) {
        if parent == child || self.is_ancestor(child, parent) {
            return;
        }
        self.unlink(child);
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }

    fn push(&mut self, row: Option<usize>) -> usize {
        self.nodes.push(Container {
            row,
            ..Container::default()
        });
        self.nodes.len() - 1
    }
}

/// REFERENCES (RFC 5256 §2.2): parent/child links from References (or
/// In-Reply-To), placeholders pruned, top-level threads with the same base
/// subject gathered, siblings ordered by sent date.
fn references(rows: Vec<OrderRow>) -> Vec<ThreadNode> {
    let mut forest = Forest { nodes: Vec::new() };
    let mut by_id: HashMap<String, usize> = HashMap::new();
    // Step 1: a container per message; duplicate or missing Message-IDs
    // get containers of their own that nothing can reference.
    for (i, r) in rows.iter().enumerate() {
        let id = r
            .message_id
            .as_deref()
            .and_then(|m| message_ids(m).first().map(|s| s.to_string()));
        let c = match id {
            Some(id) => match by_id.get(&id) {
                Some(&c) if forest.nodes[c].row.is_none() => {
                    forest.nodes[c].row = Some(i);
                    c
                }
                Some(_) => forest.push(Some(i)),
                None => {
                    let c = forest.push(Some(i));
                    by_id.insert(id, c);
                    c
                }
            },
            None => forest.push(Some(i)),
        };
        let mut refs = message_ids(&r.references);
        if refs.is_empty()
            && let Some(irt) = r.in_reply_to.as_deref()
        {
            refs = message_ids(irt).into_iter().take(1).collect();
        }
        let mut prev: Option<usize> = None;
        for id in &refs {
            let c = match by_id.get(*id) {
                Some(&c) => c,
                None => {
                    let c = forest.push(None);
                    by_id.insert(id.to_string(), c);
                    c
                }
            };
            if let Some(p) = prev
                && forest.nodes[c].parent.is_none()
            {
                forest.link(p, c);
            }
            prev = Some(c);
        }
        forest.unlink(c);
        if let Some(p) = prev {
            forest.link(p, c);
        }
    }
    drop(by_id);

    // Step 2: the root set, in creation order.
    let roots: Vec<usize> = (0..forest.nodes.len())
        .filter(|&n| forest.nodes[n].parent.is_none())
        .collect();
    let date = |row: usize| rows[row].date;

    // Step 4: prune placeholders into trees of owned nodes.
    let mut top: Vec<Tree> = Vec::new();
    for r in roots {
        let t = build(&forest, r);
        prune(t, &mut top, true);
    }

    // Step 5: gather top-level threads by base subject.
    let top = gather(top, &rows);

    // Step 6: order siblings by sent date, children before parents.
    let mut top: Vec<Tree> = top;
    for t in &mut top {
        sort_tree(t, &date);
    }
    sort_siblings(&mut top, &date);
    top.into_iter().map(|t| t.into_node(&rows)).collect()
}

/// An owned thread tree over row indexes; `row: None` is a placeholder.
struct Tree {
    row: Option<usize>,
    children: Vec<Tree>,
}

impl Tree {
    fn into_node(self, rows: &[OrderRow]) -> ThreadNode {
        ThreadNode {
            uid: self.row.map(|r| rows[r].uid),
            children: self
                .children
                .into_iter()
                .map(|c| c.into_node(rows))
                .collect(),
        }
    }

    /// The row whose date and subject stand for this tree: its message, or
    /// a placeholder's first child's.
    fn lead(&self) -> Option<usize> {
        self.row
            .or_else(|| self.children.first().and_then(Tree::lead))
    }
}

/// The containers under `at` as an owned tree, iteratively (reference
/// chains can be long).
fn build(forest: &Forest, at: usize) -> Tree {
    // Post-order: children built before their parent.
    let mut order = Vec::new();
    let mut stack = vec![at];
    while let Some(n) = stack.pop() {
        order.push(n);
        stack.extend(forest.nodes[n].children.iter().copied());
    }
    let mut built: HashMap<usize, Tree> = HashMap::new();
    for &n in order.iter().rev() {
        let children = forest.nodes[n]
            .children
            .iter()
            .filter_map(|c| built.remove(c))
            .collect();
        built.insert(
            n,
            Tree {
                row: forest.nodes[n].row,
                children,
            },
        );
    }
    built.remove(&at).unwrap_or(Tree {
        row: None,
        children: Vec::new(),
    })
}

/// Step 4: drops placeholders without children and splices the children of
/// the others into `out` (at the top only when there is a single child).
fn prune(t: Tree, out: &mut Vec<Tree>, at_top: bool) {
    let mut children = Vec::new();
    for c in t.children {
        prune(c, &mut children, false);
    }
    match t.row {
        Some(_) => out.push(Tree {
            row: t.row,
            children,
        }),
        None if children.is_empty() => {}
        None if !at_top || children.len() == 1 => out.extend(children),
        None => out.push(Tree {
            row: None,
            children,
        }),
    }
}

/// Step 5: merges top-level threads whose thread subjects match.
fn gather(top: Vec<Tree>, rows: &[OrderRow]) -> Vec<Tree> {
    let subject = |t: &Tree| {
        t.lead()
            .map(|r| rows[r].base_subject.as_str())
            .unwrap_or("")
    };
    let is_reply = |t: &Tree| {
        t.row
            .is_some_and(|r| mime::is_reply_or_forward(&rows[r].subject))
    };
    // 5B: which thread represents each subject.
    let mut table: HashMap<String, usize> = HashMap::new();
    for (i, t) in top.iter().enumerate() {
        let s = subject(t);
        if s.is_empty() {
            continue;
        }
        match table.get(s) {
            None => {
                table.insert(s.to_string(), i);
            }
            Some(&held) => {
                let h = &top[held];
                if h.row.is_some() && (t.row.is_none() || (is_reply(h) && !is_reply(t))) {
                    table.insert(s.to_string(), i);
                }
            }
        }
    }
    // 5C: merge every other thread into the one in the table.
    // A thread only ever merges into the one the table names, which keeps
    // its subject, so table indexes stay valid.
    let mut slots: Vec<Option<Tree>> = top.into_iter().map(Some).collect();
    for i in 0..slots.len() {
        let Some(t) = slots[i].as_ref() else { continue };
        let s = subject(t).to_string();
        if s.is_empty() {
            continue;
        }
        let Some(&held) = table.get(&s) else { continue };
        if held == i {
            continue;
        }
        let Some(cur) = slots[i].take() else { continue };
        let Some(h) = slots[held].take() else {
            slots[i] = Some(cur);
            continue;
        };
        let replaced = match (h.row.is_none(), cur.row.is_none()) {
            (true, true) => {
                let mut h = h;
                h.children.extend(cur.children);
                h
            }
            (true, false) => {
                let mut h = h;
                h.children.push(cur);
                h
            }
            (false, _) if is_reply(&cur) && !is_reply(&h) => {
                let mut h = h;
                h.children.push(cur);
                h
            }
            _ => Tree {
                row: None,
                children: vec![h, cur],
            },
        };
        slots[held] = Some(replaced);
    }
    slots.into_iter().flatten().collect()
}

fn sort_tree(t: &mut Tree, date: &impl Fn(usize) -> i64) {
    for c in &mut t.children {
        sort_tree(c, date);
    }
    sort_siblings(&mut t.children, date);
}

fn sort_siblings(v: &mut [Tree], date: &impl Fn(usize) -> i64) {
    v.sort_by_key(|t| {
        t.lead()
            .map(|r| (date(r), r))
            .unwrap_or((i64::MAX, usize::MAX))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(uid: u32, date: i64, subject: &str, id: &str, refs: &str) -> OrderRow {
        OrderRow {
            uid,
            arrival: date,
            date,
            size: uid as u64,
            subject: subject.into(),
            base_subject: mime::base_subject(subject),
            message_id: (!id.is_empty()).then(|| id.to_string()),
            references: refs.into(),
            ..OrderRow::default()
        }
    }

    fn show(threads: &[ThreadNode]) -> String {
        fn members(n: &ThreadNode, out: &mut String) {
            if let Some(u) = n.uid {
                out.push_str(&u.to_string());
            }
            match n.children.len() {
                0 => {}
                1 => {
                    if n.uid.is_some() {
                        out.push(' ');
                    }
                    members(&n.children[0], out);
                }
                _ => {
                    if n.uid.is_some() {
                        out.push(' ');
                    }
                    for c in &n.children {
                        out.push('(');
                        members(c, out);
                        out.push(')');
                    }
                }
            }
        }
        let mut s = String::new();
        for t in threads {
            s.push('(');
            members(t, &mut s);
            s.push(')');
        }
        s
    }

    #[test]
    fn sorts_by_keys_then_uid() {
        let mut rows = vec![
            row(1, 30, "b", "", ""),
            row(2, 10, "Re: a", "", ""),
            row(3, 20, "a", "", ""),
            row(4, 10, "c", "", ""),
        ];
        sort(
            &mut rows,
            &[SortCriterion {
                key: SortKey::Subject,
                reverse: false,
            }],
        );
        assert_eq!(rows.iter().map(|r| r.uid).collect::<Vec<_>>(), [2, 3, 1, 4]);
        sort(
            &mut rows,
            &[
                SortCriterion {
                    key: SortKey::Date,
                    reverse: true,
                },
                SortCriterion {
                    key: SortKey::Size,
                    reverse: false,
                },
            ],
        );
        assert_eq!(rows.iter().map(|r| r.uid).collect::<Vec<_>>(), [1, 3, 2, 4]);
    }

    #[test]
    fn ordered_subject_groups_by_base_subject() {
        let rows = vec![
            row(1, 50, "Lunch", "", ""),
            row(2, 10, "Plans", "", ""),
            row(3, 60, "Re: Lunch", "", ""),
            row(4, 70, "Re: lunch", "", ""),
            row(5, 20, "Re: Plans", "", ""),
            row(6, 5, "Other", "", ""),
        ];
        let t = thread(rows, ThreadAlgorithm::OrderedSubject);
        assert_eq!(show(&t), "(6)(2 5)(1 (3)(4))");
    }

    #[test]
    fn references_link_replies_and_missing_parents() {
        let rows = vec![
            row(1, 10, "Topic", "<a@x>", ""),
            row(2, 20, "Re: Topic", "<b@x>", "<a@x>"),
            row(3, 30, "Re: Topic", "<c@x>", "<a@x> <b@x>"),
            row(4, 25, "Re: Topic", "<d@x>", "<a@x>"),
            // Replies to a message we do not have: a placeholder parent.
            row(5, 40, "Re: Gone", "<e@x>", "<gone@x>"),
            row(6, 35, "Re: Gone", "<f@x>", "<gone@x>"),
            // A reply by subject only joins the thread of the same subject.
            row(7, 5, "Unrelated", "<g@x>", ""),
        ];
        let t = thread(rows, ThreadAlgorithm::References);
        assert_eq!(show(&t), "(7)(1 (2 3)(4))((6)(5))");
    }

    #[test]
    fn references_survive_loops_and_duplicates() {
        let rows = vec![
            row(1, 10, "x", "<a@x>", "<b@x>"),
            row(2, 20, "y", "<b@x>", "<a@x>"),
            row(3, 30, "z", "<a@x>", ""),
            row(4, 40, "", "", "<a@x><b@x>"),
        ];
        let t = thread(rows, ThreadAlgorithm::References);
        let mut uids = Vec::new();
        fn walk(n: &ThreadNode, out: &mut Vec<u32>) {
            out.extend(n.uid);
            for c in &n.children {
                walk(c, out);
            }
        }
        for n in &t {
            walk(n, &mut uids);
        }
        uids.sort();
        assert_eq!(
            uids,
            [1, 2, 3, 4],
            "every message exactly once: {}",
            show(&t)
        );
    }

    #[test]
    fn references_gather_subject_threads() {
        let rows = vec![
            row(1, 10, "Report", "<a@x>", ""),
            row(2, 20, "Re: Report", "<b@x>", ""),
            row(3, 30, "Report", "<c@x>", ""),
        ];
        // 2 is a reply by subject to 1; 3 repeats the subject, so 1 and 3
        // become siblings under a placeholder.
        let t = thread(rows, ThreadAlgorithm::References);
        assert_eq!(show(&t), "((1 2)(3))");
    }
}
