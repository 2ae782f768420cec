//! Table tests of the interpreter as sealmail sets it up: each action's
//! outcome, vacation's rules and tracking, every bound giving the implicit
//! keep, compile errors, and the body prefix a script sees.
//!
//! Imports the parent module only, with a fake `Host`.

use super::*;

/// A host with scripts by name, folders, and duplicate tracking.
#[derive(Default)]
struct Fake {
    scripts: Vec<(String, String)>,
    folders: Vec<String>,
    seen: Vec<String>,
}

impl Host for Fake {
    fn script(&mut self, name: &str) -> Option<String> {
        self.scripts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
    }
    fn duplicate(&mut self, id: &str, _expiry: u64) -> bool {
        if self.seen.iter().any(|s| s == id) {
            return true;
        }
        self.seen.push(id.to_string());
        false
    }
    fn folders_exist(&mut self, names: &[String]) -> bool {
        names.iter().all(|n| self.folders.contains(n))
    }
}

const MAIL: &str = "From: Ann <ann@example.net>\r\nTo: bob@example.org\r\nSubject: Hello there\r\nMessage-ID: <1@example.net>\r\n\r\nThe quarterly figures.\r\n";

fn run_with(host: &mut Fake, script: &str, raw: &str) -> Outcome {
    let i = Interpreter::new("mx.example.org");
    let s = i.compile(script.as_bytes()).expect("compiles");
    let m = Message {
        raw: raw.as_bytes(),
        from: "ann@example.net",
        rcpt: "bob+work@example.org",
        alias: "bob@example.org",
    };
    i.run(("main", s), &m, host)
}

fn run(script: &str) -> Outcome {
    run_with(&mut Fake::default(), script, MAIL)
}

fn into(folder: &str, flags: &[&str], create: bool) -> Filing {
    Filing {
        folder: Some(folder.into()),
        flags: flags.iter().map(|f| f.to_string()).collect(),
        create,
    }
}

#[test]
fn actions_table() {
    let keep = Outcome::keep();
    let cases: Vec<(&str, Outcome)> = vec![
        ("", keep.clone()),
        ("keep;", keep.clone()),
        ("discard;", Outcome::default()),
        (
            "require \"fileinto\"; if header :contains \"subject\" \"hello\" { fileinto \"Work\"; }",
            Outcome {
                filings: vec![into("Work", &[], false)],
                ..Outcome::default()
            },
        ),
        (
            "require [\"fileinto\", \"copy\"]; fileinto :copy \"Work\";",
            Outcome {
                filings: vec![into("Work", &[], false), Filing::default()],
                ..Outcome::default()
            },
        ),
        (
            "require [\"fileinto\", \"mailbox\", \"imap4flags\"]; fileinto :create :flags [\"\\\\Seen\", \"$Work\"] \"New/Sub\";",
            Outcome {
                filings: vec![into("New/Sub", &["\\Seen", "$Work"], true)],
                ..Outcome::default()
            },
        ),
        (
            "require \"fileinto\"; fileinto \"A\"; fileinto \"A\"; fileinto \"INBOX\";",
            Outcome {
                filings: vec![into("A", &[], false), Filing::default()],
                ..Outcome::default()
            },
        ),
        (
            "require \"imap4flags\"; addflag \"\\\\Flagged\";",
            Outcome {
                filings: vec![Filing {
                    flags: vec!["\\Flagged".into()],
                    ..Filing::default()
                }],
                ..Outcome::default()
            },
        ),
        (
            "require \"reject\"; reject \"not here\";",
            Outcome {
                reject: Some(Reject {
                    extended: false,
                    reason: "not here".into(),
                }),
                ..Outcome::default()
            },
        ),
        (
            "require \"ereject\"; ereject \"go away\";",
            Outcome {
                reject: Some(Reject {
                    extended: true,
                    reason: "go away".into(),
                }),
                ..Outcome::default()
            },
        ),
        (
            "redirect \"carol@example.com\";",
            Outcome {
                redirects: vec!["carol@example.com".into()],
                ..Outcome::default()
            },
        ),
        (
            "require [\"envelope\", \"subaddress\", \"fileinto\"]; if envelope :detail \"to\" \"work\" { fileinto \"Work\"; }",
            Outcome {
                filings: vec![into("Work", &[], false)],
                ..Outcome::default()
            },
        ),
        (
            "require [\"body\", \"fileinto\"]; if body :text :contains \"quarterly\" { fileinto \"Figures\"; }",
            Outcome {
                filings: vec![into("Figures", &[], false)],
                ..Outcome::default()
            },
        ),
        (
            "require [\"variables\", \"fileinto\", \"regex\"]; if header :regex \"subject\" \"^(\\\\w+) there$\" { fileinto \"${1}\"; }",
            Outcome {
                filings: vec![into("Hello", &[], false)],
                ..Outcome::default()
            },
        ),
    ];
    for (script, want) in cases {
        assert_eq!(run(script), want, "{script}");
    }
}

#[test]
fn vacation_replies_once_and_not_to_lists() {
    let mut host = Fake::default();
    let script = "require \"vacation\"; vacation :days 3 :subject \"Away\" \"Back on Monday.\";";
    let first = run_with(&mut host, script, MAIL);
    assert_eq!(first.filings, vec![Filing::default()]);
    assert_eq!(first.replies.len(), 1, "{first:?}");
    let reply = String::from_utf8_lossy(&first.replies[0].message).to_string();
    assert_eq!(first.replies[0].to, "ann@example.net");
    assert!(reply.contains("Subject: Away"), "{reply}");
    assert!(reply.contains("Auto-Submitted: auto-replied"), "{reply}");
    assert!(reply.contains("In-Reply-To: <1@example.net>"), "{reply}");
    assert!(reply.contains("Back on Monday."), "{reply}");
    // The same sender again: tracked.
    assert!(run_with(&mut host, script, MAIL).replies.is_empty());
    for marked in [
        "List-Id: <news.example.net>\r\n",
        "Precedence: bulk\r\n",
        "Precedence: list\r\n",
        "Auto-Submitted: auto-replied\r\n",
    ] {
        let raw = format!("{marked}{MAIL}");
        let mut fresh = Fake::default();
        let out = run_with(&mut fresh, script, &raw);
        assert!(out.replies.is_empty(), "{marked}");
        assert!(fresh.seen.is_empty(), "{marked}: not tracked either");
        assert_eq!(out.filings, vec![Filing::default()], "{marked}");
    }
}

#[test]
fn bounds_give_the_implicit_keep() {
    // Scripts that together run far more instructions than allowed.
    let body: String = (0..3_000)
        .map(|i| format!("set \"v{}\" \"x\";\n", i % 50))
        .collect();
    let mut host = Fake::default();
    let mut main = String::from("require [\"include\", \"fileinto\"];\n");
    for n in 0..12 {
        host.scripts
            .push((format!("s{n}"), format!("require \"variables\";\n{body}")));
        main.push_str(&format!("include \"s{n}\";\n"));
    }
    main.push_str("fileinto \"Never\";\n");
    let out = run_with(&mut host, &main, MAIL);
    assert_eq!(out.filings, vec![Filing::default()], "{:?}", out.error);
    assert!(out.error.is_some_and(|e| e.contains("instructions")));

    // Includes that recurse.
    let mut host = Fake {
        scripts: vec![(
            "main".into(),
            "require [\"include\", \"fileinto\"]; include \"main\"; fileinto \"Never\";".into(),
        )],
        ..Fake::default()
    };
    let out = run_with(
        &mut host,
        "require \"include\"; include :personal \"main\";",
        MAIL,
    );
    assert_eq!(out.filings, vec![Filing::default()], "{out:?}");
    let out = run_with(&mut host, "require \"include\"; include \"nowhere\";", MAIL);
    assert!(out.error.is_some_and(|e| e.contains("nowhere")));

    // A regex that backtracks catastrophically on a long header.
    let raw = format!("Subject: {}!\r\n\r\nx\r\n", "a".repeat(5_000));
    let out = run_with(
        &mut Fake::default(),
        "require [\"regex\", \"fileinto\"]; if header :regex \"subject\" \"^(a+)+$\" { fileinto \"Never\"; }",
        &raw,
    );
    assert_eq!(out.filings, vec![Filing::default()]);
}

#[test]
fn redirects_are_bounded() {
    let mut script = String::new();
    for i in 0..10 {
        script.push_str(&format!("redirect :copy \"r{i}@example.com\";\n"));
    }
    let out = run(&format!("require \"copy\";\n{script}"));
    assert_eq!(out.redirects.len(), MAX_REDIRECTS);
}

#[test]
fn compile_errors_name_line_and_reason() {
    let i = Interpreter::new("mx.example.org");
    let e = i
        .compile(b"require \"fileinto\";\nfileinto \"A\"\nkeep;")
        .unwrap_err();
    assert!(e.contains("line 3"), "{e}");
    let e = i.compile(b"fileinto \"A\";").unwrap_err();
    assert!(!e.is_empty());
    let e = i
        .compile(b"require \"editheader\"; addheader \"X-A\" \"b\";")
        .unwrap_err();
    assert!(e.contains("editheader"), "{e}");
    let e = i.compile(b"require \"vnd.other\";").unwrap_err();
    assert!(e.contains("vnd.other"), "{e}");
    let big = format!("# {}\r\nkeep;", "x".repeat(MAX_SCRIPT_BYTES));
    assert!(i.compile(big.as_bytes()).is_err());
    for ok in EXTENSIONS {
        let script = format!("require {};", quoted(ok));
        assert!(i.compile(script.as_bytes()).is_ok(), "{ok}");
    }
}

#[test]
fn vacation_script_compiles_and_quotes() {
    let i = Interpreter::new("mx.example.org");
    let text = vacation_script(&Vacation {
        subject: Some("Out \"today\""),
        body: "Back soon.\nC:\\ drive",
        days: 7,
        from: Some("2026-01-01"),
        until: Some("2099-12-31"),
    });
    i.compile(text.as_bytes()).expect("compiles");
    let out = run_with(&mut Fake::default(), &text, MAIL);
    assert_eq!(out.replies.len(), 1, "{text}");
    let reply = String::from_utf8_lossy(&out.replies[0].message).to_string();
    assert!(reply.contains("Out \"today\""), "{reply}");
    assert!(reply.contains("C:\\ drive"), "{reply}");
    let past = vacation_script(&Vacation {
        subject: None,
        body: "x",
        days: 1,
        from: None,
        until: Some("2001-01-01"),
    });
    assert!(
        run_with(&mut Fake::default(), &past, MAIL)
            .replies
            .is_empty()
    );
}

#[test]
fn large_bodies_are_seen_in_part() {
    let raw = format!(
        "Subject: big\r\n\r\n{}needle\r\n",
        "x".repeat(BODY_SEEN + 10)
    );
    assert_eq!(
        seen(raw.as_bytes()).len(),
        "Subject: big\r\n\r\n".len() + BODY_SEEN
    );
    let out = run_with(
        &mut Fake::default(),
        "require [\"body\", \"fileinto\"]; if body :raw :contains \"needle\" { fileinto \"Found\"; }",
        &raw,
    );
    assert_eq!(out.filings, vec![Filing::default()]);
}
