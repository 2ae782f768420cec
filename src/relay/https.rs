//! A small HTTPS client for what mail delivery fetches (MTA-STS
//! policies): one GET, the server's certificate verified, the response
//! read to the end of the connection within a size and time limit.
//!
//! Imports `dns`, `net::conn` and `proto::http`. Invariants: at most
//! `limit` bytes of a response are read; the whole exchange, connecting
//! included, is bounded by the caller's deadline; redirects are not
//! followed (the caller sees the 3xx).

use std::io;
use std::net::{SocketAddr, TcpStream};

use smol::Async;

use crate::dns::Dns;
use crate::net::conn::{Conn, Stream};
use crate::proto::http::{self, Response};

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
    let addr = SocketAddr::new(ip, port);
    let tcp = Async::<TcpStream>::connect(addr).await?;
    let mut conn = Conn::new(Stream::Plain(tcp), addr);
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::other(e.to_string()))?;
    conn.connect_tls(tls, name, std::time::Duration::from_secs(60))
        .await
        .map_err(|e| io::Error::other(format!("TLS with {host}: {e}")))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: sealmail\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).await?;
    conn.flush().await?;
    // Read to the end: the request asked the server to close. A server
    // that closes without TLS's close_notify ends the read too; a body
    // framed only by the close is then refused as possibly cut.
    let mut cut = false;
    loop {
        match conn.fill().await {
            Ok(0) => break,
            Ok(_) if conn.buffered().len() > limit => {
                return Err(io::Error::other(format!(
                    "the response from {host} is over {limit} bytes"
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
            "{host} closed the connection without ending TLS: the response may be cut"
        )));
    }
    Ok(response)
}
