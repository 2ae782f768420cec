//! One IMAP connection: the not-authenticated, authenticated and selected
//! states, and every command's work (SEARCH, SORT and THREAD in `search`).
//!
//! Imports `net`, `proto::{imap, sasl, mutf7}`, the `store` interface and
//! the siblings. Invariants: every command
//! gets exactly one tagged reply; untagged updates from other sessions go out
//! before it, and never an EXPUNGE during FETCH, STORE or SEARCH by sequence
//! number; after 20 protocol errors the connection is closed.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::fetch;
use super::reader::{Read, read_command};
use super::render;
use super::view::{Moment, Out, View, flag_line, uid_set_text, vanished_line};
use super::{CAPABILITIES, Imap};

mod search;
use crate::net::conn::{Conn, Line, Stream, accept_tls, with_timeout};
use crate::net::listener::Accepted;
use crate::proto::imap::{
    self as proto, Command, FlagList, Kind, ListOptions, StatusItem, StoreOp,
};
use crate::proto::mutf7::mutf7_decode;
use crate::store::{
    AppendRequest, Change, FlagOp, Flags, FolderInfo, Session, StoreError, StoreFlags, UidSet,
};

/// Before login: a short leash. After: at least RFC 3501 §5.4's 30 minutes.
const AUTH_TIMEOUT: Duration = Duration::from_secs(60);
const IDLE_TIMEOUT: Duration = Duration::from_secs(31 * 60);
const TLS_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_ERRORS: u32 = 20;

struct User {
    session: Session,
    events: async_channel::Receiver<Change>,
    view: Option<View>,
    condstore: bool,
    qresync: bool,
    utf8: bool,
    /// ENABLE IMAP4rev2 (RFC 9051): ESEARCH answers, no RECENT, a LIST
    /// line on SELECT, UTF-8 mailbox names.
    rev2: bool,
}

enum State {
    NotAuthenticated,
    Authenticated(Box<User>),
}

struct Conversation<'a> {
    ctx: &'a Imap,
    conn: Conn,
    state: State,
    errors: u32,
}

/// What the read loop woke up for.
enum Got {
    Read(Read),
    TimedOut,
    Shutdown,
}

/// What a command asks of the loop.
enum Next {
    Continue,
    Close,
}

/// Serves one connection until LOGOUT, EOF, timeout, or shutdown.
pub async fn serve(
    ctx: Arc<Imap>,
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
    let mut c = Conversation {
        ctx: &ctx,
        conn: Conn::new(stream, acc.peer),
        state: State::NotAuthenticated,
        errors: 0,
    };
    let greeting = format!("* OK [CAPABILITY {}] sealmail IMAP ready", c.capabilities());
    if c.conn.reply(&greeting).await.is_err() || c.conn.flush().await.is_err() {
        return;
    }
    loop {
        let timeout = match c.state {
            State::NotAuthenticated => AUTH_TIMEOUT,
            State::Authenticated(_) => IDLE_TIMEOUT,
        };
        let read = async {
            match with_timeout(timeout, read_command(&mut c.conn, ctx.max_message_bytes)).await {
                Ok(r) => Got::Read(r),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => Got::TimedOut,
                Err(_) => Got::Read(Read::Closed),
            }
        };
        let stopped = async {
            let _ = stop.recv().await;
            Got::Shutdown
        };
        let next = match futures_lite::future::or(read, stopped).await {
            Got::Read(Read::Command(bytes)) => c.command(&bytes, &stop).await,
            Got::Read(Read::TooLong(tag)) => c.bad(tag.as_deref(), "command line too long").await,
            Got::Read(Read::LiteralRefused {
                tag,
                non_sync,
                limit,
            }) => {
                if non_sync {
                    let _ = c
                        .conn
                        .reply(&format!("* BYE [TOOBIG] literal larger than {limit} bytes"))
                        .await;
                    Ok(Next::Close)
                } else {
                    let tag = tag.unwrap_or_else(|| "*".into());
                    c.conn
                        .reply(&format!(
                            "{tag} NO [TOOBIG] literal larger than {limit} bytes"
                        ))
                        .await
                        .map(|()| Next::Continue)
                }
            }
            Got::Read(Read::Closed) => break,
            Got::Shutdown => {
                let _ = c
                    .conn
                    .reply("* BYE [UNAVAILABLE] server shutting down")
                    .await;
                break;
            }
            Got::TimedOut => {
                let _ = c.conn.reply("* BYE autologout; idle for too long").await;
                break;
            }
        };
        match next {
            Ok(Next::Continue) => {}
            Ok(Next::Close) | Err(_) => break,
        }
        if c.conn.flush_unless_pipelined().await.is_err() {
            break;
        }
    }
    c.conn.close().await;
}

fn tagged(tag: &str, status: &str, text: &str) -> String {
    format!("{tag} {status} {text}")
}

/// The NO a storage error earns, with its response code.
fn store_no(e: &StoreError) -> String {
    let code = match e {
        StoreError::NoSuchFolder(_) => "[NONEXISTENT] ",
        StoreError::FolderExists(_) => "[ALREADYEXISTS] ",
        StoreError::BadName(..) | StoreError::Protected(..) | StoreError::HasChildren(_) => {
            "[CANNOT] "
        }
        StoreError::OverQuota => "[OVERQUOTA] ",
        StoreError::TooBig(_) => "[TOOBIG] ",
        StoreError::BadMessage(_) => "[PARSE] ",
        StoreError::Unavailable(_) | StoreError::Internal(_) | StoreError::NoSession => {
            "[UNAVAILABLE] "
        }
        StoreError::AuthFailed | StoreError::NoSuchAddress | StoreError::NoMailbox => {
            "[AUTHENTICATIONFAILED] "
        }
    };
    if matches!(e, StoreError::Internal(_)) {
        tracing::warn!(error = %e, "IMAP command failed in the store");
        return format!("NO {code}the mailbox cannot be used now; try again later");
    }
    format!("NO {code}{e}")
}

impl Conversation<'_> {
    fn auth_allowed(&self) -> bool {
        self.conn.is_tls() || (self.ctx.dev && self.conn.peer.ip().is_loopback())
    }

    fn capabilities(&self) -> String {
        let mut caps = format!("{CAPABILITIES} APPENDLIMIT={}", self.ctx.max_message_bytes);
        if !matches!(self.state, State::NotAuthenticated) && !self.conn.is_compressed() {
            caps.push_str(" COMPRESS=DEFLATE");
        }
        if let State::NotAuthenticated = self.state {
            if !self.conn.is_tls() {
                caps.push_str(" STARTTLS");
            }
            if self.auth_allowed() {
                caps.push_str(" AUTH=PLAIN SASL-IR");
            } else {
                caps.push_str(" LOGINDISABLED");
            }
        }
        caps
    }

    async fn reply(&mut self, line: &str) -> io::Result<Next> {
        self.conn.reply(line).await?;
        Ok(Next::Continue)
    }

    async fn bad(&mut self, tag: Option<&str>, text: &str) -> io::Result<Next> {
        self.errors += 1;
        let tag = tag.unwrap_or("*");
        self.conn.reply(&tagged(tag, "BAD", text)).await?;
        if self.errors >= MAX_ERRORS {
            self.conn.reply("* BYE too many errors").await?;
            return Ok(Next::Close);
        }
        Ok(Next::Continue)
    }

    async fn command(
        &mut self,
        bytes: &[u8],
        stop: &async_channel::Receiver<()>,
    ) -> io::Result<Next> {
        let cmd = match proto::parse(bytes) {
            Ok(c) => c,
            Err(e) if e.error == proto::Error::BadCharset => {
                let tag = e.tag.unwrap_or_else(|| "*".into());
                return self
                    .reply(&tagged(
                        &tag,
                        "NO",
                        "[BADCHARSET (UTF-8 US-ASCII)] unsupported charset",
                    ))
                    .await;
            }
            Err(e) => return self.bad(e.tag.as_deref(), &e.error.to_string()).await,
        };
        let Command { tag, kind } = cmd;
        match kind {
            Kind::Capability => {
                let line = format!("* CAPABILITY {}", self.capabilities());
                self.conn.reply(&line).await?;
                self.updates(Moment::Any).await?;
                self.reply(&tagged(&tag, "OK", "CAPABILITY completed"))
                    .await
            }
            Kind::Noop | Kind::Check => {
                self.updates(Moment::Any).await?;
                self.reply(&tagged(&tag, "OK", "NOOP completed")).await
            }
            Kind::Logout => {
                self.conn.reply("* BYE sealmail logging out").await?;
                self.conn
                    .reply(&tagged(&tag, "OK", "LOGOUT completed"))
                    .await?;
                Ok(Next::Close)
            }
            Kind::Id => {
                self.conn.reply("* ID (\"name\" \"sealmail\")").await?;
                self.reply(&tagged(&tag, "OK", "ID completed")).await
            }
            kind => match self.state {
                State::NotAuthenticated => self.not_authenticated(&tag, kind).await,
                State::Authenticated(_) => self.authenticated(&tag, kind, stop).await,
            },
        }
    }

    async fn not_authenticated(&mut self, tag: &str, kind: Kind) -> io::Result<Next> {
        match kind {
            Kind::StartTls if self.conn.is_tls() => self.bad(Some(tag), "TLS is already active").await,
            Kind::StartTls => {
                self.conn
                    .reply(&tagged(tag, "OK", "Begin TLS negotiation now"))
                    .await?;
                self.conn.flush().await?;
                self.conn.start_tls(&self.ctx.tls, TLS_TIMEOUT).await?;
                Ok(Next::Continue)
            }
            Kind::Login { .. } | Kind::Authenticate { .. } if !self.auth_allowed() => {
                self.reply(&tagged(
                    tag,
                    "NO",
                    "[PRIVACYREQUIRED] plaintext authentication is disallowed without TLS; use STARTTLS or port 993",
                ))
                .await
            }
            Kind::Login { user, password } => {
                let (Ok(user), Ok(password)) = (String::from_utf8(user), String::from_utf8(password))
                else {
                    return self.login_failed(tag, None).await;
                };
                self.login(tag, &user, &password).await
            }
            Kind::Authenticate { mechanism, initial } => {
                if mechanism != "PLAIN" {
                    return self
                        .reply(&tagged(tag, "NO", "[CANNOT] unsupported mechanism; PLAIN is offered"))
                        .await;
                }
                let response = match initial {
                    Some(r) if r == b"=" => String::new(),
                    Some(r) => String::from_utf8_lossy(&r).into_owned(),
                    None => {
                        self.conn.write_all(b"+ \r\n").await?;
                        self.conn.flush().await?;
                        match self.conn.read_line(proto::MAX_LINE).await? {
                            Line::Complete(l) => String::from_utf8_lossy(&l).into_owned(),
                            Line::TooLong => return self.bad(Some(tag), "line too long").await,
                            Line::Eof => return Ok(Next::Close),
                        }
                    }
                };
                if response.trim() == "*" {
                    return self.bad(Some(tag), "authentication cancelled").await;
                }
                match crate::proto::sasl::plain(&response) {
                    Ok((user, password)) => self.login(tag, &user, &password).await,
                    Err(_) => self.bad(Some(tag), "malformed PLAIN response").await,
                }
            }
            _ => self.bad(Some(tag), "command not valid before login").await,
        }
    }

    async fn login_failed(&mut self, tag: &str, user: Option<&str>) -> io::Result<Next> {
        let delay = self.ctx.throttle.failed(self.conn.peer.ip(), user);
        smol::Timer::after(delay).await;
        self.reply(&tagged(
            tag,
            "NO",
            "[AUTHENTICATIONFAILED] Authentication failed.",
        ))
        .await
    }

    /// Checks the password, unlocks the mailbox (importing sealed mail).
    async fn login(&mut self, tag: &str, user: &str, password: &str) -> io::Result<Next> {
        let ip = self.conn.peer.ip();
        if self.ctx.throttle.banned(ip, Some(user)) {
            return self
                .reply(&tagged(
                    tag,
                    "NO",
                    "[UNAVAILABLE] too many failed logins; try again later",
                ))
                .await;
        }
        let session = match self.ctx.store.unlock(user, password).await {
            Ok(s) => s,
            Err(StoreError::AuthFailed) => return self.login_failed(tag, Some(user)).await,
            Err(e) => {
                tracing::warn!(error = %e, "IMAP login could not open a mailbox");
                return self
                    .reply(&tagged(
                        tag,
                        "NO",
                        "[UNAVAILABLE] the mailbox cannot be opened now; try again later",
                    ))
                    .await;
            }
        };
        self.ctx.throttle.succeeded(ip);
        let events = match session.subscribe() {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "IMAP login could not follow mailbox changes");
                return self
                    .reply(&tagged(tag, "NO", "[UNAVAILABLE] try again later"))
                    .await;
            }
        };
        self.state = State::Authenticated(Box::new(User {
            session,
            events,
            view: None,
            condstore: false,
            qresync: false,
            utf8: false,
            rev2: false,
        }));
        let caps = self.capabilities();
        self.reply(&tagged(
            tag,
            "OK",
            &format!("[CAPABILITY {caps}] Logged in"),
        ))
        .await
    }

    fn user(&mut self) -> &mut User {
        match &mut self.state {
            State::Authenticated(u) => u,
            // INVARIANT: only called from authenticated-state handlers.
            State::NotAuthenticated => unreachable!("authenticated command before login"),
        }
    }

    /// Applies other sessions' changes to the view and writes them out.
    async fn updates(&mut self, moment: Moment) -> io::Result<()> {
        let State::Authenticated(user) = &mut self.state else {
            return Ok(());
        };
        let mut buf = Vec::new();
        let Some(view) = user.view.as_mut() else {
            while user.events.try_recv().is_ok() {}
            return Ok(());
        };
        let mut lost = false;
        loop {
            match user.events.try_recv() {
                Ok(c) => view.push_events([c]),
                Err(async_channel::TryRecvError::Empty) => break,
                Err(async_channel::TryRecvError::Closed) => {
                    lost = true;
                    break;
                }
            }
        }
        let mut out = Out {
            buf: &mut buf,
            condstore: user.condstore,
            qresync: user.qresync,
        };
        if lost && moment == Moment::Any {
            // The stream fell behind and was dropped: read the state afresh.
            if let Ok(events) = user.session.subscribe() {
                user.events = events;
            }
            let fresh = user.session.select(&view.name).await;
            let changes = user
                .session
                .changes_since(&view.name, view.highestmodseq)
                .await;
            if let (Ok(fresh), Ok(changes)) = (fresh, changes) {
                view.resync(&fresh, &changes, &mut out);
            }
        } else {
            view.apply(moment, &mut out);
        }
        self.conn.write_all(&buf).await
    }

    fn decode_name(&mut self, raw: &[u8]) -> Result<String, String> {
        let utf8 = self.user().utf8;
        if utf8 {
            String::from_utf8(raw.to_vec()).map_err(|_| "mailbox name is not UTF-8".to_string())
        } else {
            mutf7_decode(raw).ok_or_else(|| "mailbox name is not valid modified UTF-7".to_string())
        }
    }

    async fn authenticated(
        &mut self,
        tag: &str,
        kind: Kind,
        stop: &async_channel::Receiver<()>,
    ) -> io::Result<Next> {
        let selected = self.user().view.is_some();
        let needs_selected = matches!(
            kind,
            Kind::Close
                | Kind::Unselect
                | Kind::Expunge(_)
                | Kind::Search { .. }
                | Kind::Sort { .. }
                | Kind::Thread { .. }
                | Kind::Fetch { .. }
                | Kind::Store { .. }
                | Kind::Copy { .. }
                | Kind::Move { .. }
        );
        if needs_selected && !selected {
            return self.bad(Some(tag), "no mailbox selected").await;
        }
        match kind {
            Kind::StartTls | Kind::Login { .. } | Kind::Authenticate { .. } => {
                return self.bad(Some(tag), "already logged in").await;
            }
            Kind::Enable(caps) => self.enable(tag, caps).await,
            Kind::Select {
                mailbox,
                read_only,
                condstore,
                qresync,
            } => {
                self.select(tag, &mailbox, read_only, condstore, qresync)
                    .await
            }
            Kind::Create(name) => {
                let name = match self.decode_name(&name) {
                    Ok(n) => n,
                    Err(e) => return self.bad(Some(tag), &e).await,
                };
                let name = name.trim_end_matches('/');
                let r = self.user().session.create_folder(name).await;
                self.done(tag, r, "CREATE completed").await
            }
            Kind::Delete(name) => {
                let name = match self.decode_name(&name) {
                    Ok(n) => n,
                    Err(e) => return self.bad(Some(tag), &e).await,
                };
                let r = self.user().session.delete_folder(&name).await;
                self.done(tag, r, "DELETE completed").await
            }
            Kind::Rename(from, to) => {
                let (from, to) = match (self.decode_name(&from), self.decode_name(&to)) {
                    (Ok(f), Ok(t)) => (f, t),
                    (Err(e), _) | (_, Err(e)) => return self.bad(Some(tag), &e).await,
                };
                let r = self.user().session.rename_folder(&from, &to).await;
                let user = self.user();
                if r.is_ok() && user.rev2 {
                    // RFC 9051 §6.3.6: tell the client the new name.
                    let mut line = b"* LIST () \"/\" ".to_vec();
                    render::mailbox(&mut line, to.trim_end_matches('/'), true);
                    line.extend_from_slice(b" (\"OLDNAME\" (");
                    render::mailbox(&mut line, &from, true);
                    line.extend_from_slice(b"))\r\n");
                    self.conn.write_all(&line).await?;
                }
                self.done(tag, r, "RENAME completed").await
            }
            Kind::Subscribe(name) => self.subscribe(tag, &name, true).await,
            Kind::Unsubscribe(name) => self.subscribe(tag, &name, false).await,
            Kind::List {
                reference,
                patterns,
                options,
            } => self.list(tag, &reference, &patterns, options, false).await,
            Kind::Lsub { reference, pattern } => {
                let options = ListOptions {
                    subscribed_only: true,
                    return_subscribed: true,
                    ..Default::default()
                };
                self.list(tag, &reference, &[pattern], options, true).await
            }
            Kind::Namespace => {
                self.conn
                    .reply("* NAMESPACE ((\"\" \"/\")) NIL NIL")
                    .await?;
                self.updates(Moment::Any).await?;
                self.reply(&tagged(tag, "OK", "NAMESPACE completed")).await
            }
            Kind::Status { mailbox, items } => self.status(tag, &mailbox, &items).await,
            Kind::Append {
                mailbox,
                flags,
                date,
                message,
            } => self.append(tag, &mailbox, flags, date, message).await,
            Kind::Idle => self.idle(tag, stop).await,
            Kind::Close | Kind::Unselect => {
                let close = matches!(kind, Kind::Close);
                let user = self.user();
                let view = user.view.take();
                if let Some(v) = view.filter(|v| close && !v.read_only) {
                    // CLOSE expunges silently (RFC 3501 §6.4.2).
                    if let Err(e) = user.session.expunge(&v.name, None).await {
                        return self.reply(&format!("{tag} {}", store_no(&e))).await;
                    }
                }
                self.reply(&tagged(tag, "OK", "CLOSE completed")).await
            }
            Kind::Expunge(uids) => self.expunge(tag, uids).await,
            Kind::Search { uid, ret, key } => self.search(tag, uid, ret, key).await,
            Kind::Sort { uid, keys, key } => self.sort(tag, uid, &keys, key).await,
            Kind::Thread {
                uid,
                algorithm,
                key,
            } => self.thread(tag, uid, algorithm, key).await,
            Kind::Compress(mechanism) => self.compress(tag, &mechanism).await,
            Kind::Fetch {
                uid,
                set,
                atts,
                changed_since,
                vanished,
            } => {
                self.fetch(tag, uid, &set, &atts, changed_since, vanished)
                    .await
            }
            Kind::Store {
                uid,
                set,
                op,
                silent,
                flags,
                unchanged_since,
            } => {
                self.store(tag, uid, &set, op, silent, flags, unchanged_since)
                    .await
            }
            Kind::Copy { uid, set, mailbox } => self.copy(tag, uid, &set, &mailbox, false).await,
            Kind::Move { uid, set, mailbox } => self.copy(tag, uid, &set, &mailbox, true).await,
            Kind::GetQuota(root) => self.quota(tag, Some(&root), None).await,
            Kind::GetQuotaRoot(name) => self.quota(tag, None, Some(&name)).await,
            Kind::SetQuota => {
                self.reply(&tagged(
                    tag,
                    "NO",
                    "[NOPERM] quotas are set by the operator",
                ))
                .await
            }
            Kind::Capability | Kind::Noop | Kind::Logout | Kind::Id | Kind::Check => {
                Ok(Next::Continue)
            }
        }
    }

    /// Writes the pending updates, then the tagged reply of a store result.
    async fn done(&mut self, tag: &str, r: Result<(), StoreError>, ok: &str) -> io::Result<Next> {
        self.updates(Moment::Any).await?;
        match r {
            Ok(()) => self.reply(&tagged(tag, "OK", ok)).await,
            Err(e) => self.reply(&format!("{tag} {}", store_no(&e))).await,
        }
    }

    async fn subscribe(&mut self, tag: &str, name: &[u8], on: bool) -> io::Result<Next> {
        let name = match self.decode_name(name) {
            Ok(n) => n,
            Err(e) => return self.bad(Some(tag), &e).await,
        };
        let r = self.user().session.subscribe_folder(&name, on).await;
        let verb = if on { "SUBSCRIBE" } else { "UNSUBSCRIBE" };
        self.done(tag, r, &format!("{verb} completed")).await
    }

    async fn enable(&mut self, tag: &str, caps: Vec<String>) -> io::Result<Next> {
        let user = self.user();
        let mut enabled = Vec::new();
        for cap in caps {
            match cap.as_str() {
                "CONDSTORE" => user.condstore = true,
                "QRESYNC" => {
                    user.qresync = true;
                    user.condstore = true;
                }
                "UTF8=ACCEPT" => user.utf8 = true,
                "IMAP4REV2" => {
                    user.rev2 = true;
                    user.utf8 = true;
                }
                _ => continue,
            }
            let cap = if cap == "IMAP4REV2" {
                "IMAP4rev2".to_string()
            } else {
                cap
            };
            if !enabled.contains(&cap) {
                enabled.push(cap);
            }
        }
        let line = format!("* ENABLED {}", enabled.join(" "));
        self.conn.reply(line.trim_end()).await?;
        self.reply(&tagged(tag, "OK", "ENABLE completed")).await
    }

    async fn select(
        &mut self,
        tag: &str,
        mailbox: &[u8],
        read_only: bool,
        condstore: bool,
        qresync: Option<proto::Qresync>,
    ) -> io::Result<Next> {
        let name = match self.decode_name(mailbox) {
            Ok(n) => n,
            Err(e) => return self.bad(Some(tag), &e).await,
        };
        let user = self.user();
        if qresync.is_some() && !user.qresync {
            return self.bad(Some(tag), "QRESYNC must be enabled first").await;
        }
        let mut head = Vec::new();
        if user.view.take().is_some() && (user.qresync || user.rev2) {
            head.extend_from_slice(b"* OK [CLOSED] previous mailbox closed\r\n");
        }
        while user.events.try_recv().is_ok() {}
        let info = match user.session.select(&name).await {
            Ok(i) => i,
            Err(e) => {
                self.conn.write_all(&head).await?;
                return self.reply(&format!("{tag} {}", store_no(&e))).await;
            }
        };
        if condstore {
            user.condstore = true;
        }
        let store_name = info.status.name.clone();
        let view = View::new(store_name.clone(), read_only, &info);
        let mut flags = Flags::system(
            Flags::ANSWERED | Flags::FLAGGED | Flags::DELETED | Flags::SEEN | Flags::DRAFT,
        );
        flags.keywords = info.keywords.clone();
        let flag_text = render::flags(&flags);
        let mut text = format!("* FLAGS {flag_text}\r\n");
        if read_only {
            text.push_str("* OK [PERMANENTFLAGS ()] read-only\r\n");
        } else {
            let inner = flag_text.trim_end_matches(')');
            let sep = if inner.len() > 1 { " " } else { "" };
            text.push_str(&format!(
                "* OK [PERMANENTFLAGS {inner}{sep}\\*)] flags permitted\r\n"
            ));
        }
        text.push_str(&format!("* {} EXISTS\r\n", info.uids.len()));
        if !user.rev2 {
            // IMAP4rev2 dropped RECENT and the UNSEEN code (RFC 9051 §6.3.2).
            text.push_str("* 0 RECENT\r\n");
            if let Some(seq) = info.first_unseen.and_then(|u| view.seq_of(u)) {
                text.push_str(&format!("* OK [UNSEEN {seq}] first unseen\r\n"));
            }
        }
        text.push_str(&format!(
            "* OK [UIDVALIDITY {}] UIDs valid\r\n* OK [UIDNEXT {}] next UID\r\n* OK [HIGHESTMODSEQ {}] modseq\r\n",
            info.status.uidvalidity, info.status.uidnext, info.status.highestmodseq
        ));
        head.extend_from_slice(text.as_bytes());
        if user.rev2 {
            // IMAP4rev2 SELECT names the mailbox in a LIST line (§6.3.2).
            let folders = user.session.list_folders().await.unwrap_or_default();
            if let Some(f) = folders.iter().find(|f| f.name == store_name) {
                let attrs = list_attributes(f).join(" ");
                head.extend_from_slice(format!("* LIST ({attrs}) \"/\" ").as_bytes());
                render::mailbox(&mut head, &store_name, true);
                head.extend_from_slice(b"\r\n");
            }
        }
        if let Some(q) = qresync.filter(|q| q.uidvalidity == info.status.uidvalidity) {
            let changes = match user.session.changes_since(&store_name, q.modseq).await {
                Ok(c) => c,
                Err(e) => {
                    self.conn.write_all(&head).await?;
                    return self.reply(&format!("{tag} {}", store_no(&e))).await;
                }
            };
            let known = q
                .known_uids
                .as_ref()
                .map(|s| view.resolve(s, true).unwrap_or_default());
            let vanished: Vec<u32> = changes
                .vanished
                .iter()
                .copied()
                .filter(|u| known.as_ref().is_none_or(|k| k.contains(*u)))
                .collect();
            vanished_line(&mut head, &vanished, true);
            let mut out = Out {
                buf: &mut head,
                condstore: true,
                qresync: true,
            };
            for meta in &changes.changed {
                if let Some(seq) = view.seq_of(meta.uid) {
                    flag_line(&mut out, seq, meta);
                }
            }
        }
        user.view = Some(view);
        self.conn.write_all(&head).await?;
        let code = if read_only {
            "[READ-ONLY]"
        } else {
            "[READ-WRITE]"
        };
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        self.reply(&tagged(tag, "OK", &format!("{code} {verb} completed")))
            .await
    }

    async fn list(
        &mut self,
        tag: &str,
        reference: &[u8],
        patterns: &[Vec<u8>],
        options: ListOptions,
        lsub: bool,
    ) -> io::Result<Next> {
        let verb = if lsub { "LSUB" } else { "LIST" };
        let utf8 = self.user().utf8;
        if patterns.len() == 1 && patterns[0].is_empty() {
            self.conn
                .reply(&format!("* {verb} (\\Noselect) \"/\" \"\""))
                .await?;
            return self
                .reply(&tagged(tag, "OK", &format!("{verb} completed")))
                .await;
        }
        let mut decoded = Vec::new();
        for p in patterns {
            let mut full = reference.to_vec();
            full.extend_from_slice(p);
            match self.decode_name(&full) {
                Ok(n) => decoded.push(n),
                Err(e) => return self.bad(Some(tag), &e).await,
            }
        }
        let folders = match self.user().session.list_folders().await {
            Ok(f) => f,
            Err(e) => return self.reply(&format!("{tag} {}", store_no(&e))).await,
        };
        let mut out = Vec::new();
        let mut matched: Vec<&FolderInfo> = Vec::new();
        for f in &folders {
            if !decoded.iter().any(|p| wildcard_match(p, &f.name)) {
                continue;
            }
            let mut child_info = false;
            if options.subscribed_only && !f.subscribed {
                let prefix = format!("{}/", f.name);
                child_info = options.recursive_match
                    && folders
                        .iter()
                        .any(|c| c.subscribed && c.name.starts_with(&prefix));
                if !child_info {
                    continue;
                }
            }
            if options.special_use_only && f.special_use.is_none() {
                continue;
            }
            let mut attrs = list_attributes(f);
            if options.return_subscribed && f.subscribed && !lsub {
                attrs.push("\\Subscribed");
            }
            out.extend_from_slice(format!("* {verb} ({}) \"/\" ", attrs.join(" ")).as_bytes());
            render::mailbox(&mut out, &f.name, utf8);
            if child_info {
                out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            out.extend_from_slice(b"\r\n");
            matched.push(f);
        }
        self.conn.write_all(&out).await?;
        if !options.return_status.is_empty() {
            for f in matched {
                if let Ok(s) = self.user().session.status(&f.name).await {
                    let line = status_line(&f.name, &s, &options.return_status, utf8);
                    self.conn.write_all(&line).await?;
                }
            }
        }
        self.updates(Moment::Any).await?;
        self.reply(&tagged(tag, "OK", &format!("{verb} completed")))
            .await
    }

    async fn status(
        &mut self,
        tag: &str,
        mailbox: &[u8],
        items: &[StatusItem],
    ) -> io::Result<Next> {
        let name = match self.decode_name(mailbox) {
            Ok(n) => n,
            Err(e) => return self.bad(Some(tag), &e).await,
        };
        let utf8 = self.user().utf8;
        if items.contains(&StatusItem::HighestModSeq) {
            self.user().condstore = true;
        }
        match self.user().session.status(&name).await {
            Ok(s) => {
                let line = status_line(&s.name, &s, items, utf8);
                self.conn.write_all(&line).await?;
                self.updates(Moment::Any).await?;
                self.reply(&tagged(tag, "OK", "STATUS completed")).await
            }
            Err(e) => self.reply(&format!("{tag} {}", store_no(&e))).await,
        }
    }

    async fn append(
        &mut self,
        tag: &str,
        mailbox: &[u8],
        flags: FlagList,
        date: Option<i64>,
        message: Vec<u8>,
    ) -> io::Result<Next> {
        let name = match self.decode_name(mailbox) {
            Ok(n) => n,
            Err(e) => return self.bad(Some(tag), &e).await,
        };
        if let Some(f) = &flags.invalid {
            return self
                .bad(Some(tag), &format!("flag {f} cannot be set"))
                .await;
        }
        let req = AppendRequest {
            folder: name,
            message,
            flags: Flags {
                system: flags.system,
                keywords: flags.keywords,
            },
            internal_date: date,
        };
        let r = self.user().session.append(req).await;
        self.updates(Moment::Any).await?;
        match r {
            Ok(a) => {
                self.reply(&tagged(
                    tag,
                    "OK",
                    &format!("[APPENDUID {} {}] APPEND completed", a.uidvalidity, a.uid),
                ))
                .await
            }
            Err(StoreError::NoSuchFolder(_)) => {
                self.reply(&tagged(tag, "NO", "[TRYCREATE] no such mailbox"))
                    .await
            }
            Err(e) => self.reply(&format!("{tag} {}", store_no(&e))).await,
        }
    }

    async fn idle(&mut self, tag: &str, stop: &async_channel::Receiver<()>) -> io::Result<Next> {
        self.updates(Moment::Any).await?;
        self.conn.write_all(b"+ idling\r\n").await?;
        self.conn.flush().await?;
        enum Woke {
            Event(Option<Change>),
            Line(io::Result<Line>),
            Stop,
        }
        loop {
            let events = self.user().events.clone();
            let read =
                async { Woke::Line(with_timeout(IDLE_TIMEOUT, self.conn.read_line(64)).await) };
            let event = async { Woke::Event(events.recv().await.ok()) };
            let stopped = async {
                let _ = stop.recv().await;
                Woke::Stop
            };
            let woke =
                futures_lite::future::or(futures_lite::future::or(event, read), stopped).await;
            match woke {
                Woke::Event(Some(c)) => {
                    if let Some(v) = self.user().view.as_mut() {
                        v.push_events([c]);
                    }
                    self.updates(Moment::Any).await?;
                    self.conn.flush().await?;
                }
                Woke::Event(None) => {
                    // The stream was dropped for lagging: resynchronise.
                    self.updates(Moment::Any).await?;
                    self.conn.flush().await?;
                    if self.user().events.is_closed() {
                        smol::Timer::after(Duration::from_millis(100)).await;
                    }
                }
                Woke::Line(Ok(Line::Complete(l))) if l.eq_ignore_ascii_case(b"DONE") => {
                    self.updates(Moment::Any).await?;
                    return self.reply(&tagged(tag, "OK", "IDLE terminated")).await;
                }
                Woke::Line(Ok(Line::Complete(_) | Line::TooLong)) => {
                    return self.bad(Some(tag), "expected DONE").await;
                }
                Woke::Line(Ok(Line::Eof)) => return Ok(Next::Close),
                Woke::Line(Err(e)) if e.kind() == io::ErrorKind::TimedOut => {
                    self.conn
                        .reply("* BYE autologout; idle for too long")
                        .await?;
                    return Ok(Next::Close);
                }
                Woke::Line(Err(e)) => return Err(e),
                Woke::Stop => {
                    self.conn
                        .reply("* BYE [UNAVAILABLE] server shutting down")
                        .await?;
                    return Ok(Next::Close);
                }
            }
        }
    }

    async fn expunge(&mut self, tag: &str, uids: Option<proto::SeqSet>) -> io::Result<Next> {
        let user = self.user();
        let Some(view) = user.view.as_ref() else {
            return Ok(Next::Continue);
        };
        if view.read_only {
            return self
                .reply(&tagged(tag, "NO", "[READ-ONLY] mailbox is read-only"))
                .await;
        }
        let set = match uids.map(|s| view.resolve(&s, true)).transpose() {
            Ok(s) => s,
            Err(e) => return self.bad(Some(tag), &e).await,
        };
        let name = view.name.clone();
        match user.session.expunge(&name, set).await {
            Ok(gone) => {
                let mut buf = Vec::new();
                let mut out = Out {
                    buf: &mut buf,
                    condstore: user.condstore,
                    qresync: user.qresync,
                };
                if let Some(v) = user.view.as_mut() {
                    v.expunged(&gone, &mut out);
                }
                self.conn.write_all(&buf).await?;
                self.updates(Moment::Any).await?;
                self.reply(&tagged(tag, "OK", "EXPUNGE completed")).await
            }
            Err(e) => self.reply(&format!("{tag} {}", store_no(&e))).await,
        }
    }

    /// COMPRESS=DEFLATE (RFC 4978): the OK goes out plain, everything after
    /// it compressed.
    async fn compress(&mut self, tag: &str, mechanism: &str) -> io::Result<Next> {
        if self.conn.is_compressed() {
            return self
                .reply(&tagged(
                    tag,
                    "NO",
                    "[COMPRESSIONACTIVE] DEFLATE is already active",
                ))
                .await;
        }
        if mechanism != "DEFLATE" {
            return self
                .reply(&tagged(tag, "NO", "unknown compression mechanism"))
                .await;
        }
        self.conn
            .reply(&tagged(tag, "OK", "DEFLATE active"))
            .await?;
        self.conn.flush().await?;
        self.conn.start_deflate();
        Ok(Next::Continue)
    }

    async fn fetch(
        &mut self,
        tag: &str,
        uid: bool,
        set: &proto::SeqSet,
        atts: &[proto::FetchAtt],
        changed_since: Option<u64>,
        vanished: bool,
    ) -> io::Result<Next> {
        let moment = if uid { Moment::Any } else { Moment::NoExpunge };
        let user = match &mut self.state {
            State::Authenticated(u) => u,
            State::NotAuthenticated => return Ok(Next::Continue),
        };
        let Some(view) = user.view.as_mut() else {
            return Ok(Next::Continue);
        };
        let resolved = match view.resolve(set, uid) {
            Ok(s) => s,
            Err(e) => return self.bad(Some(tag), &e).await,
        };
        if changed_since.is_some() || atts.contains(&proto::FetchAtt::ModSeq) {
            user.condstore = true;
        }
        if vanished {
            if !user.qresync {
                return self.bad(Some(tag), "VANISHED needs QRESYNC enabled").await;
            }
            let since = changed_since.unwrap_or(0);
            match user.session.changes_since(&view.name, since).await {
                Ok(c) => {
                    let open = View::resolve_open(set);
                    let gone: Vec<u32> = c
                        .vanished
                        .into_iter()
                        .filter(|u| open.contains(*u))
                        .collect();
                    let mut buf = Vec::new();
                    vanished_line(&mut buf, &gone, true);
                    self.conn.write_all(&buf).await?;
                }
                Err(e) => return self.reply(&format!("{tag} {}", store_no(&e))).await,
            }
        }
        let State::Authenticated(user) = &mut self.state else {
            return Ok(Next::Continue);
        };
        let Some(view) = user.view.as_mut() else {
            return Ok(Next::Continue);
        };
        let members = view.members(&resolved);
        let req = fetch::Request {
            atts,
            uid,
            changed_since,
            condstore: user.condstore,
        };
        let mut fetcher = fetch::Fetcher::new(view, members, &req);
        let mut result = Ok(());
        while let Some(batch) = fetcher.next(&user.session, view).await {
            match batch {
                Ok(bytes) => self.conn.write_all(&bytes).await?,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let unknown_cte = fetcher.unknown_cte();
        match result {
            Ok(()) if unknown_cte => {
                self.updates(moment).await?;
                self.reply(&tagged(
                    tag,
                    "NO",
                    "[UNKNOWN-CTE] a part's Content-Transfer-Encoding cannot be decoded",
                ))
                .await
            }
            Ok(()) => {
                self.updates(moment).await?;
                self.reply(&tagged(tag, "OK", "FETCH completed")).await
            }
            Err(e) => {
                self.updates(moment).await?;
                self.reply(&format!("{tag} {}", store_no(&e))).await
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn store(
        &mut self,
        tag: &str,
        uid: bool,
        set: &proto::SeqSet,
        op: StoreOp,
        silent: bool,
        flags: FlagList,
        unchanged_since: Option<u64>,
    ) -> io::Result<Next> {
        let moment = if uid { Moment::Any } else { Moment::NoExpunge };
        if let Some(f) = &flags.invalid {
            return self
                .bad(Some(tag), &format!("flag {f} cannot be set"))
                .await;
        }
        let user = self.user();
        let Some(view) = user.view.as_ref() else {
            return Ok(Next::Continue);
        };
        if view.read_only {
            return self
                .reply(&tagged(tag, "NO", "[READ-ONLY] mailbox is read-only"))
                .await;
        }
        let resolved = match view.resolve(set, uid) {
            Ok(s) => s,
            Err(e) => return self.bad(Some(tag), &e).await,
        };
        if unchanged_since.is_some() {
            user.condstore = true;
        }
        let members = UidSet::from_uids(&view.members(&resolved));
        let req = StoreFlags {
            folder: view.name.clone(),
            uids: members,
            op: match op {
                StoreOp::Add => FlagOp::Add,
                StoreOp::Remove => FlagOp::Remove,
                StoreOp::Replace => FlagOp::Replace,
            },
            flags: Flags {
                system: flags.system,
                keywords: flags.keywords,
            },
            unchanged_since,
        };
        let result = match user.session.store_flags(req).await {
            Ok(r) => r,
            Err(e) => return self.reply(&format!("{tag} {}", store_no(&e))).await,
        };
        let condstore = user.condstore;
        let Some(view) = user.view.as_mut() else {
            return Ok(Next::Continue);
        };
        view.remember_own(&result.updated);
        let mut buf = Vec::new();
        for meta in &result.updated {
            let Some(seq) = view.seq_of(meta.uid) else {
                continue;
            };
            if silent && !condstore {
                continue;
            }
            let mut items = Vec::new();
            if uid || condstore {
                items.push(format!("UID {}", meta.uid));
            }
            if !silent {
                items.push(format!("FLAGS {}", render::flags(&meta.flags)));
            }
            if condstore {
                items.push(format!("MODSEQ ({})", meta.modseq));
            }
            buf.extend_from_slice(format!("* {seq} FETCH ({})\r\n", items.join(" ")).as_bytes());
        }
        let modified = result.modified.clone();
        self.conn.write_all(&buf).await?;
        self.updates(moment).await?;
        if modified.is_empty() {
            self.reply(&tagged(tag, "OK", "STORE completed")).await
        } else {
            let view = self.user().view.as_ref();
            let numbers: Vec<u32> = if uid {
                modified
            } else {
                modified
                    .iter()
                    .filter_map(|&u| view.and_then(|v| v.seq_of(u)))
                    .collect()
            };
            let set = uid_set_text(&UidSet::from_uids(&numbers));
            self.reply(&tagged(
                tag,
                "OK",
                &format!("[MODIFIED {set}] conditional STORE failed for some messages"),
            ))
            .await
        }
    }

    async fn copy(
        &mut self,
        tag: &str,
        uid: bool,
        set: &proto::SeqSet,
        mailbox: &[u8],
        is_move: bool,
    ) -> io::Result<Next> {
        let verb = if is_move { "MOVE" } else { "COPY" };
        let dest = match self.decode_name(mailbox) {
            Ok(n) => n,
            Err(e) => return self.bad(Some(tag), &e).await,
        };
        let user = self.user();
        let Some(view) = user.view.as_ref() else {
            return Ok(Next::Continue);
        };
        if is_move && view.read_only {
            return self
                .reply(&tagged(tag, "NO", "[READ-ONLY] mailbox is read-only"))
                .await;
        }
        let resolved = match view.resolve(set, uid) {
            Ok(s) => s,
            Err(e) => return self.bad(Some(tag), &e).await,
        };
        let members = UidSet::from_uids(&view.members(&resolved));
        let from = view.name.clone();
        let r = if members.0.is_empty() {
            Ok(Default::default())
        } else if is_move {
            user.session.move_messages(&from, members, &dest).await
        } else {
            user.session.copy(&from, members, &dest).await
        };
        let result = match r {
            Ok(r) => r,
            Err(StoreError::NoSuchFolder(_)) => {
                return self
                    .reply(&tagged(tag, "NO", "[TRYCREATE] no such mailbox"))
                    .await;
            }
            Err(e) => return self.reply(&format!("{tag} {}", store_no(&e))).await,
        };
        let code = if result.source.is_empty() {
            String::new()
        } else {
            format!(
                "[COPYUID {} {} {}] ",
                result.uidvalidity,
                uid_set_list(&result.source),
                uid_set_list(&result.dest)
            )
        };
        if is_move {
            let mut buf = format!("* OK {code}moved\r\n").into_bytes();
            let mut out = Out {
                buf: &mut buf,
                condstore: user.condstore,
                qresync: user.qresync,
            };
            if let Some(v) = user.view.as_mut() {
                v.expunged(&result.source, &mut out);
            }
            self.conn.write_all(&buf).await?;
            self.updates(Moment::Any).await?;
            self.reply(&tagged(tag, "OK", &format!("{verb} completed")))
                .await
        } else {
            self.updates(Moment::Any).await?;
            self.reply(&tagged(tag, "OK", &format!("{code}{verb} completed")))
                .await
        }
    }

    async fn quota(
        &mut self,
        tag: &str,
        root: Option<&[u8]>,
        mailbox: Option<&[u8]>,
    ) -> io::Result<Next> {
        if let Some(m) = mailbox
            && let Err(e) = self.decode_name(m)
        {
            return self.bad(Some(tag), &e).await;
        }
        let utf8 = self.user().utf8;
        let usage = match self.user().session.quota().await {
            Ok(q) => q,
            Err(e) => return self.reply(&format!("{tag} {}", store_no(&e))).await,
        };
        let mut buf = Vec::new();
        if let Some(m) = mailbox {
            buf.extend_from_slice(b"* QUOTAROOT ");
            let name = self.decode_name(m).unwrap_or_default();
            render::mailbox(&mut buf, &name, utf8);
            if usage.limit_bytes.is_some() {
                buf.extend_from_slice(b" \"\"");
            }
            buf.extend_from_slice(b"\r\n");
        } else if root.is_some_and(|r| !r.is_empty()) || usage.limit_bytes.is_none() {
            return self
                .reply(&tagged(tag, "NO", "[NONEXISTENT] no such quota root"))
                .await;
        }
        if let Some(limit) = usage.limit_bytes {
            buf.extend_from_slice(
                format!(
                    "* QUOTA \"\" (STORAGE {} {})\r\n",
                    usage.used_bytes.div_ceil(1024),
                    limit / 1024
                )
                .as_bytes(),
            );
        }
        self.conn.write_all(&buf).await?;
        self.reply(&tagged(tag, "OK", "GETQUOTA completed")).await
    }
}

/// `1,3:5` of UIDs in the order given (COPYUID pairs them up by position).
/// A folder's LIST attributes: CHILDREN's and its special use.
fn list_attributes(f: &FolderInfo) -> Vec<&str> {
    let mut attrs: Vec<&str> = vec![if f.has_children {
        "\\HasChildren"
    } else {
        "\\HasNoChildren"
    }];
    if let Some(s) = &f.special_use {
        attrs.push(s);
    }
    attrs
}

fn uid_set_list(uids: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < uids.len() {
        let mut j = i;
        while j + 1 < uids.len() && uids[j + 1] == uids[j].wrapping_add(1) {
            j += 1;
        }
        out.push(if i == j {
            uids[i].to_string()
        } else {
            format!("{}:{}", uids[i], uids[j])
        });
        i = j + 1;
    }
    out.join(",")
}

fn status_line(
    name: &str,
    s: &crate::store::FolderStatus,
    items: &[StatusItem],
    utf8: bool,
) -> Vec<u8> {
    let mut out = b"* STATUS ".to_vec();
    render::mailbox(&mut out, name, utf8);
    let values: Vec<String> = items
        .iter()
        .map(|i| match i {
            StatusItem::Messages => format!("MESSAGES {}", s.messages),
            StatusItem::Recent => "RECENT 0".to_string(),
            StatusItem::UidNext => format!("UIDNEXT {}", s.uidnext),
            StatusItem::UidValidity => format!("UIDVALIDITY {}", s.uidvalidity),
            StatusItem::Unseen => format!("UNSEEN {}", s.unseen),
            StatusItem::Deleted => format!("DELETED {}", s.deleted),
            StatusItem::Size => format!("SIZE {}", s.size),
            StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", s.highestmodseq),
        })
        .collect();
    out.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
    out
}

/// LIST pattern matching: `*` matches anything, `%` anything but the
/// hierarchy delimiter; INBOX matches case-insensitively.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = crate::store::normalize_folder_name(pattern)
        .chars()
        .collect();
    let n: Vec<char> = name.chars().collect();
    // prev[j]: the pattern so far matches the first j characters of name.
    let mut prev = vec![false; n.len() + 1];
    prev[0] = true;
    for &c in &p {
        let mut cur = vec![false; n.len() + 1];
        for j in 0..=n.len() {
            cur[j] = match c {
                '*' => prev[j] || (j > 0 && cur[j - 1]),
                '%' => prev[j] || (j > 0 && cur[j - 1] && n[j - 1] != '/'),
                c => j > 0 && prev[j - 1] && n[j - 1] == c,
            };
        }
        prev = cur;
    }
    prev[n.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_wildcards() {
        assert!(wildcard_match("*", "a/b/c"));
        assert!(wildcard_match("%", "Sent"));
        assert!(!wildcard_match("%", "a/b"));
        assert!(wildcard_match("a/%", "a/b"));
        assert!(wildcard_match("inbox", "INBOX"));
        assert!(wildcard_match("Inbox/*", "INBOX/x"));
        assert!(!wildcard_match("sent", "Sent"));
        let many = "%*".repeat(500) + "x";
        assert!(!wildcard_match(&many, &"a".repeat(1000)));
        assert!(wildcard_match("%/%x", "ab/cx"));
    }

    #[test]
    fn copyuid_sets_keep_order() {
        assert_eq!(uid_set_list(&[1, 2, 3, 7, 5, 6]), "1:3,7,5:6");
    }
}
