//! ClamAV's clamd protocol, the part the MX uses: the `INSTREAM` request
//! (the message sent as length-prefixed chunks, a zero length ending it)
//! and the one-line reply (`stream: OK`, `stream: NAME FOUND`, or
//! `... ERROR`), NUL-terminated because the command is sent in its
//! `z` form.
//!
//! Imports nothing of ours. Invariants: `reply` is total over any bytes
//! and bounded: a reply is read up to `MAX_REPLY` bytes, a name kept is
//! at most `MAX_NAME` printable ASCII characters.

/// The command, in its NUL-terminated form.
pub const INSTREAM: &[u8] = b"zINSTREAM\0";

/// The largest chunk sent at once (clamd accepts up to its
/// `StreamMaxLength` in all; a chunk's size is only a framing choice).
pub const CHUNK: usize = 64 * 1024;

/// A reply longer than this is not clamd's.
pub const MAX_REPLY: usize = 4096;

/// A signature name is cut to this many characters.
pub const MAX_NAME: usize = 200;

/// The 4-byte big-endian length before each chunk; `0` ends the stream.
pub fn chunk_header(len: usize) -> [u8; 4] {
    u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes()
}

/// What clamd said of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Nothing found.
    Clean,
    /// The name of the signature that matched.
    Found(String),
    /// clamd could not scan it (size limit, a damaged database, ...):
    /// its words, or what was wrong with the reply.
    Error(String),
}

/// Reads clamd's reply (up to its NUL, or all of `bytes` when there is
/// none).
pub fn reply(bytes: &[u8]) -> Reply {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let line = bytes.get(..end.min(MAX_REPLY)).unwrap_or_default();
    let line = printable(line);
    let line = line.trim();
    if let Some(rest) = line.strip_suffix(" ERROR") {
        return Reply::Error(super::cut(rest, MAX_NAME));
    }
    // `stream: ...` (the name clamd gives an INSTREAM scan); a reply
    // without it is not an answer to INSTREAM.
    let Some(result) = line.strip_prefix("stream:").map(str::trim) else {
        return unexpected(line);
    };
    if result == "OK" {
        return Reply::Clean;
    }
    match result.strip_suffix(" FOUND").map(str::trim) {
        Some(name) if !name.is_empty() => Reply::Found(super::cut(name, MAX_NAME)),
        _ => unexpected(line),
    }
}

/// A reply that is not an answer to INSTREAM, quoted (quoting may add
/// escapes: the quote is cut again).
fn unexpected(line: &str) -> Reply {
    let quoted = super::cut(&format!("{:?}", super::cut(line, MAX_NAME)), MAX_NAME);
    Reply::Error(format!("unexpected reply {quoted}"))
}

/// Bytes as ASCII, anything else (and control characters) as `?`.
fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let found = |s: &str| Reply::Found(s.to_string());
        let table: &[(&[u8], Reply)] = &[
            (b"stream: OK\0", Reply::Clean),
            (b"stream: OK", Reply::Clean),
            (
                b"stream: Eicar-Test-Signature FOUND\0",
                found("Eicar-Test-Signature"),
            ),
            (
                b"stream: Sealmail.Test.Pattern.UNOFFICIAL FOUND\0trailing",
                found("Sealmail.Test.Pattern.UNOFFICIAL"),
            ),
            (
                b"INSTREAM size limit exceeded. ERROR\0",
                Reply::Error("INSTREAM size limit exceeded.".into()),
            ),
            (
                b"stream: \x1b[31mEvil\nName FOUND\0",
                found("?[31mEvil?Name"),
            ),
            (
                b"stream: FOUND\0",
                Reply::Error("unexpected reply \"stream: FOUND\"".into()),
            ),
            (b"", Reply::Error("unexpected reply \"\"".into())),
            (b"PONG\0", Reply::Error("unexpected reply \"PONG\"".into())),
        ];
        for (bytes, want) in table {
            assert_eq!(&reply(bytes), want, "{:?}", String::from_utf8_lossy(bytes));
        }
        let long = format!("stream: {} FOUND", "A".repeat(10_000));
        match reply(long.as_bytes()) {
            // Past MAX_REPLY the line has no " FOUND": not a reply.
            Reply::Error(e) => assert!(e.len() < MAX_NAME + 40, "{}", e.len()),
            other => panic!("{other:?}"),
        }
        assert_eq!(chunk_header(0), [0, 0, 0, 0]);
        assert_eq!(chunk_header(CHUNK), [0, 1, 0, 0]);
    }

    #[test]
    fn any_bytes_give_a_reply() {
        let seeds: &[&[u8]] = &[b"stream: OK\0", b"stream: X FOUND\0", b"x ERROR\0"];
        for m in crate::proto::mutations(seeds, b"\0 :\xff", 7, 2000) {
            match reply(&m) {
                Reply::Found(n) => assert!(!n.is_empty() && n.len() <= MAX_NAME),
                Reply::Error(e) => assert!(e.len() <= MAX_NAME + 40),
                Reply::Clean => {}
            }
        }
    }
}
