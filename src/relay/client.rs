//! The SMTP client: mail transactions to one server over one connection
//! (`Session`, reused for up to 100 transactions or 5 minutes), with
//! STARTTLS at the level the destination's policy asks (`TlsLevel`:
//! opportunistic unless `relay.tls_policy` or MTA-STS says more) and
//! PIPELINING, and a result per recipient.
//!
//! Imports `net::{conn, tls}` and `config::Login`. Invariants: a login is
//! sent only inside TLS; reply lines and reply counts
//! are bounded; the message is dot-stuffed and ends with `CRLF.CRLF`; a
//! recipient counts as delivered only after the server's 2xx to the end
//! of data; a transaction starts only on a connection whose server state
//! is clear (after EHLO, an answered end of data, or RSET); above
//! `TlsLevel::May` nothing is sent but EHLO and STARTTLS before TLS, and
//! a failed handshake is never retried in plaintext.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use futures_rustls::TlsConnector;
use rustls::pki_types::ServerName;
use smol::Async;

use crate::config::Login;
pub use crate::config::TlsLevel;
use crate::dns::secure::Tlsa;
use crate::net::conn::{Conn, Line, Stream, with_timeout};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 5321 §4.5.3.2 asks for minutes; a forward runs while the sending
/// MTA waits for our reply, so these are shorter.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
const DATA_END_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_REPLY_LINE: usize = 2048;
const MAX_REPLY_LINES: usize = 100;

/// Where to connect, the name the certificate should carry, and the login
/// the server wants (a smarthost's).
#[derive(Clone, Debug)]
pub struct Target {
    pub host: String,
    pub addr: SocketAddr,
    pub login: Option<std::sync::Arc<Login>>,
}

/// One transaction's envelope and content.
pub struct Envelope<'a> {
    pub from: &'a str,
    pub rcpts: &'a [String],
    pub message: &'a [u8],
}

/// What became of one recipient, or of the whole transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Delivered,
    /// A 4xx reply or a failure worth retrying; the text says which.
    Temporary(String),
    /// A 5xx reply.
    Permanent(String),
}

impl Status {
    fn from_reply(r: &Reply, when: &str) -> Status {
        match r.code {
            200..=399 => Status::Delivered,
            400..=499 => Status::Temporary(format!("{when}: {}", r.text())),
            _ => Status::Permanent(format!("{when}: {}", r.text())),
        }
    }
}

/// What one connection's TLS must be.
#[derive(Clone, Debug)]
pub struct Need {
    pub level: TlsLevel,
    /// The host's DNSSEC-authenticated TLSA records (DANE, RFC 7672): TLS
    /// is then required, and the certificate must match one usable record
    /// (the web roots do not count).
    pub tlsa: Option<std::sync::Arc<Vec<Tlsa>>>,
}

impl Need {
    /// Opportunistic TLS.
    pub fn may() -> Need {
        Need {
            level: TlsLevel::May,
            tlsa: None,
        }
    }

    fn required(&self) -> bool {
        self.tlsa.is_some()
            || matches!(
                self.level,
                TlsLevel::Encrypt | TlsLevel::Verify | TlsLevel::DaneOnly
            )
    }
}

/// Why a connection did not meet its `TlsLevel`, as RFC 8460 §4.3 names
/// the result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsFailure {
    StarttlsNotSupported,
    CertificateHostMismatch,
    CertificateExpired,
    CertificateNotTrusted,
    ValidationFailure,
}

impl TlsFailure {
    /// RFC 8460's `result-type`.
    pub fn result_type(self) -> &'static str {
        match self {
            TlsFailure::StarttlsNotSupported => "starttls-not-supported",
            TlsFailure::CertificateHostMismatch => "certificate-host-mismatch",
            TlsFailure::CertificateExpired => "certificate-expired",
            TlsFailure::CertificateNotTrusted => "certificate-not-trusted",
            TlsFailure::ValidationFailure => "validation-failure",
        }
    }

    fn of(e: &rustls::Error) -> TlsFailure {
        use rustls::CertificateError as C;
        match e {
            rustls::Error::InvalidCertificate(
                C::NotValidForName | C::NotValidForNameContext { .. },
            ) => TlsFailure::CertificateHostMismatch,
            rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
                TlsFailure::CertificateExpired
            }
            rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
                TlsFailure::CertificateNotTrusted
            }
            _ => TlsFailure::ValidationFailure,
        }
    }
}

/// A connection that could not be opened: the status for every recipient,
/// and the TLS failure when the policy was what failed.
#[derive(Debug)]
pub struct OpenFailed {
    pub status: Status,
    pub tls: Option<TlsFailure>,
}

/// How the connection was protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsUse {
    Plain,
    /// TLS with a certificate that did not verify (opportunistic).
    Unverified,
    Verified,
}

/// The result of a transaction that got as far as RCPT.
#[derive(Debug)]
pub struct Outcome {
    /// One per envelope recipient, in order.
    pub rcpts: Vec<Status>,
    pub tls: TlsUse,
}

/// What the client needs to know about TLS.
#[derive(Clone)]
pub struct ClientTls {
    pub connector: TlsConnector,
    pub verifier: std::sync::Arc<rustls::client::WebPkiServerVerifier>,
}

/// One server reply.
#[derive(Debug)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        let joined = self.lines.join(" / ");
        format!("{} {}", self.code, joined.trim())
    }
}

/// Runs one transaction against `target` on a connection of its own.
/// `Err` is a failure before any recipient was tried (connection,
/// greeting, EHLO, TLS, MAIL): it applies to every recipient, and the
/// caller may try another host.
pub async fn send(
    target: &Target,
    helo: &str,
    tls: Option<&ClientTls>,
    env: &Envelope<'_>,
) -> Result<Outcome, Status> {
    let mut session = Session::open(target, helo, tls, &Need::may())
        .await
        .map_err(|f| f.status)?;
    let result = session.send(env).await;
    session.quit().await;
    result
}

/// Transactions one connection may carry, and for how long it is reused
/// (Postfix's connection cache keeps one for 300 s).
const MAX_REUSE: usize = 100;
const MAX_REUSE_TIME: Duration = Duration::from_secs(300);

/// An open, greeted connection to one next hop that carries transactions
/// one after another (RFC 5321 §4.1.1.4: the end of data clears the
/// server's state; anything else is cleared with RSET).
pub struct Session {
    conn: Conn,
    pub target: Target,
    caps: Vec<String>,
    pub tls: TlsUse,
    /// What `TlsLevel::Verify` would have refused on this connection
    /// (for TLS reports of MTA-STS `testing` policies); `None` when the
    /// certificate verified.
    pub short_of_verify: Option<TlsFailure>,
    opened: std::time::Instant,
    sent: usize,
    /// The server holds no transaction state.
    clean: bool,
    /// An I/O error or a protocol surprise: the connection is done.
    broken: bool,
    /// The last transaction failed after the server had answered part of
    /// it: the message may have been delivered.
    in_doubt: bool,
}

impl Session {
    /// Connects, reads the greeting, says EHLO and starts TLS as `need`
    /// asks.
    ///
    /// At `TlsLevel::May` TLS is opportunistic (RFC 3207 §4.1): if the
    /// STARTTLS handshake fails, a new connection is made in plaintext, as
    /// Postfix's `may` level does. Above it, a server without STARTTLS, a
    /// failed handshake or (at `Verify`) a certificate not valid for the
    /// host fails the connection with the reason.
    pub async fn open(
        target: &Target,
        helo: &str,
        tls: Option<&ClientTls>,
        need: &Need,
    ) -> Result<Session, OpenFailed> {
        match Session::connect(target, helo, tls, need).await {
            Err(Failed::Handshake(why)) if !need.required() => {
                tracing::info!(host = %target.host, "STARTTLS failed; retrying without TLS");
                tracing::debug!(%why, "handshake failure");
                Session::connect(target, helo, None, need)
                    .await
                    .map_err(Failed::into_open)
            }
            other => other.map_err(Failed::into_open),
        }
    }

    async fn connect(
        target: &Target,
        helo: &str,
        tls: Option<&ClientTls>,
        need: &Need,
    ) -> Result<Session, Failed> {
        let tcp = with_timeout(CONNECT_TIMEOUT, Async::<TcpStream>::connect(target.addr))
            .await
            .map_err(|e| Status::Temporary(format!("connecting to {}: {e}", target.addr)))?;
        let _ = tcp.get_ref().set_nodelay(true);
        let mut conn = Conn::new(Stream::Plain(tcp), target.addr);
        match greet(&mut conn, target, helo, tls, need).await {
            Ok((caps, tls, short)) => Ok(Session {
                short_of_verify: short,
                conn,
                target: target.clone(),
                caps,
                tls,
                opened: std::time::Instant::now(),
                sent: 0,
                clean: true,
                broken: false,
                in_doubt: false,
            }),
            Err(e) => {
                let _ = conn.write_all(b"QUIT\r\n").await;
                conn.close().await;
                Err(e)
            }
        }
    }

    /// Whether another transaction may go over this connection.
    pub fn reusable(&self) -> bool {
        !self.broken && self.sent < MAX_REUSE && self.opened.elapsed() < MAX_REUSE_TIME
    }

    /// Whether the last transaction broke off after the server had read
    /// part of it (see `send`).
    pub fn in_doubt(&self) -> bool {
        self.in_doubt
    }

    /// Runs one transaction. `Err` applies to every recipient (see the
    /// free `send`). Unless `in_doubt`, nothing was delivered: a reused
    /// connection the server had closed fails this way, and the caller may
    /// open a new one.
    pub async fn send(&mut self, env: &Envelope<'_>) -> Result<Outcome, Status> {
        self.sent += 1;
        self.in_doubt = false;
        if !self.clean
            && let Err(e) = self.reset().await
        {
            self.broken = true;
            return Err(Status::Temporary(format!("{}: {e}", self.target.addr)));
        }
        self.clean = false;
        let result = transaction(&mut self.conn, &self.target, &self.caps, self.tls, env).await;
        match result {
            Ok((outcome, clean)) => {
                self.clean = clean;
                Ok(outcome)
            }
            Err(Failed::Status(st)) => {
                // MAIL refused: the server is fine, its state is not.
                Err(st)
            }
            Err(Failed::Io { error, data_sent }) => {
                self.broken = true;
                self.in_doubt = data_sent;
                Err(Status::Temporary(format!("{}: {error}", self.target.addr)))
            }
            Err(f @ (Failed::Handshake(_) | Failed::Tls(..))) => {
                self.broken = true;
                Err(f.into_status())
            }
        }
    }

    async fn reset(&mut self) -> io::Result<()> {
        command(&mut self.conn, "RSET").await?;
        let r = read_reply(&mut self.conn, REPLY_TIMEOUT).await?;
        if r.code == 250 {
            self.clean = true;
            Ok(())
        } else {
            Err(io::Error::other(format!("RSET refused: {}", r.text())))
        }
    }

    /// Says QUIT (a courtesy; its failure changes nothing) and closes.
    pub async fn quit(mut self) {
        if !self.broken {
            let _ = self.conn.write_all(b"QUIT\r\n").await;
        }
        self.conn.close().await;
    }
}

/// Why a transaction ended early.
enum Failed {
    /// The STARTTLS handshake failed (the connection is unusable).
    Handshake(String),
    /// TLS fell short of the level the policy asks.
    Tls(TlsFailure, String),
    Status(Status),
    /// The connection failed; `data_sent` once the message had started
    /// to go out (before that, nothing can have been delivered).
    Io {
        error: io::Error,
        data_sent: bool,
    },
}

impl Failed {
    fn into_status(self) -> Status {
        match self {
            Failed::Handshake(why) => Status::Temporary(format!("TLS handshake: {why}")),
            Failed::Tls(_, why) => Status::Temporary(format!("TLS policy not met: {why}")),
            Failed::Status(s) => s,
            Failed::Io { error, .. } => Status::Temporary(error.to_string()),
        }
    }
}

impl Failed {
    fn into_open(self) -> OpenFailed {
        let tls = match &self {
            Failed::Tls(f, _) => Some(*f),
            _ => None,
        };
        OpenFailed {
            status: self.into_status(),
            tls,
        }
    }
}

impl From<Status> for Failed {
    fn from(s: Status) -> Failed {
        Failed::Status(s)
    }
}

/// Greeting, EHLO, and STARTTLS with a second EHLO when offered: the
/// capabilities and how TLS went.
async fn greet(
    conn: &mut Conn,
    target: &Target,
    helo: &str,
    tls: Option<&ClientTls>,
    need: &Need,
) -> Result<(Vec<String>, TlsUse, Option<TlsFailure>), Failed> {
    let net = |e: io::Error| Status::Temporary(format!("{}: {e}", target.addr));
    let greeting = read_reply(conn, REPLY_TIMEOUT).await.map_err(net)?;
    if greeting.code != 220 {
        return Err(Failed::Status(Status::from_reply(&greeting, "greeting")));
    }
    let mut caps = ehlo(conn, helo).await.map_err(net)??;
    let mut tls_use = TlsUse::Plain;
    let mut short = Some(TlsFailure::StarttlsNotSupported);
    let no_tls = |why: String| {
        Failed::Tls(
            TlsFailure::StarttlsNotSupported,
            format!("{} ({}) {why}", target.host, target.addr.ip()),
        )
    };
    match tls {
        Some(tls) if caps.iter().any(|c| c == "STARTTLS") => {
            command(conn, "STARTTLS").await.map_err(net)?;
            let r = read_reply(conn, REPLY_TIMEOUT).await.map_err(net)?;
            if r.code == 220 {
                let name = server_name(&target.host, target.addr);
                let chain = conn
                    .connect_tls(&tls.connector, name.clone(), REPLY_TIMEOUT)
                    .await
                    .map_err(|e| Failed::Handshake(format!("{}: {e}", target.addr)))?;
                let webpki = crate::net::tls::verify_chain(&tls.verifier, &chain, &name);
                match (&need.tlsa, webpki) {
                    (Some(records), _) => {
                        // What DANE asks was met (with no usable record,
                        // TLS alone).
                        tls_use = if dane(records, &chain, &name, target)? {
                            TlsUse::Verified
                        } else {
                            TlsUse::Unverified
                        };
                        short = None;
                    }
                    (None, Ok(())) => {
                        tls_use = TlsUse::Verified;
                        short = None;
                    }
                    (None, Err(e)) if need.level == TlsLevel::Verify => {
                        return Err(Failed::Tls(
                            TlsFailure::of(&e),
                            format!(
                                "the certificate of {} ({}) is not valid for it: {e}",
                                target.host,
                                target.addr.ip()
                            ),
                        ));
                    }
                    (None, Err(e)) => {
                        tls_use = TlsUse::Unverified;
                        short = Some(TlsFailure::of(&e));
                    }
                }
                caps = ehlo(conn, helo).await.map_err(net)??;
            } else if need.required() {
                return Err(no_tls(format!("refused STARTTLS: {}", r.text())));
            }
        }
        _ if need.required() => return Err(no_tls("does not offer STARTTLS".into())),
        _ => {}
    }
    if let Some(login) = &target.login {
        log_in(conn, target, login, tls_use).await?;
    }
    Ok((caps, tls_use, short))
}

/// DANE (RFC 7672 §3): whether the server's chain matches one of the
/// host's usable TLSA records, a DANE-EE (3) record its own certificate, a
/// DANE-TA (2) record an issuer the chain then leads to for the host's
/// name; `Ok(false)` when no record is usable (PKIX usages 0 and 1 are not,
/// §3.1.3): TLS without authentication. A chain matching none fails.
fn dane(
    records: &[Tlsa],
    chain: &[rustls::pki_types::CertificateDer<'static>],
    name: &ServerName<'static>,
    target: &Target,
) -> Result<bool, Failed> {
    use crate::proto::x509::tlsa_matches;
    let usable = records
        .iter()
        .filter(|r| r.usage == 2 || r.usage == 3)
        .count();
    if usable == 0 {
        return Ok(false);
    }
    let matches = |cert: &[u8], r: &Tlsa| tlsa_matches(cert, r.selector, r.matching, &r.data);
    let ee = chain.first().is_some_and(|leaf| {
        records
            .iter()
            .any(|r| r.usage == 3 && matches(leaf.as_ref(), r))
    });
    let ta = || {
        chain.iter().enumerate().skip(1).any(|(i, c)| {
            records
                .iter()
                .any(|r| r.usage == 2 && matches(c.as_ref(), r))
                && crate::net::tls::verify_to_anchor(chain, i, name).is_ok()
        })
    };
    if ee || ta() {
        return Ok(true);
    }
    Err(Failed::Tls(
        TlsFailure::ValidationFailure,
        format!(
            "the certificate of {} ({}) matches none of its {usable} DNSSEC-authenticated TLSA records (DANE)",
            target.host,
            target.addr.ip()
        ),
    ))
}

/// AUTH PLAIN (RFC 4954) with the target's login, only inside TLS. A
/// refusal is temporary, as Postfix defers on it: the mail waits while the
/// operator fixes the password.
async fn log_in(
    conn: &mut Conn,
    target: &Target,
    login: &Login,
    tls_use: TlsUse,
) -> Result<(), Failed> {
    use base64::Engine as _;
    if tls_use == TlsUse::Plain {
        return Err(Failed::Status(Status::Temporary(format!(
            "{} did not offer TLS; the login is not sent without it",
            target.host
        ))));
    }
    let net = |e: io::Error| Status::Temporary(format!("{}: {e}", target.addr));
    let token = base64::engine::general_purpose::STANDARD
        .encode(format!("\0{}\0{}", login.user, login.password));
    command(conn, &format!("AUTH PLAIN {token}"))
        .await
        .map_err(net)?;
    let r = read_reply(conn, REPLY_TIMEOUT).await.map_err(net)?;
    if r.code == 235 {
        Ok(())
    } else {
        Err(Failed::Status(Status::Temporary(format!(
            "login at {} refused: {}",
            target.host,
            r.text()
        ))))
    }
}

/// One transaction on a greeted connection; the outcome and whether the
/// server's state is clear afterwards (it is after an answered end of
/// data).
async fn transaction(
    conn: &mut Conn,
    target: &Target,
    caps: &[String],
    tls_use: TlsUse,
    env: &Envelope<'_>,
) -> Result<(Outcome, bool), Failed> {
    let mut data_sent = false;
    let has = |c: &str| caps.iter().any(|x| x == c);
    let utf8 = !env.from.is_ascii() || env.rcpts.iter().any(|r| !r.is_ascii());
    if utf8 && !has("SMTPUTF8") {
        return Err(Failed::Status(Status::Permanent(format!(
            "{} does not support SMTPUTF8, which the addresses need",
            target.host
        ))));
    }
    let mut mail = format!("MAIL FROM:<{}>", env.from);
    if has("SIZE") {
        mail.push_str(&format!(" SIZE={}", env.message.len()));
    }
    if has("8BITMIME") && !env.message.is_ascii() {
        mail.push_str(" BODY=8BITMIME");
    }
    if utf8 {
        mail.push_str(" SMTPUTF8");
    }
    let mut lines = vec![mail];
    lines.extend(env.rcpts.iter().map(|r| format!("RCPT TO:<{r}>")));
    lines.push("DATA".into());
    // With PIPELINING (RFC 2920) the whole envelope goes in one write;
    // without, one command per round trip. Replies are read in order.
    let pipelined = has("PIPELINING");
    let mut replies: Vec<Reply> = Vec::with_capacity(lines.len());
    macro_rules! io {
        ($e:expr) => {
            $e.await.map_err(|error| Failed::Io { error, data_sent })?
        };
    }
    if pipelined {
        let mut group = String::with_capacity(lines.iter().map(|l| l.len() + 2).sum());
        for l in &lines {
            group.push_str(l);
            group.push_str("\r\n");
        }
        io!(conn.write_all(group.as_bytes()));
        io!(conn.flush());
        for _ in &lines {
            replies.push(io!(read_reply(conn, REPLY_TIMEOUT)));
        }
    } else {
        for (i, l) in lines.iter().enumerate() {
            let is_data = i == lines.len() - 1;
            if is_data && !replies[1..].iter().any(|r: &Reply| r.code < 400) {
                break;
            }
            io!(command(conn, l));
            let r = io!(read_reply(conn, REPLY_TIMEOUT));
            let mail_failed = i == 0 && r.code >= 400;
            replies.push(r);
            if mail_failed {
                break;
            }
        }
    }
    let mail_reply = &replies[0];
    if mail_reply.code >= 400 {
        return Err(Failed::Status(Status::from_reply(mail_reply, "MAIL FROM")));
    }
    let mut rcpts: Vec<Status> = (0..env.rcpts.len())
        .map(|i| match replies.get(1 + i) {
            Some(r) => Status::from_reply(r, "RCPT TO"),
            None => Status::Temporary("no reply to RCPT TO".into()),
        })
        .collect();
    let done = |rcpts, clean| {
        Ok((
            Outcome {
                rcpts,
                tls: tls_use,
            },
            clean,
        ))
    };
    if !rcpts.contains(&Status::Delivered) {
        // Nothing to send: DATA was not sent, or (pipelined) refused as
        // RFC 2920 §3.1 says.
        return done(rcpts, false);
    }
    let Some(data_reply) = replies.get(1 + env.rcpts.len()) else {
        return Err(Failed::Status(Status::Temporary(
            "DATA was not answered".into(),
        )));
    };
    if data_reply.code != 354 {
        let st = Status::from_reply(data_reply, "DATA");
        mark_accepted(&mut rcpts, &st);
        return done(rcpts, false);
    }
    data_sent = true;
    io!(write_stuffed(conn, env.message));
    io!(conn.flush());
    let end = io!(read_reply(conn, DATA_END_TIMEOUT));
    let st = Status::from_reply(&end, "end of data");
    if st != Status::Delivered {
        mark_accepted(&mut rcpts, &st);
    }
    done(rcpts, true)
}

/// Gives every recipient the server accepted the transaction's final word.
fn mark_accepted(rcpts: &mut [Status], st: &Status) {
    for r in rcpts.iter_mut().filter(|r| **r == Status::Delivered) {
        *r = st.clone();
    }
}

fn server_name(host: &str, addr: SocketAddr) -> ServerName<'static> {
    ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::IpAddress(addr.ip().into()))
}

/// EHLO, falling back to HELO; the capability keywords, upper-cased.
async fn ehlo(conn: &mut Conn, helo: &str) -> io::Result<Result<Vec<String>, Status>> {
    command(conn, &format!("EHLO {helo}")).await?;
    let r = read_reply(conn, REPLY_TIMEOUT).await?;
    if r.code == 250 {
        let caps = r
            .lines
            .iter()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_ascii_uppercase)
            .collect();
        return Ok(Ok(caps));
    }
    command(conn, &format!("HELO {helo}")).await?;
    let r = read_reply(conn, REPLY_TIMEOUT).await?;
    if r.code == 250 {
        Ok(Ok(Vec::new()))
    } else {
        Ok(Err(Status::from_reply(&r, "HELO")))
    }
}

async fn command(conn: &mut Conn, line: &str) -> io::Result<()> {
    conn.reply(line).await?;
    conn.flush().await
}

/// Reads one (possibly multi-line) reply.
async fn read_reply(conn: &mut Conn, timeout: Duration) -> io::Result<Reply> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
    let mut lines = Vec::new();
    loop {
        let line = match with_timeout(timeout, conn.read_line(MAX_REPLY_LINE)).await? {
            Line::Complete(l) => l,
            Line::TooLong => return Err(bad("reply line too long")),
            Line::Eof => return Err(bad("connection closed")),
        };
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
            return Err(bad("malformed reply"));
        }
        let code: u16 = std::str::from_utf8(&line[..3])
            .ok()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| bad("malformed reply"))?;
        let more = line.get(3) == Some(&b'-');
        lines.push(String::from_utf8_lossy(line.get(4..).unwrap_or_default()).into_owned());
        if !more {
            return Ok(Reply { code, lines });
        }
        if lines.len() >= MAX_REPLY_LINES {
            return Err(bad("reply has too many lines"));
        }
    }
}

/// Writes `message` dot-stuffed (RFC 5321 §4.5.2), ending with
/// `CRLF.CRLF`; bare LFs become CRLF.
async fn write_stuffed(conn: &mut Conn, message: &[u8]) -> io::Result<()> {
    conn.write_all(&dot_stuff(message)).await
}

fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 5);
    let mut at_line_start = true;
    let mut prev = 0u8;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        at_line_start = b == b'\n';
        prev = b;
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff(b".a\r\nb\r\n..c"), b"..a\r\nb\r\n...c\r\n.\r\n");
        assert_eq!(dot_stuff(b"x\n.\n"), b"x\r\n..\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
    }
}
