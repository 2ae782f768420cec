//! SEARCH correctness: random messages and random nested criteria trees;
//! the store's answer must equal a naive in-memory evaluation over what the
//! generator knows it wrote (decoded text, dates as written, flags set).
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use common::*;
use sealmail::store::search::Date;
use sealmail::store::{
    AppendRequest, Criteria, FetchWhat, FlagOp, Flags, Session, StoreFlags, UidSet,
};

const WORDS: &[&str] = &[
    "alpha", "Beta", "gamma", "delta", "Köln", "straße", "meeting", "report", "Übung", "x", "yz",
    "café", "QUARTER", "budget", "naïve", "to", "fwd",
];
const KEYWORDS: &[&str] = &["$Label1", "work", "Later", "$Junk"];
const ZONES: &[&str] = &["+0000", "-0500", "+0930", "+1400", "-1100"];

/// What the generator knows about one message.
#[derive(Clone, Debug)]
struct Model {
    uid: u32,
    modseq: u64,
    size: u64,
    flags: Flags,
    internal: (u16, u8, u8),
    /// The internal date as Unix time.
    internal_ts: i64,
    sent: (u16, u8, u8),
    /// Headers with their decoded values, in order.
    headers: Vec<(String, String)>,
    body: String,
}

impl Model {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn words(rng: &mut fastrand::Rng, count: std::ops::Range<usize>) -> String {
    let n = rng.usize(count);
    (0..n)
        .map(|_| WORDS[rng.usize(..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).to_string())
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn qp(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b' ' {
                (b as char).to_string()
            } else {
                format!("={b:02X}")
            }
        })
        .collect()
}

const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// One random message: its bytes and the model of what it says.
fn message(rng: &mut fastrand::Rng, i: usize) -> (Vec<u8>, Model) {
    let subject = words(rng, 1..5);
    let from_name = words(rng, 1..2);
    let sent = (2026u16, rng.u8(1..=12), rng.u8(1..=28));
    let mut raw_headers: Vec<(String, String)> = Vec::new();
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, raw: String, decoded: String| {
        raw_headers.push((k.to_string(), raw));
        headers.push((k.to_string(), decoded));
    };
    let from = format!("{from_name} <user{}@example.net>", rng.u8(..5));
    if from.is_ascii() {
        push("From", from.clone(), from);
    } else {
        let raw = format!(
            "=?utf-8?b?{}?= <user{}@example.net>",
            b64(from_name.as_bytes()),
            i % 5
        );
        push(
            "From",
            raw,
            format!("{from_name} <user{}@example.net>", i % 5),
        );
    }
    let to = format!("{} <rcpt{}@example.org>", words(rng, 1..2), rng.u8(..4));
    push("To", to.clone(), to);
    if rng.bool() {
        let cc = format!("cc{}@example.com", rng.u8(..3));
        push("Cc", cc.clone(), cc);
    }
    if rng.u8(..4) == 0 {
        let bcc = format!("hidden{}@example.com", rng.u8(..3));
        push("Bcc", bcc.clone(), bcc);
    }
    if subject.is_ascii() || rng.bool() {
        push("Subject", subject.clone(), subject.clone());
    } else {
        push(
            "Subject",
            format!("=?utf-8?q?{}?=", qp(&subject).replace(' ', "_")),
            subject.clone(),
        );
    }
    let zone = ZONES[rng.usize(..ZONES.len())];
    let date = format!(
        "{} {} {} {:02}:{:02}:00 {zone}",
        sent.2,
        MONTHS[sent.1 as usize - 1],
        sent.0,
        rng.u8(..24),
        rng.u8(..60)
    );
    push("Date", date.clone(), date);
    push(
        "Message-ID",
        format!("<m{i}@example.net>"),
        format!("<m{i}@example.net>"),
    );
    if rng.u8(..3) == 0 {
        let t = words(rng, 1..2);
        push("X-Tag", t.clone(), t);
    }
    let text = words(rng, 1..12);
    let (content_headers, body_raw, body_text) = match rng.u8(..4) {
        0 => (
            vec![
                ("Content-Type", "text/plain; charset=utf-8".to_string()),
                ("Content-Transfer-Encoding", "base64".into()),
            ],
            b64(text.as_bytes()),
            text.clone(),
        ),
        1 => (
            vec![
                ("Content-Type", "text/plain; charset=utf-8".to_string()),
                ("Content-Transfer-Encoding", "quoted-printable".into()),
            ],
            qp(&text),
            text.clone(),
        ),
        2 => {
            let html = words(rng, 1..6);
            let raw = format!(
                "--B\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n--B\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>{html}</p>\r\n--B--"
            );
            (
                vec![(
                    "Content-Type",
                    "multipart/alternative; boundary=\"B\"".to_string(),
                )],
                raw,
                format!("{text}\n{html}"),
            )
        }
        _ => (
            vec![
                ("Content-Type", "text/plain; charset=utf-8".to_string()),
                ("Content-Transfer-Encoding", "8bit".into()),
            ],
            text.clone(),
            text.clone(),
        ),
    };
    for (k, v) in content_headers {
        push(k, v.clone(), v);
    }
    let mut raw = String::new();
    for (k, v) in &raw_headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    raw.push_str(&body_raw);
    raw.push_str("\r\n");
    let mut flags = Flags::system(rng.u8(..32));
    for k in KEYWORDS {
        if rng.u8(..3) == 0 {
            flags.keywords.push(k.to_string());
        }
    }
    let internal = (2026u16, rng.u8(1..=12), rng.u8(1..=28));
    let model = Model {
        uid: 0,
        modseq: 0,
        size: raw.len() as u64,
        flags,
        internal,
        internal_ts: 0,
        sent,
        headers,
        body: body_text,
    };
    (raw.into_bytes(), model)
}

fn unix(d: (u16, u8, u8), secs: i64) -> i64 {
    sealmail::util::days_from_civil(d.0.into(), d.1.into(), d.2.into()) * 86_400 + secs
}

fn imatch(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

fn date_key(d: (u16, u8, u8)) -> (u16, u8, u8) {
    d
}

fn eval(c: &Criteria, m: &Model) -> bool {
    let d = |x: &Date| (x.year, x.month, x.day);
    let field = |name: &str| m.header(name).unwrap_or("");
    match c {
        Criteria::All => true,
        Criteria::Uid(set) => set.contains(m.uid),
        Criteria::Flag(bit, set) => m.flags.has(*bit) == *set,
        Criteria::Keyword(k, set) => {
            m.flags.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) == *set
        }
        Criteria::Larger(n) => m.size > *n,
        Criteria::Smaller(n) => m.size < *n,
        Criteria::Before(x) => date_key(m.internal) < d(x),
        Criteria::ArrivedSince(t) => m.internal_ts >= *t,
        Criteria::EmailId(_)
        | Criteria::ThreadId(_)
        | Criteria::SavedBefore(_)
        | Criteria::SavedOn(_)
        | Criteria::SavedSince(_) => unimplemented!("not generated"),
        Criteria::ArrivedBefore(t) => m.internal_ts < *t,
        Criteria::On(x) => date_key(m.internal) == d(x),
        Criteria::Since(x) => date_key(m.internal) >= d(x),
        Criteria::SentBefore(x) => m.sent < d(x),
        Criteria::SentOn(x) => m.sent == d(x),
        Criteria::SentSince(x) => m.sent >= d(x),
        Criteria::Subject(s) => imatch(field("Subject"), s),
        Criteria::From(s) => imatch(field("From"), s),
        Criteria::To(s) => imatch(field("To"), s),
        Criteria::Cc(s) => imatch(field("Cc"), s),
        Criteria::Bcc(s) => imatch(field("Bcc"), s),
        Criteria::Header(name, s) => m
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(name) && imatch(v, s)),
        Criteria::Body(s) => imatch(&m.body, s),
        Criteria::Text(s) => {
            imatch(&m.body, s)
                || m.headers
                    .iter()
                    .any(|(k, v)| imatch(&format!("{k}: {v}"), s))
        }
        Criteria::ModSeq(n) => m.modseq >= *n,
        Criteria::Not(x) => !eval(x, m),
        Criteria::And(xs) => xs.iter().all(|x| eval(x, m)),
        Criteria::Or(a, b) => eval(a, m) || eval(b, m),
    }
}

/// A needle: a piece of some message's field, or a random word, in random
/// case; one to eight characters.
fn needle(rng: &mut fastrand::Rng, models: &[Model], pick: impl Fn(&Model) -> String) -> String {
    let source = if rng.u8(..4) == 0 {
        words(rng, 1..2)
    } else {
        pick(&models[rng.usize(..models.len())])
    };
    // Within one line: text parts are joined by line breaks whose exact
    // form is not part of what SEARCH promises.
    let lines: Vec<&str> = source.split('\n').collect();
    let chars: Vec<char> = lines[rng.usize(..lines.len())].chars().collect();
    if chars.is_empty() {
        return String::new();
    }
    let start = rng.usize(..chars.len());
    let len = rng.usize(1..=8).min(chars.len() - start);
    chars[start..start + len]
        .iter()
        .map(|c| {
            let up: Vec<char> = c.to_uppercase().collect();
            if rng.bool() && up.len() == 1 {
                up[0]
            } else {
                *c
            }
        })
        .collect()
}

fn date(rng: &mut fastrand::Rng) -> Date {
    Date {
        year: 2026,
        month: rng.u8(1..=12),
        day: rng.u8(1..=28),
    }
}

fn leaf(rng: &mut fastrand::Rng, models: &[Model], max_modseq: u64) -> Criteria {
    let n = models.len() as u32;
    let f = |name: &'static str| move |m: &Model| m.header(name).unwrap_or("").to_string();
    match rng.u8(..21) {
        0 => Criteria::All,
        1 => {
            let a = rng.u32(1..=n + 2);
            Criteria::Uid(UidSet::range(
                a,
                if rng.bool() {
                    u32::MAX
                } else {
                    rng.u32(1..=n + 2)
                },
            ))
        }
        2 => Criteria::Flag(1 << rng.u8(..5), rng.bool()),
        3 => Criteria::Keyword(
            KEYWORDS[rng.usize(..KEYWORDS.len())].to_lowercase(),
            rng.bool(),
        ),
        4 => Criteria::Larger(models[rng.usize(..models.len())].size),
        5 => Criteria::Smaller(models[rng.usize(..models.len())].size + rng.u64(0..3)),
        6 if rng.bool() => Criteria::Before(date(rng)),
        6 if rng.bool() => Criteria::ArrivedSince(models[rng.usize(..models.len())].internal_ts),
        6 => Criteria::ArrivedBefore(models[rng.usize(..models.len())].internal_ts),
        7 => Criteria::On(Date {
            year: 2026,
            month: models[0].internal.1,
            day: models[0].internal.2,
        }),
        8 => Criteria::Since(date(rng)),
        9 => Criteria::SentBefore(date(rng)),
        10 => Criteria::SentOn(Date {
            year: 2026,
            month: models[rng.usize(..models.len())].sent.1,
            day: models[rng.usize(..models.len())].sent.2,
        }),
        11 => Criteria::SentSince(date(rng)),
        12 => Criteria::Subject(needle(rng, models, f("Subject"))),
        13 => Criteria::From(needle(rng, models, f("From"))),
        14 => Criteria::To(needle(rng, models, f("To"))),
        15 => Criteria::Cc(needle(rng, models, f("Cc"))),
        16 => Criteria::Bcc(needle(rng, models, f("Bcc"))),
        17 => {
            let name = ["Subject", "X-Tag", "Message-ID", "cc", "Content-Type"][rng.usize(..5)];
            let v = if rng.u8(..4) == 0 {
                String::new()
            } else {
                needle(rng, models, f(name))
            };
            Criteria::Header(name.to_string(), v)
        }
        18 => Criteria::Body(needle(rng, models, |m| m.body.clone())),
        19 => Criteria::Text(needle(rng, models, |m| {
            if m.body.len() % 2 == 0 {
                m.body.clone()
            } else {
                m.header("Subject").unwrap_or("").to_string()
            }
        })),
        _ => Criteria::ModSeq(rng.u64(1..=max_modseq + 1)),
    }
}

fn tree(rng: &mut fastrand::Rng, models: &[Model], depth: u32, max_modseq: u64) -> Criteria {
    if depth == 0 || rng.u8(..3) == 0 {
        return leaf(rng, models, max_modseq);
    }
    match rng.u8(..3) {
        0 => Criteria::Not(Box::new(tree(rng, models, depth - 1, max_modseq))),
        1 => Criteria::And(
            (0..rng.usize(1..4))
                .map(|_| tree(rng, models, depth - 1, max_modseq))
                .collect(),
        ),
        _ => Criteria::Or(
            Box::new(tree(rng, models, depth - 1, max_modseq)),
            Box::new(tree(rng, models, depth - 1, max_modseq)),
        ),
    }
}

fn setup(seed: u64, session: &Session) -> Vec<Model> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut models = Vec::new();
    // A first batch large enough for the background indexer (which takes
    // `INDEX_BATCH` at a time, while that many wait), then a second that
    // waits for the index: searches cover both kinds of body.
    let indexed = sealmail::store::mailbox::INDEX_BATCH + 4;
    let mut i = 0;
    for n in [indexed, 40] {
        let mut requests = Vec::new();
        for _ in 0..n {
            let (raw, mut m) = message(&mut rng, i);
            i += 1;
            m.internal_ts = unix(m.internal, rng.i64(0..86_400));
            requests.push(AppendRequest {
                folder: "INBOX".into(),
                message: raw,
                flags: m.flags.clone(),
                internal_date: Some(m.internal_ts),
                if_missing: Default::default(),
            });
            models.push(m);
        }
        block(session.append_batch(requests)).unwrap();
    }
    let total = models.len() as u32;
    // Vary modseqs.
    for _ in 0..10 {
        let a = rng.u32(1..=total);
        block(session.store_flags(StoreFlags {
            folder: "INBOX".into(),
            uids: UidSet::range(a, (a + rng.u32(0..5)).min(total)),
            op: FlagOp::Add,
            flags: Flags {
                system: 1 << rng.u8(..5),
                keywords: vec!["work".into()],
            },
            unchanged_since: None,
        }))
        .unwrap();
    }
    let metas = block(session.fetch("INBOX", UidSet::all(), FetchWhat::default())).unwrap();
    assert_eq!(metas.len(), models.len());
    for (m, f) in models.iter_mut().zip(metas) {
        m.uid = f.meta.uid;
        m.modseq = f.meta.modseq;
        m.flags = f.meta.flags;
        assert_eq!(m.size, f.meta.size);
    }
    models
}

#[test]
fn search_matches_a_naive_evaluator() {
    let env = Env::new();
    let mut nonempty = 0;
    let mut partial = 0;
    let mut total = 0;
    for seed in [1u64, 2, 3] {
        let addr = env.alias(&format!("user{seed}"), "pw");
        let (_b, store) = env.store();
        let session = unlock(&store, &addr, "pw");
        let models = setup(seed, &session);
        let max_modseq = models.iter().map(|m| m.modseq).max().unwrap_or(1);
        let mut rng = fastrand::Rng::with_seed(seed * 1000);
        for _ in 0..400 {
            let c = tree(&mut rng, &models, 4, max_modseq);
            let want: Vec<u32> = models
                .iter()
                .filter(|m| eval(&c, m))
                .map(|m| m.uid)
                .collect();
            let got = block(session.search("INBOX", c.clone())).unwrap();
            assert_eq!(got.uids, want, "criteria {c:?}");
            total += 1;
            if !want.is_empty() {
                nonempty += 1;
            }
            if !want.is_empty() && want.len() < models.len() {
                partial += 1;
            }
        }
    }
    // The generator must produce informative queries, not only all or none.
    assert!(nonempty > total / 3, "{nonempty} of {total} non-empty");
    assert!(partial > total / 5, "{partial} of {total} partial");
}
