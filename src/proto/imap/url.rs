//! IMAP URLs (RFC 5092) naming one message or a part of one, as CATENATE
//! (RFC 4469) takes them: absolute (`imap://user@host/INBOX/;UID=5`),
//! path-absolute (`/INBOX;UIDVALIDITY=9/;UID=5/;SECTION=1.2`) or relative
//! to the selected mailbox (`;UID=5/;PARTIAL=0.100`).
//!
//! Imports the sibling lexer for the section grammar only. Invariants:
//! parsing is total over any text; percent-escapes decode to UTF-8 or the
//! URL is refused; URLAUTH forms (`;EXPIRE=`, `;URLAUTH=`) and list or
//! search URLs are refused, since nothing here grants access to another
//! user's mail.

use super::lexer::Parser;
use super::{Error, R, SectionSpec};

/// A message URL, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImapUrl {
    /// An absolute URL's server part: its user (if named) and host.
    pub server: Option<UrlServer>,
    /// The mailbox, UTF-8; `None`: the selected mailbox.
    pub mailbox: Option<String>,
    pub uidvalidity: Option<u32>,
    pub uid: u32,
    pub section: Option<SectionSpec>,
    /// `;PARTIAL=offset[.length]`.
    pub partial: Option<(u32, Option<u32>)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlServer {
    pub user: Option<String>,
    pub host: String,
}

/// Reads `url` (RFC 5092 §9's `imapurl`, or a relative reference to one).
pub fn parse_url(url: &str) -> R<ImapUrl> {
    let bad = |why| Err(Error::Invalid(why));
    let (server, path) = match url.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("imap://") => {
            let rest = url.get(7..).unwrap_or_default();
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            (Some(server(authority)?), path)
        }
        _ => (None, url),
    };
    if server.is_some() && !path.starts_with('/') {
        return bad("an IMAP URL names a message");
    }
    // Path segments: "mailbox[;UIDVALIDITY=n]", then ";UID=n",
    // ";SECTION=s", ";PARTIAL=p", each after a '/'.
    let (mailbox_part, rest) = match path.strip_prefix('/') {
        Some(p) => {
            let end = p.find("/;").unwrap_or(p.len());
            let (m, rest) = p.split_at(end);
            (Some(m), rest.strip_prefix('/').unwrap_or(rest))
        }
        None => (None, path),
    };
    let mut out = ImapUrl {
        server,
        mailbox: None,
        uidvalidity: None,
        uid: 0,
        section: None,
        partial: None,
    };
    if let Some(m) = mailbox_part {
        let (name, validity) = match find_ignore_case(m, ";UIDVALIDITY=") {
            Some(at) => {
                let (name, v) = m.split_at(at);
                (name, Some(nz_number(v.get(13..).unwrap_or_default())?))
            }
            None => (m, None),
        };
        if name.is_empty() {
            return bad("an IMAP URL names a mailbox");
        }
        out.mailbox = Some(decode(name)?);
        out.uidvalidity = validity;
    }
    let mut segments = rest.split('/');
    let uid = segments.next().unwrap_or_default();
    match strip_param(uid, "UID") {
        Some(n) => out.uid = nz_number(n)?,
        None => return bad("an IMAP URL for CATENATE names a message by ;UID="),
    }
    for seg in segments {
        if let Some(s) = strip_param(seg, "SECTION") {
            if out.section.is_some() || out.partial.is_some() {
                return bad("IMAP URL parts out of order");
            }
            out.section = Some(section(&decode(s)?)?);
        } else if let Some(p) = strip_param(seg, "PARTIAL") {
            if out.partial.is_some() {
                return bad("IMAP URL parts out of order");
            }
            let (offset, length) = match p.split_once('.') {
                Some((o, l)) => (number(o)?, Some(nz_number(l)?)),
                None => (number(p)?, None),
            };
            out.partial = Some((offset, length));
        } else {
            return bad("IMAP URL has a part CATENATE does not take");
        }
    }
    Ok(out)
}

/// `[user[;AUTH=…]@]host[:port]`
fn server(authority: &str) -> R<UrlServer> {
    let (user, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = match find_ignore_case(userinfo, ";AUTH=") {
                Some(at) => userinfo.split_at(at).0,
                None => userinfo,
            };
            ((!user.is_empty()).then(|| decode(user)).transpose()?, host)
        }
        None => (None, authority),
    };
    // `[v6]:port`, `name:port`, or either without the port.
    let (host, port) = match host.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, "")) => (addr, None),
            Some((addr, rest)) => (addr, Some(rest.strip_prefix(':').unwrap_or(rest))),
            None => return Err(Error::Invalid("an IMAP URL's IPv6 host ends with ]")),
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    if let Some(port) = port {
        number(port)?;
    }
    if host.is_empty() {
        return Err(Error::Invalid("an IMAP URL names its server"));
    }
    Ok(UrlServer {
        user,
        host: host.to_ascii_lowercase(),
    })
}

/// The value of `;NAME=value`, the name in any case.
fn strip_param<'a>(seg: &'a str, name: &str) -> Option<&'a str> {
    let rest = seg.strip_prefix(';')?;
    let (key, value) = rest.split_once('=')?;
    key.eq_ignore_ascii_case(name).then_some(value)
}

fn find_ignore_case(hay: &str, needle: &str) -> Option<usize> {
    hay.to_ascii_uppercase().find(needle)
}

fn number(s: &str) -> R<u32> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(Error::Invalid("IMAP URL number"));
    }
    s.parse().map_err(|_| Error::OutOfRange)
}

fn nz_number(s: &str) -> R<u32> {
    match number(s)? {
        0 => Err(Error::Zero),
        n => Ok(n),
    }
}

/// Undoes percent-encoding; the result must be UTF-8 (RFC 5092 §3).
fn decode(s: &str) -> R<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hex = |c: Option<u8>| c.and_then(|c| (c as char).to_digit(16));
        match (hex(bytes.next()), hex(bytes.next())) {
            (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
            _ => return Err(Error::BadString("bad percent-escape in IMAP URL")),
        }
    }
    String::from_utf8(out).map_err(|_| Error::BadString("IMAP URL is not UTF-8"))
}

/// A section in FETCH's grammar, without the brackets.
fn section(text: &str) -> R<SectionSpec> {
    let wrapped = format!("[{text}]");
    let mut p = Parser::new(wrapped.as_bytes());
    let spec = p.section()?;
    if !p.at_end() {
        return Err(Error::Invalid("bad section in IMAP URL"));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::imap::SectionText;

    fn url(
        mailbox: Option<&str>,
        uidvalidity: Option<u32>,
        uid: u32,
        section: Option<SectionSpec>,
        partial: Option<(u32, Option<u32>)>,
    ) -> ImapUrl {
        ImapUrl {
            server: None,
            mailbox: mailbox.map(str::to_string),
            uidvalidity,
            uid,
            section,
            partial,
        }
    }

    fn spec(path: &[u32], text: SectionText) -> Option<SectionSpec> {
        Some(SectionSpec {
            path: path.to_vec(),
            text,
        })
    }

    #[test]
    fn message_urls() {
        let table: Vec<(&str, ImapUrl)> = vec![
            ("/INBOX/;UID=20", url(Some("INBOX"), None, 20, None, None)),
            (
                "/INBOX;UIDVALIDITY=385759045/;UID=20",
                url(Some("INBOX"), Some(385759045), 20, None, None),
            ),
            (
                "/Drafts;uidvalidity=9/;uid=3/;section=1.2.MIME",
                url(
                    Some("Drafts"),
                    Some(9),
                    3,
                    spec(&[1, 2], SectionText::Mime),
                    None,
                ),
            ),
            (
                "/a%20b/c%C3%A9/;UID=1/;SECTION=HEADER.FIELDS%20(From%20To)/;PARTIAL=0.1024",
                url(
                    Some("a b/cé"),
                    None,
                    1,
                    spec(
                        &[],
                        SectionText::HeaderFields {
                            not: false,
                            fields: vec!["From".into(), "To".into()],
                        },
                    ),
                    Some((0, Some(1024))),
                ),
            ),
            (
                ";UID=7/;SECTION=TEXT",
                url(None, None, 7, spec(&[], SectionText::Text), None),
            ),
            (
                ";UID=7/;PARTIAL=10",
                url(None, None, 7, None, Some((10, None))),
            ),
        ];
        for (text, want) in table {
            assert_eq!(parse_url(text).unwrap(), want, "{text}");
        }
        let abs = parse_url("imap://ann%40x.org;AUTH=*@Mail.X.org:993/INBOX/;UID=2").unwrap();
        assert_eq!(
            abs.server,
            Some(UrlServer {
                user: Some("ann@x.org".into()),
                host: "mail.x.org".into()
            })
        );
        assert_eq!(abs.mailbox.as_deref(), Some("INBOX"));
        let bare = parse_url("IMAP://mail.x.org/INBOX/;UID=2").unwrap();
        assert_eq!(bare.server.unwrap().user, None);
        let v6 = parse_url("imap://[::1]:143/INBOX/;UID=2").unwrap();
        assert_eq!(v6.server.unwrap().host, "::1");
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            "/",
            "/INBOX",
            "/INBOX/",
            "/INBOX/;UID=0",
            "/INBOX/;UID=x",
            "/INBOX/;UID=99999999999",
            "/;UID=1",
            "/INBOX;UIDVALIDITY=0/;UID=1",
            "/INBOX/;UID=1/;SECTION=1.",
            "/INBOX/;UID=1/;SECTION=FOO",
            "/INBOX/;UID=1/;PARTIAL=1.0",
            "/INBOX/;UID=1/;PARTIAL=1/;SECTION=1",
            "/INBOX/;UID=1/;EXPIRE=2030-01-01T00:00:00Z",
            "/INBOX/;UID=1/;URLAUTH=anonymous:internal:0123",
            "/INBOX?SUBJECT%20x",
            "/%ZZ/;UID=1",
            "/%FF/;UID=1",
            "imap://",
            "imap://host",
            "imap://@/INBOX/;UID=1",
            "imap://host:x/INBOX/;UID=1",
            "imap://[::1/INBOX/;UID=1",
            "imap://[::1]x/INBOX/;UID=1",
            "UID=1",
        ] {
            assert!(parse_url(bad).is_err(), "{bad:?} parsed");
        }
    }
}
