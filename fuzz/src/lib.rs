//! One function per parser, each taking arbitrary bytes: what the fuzz
//! targets in `src/bin/` call under AFL, and what `tests/fuzz_corpus.rs`
//! replays over the seeds and every past finding on every test run.
//!
//! Imports `sealmail`'s parsers only. Invariants: a function panics only
//! when the parser broke a promise (it panicked itself, or a property
//! below does not hold), so any crash AFL finds is a bug.

use sealmail::proto::{
    autoconfig, clamd, executable, http, imap, mbox, mta_sts, mutf7, pop3, rar, results, rspamd,
    sasl, sevenz, smtp, x509,
};
use sealmail::smtp::content as smtp_content;
use sealmail::store::{address, binary, mime};

/// A fuzz target: any bytes in, a panic only on a broken promise.
pub type Target = fn(&[u8]);

/// The targets by name, as `make fuzz` and the corpus replay know them.
pub const TARGETS: &[(&str, Target)] = &[
    ("autoconfig", autoconfig_request),
    ("imap", imap_command),
    ("smtp", smtp_command),
    ("smtp_data", smtp_data),
    ("pop3", pop3_command),
    ("sasl", sasl_response),
    ("mutf7", mailbox_name),
    ("mbox", mbox_file),
    ("mime", mime_message),
    ("address", address_list),
    ("imap_url", imap_url),
    ("imap_response", imap_response),
    ("scanner", scanner_reply),
    ("http", http_response),
    ("mta_sts", mta_sts_policy),
    ("dmarc_report", dmarc_report),
    ("x509", certificate),
    ("archive", archive),
    ("sieve", sieve_script),
    ("managesieve", managesieve_commands),
    ("openpgp", openpgp),
];

/// An IMAP command as the reader assembles it (lines and literals).
pub fn imap_command(data: &[u8]) {
    let _ = imap::tag_and_name(data);
    let _ = imap::literal_at_end(data);
    let _ = imap::parse_date(data);
    let _ = imap::parse_date_time(data);
    if let Ok(cmd) = imap::parse(data) {
        // A parsed command's tag is the input's first bytes.
        assert!(data.starts_with(cmd.tag.as_bytes()));
        // What parses encodes to a form that parses to the same command.
        let wire = imap::encode_command(&cmd);
        assert_eq!(imap::parse(&wire).as_ref(), Ok(&cmd));
    }
    let mut out = Vec::new();
    imap::push_string(&mut out, data);
    imap::push_astring(&mut out, data);
}

/// An SMTP command line.
pub fn smtp_command(data: &[u8]) {
    if let Ok(cmd) = smtp::parse(data) {
        assert_eq!(smtp::parse(smtp::encode(&cmd).as_bytes()), Ok(cmd));
    }
}

/// DATA bytes: fed whole or split anywhere, the receiver sees the same
/// message and stops at the same place.
pub fn smtp_data(data: &[u8]) {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut whole = smtp::DataReceiver::new(1 << 20);
    let (used, done) = whole.feed(data);
    // Fed in two parts, the first taken out of the buffer between them
    // (as a spill does): the same bytes, the same end.
    let mut parts = smtp::DataReceiver::new(1 << 20);
    let (head, tail) = data.split_at(split);
    let (used_head, done_head) = parts.feed(head);
    let mut message = parts.take();
    assert_eq!(parts.buffered(), 0);
    let (used2, done2) = if done_head {
        (used_head, true)
    } else {
        let (u, d) = parts.feed(tail);
        (split + u, d)
    };
    assert_eq!((used, done), (used2, done2));
    assert!(used <= data.len());
    message.extend_from_slice(&parts.into_message());
    assert_eq!(whole.into_message(), message);
    // The MX then removes results fields claiming its authserv-id: whole
    // fields go, so a second pass finds nothing more.
    let stripped = results::strip_claims(&message, "mx.example.org");
    assert!(stripped.len() <= message.len());
    assert_eq!(
        results::strip_claims(&stripped, "mx.example.org").as_ref(),
        stripped.as_ref()
    );
}

/// A POP3 command line.
pub fn pop3_command(data: &[u8]) {
    if let Ok(cmd) = pop3::parse(data) {
        assert_eq!(pop3::parse(pop3::encode(&cmd).as_bytes()), Ok(cmd));
    }
}

/// A SASL response line (base64).
pub fn sasl_response(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok((user, password)) = sasl::plain(&text) {
        assert!(!user.is_empty() && !user.contains('\0') && !password.contains('\0'));
    }
    let _ = sasl::login_field(&text);
}

/// A mailbox name: decoding is total, and what decodes re-encodes to a
/// name that decodes to the same text.
pub fn mailbox_name(data: &[u8]) {
    if let Ok(name) = mutf7::mutf7_decode(data) {
        let again = mutf7::mutf7_encode(&name);
        assert_eq!(mutf7::mutf7_decode(again.as_bytes()), Ok(name));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let encoded = mutf7::mutf7_encode(text);
        assert!(encoded.is_ascii());
        assert_eq!(mutf7::mutf7_decode(encoded.as_bytes()).as_deref(), Ok(text));
    }
}

/// A scanner's reply, read as clamd's `INSTREAM` answer (always a value,
/// a signature name non-empty and bounded) and as rspamd's verdict
/// (symbol names printable and bounded).
pub fn scanner_reply(data: &[u8]) {
    match clamd::reply(data) {
        clamd::Reply::Found(name) => {
            assert!(!name.is_empty() && name.len() <= clamd::MAX_NAME);
            assert!(name.bytes().all(|b| (0x20..0x7f).contains(&b)));
        }
        clamd::Reply::Error(why) => assert!(why.len() <= clamd::MAX_NAME + 40),
        clamd::Reply::Clean => {}
    }
    if let Ok(v) = rspamd::reply(data) {
        assert!(v.symbols.len() <= rspamd::MAX_SYMBOLS && v.score.is_finite());
        assert!(
            v.symbols
                .iter()
                .all(|s| !s.is_empty() && s.len() <= rspamd::MAX_NAME)
        );
    }
}

/// An HTTP response as the HTTPS client reads it: the body is never
/// longer than what arrived.
pub fn http_response(data: &[u8]) {
    if let Ok(r) = http::response(data) {
        assert!(r.body.len() <= data.len());
    }
}

/// A ManageSieve stream, command after command as a session reads it:
/// each read takes bytes that are there, and only a fatal error stops.
pub fn managesieve_commands(data: &[u8]) {
    use sealmail::proto::managesieve as ms;
    let mut rest = data;
    loop {
        match ms::command(rest) {
            Ok(Some((_, used))) | Err((ms::Error { fatal: false, .. }, used)) => {
                assert!(used > 0 && used <= rest.len());
                rest = &rest[used..];
            }
            Ok(None) => {
                assert!(rest.len() <= ms::MAX_LINE + ms::MAX_LITERAL + 64);
                break;
            }
            Err(_) => break,
        }
    }
    let _ = ms::sasl_response(data);
    let quoted = ms::quote(&String::from_utf8_lossy(data));
    let line = format!("GETSCRIPT {quoted}\r\n");
    if let Ok(Some((ms::Command::GetScript(name), _))) = ms::command(line.as_bytes()) {
        assert!(!name.contains(['\r', '\n']));
    }
}

/// A Sieve script compiled and run against a fixed message, and the bytes
/// as a message a script with every kind of test runs against: whatever
/// happens, the outcome is bounded and a run-time error keeps the message.
pub fn sieve_script(data: &[u8]) {
    use sealmail::sieve::{Host, Interpreter, Message};
    struct Quiet;
    impl Host for Quiet {
        fn script(&mut self, _: &str) -> Option<String> {
            Some("require \"include\"; include \"again\";".into())
        }
        fn duplicate(&mut self, _: &str, _: u64) -> bool {
            false
        }
        fn folders_exist(&mut self, _: &[String]) -> bool {
            true
        }
    }
    thread_local!(static I: Interpreter = Interpreter::new("mx.example.org"));
    const MAIL: &[u8] =
        b"From: a@example.net\r\nTo: b@example.org\r\nSubject: s\r\nList-Id: <l>\r\n\r\nbody\r\n";
    const SCRIPT: &str = "require [\"body\", \"regex\", \"variables\", \"fileinto\", \"imap4flags\", \"vacation\", \"envelope\", \"date\", \"relational\", \"subaddress\"];\n\
        if header :regex \"subject\" \"^(.*)x(.+)$\" { fileinto \"${1}\"; }\n\
        if body :raw :contains \"needle\" { addflag \"$found\"; }\n\
        if address :detail \"to\" \"tag\" { redirect \"c@example.com\"; }\n\
        if date :value \"gt\" \"date\" \"year\" \"2000\" { keep; }\n\
        vacation :days 1 \"away\";";
    I.with(|i| {
        let check = |o: sealmail::sieve::Outcome| {
            assert!(o.redirects.len() <= 4 && o.replies.len() <= 5);
            if o.error.is_some() {
                assert_eq!(o.filings.len(), 1);
            }
        };
        let m = |raw| Message {
            raw,
            from: "a@example.net",
            rcpt: "b+tag@example.org",
            alias: "b@example.org",
        };
        if let Ok(script) = i.compile(data) {
            check(i.run(("fuzz", script), &m(MAIL), &mut Quiet));
        }
        if let Ok(script) = i.compile_cached(SCRIPT.as_bytes()) {
            check(i.run(("fixed", script), &m(data), &mut Quiet));
        }
    });
}

/// An MTA-STS policy file, and its mx patterns against a host name made
/// of the same bytes.
pub fn mta_sts_policy(data: &[u8]) {
    if let Ok(p) = mta_sts::policy(data) {
        assert!(p.max_age <= mta_sts::MAX_AGE && p.mx.len() <= mta_sts::MAX_MX);
        assert!(p.mode == mta_sts::Mode::None || !p.mx.is_empty());
        for m in &p.mx {
            let host = m.trim_start_matches("*.");
            let _ = p.admits(host);
            let _ = mta_sts::mx_matches(m, &format!("x.{host}"));
        }
        assert_eq!(mta_sts::policy(p.lines().join("\n").as_bytes()), Ok(p));
    }
}

/// A message in a DMARC rua mailbox, as `sealmail dmarc report` reads it
/// (mail-auth's parser, XML, gzip or zip within the size limit): the sums
/// stay consistent.
pub fn dmarc_report(data: &[u8]) {
    let mut s = sealmail::cli::dmarc::Summary::default();
    s.add_message("example.org", data);
    assert!(s.passed <= s.messages && s.reports <= 1);
    let _ = s.render("example.org");
}

/// A certificate an MX presents, as DANE reads it: its public key lies
/// within it, and matching any record is an answer, never a panic.
pub fn certificate(data: &[u8]) {
    if let Some(spki) = x509::spki(data) {
        assert!(spki.len() <= data.len());
        assert!(x509::tlsa_matches(data, 1, 0, spki));
    }
    for (selector, matching) in [(0, 1), (1, 1), (1, 2), (3, 0)] {
        let _ = x509::tlsa_matches(data, selector, matching, &[0u8; 32]);
    }
    // An expiry, when found, is a date of years 0..=9999.
    if let Some(t) = x509::not_after(data) {
        assert!((-62_167_219_200..=253_402_300_800).contains(&t), "{t}");
    }
}

/// What the web listener reads from clients: an Autodiscover request's
/// address, a query's `emailaddress`; the documents made for what they
/// name carry it escaped.
pub fn autoconfig_request(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let servers = autoconfig::Servers {
        hostname: "mail.example.org".into(),
        imaps: Some(993),
        imap: None,
        pop3s: None,
        pop3: Some(110),
        submissions: Some(465),
        submission: Some(587),
    };
    for address in [
        autoconfig::autodiscover_request(data).ok(),
        autoconfig::query_param(&text, "emailaddress"),
    ]
    .into_iter()
    .flatten()
    {
        for doc in [
            autoconfig::autodiscover(&address, &servers),
            autoconfig::mobileconfig(&address, &servers),
            autoconfig::thunderbird(&address, &servers),
        ] {
            assert!(!doc.contains("<script"), "unescaped markup");
        }
    }
}

/// An attachment as the executable check reads it (zip, gzip, RAR, 7z
/// with its compressed header): bounded name lists, an answer always.
pub fn archive(data: &[u8]) {
    assert!(rar::names(data).len() <= rar::MAX_NAMES);
    assert!(sevenz::names(data).len() <= sevenz::MAX_NAMES);
    let _ = executable::by_content(data);
}

/// An mbox file being imported, its flag headers, its folder names.
pub fn mbox_file(data: &[u8]) {
    let _ = mbox::is_mbox(data);
    let total: usize = mbox::split(data).iter().map(Vec::len).sum();
    // Every line may gain a CR, nothing more.
    assert!(total <= data.len() * 2 + 2);
    let crlf = mbox::to_crlf(data);
    assert!(crlf.len() <= data.len() * 2);
    // A limited splitter keeps no message longer than its limit.
    let mut splitter = mbox::Splitter::with_limit(64);
    for line in data.split_inclusive(|&b| b == b'\n') {
        if let Some(e) = splitter.line(line) {
            assert!(e.message.len() <= 64 || e.oversized);
        }
        let _ = mbox::from_line_date(line);
    }
    // Flag headers come off, and what is left is no longer than before.
    if let Some((rest, _, keywords)) = mbox::take_flag_headers(data) {
        assert!(rest.len() <= data.len());
        assert!(keywords.iter().all(|k| !k.is_empty()));
    }
    // A message written and read back is the same (CRLF lines).
    let message = mbox::to_crlf(data);
    if !message.is_empty() && message.ends_with(b"\r\n") {
        let mut file = mbox::from_line("a@b", 0).into_bytes();
        mbox::write_message(&message, &mut file);
        let back = mbox::split(&file);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0], message);
    }
    if let Ok(name) = std::str::from_utf8(data) {
        let file = mbox::folder_file_name(name);
        assert!(!file.contains('/') && !file.starts_with('.'));
        if !name.is_empty() {
            assert_eq!(mbox::folder_from_file_name(&file).as_deref(), Some(name));
        }
    }
}

/// A message being stored: the MIME walk and every leaf's decoding; at
/// the MX, the look for executable attachments (names, first bytes, zip
/// and gzip archives).
pub fn mime_message(data: &[u8]) {
    if let Some(reply) = smtp_content::refusal(data, mime::Limits::default()) {
        assert!(reply.starts_with("550 5.7.1 ") && !reply.contains(['\r', '\n']));
    }
    // The bytes as an attachment's content, whatever they are.
    let _ = executable::by_content(data);
    let Ok(parsed) = mime::parse(data, mime::Limits::default()) else {
        return;
    };
    let mut stack = vec![&parsed.root];
    while let Some(part) = stack.pop() {
        assert!(part.header_start <= part.end && part.end as usize <= data.len());
        if part.children.is_empty()
            && let Some(mime::Leaf::Bytes(bytes)) = mime::decode_leaf(data, part)
        {
            let _ = executable::by_content(&bytes);
        }
        stack.extend(part.children.iter());
    }
    let _ = mime::base_subject(&parsed.envelope.subject.clone().unwrap_or_default());
    // Binary parts re-encoded: still a message that parses.
    if let Some(encoded) = binary::encode_binary_parts(data) {
        assert!(mime::parse(&encoded, mime::Limits::default()).is_ok());
    }
}

/// An address-list header value (From, To, Cc, …) as ENVELOPE reads it.
pub fn address_list(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let list = address::parse_list(&text);
    // Each address consumes at least one character of the input.
    assert!(list.len() <= text.len());
    for a in &list {
        let _ = a.canonical();
    }
}

/// An IMAP URL as CATENATE reads it (RFC 5092).
pub fn imap_url(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(url) = imap::parse_url(&text) {
        // What the grammar promises: a message by a positive UID, a named
        // mailbox when there is one, no zero UIDVALIDITY or length.
        assert!(url.uid > 0);
        assert_ne!(url.uidvalidity, Some(0));
        assert!(url.mailbox.as_ref().is_none_or(|m| !m.is_empty()));
        assert!(url.partial.is_none_or(|(_, len)| len != Some(0)));
        assert!(url.server.is_none_or(|s| !s.host.is_empty()));
    }
}

/// A response of another IMAP server (`sealmail migrate`): the text of a
/// response with literal placeholders, and three literals.
pub fn imap_response(data: &[u8]) {
    let literals = vec![b"one".to_vec(), Vec::new(), b"three (\"".to_vec()];
    if let Ok(tokens) = imap::parse_response(data, literals) {
        // Nothing comes from nowhere: every string's bytes are in the
        // input or a literal, every atom's characters in the input (bytes
        // that are not UTF-8 become one U+FFFD each).
        fn size(t: &imap::Token) -> usize {
            match t {
                imap::Token::List(l) => l.iter().map(size).sum(),
                imap::Token::Atom(a) => a.chars().count(),
                imap::Token::String(s) => s.len(),
                imap::Token::Nil => 0,
            }
        }
        assert!(tokens.iter().map(size).sum::<usize>() <= data.len() + 12);
    }
}

/// A public key every wrapped message is encrypted to (Bob's seed key).
const FUZZ_KEY: &[u8] = include_bytes!("../seeds/openpgp/key.asc");

/// OpenPGP: the first byte picks a key check of the rest, a PGP/MIME wrap
/// of the rest as a message (odd: protected headers), or a WKD path.
pub fn openpgp(data: &[u8]) {
    use sealmail::openpgp::{self as pgp, Wrapped, wkd};
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let _ = pgp::check(rest, "bob@example.org", 0);
        }
        1 => {
            let key = pgp::parse(FUZZ_KEY).unwrap();
            let protect = mode & 4 != 0;
            match pgp::wrap(&key, rest, protect, 0).unwrap() {
                Wrapped::AlreadyEncrypted => assert!(pgp::already_encrypted(rest)),
                Wrapped::Encrypted(out) => {
                    assert!(!pgp::already_encrypted(rest));
                    // The wrapped message is itself recognised as encrypted,
                    // so it is never wrapped twice.
                    assert!(pgp::already_encrypted(&out));
                }
            }
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            let (host, path) = text.split_once('\n').unwrap_or(("", &text));
            if let Some(wkd::Request::Key { hash, .. }) = wkd::parse_path(host, path) {
                assert_eq!(hash.len(), 32);
            }
            let _ = wkd::hash(&text);
        }
    }
}
