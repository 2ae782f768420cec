//! IMAP exactness, one behaviour per test with the exact server lines:
//! update ordering between sessions, FLAGS on new keywords, `\Recent`,
//! mailbox names, SEARCH edge cases, CONDSTORE, ENVELOPE and SORT details,
//! subscriptions, and the extensions announced in CAPABILITY.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use common::imap::{Client, dev_env, msg};
use common::*;

/// An environment with one user whose INBOX holds `messages` (raw).
fn with_inbox(messages: &[String]) -> (Env, String) {
    let env = dev_env();
    let user = env.alias("ann", "pw");
    {
        let (_b, store) = env.store();
        let s = unlock(&store, &user, "pw");
        for m in messages {
            block(s.append(append_req("INBOX", m.clone().into_bytes()))).unwrap();
        }
    }
    (env, user)
}

fn selected(server: &Server, user: &str) -> Client {
    let mut c = Client::login(server.imap, user);
    let r = c.cmd("S SELECT INBOX");
    assert!(r.last().unwrap().starts_with("S OK"), "{r:?}");
    c
}

#[test]
fn another_sessions_older_change_never_follows_the_newer_state() {
    let (env, user) = with_inbox(&[msg(1)]);
    let server = env.serve();
    let mut a = selected(&server, &user);
    let mut b = selected(&server, &user);
    assert_eq!(
        b.cmd("b1 STORE 1 +FLAGS (\\Flagged)"),
        ["* 1 FETCH (FLAGS (\\Flagged))", "b1 OK STORE completed"]
    );
    // A's own reply carries B's change too; B's older event is not sent
    // after it.
    assert_eq!(
        a.cmd("a1 STORE 1 +FLAGS (\\Seen)"),
        [
            "* 1 FETCH (FLAGS (\\Flagged \\Seen \\Recent))",
            "a1 OK STORE completed"
        ]
    );
    assert_eq!(a.cmd("a2 NOOP"), ["a2 OK NOOP completed"]);
    // B learns A's change once.
    assert_eq!(
        b.cmd("b2 NOOP"),
        [
            "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Seen))",
            "b2 OK NOOP completed"
        ]
    );

    // With CONDSTORE: a silent STORE, then the other session's older
    // change arrives; the state sent is the newest, MODSEQ does not go down.
    assert_eq!(a.cmd("a3 ENABLE CONDSTORE")[0], "* ENABLED CONDSTORE");
    assert_eq!(
        b.cmd("b3 STORE 1 -FLAGS.SILENT (\\Flagged)"),
        ["b3 OK STORE completed"]
    );
    assert_eq!(
        a.cmd("a4 STORE 1 +FLAGS.SILENT (\\Answered)"),
        [
            "* 1 FETCH (UID 1 MODSEQ (6))",
            "* 1 FETCH (UID 1 FLAGS (\\Answered \\Seen \\Recent) MODSEQ (6))",
            "a4 OK STORE completed"
        ]
    );
    assert_eq!(a.cmd("a5 NOOP"), ["a5 OK NOOP completed"]);
}

#[test]
fn a_new_keyword_is_announced_to_other_sessions_before_its_fetch() {
    let (env, user) = with_inbox(&[msg(1)]);
    let server = env.serve();
    let mut a = selected(&server, &user);
    let mut b = Client::login(server.imap, &user);
    assert_eq!(
        b.cmd("b1 EXAMINE INBOX")[..2],
        [
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
            "* OK [PERMANENTFLAGS ()] read-only"
        ]
    );
    assert_eq!(
        a.cmd("a1 STORE 1 +FLAGS.SILENT ($Todo)"),
        ["a1 OK STORE completed"]
    );
    assert_eq!(
        b.cmd("b2 NOOP"),
        [
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Todo)",
            "* OK [PERMANENTFLAGS ()] read-only",
            "* 1 FETCH (UID 1 FLAGS ($Todo))",
            "b2 OK NOOP completed"
        ]
    );
    // Known now: not announced again.
    a.cmd("a2 STORE 1 -FLAGS.SILENT ($Todo)");
    assert_eq!(
        b.cmd("b3 NOOP"),
        ["* 1 FETCH (UID 1 FLAGS ())", "b3 OK NOOP completed"]
    );
}

#[test]
fn exactly_one_session_sees_a_message_as_recent() {
    let (env, user) = with_inbox(&[msg(1), msg(2)]);
    let server = env.serve();
    // The first SELECT claims both; the second sees none.
    let mut a = Client::login(server.imap, &user);
    let r = a.cmd("a1 SELECT INBOX");
    assert!(r.contains(&"* 2 RECENT".to_string()), "{r:?}");
    let mut b = Client::login(server.imap, &user);
    let r = b.cmd("b1 SELECT INBOX");
    assert!(r.contains(&"* 0 RECENT".to_string()), "{r:?}");
    assert_eq!(
        a.cmd("a2 FETCH 1 FLAGS"),
        ["* 1 FETCH (FLAGS (\\Recent))", "a2 OK FETCH completed"]
    );
    assert_eq!(
        b.cmd("b2 FETCH 1 FLAGS"),
        ["* 1 FETCH (FLAGS ())", "b2 OK FETCH completed"]
    );
    assert_eq!(
        a.cmd("a3 SEARCH RECENT"),
        ["* SEARCH 1 2", "a3 OK SEARCH completed"]
    );
    assert_eq!(
        b.cmd("b3 SEARCH RECENT"),
        ["* SEARCH", "b3 OK SEARCH completed"]
    );
    assert_eq!(
        b.cmd("b4 SEARCH OLD"),
        ["* SEARCH 1 2", "b4 OK SEARCH completed"]
    );
    a.cmd("a4 STORE 1 +FLAGS.SILENT (\\Seen)");
    assert_eq!(
        a.cmd("a5 SEARCH NEW"),
        ["* SEARCH 2", "a5 OK SEARCH completed"]
    );

    // A delivery while both are selected: STATUS from a third session counts
    // it unclaimed; the first session to hear of it claims it.
    let mut c = Client::login(server.imap, &user);
    smtp_send(server.smtp, &user, "third");
    let r = c.cmd("c1 STATUS INBOX (MESSAGES RECENT)");
    assert_eq!(r[0], "* STATUS \"INBOX\" (MESSAGES 3 RECENT 1)", "{r:?}");
    assert_eq!(
        a.cmd("a6 NOOP"),
        ["* 3 EXISTS", "* 3 RECENT", "a6 OK NOOP completed"]
    );
    assert_eq!(
        b.cmd("b5 NOOP"),
        [
            "* 1 FETCH (UID 1 FLAGS (\\Seen))",
            "* 3 EXISTS",
            "b5 OK NOOP completed"
        ]
    );
    let r = c.cmd("c2 STATUS INBOX (RECENT)");
    assert_eq!(r[0], "* STATUS \"INBOX\" (RECENT 0)", "{r:?}");
    // IMAP4rev2 has no \Recent.
    let mut d = Client::login(server.imap, &user);
    d.cmd("d1 ENABLE IMAP4rev2");
    let r = d.cmd("d2 SELECT INBOX");
    assert!(!r.iter().any(|l| l.contains("RECENT")), "{r:?}");
}

#[test]
fn invalid_modified_utf7_names_are_no_and_list_matches_nothing() {
    let (env, user) = with_inbox(&[]);
    let server = env.serve();
    let mut c = Client::login(server.imap, &user);
    for (cmd, verb) in [
        ("SELECT &Jjo", "SELECT"),
        ("CREATE &Jjo-&", "CREATE"),
        ("DELETE a&b", "DELETE"),
        ("RENAME INBOX &-&AAA", "RENAME"),
        ("STATUS &U,BTFw (MESSAGES)", "STATUS"),
    ] {
        let r = c.cmd(&format!("t {cmd}"));
        assert_eq!(r.len(), 1, "{verb}: {r:?}");
        assert!(
            r[0].starts_with("t NO [CANNOT] mailbox name is not valid modified UTF-7"),
            "{verb}: {r:?}"
        );
    }
    assert_eq!(c.cmd("l LIST \"\" &Jjo"), ["l OK LIST completed"]);
    assert_eq!(c.cmd("n NOOP"), ["n OK NOOP completed"]);
}

#[test]
fn search_beyond_the_mailbox_is_empty_and_condstore_enables_itself_once() {
    let msgs: Vec<String> = (1..=3).map(msg).collect();
    let (env, user) = with_inbox(&msgs);
    let server = env.serve();
    let mut c = selected(&server, &user);
    assert_eq!(
        c.cmd("s1 SEARCH 1000"),
        ["* SEARCH", "s1 OK SEARCH completed"]
    );
    assert_eq!(
        c.cmd("s2 SEARCH 2:1000"),
        ["* SEARCH 2 3", "s2 OK SEARCH completed"]
    );
    // FETCH by sequence number beyond the mailbox stays BAD (as Dovecot).
    assert!(c.cmd("s3 FETCH 1000 FLAGS")[0].starts_with("s3 BAD"));

    c.cmd("f1 STORE 2 +FLAGS.SILENT (\\Flagged)");
    // The first CONDSTORE-enabling command reports HIGHESTMODSEQ once.
    let r = c.cmd("f2 FETCH 1 (MODSEQ)");
    assert!(r[0].starts_with("* OK [HIGHESTMODSEQ "), "{r:?}");
    let highest: u64 = r[0]["* OK [HIGHESTMODSEQ ".len()..]
        .split(']')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(c.cmd("f3 FETCH 1 (MODSEQ)").len() == 2);

    // ESEARCH MIN/MAX alone: the MODSEQ of the messages returned.
    let r = c.cmd("e1 SEARCH RETURN (MIN) MODSEQ 1");
    let min_modseq = fetch_modseq(&mut c, 1);
    assert_eq!(
        r[0],
        format!("* ESEARCH (TAG \"e1\") MIN 1 MODSEQ {min_modseq}"),
        "{r:?}"
    );
    let r = c.cmd("e2 SEARCH RETURN (MAX COUNT) MODSEQ 1");
    assert_eq!(
        r[0],
        format!("* ESEARCH (TAG \"e2\") MAX 3 COUNT 3 MODSEQ {highest}"),
        "{r:?}"
    );
    let r = c.cmd("e3 SEARCH RETURN (MIN MAX) MODSEQ 1 UNFLAGGED");
    let m = fetch_modseq(&mut c, 1).max(fetch_modseq(&mut c, 3));
    assert_eq!(
        r[0],
        format!("* ESEARCH (TAG \"e3\") MIN 1 MAX 3 MODSEQ {m}"),
        "{r:?}"
    );

    // Selected, STATUS HIGHESTMODSEQ and STORE UNCHANGEDSINCE enable it
    // too; with ENABLE CONDSTORE the answer comes after ENABLED.
    let mut d = selected(&server, &user);
    assert_eq!(
        d.cmd("d1 ENABLE CONDSTORE"),
        [
            "* ENABLED CONDSTORE".to_string(),
            format!("* OK [HIGHESTMODSEQ {highest}] modseq"),
            "d1 OK ENABLE completed".to_string()
        ]
    );
    let mut e = selected(&server, &user);
    let r = e.cmd(&format!(
        "u1 STORE 3 (UNCHANGEDSINCE {highest}) +FLAGS (\\Answered)"
    ));
    assert_eq!(
        r[0],
        format!("* OK [HIGHESTMODSEQ {highest}] modseq"),
        "{r:?}"
    );
}

fn fetch_modseq(c: &mut Client, seq: u32) -> u64 {
    let r = c.cmd(&format!("m FETCH {seq} (MODSEQ)"));
    let l = &r[0];
    let at = l.find("MODSEQ (").unwrap() + "MODSEQ (".len();
    l[at..].split(')').next().unwrap().parse().unwrap()
}

#[test]
fn subscriptions_are_the_clients_not_the_servers() {
    let (env, user) = with_inbox(&[]);
    let server = env.serve();
    let mut c = Client::login(server.imap, &user);
    // CREATE does not subscribe.
    c.cmd("c1 CREATE Projects/Alpha");
    assert_eq!(c.cmd("l1 LSUB \"\" Projects*"), ["l1 OK LSUB completed"]);
    c.cmd("s1 SUBSCRIBE Projects/Alpha");
    assert_eq!(
        c.cmd("l2 LSUB \"\" Projects/%"),
        [
            "* LSUB (\\HasNoChildren) \"/\" \"Projects/Alpha\"",
            "l2 OK LSUB completed"
        ]
    );
    // `%` names the unsubscribed parent of a subscribed child \Noselect.
    assert_eq!(
        c.cmd("l3 LSUB \"\" %"),
        [
            "* LSUB (\\HasNoChildren) \"/\" \"INBOX\"",
            "* LSUB (\\HasNoChildren \\Archive) \"/\" \"Archive\"",
            "* LSUB (\\HasNoChildren \\Drafts) \"/\" \"Drafts\"",
            "* LSUB (\\HasNoChildren \\Junk) \"/\" \"Junk\"",
            "* LSUB (\\HasChildren \\Noselect) \"/\" \"Projects\"",
            "* LSUB (\\HasNoChildren \\Sent) \"/\" \"Sent\"",
            "* LSUB (\\HasNoChildren \\Trash) \"/\" \"Trash\"",
            "l3 OK LSUB completed"
        ]
    );
    assert_eq!(
        c.cmd("l4 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" Pro%"),
        [
            "* LIST (\\HasChildren) \"/\" \"Projects\" (\"CHILDINFO\" (\"SUBSCRIBED\"))",
            "l4 OK LIST completed"
        ]
    );
    // DELETE keeps the subscription; the name is listed as not existing.
    c.cmd("d1 DELETE Projects/Alpha");
    assert_eq!(
        c.cmd("l5 LSUB \"\" Projects/*"),
        [
            "* LSUB (\\Noselect) \"/\" \"Projects/Alpha\"",
            "l5 OK LSUB completed"
        ]
    );
    assert_eq!(
        c.cmd("l6 LIST (SUBSCRIBED) \"\" Projects/*"),
        [
            "* LIST (\\NonExistent \\Subscribed) \"/\" \"Projects/Alpha\"",
            "l6 OK LIST completed"
        ]
    );
    assert_eq!(c.cmd("l7 LIST \"\" Projects/*"), ["l7 OK LIST completed"]);
    // Re-creating it finds it subscribed; a subscription may name a folder
    // that never existed; UNSUBSCRIBE removes the name.
    c.cmd("c2 CREATE Projects/Alpha");
    assert_eq!(
        c.cmd("l8 LIST (SUBSCRIBED) \"\" Projects/*"),
        [
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Projects/Alpha\"",
            "l8 OK LIST completed"
        ]
    );
    assert_eq!(c.cmd("s2 SUBSCRIBE Later"), ["s2 OK SUBSCRIBE completed"]);
    assert_eq!(
        c.cmd("l9 LSUB \"\" Later"),
        [
            "* LSUB (\\Noselect) \"/\" \"Later\"",
            "l9 OK LSUB completed"
        ]
    );
    c.cmd("u1 UNSUBSCRIBE Later");
    c.cmd("u2 UNSUBSCRIBE Projects/Alpha");
    assert_eq!(c.cmd("l10 LSUB \"\" Pro*"), ["l10 OK LSUB completed"]);
    assert_eq!(c.cmd("l11 LSUB \"\" Later"), ["l11 OK LSUB completed"]);
}

fn with_headers(from: &str, to: &str, subject: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <{}@x>\r\n\r\nbody\r\n",
        subject.len() * 7 + from.len()
    )
}

#[test]
fn envelope_addresses_follow_rfc5322() {
    let (env, user) = with_inbox(&[
        with_headers(
            "ann@example.net (Ann Lee)",
            "A: a@x.org, b@x.org;, B: ;, c@y.org",
            "one",
        ),
        with_headers(
            "Ann <@relay.example,@hub.example:ann@example.net>",
            "<bob (the builder)@ (at) example.org>",
            "two",
        ),
    ]);
    let server = env.serve();
    let mut c = selected(&server, &user);
    let r = c.cmd("e1 FETCH 1 ENVELOPE");
    assert_eq!(
        r[0],
        "* 1 FETCH (ENVELOPE (\"Mon, 1 Jan 2024 10:00:00 +0000\" \"one\" \
         ((\"Ann Lee\" NIL \"ann\" \"example.net\")) \
         ((\"Ann Lee\" NIL \"ann\" \"example.net\")) \
         ((\"Ann Lee\" NIL \"ann\" \"example.net\")) \
         ((NIL NIL \"A\" NIL)(NIL NIL \"a\" \"x.org\")(NIL NIL \"b\" \"x.org\")(NIL NIL NIL NIL)\
         (NIL NIL \"B\" NIL)(NIL NIL NIL NIL)(NIL NIL \"c\" \"y.org\")) \
         NIL NIL NIL \"<46@x>\"))"
    );
    let r = c.cmd("e2 FETCH 2 ENVELOPE");
    assert!(
        r[0].contains("((\"Ann\" \"@relay.example,@hub.example\" \"ann\" \"example.net\"))"),
        "{r:?}"
    );
    assert!(
        r[0].contains("((NIL NIL \"bob\" \"example.org\"))"),
        "{r:?}"
    );
    // SEARCH sees through comments inside the address.
    assert_eq!(
        c.cmd("s1 SEARCH TO bob@example.org"),
        ["* SEARCH 2", "s1 OK SEARCH completed"]
    );
    assert_eq!(
        c.cmd("s2 SEARCH FROM \"Ann Lee <ann@example.net>\""),
        ["* SEARCH 1", "s2 OK SEARCH completed"]
    );
    assert_eq!(
        c.cmd("s3 SEARCH TO c@y.org"),
        ["* SEARCH 1", "s3 OK SEARCH completed"]
    );
}

#[test]
fn sort_reads_groups_and_keeps_a_subject_that_is_only_a_blob() {
    let (env, user) = with_inbox(&[
        // 1: To is a group; its first mailbox is zed@.
        with_headers("b@x.org", "Team: zed@x.org, aaa@x.org;", "Re: [xyz]"),
        // 2
        with_headers("c@x.org", "mid@x.org", "[xyz] apple"),
        // 3
        with_headers("a@x.org", "yak@x.org", "_"),
        // 4
        with_headers("d@x.org", "Empty:;, bee@x.org", "[xyz]"),
    ]);
    let server = env.serve();
    let mut c = selected(&server, &user);
    // Base subjects: "[xyz]", "apple", "_", "[xyz]"; "[" < "_" < "a".
    assert_eq!(
        c.cmd("o1 SORT (SUBJECT) UTF-8 ALL"),
        ["* SORT 1 4 3 2", "o1 OK SORT completed"]
    );
    // To: zed (group's first mailbox), mid, yak, bee (after an empty group).
    assert_eq!(
        c.cmd("o2 SORT (TO) UTF-8 ALL"),
        ["* SORT 4 2 3 1", "o2 OK SORT completed"]
    );
    assert_eq!(
        c.cmd("o3 SORT (FROM) UTF-8 ALL"),
        ["* SORT 3 1 2 4", "o3 OK SORT completed"]
    );
}

#[test]
fn multiappend_stores_all_or_nothing() {
    let (env, user) = with_inbox(&[]);
    let server = env.serve();
    let mut c = selected(&server, &user);
    let (a, b) = (msg(1), msg(2));
    c.send(
        format!(
            "m1 APPEND INBOX (\\Seen) {{{}+}}\r\n{a} \"02-Jan-2024 10:00:00 +0000\" {{{}+}}\r\n{b}\r\n",
            a.len(),
            b.len()
        )
        .as_bytes(),
    );
    let r = c.until("m1");
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!(r[0], "* 2 EXISTS");
    assert_eq!(r[1], "* 2 RECENT");
    assert!(
        r[2].starts_with("m1 OK [APPENDUID ") && r[2].ends_with(" 1:2] APPEND completed"),
        "{r:?}"
    );
    assert_eq!(
        c.cmd("f1 FETCH 1:2 FLAGS"),
        [
            "* 1 FETCH (FLAGS (\\Seen \\Recent))",
            "* 2 FETCH (FLAGS (\\Recent))",
            "f1 OK FETCH completed"
        ]
    );
    assert_eq!(
        c.cmd("f2 FETCH 2 INTERNALDATE"),
        [
            "* 2 FETCH (INTERNALDATE \"02-Jan-2024 10:00:00 +0000\")",
            "f2 OK FETCH completed"
        ]
    );
    // A bad flag on the second message: nothing is stored.
    c.send(
        format!(
            "m2 APPEND INBOX {{{}+}}\r\n{a} (\\Recent) {{{}+}}\r\n{b}\r\n",
            a.len(),
            b.len()
        )
        .as_bytes(),
    );
    assert_eq!(c.until("m2"), ["m2 BAD flag \\Recent cannot be set"]);
    // A missing mailbox: TRYCREATE, nothing stored.
    c.send(
        format!(
            "m3 APPEND Nowhere {{{}+}}\r\n{a} {{{}+}}\r\n{b}\r\n",
            a.len(),
            b.len()
        )
        .as_bytes(),
    );
    assert_eq!(c.until("m3"), ["m3 NO [TRYCREATE] no such mailbox"]);
    assert_eq!(c.cmd("n NOOP"), ["n OK NOOP completed"]);
    let r = c.cmd("s STATUS INBOX (MESSAGES)");
    assert_eq!(r[0], "* STATUS \"INBOX\" (MESSAGES 2)");
}

#[test]
fn binary_parts_never_go_out_in_an_ordinary_literal() {
    let (env, user) = with_inbox(&[]);
    let server = env.serve();
    let mut c = selected(&server, &user);
    let mut m = b"Subject: bin\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n".to_vec();
    m.extend_from_slice(&[0, 1, 2, 255, 0]);
    m.extend_from_slice(b"\r\n--b--\r\n");
    c.send(format!("a1 APPEND INBOX ~{{{}+}}\r\n", m.len()).as_bytes());
    c.send(&m);
    c.send(b"\r\n");
    let r = c.until("a1");
    assert!(r.last().unwrap().starts_with("a1 OK"), "{r:?}");
    // BODY[2] is base64, BODYSTRUCTURE says so, BINARY[2] is the bytes.
    assert_eq!(
        c.cmd("f1 FETCH 1 BODY.PEEK[2]"),
        [
            "* 1 FETCH (BODY[2] {8}\r\nAAEC/wA=)",
            "f1 OK FETCH completed"
        ]
    );
    let r = c.cmd("f2 FETCH 1 BODY.PEEK[2.MIME]");
    assert!(
        r[0].contains("Content-Transfer-Encoding: base64\r\n"),
        "{r:?}"
    );
    assert!(!r[0].contains("binary"), "{r:?}");
    let r = c.cmd("f3 FETCH 1 BODYSTRUCTURE");
    assert!(
        r[0].contains("\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL \"BASE64\" 8"),
        "{r:?}"
    );
    c.send(b"f4 FETCH 1 BINARY.PEEK[2]\r\n");
    assert_eq!(
        c.line_bytes(),
        b"* 1 FETCH (BINARY[2] ~{5}\r\n\0\x01\x02\xff\0)"
    );
    assert_eq!(c.line(), "f4 OK FETCH completed");
    // Part 1 is untouched.
    assert_eq!(
        c.cmd("f5 FETCH 1 BODY.PEEK[1]"),
        ["* 1 FETCH (BODY[1] {5}\r\nhello)", "f5 OK FETCH completed"]
    );
}

#[test]
fn unauthenticate_within_preview_objectid_savedate() {
    let long_body = "word ".repeat(100);
    let mut reply = msg(2).replace("Subject: note 2", "Subject: Re: note 1");
    reply = reply.replace(
        "Message-ID: <m2@example.net>",
        "Message-ID: <m2@example.net>\r\nIn-Reply-To: <m1@example.net>",
    );
    let (env, user) = with_inbox(&[
        msg(1).replace(
            "body number 1",
            &format!("Hello\tthere,\r\n\r\n{long_body}"),
        ),
        reply,
    ]);
    let server = env.serve();
    let mut c = selected(&server, &user);
    let caps = &c.cmd("c CAPABILITY")[0];
    for cap in [
        "MULTIAPPEND",
        "UNAUTHENTICATE",
        "WITHIN",
        "PREVIEW",
        "OBJECTID",
        "SAVEDATE",
    ] {
        assert!(caps.contains(&format!(" {cap}")), "{cap}: {caps}");
    }

    // PREVIEW: the text, whitespace collapsed, at most 200 characters.
    let r = c.cmd("p1 FETCH 1 (PREVIEW)");
    let want = format!("Hello there, {}", "word ".repeat(100));
    let want: String = want.chars().take(200).collect();
    assert_eq!(
        r,
        [
            format!("* 1 FETCH (PREVIEW \"{want}\")"),
            "p1 OK FETCH completed".to_string()
        ]
    );
    assert_eq!(
        c.cmd("p2 FETCH 2 (PREVIEW (LAZY))"),
        [
            "* 2 FETCH (PREVIEW \"body number 2\")",
            "p2 OK FETCH completed"
        ]
    );

    // OBJECTID: a reply shares its thread; a copy shares the EMAILID; a
    // MAILBOXID survives RENAME.
    let ids = |c: &mut Client, seq: u32| -> (String, String) {
        let r = c.cmd(&format!("i FETCH {seq} (EMAILID THREADID)"));
        let l = &r[0];
        let e = l
            .split("EMAILID (")
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap();
        let t = l
            .split("THREADID (")
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap();
        (e.to_string(), t.to_string())
    };
    let (e1, t1) = ids(&mut c, 1);
    let (e2, t2) = ids(&mut c, 2);
    assert_ne!(e1, e2);
    assert_eq!(t1, t2);
    c.cmd("k COPY 1 INBOX");
    let (e3, _) = ids(&mut c, 3);
    assert_eq!(e1, e3);
    assert_eq!(
        c.cmd(&format!("s1 SEARCH EMAILID {e1}")),
        ["* SEARCH 1 3", "s1 OK SEARCH completed"]
    );
    assert_eq!(
        c.cmd(&format!("s2 SEARCH THREADID {t1}")),
        ["* SEARCH 1 2 3", "s2 OK SEARCH completed"]
    );
    assert_eq!(
        c.cmd("s3 SEARCH EMAILID nonsense"),
        ["* SEARCH", "s3 OK SEARCH completed"]
    );
    let r = c.cmd("m1 CREATE Projects");
    assert!(r[0].starts_with("m1 OK [MAILBOXID (F"), "{r:?}");
    let id = r[0]
        .split("MAILBOXID (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .to_string();
    c.cmd("m2 RENAME Projects Work");
    assert_eq!(
        c.cmd("m3 STATUS Work (MAILBOXID)")[0],
        format!("* STATUS \"Work\" (MAILBOXID ({id}))")
    );

    // SAVEDATE: today for new messages; SEARCH by it; WITHIN by arrival.
    let r = c.cmd("d1 FETCH 3 (SAVEDATE INTERNALDATE)");
    assert!(r[0].contains("SAVEDATE \""), "{r:?}");
    assert_eq!(
        c.cmd("d2 SEARCH SAVEDATESUPPORTED SAVEDBEFORE 1-Jan-2000"),
        ["* SEARCH", "d2 OK SEARCH completed"]
    );
    assert_eq!(
        c.cmd("d3 SEARCH SAVEDSINCE 1-Jan-2000"),
        ["* SEARCH 1 2 3", "d3 OK SEARCH completed"]
    );
    let m = msg(9);
    c.send(
        format!(
            "a APPEND INBOX \"01-Jan-2020 10:00:00 +0000\" {{{}+}}\r\n{m}\r\n",
            m.len()
        )
        .as_bytes(),
    );
    let r = c.until("a");
    assert_eq!(r[..2], ["* 4 EXISTS", "* 4 RECENT"]);
    assert_eq!(
        c.cmd("w1 SEARCH OLDER 86400"),
        ["* SEARCH 4", "w1 OK SEARCH completed"]
    );
    assert_eq!(
        c.cmd("w2 SEARCH YOUNGER 86400"),
        ["* SEARCH 1 2 3", "w2 OK SEARCH completed"]
    );

    // UNAUTHENTICATE: back to before login, on the same connection.
    assert_eq!(
        c.cmd("u1 UNAUTHENTICATE"),
        ["u1 OK UNAUTHENTICATE completed"]
    );
    assert_eq!(
        c.cmd("u2 SELECT INBOX"),
        ["u2 BAD command not valid before login"]
    );
    let r = c.cmd(&format!("u3 LOGIN {user} pw"));
    assert!(r.last().unwrap().starts_with("u3 OK"), "{r:?}");
    let r = c.cmd("u4 SELECT INBOX");
    assert!(r.last().unwrap().starts_with("u4 OK"), "{r:?}");
}

#[test]
fn esort_and_partial_page_through_results() {
    let msgs: Vec<String> = (1..=6)
        .map(|i| {
            msg(i).replace(
                &format!("Subject: note {i}"),
                &format!("Subject: {}", 7 - i),
            )
        })
        .collect();
    let (env, user) = with_inbox(&msgs);
    let server = env.serve();
    let mut c = selected(&server, &user);
    // ESORT: ESEARCH in sort order; MIN/MAX are the first and last sorted.
    assert_eq!(
        c.cmd("o1 SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL"),
        [
            "* ESEARCH (TAG \"o1\") MIN 6 MAX 1 COUNT 6 ALL 6,5,4,3,2,1",
            "o1 OK SORT completed"
        ]
    );
    assert_eq!(
        c.cmd("o2 UID SORT RETURN (ALL) (REVERSE SUBJECT) UTF-8 2:5"),
        ["* ESEARCH (TAG \"o2\") UID ALL 2:5", "o2 OK SORT completed"]
    );
    // PARTIAL: a window from the start or from the end, for SEARCH and SORT.
    assert_eq!(
        c.cmd("p1 SEARCH RETURN (PARTIAL 2:3) ALL"),
        [
            "* ESEARCH (TAG \"p1\") PARTIAL (2:3 2:3)",
            "p1 OK SEARCH completed"
        ]
    );
    assert_eq!(
        c.cmd("p2 UID SEARCH RETURN (PARTIAL -1:-2 COUNT) ALL"),
        [
            "* ESEARCH (TAG \"p2\") UID PARTIAL (-1:-2 5:6) COUNT 6",
            "p2 OK SEARCH completed"
        ]
    );
    assert_eq!(
        c.cmd("p3 SORT RETURN (PARTIAL 1:2) (SUBJECT) UTF-8 ALL"),
        [
            "* ESEARCH (TAG \"p3\") PARTIAL (1:2 6,5)",
            "p3 OK SORT completed"
        ]
    );
    assert_eq!(
        c.cmd("p4 SEARCH RETURN (PARTIAL 10:20) ALL"),
        [
            "* ESEARCH (TAG \"p4\") PARTIAL (10:20 NIL)",
            "p4 OK SEARCH completed"
        ]
    );
    // FETCH's PARTIAL modifier: the last two of the set.
    assert_eq!(
        c.cmd("f1 UID FETCH 1:* (FLAGS) (PARTIAL -1:-2)"),
        [
            "* 5 FETCH (UID 5 FLAGS (\\Recent))",
            "* 6 FETCH (UID 6 FLAGS (\\Recent))",
            "f1 OK FETCH completed"
        ]
    );
    assert!(c.cmd("b1 SEARCH RETURN (PARTIAL 0:5) ALL")[0].starts_with("b1 BAD"));
}

#[test]
fn replace_stores_the_new_message_then_expunges_the_old() {
    let (env, user) = with_inbox(&[msg(1), msg(2)]);
    let server = env.serve();
    let mut c = selected(&server, &user);
    let draft = msg(3);
    c.send(
        format!(
            "r1 REPLACE 1 Drafts (\\Draft) {{{}+}}\r\n{draft}\r\n",
            draft.len()
        )
        .as_bytes(),
    );
    let r = c.until("r1");
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(
        r[0].starts_with("* OK [APPENDUID ") && r[0].ends_with(" 1] replacement stored"),
        "{r:?}"
    );
    assert_eq!(r[1], "* 1 EXPUNGE");
    assert_eq!(r[2], "r1 OK REPLACE completed");
    // UID REPLACE into the selected mailbox: EXISTS for the new one.
    c.send(format!("r2 UID REPLACE 2 INBOX {{{}+}}\r\n{draft}\r\n", draft.len()).as_bytes());
    let r = c.until("r2");
    assert!(
        r[0].starts_with("* OK [APPENDUID ") && r[0].ends_with(" 3] replacement stored"),
        "{r:?}"
    );
    assert_eq!(
        r[1..],
        [
            "* 1 EXPUNGE",
            "* 1 EXISTS",
            "* 1 RECENT",
            "r2 OK REPLACE completed"
        ]
    );
    // A UID that is gone, and a sequence number beyond the mailbox.
    c.send(format!("r3 UID REPLACE 2 INBOX {{{}+}}\r\n{draft}\r\n", draft.len()).as_bytes());
    assert_eq!(
        c.until("r3"),
        ["r3 NO [NONEXISTENT] no message with that UID"]
    );
    c.send(format!("r4 REPLACE 9 INBOX {{{}+}}\r\n{draft}\r\n", draft.len()).as_bytes());
    assert!(c.until("r4")[0].starts_with("r4 BAD"));
    let r = c.cmd("s STATUS Drafts (MESSAGES)");
    assert_eq!(r[0], "* STATUS \"Drafts\" (MESSAGES 1)");
}

#[test]
fn sort_display_uses_display_names_then_addresses() {
    let (env, user) = with_inbox(&[
        with_headers("Zed <a@x.org>", "Mid <m@x.org>", "1"),
        with_headers("b@x.org", "zz@x.org (Comment Name)", "2"),
        with_headers("=?utf-8?q?Al?= <z@x.org>", "aa@x.org", "3"),
    ]);
    let server = env.serve();
    let mut c = selected(&server, &user);
    assert_eq!(
        c.cmd("d1 SORT (DISPLAYFROM) UTF-8 ALL"),
        ["* SORT 3 2 1", "d1 OK SORT completed"]
    );
    // "aa@x.org", "comment name" (from the comment), "mid".
    assert_eq!(
        c.cmd("d2 SORT (DISPLAYTO) UTF-8 ALL"),
        ["* SORT 3 2 1", "d2 OK SORT completed"]
    );
    assert_eq!(
        c.cmd("d3 SORT (REVERSE DISPLAYFROM) UTF-8 ALL"),
        ["* SORT 1 2 3", "d3 OK SORT completed"]
    );
}

#[test]
fn metadata_on_mailboxes_and_the_server() {
    let (env, user) = with_inbox(&[]);
    let server = env.serve();
    let mut c = Client::login(server.imap, &user);
    assert_eq!(
        c.cmd("m1 SETMETADATA INBOX (/private/comment \"my inbox\" /shared/comment {3+}\r\nabc)"),
        ["m1 OK SETMETADATA completed"]
    );
    assert_eq!(
        c.cmd("m2 SETMETADATA \"\" (/private/vendor/x/a \"1\" /private/vendor/x/a/b \"2\")"),
        ["m2 OK SETMETADATA completed"]
    );
    assert_eq!(
        c.cmd("g1 GETMETADATA INBOX /private/comment"),
        [
            "* METADATA INBOX (/private/comment \"my inbox\")",
            "g1 OK GETMETADATA completed"
        ]
    );
    assert_eq!(
        c.cmd("g2 GETMETADATA INBOX (/private/comment /shared/comment /private/none)"),
        [
            "* METADATA INBOX (/private/comment \"my inbox\" /shared/comment \"abc\")",
            "g2 OK GETMETADATA completed"
        ]
    );
    // DEPTH and MAXSIZE on the server's entries.
    assert_eq!(
        c.cmd("g3 GETMETADATA (DEPTH infinity) \"\" /private/vendor"),
        [
            "* METADATA \"\" (/private/vendor/x/a \"1\" /private/vendor/x/a/b \"2\")",
            "g3 OK GETMETADATA completed"
        ]
    );
    assert_eq!(
        c.cmd("g4 GETMETADATA (DEPTH 1) \"\" /private/vendor/x"),
        [
            "* METADATA \"\" (/private/vendor/x/a \"1\")",
            "g4 OK GETMETADATA completed"
        ]
    );
    assert_eq!(
        c.cmd("g5 GETMETADATA (MAXSIZE 0) INBOX /private/comment"),
        ["g5 OK [METADATA LONGENTRIES 8] GETMETADATA completed"]
    );
    // NIL removes; RENAME carries entries; bad names and sizes are refused.
    c.cmd("f CREATE Work");
    c.cmd("s SETMETADATA Work (/private/comment \"w\")");
    c.cmd("r RENAME Work Play");
    assert_eq!(
        c.cmd("g6 GETMETADATA Play /private/comment"),
        [
            "* METADATA Play (/private/comment \"w\")",
            "g6 OK GETMETADATA completed"
        ]
    );
    assert_eq!(
        c.cmd("m3 SETMETADATA INBOX (/private/comment NIL)"),
        ["m3 OK SETMETADATA completed"]
    );
    assert_eq!(
        c.cmd("g7 GETMETADATA INBOX /private/comment"),
        ["g7 OK GETMETADATA completed"]
    );
    assert!(c.cmd("b1 SETMETADATA INBOX (/comment \"x\")")[0].starts_with("b1 BAD"));
    assert!(c.cmd("b2 GETMETADATA INBOX /private/*")[0].starts_with("b2 BAD"));
    assert!(c.cmd("b3 GETMETADATA Nowhere /private/comment")[0].starts_with("b3 NO"));
    let big = "x".repeat(40_000);
    c.send(
        format!(
            "b4 SETMETADATA INBOX (/private/big {{{}+}}\r\n{big})\r\n",
            big.len()
        )
        .as_bytes(),
    );
    assert_eq!(
        c.until("b4"),
        ["b4 NO [METADATA MAXSIZE 32768] value too large"]
    );
}

#[test]
fn list_metadata_follows_each_mailbox_with_its_entries() {
    let (env, user) = with_inbox(&[]);
    let server = env.serve();
    let mut c = Client::login(server.imap, &user);
    c.cmd("c CREATE Work");
    c.cmd("m1 SETMETADATA INBOX (/private/comment \"mine\" /shared/color \"#f00\")");
    c.cmd("m2 SETMETADATA Work (/private/comment {5+}\r\nwork!)");
    assert_eq!(
        c.cmd("l1 LIST \"\" (INBOX Work) RETURN (METADATA (/private/comment /shared/color))"),
        [
            "* LIST (\\HasNoChildren) \"/\" \"INBOX\"",
            "* LIST (\\HasNoChildren) \"/\" \"Work\"",
            "* METADATA \"INBOX\" (/private/comment \"mine\" /shared/color \"#f00\")",
            "* METADATA \"Work\" (/private/comment \"work!\" /shared/color NIL)",
            "l1 OK LIST completed"
        ]
    );
    // With STATUS, and MAXSIZE leaving out longer values.
    assert_eq!(
        c.cmd(
            "l2 LIST \"\" Work RETURN (STATUS (MESSAGES) METADATA (MAXSIZE 4 \"/private/comment\"))"
        ),
        [
            "* LIST (\\HasNoChildren) \"/\" \"Work\"",
            "* STATUS \"Work\" (MESSAGES 0)",
            "l2 OK [METADATA LONGENTRIES 5] LIST completed"
        ]
    );
    assert!(c.cmd("b1 LIST \"\" * RETURN (METADATA (/comment))")[0].starts_with("b1 BAD"));
    assert!(c.cmd("b2 LIST \"\" * RETURN (METADATA ())")[0].starts_with("b2 BAD"));
    let caps = c.cmd("k CAPABILITY");
    assert!(caps[0].contains(" LIST-METADATA "), "{caps:?}");
}

#[test]
fn catenate_joins_text_and_parts_of_stored_messages() {
    let multipart = "From: Ann <ann@example.net>\r\nSubject: with file\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: text/plain; name=f.txt\r\n\r\nthe attachment\r\n--b--\r\n";
    let (env, user) = with_inbox(&[msg(1), multipart.to_string()]);
    let server = env.serve();
    let mut c = selected(&server, &user);
    let r = c.cmd("s STATUS INBOX (UIDVALIDITY)");
    let validity: u32 = r[0]
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // A forward that keeps the attachment: new text, then the stored part
    // (its MIME header and body), then the closing boundary.
    let head = "From: Bob <bob@example.org>\r\nSubject: Fwd: with file\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=n\r\n\r\n--n\r\nContent-Type: text/plain\r\n\r\nsee below\r\n--n\r\n";
    let tail = "\r\n--n--\r\n";
    c.send(
        format!(
            "c1 APPEND Drafts (\\Draft) CATENATE (TEXT {{{}+}}\r\n{head} URL \"/INBOX;UIDVALIDITY={validity}/;UID=2/;SECTION=2.MIME\" URL \"/INBOX/;UID=2/;SECTION=2\" TEXT {{{}+}}\r\n{tail})\r\n",
            head.len(),
            tail.len()
        )
        .as_bytes(),
    );
    let r = c.until("c1");
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].starts_with("c1 OK [APPENDUID ") && r[0].ends_with(" 1] APPEND completed"),
        "{r:?}"
    );
    let want = format!("{head}Content-Type: text/plain; name=f.txt\r\n\r\nthe attachment{tail}");
    c.cmd("e EXAMINE Drafts");
    assert_eq!(
        c.cmd("f1 FETCH 1 (FLAGS BODY.PEEK[])"),
        [
            format!(
                "* 1 FETCH (FLAGS (\\Draft \\Recent) BODY[] {{{}}}\r\n{want})",
                want.len()
            ),
            "f1 OK FETCH completed".to_string()
        ]
    );
    assert_eq!(
        c.cmd("f2 FETCH 1 BODY.PEEK[2]"),
        [
            "* 1 FETCH (BODY[2] {14}\r\nthe attachment)",
            "f2 OK FETCH completed"
        ]
    );
    // A relative URL reads the selected mailbox; an absolute one must name
    // this server and this user; PARTIAL cuts, HEADER.FIELDS filters.
    let r = c.cmd(&format!(
        "c2 APPEND Drafts CATENATE (URL \"imap://{}@mail.example.org/Drafts/;UID=1/;SECTION=HEADER.FIELDS%20(Subject)\" URL \";UID=1/;SECTION=TEXT/;PARTIAL=7.9\")",
        user.replace('@', "%40")
    ));
    assert!(r.last().unwrap().starts_with("c2 OK [APPENDUID "), "{r:?}");
    assert_eq!(
        c.cmd("f3 FETCH 2 BODY.PEEK[]"),
        [
            "* 2 FETCH (BODY[] {36}\r\nSubject: Fwd: with file\r\n\r\nntent-Typ)",
            "f3 OK FETCH completed"
        ]
    );
    // Refusals: the whole command, nothing stored.
    for (url, why) in [
        ("/INBOX/;UID=99", "no message with that UID"),
        ("/Nowhere/;UID=1", "no such mailbox"),
        (
            "/INBOX;UIDVALIDITY=1/;UID=1",
            "the mailbox's UIDVALIDITY has changed",
        ),
        (
            "imap://other.example.org/INBOX/;UID=1",
            "the URL names another server",
        ),
        (
            "imap://bob%40example.org@mail.example.org/INBOX/;UID=1",
            "the URL names another user's mailbox",
        ),
        (
            "/INBOX/;UID=1/;URLAUTH=anonymous:internal:00",
            "IMAP URL has a part CATENATE does not take",
        ),
    ] {
        assert_eq!(
            c.cmd(&format!(
                "n APPEND Drafts {{1+}}\r\nx CATENATE (TEXT {{2+}}\r\nx: URL \"{url}\")"
            )),
            [format!("n NO [BADURL {url}] {why}")]
        );
    }
    assert_eq!(
        c.cmd("m STATUS Drafts (MESSAGES)"),
        ["* STATUS \"Drafts\" (MESSAGES 2)", "m OK STATUS completed"]
    );
    let r = c.cmd("u UNSELECT");
    assert_eq!(r, ["u OK UNSELECT completed"]);
    let r = c.cmd("c3 APPEND Drafts CATENATE (URL \";UID=1\")");
    assert_eq!(
        r,
        ["c3 NO [BADURL ;UID=1] a relative URL needs a selected mailbox"]
    );
    let caps = c.cmd("k CAPABILITY");
    assert!(caps[0].contains(" CATENATE "), "{caps:?}");
}

#[test]
fn catenate_is_bounded_by_appendlimit() {
    let mut env = dev_env();
    env.config.limits.max_message_bytes = 1000;
    let user = env.alias("ann", "pw");
    {
        let (_b, store) = env.store();
        let s = unlock(&store, &user, "pw");
        block(s.append(append_req("INBOX", msg(1).into_bytes()))).unwrap();
    }
    let server = env.serve();
    let mut c = selected(&server, &user);
    // msg(1) is under 200 bytes: five copies fit, ten do not.
    let five = ["URL \";UID=1\""; 5].join(" ");
    let r = c.cmd(&format!("a1 APPEND INBOX CATENATE ({five})"));
    assert!(r.last().unwrap().starts_with("a1 OK [APPENDUID "), "{r:?}");
    let ten = ["URL \";UID=1\""; 10].join(" ");
    assert_eq!(
        c.cmd(&format!("a2 APPEND INBOX CATENATE ({ten})")),
        ["a2 NO [TOOBIG] the message would be larger than APPENDLIMIT=1000"]
    );
    assert_eq!(
        c.cmd("s STATUS INBOX (MESSAGES)"),
        ["* STATUS \"INBOX\" (MESSAGES 2)", "s OK STATUS completed"]
    );
}

#[test]
fn a_thousand_search_keys_work_and_more_get_limit() {
    let (env, user) = with_inbox(&(1..=60).map(msg).collect::<Vec<_>>());
    let server = env.serve();
    let mut c = selected(&server, &user);
    // A thousand keys (SQLite would nest them a thousand deep).
    let keys = vec!["NOT SUBJECT zzz"; 500].join(" ");
    let r = c.cmd(&format!("s1 SEARCH {keys}"));
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[0].starts_with("* SEARCH 1 2 3 "), "{r:?}");
    assert_eq!(r[1], "s1 OK SEARCH completed");
    let r = c.cmd(&format!("s2 SORT (SUBJECT) UTF-8 {keys}"));
    assert_eq!(r[1], "s2 OK SORT completed");
    let r = c.cmd(&format!("s3 SEARCH {keys} ALL"));
    assert_eq!(
        r,
        ["s3 NO [LIMIT] a search may combine at most 1000 keys; split it"]
    );
    // A sequence set with many ranges over a mailbox with gaps.
    let even: Vec<String> = (2..=60).step_by(2).map(|n| n.to_string()).collect();
    let r = c.cmd(&format!(
        "d UID STORE {} +FLAGS.SILENT (\\Deleted)",
        even.join(",")
    ));
    assert!(r.last().unwrap().starts_with("d OK"), "{r:?}");
    let r = c.cmd("e EXPUNGE");
    assert_eq!(r.last().unwrap(), "e OK EXPUNGE completed");
    let odd: Vec<String> = (1..=30).step_by(2).map(|n| n.to_string()).collect();
    let r = c.cmd(&format!("s4 UID SEARCH {}", odd.join(",")));
    let uids: Vec<String> = (1..=60).step_by(4).map(|n| n.to_string()).collect();
    assert_eq!(r[0], format!("* SEARCH {}", uids.join(" ")));
    // 1:30 is 30 UID ranges now (every other UID is gone).
    let r = c.cmd("s5 UID SEARCH 1:30 NOT 5");
    let uids: Vec<String> = (1..=59)
        .step_by(2)
        .filter(|&u| u != 9)
        .map(|n| n.to_string())
        .collect();
    assert_eq!(r[0], format!("* SEARCH {}", uids.join(" ")));
}
