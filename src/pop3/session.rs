//! One POP3 connection: the AUTHORIZATION and TRANSACTION states and the
//! command dispatch.
//!
//! Imports `net`, `proto::pop3`, `store` and the sibling `maildrop`.
//! Invariants: every reply is one `+OK`/`-ERR` line (RFC 3206 codes where
//! they apply) or a dot-terminated multi-line response; replies are flushed
//! when no pipelined command is waiting.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::Pop3;
use super::maildrop::{Maildrop, stuffed};
use crate::net::conn::{Conn, Incoming, Line, Stream, accept_tls};
use crate::net::limits::Refused;
use crate::net::listener::Accepted;
use crate::proto::pop3::{self as proto, Command};
use crate::store::StoreError;

/// Before login: a short leash. After: RFC 1939 §3's ten minutes.
const AUTH_TIMEOUT: Duration = Duration::from_secs(60);
const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const TLS_TIMEOUT: Duration = Duration::from_secs(20);

enum State {
    Authorization { user: Option<String> },
    Transaction(Box<Maildrop>),
}

/// What a command asks of the loop.
enum Next {
    Continue,
    /// A bad command (unknown, malformed, or not valid in this state) was
    /// answered; the session counts these.
    Bad,
    Quit,
}

/// Bad commands a connection may send before it is closed (as Dovecot's
/// POP3 server).
const MAX_BAD_COMMANDS: u32 = 10;

/// Serves one connection until QUIT, EOF, timeout, or shutdown.
pub async fn serve(
    ctx: Arc<Pop3>,
    acc: Accepted,
    implicit_tls: bool,
    stop: async_channel::Receiver<()>,
) {
    let _guard = acc.guard;
    let stream = if implicit_tls {
        match accept_tls(acc.tcp, &ctx.tls, TLS_TIMEOUT).await {
            Ok(s) => s,
            Err(_) => return,
        }
    } else {
        Stream::Plain(acc.tcp)
    };
    let mut conn = Conn::new(stream, acc.peer);
    let mut state = State::Authorization { user: None };
    let mut bad = 0;
    let greeted = conn.write_all(b"+OK sealmail POP3 ready\r\n").await;
    if greeted.is_err() || conn.flush().await.is_err() {
        return;
    }
    loop {
        let timeout = match state {
            State::Authorization { .. } => AUTH_TIMEOUT,
            State::Transaction(_) => IDLE_TIMEOUT,
        };
        let next = match conn.next_line(proto::MAX_LINE, timeout, &stop).await {
            Incoming::Line(l) => step(&ctx, &mut conn, &mut state, &l).await,
            Incoming::TooLong => conn.reply("-ERR line too long").await.map(|()| Next::Bad),
            Incoming::Shutdown => {
                let _ = conn
                    .reply("-ERR [SYS/TEMP] server shutting down; nothing was deleted")
                    .await;
                break;
            }
            Incoming::TimedOut | Incoming::Closed => break,
        };
        match next {
            Ok(Next::Continue) => {}
            Ok(Next::Bad) => {
                bad += 1;
                if bad >= MAX_BAD_COMMANDS {
                    let _ = conn
                        .reply("-ERR too many bad commands; closing connection")
                        .await;
                    break;
                }
            }
            Ok(Next::Quit) | Err(_) => break,
        }
        if conn.flush_unless_pipelined().await.is_err() {
            break;
        }
    }
    let _ = conn.flush().await;
    conn.close().await;
}

/// Runs one command line.
async fn step(ctx: &Pop3, conn: &mut Conn, state: &mut State, line: &[u8]) -> io::Result<Next> {
    let cmd = match proto::parse(line) {
        Ok(c) => c,
        Err(e) => {
            conn.reply(&format!("-ERR {e}")).await?;
            return Ok(Next::Bad);
        }
    };
    if !valid_in(&cmd, state) {
        conn.reply(match state {
            State::Authorization { .. } => "-ERR command not valid before login",
            State::Transaction(_) => "-ERR command not valid after login",
        })
        .await?;
        return Ok(Next::Bad);
    }
    match (cmd, &mut *state) {
        (Command::Capa, _) => capa(ctx, conn, state).await,
        (Command::Noop, State::Transaction(_)) => conn.reply("+OK").await,
        (Command::Quit, State::Authorization { .. }) => {
            conn.reply("+OK sealmail POP3 signing off").await?;
            return Ok(Next::Quit);
        }
        (Command::Quit, State::Transaction(_)) => {
            let State::Transaction(drop_) =
                std::mem::replace(state, State::Authorization { user: None })
            else {
                return Ok(Next::Quit);
            };
            match drop_.update().await {
                Ok(n) => {
                    conn.reply(&format!(
                        "+OK sealmail POP3 signing off ({n} messages deleted)"
                    ))
                    .await?
                }
                Err(e) => {
                    conn.reply(&format!(
                        "-ERR [SYS/TEMP] some deleted messages were not removed: {e}"
                    ))
                    .await?
                }
            }
            return Ok(Next::Quit);
        }
        (cmd, State::Authorization { user }) => {
            if let Some(maildrop) = authorization(ctx, conn, user, cmd).await? {
                *state = State::Transaction(Box::new(maildrop));
            }
            Ok(())
        }
        (cmd, State::Transaction(m)) => transaction(conn, m, cmd).await,
    }?;
    Ok(Next::Continue)
}

/// Whether `cmd` belongs to `state` (RFC 1939 §3): login commands before
/// login, maildrop commands after it; CAPA and QUIT in both.
fn valid_in(cmd: &Command, state: &State) -> bool {
    let login = matches!(
        cmd,
        Command::Stls | Command::User(_) | Command::Pass(_) | Command::Auth(_)
    );
    match state {
        State::Authorization { .. } => login || matches!(cmd, Command::Capa | Command::Quit),
        State::Transaction(_) => !login,
    }
}

async fn capa(ctx: &Pop3, conn: &mut Conn, state: &State) -> io::Result<()> {
    let mut lines = vec![
        "+OK capability list follows",
        "TOP",
        "UIDL",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
        "EXPIRE NEVER",
    ];
    if let State::Authorization { .. } = state {
        if auth_allowed(ctx, conn) {
            lines.push("USER");
            lines.push("SASL PLAIN");
        }
        if !conn.is_tls() {
            lines.push("STLS");
        }
    }
    lines.push("IMPLEMENTATION sealmail");
    lines.push(".");
    conn.write_all(format!("{}\r\n", lines.join("\r\n")).as_bytes())
        .await
}

fn auth_allowed(ctx: &Pop3, conn: &Conn) -> bool {
    conn.is_tls() || (ctx.dev && conn.peer.ip().is_loopback())
}

const NEED_TLS: &str =
    "-ERR [AUTH] Plaintext authentication is disallowed without TLS; use STLS first";

/// AUTHORIZATION state commands; returns the maildrop on a login.
async fn authorization(
    ctx: &Pop3,
    conn: &mut Conn,
    user: &mut Option<String>,
    cmd: Command,
) -> io::Result<Option<Maildrop>> {
    match cmd {
        Command::Stls if conn.is_tls() => conn.reply("-ERR TLS is already active").await?,
        Command::Stls => {
            conn.reply("+OK begin TLS negotiation").await?;
            conn.flush().await?;
            conn.start_tls(&ctx.tls, TLS_TIMEOUT).await?;
            *user = None;
        }
        Command::User(_) | Command::Pass(_) | Command::Auth(Some(_))
            if !auth_allowed(ctx, conn) =>
        {
            conn.reply(NEED_TLS).await?;
        }
        Command::User(name) => {
            *user = Some(name);
            conn.reply("+OK send PASS").await?;
        }
        Command::Pass(pw) => match user.take() {
            Some(name) => return login(ctx, conn, &name, &pw, "USER").await,
            None => conn.reply("-ERR send USER first").await?,
        },
        Command::Auth(None) => conn.write_all(b"+OK\r\nPLAIN\r\n.\r\n").await?,
        Command::Auth(Some((mech, initial))) => {
            if mech != "PLAIN" {
                conn.reply("-ERR unsupported SASL mechanism; PLAIN is offered")
                    .await?;
                return Ok(None);
            }
            let response = match initial {
                Some(r) if r == "=" => String::new(),
                Some(r) => r,
                None => {
                    conn.write_all(b"+ \r\n").await?;
                    conn.flush().await?;
                    match conn.read_line(proto::MAX_SASL_LINE).await? {
                        Line::Complete(l) => String::from_utf8_lossy(&l).into_owned(),
                        Line::TooLong => {
                            return conn.reply("-ERR line too long").await.map(|()| None);
                        }
                        Line::Eof => return Err(io::ErrorKind::UnexpectedEof.into()),
                    }
                }
            };
            if response.trim() == "*" {
                conn.reply("-ERR authentication cancelled").await?;
                return Ok(None);
            }
            match crate::proto::sasl::plain(&response) {
                Ok((name, pw)) => return login(ctx, conn, &name, &pw, "PLAIN").await,
                Err(_) => conn.reply("-ERR [AUTH] malformed PLAIN response").await?,
            }
        }
        _ => conn.reply("-ERR command not valid before login").await?,
    }
    Ok(None)
}

/// Checks the password, unlocks the mailbox (importing sealed mail) and
/// takes the snapshot.
async fn login(
    ctx: &Pop3,
    conn: &mut Conn,
    name: &str,
    pw: &str,
    mechanism: &str,
) -> io::Result<Option<Maildrop>> {
    use crate::net::audit::{self, Login};
    let (peer, ip) = (conn.peer, conn.peer.ip());
    let attempt = match ctx.throttle.begin(ip, Some(name)).await {
        Ok(a) => a,
        Err(refused) => {
            audit::login("pop3", peer, name, mechanism, refused.into());
            conn.reply(match refused {
                Refused::AddressBanned => "-ERR [AUTH] too many failed logins; try again later",
                Refused::AccountBusy => {
                    "-ERR [SYS/TEMP] too many logins to this account right now; try again shortly"
                }
            })
            .await?;
            return Ok(None);
        }
    };
    let session = match ctx.store.unlock(name, pw).await {
        Ok(s) => s,
        Err(StoreError::AuthFailed) => {
            audit::login("pop3", peer, name, mechanism, Login::Failed);
            smol::Timer::after(attempt.failed()).await;
            conn.reply("-ERR [AUTH] authentication failed").await?;
            return Ok(None);
        }
        Err(e) => {
            audit::login("pop3", peer, name, mechanism, Login::Unavailable);
            tracing::warn!(error = %e, "POP3 login could not open a mailbox");
            conn.reply("-ERR [SYS/TEMP] the mailbox cannot be opened now; try again later")
                .await?;
            return Ok(None);
        }
    };
    attempt.succeeded();
    audit::login("pop3", peer, name, mechanism, Login::Ok);
    match Maildrop::load(session).await {
        Ok(m) => {
            let (n, size) = m.stat();
            conn.reply(&format!("+OK maildrop has {n} messages ({size} octets)"))
                .await?;
            Ok(Some(m))
        }
        Err(e) => {
            tracing::warn!(error = %e, "POP3 maildrop could not be read");
            conn.reply("-ERR [SYS/TEMP] the mailbox cannot be read now; try again later")
                .await?;
            Ok(None)
        }
    }
}

const NO_SUCH: &str = "-ERR no such message";

/// TRANSACTION state commands.
async fn transaction(conn: &mut Conn, m: &mut Maildrop, cmd: Command) -> io::Result<()> {
    match cmd {
        Command::Stat => {
            let (n, size) = m.stat();
            conn.reply(&format!("+OK {n} {size}")).await
        }
        Command::List(Some(n)) => match m.get(n) {
            Some(e) => conn.reply(&format!("+OK {n} {}", e.size)).await,
            None => conn.reply(NO_SUCH).await,
        },
        Command::Uidl(Some(n)) => match m.get(n) {
            Some(e) => conn.reply(&format!("+OK {n} {}", m.uidl(e))).await,
            None => conn.reply(NO_SUCH).await,
        },
        Command::List(None) | Command::Uidl(None) => {
            let uidl = matches!(cmd, Command::Uidl(None));
            let mut out = String::from("+OK\r\n");
            for (i, e) in m.entries.iter().enumerate().filter(|(_, e)| !e.deleted) {
                let value = if uidl { m.uidl(e) } else { e.size.to_string() };
                out.push_str(&format!("{} {value}\r\n", i + 1));
            }
            out.push_str(".\r\n");
            conn.write_all(out.as_bytes()).await
        }
        Command::Retr(n) => send(conn, m, n, None).await,
        Command::Top(n, lines) => send(conn, m, n, Some(lines)).await,
        Command::Dele(n) => match m.get_mut(n) {
            Some(e) => {
                e.deleted = true;
                conn.reply(&format!("+OK message {n} deleted")).await
            }
            None => conn.reply(NO_SUCH).await,
        },
        Command::Rset => {
            m.reset();
            let (n, size) = m.stat();
            conn.reply(&format!("+OK maildrop has {n} messages ({size} octets)"))
                .await
        }
        Command::Noop => conn.reply("+OK").await,
        _ => conn.reply("-ERR command not valid after login").await,
    }
}

/// RETR (all lines) or TOP (header and `lines` body lines).
async fn send(conn: &mut Conn, m: &mut Maildrop, n: u32, lines: Option<u64>) -> io::Result<()> {
    let Some(uid) = m.get(n).map(|e| e.uid) else {
        return conn.reply(NO_SUCH).await;
    };
    match m.message(uid).await {
        Ok(Some(raw)) => {
            let head = match lines {
                None => format!("+OK {} octets\r\n", raw.len()),
                Some(_) => "+OK top of message follows\r\n".to_string(),
            };
            conn.write_all(head.as_bytes()).await?;
            conn.write_all(&stuffed(&raw, lines)).await?;
            if lines.is_none()
                && let Some(e) = m.get_mut(n)
            {
                e.retrieved = true;
            }
            Ok(())
        }
        Ok(None) => {
            conn.reply("-ERR message was removed by another session")
                .await
        }
        Err(e) => conn.reply(&format!("-ERR [SYS/TEMP] {e}")).await,
    }
}
