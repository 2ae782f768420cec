//! Binary content made fit for IMAP's ordinary literals: a message that
//! came as a `literal8` (RFC 3516), or holds NUL bytes, has its binary leaf
//! parts re-encoded as base64 before it is stored.
//!
//! Imports the sibling `mime` (the part walk). Invariants: only leaf parts
//! whose bodies hold a NUL or say `Content-Transfer-Encoding: binary`
//! change; every other byte of the message is kept as it came.
#![deny(clippy::indexing_slicing)]

use super::mime::{Limits, parse};

/// A message appended as binary (RFC 3516 `literal8`, or holding NUL
/// bytes) made fit for ordinary literals: each leaf part whose body holds a
/// NUL or says `Content-Transfer-Encoding: binary` is re-encoded as base64,
/// its header saying so. `BODY[]` then returns 7-bit data and `BINARY[]`
/// the original bytes (as Dovecot stores such mail). `None`: nothing to
/// change, or a message that does not parse (stored as it came).
pub fn encode_binary_parts(msg: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    let parsed = parse(msg, Limits::default()).ok()?;
    let mut leaves = Vec::new();
    let mut stack = vec![&parsed.root];
    while let Some(p) = stack.pop() {
        if p.children.is_empty() {
            let body = msg.get(p.body_start as usize..p.end as usize)?;
            if body.contains(&0) || p.encoding == "binary" {
                leaves.push(p);
            }
        }
        stack.extend(p.children.iter());
    }
    if leaves.is_empty() {
        return None;
    }
    leaves.sort_by_key(|p| p.header_start);
    let mut out = Vec::with_capacity(msg.len() * 4 / 3 + 256);
    let mut at = 0usize;
    for p in leaves {
        let (hs, bs, end) = (
            p.header_start as usize,
            p.body_start as usize,
            p.end as usize,
        );
        out.extend_from_slice(msg.get(at..hs)?);
        out.extend_from_slice(&header_with_base64(msg.get(hs..bs)?));
        let encoded = base64::engine::general_purpose::STANDARD.encode(msg.get(bs..end)?);
        for (i, line) in encoded.as_bytes().chunks(76).enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(line);
        }
        if end == msg.len() {
            out.extend_from_slice(b"\r\n");
        }
        at = end;
    }
    out.extend_from_slice(msg.get(at..)?);
    Some(out)
}

/// A part's header block with any Content-Transfer-Encoding field (and its
/// continuation lines) replaced by `base64`, before the blank line.
fn header_with_base64(header: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + 40);
    let mut skipping = false;
    let mut lines = header.split_inclusive(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let blank = line == b"\r\n" || line == b"\n";
        if blank && lines.peek().is_none() {
            break;
        }
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if continuation && skipping {
            continue;
        }
        skipping = line.len() >= 26
            && line
                .get(..26)
                .is_some_and(|n| n.eq_ignore_ascii_case(b"content-transfer-encoding:"));
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_leaves_become_base64_and_the_rest_stays() {
        let table: Vec<(&[u8], Option<&[u8]>)> = vec![
            (b"Subject: x\r\n\r\nplain\r\n", None),
            (
                b"Subject: x\r\n\r\na\0b\r\n",
                Some(b"Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\nYQBiDQo=\r\n"),
            ),
            (
                b"Subject: x\r\nContent-Transfer-Encoding: binary\r\n\r\nab",
                Some(b"Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\nYWI=\r\n"),
            ),
            (
                b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nt\r\n--b\r\nContent-Transfer-Encoding:\r\n binary\r\n\r\n\0\r\n--b--\r\n",
                Some(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nt\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\nAA==\r\n--b--\r\n"),
            ),
        ];
        for (input, want) in table {
            assert_eq!(
                encode_binary_parts(input).as_deref(),
                want,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
