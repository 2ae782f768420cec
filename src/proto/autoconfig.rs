//! Mail client autoconfiguration documents: Thunderbird's
//! `config-v1.1.xml`, Microsoft's Autodiscover (POX) request and response,
//! and an Apple configuration profile (`.mobileconfig`).
//!
//! Imports nothing of ours. Invariants: every value put in a document is
//! XML-escaped; no document carries a password (the profile leaves the
//! password for the device to ask); `autodiscover_request` is total over
//! any bytes and reads at most what it was given.

use std::fmt::Write as _;

/// Where clients reach the server: its name and the public port of each
/// service (`None`: not offered).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Servers {
    pub hostname: String,
    pub imaps: Option<u16>,
    pub imap: Option<u16>,
    pub pop3s: Option<u16>,
    pub pop3: Option<u16>,
    pub submissions: Option<u16>,
    pub submission: Option<u16>,
}

/// `s` with `&`, `<`, `>`, `"` and `'` escaped, and control characters
/// other than tab and line ends dropped (XML 1.0 cannot carry them).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Thunderbird's `config-v1.1.xml` for `domain`: IMAP (TLS, then
/// STARTTLS), POP3 (likewise), and submission (TLS, then STARTTLS), each
/// logging in with the whole address and a password over TLS.
pub fn thunderbird(domain: &str, s: &Servers) -> String {
    let d = escape(domain);
    let host = escape(&s.hostname);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str("<clientConfig version=\"1.1\">\n");
    let _ = writeln!(out, "  <emailProvider id=\"{d}\">");
    let _ = writeln!(out, "    <domain>{d}</domain>");
    let _ = writeln!(out, "    <displayName>{d} mail</displayName>");
    let _ = writeln!(out, "    <displayShortName>{d}</displayShortName>");
    let servers = [
        ("incomingServer", "imap", s.imaps, "SSL"),
        ("incomingServer", "imap", s.imap, "STARTTLS"),
        ("incomingServer", "pop3", s.pop3s, "SSL"),
        ("incomingServer", "pop3", s.pop3, "STARTTLS"),
        ("outgoingServer", "smtp", s.submissions, "SSL"),
        ("outgoingServer", "smtp", s.submission, "STARTTLS"),
    ];
    for (element, kind, port, socket) in servers {
        let Some(port) = port else { continue };
        let _ = writeln!(out, "    <{element} type=\"{kind}\">");
        let _ = writeln!(out, "      <hostname>{host}</hostname>");
        let _ = writeln!(out, "      <port>{port}</port>");
        let _ = writeln!(out, "      <socketType>{socket}</socketType>");
        out.push_str("      <authentication>password-cleartext</authentication>\n");
        out.push_str("      <username>%EMAILADDRESS%</username>\n");
        let _ = writeln!(out, "    </{element}>");
    }
    out.push_str("  </emailProvider>\n</clientConfig>\n");
    out
}

/// The value of `name` in a URL query (`a=1&b=2`), percent-decoded, `+`
/// as space; `None` when absent, empty, or not UTF-8 once decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    let raw = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(name))?
        .1;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    let value = String::from_utf8(out).ok()?;
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// The longest Autodiscover request body read.
pub const MAX_REQUEST: usize = 16 * 1024;

/// The address in an Autodiscover (POX) request's `EMailAddress`
/// element, with or without a namespace prefix.
pub fn autodiscover_request(body: &[u8]) -> Result<String, String> {
    if body.len() > MAX_REQUEST {
        return Err(format!("request over {MAX_REQUEST} bytes"));
    }
    let text = std::str::from_utf8(body).map_err(|_| "request is not UTF-8".to_string())?;
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let after = rest.get(open + 1..).unwrap_or_default();
        let Some(close) = after.find('>') else { break };
        let tag = after.get(..close).unwrap_or_default();
        let name = tag.rsplit(':').next().unwrap_or_default();
        rest = after.get(close + 1..).unwrap_or_default();
        if name == "EMailAddress" {
            let end = rest.find('<').ok_or("EMailAddress element is not closed")?;
            let value = rest.get(..end).unwrap_or_default().trim();
            if value.is_empty() || !value.contains('@') || value.len() > 320 {
                return Err(format!(
                    "EMailAddress {:?} is not an address",
                    super::cut(value, 100)
                ));
            }
            return Ok(unescape(value));
        }
    }
    Err("no EMailAddress element in the request".into())
}

/// The five predefined XML entities decoded (others are left as written).
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Autodiscover's POX response for `address`: IMAP and SMTP, over TLS
/// where offered, logging in with the whole address.
pub fn autodiscover(address: &str, s: &Servers) -> String {
    let a = escape(address);
    let host = escape(&s.hostname);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    out.push_str("<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n");
    out.push_str("  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n");
    out.push_str(
        "    <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n",
    );
    let imap = s.imaps.map(|p| (p, true)).or(s.imap.map(|p| (p, false)));
    let smtp = s
        .submissions
        .map(|p| (p, true))
        .or(s.submission.map(|p| (p, false)));
    for (kind, choice) in [("IMAP", imap), ("SMTP", smtp)] {
        let Some((port, implicit)) = choice else {
            continue;
        };
        out.push_str("      <Protocol>\n");
        let _ = writeln!(out, "        <Type>{kind}</Type>");
        let _ = writeln!(out, "        <Server>{host}</Server>");
        let _ = writeln!(out, "        <Port>{port}</Port>");
        let _ = writeln!(out, "        <LoginName>{a}</LoginName>");
        out.push_str("        <DomainRequired>off</DomainRequired>\n        <SPA>off</SPA>\n");
        if implicit {
            out.push_str("        <SSL>on</SSL>\n");
        } else {
            out.push_str("        <SSL>off</SSL>\n        <Encryption>TLS</Encryption>\n");
        }
        out.push_str("        <AuthRequired>on</AuthRequired>\n");
        if kind == "SMTP" {
            out.push_str("        <UsePOPAuth>on</UsePOPAuth>\n        <SMTPLast>off</SMTPLast>\n");
        }
        out.push_str("      </Protocol>\n");
    }
    out.push_str("    </Account>\n  </Response>\n</Autodiscover>\n");
    out
}

/// A UUID (version 4 layout) made from `seed`'s SHA-256: the same
/// address always gets the same profile identifiers, so installing its
/// profile again replaces the old one.
fn uuid_from(seed: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(seed.as_bytes());
    let mut b = [0u8; 16];
    for (d, s) in b.iter_mut().zip(h.iter()) {
        *d = *s;
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = hex::encode(b);
    let part = |from: usize, to: usize| hex.get(from..to).unwrap_or_default().to_uppercase();
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

/// An Apple configuration profile with one mail account for `address`
/// (IMAP and submission over TLS where offered). It names the address as
/// user name and carries no password: the device asks for it.
pub fn mobileconfig(address: &str, s: &Servers) -> String {
    let a = escape(address);
    let host = escape(&s.hostname);
    let domain = address.rsplit_once('@').map_or(address, |(_, d)| d);
    // Reverse-DNS identifiers: org.example.mail.<uuid>.
    let reversed: Vec<&str> = domain.split('.').rev().collect();
    let ident = escape(&format!("{}.sealmail", reversed.join(".")));
    let (account_uuid, profile_uuid) = (
        uuid_from(&format!("account {address}")),
        uuid_from(&format!("profile {address}")),
    );
    let (in_port, in_tls) = s
        .imaps
        .map(|p| (p, true))
        .or(s.imap.map(|p| (p, false)))
        .unwrap_or((993, true));
    let (out_port, out_tls) = s
        .submissions
        .map(|p| (p, true))
        .or(s.submission.map(|p| (p, false)))
        .unwrap_or((465, true));
    let flag = |b: bool| if b { "<true/>" } else { "<false/>" };
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str("<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n");
    out.push_str(
        "<plist version=\"1.0\">\n<dict>\n  <key>PayloadContent</key>\n  <array>\n    <dict>\n",
    );
    let entries: [(&str, String); 21] = [
        ("EmailAccountDescription", format!("<string>{a}</string>")),
        ("EmailAccountName", format!("<string>{a}</string>")),
        (
            "EmailAccountType",
            "<string>EmailTypeIMAP</string>".to_string(),
        ),
        ("EmailAddress", format!("<string>{a}</string>")),
        (
            "IncomingMailServerAuthentication",
            "<string>EmailAuthPassword</string>".to_string(),
        ),
        (
            "IncomingMailServerHostName",
            format!("<string>{host}</string>"),
        ),
        (
            "IncomingMailServerPortNumber",
            format!("<integer>{in_port}</integer>"),
        ),
        ("IncomingMailServerUseSSL", flag(in_tls).to_string()),
        (
            "IncomingMailServerUsername",
            format!("<string>{a}</string>"),
        ),
        (
            "OutgoingMailServerAuthentication",
            "<string>EmailAuthPassword</string>".to_string(),
        ),
        (
            "OutgoingMailServerHostName",
            format!("<string>{host}</string>"),
        ),
        (
            "OutgoingMailServerPortNumber",
            format!("<integer>{out_port}</integer>"),
        ),
        ("OutgoingMailServerUseSSL", flag(out_tls).to_string()),
        (
            "OutgoingMailServerUsername",
            format!("<string>{a}</string>"),
        ),
        (
            "OutgoingPasswordSameAsIncomingPassword",
            "<true/>".to_string(),
        ),
        (
            "PayloadDescription",
            format!("<string>Mail account {a}</string>"),
        ),
        ("PayloadDisplayName", format!("<string>{a}</string>")),
        (
            "PayloadIdentifier",
            format!("<string>{ident}.account.{account_uuid}</string>"),
        ),
        (
            "PayloadType",
            "<string>com.apple.mail.managed</string>".to_string(),
        ),
        ("PayloadUUID", format!("<string>{account_uuid}</string>")),
        ("PayloadVersion", "<integer>1</integer>".to_string()),
    ];
    for (key, value) in entries {
        let _ = writeln!(out, "      <key>{key}</key>\n      {value}");
    }
    out.push_str("    </dict>\n  </array>\n");
    let outer: [(&str, String); 6] = [
        (
            "PayloadDescription",
            format!("<string>Mail settings for {a}</string>"),
        ),
        ("PayloadDisplayName", format!("<string>{a}</string>")),
        (
            "PayloadIdentifier",
            format!("<string>{ident}.{profile_uuid}</string>"),
        ),
        ("PayloadType", "<string>Configuration</string>".to_string()),
        ("PayloadUUID", format!("<string>{profile_uuid}</string>")),
        ("PayloadVersion", "<integer>1</integer>".to_string()),
    ];
    for (key, value) in outer {
        let _ = writeln!(out, "  <key>{key}</key>\n  {value}");
    }
    out.push_str("</dict>\n</plist>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers() -> Servers {
        Servers {
            hostname: "mail.example.org".into(),
            imaps: Some(993),
            imap: Some(143),
            pop3s: Some(995),
            pop3: None,
            submissions: Some(465),
            submission: Some(587),
        }
    }

    #[test]
    fn autodiscover_requests() {
        let table: &[(&[u8], Result<&str, &str>)] = &[
            (
                b"<?xml version=\"1.0\"?><Autodiscover xmlns=\"x\"><Request><EMailAddress>ann@example.org</EMailAddress><AcceptableResponseSchema>y</AcceptableResponseSchema></Request></Autodiscover>",
                Ok("ann@example.org"),
            ),
            (
                b"<a:Autodiscover><a:Request><a:EMailAddress> bob@example.org </a:EMailAddress></a:Request></a:Autodiscover>",
                Ok("bob@example.org"),
            ),
            (
                b"<EMailAddress>o&amp;k@example.org</EMailAddress>",
                Ok("o&k@example.org"),
            ),
            (b"<Request></Request>", Err("no EMailAddress")),
            (b"<EMailAddress>nobody</EMailAddress>", Err("not an address")),
            (b"<EMailAddress>ann@example.org", Err("not closed")),
            (b"<EMailAddress", Err("no EMailAddress")),
            (b"\xff\xfe", Err("not UTF-8")),
            (b"", Err("no EMailAddress")),
        ];
        for (input, want) in table {
            let got = autodiscover_request(input);
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g),
                (Err(w), Err(g)) => assert!(g.contains(w), "{g:?} lacks {w:?}"),
                _ => panic!("{:?}: {got:?}", String::from_utf8_lossy(input)),
            }
        }
        assert!(autodiscover_request(&vec![b'a'; MAX_REQUEST + 1]).is_err());
    }

    #[test]
    fn query_params() {
        let table: &[(&str, &str, Option<&str>)] = &[
            (
                "emailaddress=ann%40example.org",
                "emailaddress",
                Some("ann@example.org"),
            ),
            (
                "a=1&EmailAddress=b%2Bc@example.org",
                "emailaddress",
                Some("b+c@example.org"),
            ),
            ("emailaddress=a+b", "emailaddress", Some("a b")),
            ("emailaddress=%zz%4", "emailaddress", Some("%zz%4")),
            ("emailaddress=%ff", "emailaddress", None),
            ("emailaddress=", "emailaddress", None),
            ("other=1", "emailaddress", None),
            ("", "emailaddress", None),
            ("emailaddress", "emailaddress", None),
        ];
        for (query, name, want) in table {
            assert_eq!(query_param(query, name).as_deref(), *want, "{query}");
        }
    }

    #[test]
    fn autodiscover_requests_never_panic() {
        for m in crate::proto::mutations(
            &[b"<x:EMailAddress>a@b.c</x:EMailAddress>", b"<<>>"],
            b"<>:@&",
            23,
            3000,
        ) {
            let _ = autodiscover_request(&m);
            let _ = query_param(&String::from_utf8_lossy(&m), "x:EMailAddress>a");
        }
    }

    #[test]
    fn documents_escape_what_they_carry() {
        let mut s = servers();
        s.hostname = "mail<&>.example.org".into();
        for doc in [
            thunderbird("ex\"ample.org", &s),
            autodiscover("a<b>@example.org", &s),
            mobileconfig("a&b@example.org", &s),
        ] {
            assert!(!doc.contains("mail<&>"), "{doc}");
            assert!(doc.contains("mail&lt;&amp;&gt;.example.org"), "{doc}");
        }
    }

    #[test]
    fn thunderbird_lists_what_is_offered() {
        let doc = thunderbird("example.org", &servers());
        assert!(doc.contains("<emailProvider id=\"example.org\">"));
        assert_eq!(doc.matches("<incomingServer type=\"imap\">").count(), 2);
        assert_eq!(doc.matches("<incomingServer type=\"pop3\">").count(), 1);
        assert_eq!(doc.matches("<outgoingServer type=\"smtp\">").count(), 2);
        assert!(doc.contains("<port>465</port>\n      <socketType>SSL</socketType>"));
        assert!(doc.contains("<port>587</port>\n      <socketType>STARTTLS</socketType>"));
    }

    #[test]
    fn profiles_are_stable_and_carry_no_password() {
        let a = mobileconfig("ann@example.org", &servers());
        assert_eq!(a, mobileconfig("ann@example.org", &servers()));
        assert_ne!(a, mobileconfig("bob@example.org", &servers()));
        assert!(!a.contains("<key>IncomingPassword</key>"));
        assert!(!a.contains("<key>OutgoingPassword</key>"));
        assert!(a.contains("<string>org.example.sealmail.account."));
        let u = uuid_from("x");
        assert_eq!(u.len(), 36);
        assert_eq!(u.get(14..15), Some("4"));
    }
}
