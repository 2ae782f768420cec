//! One IMAP connection: the read loop, the session state, and the one
//! dispatch from a parsed command to its handler in `ops`.
//!
//! Imports `net`, `proto::{imap, mutf7}`, the `store` interface and the
//! siblings. Invariants: every command gets exactly one tagged reply;
//! untagged updates from other sessions go out before it, and never an
//! EXPUNGE during FETCH, STORE or SEARCH by sequence number; the state owns
//! what is valid in it (a selected mailbox exists only in `Selected`), and
//! a transition replaces the state whole; after 20 protocol errors the
//! connection is closed.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::reader::{Read, Spilled, read_command};
use super::view::{Moment, Out, View};
use super::{CAPABILITIES, Imap, ops};
use crate::net::conn::{Conn, Stream, accept_tls, with_timeout};
use crate::net::listener::Accepted;
use crate::proto::imap::{self as proto, Command, Kind};
use crate::proto::mutf7::mutf7_decode;
use crate::store::{Change, Session, StoreError};
use crate::util::Reserved;

/// Before login: a short leash. After: at least RFC 3501 §5.4's 30 minutes.
const AUTH_TIMEOUT: Duration = Duration::from_secs(60);
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(31 * 60);
pub(super) const TLS_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_ERRORS: u32 = 20;

/// A logged-in user: the store session and what the client enabled.
pub(super) struct User {
    pub session: Session,
    pub events: async_channel::Receiver<Change>,
    pub condstore: bool,
    pub qresync: bool,
    pub utf8: bool,
    /// ENABLE IMAP4rev2 (RFC 9051): ESEARCH answers, no RECENT, a LIST
    /// line on SELECT, UTF-8 mailbox names.
    pub rev2: bool,
}

impl User {
    pub fn new(session: Session, events: async_channel::Receiver<Change>) -> User {
        User {
            session,
            events,
            condstore: false,
            qresync: false,
            utf8: false,
            rev2: false,
        }
    }

    /// A mailbox name from the wire: UTF-8 once the client enabled it,
    /// else modified UTF-7.
    pub fn decode_name(&self, raw: &[u8]) -> Result<String, String> {
        if self.utf8 {
            String::from_utf8(raw.to_vec()).map_err(|_| "mailbox name is not UTF-8".to_string())
        } else {
            mutf7_decode(raw).map_err(|_| "mailbox name is not valid modified UTF-7".to_string())
        }
    }

    /// A CONDSTORE-enabling command (RFC 7162 §3.1): the first one while a
    /// mailbox is selected reports the mailbox's HIGHESTMODSEQ.
    pub fn enable_condstore(&mut self, view: Option<&View>) -> Vec<u8> {
        if self.condstore {
            return Vec::new();
        }
        self.condstore = true;
        match view {
            Some(v) => format!("* OK [HIGHESTMODSEQ {}] modseq\r\n", v.highestmodseq).into_bytes(),
            None => Vec::new(),
        }
    }

    pub fn out<'a>(&self, buf: &'a mut Vec<u8>) -> Out<'a> {
        Out {
            buf,
            condstore: self.condstore,
            qresync: self.qresync,
        }
    }
}

/// RFC 3501 §3: the session's state, owning what is valid in it.
enum State {
    NotAuthenticated,
    Authenticated(Box<User>),
    Selected(Box<User>, Box<View>),
}

/// The connection and what every handler shares, apart from the state.
pub(super) struct Io<'a> {
    pub ctx: &'a Imap,
    pub conn: Conn,
    errors: u32,
    /// What the command being run holds of the memory budget.
    pub memory: Option<Reserved>,
    /// Its literals that went to spill files.
    pub spilled: Spilled,
}

/// The tagged NO's text for a message the memory budget has no room for.
pub(super) const NO_MEMORY: &str =
    "[LIMIT] the server has no memory for this message now; try again shortly";

/// How long a received message may wait for memory to be processed in.
const PROCESS_PATIENCE: Duration = Duration::from_secs(60);

struct Conversation<'a> {
    io: Io<'a>,
    state: State,
}

/// What the read loop woke up for.
enum Got {
    Read(Read),
    TimedOut,
    Shutdown,
}

/// What a command asks of the loop.
pub(super) enum Next {
    Continue,
    Close,
}

/// What SELECT, EXAMINE, CLOSE and UNSELECT leave selected.
pub(super) enum Selection {
    Keep,
    Deselect,
    Select(Box<View>),
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
        io: Io {
            ctx: &ctx,
            conn: Conn::new(stream, acc.peer),
            errors: 0,
            memory: None,
            spilled: Spilled::default(),
        },
        state: State::NotAuthenticated,
    };
    let greeting = format!(
        "* OK [CAPABILITY {}] sealmail IMAP ready",
        c.io.capabilities(false)
    );
    if c.io.conn.reply(&greeting).await.is_err() || c.io.conn.flush().await.is_err() {
        return;
    }
    loop {
        let timeout = match c.state {
            State::NotAuthenticated => AUTH_TIMEOUT,
            State::Authenticated(_) | State::Selected(..) => IDLE_TIMEOUT,
        };
        let conn = &mut c.io.conn;
        let read = async {
            let read = read_command(conn, ctx.max_message_bytes, &ctx.memory, &ctx.spills);
            match with_timeout(timeout, read).await {
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
            Got::Read(Read::Command(bytes, memory, spilled)) => {
                c.command(bytes, memory, spilled, &stop).await
            }
            Got::Read(Read::NoMemory(tag)) => {
                let tag = tag.unwrap_or_else(|| "*".into());
                c.io.reply(&format!("{tag} NO {NO_MEMORY}")).await
            }
            Got::Read(Read::TooLong(tag)) => {
                c.io.bad(tag.as_deref(), "command line too long").await
            }
            Got::Read(Read::LiteralRefused {
                tag,
                non_sync,
                limit,
            }) => c.io.literal_refused(tag, non_sync, limit).await,
            Got::Read(Read::Closed) => break,
            Got::Shutdown => {
                let _ =
                    c.io.conn
                        .reply("* BYE [UNAVAILABLE] server shutting down")
                        .await;
                break;
            }
            Got::TimedOut => {
                let _ = c.io.conn.reply("* BYE autologout; idle for too long").await;
                break;
            }
        };
        match next {
            Ok(Next::Continue) => {}
            Ok(Next::Close) | Err(_) => break,
        }
        if c.io.conn.flush_unless_pipelined().await.is_err() {
            break;
        }
    }
    c.io.conn.close().await;
}

pub(super) fn tagged(tag: &str, status: &str, text: &str) -> String {
    format!("{tag} {status} {text}")
}

/// The NO a storage error earns, with its response code.
pub(super) fn store_no(e: &StoreError) -> String {
    let code = match e {
        StoreError::NoSuchFolder(_) => "[NONEXISTENT] ",
        StoreError::FolderExists(_) => "[ALREADYEXISTS] ",
        StoreError::BadName(..)
        | StoreError::Protected(..)
        | StoreError::HasChildren(_)
        | StoreError::Script(..) => "[CANNOT] ",
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

impl Io<'_> {
    pub fn auth_allowed(&self) -> bool {
        self.conn.is_tls() || (self.ctx.dev && self.conn.peer.ip().is_loopback())
    }

    pub fn capabilities(&self, logged_in: bool) -> String {
        let mut caps = format!("{CAPABILITIES} APPENDLIMIT={}", self.ctx.max_message_bytes);
        if logged_in {
            if !self.conn.is_compressed() {
                caps.push_str(" COMPRESS=DEFLATE");
            }
            return caps;
        }
        if !self.conn.is_tls() {
            caps.push_str(" STARTTLS");
        }
        if self.auth_allowed() {
            caps.push_str(" AUTH=PLAIN SASL-IR");
        } else {
            caps.push_str(" LOGINDISABLED");
        }
        caps
    }

    pub async fn reply(&mut self, line: &str) -> io::Result<Next> {
        self.conn.reply(line).await?;
        Ok(Next::Continue)
    }

    pub async fn ok(&mut self, tag: &str, text: &str) -> io::Result<Next> {
        self.reply(&tagged(tag, "OK", text)).await
    }

    pub async fn no(&mut self, tag: &str, text: &str) -> io::Result<Next> {
        self.reply(&tagged(tag, "NO", text)).await
    }

    /// A mailbox name that does not decode (bad modified UTF-7): no mailbox
    /// can have it, so `NO`, not `BAD`, and the session goes on (as Dovecot).
    pub async fn bad_name(&mut self, tag: &str, why: &str) -> io::Result<Next> {
        self.no(tag, &format!("[CANNOT] {why}")).await
    }

    /// `tag NO [CODE] …` for a storage error.
    /// The NO for a storage error; a session the store no longer knows
    /// (a cluster secondary whose link to the primary dropped) is over:
    /// BYE, and the client logs in again.
    pub async fn store_failed(&mut self, tag: &str, e: &StoreError) -> io::Result<Next> {
        if *e == StoreError::NoSession {
            self.conn.reply(&format!("{tag} {}", store_no(e))).await?;
            self.conn
                .reply("* BYE [UNAVAILABLE] this session was lost; log in again")
                .await?;
            return Ok(Next::Close);
        }
        self.reply(&format!("{tag} {}", store_no(e))).await
    }

    pub async fn bad(&mut self, tag: Option<&str>, text: &str) -> io::Result<Next> {
        self.errors += 1;
        let tag = tag.unwrap_or("*");
        self.conn.reply(&tagged(tag, "BAD", text)).await?;
        if self.errors >= MAX_ERRORS {
            self.conn.reply("* BYE too many errors").await?;
            return Ok(Next::Close);
        }
        Ok(Next::Continue)
    }

    /// A literal over its limit: a synchronising one is refused before the
    /// client sends it; a non-synchronising one is already coming, so the
    /// connection ends.
    async fn literal_refused(
        &mut self,
        tag: Option<String>,
        non_sync: bool,
        limit: u64,
    ) -> io::Result<Next> {
        if non_sync {
            let line = format!("* BYE [TOOBIG] literal larger than {limit} bytes");
            let _ = self.conn.reply(&line).await;
            return Ok(Next::Close);
        }
        let tag = tag.unwrap_or_else(|| "*".into());
        self.reply(&format!(
            "{tag} NO [TOOBIG] literal larger than {limit} bytes"
        ))
        .await
    }

    /// Applies other sessions' changes to the view and writes them out
    /// (without a view, they are dropped: nothing is selected to tell).
    pub async fn updates(
        &mut self,
        user: &mut User,
        view: Option<&mut View>,
        moment: Moment,
    ) -> io::Result<()> {
        let Some(view) = view else {
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
        if let Some(up_to) = view.arrivals() {
            // New messages: this session claims those nobody has as
            // `\Recent`; a read-only one only sees them as such.
            let claimed = if view.read_only {
                (view.max_uid().unwrap_or(0) + 1..=up_to).collect()
            } else {
                user.session
                    .claim_recent(&view.name, up_to)
                    .await
                    .unwrap_or_default()
            };
            view.add_recent(&claimed);
        }
        let mut buf = Vec::new();
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
                view.resync(&fresh, &changes, &mut user.out(&mut buf));
            }
        } else {
            view.apply(moment, &mut user.out(&mut buf));
        }
        self.conn.write_all(&buf).await
    }

    /// Writes the pending updates, then the tagged reply of a store result.
    pub async fn done(
        &mut self,
        user: &mut User,
        view: Option<&mut View>,
        tag: &str,
        r: Result<(), StoreError>,
        ok: &str,
    ) -> io::Result<Next> {
        self.updates(user, view, Moment::Any).await?;
        match r {
            Ok(()) => self.ok(tag, ok).await,
            Err(e) => self.store_failed(tag, &e).await,
        }
    }
}

impl Conversation<'_> {
    /// Parses one command and runs it in the current state: the one
    /// dispatch of the IMAP server.
    async fn command(
        &mut self,
        bytes: Vec<u8>,
        mut memory: Reserved,
        spilled: Spilled,
        stop: &async_channel::Receiver<()>,
    ) -> io::Result<Next> {
        // A message the command carries is processed in up to five times
        // its size (parsed, its text extracted, compressed and indexed),
        // and a spilled one in one more (read back): held first, or
        // refused.
        let need = 5 * memory.held() + 6 * spilled.bytes();
        if need > 0 && !memory.process(need, PROCESS_PATIENCE).await {
            let tag = proto::tag_and_name(&bytes).map_or_else(|| "*".into(), |t| t.0);
            return self.io.reply(&format!("{tag} NO {NO_MEMORY}")).await;
        }
        let parsed = proto::parse(&bytes);
        drop(bytes);
        self.io.memory = Some(memory);
        self.io.spilled = spilled;
        let next = self.dispatch(parsed, stop).await;
        self.io.memory = None;
        self.io.spilled = Spilled::default();
        next
    }

    async fn dispatch(
        &mut self,
        parsed: Result<Command, proto::ParseError>,
        stop: &async_channel::Receiver<()>,
    ) -> io::Result<Next> {
        let cmd = match parsed {
            Ok(c) => c,
            Err(e) if e.error == proto::Error::BadCharset => {
                let tag = e.tag.unwrap_or_else(|| "*".into());
                return self
                    .io
                    .no(&tag, "[BADCHARSET (UTF-8 US-ASCII)] unsupported charset")
                    .await;
            }
            Err(e) => return self.io.bad(e.tag.as_deref(), &e.error.to_string()).await,
        };
        let Command { tag, kind } = cmd;
        let io = &mut self.io;
        match (&mut self.state, kind) {
            // Any state (RFC 3501 §6.1).
            (state, Kind::Capability) => {
                let logged_in = !matches!(state, State::NotAuthenticated);
                let line = format!("* CAPABILITY {}", io.capabilities(logged_in));
                io.conn.reply(&line).await?;
                any_state_updates(io, state).await?;
                io.ok(&tag, "CAPABILITY completed").await
            }
            (state, Kind::Noop | Kind::Check) => {
                any_state_updates(io, state).await?;
                io.ok(&tag, "NOOP completed").await
            }
            (_, Kind::Logout) => {
                io.conn.reply("* BYE sealmail logging out").await?;
                io.ok(&tag, "LOGOUT completed").await?;
                Ok(Next::Close)
            }
            (_, Kind::Id) => {
                io.conn.reply("* ID (\"name\" \"sealmail\")").await?;
                io.ok(&tag, "ID completed").await
            }
            // Not authenticated (§6.2).
            (State::NotAuthenticated, kind) => {
                let (next, user) = ops::login::run(io, &tag, kind).await?;
                if let Some(user) = user {
                    self.state = State::Authenticated(Box::new(user));
                }
                Ok(next)
            }
            // Authenticated or selected (§6.3).
            (
                State::Authenticated(_) | State::Selected(..),
                Kind::StartTls | Kind::Login { .. } | Kind::Authenticate { .. },
            ) => io.bad(Some(&tag), "already logged in").await,
            (State::Authenticated(_) | State::Selected(..), Kind::Select(select)) => {
                self.select(&tag, select).await
            }
            // RFC 8437: the store session, its keys and the selection go;
            // the connection (TLS, COMPRESS) stays.
            (State::Authenticated(_) | State::Selected(..), Kind::Unauthenticate) => {
                self.state = State::NotAuthenticated;
                io.ok(&tag, "UNAUTHENTICATE completed").await
            }
            (State::Authenticated(user), kind) => authenticated(io, user, None, &tag, kind, stop)
                .await
                .map(|(next, _)| next),
            (State::Selected(user, view), kind) => {
                let (next, selection) =
                    authenticated(io, user, Some(&mut **view), &tag, kind, stop).await?;
                if let Selection::Deselect = selection {
                    self.deselect();
                }
                Ok(next)
            }
        }
    }

    /// SELECT and EXAMINE leave the state Selected on success and
    /// Authenticated on failure, whatever was selected before.
    async fn select(&mut self, tag: &str, select: proto::Select) -> io::Result<Next> {
        let (mut user, old) = match std::mem::replace(&mut self.state, State::NotAuthenticated) {
            State::Authenticated(user) => (user, None),
            State::Selected(user, view) => (user, Some(view)),
            State::NotAuthenticated => return Ok(Next::Close),
        };
        let result = ops::select::run(&mut self.io, &mut user, old.is_some(), tag, select).await;
        let (state, result) = match (result, old) {
            (Ok((next, Selection::Select(view))), _) => (State::Selected(user, view), Ok(next)),
            // Refused before anything was done (BAD): the selection stays.
            (Ok((next, Selection::Keep)), Some(view)) => (State::Selected(user, view), Ok(next)),
            (other, _) => (State::Authenticated(user), other.map(|(next, _)| next)),
        };
        self.state = state;
        result
    }

    fn deselect(&mut self) {
        if let State::Selected(..) = self.state
            && let State::Selected(user, _) =
                std::mem::replace(&mut self.state, State::NotAuthenticated)
        {
            self.state = State::Authenticated(user);
        }
    }
}

async fn any_state_updates(io: &mut Io<'_>, state: &mut State) -> io::Result<()> {
    match state {
        State::NotAuthenticated => Ok(()),
        State::Authenticated(user) => io.updates(user, None, Moment::Any).await,
        State::Selected(user, view) => io.updates(user, Some(view), Moment::Any).await,
    }
}

/// Commands of the authenticated and selected states (RFC 3501 §6.3,
/// §6.4), with the selected mailbox when there is one.
async fn authenticated(
    io: &mut Io<'_>,
    user: &mut User,
    view: Option<&mut View>,
    tag: &str,
    kind: Kind,
    stop: &async_channel::Receiver<()>,
) -> io::Result<(Next, Selection)> {
    use ops::*;
    let next = match (kind, view) {
        (Kind::Enable(caps), view) => enable::run(io, user, view, tag, caps).await,
        (Kind::Create(name), view) => mailboxes::create(io, user, view, tag, &name).await,
        (Kind::Delete(name), view) => mailboxes::delete(io, user, view, tag, &name).await,
        (Kind::Rename(from, to), view) => mailboxes::rename(io, user, view, tag, &from, &to).await,
        (Kind::Subscribe(name), view) => {
            mailboxes::subscribe(io, user, view, tag, &name, true).await
        }
        (Kind::Unsubscribe(name), view) => {
            mailboxes::subscribe(io, user, view, tag, &name, false).await
        }
        (
            Kind::List {
                reference,
                patterns,
                options,
            },
            view,
        ) => {
            let query = list::Query {
                reference: &reference,
                patterns: &patterns,
                options,
                lsub: false,
            };
            list::run(io, user, view, tag, query).await
        }
        (Kind::Lsub { reference, pattern }, view) => {
            let pattern = [pattern];
            list::run(io, user, view, tag, list::Query::lsub(&reference, &pattern)).await
        }
        (Kind::Namespace, view) => {
            io.conn.reply("* NAMESPACE ((\"\" \"/\")) NIL NIL").await?;
            io.updates(user, view, Moment::Any).await?;
            io.ok(tag, "NAMESPACE completed").await
        }
        (Kind::Status { mailbox, items }, view) => {
            status::run(io, user, view, tag, &mailbox, &items).await
        }
        (Kind::Append(append), view) => append::run(io, user, view, tag, append).await,
        (Kind::Idle, view) => idle::run(io, user, view, tag, stop).await,
        (Kind::Compress(mechanism), _) => compress::run(io, tag, &mechanism).await,
        (Kind::GetQuota(root), _) => quota::run(io, user, tag, Some(&root), None).await,
        (Kind::GetQuotaRoot(name), _) => quota::run(io, user, tag, None, Some(&name)).await,
        (Kind::SetQuota, _) => io.no(tag, "[NOPERM] quotas are set by the operator").await,
        (Kind::GetMetadata(g), view) => metadata::get(io, user, view, tag, g).await,
        (Kind::SetMetadata(m), view) => metadata::set(io, user, view, tag, m).await,
        // Selected state (§6.4).
        (Kind::Close, Some(view)) => {
            let next = select::close(io, user, view, tag).await?;
            return Ok((next, Selection::Deselect));
        }
        (Kind::Unselect, Some(_)) => {
            let next = io.ok(tag, "UNSELECT completed").await?;
            return Ok((next, Selection::Deselect));
        }
        (Kind::Expunge(uids), Some(view)) => expunge::run(io, user, view, tag, uids).await,
        (Kind::Replace(r), Some(view)) => append::replace(io, user, view, tag, r).await,
        (Kind::Search(search), Some(view)) => search::search(io, user, view, tag, search).await,
        (Kind::Sort(sort), Some(view)) => search::sort(io, user, view, tag, sort).await,
        (Kind::Thread(thread), Some(view)) => search::thread(io, user, view, tag, thread).await,
        (Kind::Fetch(fetch), Some(view)) => fetch::run(io, user, view, tag, fetch).await,
        (Kind::Store(store), Some(view)) => store::run(io, user, view, tag, store).await,
        (Kind::Copy(copy), Some(view)) => copy::run(io, user, view, tag, copy, false).await,
        (Kind::Move(copy), Some(view)) => copy::run(io, user, view, tag, copy, true).await,
        // What is left needs a selected mailbox (the commands of any state
        // and of the not-authenticated state were dispatched before).
        (_, None) => io.bad(Some(tag), "no mailbox selected").await,
        // Every command gets a reply, even one no state here handles.
        (_, Some(_)) => io.bad(Some(tag), "command not valid in this state").await,
    }?;
    Ok((next, Selection::Keep))
}
