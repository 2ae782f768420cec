//! A connection, plain or TLS, with a bounded line reader and the
//! STARTTLS/STLS upgrade: a client's connection to one of our listeners,
//! or ours to another server (`relay`).
//!
//! Imports nothing of ours. Invariants: a line never makes the buffer grow
//! past its limit (an overlong line is read to its end and discarded, and
//! reported as [`Line::TooLong`]); upgrading to TLS drops every byte the
//! client sent before the handshake (RFC 3207 §4.2, RFC 2595 §3.1), so a
//! command pipelined after STARTTLS is never executed. Under COMPRESS
//! (RFC 4978) one read inflates at most one buffer's worth, so a
//! decompression bomb meets the same line and literal bounds as plain bytes.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures_rustls::TlsAcceptor;
use futures_rustls::server::TlsStream;
use smol::Async;

/// The byte stream under a connection.
pub enum Stream {
    Plain(Async<TcpStream>),
    Tls(Box<TlsStream<Async<TcpStream>>>),
    /// Our side of a connection we opened and upgraded.
    ClientTls(Box<futures_rustls::client::TlsStream<Async<TcpStream>>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
            Stream::ClientTls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// What [`Conn::read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line without its CRLF (or bare LF).
    Complete(Vec<u8>),
    /// A line over the limit; it was read to its end and dropped.
    TooLong,
    /// The client closed the connection.
    Eof,
}

const READ_CHUNK: usize = 8192;

pub struct Conn {
    stream: Option<Stream>,
    buf: Vec<u8>,
    /// Replies not yet written: one write (and one TLS record) per flush
    /// instead of one per line, and no Nagle stalls between them.
    out: Vec<u8>,
    /// Start of unread bytes in `buf`.
    pos: usize,
    /// Reads since this task last yielded (see [`Conn::fill`]).
    reads: u32,
    /// Raw DEFLATE both ways once COMPRESS is active.
    deflate: Option<Box<Deflate>>,
    /// The start of the last reply line (`550 5.1.1`), for counting.
    last_reply: [u8; 9],
    pub peer: SocketAddr,
}

/// The two halves of a COMPRESS=DEFLATE stream (RFC 4978 §4: raw DEFLATE,
/// each batch of replies ended by a sync flush).
struct Deflate {
    inflate: Decompress,
    deflate: Compress,
    /// Compressed bytes read but not yet inflated.
    pending: Vec<u8>,
}

fn corrupt(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bad DEFLATE stream: {e}"),
    )
}

impl Deflate {
    /// Inflates what is pending into `out`, at most its spare capacity (one
    /// read's worth is reserved); returns (bytes consumed, bytes produced).
    fn inflate(&mut self, out: &mut Vec<u8>) -> io::Result<(usize, usize)> {
        let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
        out.reserve(READ_CHUNK);
        let status = self
            .inflate
            .decompress_vec(&self.pending, out, FlushDecompress::None)
            .map_err(corrupt)?;
        let consumed = (self.inflate.total_in() - in0) as usize;
        let produced = (self.inflate.total_out() - out0) as usize;
        self.pending.drain(..consumed);
        if status == Status::StreamEnd && produced == 0 {
            // The client ended its stream: nothing more will come.
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        Ok((consumed, produced))
    }

    /// Compresses `input` and ends it with a sync flush, so the client can
    /// decode everything sent so far.
    fn compress(&mut self, input: &[u8]) -> io::Result<Vec<u8>> {
        let start = self.deflate.total_in();
        let mut out = Vec::with_capacity(input.len() / 2 + 64);
        loop {
            let done = (self.deflate.total_in() - start) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(1024));
            }
            self.deflate
                .compress_vec(&input[done..], &mut out, FlushCompress::Sync)
                .map_err(corrupt)?;
            let done = (self.deflate.total_in() - start) as usize;
            // Output room left over means the flush is complete.
            if done == input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

impl Conn {
    pub fn new(stream: Stream, peer: SocketAddr) -> Conn {
        let tcp = match &stream {
            Stream::Plain(s) => s.get_ref(),
            Stream::Tls(s) => s.get_ref().0.get_ref(),
            Stream::ClientTls(s) => s.get_ref().0.get_ref(),
        };
        let _ = tcp.set_nodelay(true);
        Conn {
            stream: Some(stream),
            buf: Vec::with_capacity(READ_CHUNK),
            out: Vec::new(),
            pos: 0,
            reads: 0,
            deflate: None,
            last_reply: [b' '; 9],
            peer,
        }
    }

    /// Starts COMPRESS=DEFLATE: every byte after the reply just flushed is
    /// compressed, and every byte after the command that asked for it is
    /// inflated (including any already buffered).
    pub fn start_deflate(&mut self) {
        let pending = self.buf.split_off(self.pos);
        self.deflate = Some(Box::new(Deflate {
            inflate: Decompress::new(false),
            deflate: Compress::new(Compression::new(6), false),
            pending,
        }));
    }

    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Some(Stream::Tls(_) | Stream::ClientTls(_)))
    }

    /// `TLSv1_3/TLS13_AES_256_GCM_SHA384` for the log, `no` without TLS.
    pub fn tls_description(&self) -> String {
        let (version, suite) = match &self.stream {
            Some(Stream::Tls(t)) => {
                let c = t.get_ref().1;
                (c.protocol_version(), c.negotiated_cipher_suite())
            }
            Some(Stream::ClientTls(t)) => {
                let c = t.get_ref().1;
                (c.protocol_version(), c.negotiated_cipher_suite())
            }
            _ => return "no".into(),
        };
        match (version, suite) {
            (Some(v), Some(s)) => format!("{v:?}/{:?}", s.suite()),
            _ => "yes".into(),
        }
    }

    fn stream(&mut self) -> io::Result<&mut Stream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::other("connection is closed"))
    }

    /// Reads one line of at most `max` bytes (without the line ending).
    pub async fn read_line(&mut self, max: usize) -> io::Result<Line> {
        let mut discarding = false;
        loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                let end = self.pos + i;
                let mut line = &self.buf[self.pos..end];
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                let out = if discarding || line.len() > max {
                    Line::TooLong
                } else {
                    Line::Complete(line.to_vec())
                };
                self.pos = end + 1;
                self.compact();
                return Ok(out);
            }
            if self.buf.len() - self.pos > max + 1 {
                // Keep nothing of an overlong line but its end.
                discarding = true;
                self.buf.clear();
                self.pos = 0;
            }
            let n = self.fill().await?;
            if n == 0 {
                return Ok(Line::Eof);
            }
        }
    }

    fn compact(&mut self) {
        if self.pos > 0 && (self.pos == self.buf.len() || self.pos > READ_CHUNK) {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Bytes read but not yet consumed (DATA and BDAT read through these).
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Marks `n` buffered bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        self.compact();
    }

    /// Reads more bytes into the buffer; 0 means the client closed.
    ///
    /// A socket that always has data never makes a read wait, so a flooding
    /// client would keep its thread (and the timers racing its reads) from
    /// ever running; every 16th read yields first.
    pub async fn fill(&mut self) -> io::Result<usize> {
        self.reads += 1;
        if self.reads >= 16 {
            self.reads = 0;
            futures_lite::future::yield_now().await;
        }
        self.compact();
        if self.deflate.is_some() {
            return self.fill_inflated().await;
        }
        let old = self.buf.len();
        // The buffer is grown for the read and cut back by a guard, so a
        // read abandoned mid-way (IDLE racing a change event) leaves no
        // zeros behind.
        let mut grown = Grown {
            buf: &mut self.buf,
            keep: old,
        };
        grown.buf.resize(old + READ_CHUNK, 0);
        let n = match self.stream.as_mut() {
            Some(s) => s.read(&mut grown.buf[old..]).await,
            None => Ok(0),
        };
        grown.keep = old + *n.as_ref().unwrap_or(&0);
        n
    }

    /// [`Conn::fill`] under COMPRESS: inflates pending bytes, reading more
    /// compressed ones when they run out.
    async fn fill_inflated(&mut self) -> io::Result<usize> {
        loop {
            let Some(d) = self.deflate.as_mut() else {
                return Ok(0);
            };
            if !d.pending.is_empty() {
                let (consumed, produced) = d.inflate(&mut self.buf)?;
                if produced > 0 {
                    return Ok(produced);
                }
                if consumed > 0 && !d.pending.is_empty() {
                    continue;
                }
            }
            let Some(stream) = self.stream.as_mut() else {
                return Ok(0);
            };
            let old = d.pending.len();
            let mut grown = Grown {
                buf: &mut d.pending,
                keep: old,
            };
            grown.buf.resize(old + READ_CHUNK, 0);
            let n = stream.read(&mut grown.buf[old..]).await;
            grown.keep = old + *n.as_ref().unwrap_or(&0);
            if n? == 0 {
                return Ok(0);
            }
        }
    }

    /// True if a whole line is already buffered (a pipelined command).
    pub fn has_buffered_line(&self) -> bool {
        self.buf[self.pos..].contains(&b'\n')
    }

    /// Queues bytes; they go out at the next [`Conn::flush`], or at once
    /// past 64 KiB.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(bytes);
        if self.out.len() >= 64 * 1024 {
            self.flush().await?;
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        let mut out = std::mem::take(&mut self.out);
        if let Some(d) = self.deflate.as_mut()
            && !out.is_empty()
        {
            out = d.compress(&out)?;
        }
        let stream = self.stream()?;
        stream.write_all(&out).await?;
        stream.flush().await
    }

    /// Upgrades a plain connection to TLS; bytes the client sent before the
    /// handshake are discarded.
    pub async fn start_tls(&mut self, acceptor: &TlsAcceptor, timeout: Duration) -> io::Result<()> {
        self.buf.clear();
        self.pos = 0;
        let Some(Stream::Plain(tcp)) = self.stream.take() else {
            return Err(io::Error::other("TLS is already active"));
        };
        let tls = with_timeout(timeout, acceptor.accept(tcp)).await?;
        super::tls::count_handshake(tls.get_ref().1);
        self.stream = Some(Stream::Tls(Box::new(tls)));
        Ok(())
    }

    /// Upgrades a connection we opened to TLS (our STARTTLS), and returns
    /// the server's certificate chain.
    pub async fn connect_tls(
        &mut self,
        connector: &futures_rustls::TlsConnector,
        name: rustls::pki_types::ServerName<'static>,
        timeout: Duration,
    ) -> io::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
        self.buf.clear();
        self.pos = 0;
        let Some(Stream::Plain(tcp)) = self.stream.take() else {
            return Err(io::Error::other("TLS is already active"));
        };
        let tls = with_timeout(timeout, connector.connect(name, tcp)).await?;
        let chain = tls
            .get_ref()
            .1
            .peer_certificates()
            .unwrap_or_default()
            .to_vec();
        self.stream = Some(Stream::ClientTls(Box::new(tls)));
        Ok(chain)
    }

    pub async fn close(&mut self) {
        let _ = self.flush().await;
        if let Some(s) = self.stream.as_mut() {
            let _ = s.close().await;
        }
    }
}

/// Cuts a buffer back to `keep` bytes when dropped.
struct Grown<'a> {
    buf: &'a mut Vec<u8>,
    keep: usize,
}

impl Drop for Grown<'_> {
    fn drop(&mut self) {
        self.buf.truncate(self.keep);
    }
}

/// What a session's read loop gets next.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Line(Vec<u8>),
    /// An overlong line was read and dropped.
    TooLong,
    /// The client closed the connection, or it failed.
    Closed,
    /// Nothing arrived within the state's timeout.
    TimedOut,
    /// The server is stopping.
    Shutdown,
}

impl Conn {
    /// The next command line, bounded by `max` bytes and `timeout`, or the
    /// news that the server is stopping.
    pub async fn next_line(
        &mut self,
        max: usize,
        timeout: Duration,
        stop: &async_channel::Receiver<()>,
    ) -> Incoming {
        let read = async {
            match with_timeout(timeout, self.read_line(max)).await {
                Ok(Line::Complete(l)) => Incoming::Line(l),
                Ok(Line::TooLong) => Incoming::TooLong,
                Ok(Line::Eof) => Incoming::Closed,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => Incoming::TimedOut,
                Err(_) => Incoming::Closed,
            }
        };
        let stopped = async {
            let _ = stop.recv().await;
            Incoming::Shutdown
        };
        futures_lite::future::or(read, stopped).await
    }

    /// Queues one reply line with its CRLF.
    pub async fn reply(&mut self, line: &str) -> io::Result<()> {
        self.last_reply = [b' '; 9];
        for (d, s) in self.last_reply.iter_mut().zip(line.bytes()) {
            *d = s;
        }
        self.write_all(line.as_bytes()).await?;
        self.write_all(b"\r\n").await
    }

    /// The start of the last reply queued: its code and, where it has
    /// one, its enhanced status code (`550 5.1.1`).
    pub fn last_reply(&self) -> &str {
        std::str::from_utf8(&self.last_reply)
            .unwrap_or_default()
            .trim_end()
    }

    /// Flushes, unless a pipelined command is already waiting (its reply
    /// then goes out in the same write).
    pub async fn flush_unless_pipelined(&mut self) -> io::Result<()> {
        if self.has_buffered_line() {
            Ok(())
        } else {
            self.flush().await
        }
    }
}

/// Runs `fut`, failing with `TimedOut` after `d`.
pub async fn with_timeout<T>(
    d: Duration,
    fut: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    futures_lite::future::or(fut, async {
        smol::Timer::after(d).await;
        Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
    })
    .await
}

/// Accepts a TLS connection (implicit TLS ports).
pub async fn accept_tls(
    tcp: Async<TcpStream>,
    acceptor: &TlsAcceptor,
    timeout: Duration,
) -> io::Result<Stream> {
    let tls = with_timeout(timeout, acceptor.accept(tcp)).await?;
    super::tls::count_handshake(tls.get_ref().1);
    Ok(Stream::Tls(Box::new(tls)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair() -> (Conn, Async<TcpStream>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, peer) = l.accept().unwrap();
        (
            Conn::new(Stream::Plain(Async::new(server).unwrap()), peer),
            Async::new(client).unwrap(),
        )
    }

    #[test]
    fn lines_are_bounded_and_split() {
        smol::block_on(async {
            let (mut conn, mut client) = pair();
            let long = vec![b'x'; 1 << 20];
            client.write_all(b"one\r\ntwo\n").await.unwrap();
            client.write_all(&long).await.unwrap();
            client.write_all(b"\r\nthree\r\n").await.unwrap();
            drop(client);
            assert_eq!(
                conn.read_line(100).await.unwrap(),
                Line::Complete(b"one".to_vec())
            );
            assert!(conn.has_buffered_line());
            assert_eq!(
                conn.read_line(100).await.unwrap(),
                Line::Complete(b"two".to_vec())
            );
            assert_eq!(conn.read_line(100).await.unwrap(), Line::TooLong);
            assert!(conn.buf.capacity() < 64 * 1024, "buffer stayed small");
            assert_eq!(
                conn.read_line(100).await.unwrap(),
                Line::Complete(b"three".to_vec())
            );
            assert_eq!(conn.read_line(100).await.unwrap(), Line::Eof);
        });
    }

    #[test]
    fn deflate_round_trips_and_a_bomb_stays_bounded() {
        smol::block_on(async {
            let (mut conn, mut client) = pair();
            conn.start_deflate();
            // 64 MiB of one line compresses to about 64 KiB.
            let mut z = Compress::new(Compression::new(9), false);
            let mut wire = Vec::with_capacity(1 << 20);
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..64 {
                z.compress_vec(&chunk, &mut wire, FlushCompress::None)
                    .unwrap();
                wire.reserve(1 << 20);
            }
            z.compress_vec(b"\r\nok\r\n", &mut wire, FlushCompress::Sync)
                .unwrap();
            let writer = smol::spawn(async move {
                client.write_all(&wire).await.unwrap();
                let mut back = vec![0; 4096];
                let n = client.read(&mut back).await.unwrap();
                back.truncate(n);
                back
            });
            assert_eq!(conn.read_line(1000).await.unwrap(), Line::TooLong);
            assert!(conn.buf.capacity() < 256 * 1024, "buffer stayed small");
            assert_eq!(
                conn.read_line(1000).await.unwrap(),
                Line::Complete(b"ok".to_vec())
            );
            conn.reply("* OK compressed").await.unwrap();
            conn.flush().await.unwrap();
            let back = writer.await;
            let mut d = Decompress::new(false);
            let mut plain = Vec::with_capacity(100);
            d.decompress_vec(&back, &mut plain, FlushDecompress::Sync)
                .unwrap();
            assert_eq!(plain, b"* OK compressed\r\n");
        });
    }
}
