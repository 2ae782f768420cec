//! Splitting mbox files (mboxo and mboxrd) into messages, and line-ending
//! normalisation for stored mail.
//!
//! Imports nothing of ours. Invariants: a message starts at a `From ` line at
//! the start of the file or after a blank line; `>From ` quoting is undone
//! one level (mboxrd); output messages use CRLF line endings, as IMAP sizes
//! assume.

/// Splits an mbox into messages (without their `From ` separator lines).
pub fn split(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let mut prev_blank = true;
    for line in data.split_inclusive(|&b| b == b'\n') {
        if prev_blank && line.starts_with(b"From ") {
            if let Some(m) = current.take() {
                out.push(finish(m));
            }
            current = Some(Vec::new());
            prev_blank = false;
            continue;
        }
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        prev_blank = body.is_empty();
        if let Some(m) = current.as_mut() {
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
            m.extend_from_slice(unquoted);
            m.extend_from_slice(b"\r\n");
        }
    }
    if let Some(m) = current {
        out.push(finish(m));
    }
    out
}

/// Drops the blank line mbox puts between messages.
fn finish(mut m: Vec<u8>) -> Vec<u8> {
    if m.ends_with(b"\r\n\r\n") {
        m.truncate(m.len() - 2);
    }
    m
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
