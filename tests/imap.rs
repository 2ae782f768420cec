//! IMAP scripted over raw sockets against a server started in-process on
//! loopback: exact responses per command and extension, error cases, IDLE,
//! two sessions on one mailbox, QRESYNC after a reconnect, and bad input.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::time::{Duration, Instant};

use common::imap::{Client, dev_env, msg};
use common::*;

fn append(c: &mut Client, folder: &str, body: &str) -> Vec<String> {
    c.send(format!("A APPEND {folder} {{{}+}}\r\n{body}\r\n", body.len()).as_bytes());
    c.until("A")
}

#[test]
fn scripted_session_exact_responses() {
    let env = dev_env();
    let addr = env.alias("ann", "pw");
    let server = env.serve();
    let (mut c, greeting) = Client::connect(server.imap);
    assert!(
        greeting.starts_with("* OK [CAPABILITY IMAP4rev1 "),
        "{greeting}"
    );
    assert!(greeting.contains(" STARTTLS") && greeting.contains(" AUTH=PLAIN"));

    // Wrong state and bad syntax.
    assert_eq!(
        c.cmd("a1 SELECT INBOX"),
        vec!["a1 BAD command not valid before login"]
    );
    assert_eq!(c.cmd("a2 FROB"), vec!["a2 BAD unknown command FROB"]);
    assert_eq!(c.cmd("a3 LOGIN"), vec!["a3 BAD expected ' ' at byte 8"]);
    let r = c.cmd(&format!("a4 LOGIN {addr} wrong"));
    assert_eq!(
        r,
        vec!["a4 NO [AUTHENTICATIONFAILED] Authentication failed."]
    );
    let r = c.cmd("a5 LOGIN nobody@example.org pw");
    assert_eq!(
        r,
        vec!["a5 NO [AUTHENTICATIONFAILED] Authentication failed."]
    );

    // SASL-IR login.
    use base64::Engine;
    let ir = base64::engine::general_purpose::STANDARD.encode(format!("\0{addr}\0pw"));
    let r = c.cmd(&format!("a6 AUTHENTICATE PLAIN {ir}"));
    assert!(r[0].starts_with("a6 OK [CAPABILITY IMAP4rev1 "), "{r:?}");
    assert!(!r[0].contains("STARTTLS"));
    assert_eq!(
        c.cmd("a7 FETCH 1 FLAGS"),
        vec!["a7 BAD no mailbox selected"]
    );
    assert_eq!(c.cmd("a8 LOGIN x y"), vec!["a8 BAD already logged in"]);

    assert_eq!(
        c.cmd("b1 NAMESPACE"),
        vec![
            "* NAMESPACE ((\"\" \"/\")) NIL NIL",
            "b1 OK NAMESPACE completed"
        ]
    );
    assert_eq!(
        c.cmd("b2 LIST \"\" \"\""),
        vec!["* LIST (\\Noselect) \"/\" \"\"", "b2 OK LIST completed"]
    );
    assert_eq!(
        c.cmd("b3 LIST \"\" *"),
        vec![
            "* LIST (\\HasNoChildren) \"/\" \"INBOX\"",
            "* LIST (\\HasNoChildren \\Archive) \"/\" \"Archive\"",
            "* LIST (\\HasNoChildren \\Drafts) \"/\" \"Drafts\"",
            "* LIST (\\HasNoChildren \\Junk) \"/\" \"Junk\"",
            "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"",
            "* LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\"",
            "b3 OK LIST completed"
        ]
    );

    // Folders: modified UTF-7 names, hierarchy, rename with children,
    // special-use folders protected.
    let r = c.cmd("c1 CREATE Entw&APw-rfe/2024/");
    assert!(
        r.len() == 1
            && r[0].starts_with("c1 OK [MAILBOXID (F")
            && r[0].ends_with(")] CREATE completed"),
        "{r:?}"
    );
    assert_eq!(
        c.cmd("c2 LIST \"\" Entw&APw-rfe*"),
        vec![
            "* LIST (\\HasChildren) \"/\" \"Entw&APw-rfe\"",
            "* LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe/2024\"",
            "c2 OK LIST completed"
        ]
    );
    assert_eq!(
        c.cmd("c3 RENAME Entw&APw-rfe Old"),
        vec!["c3 OK RENAME completed"]
    );
    assert_eq!(
        c.cmd("c4 LIST \"\" Old/%"),
        vec![
            "* LIST (\\HasNoChildren) \"/\" \"Old/2024\"",
            "c4 OK LIST completed"
        ]
    );
    let r = c.cmd("c5 DELETE Trash");
    assert!(r[0].starts_with("c5 NO [CANNOT] "), "{r:?}");
    let r = c.cmd("c6 DELETE Old");
    assert!(r[0].starts_with("c6 NO [CANNOT] "), "{r:?}");
    assert_eq!(c.cmd("c7 DELETE Old/2024"), vec!["c7 OK DELETE completed"]);
    let r = c.cmd("c8 CREATE Sent");
    assert!(r[0].starts_with("c8 NO [ALREADYEXISTS] "), "{r:?}");
    let r = c.cmd("c9 SELECT Nowhere");
    assert!(r[0].starts_with("c9 NO [NONEXISTENT] "), "{r:?}");
    assert_eq!(
        c.cmd("c10 CREATE &Jjo"),
        vec!["c10 NO [CANNOT] mailbox name is not valid modified UTF-7"]
    );
    let r = c.cmd("c11 CREATE a/../b");
    assert!(r[0].starts_with("c11 NO [CANNOT] "), "{r:?}");
    c.send(b"c12 CREATE {3+}\r\na\0b\r\n");
    let r = c.until("c12");
    assert_eq!(
        r,
        vec!["c12 NO [CANNOT] mailbox name is not valid modified UTF-7"]
    );
    assert_eq!(
        c.cmd("c13 SUBSCRIBE Old"),
        vec!["c13 OK SUBSCRIBE completed"]
    );
    assert_eq!(
        c.cmd("c14 LSUB \"\" O*"),
        vec![
            "* LSUB (\\HasNoChildren) \"/\" \"Old\"",
            "c14 OK LSUB completed"
        ]
    );

    // APPEND with a synchronising literal, then SELECT.
    let m1 = msg(1);
    c.send(
        format!(
            "d1 APPEND INBOX (\\Flagged) \"01-Feb-2024 10:00:00 +0000\" {{{}}}\r\n",
            m1.len()
        )
        .as_bytes(),
    );
    assert_eq!(c.line(), "+ Ready for literal data");
    c.send(format!("{m1}\r\n").as_bytes());
    let r = c.until("d1");
    assert!(r[0].starts_with("d1 OK [APPENDUID "), "{r:?}");
    let uidvalidity: u32 = r[0].split(' ').nth(3).unwrap().parse().unwrap();
    for i in 2..=3 {
        append(&mut c, "INBOX", &msg(i));
    }
    assert_eq!(
        c.cmd("d2 SELECT INBOX"),
        vec![
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)".to_string(),
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] flags permitted".into(),
            "* 3 EXISTS".into(),
            "* 3 RECENT".into(),
            "* OK [UNSEEN 1] first unseen".into(),
            format!("* OK [UIDVALIDITY {uidvalidity}] UIDs valid"),
            "* OK [UIDNEXT 4] next UID".into(),
            "* OK [HIGHESTMODSEQ 4] modseq".into(),
            format!("* OK [MAILBOXID (F{uidvalidity})] mailbox id"),
            "d2 OK [READ-WRITE] SELECT completed".into(),
        ]
    );

    // FETCH.
    assert_eq!(
        c.cmd("e1 FETCH 1 (UID FLAGS INTERNALDATE RFC822.SIZE)"),
        vec![
            format!(
                "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent) INTERNALDATE \"01-Feb-2024 10:00:00 +0000\" RFC822.SIZE {})",
                m1.len()
            ),
            "e1 OK FETCH completed".into()
        ]
    );
    assert_eq!(
        c.cmd("e2 FETCH 2 (ENVELOPE BODY)"),
        vec![
            "* 2 FETCH (ENVELOPE (\"Mon, 1 Jan 2024 10:00:00 +0000\" \"note 2\" ((\"Ann\" NIL \"ann\" \"example.net\")) ((\"Ann\" NIL \"ann\" \"example.net\")) ((\"Ann\" NIL \"ann\" \"example.net\")) ((NIL NIL \"bob\" \"example.org\")) NIL NIL NIL \"<m2@example.net>\") BODY (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 15 1))",
            "e2 OK FETCH completed"
        ]
    );
    assert_eq!(
        c.cmd("e3 FETCH 3 (BODY.PEEK[HEADER.FIELDS (Subject)] BODY.PEEK[TEXT]<5.6>)"),
        vec![
            "* 3 FETCH (BODY[HEADER.FIELDS (Subject)] {19}\r\nSubject: note 3\r\n\r\n BODY[TEXT]<5> {6}\r\nnumber)",
            "e3 OK FETCH completed"
        ]
    );
    // A non-PEEK body fetch sets \Seen and says so.
    assert_eq!(
        c.cmd("e4 FETCH 3 BODY[TEXT]"),
        vec![
            "* 3 FETCH (FLAGS (\\Seen \\Recent) BODY[TEXT] {15}\r\nbody number 3\r\n)",
            "e4 OK FETCH completed"
        ]
    );
    assert_eq!(
        c.cmd("e5 UID FETCH 99 FLAGS"),
        vec!["e5 OK FETCH completed"]
    );
    assert_eq!(
        c.cmd("e6 FETCH 4 FLAGS"),
        vec!["e6 BAD no such message (sequence number beyond the mailbox)"]
    );
    assert_eq!(
        c.cmd("e7 FETCH 1:4294967295 UID"),
        vec![
            "* 1 FETCH (UID 1)",
            "* 2 FETCH (UID 2)",
            "* 3 FETCH (UID 3)",
            "e7 OK FETCH completed"
        ]
    );
    let r = c.cmd("e8 FETCH 1 BODY[9]");
    assert_eq!(
        r,
        vec![
            "* 1 FETCH (FLAGS (\\Flagged \\Seen \\Recent) BODY[9] {0}\r\n)",
            "e8 OK FETCH completed"
        ]
    );

    // STORE, SEARCH, ESEARCH. A keyword new to the mailbox is announced
    // before the FETCH that shows it (RFC 3501 §7.2.6).
    assert_eq!(
        c.cmd("f1 STORE 2 +FLAGS (\\Deleted $Work)"),
        vec![
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] flags permitted",
            "* 2 FETCH (FLAGS (\\Deleted \\Recent $Work))",
            "f1 OK STORE completed"
        ]
    );
    assert_eq!(
        c.cmd("f2 STORE 2 -FLAGS.SILENT ($Work)"),
        vec!["f2 OK STORE completed"]
    );
    assert_eq!(
        c.cmd("f3 UID STORE 2 FLAGS (\\Deleted)"),
        vec!["f3 OK STORE completed"],
        "no change, no response"
    );
    assert_eq!(
        c.cmd("f4 STORE 1 +FLAGS (\\Recent)"),
        vec!["f4 BAD flag \\Recent cannot be set"]
    );
    assert_eq!(
        c.cmd("g1 SEARCH DELETED"),
        vec!["* SEARCH 2", "g1 OK SEARCH completed"]
    );
    assert_eq!(
        c.cmd("g2 UID SEARCH OR SUBJECT \"note 1\" BODY \"number 3\""),
        vec!["* SEARCH 1 3", "g2 OK SEARCH completed"]
    );
    assert_eq!(
        c.cmd("g3 SEARCH RETURN (MIN MAX COUNT ALL) NOT DELETED"),
        vec![
            "* ESEARCH (TAG \"g3\") MIN 1 MAX 3 COUNT 2 ALL 1,3",
            "g3 OK SEARCH completed"
        ]
    );
    assert_eq!(
        c.cmd("g4 SEARCH CHARSET KOI8-R ALL"),
        vec!["g4 NO [BADCHARSET (UTF-8 US-ASCII)] unsupported charset"]
    );
    assert_eq!(
        c.cmd("g5 SEARCH SINCE 1-Jan-2099"),
        vec!["* SEARCH", "g5 OK SEARCH completed"]
    );
    assert_eq!(
        c.cmd("g6 SEARCH 2:* UNSEEN"),
        vec!["* SEARCH 2", "g6 OK SEARCH completed"]
    );

    // COPY and MOVE with UIDPLUS; EXPUNGE.
    let archive = c.cmd("h0 STATUS Archive (UIDVALIDITY)");
    let av: u32 = archive[0]
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        c.cmd("h1 COPY 1:2 Archive"),
        vec![format!("h1 OK [COPYUID {av} 1:2 1:2] COPY completed")]
    );
    let r = c.cmd("h2 COPY 1 Nowhere");
    assert_eq!(r, vec!["h2 NO [TRYCREATE] no such mailbox"]);
    assert_eq!(
        c.cmd("h3 MOVE 3 Archive"),
        vec![
            format!("* OK [COPYUID {av} 3 3] moved"),
            "* 3 EXPUNGE".into(),
            "h3 OK MOVE completed".into()
        ]
    );
    assert_eq!(
        c.cmd("h4 EXPUNGE"),
        vec!["* 2 EXPUNGE", "h4 OK EXPUNGE completed"]
    );
    assert_eq!(
        c.cmd("h5 STATUS Archive (MESSAGES UIDNEXT UNSEEN DELETED RECENT)"),
        vec![
            "* STATUS \"Archive\" (MESSAGES 3 UIDNEXT 4 UNSEEN 1 DELETED 1 RECENT 3)",
            "h5 OK STATUS completed"
        ]
    );

    // CONDSTORE.
    let r = c.cmd("i1 FETCH 1 (MODSEQ)");
    // The first CONDSTORE-enabling command reports HIGHESTMODSEQ.
    assert!(r[0].starts_with("* OK [HIGHESTMODSEQ "), "{r:?}");
    assert!(r[1].starts_with("* 1 FETCH (MODSEQ ("), "{r:?}");
    let modseq: u64 = r[1]
        .trim_end_matches("))")
        .rsplit('(')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let r = c.cmd(&format!(
        "i2 STORE 1 (UNCHANGEDSINCE {}) +FLAGS (\\Answered)",
        modseq - 1
    ));
    assert_eq!(
        r,
        vec!["i2 OK [MODIFIED 1] conditional STORE failed for some messages"]
    );
    let r = c.cmd(&format!(
        "i3 STORE 1 (UNCHANGEDSINCE {modseq}) +FLAGS.SILENT (\\Answered)"
    ));
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[0].starts_with("* 1 FETCH (UID 1 MODSEQ ("), "{r:?}");
    let new: u64 = r[0]
        .trim_end_matches("))")
        .rsplit('(')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(new > modseq);
    assert_eq!(
        c.cmd(&format!("i4 FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq})")),
        vec![
            format!("* 1 FETCH (FLAGS (\\Answered \\Flagged \\Seen \\Recent) MODSEQ ({new}))"),
            "i4 OK FETCH completed".into()
        ]
    );

    // QUOTA (no quota set), ENABLE, EXAMINE, UNSELECT, LOGOUT.
    assert_eq!(
        c.cmd("j1 GETQUOTAROOT INBOX"),
        vec!["* QUOTAROOT \"INBOX\"", "j1 OK GETQUOTA completed"]
    );
    assert_eq!(
        c.cmd("j2 ENABLE CONDSTORE X-UNKNOWN"),
        vec!["* ENABLED CONDSTORE", "j2 OK ENABLE completed"]
    );
    let r = c.cmd("j3 EXAMINE INBOX");
    assert!(
        r.contains(&"* OK [PERMANENTFLAGS ()] read-only".to_string()),
        "{r:?}"
    );
    assert_eq!(r.last().unwrap(), "j3 OK [READ-ONLY] EXAMINE completed");
    assert_eq!(
        c.cmd("j4 STORE 1 +FLAGS (\\Deleted)"),
        vec!["j4 NO [READ-ONLY] mailbox is read-only"]
    );
    assert_eq!(c.cmd("j5 UNSELECT"), vec!["j5 OK UNSELECT completed"]);
    assert_eq!(
        c.cmd("j6 LOGOUT"),
        vec!["* BYE sealmail logging out", "j6 OK LOGOUT completed"]
    );
}

#[test]
fn sort_and_thread_exact_responses() {
    let env = dev_env();
    let addr = env.alias("ann", "pw");
    let server = env.serve();
    let mut c = Client::login(server.imap, &addr);
    // uid, from, day of January, subject, message-id, references, padding
    let mails = [
        ("zed", 3, "Lunch", "<a@x>", "", 10),
        ("amy", 1, "Re: Lunch", "<b@x>", "<a@x>", 500),
        ("bob", 2, "Plans", "<c@x>", "", 40),
        ("amy", 5, "Re: Lunch", "<d@x>", "<a@x> <b@x>", 0),
        ("cat", 4, "Re: Plans", "<e@x>", "<c@x>", 300),
        ("dan", 6, "Re: Gone", "<f@x>", "<missing@x>", 20),
        ("eve", 7, "Re: Gone", "<g@x>", "<missing@x>", 30),
    ];
    for (from, day, subject, id, refs, pad) in mails {
        let refs = if refs.is_empty() {
            String::new()
        } else {
            format!("References: {refs}\r\n")
        };
        let m = format!(
            "From: {from}@example.net\r\nTo: ann@example.org\r\nSubject: {subject}\r\nDate: {day} Jan 2024 10:00:00 +0000\r\nMessage-ID: {id}\r\n{refs}\r\n{}\r\n",
            "x".repeat(pad)
        );
        assert!(
            append(&mut c, "INBOX", &m)
                .last()
                .unwrap()
                .starts_with("A OK")
        );
    }
    assert_eq!(
        c.cmd("s0 SORT (DATE) UTF-8 ALL"),
        vec!["s0 BAD no mailbox selected"]
    );
    c.cmd("s1 SELECT INBOX");
    assert_eq!(
        c.cmd("s2 SORT (DATE) UTF-8 ALL"),
        vec!["* SORT 2 3 1 5 4 6 7", "s2 OK SORT completed"]
    );
    assert_eq!(
        c.cmd("s3 SORT (FROM REVERSE SIZE) US-ASCII ALL"),
        vec!["* SORT 2 4 3 5 6 7 1", "s3 OK SORT completed"]
    );
    assert_eq!(
        c.cmd("s4 SORT (SUBJECT REVERSE DATE) UTF-8 NOT FROM dan"),
        vec!["* SORT 7 4 1 2 5 3", "s4 OK SORT completed"]
    );
    assert_eq!(
        c.cmd("s5 UID SORT (REVERSE SIZE) UTF-8 3:5"),
        vec!["* SORT 5 3 4", "s5 OK SORT completed"]
    );
    assert_eq!(
        c.cmd("s6 SORT (SIZE) UTF-8 SUBJECT nothing-matches"),
        vec!["* SORT", "s6 OK SORT completed"]
    );
    assert_eq!(
        c.cmd("s7 SORT (COLOUR) UTF-8 ALL"),
        vec!["s7 BAD unknown sort key COLOUR"]
    );
    assert_eq!(
        c.cmd("s8 SORT (DATE) KOI8-R ALL"),
        vec!["s8 NO [BADCHARSET (UTF-8 US-ASCII)] unsupported charset"]
    );
    assert_eq!(
        c.cmd("s9 SORT DATE UTF-8 ALL"),
        vec!["s9 BAD expected '(' at byte 8"]
    );

    assert_eq!(
        c.cmd("t1 THREAD ORDEREDSUBJECT UTF-8 ALL"),
        vec!["* THREAD (2 (1)(4))(3 5)(6 7)", "t1 OK THREAD completed"]
    );
    assert_eq!(
        c.cmd("t2 THREAD REFERENCES UTF-8 ALL"),
        vec!["* THREAD (3 5)(1 2 4)((6)(7))", "t2 OK THREAD completed"]
    );
    assert_eq!(
        c.cmd("t3 UID THREAD REFERENCES UTF-8 NOT 2"),
        vec!["* THREAD (3 5)(1 4)((6)(7))", "t3 OK THREAD completed"]
    );
    assert_eq!(
        c.cmd("t4 THREAD REFERENCES UTF-8 SUBJECT nothing-matches"),
        vec!["* THREAD", "t4 OK THREAD completed"]
    );
    assert_eq!(
        c.cmd("t5 THREAD JWZ UTF-8 ALL"),
        vec!["t5 BAD unknown threading algorithm JWZ"]
    );
    // Sequence numbers follow expunges; UIDs do not.
    c.cmd("t6 STORE 1 +FLAGS.SILENT (\\Deleted)");
    c.cmd("t7 EXPUNGE");
    assert_eq!(
        c.cmd("t8 THREAD REFERENCES UTF-8 ALL"),
        vec!["* THREAD (1 3)(2 4)((5)(6))", "t8 OK THREAD completed"]
    );
    assert_eq!(
        c.cmd("t9 UID SORT (DATE) UTF-8 ALL"),
        vec!["* SORT 2 3 5 4 6 7", "t9 OK SORT completed"]
    );
}

#[test]
fn imap4rev2_binary_and_searchres_exact_responses() {
    let env = dev_env();
    let addr = env.alias("ann", "pw");
    let server = env.serve();
    let mut c = Client::login(server.imap, &addr);
    let caps = c.cmd("r0 CAPABILITY");
    for cap in [
        " IMAP4rev1 ",
        " IMAP4rev2 ",
        " BINARY ",
        " SEARCHRES ",
        " LIST-EXTENDED ",
    ] {
        assert!(caps[0].contains(cap), "{cap} in {caps:?}");
    }
    assert_eq!(
        c.cmd("r1 ENABLE IMAP4rev2"),
        vec!["* ENABLED IMAP4rev2", "r1 OK ENABLE completed"]
    );
    let plain = msg(1);
    let binary = "From: ann@example.net\r\nSubject: bin\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC/w==\r\n--b--\r\n";
    let odd = "From: ann@example.net\r\nSubject: odd\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/x-thing\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n--b--\r\n";
    for m in [plain.as_str(), binary, odd] {
        assert!(
            append(&mut c, "INBOX", m)
                .last()
                .unwrap()
                .starts_with("A OK")
        );
    }
    // A literal8 APPEND keeps its NUL.
    let with_nul = b"Subject: nul\r\n\r\na\0b\r\n";
    c.send(format!("A APPEND INBOX ~{{{}+}}\r\n", with_nul.len()).as_bytes());
    c.send(with_nul);
    c.send(b"\r\n");
    assert!(c.until("A").last().unwrap().starts_with("A OK [APPENDUID "));

    let r = c.cmd("r2 SELECT INBOX");
    assert!(
        !r.iter()
            .any(|l| l.contains("RECENT") || l.contains("UNSEEN")),
        "{r:?}"
    );
    assert!(r.contains(&"* 4 EXISTS".to_string()), "{r:?}");
    assert!(
        r.contains(&"* LIST (\\HasNoChildren) \"/\" \"INBOX\"".to_string()),
        "{r:?}"
    );
    assert_eq!(r.last().unwrap(), "r2 OK [READ-WRITE] SELECT completed");

    // Every SEARCH answers with ESEARCH; SAVE keeps the result as `$`.
    assert_eq!(
        c.cmd("r3 SEARCH ALL"),
        vec!["* ESEARCH (TAG \"r3\") ALL 1:4", "r3 OK SEARCH completed"]
    );
    assert_eq!(
        c.cmd("r4 SEARCH SUBJECT nothing-matches"),
        vec!["* ESEARCH (TAG \"r4\")", "r4 OK SEARCH completed"]
    );
    assert_eq!(
        c.cmd("r5 UID SEARCH RETURN (SAVE) OR SUBJECT bin SUBJECT odd"),
        vec!["r5 OK SEARCH completed"]
    );
    assert_eq!(
        c.cmd("r6 FETCH $ (UID)"),
        vec![
            "* 2 FETCH (UID 2)",
            "* 3 FETCH (UID 3)",
            "r6 OK FETCH completed"
        ]
    );
    assert_eq!(
        c.cmd("r7 SEARCH RETURN (COUNT) $ SUBJECT odd"),
        vec!["* ESEARCH (TAG \"r7\") COUNT 1", "r7 OK SEARCH completed"]
    );
    assert_eq!(
        c.cmd("r8 SEARCH RETURN (MAX SAVE) ALL"),
        vec!["* ESEARCH (TAG \"r8\") MAX 4", "r8 OK SEARCH completed"]
    );
    assert_eq!(
        c.cmd("r9 UID SEARCH UID $"),
        vec!["* ESEARCH (TAG \"r9\") UID ALL 4", "r9 OK SEARCH completed"]
    );

    // BINARY: transfer encodings undone, literal8 for NULs, sizes.
    assert_eq!(
        c.cmd("b1 FETCH 2 (BINARY.SIZE[1] BINARY.SIZE[2] BINARY.PEEK[1])"),
        vec![
            "* 2 FETCH (BINARY.SIZE[1] 5 BINARY.SIZE[2] 4 BINARY[1] {5}\r\ncafé)",
            "b1 OK FETCH completed"
        ]
    );
    let r = c.cmd("b2 FETCH 2 BINARY.PEEK[2]<1.2>");
    assert_eq!(r[0].as_bytes(), b"* 2 FETCH (BINARY[2]<1> {2}\r\n\x01\x02)");
    // Appended as literal8 with a NUL: stored base64-encoded, so BODY[]
    // is 7-bit and BINARY[1] gives the bytes back in a literal8.
    let r = c.cmd("b3 FETCH 4 BINARY.PEEK[1]");
    assert_eq!(r[0].as_bytes(), b"* 4 FETCH (BINARY[1] ~{5}\r\na\0b\r\n)");
    let r = c.cmd("b3b FETCH 4 BODY.PEEK[]");
    assert_eq!(
        r[0],
        "* 4 FETCH (BODY[] {61}\r\nSubject: nul\r\nContent-Transfer-Encoding: base64\r\n\r\nYQBiDQo=\r\n)"
    );
    assert_eq!(
        c.cmd("b4 FETCH 3 BINARY.PEEK[2]"),
        vec!["b4 NO [UNKNOWN-CTE] a part's Content-Transfer-Encoding cannot be decoded"]
    );
    assert_eq!(
        c.cmd("b5 FETCH 3 BINARY.PEEK[1]"),
        vec!["* 3 FETCH (BINARY[1] {2}\r\nhi)", "b5 OK FETCH completed"]
    );
    assert_eq!(
        c.cmd("b6 FETCH 1 BINARY[1.]"),
        vec!["b6 BAD expected a number at byte 20"]
    );

    // Expunged messages leave `$`.
    c.cmd("e1 STORE 4 +FLAGS.SILENT (\\Deleted)");
    assert_eq!(
        c.cmd("e2 EXPUNGE"),
        vec!["* 4 EXPUNGE", "e2 OK EXPUNGE completed"]
    );
    assert_eq!(
        c.cmd("e3 SEARCH $"),
        vec!["* ESEARCH (TAG \"e3\")", "e3 OK SEARCH completed"]
    );

    // Mailbox names in UTF-8, RENAME's OLDNAME, LIST RECURSIVEMATCH.
    let r = c.cmd("n1 CREATE \"Café/Menü\"");
    assert!(r[0].starts_with("n1 OK [MAILBOXID (F"), "{r:?}");
    // CREATE does not subscribe; the client does.
    c.cmd("n2 SUBSCRIBE \"Café/Menü\"");
    assert_eq!(
        c.cmd("n3 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"Caf*\""),
        vec![
            "* LIST (\\HasChildren) \"/\" \"Café\" (\"CHILDINFO\" (\"SUBSCRIBED\"))",
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Café/Menü\"",
            "n3 OK LIST completed"
        ]
    );
    assert_eq!(
        c.cmd("n4 LIST (RECURSIVEMATCH) \"\" \"*\""),
        vec!["n4 BAD RECURSIVEMATCH needs the SUBSCRIBED selection option"]
    );
    assert_eq!(
        c.cmd("n5 RENAME \"Café/Menü\" \"Café/Karte\""),
        vec![
            "* LIST () \"/\" \"Café/Karte\" (\"OLDNAME\" (\"Café/Menü\"))",
            "n5 OK RENAME completed"
        ]
    );
    let r = c.cmd("n6 EXAMINE \"Café/Karte\"");
    assert_eq!(r[0], "* OK [CLOSED] previous mailbox closed");
    assert!(
        r.contains(&"* LIST (\\HasNoChildren) \"/\" \"Café/Karte\"".to_string()),
        "{r:?}"
    );
    assert_eq!(
        c.cmd("n7 STATUS INBOX (MESSAGES DELETED SIZE)"),
        vec![
            format!(
                "* STATUS \"INBOX\" (MESSAGES 3 DELETED 0 SIZE {})",
                plain.len() + binary.len() + odd.len()
            ),
            "n7 OK STATUS completed".to_string()
        ]
    );
}

#[test]
fn plaintext_login_needs_tls_outside_dev_mode() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let server = env.serve();
    let (mut c, greeting) = Client::connect(server.imap);
    assert!(greeting.contains("LOGINDISABLED") && greeting.contains("STARTTLS"));
    assert!(!greeting.contains("AUTH=PLAIN"));
    let r = c.cmd(&format!("a LOGIN {addr} pw"));
    assert!(r[0].starts_with("a NO [PRIVACYREQUIRED] "), "{r:?}");
}

#[test]
// Pushed as they commit, not polled: a poll (every 30 s or more in most
// servers) would miss the generous 5 s bound, a slow machine would not.
fn idle_sees_deliveries_flags_and_expunges_as_they_happen() {
    let env = dev_env();
    let addr = env.alias("ann", "pw");
    let server = env.serve();
    let mut a = Client::login(server.imap, &addr);
    a.cmd("s SELECT INBOX");
    a.send(b"i IDLE\r\n");
    assert_eq!(a.line(), "+ idling");

    let t = Instant::now();
    assert!(smtp_send(server.smtp, &addr, "pushed").starts_with("250"));
    assert_eq!(a.line(), "* 1 EXISTS");
    // A's session is the first to see it: it holds it as \Recent.
    assert_eq!(a.line(), "* 1 RECENT");
    let waited = t.elapsed();
    assert!(waited < Duration::from_secs(5), "EXISTS after {waited:?}");

    let mut b = Client::login(server.imap, &addr);
    b.cmd("s SELECT INBOX");
    let t = Instant::now();
    b.cmd("f STORE 1 +FLAGS (\\Flagged)");
    assert_eq!(a.line(), "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))");
    b.cmd("d STORE 1 +FLAGS.SILENT (\\Deleted)");
    assert_eq!(
        a.line(),
        "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Deleted \\Recent))"
    );
    b.cmd("e EXPUNGE");
    assert_eq!(a.line(), "* 1 EXPUNGE");
    assert!(t.elapsed() < Duration::from_secs(5));
    a.send(b"DONE\r\n");
    assert_eq!(a.until("i"), vec!["i OK IDLE terminated"]);
}

#[test]
fn two_sessions_expunge_while_fetching_gives_no_stale_uids() {
    let env = dev_env();
    let addr = env.alias("ann", "pw");
    let server = env.serve();
    let mut a = Client::login(server.imap, &addr);
    for i in 1..=10 {
        append(&mut a, "INBOX", &msg(i));
    }
    a.cmd("s SELECT INBOX");
    let mut b = Client::login(server.imap, &addr);
    b.cmd("s SELECT INBOX");
    b.cmd("d STORE 1:5 +FLAGS.SILENT (\\Deleted)");
    let r = b.cmd("e EXPUNGE");
    assert_eq!(r.len(), 6, "{r:?}");

    // A has not been told yet: its numbers still hold, no EXPUNGE may come
    // during FETCH, and expunged messages are simply absent.
    let r = a.cmd("f FETCH 1:* (UID)");
    assert!(!r.iter().any(|l| l.contains("EXPUNGE")), "{r:?}");
    let uids: Vec<&String> = r
        .iter()
        .filter(|l| l.contains("FETCH (UID") && !l.contains("FLAGS"))
        .collect();
    assert_eq!(uids.len(), 5, "{r:?}");
    assert_eq!(uids[0], "* 6 FETCH (UID 6)");
    let r = a.cmd("n NOOP");
    assert_eq!(r.iter().filter(|l| *l == "* 1 EXPUNGE").count(), 5, "{r:?}");
    assert_eq!(
        a.cmd("g FETCH 1:* (UID)"),
        vec![
            "* 1 FETCH (UID 6)",
            "* 2 FETCH (UID 7)",
            "* 3 FETCH (UID 8)",
            "* 4 FETCH (UID 9)",
            "* 5 FETCH (UID 10)",
            "g OK FETCH completed"
        ]
    );
}

#[test]
fn qresync_reconnect_gets_exactly_what_changed() {
    let env = dev_env();
    let addr = env.alias("ann", "pw");
    let server = env.serve();
    let mut a = Client::login(server.imap, &addr);
    for i in 1..=5 {
        append(&mut a, "INBOX", &msg(i));
    }
    assert_eq!(
        a.cmd("e ENABLE QRESYNC"),
        vec!["* ENABLED QRESYNC", "e OK ENABLE completed"]
    );
    let r = a.cmd("s SELECT INBOX");
    let line = |r: &[String], code: &str| -> u64 {
        let l = r.iter().find(|l| l.contains(code)).unwrap();
        l.split([' ', ']']).nth(3).unwrap().parse().unwrap()
    };
    let validity = line(&r, "UIDVALIDITY");
    let modseq = line(&r, "HIGHESTMODSEQ");
    a.cmd("l LOGOUT");

    let mut b = Client::login(server.imap, &addr);
    b.cmd("s SELECT INBOX");
    b.cmd("f STORE 2 +FLAGS (\\Seen)");
    let r = b.cmd("d STORE 3,5 +FLAGS (\\Deleted)");
    assert_eq!(r.len(), 3, "{r:?}");
    let r = b.cmd("x EXPUNGE");
    assert_eq!(
        r,
        vec!["* 3 EXPUNGE", "* 4 EXPUNGE", "x OK EXPUNGE completed"]
    );
    b.cmd("l LOGOUT");

    let mut a = Client::login(server.imap, &addr);
    a.cmd("e ENABLE QRESYNC");
    let r = a.cmd(&format!("s SELECT INBOX (QRESYNC ({validity} {modseq}))"));
    let news: Vec<&String> = r
        .iter()
        .filter(|l| l.contains("VANISHED") || l.contains("FETCH"))
        .collect();
    assert_eq!(news.len(), 2, "{r:?}");
    assert_eq!(news[0], "* VANISHED (EARLIER) 3,5", "{r:?}");
    assert!(
        news[1].starts_with("* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ ("),
        "{r:?}"
    );
    // UID FETCH with VANISHED gives the same answer.
    let r = a.cmd(&format!(
        "v UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"
    ));
    assert_eq!(r[0], "* VANISHED (EARLIER) 3,5");
    assert!(
        r[1].starts_with("* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ ("),
        "{r:?}"
    );
    assert_eq!(r.len(), 3, "{r:?}");
    // Expunges in this session now come as VANISHED.
    a.cmd("d STORE 1 +FLAGS.SILENT (\\Deleted)");
    assert_eq!(
        a.cmd("x EXPUNGE"),
        vec!["* VANISHED 1", "x OK EXPUNGE completed"]
    );
}

#[test]
fn bad_input_gets_clear_errors_and_the_session_survives() {
    let env = dev_env();
    let addr = env.alias("ann", "pw");
    let server = env.serve();
    let mut c = Client::login(server.imap, &addr);

    // A 4 GiB synchronising literal is refused before a byte is sent.
    c.send(b"a APPEND INBOX {4294967295}\r\n");
    let l = c.line();
    assert!(l.starts_with("a NO [TOOBIG] "), "{l}");
    assert_eq!(c.cmd("b NOOP"), vec!["b OK NOOP completed"]);

    // An overlong line (5 MiB) is read to its end and refused.
    let mut long = b"c SEARCH SUBJECT ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 5 << 20));
    long.extend_from_slice(b"\r\n");
    c.send(&long);
    assert_eq!(c.until("c"), vec!["c BAD command line too long"]);

    // Deep nesting: bounded before recursion.
    let deep = format!("d SEARCH {}ALL{}", "(".repeat(30_000), ")".repeat(30_000));
    let r = c.cmd(&deep);
    assert_eq!(r, vec!["d BAD parentheses nest deeper than 64"]);
    let r = c.cmd(&format!("e SEARCH {}", "(".repeat(100_000)));
    assert_eq!(r, vec!["e BAD command line too long"]);

    // Unterminated quoted string, bad sets, binary literal, then still fine.
    assert_eq!(
        c.cmd("f SELECT \"INBOX"),
        vec!["f BAD unterminated quoted string"]
    );
    c.cmd("s SELECT INBOX");
    assert_eq!(
        c.cmd("g FETCH 1:* FLAGS"),
        vec!["g BAD no such message (sequence number beyond the mailbox)"]
    );
    assert_eq!(c.cmd("h UID FETCH 1:* FLAGS"), vec!["h OK FETCH completed"]);
    assert_eq!(c.cmd("i NOOP"), vec!["i OK NOOP completed"]);

    // Too many errors: the server hangs up.
    let mut last = String::new();
    for n in 0..30 {
        c.send(format!("z{n} BOGUS\r\n").as_bytes());
        last = c.line();
        if last.starts_with("* BYE") {
            break;
        }
    }
    assert_eq!(last, "* BYE too many errors");

    // A 4 GiB non-synchronising literal: the connection cannot be
    // resynchronised, so the server says BYE.
    let (mut c, _) = Client::connect(server.imap);
    c.send(b"a LOGIN {4294967295+}\r\n");
    let l = c.line();
    assert!(l.starts_with("* BYE [TOOBIG] "), "{l}");
}

/// `é` is two bytes: the APPEND date's zone was once sliced inside it, a
/// panic any client could reach before login. Now it is a BAD, the
/// session goes on, and no connection task panicked (checked on drop).
#[test]
fn multibyte_append_zone_before_login_is_refused() {
    let env = dev_env();
    env.alias("ann", "pw");
    let server = env.serve();
    let (mut c, _) = Client::connect(server.imap);
    c.send("a APPEND INBOX \"1-Jan-2024 10:00:00 \u{e9}+00\" {1+}\r\nx\r\n".as_bytes());
    assert_eq!(c.until("a"), vec!["a BAD bad APPEND date-time"]);
    assert_eq!(c.cmd("b NOOP"), vec!["b OK NOOP completed"]);
}
