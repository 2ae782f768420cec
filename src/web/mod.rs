//! The HTTP(S) listener: ACME challenges, MTA-STS policies, client
//! autoconfiguration, and Prometheus metrics on their own address.
//!
//! HTTP/1.1 is hyper 1.x (the server side, http1 only), driven by smol
//! through `smol-hyper`'s adapters: no tokio runtime runs here (hyper
//! only uses tokio's sync types). hyper was chosen over async-h1 for its
//! maintenance and because it bounds what a client sends by itself:
//! header bytes (`max_buf_size`), header count, and the time to send them
//! (`header_read_timeout`).
//!
//! Imports `config`, `net`, `proto`, `store` interface, `util`.
//! Invariants: a request's head is at most `MAX_HEAD` bytes and its body
//! at most `proto::autoconfig::MAX_REQUEST`; a connection serves at most
//! `MAX_REQUESTS` requests and lives at most `MAX_CONNECTION`; nothing
//! here reads a file named by a request; every answer is for a domain this
//! server serves, or a 404.

pub mod acme;
mod site;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;

use crate::net::listener::{Accepted, Refusals};
pub use site::Site;

/// The request line and headers may be this long (hyper's smallest
/// buffer).
pub const MAX_HEAD: usize = 8 * 1024;
/// Requests one connection may make; the last is answered with
/// `Connection: close`.
pub const MAX_REQUESTS: u32 = 100;
/// How long a client may take to send a request's head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one connection may stay open, keep-alive included.
pub const MAX_CONNECTION: Duration = Duration::from_secs(120);
/// How long a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a refused client reads.
pub static REFUSALS: Refusals = Refusals {
    protocol: "http",
    per_ip: b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    busy: b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
};

/// A response.
pub type Reply = hyper::Response<Full<Bytes>>;

/// Which listener a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    Http,
    Https,
    Metrics,
}

/// Serves one connection until it closes, its time is up, or `stop`.
pub async fn serve(
    site: Arc<Site>,
    acc: Accepted,
    tls: Option<futures_rustls::TlsAcceptor>,
    port: Port,
    stop: async_channel::Receiver<()>,
) {
    let Accepted { tcp, peer, guard } = acc;
    let _guard = guard;
    let _ = tcp.get_ref().set_nodelay(true);
    let served = async {
        match tls {
            None => http1(site, tcp, peer, port).await,
            Some(acceptor) => {
                let stream =
                    crate::net::conn::with_timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                let stream = match stream {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "HTTPS handshake failed");
                        return;
                    }
                };
                crate::net::tls::count_handshake(stream.get_ref().1);
                // An ACME server checking tls-alpn-01 only wanted the
                // certificate (RFC 8737 §3).
                if stream.get_ref().1.alpn_protocol() == Some(crate::net::tls::ACME_TLS_ALPN) {
                    return;
                }
                http1(site, stream, peer, port).await
            }
        }
    };
    let stopped = async {
        let _ = stop.recv().await;
    };
    let deadline = async {
        smol::Timer::after(MAX_CONNECTION).await;
    };
    futures_lite::future::or(served, futures_lite::future::or(stopped, deadline)).await;
}

/// HTTP/1.1 over `io` until the client or hyper closes it.
async fn http1<S>(site: Arc<Site>, io: S, peer: SocketAddr, port: Port)
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + Send + 'static,
{
    let count = Arc::new(AtomicU32::new(0));
    let service = hyper::service::service_fn(move |req| {
        let (site, count) = (site.clone(), count.clone());
        async move {
            let n = count.fetch_add(1, Ordering::Relaxed) + 1;
            let mut reply = site.answer(req, peer, port).await;
            if n >= MAX_REQUESTS {
                reply.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, Infallible>(reply)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(smol_hyper::rt::SmolTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .max_headers(64)
        .serve_connection(smol_hyper::rt::FuturesIo::new(io), service);
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "HTTP connection ended");
    }
}

/// A response with `status` and a plain-text body.
pub fn text(status: hyper::StatusCode, body: impl Into<String>) -> Reply {
    with_type(
        status,
        "text/plain; charset=utf-8",
        body.into().into_bytes(),
    )
}

/// A response with `status`, `content_type` and `body`.
pub fn with_type(status: hyper::StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
    let mut reply = hyper::Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    reply.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    reply
}
