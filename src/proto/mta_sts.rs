//! MTA-STS policies (RFC 8461 §3.2): the policy file a domain serves at
//! `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`, and which MX host
//! names its `mx` patterns admit (§4.1).
//!
//! Imports nothing of ours. Invariants: `policy` is total over any bytes;
//! a policy is only returned whole (version, a known mode, `max_age`, and
//! at least one `mx` unless the mode is `none`); at most `MAX_MX`
//! patterns are kept.

/// A policy file longer than this is refused (RFC 8461 §3.3 leaves the
/// limit to the sender; 64 KiB is what others use).
pub const MAX_POLICY: usize = 64 * 1024;

/// `mx` patterns kept of one policy.
pub const MAX_MX: usize = 100;

/// RFC 8461 §3.2: `max_age` is at most 31557600 seconds (a year).
pub const MAX_AGE: u64 = 31_557_600;

/// What a policy asks of senders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Deliver only over TLS with a valid certificate to a listed MX.
    Enforce,
    /// Deliver as usual; report what would have failed (TLS-RPT).
    Testing,
    /// No policy.
    None,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// A parsed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// Host names or `*.`-wildcards, lowercase, without a trailing dot.
    pub mx: Vec<String>,
    /// Seconds a sender may keep the policy.
    pub max_age: u64,
}

impl Policy {
    /// Whether `host` (an MX host name) is one the policy names.
    pub fn admits(&self, host: &str) -> bool {
        self.mx.iter().any(|p| mx_matches(p, host))
    }

    /// The policy's lines as RFC 8460 §4.4 reports them (`policy-string`).
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![
            "version: STSv1".to_string(),
            format!("mode: {}", self.mode.as_str()),
        ];
        out.extend(self.mx.iter().map(|m| format!("mx: {m}")));
        out.push(format!("max_age: {}", self.max_age));
        out
    }

    /// The policy file as a domain serves it (CRLF lines, §3.2).
    pub fn text(&self) -> String {
        let mut out = self.lines().join("\r\n");
        out.push_str("\r\n");
        out
    }

    /// The `id` of the `_mta-sts` TXT record announcing this policy: the
    /// start of the file's SHA-256, so it changes whenever the file does
    /// (§3.1: 1 to 32 letters and digits).
    pub fn id(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.text().as_bytes());
        hex::encode(digest.get(..10).unwrap_or_default())
    }
}

/// Reads a policy file: `key: value` lines ending in LF or CRLF; unknown
/// keys are ignored (§3.2).
pub fn policy(bytes: &[u8]) -> Result<Policy, String> {
    if bytes.len() > MAX_POLICY {
        return Err(format!("policy is over {MAX_POLICY} bytes"));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "policy is not UTF-8".to_string())?;
    let (mut version, mut mode, mut max_age) = (None, None, None);
    let mut mx = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!(
                "not a \"key: value\" line: {:?}",
                super::cut(line, 100)
            ));
        };
        let value = value.trim();
        match key.trim() {
            "version" => version = Some(value.to_string()),
            "mode" => {
                mode = Some(match value {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    other => return Err(format!("unknown mode {:?}", super::cut(other, 100))),
                })
            }
            "max_age" => {
                let age = value
                    .parse::<u64>()
                    .ok()
                    .filter(|a| *a <= MAX_AGE && value.len() <= 10)
                    .ok_or_else(|| {
                        format!("max_age {:?} is not 0 to {MAX_AGE}", super::cut(value, 100))
                    })?;
                max_age = Some(age);
            }
            "mx" => {
                if mx.len() >= MAX_MX {
                    return Err(format!("more than {MAX_MX} mx lines"));
                }
                let pattern = value.trim_end_matches('.').to_ascii_lowercase();
                if !valid_pattern(&pattern) {
                    return Err(format!(
                        "mx {:?} is not a host name pattern",
                        super::cut(value, 100)
                    ));
                }
                mx.push(pattern);
            }
            _ => {}
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err("version is not STSv1".into());
    }
    let mode = mode.ok_or("no mode")?;
    let max_age = max_age.ok_or("no max_age")?;
    if mx.is_empty() && mode != Mode::None {
        return Err("no mx".into());
    }
    Ok(Policy { mode, mx, max_age })
}

/// `mail.example.com`, or `*.example.com` (any one label in place of the
/// star).
fn valid_pattern(p: &str) -> bool {
    let name = p.strip_prefix("*.").unwrap_or(p);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// RFC 8461 §4.1: a pattern is the host itself, or `*.` and the host less
/// its leftmost label (one label only).
pub fn mx_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        Some(parent) => host
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest.eq_ignore_ascii_case(parent)),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        let p = policy(b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n").unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.mx, vec!["mail.example.com", "*.example.net"]);
        assert_eq!(p.max_age, 604_800);
        assert_eq!(p.lines().len(), 5);
        // What a domain serves reads back as the same policy; its id
        // follows its text.
        assert_eq!(policy(p.text().as_bytes()).unwrap(), p);
        let id = p.id();
        assert!(id.len() <= 32 && id.chars().all(|c| c.is_ascii_alphanumeric()));
        let mut testing = p.clone();
        testing.mode = Mode::Testing;
        assert_ne!(testing.id(), id);
        // LF only, unknown keys, spacing and a trailing dot.
        let p = policy(
            b"version:STSv1\nmode: testing\nextension: yes\nmx: MX.Example.ORG.\nmax_age:86400\n\n",
        )
        .unwrap();
        assert_eq!(
            (p.mode, p.mx[0].as_str()),
            (Mode::Testing, "mx.example.org")
        );
        assert_eq!(
            policy(b"version: STSv1\nmode: none\nmax_age: 1\n")
                .unwrap()
                .mode,
            Mode::None
        );
        let refused: &[(&[u8], &str)] = &[
            (b"", "version"),
            (
                b"version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n",
                "version",
            ),
            (
                b"version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n",
                "unknown mode",
            ),
            (b"version: STSv1\nmode: enforce\nmax_age: 1\n", "no mx"),
            (b"version: STSv1\nmode: enforce\nmx: a.b\n", "no max_age"),
            (
                b"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557601\n",
                "max_age",
            ),
            (
                b"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n",
                "max_age",
            ),
            (
                b"version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 1\n",
                "host name",
            ),
            (
                b"version: STSv1\nmode: enforce\nmx: a.*.b\nmax_age: 1\n",
                "host name",
            ),
            (b"<html>no</html>\n", "key: value"),
            (b"version: STSv1\xff\n", "UTF-8"),
        ];
        for (bytes, why) in refused {
            let e = policy(bytes).unwrap_err();
            assert!(e.contains(why), "{e} / {why}");
        }
        let big = vec![b'a'; MAX_POLICY + 1];
        assert!(policy(&big).unwrap_err().contains("over"));
    }

    #[test]
    fn mx_patterns() {
        let table = [
            ("mail.example.com", "mail.example.com", true),
            ("mail.example.com", "MAIL.example.com.", true),
            ("mail.example.com", "mx.example.com", false),
            ("*.example.com", "mx1.example.com", true),
            ("*.example.com", "a.b.example.com", false),
            ("*.example.com", "example.com", false),
            ("*.example.com", ".example.com", false),
        ];
        for (pattern, host, want) in table {
            assert_eq!(mx_matches(pattern, host), want, "{pattern} {host}");
        }
    }

    #[test]
    fn any_bytes_give_a_policy_or_an_error() {
        let seeds: &[&[u8]] = &[b"version: STSv1\nmode: enforce\nmx: *.a.b\nmax_age: 9\n"];
        for m in crate::proto::mutations(seeds, b"\n\r:*. ", 11, 3000) {
            if let Ok(p) = policy(&m) {
                assert!(p.max_age <= MAX_AGE && p.mx.len() <= MAX_MX);
                assert!(p.mode == Mode::None || !p.mx.is_empty());
            }
        }
    }
}
