//! A small HTTP/1.1 client for what the server asks of web services:
//! MTA-STS policies (GET over HTTPS, the certificate verified) and a spam
//! filter's verdict (POST to rspamd on loopback). One request a
//! connection (`Connection: close`), the response read to its end within
//! a size limit.
//!
//! Imports `dns`, `net::conn` and `proto::http`. Invariants: at most
//! `limit` bytes of a response are read; the caller bounds the whole
//! exchange in time; redirects are not followed (the caller sees the 3xx);
//! a body framed only by the end of a TLS connection that ended without
//! close_notify is refused as possibly cut.

use std::io;
use std::net::{SocketAddr, TcpStream};

use smol::Async;

use crate::dns::Dns;
use crate::net::conn::{Conn, Stream};
use crate::proto::http::{self, Response};

/// One request.
pub struct Request<'a> {
    pub method: &'a str,
    /// The `Host` header, and the name the certificate must carry.
    pub host: &'a str,
    pub path: &'a str,
    /// Extra header fields.
    pub headers: &'a [(&'a str, String)],
    pub body: &'a [u8],
}

/// GETs `https://host:port/path`, verifying the certificate for `host`.
pub async fn get(
    dns: &Dns,
    tls: &futures_rustls::TlsConnector,
    (host, port): (&str, u16),
    path: &str,
    limit: usize,
) -> io::Result<Response> {
    let ip = dns
        .addresses(host, 1)
        .await
        .ok()
        .and_then(|a| a.first().copied())
        .ok_or_else(|| io::Error::other(format!("cannot resolve {host}")))?;
    let req = Request {
        method: "GET",
        host,
        path,
        headers: &[("Accept", "text/plain".into())],
        body: &[],
    };
    send(SocketAddr::new(ip, port), Some(tls), &req, limit).await
}

/// Sends `req` to `addr` (over TLS when `tls` is given) and reads the
/// response.
pub async fn send(
    addr: SocketAddr,
    tls: Option<&futures_rustls::TlsConnector>,
    req: &Request<'_>,
    limit: usize,
) -> io::Result<Response> {
    let tcp = Async::<TcpStream>::connect(addr).await?;
    let mut conn = Conn::new(Stream::Plain(tcp), addr);
    if let Some(tls) = tls {
        let name = rustls::pki_types::ServerName::try_from(req.host.to_string())
            .map_err(|e| io::Error::other(e.to_string()))?;
        conn.connect_tls(tls, name, std::time::Duration::from_secs(60))
            .await
            .map_err(|e| io::Error::other(format!("TLS with {}: {e}", req.host)))?;
    }
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sealmail\r\nConnection: close\r\n",
        req.method, req.path, req.host
    );
    for (name, value) in req.headers {
        // A value is ours or the client's address and names: never a
        // line break.
        let value: String = value.chars().filter(|c| !c.is_control()).collect();
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !req.body.is_empty() || req.method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(req.body).await?;
    conn.flush().await?;
    // Read to the end: the request asked the server to close.
    let mut cut = false;
    loop {
        match conn.fill().await {
            Ok(0) => break,
            Ok(_) if conn.buffered().len() > limit => {
                return Err(io::Error::other(format!(
                    "the response from {} is over {limit} bytes",
                    req.host
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                cut = true;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    let response = http::response(conn.buffered()).map_err(io::Error::other)?;
    conn.close().await;
    if cut && !response.framed {
        return Err(io::Error::other(format!(
            "{} closed the connection without ending TLS: the response may be cut",
            req.host
        )));
    }
    Ok(response)
}
