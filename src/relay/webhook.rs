//! Webhooks: an inbound message, parsed into JSON, POSTed to a URL with
//! an HMAC-SHA256 signature, retried a few times before the caller gives
//! up (and answers the sending MTA with 451, so it retries later).
//!
//! Imports `net::{conn, tls}`, `store::mime` (the parser) and `util`.
//! Invariants: the JSON is built from the message in memory and never
//! written to disk; a 2xx is success, a 4xx other than 408/429 is a
//! permanent refusal, anything else (including no answer within
//! `TIMEOUT`) is temporary.
//!
//! The request carries `Sealmail-Signature: t=<unix time>,v1=<hex>`, where
//! `<hex>` is HMAC-SHA256 over `<unix time>.<body>` with the alias'
//! webhook secret (`sealmail alias forward` prints it), so receivers can
//! check origin and freshness.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use base64::Engine;
use serde::Serialize;
use smol::Async;

use super::client::Status;
use crate::dns::Dns;
use crate::net::conn::{Conn, Line, Stream, with_timeout};
use crate::store::mime::{self, Leaf, Part};

const TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts within one SMTP transaction, and the pauses between them.
const BACKOFF: [Duration; 2] = [Duration::from_millis(500), Duration::from_secs(2)];

/// A webhook URL, split.
#[derive(Debug, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    pub fn parse(s: &str) -> Option<Url> {
        let (https, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else {
            (false, s.strip_prefix("http://")?)
        };
        let (authority, path) = match rest.find(['/', '?']).and_then(|i| rest.split_at_checked(i)) {
            Some(split) => split,
            None => (rest, "/"),
        };
        if authority.contains('@') || authority.is_empty() {
            return None;
        }
        let default = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6.split_once(']')?;
            let port = match p.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if p.is_empty() => default,
                None => return None,
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().ok()?),
                None => (authority.to_string(), default),
            }
        };
        if host.is_empty() || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return None;
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Some(Url {
            https,
            host,
            port,
            path,
        })
    }
}

/// The JSON body.
#[derive(Serialize)]
struct Payload<'a> {
    /// The envelope: MAIL FROM and the alias that had the webhook.
    envelope: EnvelopeJson<'a>,
    received_at: String,
    headers: HeadersJson,
    /// Every header field, decoded, in order.
    raw_headers: Vec<(String, String)>,
    text: Option<String>,
    html: Option<String>,
    attachments: Vec<Attachment>,
    size: usize,
}

#[derive(Serialize)]
struct EnvelopeJson<'a> {
    from: &'a str,
    to: &'a str,
}

#[derive(Serialize, Default)]
struct HeadersJson {
    from: Option<String>,
    to: Option<String>,
    cc: Option<String>,
    subject: Option<String>,
    date: Option<String>,
    message_id: Option<String>,
}

#[derive(Serialize)]
struct Attachment {
    filename: Option<String>,
    content_type: String,
    size: usize,
    content_base64: String,
}

/// Builds the JSON for `message` (as received, trace headers included).
pub fn payload(
    message: &[u8],
    from: &str,
    to: &str,
    limits: mime::Limits,
) -> Result<Vec<u8>, String> {
    let parsed = mime::parse(message, limits).map_err(|e| e.to_string())?;
    let (headers, _) = mailparse::parse_headers(message).map_err(|e| e.to_string())?;
    let get = |name: &str| {
        headers
            .iter()
            .find(|h| h.get_key().eq_ignore_ascii_case(name))
            .map(|h| h.get_value())
    };
    let mut body = Payload {
        envelope: EnvelopeJson { from, to },
        received_at: crate::util::iso8601_utc(crate::util::now_unix()),
        headers: HeadersJson {
            from: get("From"),
            to: get("To"),
            cc: get("Cc"),
            subject: get("Subject"),
            date: get("Date"),
            message_id: get("Message-ID"),
        },
        raw_headers: headers
            .iter()
            .map(|h| (h.get_key(), h.get_value()))
            .collect(),
        text: None,
        html: None,
        attachments: Vec::new(),
        size: message.len(),
    };
    collect(message, &parsed.root, &mut body);
    serde_json::to_vec(&body).map_err(|e| e.to_string())
}

fn collect(buf: &[u8], part: &Part, out: &mut Payload<'_>) {
    if !part.children.is_empty() {
        for c in &part.children {
            collect(buf, c, out);
        }
        return;
    }
    let filename = part
        .disposition
        .as_ref()
        .and_then(|(_, p)| p.iter().find(|(k, _)| k == "filename"))
        .or_else(|| part.params.iter().find(|(k, _)| k == "name"))
        .map(|(_, v)| v.clone());
    let attached = part
        .disposition
        .as_ref()
        .is_some_and(|(kind, _)| kind == "attachment");
    let Some(leaf) = mime::decode_leaf(buf, part) else {
        return;
    };
    match leaf {
        Leaf::Text(t) if !attached && filename.is_none() && part.subtype == "plain" => {
            append(&mut out.text, &t)
        }
        Leaf::Text(t) if !attached && filename.is_none() && part.subtype == "html" => {
            append(&mut out.html, &t)
        }
        leaf => {
            let bytes = match leaf {
                Leaf::Text(t) => t.into_bytes(),
                Leaf::Bytes(b) => b,
            };
            out.attachments.push(Attachment {
                filename,
                content_type: format!("{}/{}", part.mime_type, part.subtype),
                size: bytes.len(),
                content_base64: base64::engine::general_purpose::STANDARD.encode(&bytes),
            });
        }
    }
}

fn append(slot: &mut Option<String>, text: &str) {
    match slot {
        Some(s) => {
            s.push('\n');
            s.push_str(text);
        }
        None => *slot = Some(text.to_string()),
    }
}

/// The signature header's value for `body` sent at `t`.
pub fn signature(secret: &[u8], t: u64, body: &[u8]) -> String {
    let t_text = t.to_string();
    let mac = crate::util::hmac_sha256(secret, &[t_text.as_bytes(), b".", body]);
    format!("t={t},v1={}", hex::encode(mac))
}

/// POSTs `body` to `url`, retrying temporary failures a few times.
pub async fn post(
    dns: &Dns,
    tls: &futures_rustls::TlsConnector,
    url: &str,
    secret: &[u8],
    body: &[u8],
) -> Status {
    let Some(u) = Url::parse(url) else {
        return Status::Permanent(format!("not an http(s) URL: {url}"));
    };
    let mut last = Status::Temporary("not tried".into());
    for attempt in 0..=BACKOFF.len() {
        if attempt > 0 {
            smol::Timer::after(BACKOFF[attempt - 1]).await;
        }
        last = match with_timeout(TIMEOUT, once(dns, tls, &u, secret, body)).await {
            Ok(code) => classify(code),
            Err(e) => Status::Temporary(format!("{}:{}: {e}", u.host, u.port)),
        };
        if !matches!(last, Status::Temporary(_)) {
            break;
        }
    }
    last
}

fn classify(code: u16) -> Status {
    match code {
        200..=299 => Status::Delivered,
        408 | 429 => Status::Temporary(format!("HTTP {code}")),
        400..=499 => Status::Permanent(format!("HTTP {code}")),
        _ => Status::Temporary(format!("HTTP {code}")),
    }
}

async fn once(
    dns: &Dns,
    tls: &futures_rustls::TlsConnector,
    u: &Url,
    secret: &[u8],
    body: &[u8],
) -> std::io::Result<u16> {
    let ip = dns
        .addresses(&u.host, 1)
        .await
        .ok()
        .and_then(|a| a.first().copied())
        .ok_or_else(|| std::io::Error::other(format!("cannot resolve {}", u.host)))?;
    let addr = SocketAddr::new(ip, u.port);
    let tcp = Async::<TcpStream>::connect(addr).await?;
    let mut conn = Conn::new(Stream::Plain(tcp), addr);
    if u.https {
        let name = rustls::pki_types::ServerName::try_from(u.host.clone())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        conn.connect_tls(tls, name, TIMEOUT).await?;
    }
    let t = crate::util::now_unix().max(0) as u64;
    let host = if u.host.contains(':') {
        format!("[{}]", u.host)
    } else {
        u.host.clone()
    };
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {host}:{}\r\nUser-Agent: sealmail\r\nContent-Type: application/json\r\nContent-Length: {}\r\nSealmail-Signature: {}\r\nConnection: close\r\n\r\n",
        u.path,
        u.port,
        body.len(),
        signature(secret, t, body)
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body).await?;
    conn.flush().await?;
    let status = match conn.read_line(8192).await? {
        Line::Complete(l) => l,
        _ => return Err(std::io::Error::other("no HTTP status line")),
    };
    conn.close().await;
    // "HTTP/1.1 200 OK"
    let code = std::str::from_utf8(&status)
        .ok()
        .filter(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| std::io::Error::other("malformed HTTP status line"))?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("https://hooks.example.net/in?x=1").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path.as_str()),
            (true, "hooks.example.net", 443, "/in?x=1")
        );
        let u = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((u.port, u.path.as_str()), (8080, "/"));
        let u = Url::parse("http://[::1]:81/h").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 81));
        assert!(Url::parse("ftp://x/").is_none());
        assert!(Url::parse("http://user@x/").is_none());
        assert!(Url::parse("http://x/a b").is_none());
        assert!(Url::parse("http://x:99999/").is_none());
    }

    #[test]
    fn signature_is_hmac_over_time_and_body() {
        // RFC 4231 test case 2 shape: key "Jefe".
        let s = signature(b"Jefe", 1, b"what do ya want for nothing?");
        assert!(s.starts_with("t=1,v1="));
        assert_eq!(s.len(), "t=1,v1=".len() + 64);
        assert_ne!(s, signature(b"Jefe", 2, b"what do ya want for nothing?"));
    }

    #[test]
    fn payload_has_text_html_and_attachments() {
        let msg = b"From: A <a@x.test>\r\nTo: b@y.test\r\nSubject: =?UTF-8?Q?h=C3=A9?=\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--b\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n";
        let limits = mime::Limits {
            max_depth: 32,
            max_parts: 100,
        };
        let json: serde_json::Value =
            serde_json::from_slice(&payload(msg, "a@x.test", "b@y.test", limits).unwrap()).unwrap();
        assert_eq!(json["headers"]["subject"], "hé");
        assert_eq!(json["text"], "hello");
        assert_eq!(json["html"], "<p>hi</p>");
        assert_eq!(json["attachments"][0]["filename"], "x.pdf");
        assert_eq!(json["attachments"][0]["size"], 3);
        assert_eq!(json["attachments"][0]["content_base64"], "AAEC");
        assert_eq!(json["envelope"]["to"], "b@y.test");
    }
}
