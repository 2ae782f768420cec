//! A message turned into PGP/MIME (RFC 3156 §4): a `multipart/encrypted`
//! message whose encrypted part is the whole original message, byte for
//! byte, under the header fields a client needs to list and thread it.
//!
//! Imports `openpgp` (the key's target) and `util`. Invariants: the
//! outer message keeps only the fields in [`OUTER`], raw as they came (a
//! folded field stays folded); with protected headers (the "protected
//! headers" scheme Thunderbird reads, `protected-headers="v1"`), the
//! outer Subject is `...` and the inner message differs from the original
//! only by that parameter on its Content-Type; messages already encrypted
//! (PGP/MIME, S/MIME enveloped data) are returned as they are.

use pgp::composed::{ArmorOptions, MessageBuilder, SignedPublicKey};
use pgp::crypto::sym::SymmetricKeyAlgorithm;

/// The header fields kept outside the encryption: what lists, threads,
/// traces and authenticates the message. Everything else (and every
/// field's original, with the body) is only inside.
pub const OUTER: &[&str] = &[
    "return-path",
    "received",
    "authentication-results",
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "date",
    "subject",
    "message-id",
    "in-reply-to",
    "references",
    "list-id",
    "auto-submitted",
];

/// What [`wrap`] made of a message.
#[derive(Debug)]
pub enum Wrapped {
    Encrypted(Vec<u8>),
    /// Already PGP/MIME or S/MIME encrypted: stored as it came.
    AlreadyEncrypted,
}

/// The message encrypted to `key` (its encryption key chosen at `now`)
/// and wrapped as PGP/MIME.
pub fn wrap(
    key: &SignedPublicKey,
    message: &[u8],
    protect_subject: bool,
    now: i64,
) -> Result<Wrapped, String> {
    let (header, _) = split(message);
    if encrypted_header(header) {
        return Ok(Wrapped::AlreadyEncrypted);
    }
    let target = super::encryption_target(key, now).ok_or("the key has no encryption key")?;
    let inner = if protect_subject {
        protected(message)
    } else {
        message.to_vec()
    };
    let mut rng = rand_core::OsRng;
    let mut builder =
        MessageBuilder::from_bytes("", inner).seipd_v1(&mut rng, SymmetricKeyAlgorithm::AES256);
    let added = match target.which {
        Some(i) => match key.public_subkeys.get(i) {
            Some(sub) => builder.encrypt_to_key(&mut rng, sub).map(|_| ()),
            None => return Err("the key's encryption subkey vanished".into()),
        },
        None => builder.encrypt_to_key(&mut rng, key).map(|_| ()),
    };
    added.map_err(|e| e.to_string())?;
    let armored = builder
        .to_armored_string(rng, ArmorOptions::default())
        .map_err(|e| e.to_string())?;
    Ok(Wrapped::Encrypted(outer(
        header,
        &armored,
        protect_subject,
    )?))
}

/// Whether the message is already encrypted: `multipart/encrypted`, or
/// S/MIME's `application/pkcs7-mime` unless it is only signed.
pub fn already_encrypted(message: &[u8]) -> bool {
    encrypted_header(split(message).0)
}

/// [`already_encrypted`], of a header block.
fn encrypted_header(header: &[u8]) -> bool {
    let Some(value) = fields(header)
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(b"content-type"))
        .map(|(_, at)| unfolded_value(header.get(at).unwrap_or_default()))
    else {
        return false;
    };
    let ct = mailparse::parse_content_type(&value);
    match ct.mimetype.to_ascii_lowercase().as_str() {
        "multipart/encrypted" => true,
        "application/pkcs7-mime" | "application/x-pkcs7-mime" => ct
            .params
            .get("smime-type")
            .is_none_or(|t| !t.eq_ignore_ascii_case("signed-data")),
        _ => false,
    }
}

/// The header block (with its line ends, without the blank line) and
/// the body.
fn split(message: &[u8]) -> (&[u8], &[u8]) {
    for (at, line) in lines(message) {
        if line == b"\r\n" || line == b"\n" {
            return (
                message.get(..at).unwrap_or_default(),
                message.get(at + line.len()..).unwrap_or_default(),
            );
        }
    }
    (message, &[])
}

/// The lines of `bytes` with their line ends, and where each starts.
fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = bytes.get(at..).filter(|r| !r.is_empty())?;
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |p| p + 1);
        let start = at;
        at += len;
        Some((start, rest.get(..len).unwrap_or_default()))
    })
}

/// The fields of a header block: name and where the raw field (folded
/// lines and line ends included) lies, in order. A line without a colon
/// that does not continue a field is skipped.
fn fields(header: &[u8]) -> Vec<(&[u8], std::ops::Range<usize>)> {
    let mut out: Vec<(&[u8], usize, usize)> = Vec::new();
    for (at, line) in lines(header) {
        let continues = matches!(line.first(), Some(b' ' | b'\t'));
        match (continues, out.last_mut()) {
            (true, Some(last)) => last.2 = at + line.len(),
            _ => {
                if let Some(colon) = line.iter().position(|&b| b == b':') {
                    let name = line.get(..colon).unwrap_or_default();
                    out.push((name, at, at + line.len()));
                }
            }
        }
    }
    out.into_iter()
        .map(|(name, from, to)| (trim(name), from..to))
        .collect()
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |p| p + 1);
    b.get(start..end).unwrap_or_default()
}

/// A raw field's value, unfolded, as text.
fn unfolded_value(raw: &[u8]) -> String {
    let value = raw
        .iter()
        .position(|&b| b == b':')
        .and_then(|c| raw.get(c + 1..))
        .unwrap_or_default();
    String::from_utf8_lossy(value)
        .replace("\r\n", "")
        .replace('\n', "")
        .trim()
        .to_string()
}

/// The original with `protected-headers="v1"` on its Content-Type (one
/// added, `text/plain` as RFC 2045 defaults, when it has none).
fn protected(message: &[u8]) -> Vec<u8> {
    let (header, _) = split(message);
    let eol: &[u8] = if header.windows(2).any(|w| w == b"\r\n") || header.is_empty() {
        b"\r\n"
    } else {
        b"\n"
    };
    let mut out = Vec::with_capacity(message.len() + 64);
    let ct = fields(header)
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(b"content-type"))
        .map(|(_, at)| at);
    match ct {
        Some(at) => {
            // The header starts the message: its offsets are the message's.
            let (start, end) = (at.start, at.end);
            let raw = message.get(at).unwrap_or_default();
            let body = raw
                .strip_suffix(b"\r\n")
                .or_else(|| raw.strip_suffix(b"\n"))
                .unwrap_or(raw);
            out.extend_from_slice(message.get(..start).unwrap_or_default());
            out.extend_from_slice(body);
            out.extend_from_slice(b"; protected-headers=\"v1\"");
            out.extend_from_slice(eol);
            out.extend_from_slice(message.get(end..).unwrap_or_default());
        }
        None => {
            out.extend_from_slice(header);
            if !header.is_empty() && !header.ends_with(b"\n") {
                out.extend_from_slice(eol);
            }
            out.extend_from_slice(
                b"Content-Type: text/plain; charset=us-ascii; protected-headers=\"v1\"",
            );
            out.extend_from_slice(eol);
            out.extend_from_slice(message.get(header.len()..).unwrap_or_default());
            if message.len() == header.len() {
                // No blank line in the original: the body is empty.
                out.extend_from_slice(eol);
            }
        }
    }
    out
}

/// The outer message around the armored ciphertext.
fn outer(header: &[u8], armored: &str, protect_subject: bool) -> Result<Vec<u8>, String> {
    let mut boundary = [0u8; 12];
    crate::util::random_fill(&mut boundary).map_err(|e| e.to_string())?;
    let boundary = format!("sealmail-pgp-{}", hex::encode(boundary));
    let mut out = Vec::with_capacity(armored.len() + header.len() + 512);
    for (name, at) in fields(header) {
        let raw = header.get(at).unwrap_or_default();
        let lower = name.to_ascii_lowercase();
        // A field must start its line: a stray continuation at the top of
        // the original stays inside only.
        if !OUTER.iter().any(|k| k.as_bytes() == lower.as_slice())
            || matches!(raw.first(), Some(b' ' | b'\t'))
        {
            continue;
        }
        if protect_subject && lower == b"subject" {
            out.extend_from_slice(b"Subject: ...\r\n");
            continue;
        }
        out.extend_from_slice(raw);
        if !raw.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(
        format!(
            "MIME-Version: 1.0\r\n\
             Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n \
             boundary=\"{boundary}\"\r\n\
             \r\n\
             This is an OpenPGP/MIME encrypted message (RFC 3156).\r\n\
             --{boundary}\r\n\
             Content-Type: application/pgp-encrypted\r\n\
             Content-Description: PGP/MIME version identification\r\n\
             \r\n\
             Version: 1\r\n\
             \r\n\
             --{boundary}\r\n\
             Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\
             Content-Description: OpenPGP encrypted message\r\n\
             Content-Disposition: inline; filename=\"encrypted.asc\"\r\n\
             \r\n"
        )
        .as_bytes(),
    );
    for line in armored.lines() {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Ok(out)
}
