//! Modified UTF-7 (RFC 3501 §5.1.3), IMAP's encoding of mailbox names for
//! clients that have not enabled UTF8=ACCEPT.
//!
//! Imports nothing of ours. Invariants: decoding is total and strict (bad
//! base64, leftover bits, encoded printable ASCII or non-ASCII bytes are a
//! typed error); encoding always yields printable ASCII.

/// Why a name is not modified UTF-7.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutf7Error {
    /// A byte outside printable ASCII.
    NotPrintable,
    /// `&` without the `-` that ends its run.
    Unterminated,
    /// A character outside modified base64 inside `&…-`.
    BadBase64,
    /// Bits left over that are not zero padding of less than one unit.
    LeftoverBits,
    /// The decoded units are not UTF-16.
    NotUtf16,
    /// Printable ASCII encoded, which must appear as itself.
    EncodedAscii,
}

impl std::fmt::Display for Mutf7Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mutf7Error::NotPrintable => "a byte outside printable ASCII",
            Mutf7Error::Unterminated => "an & run without its closing -",
            Mutf7Error::BadBase64 => "a character outside modified base64",
            Mutf7Error::LeftoverBits => "leftover bits after the last character",
            Mutf7Error::NotUtf16 => "the encoded characters are not UTF-16",
            Mutf7Error::EncodedAscii => "printable ASCII encoded",
        })
    }
}

/// Modified UTF-7 (RFC 3501 §5.1.3) to UTF-8, strictly.
pub fn mutf7_decode(name: &[u8]) -> Result<String, Mutf7Error> {
    let mut out = String::new();
    let mut rest = name;
    while let Some((&c, after)) = rest.split_first() {
        if !(0x20..0x7f).contains(&c) {
            return Err(Mutf7Error::NotPrintable);
        }
        if c != b'&' {
            out.push(c as char);
            rest = after;
            continue;
        }
        let end = after
            .iter()
            .position(|&b| b == b'-')
            .ok_or(Mutf7Error::Unterminated)?;
        let (chunk, from_dash) = after
            .split_at_checked(end)
            .ok_or(Mutf7Error::Unterminated)?;
        if chunk.is_empty() {
            out.push('&');
        } else {
            let mut bits: u32 = 0;
            let mut nbits = 0;
            let mut units = Vec::new();
            for &b in chunk {
                let v = match b {
                    b'A'..=b'Z' => b - b'A',
                    b'a'..=b'z' => b - b'a' + 26,
                    b'0'..=b'9' => b - b'0' + 52,
                    b'+' => 62,
                    b',' => 63,
                    _ => return Err(Mutf7Error::BadBase64),
                } as u32;
                bits = (bits << 6) | v;
                nbits += 6;
                if nbits >= 16 {
                    nbits -= 16;
                    units.push((bits >> nbits) as u16);
                    bits &= (1 << nbits) - 1;
                }
            }
            // Leftover bits must be zero padding of less than one unit.
            if nbits >= 6 || bits != 0 {
                return Err(Mutf7Error::LeftoverBits);
            }
            let s = String::from_utf16(&units).map_err(|_| Mutf7Error::NotUtf16)?;
            // Printable ASCII must not be encoded (RFC 3501 §5.1.3).
            if s.chars().any(|ch| (' '..='~').contains(&ch)) {
                return Err(Mutf7Error::EncodedAscii);
            }
            out.push_str(&s);
        }
        rest = from_dash.get(1..).unwrap_or_default();
    }
    Ok(out)
}

/// The modified base64 digit of the low six bits of `v` (RFC 3501 §5.1.3:
/// `,` instead of `/`).
fn b64_digit(v: u32) -> char {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
    B64.get((v & 63) as usize).map_or('A', |&d| char::from(d))
}

/// UTF-8 to modified UTF-7.
pub fn mutf7_encode(name: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let mut bits: u32 = 0;
        let mut nbits = 0;
        for u in pending.drain(..) {
            bits = (bits << 16) | u as u32;
            nbits += 16;
            while nbits >= 6 {
                nbits -= 6;
                out.push(b64_digit(bits >> nbits));
            }
            bits &= (1 << nbits) - 1;
        }
        if nbits > 0 {
            out.push(b64_digit(bits << (6 - nbits)));
        }
        out.push('-');
    };
    for ch in name.chars() {
        if (' '..='~').contains(&ch) {
            flush(&mut pending, &mut out);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(ch.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modified_utf7_round_trips() {
        for s in ["INBOX", "Entwürfe", "日本語/テスト", "a&b", "Ω&Ω", "😀"] {
            let e = mutf7_encode(s);
            assert!(e.is_ascii());
            assert_eq!(mutf7_decode(e.as_bytes()).as_deref(), Ok(s), "{e}");
        }
        assert_eq!(mutf7_encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(
            mutf7_encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        let bad = [
            ("&", Mutf7Error::Unterminated),
            ("&Jjo", Mutf7Error::Unterminated),
            ("&AGE-", Mutf7Error::EncodedAscii),
            ("&U,BTF2XlZyyKng-x&;-", Mutf7Error::BadBase64),
            ("caf\u{e9}", Mutf7Error::NotPrintable),
            ("a\tb", Mutf7Error::NotPrintable),
            ("&AG-", Mutf7Error::LeftoverBits),
            ("&2D0-", Mutf7Error::NotUtf16),
        ];
        for (input, why) in bad {
            assert_eq!(mutf7_decode(input.as_bytes()), Err(why), "{input}");
        }
        assert_eq!(mutf7_decode(b"&-&-"), Ok("&&".to_string()));
    }
}
