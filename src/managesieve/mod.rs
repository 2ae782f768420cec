//! The ManageSieve server (RFC 5804, port 4190): owners upload, check,
//! list, activate, fetch, rename and delete their Sieve scripts.
//!
//! Imports `net`, `proto::{managesieve, sasl}`, `sieve`, `store` (its
//! interface) and `util`. Invariants: AUTHENTICATE (PLAIN only) is
//! refused without TLS (but from loopback in development mode) and goes
//! through the login throttle the mail protocols share; a script is stored
//! only once it compiles with the extensions the MX runs; before login a
//! command may hold at most `MAX_LINE` and a small literal in memory,
//! after it one script's worth; ten bad commands end the connection.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_rustls::TlsAcceptor;

use crate::net::conn::{Conn, Stream, with_timeout};
use crate::net::limits::{AuthThrottle, Refused};
use crate::net::listener::{Accepted, Refusals};
use crate::proto::managesieve::{self as proto, Command, literal, quote};
use crate::sieve::{EXTENSIONS, Interpreter};
use crate::store::{ScriptRefusal, SieveOp, SieveReply, Store, StoreError};

/// What every ManageSieve connection shares.
pub struct ManageSieve {
    pub store: Store,
    pub tls: TlsAcceptor,
    pub throttle: Arc<AuthThrottle>,
    pub interpreter: Arc<Interpreter>,
    /// Development mode: plaintext logins allowed from loopback.
    pub dev: bool,
}

/// The last lines of a client the accept loop refuses.
pub const REFUSALS: Refusals = Refusals {
    protocol: "managesieve",
    per_ip: b"BYE (TRYLATER) \"Too many connections from your address\"\r\n",
    busy: b"BYE (TRYLATER) \"Server busy; try again later\"\r\n",
};

const AUTH_TIMEOUT: Duration = Duration::from_secs(60);
const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const TLS_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_BAD_COMMANDS: u32 = 10;
/// What a command may hold before login: its text and a SASL response.
const MAX_BEFORE_LOGIN: usize = proto::MAX_LINE + 8 * 1024;

/// Where a connection is.
struct Session {
    /// The authenticated address.
    owner: Option<String>,
    bad: u32,
    /// Closed when the server shuts down.
    stop: async_channel::Receiver<()>,
}

/// What a read brought.
enum Read<T> {
    Got(T),
    /// Refused, read whole: answer NO and go on.
    Bad(String),
    /// The stream cannot be read on: BYE with why.
    Fatal(String),
    /// Closed, timed out or shut down.
    Gone,
}

/// Serves one connection until LOGOUT, EOF, timeout or shutdown.
pub async fn serve(ctx: Arc<ManageSieve>, acc: Accepted, stop: async_channel::Receiver<()>) {
    let _guard = acc.guard;
    let mut conn = Conn::new(Stream::Plain(acc.tcp), acc.peer);
    let mut s = Session {
        owner: None,
        bad: 0,
        stop,
    };
    if capabilities(&ctx, &mut conn, &s).await.is_err() || conn.flush().await.is_err() {
        return;
    }
    loop {
        let (timeout, cap) = match s.owner {
            None => (AUTH_TIMEOUT, MAX_BEFORE_LOGIN),
            Some(_) => (IDLE_TIMEOUT, proto::MAX_LINE + proto::MAX_LITERAL),
        };
        let result = match read(&mut conn, cap, timeout, &s.stop.clone(), proto::command).await {
            Read::Got(cmd) => step(&ctx, &mut conn, &mut s, cmd).await,
            Read::Bad(why) => {
                s.bad += 1;
                conn.write_all(format!("NO {}\r\n", quote(&why)).as_bytes())
                    .await
                    .map(|()| true)
            }
            Read::Fatal(why) => {
                let _ = conn
                    .write_all(format!("BYE {}\r\n", quote(&why)).as_bytes())
                    .await;
                break;
            }
            Read::Gone => {
                let _ = conn.write_all(b"BYE \"Closing\"\r\n").await;
                break;
            }
        };
        match result {
            Ok(true) if s.bad < MAX_BAD_COMMANDS => {}
            Ok(true) => {
                let _ = conn
                    .write_all(b"BYE \"Too many bad commands; closing connection\"\r\n")
                    .await;
                break;
            }
            Ok(false) | Err(_) => break,
        }
        if conn.flush().await.is_err() {
            break;
        }
    }
    conn.close().await;
}

/// Reads until `parse` finds a whole item at the start of the buffer, at
/// most `cap` bytes buffered.
async fn read<T>(
    conn: &mut Conn,
    cap: usize,
    timeout: Duration,
    stop: &async_channel::Receiver<()>,
    parse: fn(&[u8]) -> proto::Parsed<T>,
) -> Read<T> {
    loop {
        match parse(conn.buffered()) {
            Ok(Some((item, used))) => {
                conn.consume(used);
                return Read::Got(item);
            }
            Err((e, used)) if !e.fatal => {
                conn.consume(used);
                return Read::Bad(e.message);
            }
            Err((e, _)) => return Read::Fatal(e.message),
            Ok(None) if conn.buffered().len() > cap => {
                return Read::Fatal("command too long".into());
            }
            Ok(None) => {}
        }
        let filled = futures_lite::future::or(
            async { Some(with_timeout(timeout, conn.fill()).await) },
            async {
                let _ = stop.recv().await;
                None
            },
        )
        .await;
        match filled {
            Some(Ok(n)) if n > 0 => {}
            _ => return Read::Gone,
        }
    }
}

/// `proto::sasl_response` in the shape `read` takes.
fn sasl_line(buf: &[u8]) -> proto::Parsed<Option<String>> {
    proto::sasl_response(buf).map_err(|e| (proto::Error { fatal: true, ..e }, 0))
}

/// The capability lines and `OK` (greeting, CAPABILITY, after STARTTLS).
async fn capabilities(ctx: &ManageSieve, conn: &mut Conn, s: &Session) -> io::Result<()> {
    let mut out = String::from("\"IMPLEMENTATION\" \"sealmail\"\r\n");
    out.push_str(&format!("\"SIEVE\" {}\r\n", quote(&EXTENSIONS.join(" "))));
    if auth_allowed(ctx, conn) && s.owner.is_none() {
        out.push_str("\"SASL\" \"PLAIN\"\r\n");
    }
    if !conn.is_tls() {
        out.push_str("\"STARTTLS\"\r\n");
    }
    out.push_str("\"MAXREDIRECTS\" \"4\"\r\n\"VERSION\" \"1.0\"\r\n");
    if let Some(owner) = &s.owner {
        out.push_str(&format!("\"OWNER\" {}\r\n", quote(owner)));
    }
    out.push_str("OK \"sealmail ManageSieve ready\"\r\n");
    conn.write_all(out.as_bytes()).await
}

fn auth_allowed(ctx: &ManageSieve, conn: &Conn) -> bool {
    conn.is_tls() || (ctx.dev && conn.peer.ip().is_loopback())
}

/// Runs one command; false ends the connection.
async fn step(
    ctx: &ManageSieve,
    conn: &mut Conn,
    s: &mut Session,
    cmd: Command,
) -> io::Result<bool> {
    let owner = s.owner.clone();
    match (cmd, owner) {
        (Command::Capability, _) => capabilities(ctx, conn, s).await?,
        (Command::Logout, _) => {
            conn.write_all(b"OK \"Logout completed\"\r\n").await?;
            return Ok(false);
        }
        (Command::Noop(Some(tag)), _) => {
            let reply = format!("OK (TAG {}) \"Done\"\r\n", quote(&tag));
            conn.write_all(reply.as_bytes()).await?;
        }
        (Command::Noop(None), _) => conn.write_all(b"OK \"Done\"\r\n").await?,
        (Command::StartTls, _) if conn.is_tls() => no(conn, s, "TLS is already active").await?,
        (Command::StartTls, None) => {
            conn.write_all(b"OK \"Begin TLS negotiation now\"\r\n")
                .await?;
            conn.flush().await?;
            conn.start_tls(&ctx.tls, TLS_TIMEOUT).await?;
            capabilities(ctx, conn, s).await?;
        }
        (Command::Authenticate { .. }, Some(_)) => no(conn, s, "Already authenticated").await?,
        (Command::Authenticate { .. }, None) if !auth_allowed(ctx, conn) => {
            s.bad += 1;
            conn.write_all(b"NO (ENCRYPT-NEEDED) \"Use STARTTLS first\"\r\n")
                .await?;
        }
        (Command::Authenticate { mechanism, initial }, None) => {
            if mechanism != "PLAIN" {
                return no(conn, s, "Only PLAIN is offered").await.map(|()| true);
            }
            let response = match initial {
                Some(r) => r,
                None => {
                    conn.write_all(b"\"\"\r\n").await?;
                    conn.flush().await?;
                    let stop = s.stop.clone();
                    match read(conn, MAX_BEFORE_LOGIN, AUTH_TIMEOUT, &stop, sasl_line).await {
                        Read::Got(Some(r)) => r,
                        Read::Got(None) => {
                            return no(conn, s, "Authentication cancelled").await.map(|()| true);
                        }
                        _ => return Ok(false),
                    }
                }
            };
            s.owner = login(ctx, conn, &response).await?;
        }
        (Command::Unauthenticate, Some(_)) => {
            s.owner = None;
            conn.write_all(b"OK \"Unauthenticated\"\r\n").await?;
        }
        (_, None) => no(conn, s, "Authenticate first").await?,
        (cmd, Some(owner)) => scripts(ctx, conn, s, &owner, cmd).await?,
    }
    Ok(true)
}

async fn no(conn: &mut Conn, s: &mut Session, why: &str) -> io::Result<()> {
    s.bad += 1;
    conn.write_all(format!("NO {}\r\n", quote(why)).as_bytes())
        .await
}

/// Checks a PLAIN response's password through the throttle; the address
/// on success.
async fn login(ctx: &ManageSieve, conn: &mut Conn, response: &str) -> io::Result<Option<String>> {
    use crate::net::audit::{self, Login};
    let Ok((name, pw)) = crate::proto::sasl::plain(response) else {
        conn.write_all(b"NO \"Malformed PLAIN response\"\r\n")
            .await?;
        return Ok(None);
    };
    let (peer, ip) = (conn.peer, conn.peer.ip());
    let attempt = match ctx.throttle.begin(ip, Some(&name)).await {
        Ok(a) => a,
        Err(refused) => {
            audit::login("managesieve", peer, &name, "PLAIN", refused.into());
            let line: &[u8] = match refused {
                Refused::AddressBanned => b"NO \"Too many failed logins; try again later\"\r\n",
                Refused::AccountBusy => {
                    b"NO (TRYLATER) \"Too many logins to this account right now\"\r\n"
                }
            };
            conn.write_all(line).await?;
            return Ok(None);
        }
    };
    match ctx.store.authenticate(&name, &pw).await {
        Ok(account) => {
            attempt.succeeded();
            audit::login("managesieve", peer, &name, "PLAIN", Login::Ok);
            conn.write_all(b"OK \"Logged in\"\r\n").await?;
            Ok(Some(account.address))
        }
        Err(StoreError::AuthFailed) => {
            audit::login("managesieve", peer, &name, "PLAIN", Login::Failed);
            smol::Timer::after(attempt.failed()).await;
            conn.write_all(b"NO \"Authentication failed\"\r\n").await?;
            Ok(None)
        }
        Err(e) => {
            audit::login("managesieve", peer, &name, "PLAIN", Login::Unavailable);
            tracing::warn!(error = %e, "ManageSieve login could not be checked");
            conn.write_all(b"NO (TRYLATER) \"Cannot check the password now\"\r\n")
                .await?;
            Ok(None)
        }
    }
}

/// The script commands, for the authenticated `owner`.
async fn scripts(
    ctx: &ManageSieve,
    conn: &mut Conn,
    s: &mut Session,
    owner: &str,
    cmd: Command,
) -> io::Result<()> {
    let op = match cmd {
        Command::CheckScript(script) => {
            return match compile(ctx, &script) {
                Ok(_) => conn.write_all(b"OK \"The script compiles\"\r\n").await,
                Err(why) => no(conn, s, &why).await,
            };
        }
        Command::PutScript { name, script } => {
            if script.len() > crate::store::SIEVE_MAX_SCRIPT_BYTES {
                s.bad += 1;
                return conn
                    .write_all(b"NO (QUOTA/MAXSIZE) \"The script is too large\"\r\n")
                    .await;
            }
            match compile(ctx, &script) {
                Ok(text) => SieveOp::Put { name, script: text },
                Err(why) => return no(conn, s, &why).await,
            }
        }
        Command::ListScripts => SieveOp::List,
        Command::GetScript(name) => SieveOp::Get { name },
        Command::SetActive(name) => SieveOp::Activate {
            name: (!name.is_empty()).then_some(name),
        },
        Command::DeleteScript(name) => SieveOp::Delete { name },
        Command::RenameScript { from, to } => SieveOp::Rename { from, to },
        Command::HaveSpace { name, size } => SieveOp::HaveSpace { name, size },
        _ => return no(conn, s, "Not valid now").await,
    };
    match ctx.store.sieve(owner, op).await {
        Ok(SieveReply::Done) => conn.write_all(b"OK \"Done\"\r\n").await,
        Ok(SieveReply::Space(true)) => conn.write_all(b"OK \"There is room\"\r\n").await,
        Ok(SieveReply::Space(false)) => {
            conn.write_all(b"NO (QUOTA) \"Not within the quota (16 scripts of 64 KiB)\"\r\n")
                .await
        }
        Ok(SieveReply::List(list)) => {
            let mut out = String::new();
            for (name, active) in list {
                out.push_str(&quote(&name));
                out.push_str(if active { " ACTIVE\r\n" } else { "\r\n" });
            }
            out.push_str("OK \"Listed\"\r\n");
            conn.write_all(out.as_bytes()).await
        }
        Ok(SieveReply::Script(text)) => {
            let mut out = literal(text.as_bytes());
            out.extend_from_slice(b"\r\nOK \"Here it is\"\r\n");
            conn.write_all(&out).await
        }
        Err(StoreError::Script(kind, why)) => {
            s.bad += 1;
            let code = match kind {
                ScriptRefusal::NoSuchScript => "(NONEXISTENT) ",
                ScriptRefusal::Active => "(ACTIVE) ",
                ScriptRefusal::Exists => "(ALREADYEXISTS) ",
                ScriptRefusal::TooMany => "(QUOTA/MAXSCRIPTS) ",
                ScriptRefusal::TooLarge => "(QUOTA/MAXSIZE) ",
                ScriptRefusal::BadName => "",
            };
            conn.write_all(format!("NO {code}{}\r\n", quote(&why)).as_bytes())
                .await
        }
        Err(e) => {
            tracing::warn!(error = %e, "ManageSieve: the store could not answer");
            conn.write_all(b"NO (TRYLATER) \"Try again later\"\r\n")
                .await
        }
    }
}

/// A script's text once it compiles; else the interpreter's error (line
/// and reason).
fn compile(ctx: &ManageSieve, script: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(script).map_err(|_| "A script is UTF-8 text".to_string())?;
    ctx.interpreter.compile(script)?;
    Ok(text.to_string())
}
