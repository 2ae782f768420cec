//! mbox files (mboxo and mboxrd): splitting them into messages with the
//! dates of their `From ` lines, writing them (mboxrd), the flag headers
//! mbox readers share, folder names as file names, and line-ending
//! normalisation for stored mail.
//!
//! Imports `util` (calendar arithmetic). Invariants: a message starts at a
//! `From ` line at the start of the file or after a blank line; `>From `
//! quoting is undone one level on reading and added one level on writing
//! (mboxrd), so a message written and read back is the same; output
//! messages use CRLF line endings, as IMAP sizes assume; a folder's file
//! name never contains `/` and is never `.`, `..` or hidden.

/// One message of an mbox, and the time its `From ` line gives (Unix
/// seconds, UTC), if it gives one.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub message: Vec<u8>,
    pub date: Option<i64>,
    /// It grew past the splitter's limit: `message` holds its beginning.
    pub oversized: bool,
}

/// Splits an mbox fed one line at a time (each with its `\n`; the last
/// may lack it), so a reader holds one message, not the file.
#[derive(Debug)]
pub struct Splitter {
    current: Option<Entry>,
    prev_blank: bool,
    limit: usize,
}

impl Default for Splitter {
    fn default() -> Self {
        Splitter::with_limit(usize::MAX)
    }
}

impl Splitter {
    /// A splitter that keeps at most `limit` bytes of a message (and marks
    /// a longer one oversized).
    pub fn with_limit(limit: usize) -> Splitter {
        Splitter {
            current: None,
            prev_blank: true,
            limit,
        }
    }

    /// The message being read is over the limit (its reader found a line
    /// too long to read whole, say).
    pub fn oversize(&mut self) {
        if let Some(m) = self.current.as_mut() {
            m.oversized = true;
        }
    }

    /// Feeds one line; returns the message it ended, if any.
    pub fn line(&mut self, line: &[u8]) -> Option<Entry> {
        if self.prev_blank && line.starts_with(b"From ") {
            let ended = self.current.take().map(finish);
            self.current = Some(Entry {
                message: Vec::new(),
                date: from_line_date(line),
                oversized: false,
            });
            self.prev_blank = false;
            return ended;
        }
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        self.prev_blank = body.is_empty();
        if let Some(m) = self.current.as_mut() {
            let unquoted = if body.starts_with(b">")
                && body
                    .iter()
                    .skip_while(|&&b| b == b'>')
                    .take(5)
                    .eq(b"From ".iter())
            {
                body.get(1..).unwrap_or_default()
            } else {
                body
            };
            if m.message.len() + unquoted.len() + 2 > self.limit {
                m.oversized = true;
            }
            if !m.oversized {
                m.message.extend_from_slice(unquoted);
                m.message.extend_from_slice(b"\r\n");
            }
        }
        None
    }

    /// Bytes of the message being read so far (the caller bounds them).
    pub fn pending(&self) -> usize {
        self.current.as_ref().map_or(0, |m| m.message.len())
    }

    /// The last message, once the input has ended.
    pub fn finish(self) -> Option<Entry> {
        self.current.map(finish)
    }
}

/// Splits an mbox into messages (without their `From ` separator lines).
pub fn split(data: &[u8]) -> Vec<Vec<u8>> {
    let mut splitter = Splitter::default();
    let mut out: Vec<Vec<u8>> = data
        .split_inclusive(|&b| b == b'\n')
        .filter_map(|line| splitter.line(line))
        .map(|e| e.message)
        .collect();
    out.extend(splitter.finish().map(|e| e.message));
    out
}

/// Drops the blank line mbox puts between messages.
fn finish(mut m: Entry) -> Entry {
    if m.message.ends_with(b"\r\n\r\n") {
        m.message.truncate(m.message.len() - 2);
    }
    m
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// The time of a `From sender Thu Dec  2 09:00:00 2026` line (asctime,
/// UTC; a time zone word or offset before the year is passed over).
pub fn from_line_date(line: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(line).ok()?;
    let words: Vec<&str> = text.split_whitespace().collect();
    // The month is the first word after the sender that names one.
    let (at, month) = words
        .iter()
        .enumerate()
        .skip(2)
        .find_map(|(i, w)| Some((i, MONTHS.iter().position(|m| m == w)? as u32 + 1)))?;
    let day: u32 = words.get(at + 1)?.parse().ok()?;
    let mut clock = words.get(at + 2)?.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi) = (clock.next()??, clock.next()??);
    let sec = clock.next().flatten().unwrap_or(0);
    let year: i64 = words
        .iter()
        .skip(at + 3)
        .find_map(|w| w.parse::<i64>().ok().filter(|y| (1970..=9999).contains(y)))?;
    if !(1..=31).contains(&day)
        || !(0..24).contains(&h)
        || !(0..60).contains(&mi)
        || !(0..61).contains(&sec)
    {
        return None;
    }
    Some(crate::util::days_from_civil(year, month, day) * 86_400 + h * 3600 + mi * 60 + sec)
}

/// The `From ` line that starts a message in an mbox: the envelope sender
/// (`MAILER-DAEMON` when there is none) and `date` in asctime form, UTC.
pub fn from_line(sender: &str, date: i64) -> String {
    let sender: String = sender
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect();
    let sender = if sender.is_empty() {
        "MAILER-DAEMON".to_string()
    } else {
        sender
    };
    let days = date.div_euclid(86_400);
    let secs = date.rem_euclid(86_400);
    let (y, m, d) = crate::util::civil_from_days(days);
    let weekday = WEEKDAYS
        .get(days.rem_euclid(7) as usize)
        .copied()
        .unwrap_or("Thu");
    let month = MONTHS
        .get((m as usize).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    format!(
        "From {sender} {weekday} {month} {d:>2} {:02}:{:02}:{:02} {y}\n",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Appends `message` (CRLF) to `out` as mboxrd: LF line ends, one more `>`
/// before every line that is `From ` after any `>`, and the blank line
/// that ends it.
pub fn write_message(message: &[u8], out: &mut Vec<u8>) {
    for line in message.split_inclusive(|&b| b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if body
            .iter()
            .skip_while(|&&b| b == b'>')
            .take(5)
            .eq(b"From ".iter())
        {
            out.push(b'>');
        }
        out.extend_from_slice(body);
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// Flag bits as `Flags::system` holds them in the store.
pub const SEEN: u8 = 1;
pub const ANSWERED: u8 = 2;
pub const FLAGGED: u8 = 4;
pub const DELETED: u8 = 8;
pub const DRAFT: u8 = 16;

/// The headers mbox readers keep flags in (mutt, Thunderbird, Dovecot):
/// `Status: RO`, `X-Status: AFTD`, `X-Keywords: a b`, each CRLF-ended.
pub fn flag_headers(system: u8, keywords: &[String]) -> String {
    let mut out = String::from(if system & SEEN != 0 {
        "Status: RO\r\n"
    } else {
        "Status: O\r\n"
    });
    let x: String = [
        (ANSWERED, 'A'),
        (FLAGGED, 'F'),
        (DRAFT, 'T'),
        (DELETED, 'D'),
    ]
    .iter()
    .filter(|(bit, _)| system & bit != 0)
    .map(|(_, c)| *c)
    .collect();
    if !x.is_empty() {
        out.push_str(&format!("X-Status: {x}\r\n"));
    }
    let words: Vec<&str> = keywords
        .iter()
        .map(String::as_str)
        .filter(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_graphic()))
        .collect();
    if !words.is_empty() {
        out.push_str(&format!("X-Keywords: {}\r\n", words.join(" ")));
    }
    out
}

/// Puts `headers` (CRLF-ended lines) at the end of `message`'s header.
pub fn insert_headers(message: &[u8], headers: &str) -> Vec<u8> {
    let at = header_end(message);
    let mut out = Vec::with_capacity(message.len() + headers.len());
    out.extend_from_slice(message.get(..at).unwrap_or(message));
    out.extend_from_slice(headers.as_bytes());
    out.extend_from_slice(message.get(at..).unwrap_or_default());
    out
}

/// Where the header ends: the offset of the blank line after it (the end
/// of a message that has no body).
fn header_end(message: &[u8]) -> usize {
    let mut at = 0;
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            return at;
        }
        at += line.len();
    }
    at
}

/// Removes `Status`, `X-Status` and `X-Keywords` from `message`'s header
/// and returns the flags and keywords they gave, or `None` (and the
/// message unchanged) when it has none of them.
pub fn take_flag_headers(message: &[u8]) -> Option<(Vec<u8>, u8, Vec<String>)> {
    let end = header_end(message);
    let header = message.get(..end)?;
    // Each field with its continuation lines.
    let mut fields: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    let mut at = 0;
    for line in header.split_inclusive(|&b| b == b'\n') {
        let folded = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !folded && at > start {
            fields.push(header.get(start..at).unwrap_or_default());
            start = at;
        }
        at += line.len();
    }
    if at > start {
        fields.push(header.get(start..at).unwrap_or_default());
    }
    let mut kept = Vec::with_capacity(message.len());
    let (mut found, mut system, mut keywords) = (false, 0u8, Vec::new());
    for field in fields {
        let colon = field.iter().position(|&b| b == b':');
        let name = colon.and_then(|c| field.get(..c)).unwrap_or_default();
        let value =
            String::from_utf8_lossy(colon.and_then(|c| field.get(c + 1..)).unwrap_or_default());
        if name.eq_ignore_ascii_case(b"Status") {
            if value.contains('R') {
                system |= SEEN;
            }
        } else if name.eq_ignore_ascii_case(b"X-Status") {
            for (c, bit) in [
                ('A', ANSWERED),
                ('F', FLAGGED),
                ('T', DRAFT),
                ('D', DELETED),
            ] {
                if value.contains(c) {
                    system |= bit;
                }
            }
        } else if name.eq_ignore_ascii_case(b"X-Keywords") {
            keywords.extend(
                value
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|k| !k.is_empty())
                    .map(str::to_string),
            );
        } else {
            kept.extend_from_slice(field);
            continue;
        }
        found = true;
    }
    if !found {
        return None;
    }
    kept.extend_from_slice(message.get(end..).unwrap_or_default());
    Some((kept, system, keywords))
}

/// A file name for a folder: its UTF-8 bytes, with every byte other than
/// `A-Z a-z 0-9 - _ . , + @ =` and space percent-encoded, and a leading
/// dot too (so no name is `.`, `..` or hidden).
pub fn folder_file_name(folder: &str) -> String {
    let mut out = String::with_capacity(folder.len());
    for (i, b) in folder.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b" -_.,+@=".contains(&b);
        if plain && !(i == 0 && b == b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The folder a [`folder_file_name`] names (any UTF-8 name after
/// percent-decoding), or `None`.
pub fn folder_from_file_name(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok().filter(|f| !f.is_empty())
}

/// True if the data looks like an mbox rather than one message.
pub fn is_mbox(data: &[u8]) -> bool {
    data.starts_with(b"From ")
}

/// Converts bare LF (and bare CR) line ends to CRLF.
pub fn to_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    let mut bytes = data.iter().peekable();
    while let Some(&b) = bytes.next() {
        match b {
            b'\r' if bytes.peek() == Some(&&b'\n') => {
                bytes.next();
                out.extend_from_slice(b"\r\n");
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_unquotes() {
        let mbox = b"From a@b Mon Jan  1 00:00:00 2024\nSubject: one\n\n>From here\nbody\n\nFrom c@d Tue Jan  2 00:00:00 2024\nSubject: two\n\nbody\nFrom inside is not a separator\n";
        let msgs = split(mbox);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0], b"Subject: one\r\n\r\nFrom here\r\nbody\r\n");
        assert_eq!(
            msgs[1],
            b"Subject: two\r\n\r\nbody\r\nFrom inside is not a separator\r\n"
        );
    }

    #[test]
    fn from_lines_round_trip_their_dates() {
        for t in [0i64, 1_796_203_193, 951_782_400, 4_102_444_799] {
            let line = from_line("ann@example.org", t);
            assert_eq!(from_line_date(line.as_bytes()), Some(t), "{line}");
        }
        assert_eq!(
            from_line("", 0),
            "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n"
        );
        assert_eq!(
            from_line("a b", 86_400 * 3),
            "From ab Sun Jan  4 00:00:00 1970\n"
        );
        let table: &[(&[u8], Option<i64>)] = &[
            (b"From a@b Mon Jan  1 00:00:00 2024\n", Some(1_704_067_200)),
            (b"From a@b Mon Jan 1 00:00 2024", Some(1_704_067_200)),
            (
                b"From a@b Mon Jan  1 00:00:00 UTC 2024\n",
                Some(1_704_067_200),
            ),
            (
                b"From a@b Mon Jan  1 00:00:00 +0100 2024\n",
                Some(1_704_067_200),
            ),
            (
                b"From MAILER-DAEMON Fri Jul  8 12:08:34 2011\n",
                Some(1_310_126_914),
            ),
            (b"From a@b\n", None),
            (b"From a@b Mon Jan 32 00:00:00 2024\n", None),
            (b"From a@b Mon Jan  1 25:00:00 2024\n", None),
            (b"From a@b Mon Jan  1 00:00:00\n", None),
            (b"From Jan Jan Jan", None),
            (b"From \xff Mon Jan  1 00:00:00 2024", None),
        ];
        for (line, want) in table {
            assert_eq!(
                from_line_date(line),
                *want,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn written_messages_read_back_the_same() {
        let messages: [&[u8]; 4] = [
            b"Subject: a\r\n\r\nFrom here\r\n>From there\r\n\r\nFrom x\r\n",
            b"Subject: b\r\n\r\n",
            b"Subject: c\r\n\r\nno blank end\r\n",
            b"Subject: d\r\n\r\n\r\n\r\ntrailing\r\n\r\n",
        ];
        let mut file = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            file.extend_from_slice(from_line("s@x", i as i64 * 1000).as_bytes());
            write_message(m, &mut file);
        }
        let mut splitter = Splitter::default();
        let mut got: Vec<Entry> = file
            .split_inclusive(|&b| b == b'\n')
            .filter_map(|l| splitter.line(l))
            .collect();
        got.extend(splitter.finish());
        assert_eq!(got.len(), messages.len());
        for (i, (entry, m)) in got.iter().zip(messages).enumerate() {
            assert_eq!(entry.message, m, "{i}");
            assert_eq!(entry.date, Some(i as i64 * 1000));
        }
    }

    #[test]
    fn flags_travel_in_headers() {
        let m = b"Subject: s\r\nStatus: old\r\n\r\nStatus: in the body\r\n";
        let keywords = vec![
            "$label1".to_string(),
            "work".to_string(),
            "bad word".to_string(),
        ];
        let headers = flag_headers(SEEN | FLAGGED | DRAFT, &keywords);
        assert_eq!(
            headers,
            "Status: RO\r\nX-Status: FT\r\nX-Keywords: $label1 work\r\n"
        );
        let with = insert_headers(m, &headers);
        let (back, system, kw) = take_flag_headers(&with).unwrap();
        assert_eq!(back, b"Subject: s\r\n\r\nStatus: in the body\r\n");
        assert_eq!(system, SEEN | FLAGGED | DRAFT);
        assert_eq!(kw, ["$label1", "work"]);
        assert_eq!(take_flag_headers(b"Subject: s\r\n\r\nStatus: R\r\n"), None);
        let folded = b"X-Keywords: a,\r\n b\r\nX-Status: AD\r\nSubject: t\r\n\r\n";
        let (back, system, kw) = take_flag_headers(folded).unwrap();
        assert_eq!(back, b"Subject: t\r\n\r\n");
        assert_eq!(
            (system, kw),
            (ANSWERED | DELETED, vec!["a".into(), "b".into()])
        );
        assert_eq!(
            insert_headers(b"Subject: only", "X: y\r\n"),
            b"Subject: onlyX: y\r\n"
        );
    }

    #[test]
    fn folder_names_as_file_names() {
        for (folder, file) in [
            ("INBOX", "INBOX"),
            ("Work/2024", "Work%2F2024"),
            ("..", "%2E."),
            (".hidden", "%2Ehidden"),
            ("Ünïcode 100%", "%C3%9Cn%C3%AFcode 100%25"),
        ] {
            assert_eq!(folder_file_name(folder), file);
            assert_eq!(folder_from_file_name(file).as_deref(), Some(folder));
        }
        assert_eq!(folder_from_file_name("%zz"), None);
        assert_eq!(folder_from_file_name("%C3"), None);
        assert_eq!(folder_from_file_name(""), None);
    }

    #[test]
    fn crlf_normalisation() {
        assert_eq!(to_crlf(b"a\nb\r\nc\rd"), b"a\r\nb\r\nc\r\nd");
    }

    /// One row per form: what each input splits into, exactly.
    #[test]
    fn split_table() {
        let table: &[(&[u8], &[&[u8]])] = &[
            (b"", &[]),
            (b"Subject: no separator\n\nbody\n", &[]),
            (b"From a\n", &[b""]),
            (b"From a\nx\n", &[b"x\r\n"]),
            (b"From a\r\nx\r\n\r\nFrom b\r\ny\r\n", &[b"x\r\n", b"y\r\n"]),
            (b"From a\nx\nFrom b\ny\n", &[b"x\r\nFrom b\r\ny\r\n"]),
            (
                b"From a\n>From x\n>>From y\n>Fromage\n",
                &[b"From x\r\n>From y\r\n>Fromage\r\n"],
            ),
            (b"From a\nno final newline", &[b"no final newline\r\n"]),
            (b"From a\n\n\nFrom b\n", &[b"\r\n", b""]),
        ];
        for (input, want) in table {
            let got = split(input);
            let want: Vec<Vec<u8>> = want.iter().map(|m| m.to_vec()).collect();
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(input));
        }
        assert!(is_mbox(b"From x"));
        assert!(!is_mbox(b"from x"));
        assert_eq!(to_crlf(b""), b"");
        assert_eq!(to_crlf(b"\r\r\n\n"), b"\r\n\r\n\r\n");
    }
}
