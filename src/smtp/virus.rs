//! Virus scanning at the MX, before `250`: the message is streamed from
//! memory to ClamAV's clamd (`INSTREAM`, over its Unix or TCP socket) and
//! refused with 550 5.7.1 when a signature matches. When clamd cannot be
//! reached, is too slow or cannot scan, the message is deferred (451
//! 4.7.1) unless `mx.clamd.when_unreachable = "deliver"`, which delivers it
//! with a header saying it was not scanned.
//!
//! Imports `config` (`Clamd`), `net::conn` (deadlines) and `proto::clamd`.
//! Invariants: the message only goes to clamd's socket, never to a file
//! of ours or the log (clamd's own `TemporaryDirectory` is clamd's
//! business); the whole scan, connecting included, is bounded by
//! `Clamd::timeout`; clamd's reply is read up to `MAX_REPLY` bytes.

use std::io;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;

use async_io::Async;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::{Clamd, ClamdSocket};
use crate::net::conn::with_timeout;
use crate::proto::clamd::{self, Reply};

/// The header a message delivered unscanned carries.
pub const UNSCANNED_HEADER: &str = "X-Sealmail-Virus-Scan";

/// What the MX does with a message after the scan.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Clean,
    /// Refuse it: the signature's name.
    Infected(String),
    /// clamd could not say: why (for the log and the header).
    Unscanned(String),
}

/// Scans `message` with clamd.
pub async fn scan(clamd: &Clamd, message: &[u8]) -> Outcome {
    let reply = with_timeout(clamd.timeout, async {
        match &clamd.socket {
            ClamdSocket::Unix(path) => {
                exchange(Async::<UnixStream>::connect(path).await?, message).await
            }
            ClamdSocket::Tcp(addr) => {
                exchange(Async::<TcpStream>::connect(*addr).await?, message).await
            }
        }
    })
    .await;
    match reply {
        Ok(Reply::Clean) => Outcome::Clean,
        Ok(Reply::Found(name)) => Outcome::Infected(name),
        Ok(Reply::Error(why)) => Outcome::Unscanned(format!("clamd: {why}")),
        Err(e) => Outcome::Unscanned(format!("clamd unreachable: {e}")),
    }
}

/// Sends the stream and reads the reply. clamd may answer (a size limit
/// reached) and close before the whole message is sent: then its reply
/// is read all the same.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    message: &[u8],
) -> io::Result<Reply> {
    let sent = send(&mut s, message).await;
    let mut reply = Vec::with_capacity(64);
    let mut buf = [0u8; 512];
    while reply.len() < clamd::MAX_REPLY && !reply.contains(&0) {
        match s.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if reply.is_empty() => return Err(sent.err().unwrap_or(e)),
            Err(_) => break,
        }
    }
    if reply.is_empty() {
        sent?;
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "clamd closed without a reply",
        ));
    }
    Ok(clamd::reply(&reply))
}

async fn send<S: AsyncWrite + Unpin>(s: &mut S, message: &[u8]) -> io::Result<()> {
    s.write_all(clamd::INSTREAM).await?;
    for chunk in message.chunks(clamd::CHUNK) {
        s.write_all(&clamd::chunk_header(chunk.len())).await?;
        s.write_all(chunk).await?;
    }
    s.write_all(&clamd::chunk_header(0)).await?;
    s.flush().await
}

/// The header a message delivered unscanned gets, with the reason.
pub fn unscanned_header(why: &str) -> String {
    super::content::reason_header(UNSCANNED_HEADER, "not scanned", why)
}
