//! The part of an X.509 certificate DANE matches besides the whole
//! certificate: its SubjectPublicKeyInfo (RFC 5280 §4.1, RFC 6698 §2.1.2
//! selector 1), found by walking the DER just far enough; and the match
//! of a certificate against one TLSA record's selector, matching type and
//! data (RFC 6698 §2.1).
//!
//! Imports nothing of ours (sha2). Invariants: every function is total
//! over any bytes; only definite DER lengths of up to four bytes are read;
//! nothing is allocated but the digest.

use sha2::Digest;

/// One DER element: its tag, and where its content starts and ends in
/// `der`.
fn element(der: &[u8], at: usize) -> Option<(u8, usize, usize)> {
    let tag = *der.get(at)?;
    if tag & 0x1f == 0x1f {
        // High tag numbers do not occur in the fields walked here.
        return None;
    }
    let first = *der.get(at + 1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*der.get(at + 2 + i)?);
        }
        (len, 2 + n)
    };
    let start = at.checked_add(header)?;
    let end = start.checked_add(len)?;
    (end <= der.len()).then_some((tag, start, end))
}

/// The DER of the certificate's SubjectPublicKeyInfo.
pub fn spki(cert: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    let (tag, cert_start, _) = element(cert, 0)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs_start, tbs_end) = element(cert, cert_start)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut at = tbs_start;
    // version [0] EXPLICIT, when present.
    if cert.get(at) == Some(&0xa0) {
        at = element(cert, at)?.2;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        at = element(cert, at)?.2;
    }
    let (tag, _, end) = element(cert, at)?;
    (tag == SEQUENCE && end <= tbs_end).then(|| cert.get(at..end))?
}

/// When the certificate stops being valid (`notAfter`), in seconds since
/// the Unix epoch.
pub fn not_after(cert: &[u8]) -> Option<i64> {
    const SEQUENCE: u8 = 0x30;
    let (tag, cert_start, _) = element(cert, 0)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs_start, _) = element(cert, cert_start)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut at = tbs_start;
    if cert.get(at) == Some(&0xa0) {
        at = element(cert, at)?.2;
    }
    // serialNumber, signature, issuer.
    for _ in 0..3 {
        at = element(cert, at)?.2;
    }
    let (tag, validity_start, _) = element(cert, at)?;
    if tag != SEQUENCE {
        return None;
    }
    let not_before_end = element(cert, validity_start)?.2;
    let (tag, start, end) = element(cert, not_before_end)?;
    let text = std::str::from_utf8(cert.get(start..end)?).ok()?;
    let digits = text.strip_suffix('Z')?;
    let (year, rest) = match (tag, digits.len()) {
        // UTCTime: YY is 1950..=2049 (RFC 5280 §4.1.2.5.1).
        (0x17, 12) => {
            let yy: i64 = digits.get(..2)?.parse().ok()?;
            (
                if yy >= 50 { 1900 + yy } else { 2000 + yy },
                digits.get(2..)?,
            )
        }
        (0x18, 14) => (digits.get(..4)?.parse().ok()?, digits.get(4..)?),
        _ => return None,
    };
    if !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days from 1970-01-01 to a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether `cert` (DER) matches a TLSA record's `selector` (0: the whole
/// certificate, 1: its public key), `matching` type (0: exact, 1:
/// SHA-256, 2: SHA-512) and `data`. Unknown selectors and types match
/// nothing.
pub fn tlsa_matches(cert: &[u8], selector: u8, matching: u8, data: &[u8]) -> bool {
    let selected = match selector {
        0 => cert,
        1 => match spki(cert) {
            Some(s) => s,
            None => return false,
        },
        _ => return false,
    };
    match matching {
        0 => selected == data,
        1 => sha2::Sha256::digest(selected).as_slice() == data,
        2 => sha2::Sha512::digest(selected).as_slice() == data,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_of_a_real_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["mx.example.org".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = cert.der().to_vec();
        let spki_der = rcgen::PublicKeyData::subject_public_key_info(&key);
        assert_eq!(spki(&der), Some(spki_der.as_slice()));
        let digest = sha2::Sha256::digest(&spki_der);
        assert!(tlsa_matches(&der, 1, 1, &digest));
        assert!(tlsa_matches(&der, 0, 1, &sha2::Sha256::digest(&der)));
        assert!(tlsa_matches(&der, 0, 0, &der));
        assert!(tlsa_matches(&der, 1, 2, &sha2::Sha512::digest(&spki_der)));
        assert!(!tlsa_matches(&der, 1, 1, &[0u8; 32]));
        assert!(!tlsa_matches(&der, 7, 1, &digest));
        assert!(!tlsa_matches(&der, 1, 9, &digest));
        // Cut anywhere, it is not a certificate.
        for cut in [0, 1, 2, 10, der.len() / 2, der.len() - 1] {
            assert_eq!(spki(&der[..cut]), None, "{cut}");
        }
    }

    #[test]
    fn expiry_of_real_certificates() {
        let key = rcgen::KeyPair::generate().unwrap();
        for (year, want) in [
            (2031, 1_956_441_600),
            (2051, 2_587_593_600),
            (1999, 946_598_400),
        ] {
            let mut params = rcgen::CertificateParams::new(vec!["a.b".to_string()]).unwrap();
            params.not_after = rcgen::date_time_ymd(year, 12, 31);
            let der = params.self_signed(&key).unwrap().der().to_vec();
            assert_eq!(not_after(&der), Some(want), "{year}");
            for cut in [0, 5, der.len() / 3] {
                assert_eq!(not_after(&der[..cut]), None);
            }
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn any_bytes_give_an_answer() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["a.b".to_string()]).unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        for m in crate::proto::mutations(&[&der], &[0x30, 0x82, 0xa0, 0xff], 19, 2000) {
            if let Some(s) = spki(&m) {
                assert!(s.len() <= m.len());
            }
            let _ = not_after(&m);
        }
    }
}
