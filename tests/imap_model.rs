//! Model-checking stress test: several sessions on one mailbox run a
//! bounded random mix of commands over raw sockets; every untagged response
//! is applied to the session's own model of the mailbox, and the models are
//! checked as they go and against the server once all sessions are quiet.
//!
//! What is checked, per response: sequence numbers stay inside the model
//! and map to the UIDs already learnt; UIDs ascend with sequence numbers;
//! EXISTS never shrinks the mailbox; no EXPUNGE while a FETCH, STORE or
//! SEARCH by sequence number runs (RFC 3501 §7.4.1); a message's MODSEQ
//! never goes down in one session (RFC 7162 §3.1); the same (UID, MODSEQ)
//! carries the same flags in every session. Once all are quiet, each
//! session's model, built from untagged responses alone, must equal the
//! mailbox as a fresh session reads it: the same UIDs in the same order,
//! the same flags.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::imap::{Client, Tok, fetch_items};
use common::*;

/// Sessions on the one mailbox, commands each, and a wall-clock bound on
/// the random phase (generous: a slow machine runs fewer commands, never
/// fails for it).
const SESSIONS: usize = 6;
const COMMANDS: usize = 500;
const RANDOM_PHASE: Duration = Duration::from_secs(60);
const MAX_MESSAGES: usize = 30;

type Flags = BTreeSet<String>;

#[derive(Clone, Debug, Default)]
struct Entry {
    uid: Option<u32>,
    flags: Option<Flags>,
    modseq: u64,
}

/// What the running command forbids (RFC 3501 §7.4.1).
#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Any,
    NoExpunge,
}

/// The (UID, MODSEQ) → flags every session has seen, shared.
type Seen = Arc<Mutex<HashMap<(u32, u64), Flags>>>;

struct Model {
    name: String,
    condstore: bool,
    seqs: Vec<Entry>,
    /// Highest MODSEQ shown per UID, kept across re-SELECT.
    modseqs: HashMap<u32, u64>,
    seen: Seen,
}

fn flag_set(tok: &Tok) -> Flags {
    tok.list()
        .unwrap_or_default()
        .iter()
        .filter_map(|t| t.atom())
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .map(str::to_string)
        .collect()
}

impl Model {
    fn fail(&self, what: String) -> ! {
        panic!("session {}: {what}", self.name)
    }

    fn untagged(&mut self, line: &str, ctx: Ctx) {
        let words: Vec<&str> = line.splitn(4, ' ').collect();
        if words.len() >= 3
            && words[0] == "*"
            && let Ok(n) = words[1].parse::<usize>()
        {
            match words[2].to_ascii_uppercase().as_str() {
                "EXISTS" => {
                    if n < self.seqs.len() {
                        self.fail(format!("{line} shrinks {} messages", self.seqs.len()));
                    }
                    self.seqs.resize(n, Entry::default());
                }
                "EXPUNGE" => {
                    if ctx == Ctx::NoExpunge {
                        self.fail(format!("{line} during a command that forbids it"));
                    }
                    if n == 0 || n > self.seqs.len() {
                        self.fail(format!("{line} beyond {} messages", self.seqs.len()));
                    }
                    self.seqs.remove(n - 1);
                }
                "FETCH" => self.fetch(line),
                "RECENT" => {}
                other => self.fail(format!("unexpected untagged {other}: {line}")),
            }
        }
    }

    fn fetch(&mut self, line: &str) {
        let (n, items) = fetch_items(line.as_bytes())
            .unwrap_or_else(|| self.fail(format!("unparsable FETCH: {line}")));
        let n = n as usize;
        if n == 0 || n > self.seqs.len() {
            self.fail(format!("{line} beyond {} messages", self.seqs.len()));
        }
        let get = |name: &str| items.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let uid = get("UID")
            .and_then(|t| t.atom())
            .map(|a| a.parse::<u32>().unwrap());
        let flags = get("FLAGS").map(flag_set);
        let modseq = get("MODSEQ")
            .and_then(|t| t.list())
            .and_then(|l| l.first())
            .and_then(|t| t.atom())
            .map(|a| a.parse::<u64>().unwrap());
        if let Some(uid) = uid {
            match self.seqs[n - 1].uid {
                Some(known) if known != uid => {
                    self.fail(format!("{line}: sequence {n} was UID {known}"))
                }
                _ => {}
            }
            let before = self.seqs[..n - 1].iter().rev().find_map(|e| e.uid);
            let after = self.seqs[n..].iter().find_map(|e| e.uid);
            if before.is_some_and(|b| b >= uid) || after.is_some_and(|a| a <= uid) {
                self.fail(format!(
                    "{line}: UID out of order between {before:?} and {after:?}"
                ));
            }
            self.seqs[n - 1].uid = Some(uid);
        }
        let uid = self.seqs[n - 1].uid;
        if let Some(m) = modseq {
            if let Some(uid) = uid {
                let last = self.modseqs.get(&uid).copied().unwrap_or(0);
                if m < last {
                    self.fail(format!("{line}: MODSEQ went down from {last}"));
                }
                self.modseqs.insert(uid, m);
            }
            self.seqs[n - 1].modseq = m;
        }
        if let (Some(uid), Some(m), Some(f)) = (uid, modseq, &flags) {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(other) = seen.get(&(uid, m))
                && other != f
            {
                panic!(
                    "session {}: {line}: UID {uid} MODSEQ {m} was {other:?} elsewhere",
                    self.name
                );
            }
            seen.insert((uid, m), f.clone());
        }
        if let Some(f) = flags {
            self.seqs[n - 1].flags = Some(f);
        }
    }

    /// Applies every untagged response of one command; returns the tagged
    /// line.
    fn apply(&mut self, lines: &[String], ctx: Ctx) -> String {
        let (tagged, untagged) = lines.split_last().unwrap();
        for l in untagged {
            self.untagged(l, ctx);
        }
        if tagged.split(' ').nth(1) == Some("BAD") {
            self.fail(format!("BAD: {lines:?}"));
        }
        tagged.clone()
    }
}

/// A barrier that gives up when a session failed or after a deadline, so
/// one failing session ends the test instead of leaving the others waiting.
#[derive(Default)]
struct Gate {
    state: Mutex<(usize, bool)>,
    cond: Condvar,
}

impl Gate {
    /// Waits until `n` sessions in all have arrived at this gate.
    fn wait(&self, n: usize) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 += 1;
        self.cond.notify_all();
        let deadline = Instant::now() + Duration::from_secs(300);
        while s.0 < n && !s.1 && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            s = self
                .cond
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let (met, failed) = (s.0 >= n, s.1);
        drop(s);
        assert!(!failed, "another session failed");
        assert!(met, "sessions did not meet at a gate");
    }

    fn fail(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.cond.notify_all();
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

fn message(i: usize) -> String {
    format!(
        "From: Ann <ann@example.net>\r\nTo: Bob <bob@example.org>\r\nSubject: model {i}\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <model{i}@example.net>\r\nContent-Type: text/plain\r\n\r\nbody {i}\r\n"
    )
}

const FLAGS: [&str; 5] = ["\\Seen", "\\Flagged", "\\Deleted", "\\Answered", "$Work"];

struct Session {
    c: Client,
    m: Model,
    rng: Rng,
    tags: usize,
}

impl Session {
    fn open(addr: SocketAddr, user: &str, i: usize, seed: u64, seen: Seen) -> Session {
        let mut c = Client::login(addr, user);
        let condstore = i.is_multiple_of(2);
        if condstore {
            c.cmd("E ENABLE CONDSTORE");
        }
        let mut s = Session {
            c,
            m: Model {
                name: i.to_string(),
                condstore,
                seqs: Vec::new(),
                modseqs: HashMap::new(),
                seen,
            },
            rng: Rng(seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            tags: 0,
        };
        s.select();
        s
    }

    fn run(&mut self, line: &str, ctx: Ctx) -> String {
        self.tags += 1;
        let tag = format!("t{}", self.tags);
        let lines = self.c.cmd(&format!("{tag} {line}"));
        self.m.apply(&lines, ctx)
    }

    fn select(&mut self) {
        self.tags += 1;
        let tag = format!("t{}", self.tags);
        let lines = self.c.cmd(&format!("{tag} SELECT INBOX"));
        assert!(lines.last().unwrap().contains(" OK "), "{lines:?}");
        self.m.seqs.clear();
        for l in &lines {
            if let Some(n) = l.strip_prefix("* ").and_then(|r| r.strip_suffix(" EXISTS")) {
                self.m.seqs = vec![Entry::default(); n.parse().unwrap()];
            }
        }
        self.learn();
    }

    fn learn(&mut self) {
        if !self.m.seqs.is_empty() {
            let items = if self.m.condstore {
                "(UID FLAGS MODSEQ)"
            } else {
                "(UID FLAGS)"
            };
            self.run(&format!("FETCH 1:* {items}"), Ctx::NoExpunge);
        }
    }

    fn seq(&mut self) -> usize {
        self.rng.below(self.m.seqs.len()) + 1
    }

    fn flag(&mut self) -> &'static str {
        FLAGS[self.rng.below(FLAGS.len())]
    }

    /// One random command.
    fn step(&mut self, counter: &Mutex<usize>) {
        let len = self.m.seqs.len();
        let choice = self.rng.below(16);
        if len == 0 && !matches!(choice, 0 | 6 | 12 | 13) {
            return self.append(counter);
        }
        match choice {
            0 => {
                self.run("NOOP", Ctx::Any);
            }
            1 => self.learn(),
            2 => {
                let n = self.seq();
                let r = self.run(
                    &format!("FETCH {n} (UID FLAGS BODY[] ENVELOPE BODYSTRUCTURE)"),
                    Ctx::NoExpunge,
                );
                assert!(!r.contains(" BAD "), "{r}");
            }
            3 | 4 => {
                let n = self.seq();
                let (op, f) = (if self.rng.below(2) == 0 { "+" } else { "-" }, self.flag());
                let silent = self.rng.below(3) == 0;
                let dot = if silent { ".SILENT" } else { "" };
                let r = self.run(&format!("STORE {n} {op}FLAGS{dot} ({f})"), Ctx::NoExpunge);
                // The client knows what it set; others' changes must come
                // as untagged FETCHes.
                if silent
                    && r.contains(" OK ")
                    && let Some(flags) = &mut self.m.seqs[n - 1].flags
                {
                    if op == "+" {
                        flags.insert(f.to_string());
                    } else {
                        flags.remove(f);
                    }
                }
            }
            5 => {
                let n = self.seq();
                let Some(uid) = self.m.seqs[n - 1].uid else {
                    return self.learn();
                };
                let f = self.flag();
                if self.m.condstore {
                    let since = self.m.seqs[n - 1].modseq;
                    self.run(
                        &format!("UID STORE {uid} (UNCHANGEDSINCE {since}) +FLAGS ({f})"),
                        Ctx::Any,
                    );
                } else {
                    self.run(&format!("UID STORE {uid} -FLAGS ({f})"), Ctx::Any);
                }
            }
            6 => self.append(counter),
            7 => {
                if len < MAX_MESSAGES {
                    let n = self.seq();
                    self.run(&format!("COPY {n} INBOX"), Ctx::Any);
                }
            }
            8 => {
                let n = self.seq();
                self.run(&format!("MOVE {n} Archive"), Ctx::Any);
            }
            9 => {
                self.run("EXPUNGE", Ctx::Any);
            }
            10 => {
                let n = self.seq();
                if let Some(uid) = self.m.seqs[n - 1].uid {
                    self.run(&format!("UID EXPUNGE {uid}"), Ctx::Any);
                }
            }
            11 => {
                self.tags += 1;
                let tag = format!("t{}", self.tags);
                let lines = self.c.cmd(&format!("{tag} SEARCH FLAGGED"));
                let before = self.m.seqs.len();
                self.m.apply(&lines, Ctx::NoExpunge);
                for l in &lines {
                    if let Some(rest) = l.strip_prefix("* SEARCH") {
                        for n in rest.split_whitespace() {
                            let n: usize = n.parse().unwrap();
                            assert!(
                                n >= 1 && n <= before.max(self.m.seqs.len()),
                                "SEARCH result {n} beyond the mailbox: {lines:?}"
                            );
                        }
                    }
                }
            }
            12 => self.idle(),
            13 => self.select(),
            14 => {
                self.run("UID SEARCH UNSEEN", Ctx::Any);
            }
            _ => {
                let n = self.seq();
                let (a, b) = (self.flag(), self.flag());
                self.run(&format!("STORE {n} FLAGS ({a} {b})"), Ctx::NoExpunge);
            }
        }
    }

    fn append(&mut self, counter: &Mutex<usize>) {
        if self.m.seqs.len() >= MAX_MESSAGES {
            return;
        }
        let i = {
            let mut c = counter.lock().unwrap();
            *c += 1;
            *c
        };
        let body = message(i);
        self.tags += 1;
        let tag = format!("t{}", self.tags);
        self.c
            .send(format!("{tag} APPEND INBOX {{{}+}}\r\n{body}\r\n", body.len()).as_bytes());
        let lines = self.c.until(&tag);
        let r = self.m.apply(&lines, Ctx::Any);
        assert!(r.contains(" OK "), "{lines:?}");
    }

    fn idle(&mut self) {
        self.tags += 1;
        let tag = format!("t{}", self.tags);
        self.c.send(format!("{tag} IDLE\r\n").as_bytes());
        let mut lines = Vec::new();
        loop {
            let l = self.c.line();
            if l.starts_with('+') {
                break;
            }
            assert!(l.starts_with("* "), "{l}");
            lines.push(l);
        }
        std::thread::sleep(Duration::from_millis(100 + self.rng.below(200) as u64));
        self.c.send(b"DONE\r\n");
        lines.extend(self.c.until(&tag));
        self.m.apply(&lines, Ctx::Any);
    }
}

#[test]
fn concurrent_sessions_agree_with_a_model_of_the_mailbox() {
    let mut env = Env::new();
    env.config.dev = true;
    let user = env.alias("ann", "pw");
    {
        let (_b, store) = env.store();
        let s = unlock(&store, &user, "pw");
        for i in 0..12 {
            block(s.append(append_req("INBOX", message(1000 + i).into_bytes()))).unwrap();
        }
    }
    let server = env.serve();
    // A new interleaving each run; SEALMAIL_MODEL_SEED replays a seed's
    // command mix (the interleaving itself is the scheduler's).
    let seed: u64 = std::env::var("SEALMAIL_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("seed {seed}");
    let seen: Seen = Arc::default();
    let counter = Arc::new(Mutex::new(0));
    let gate = Arc::new(Gate::default());
    let start = Instant::now();
    let threads: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let (seen, counter, gate, user) =
                (seen.clone(), counter.clone(), gate.clone(), user.clone());
            let addr = server.imap;
            std::thread::spawn(move || {
                let run = std::panic::AssertUnwindSafe(|| {
                    let mut s = Session::open(addr, &user, i, seed, seen);
                    gate.wait(SESSIONS);
                    let mut done = 0;
                    while done < COMMANDS && start.elapsed() < RANDOM_PHASE {
                        s.step(&counter);
                        done += 1;
                    }
                    // Quiet: every session has stopped writing.
                    gate.wait(2 * SESSIONS);
                    s.run("NOOP", Ctx::Any);
                    gate.wait(3 * SESSIONS);
                    (s, done)
                });
                std::panic::catch_unwind(run).unwrap_or_else(|e| {
                    gate.fail();
                    std::panic::resume_unwind(e)
                })
            })
        })
        .collect();
    let sessions: Vec<(Session, usize)> = threads.into_iter().map(|t| t.join().unwrap()).collect();

    // The truth, read by a fresh session.
    let mut fresh = Client::login(server.imap, &user);
    let lines = fresh.cmd("S SELECT INBOX");
    assert!(lines.last().unwrap().contains(" OK "), "{lines:?}");
    let lines = fresh.cmd("F FETCH 1:* (UID FLAGS)");
    let truth: Vec<(u32, Flags)> = lines
        .iter()
        .filter_map(|l| fetch_items(l.as_bytes()))
        .map(|(_, items)| {
            let uid = items
                .iter()
                .find(|(k, _)| k == "UID")
                .unwrap()
                .1
                .atom()
                .unwrap();
            let flags = &items.iter().find(|(k, _)| k == "FLAGS").unwrap().1;
            (uid.parse().unwrap(), flag_set(flags))
        })
        .collect();
    let mut total = 0;
    for (s, done) in &sessions {
        total += done;
        let m = &s.m;
        assert_eq!(
            m.seqs.len(),
            truth.len(),
            "session {}: model has {} messages, the mailbox {}",
            m.name,
            m.seqs.len(),
            truth.len()
        );
        for (i, (e, (uid, flags))) in m.seqs.iter().zip(&truth).enumerate() {
            if let Some(u) = e.uid {
                assert_eq!(u, *uid, "session {}: sequence {} UID", m.name, i + 1);
            }
            if let Some(f) = &e.flags {
                assert_eq!(
                    f, flags,
                    "session {}: UID {uid} flags from untagged responses differ from the mailbox",
                    m.name
                );
            }
        }
    }
    assert!(total >= SESSIONS * 20, "only {total} commands ran");
    println!("{total} commands in {:?}", start.elapsed());
}
