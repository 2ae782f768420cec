//! `Authentication-Results` (RFC 8601) and `ARC-Authentication-Results`
//! (RFC 8617) header fields that claim an authserv-id: the MX removes
//! those claiming its own before it adds its result (RFC 8601 §5), so no
//! sender can tell a client or a filter that this server found a message
//! genuine.
//!
//! Imports nothing. Invariants: linear in the header block, which it only
//! reads; what it returns is the input less whole fields (a field with its
//! continuation lines); the body is never looked at.

use std::borrow::Cow;

/// The message without the results fields of its header block whose
/// authserv-id is `authserv_id` (compared without case, as a domain name);
/// borrowed when it has none.
pub fn strip_claims<'a>(message: &'a [u8], authserv_id: &str) -> Cow<'a, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    // Bytes before `kept` are in `out` already (or need no copy).
    let mut kept = 0;
    let mut at = 0;
    while at < message.len() {
        let line_end = next_line(message, at);
        let line = message.get(at..line_end).unwrap_or_default();
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        // A field runs on over lines that begin with white space.
        let mut end = line_end;
        while matches!(message.get(end), Some(b' ' | b'\t')) {
            end = next_line(message, end);
        }
        let field = message.get(at..end).unwrap_or_default();
        if claims(field, authserv_id) {
            let o = out.get_or_insert_with(|| Vec::with_capacity(message.len()));
            o.extend_from_slice(message.get(kept..at).unwrap_or_default());
            kept = end;
        }
        at = end;
    }
    match out {
        None => Cow::Borrowed(message),
        Some(mut o) => {
            o.extend_from_slice(message.get(kept..).unwrap_or_default());
            Cow::Owned(o)
        }
    }
}

/// Where the line that starts at `at` ends (after its LF, or the end).
fn next_line(message: &[u8], at: usize) -> usize {
    message
        .get(at..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        .map_or(message.len(), |i| at + i + 1)
}

/// Whether `field` is a results field naming `authserv_id`.
fn claims(field: &[u8], authserv_id: &str) -> bool {
    let Some(colon) = field.iter().position(|&b| b == b':') else {
        return false;
    };
    let (name, value) = field.split_at(colon);
    let value = value.get(1..).unwrap_or_default();
    let name = name.trim_ascii_end();
    let value = if name.eq_ignore_ascii_case(b"Authentication-Results") {
        value
    } else if name.eq_ignore_ascii_case(b"ARC-Authentication-Results") {
        // `i=N;` comes first (RFC 8617 §4.1.2).
        match value.iter().position(|&b| b == b';') {
            Some(semi) => value.get(semi + 1..).unwrap_or_default(),
            None => return false,
        }
    } else {
        return false;
    };
    authserv(value).is_some_and(|id| id.eq_ignore_ascii_case(authserv_id.as_bytes()))
}

/// The authserv-id at the start of a results value: a token or a quoted
/// string after comments and folding white space.
fn authserv(value: &[u8]) -> Option<Vec<u8>> {
    let rest = skip_cfws(value);
    if let Some(quoted) = rest.strip_prefix(b"\"") {
        let mut id = Vec::new();
        let mut bytes = quoted.iter();
        while let Some(&b) = bytes.next() {
            match b {
                b'"' => return Some(id),
                b'\\' => id.push(*bytes.next()?),
                b'\r' | b'\n' => {}
                _ => id.push(b),
            }
        }
        return None;
    }
    let end = rest
        .iter()
        .position(|&b| matches!(b, b';' | b'(' | b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(rest.len());
    let id = rest.get(..end).unwrap_or_default();
    (!id.is_empty()).then(|| id.to_vec())
}

/// `value` after leading white space and comments (which nest; RFC 5322
/// §3.2.2); empty when a comment never closes.
fn skip_cfws(value: &[u8]) -> &[u8] {
    let mut depth = 0usize;
    let mut escaped = false;
    for (i, &b) in value.iter().enumerate() {
        if depth > 0 {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
            continue;
        }
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => {}
            b'(' => depth = 1,
            _ => return value.get(i..).unwrap_or_default(),
        }
    }
    &[]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "mx.example.org";

    fn strip(m: &str) -> String {
        String::from_utf8(strip_claims(m.as_bytes(), ID).into_owned()).unwrap()
    }

    #[test]
    fn only_fields_claiming_this_server_go() {
        let body = "\r\nAuthentication-Results: mx.example.org; dmarc=pass\r\n";
        let table: &[(&str, &str)] = &[
            // Ours, in every spelling: gone, with continuation lines.
            (
                "Authentication-Results: mx.example.org; dkim=pass\r\nSubject: x\r\n",
                "Subject: x\r\n",
            ),
            (
                "authentication-results:MX.Example.ORG;\r\n\tdmarc=pass\r\n header.from=bank\r\nSubject: x\r\n",
                "Subject: x\r\n",
            ),
            (
                "Authentication-Results: (forged) \"mx.example.org\" 1; spf=pass\r\n",
                "",
            ),
            (
                "Authentication-Results : (a (nested) comment)\r\n mx.example.org; none\r\nX: 1\r\n",
                "X: 1\r\n",
            ),
            (
                "ARC-Authentication-Results: i=1; mx.example.org; dmarc=pass\r\nX: 1\r\n",
                "X: 1\r\n",
            ),
            (
                "X: 1\r\nAuthentication-Results: mx.example.org 1; spf=pass\r\nY: 2\r\nAuthentication-Results: mx.example.org; dkim=pass\r\n",
                "X: 1\r\nY: 2\r\n",
            ),
            // Someone else's: kept.
            (
                "Authentication-Results: mx.google.com; dkim=pass\r\n",
                "Authentication-Results: mx.google.com; dkim=pass\r\n",
            ),
            (
                "Authentication-Results: mx.example.org.evil; dkim=pass\r\n",
                "Authentication-Results: mx.example.org.evil; dkim=pass\r\n",
            ),
            (
                "ARC-Authentication-Results: i=1; relay.example.net; dmarc=pass\r\n",
                "ARC-Authentication-Results: i=1; relay.example.net; dmarc=pass\r\n",
            ),
            // Not results fields, or not well formed: kept.
            (
                "X-Authentication-Results: mx.example.org; spf=pass\r\n",
                "X-Authentication-Results: mx.example.org; spf=pass\r\n",
            ),
            (
                "Authentication-Results: (never closed mx.example.org; spf=pass\r\n",
                "Authentication-Results: (never closed mx.example.org; spf=pass\r\n",
            ),
            ("Authentication-Results\r\n", "Authentication-Results\r\n"),
            (
                "ARC-Authentication-Results: mx.example.org\r\n",
                "ARC-Authentication-Results: mx.example.org\r\n",
            ),
        ];
        for (header, kept) in table {
            assert_eq!(
                strip(&format!("{header}{body}")),
                format!("{kept}{body}"),
                "{header:?}"
            );
        }
    }

    #[test]
    fn bare_line_feeds_and_a_message_without_body() {
        assert_eq!(
            strip("Authentication-Results: mx.example.org; spf=pass\nX: 1\n\nbody\n"),
            "X: 1\n\nbody\n"
        );
        assert_eq!(
            strip("Authentication-Results: mx.example.org; spf=pass"),
            ""
        );
        assert!(matches!(
            strip_claims(b"Subject: hi\r\n\r\nbody", ID),
            Cow::Borrowed(_)
        ));
    }
}
