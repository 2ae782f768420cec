//! The secondary's side of the link: [`Remote`], a `store::Backend` that
//! sends every request to the primary, and [`run`], which keeps the link
//! up (reconnecting with backoff and jitter) and routes replies and change
//! events back to their callers.
//!
//! Imports the siblings, `net` (TLS), `store` (the interface) and `util`.
//! Invariants: a call made while no link is up fails at once with a
//! temporary error (after a short grace for a blip); a call not answered
//! when the link drops is sent again, with the same key, once the link is
//! back (the primary applies a write once), and fails with a temporary
//! error at its deadline or when no link returned within
//! [`RESEND_WINDOW`]; sessions and their
//! event subscriptions die with the link that opened them (the primary
//! releases them), so a client logs in again; the secret never leaves
//! this process, only proofs of it.

use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use futures_lite::StreamExt;
use smol::Async;

use super::away::Away;
use super::{Bytes, Command, Frame, Join, Link, VERSION, proof};
use crate::store::types::{Change, Request, Response, SessionId};
use crate::store::{Backend, BoxFuture, StoreError};

/// How long a new call waits for the link to come back.
const LINK_GRACE: Duration = Duration::from_secs(2);
/// How long a call sent before the link dropped waits for it to return.
const RESEND_WINDOW: Duration = Duration::from_secs(10);

/// A storage backend on the other end of the link.
pub struct Remote {
    link: Link,
    /// What answers while the primary is away.
    away: Arc<Away>,
    /// Makes this process's call keys unlike any other's.
    instance: u64,
    next: AtomicU64,
    state: Mutex<State>,
}

/// A call waiting for its reply.
struct Waiting {
    /// Its encoded frame, sent again on a new link.
    frame: Bytes,
    caller: async_channel::Sender<Result<Response, StoreError>>,
    /// The run of the primary it was sent to, if it was.
    sent_to: Option<u64>,
    /// A read: a lost link ends its wait at once (and the secondary may
    /// answer it itself), as running it again is harmless.
    read: bool,
}

/// Why a read's wait ended early.
const LINK_LOST: &str = "the link to the storage primary was lost";

#[derive(Default)]
struct State {
    /// The live link's outgoing frames.
    out: Option<async_channel::Sender<Bytes>>,
    /// The run of the primary at the other end (`Frame::Hello`).
    boot: Option<u64>,
    /// When the last link went down.
    down_since: Option<Instant>,
    /// Calls waiting for a reply: their encoded frame, for a resend.
    pending: HashMap<u64, Waiting>,
    /// Event subscriptions: their session and where events go.
    subscriptions: HashMap<u64, (SessionId, async_channel::Sender<Change>)>,
    status: Status,
}

/// The link as `cluster status` shows it.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub connected_since: Option<i64>,
    pub round_trip: Option<Duration>,
    pub last_error: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unavailable() -> StoreError {
    StoreError::Unavailable("the storage primary is unreachable".into())
}

impl Remote {
    pub fn new(link: Link, away: Arc<Away>) -> Arc<Remote> {
        let mut instance = [0u8; 8];
        let _ = crate::util::random_fill(&mut instance);
        Arc::new(Remote {
            link,
            away,
            instance: u64::from_le_bytes(instance),
            next: AtomicU64::new(1),
            // Starting counts as a blip: the first link is given its grace.
            state: Mutex::new(State {
                down_since: Some(Instant::now()),
                ..State::default()
            }),
        })
    }

    /// For `cluster status`.
    pub fn status(&self, primary: &str) -> serde_json::Value {
        let (status, in_flight) = {
            let st = lock(&self.state);
            (st.status.clone(), st.pending.len())
        };
        serde_json::json!({
            "role": "secondary",
            "primary": primary,
            "connected_since": status.connected_since,
            "round_trip_ms": status.round_trip.map(|d| d.as_secs_f64() * 1000.0),
            "in_flight": in_flight,
            "last_error": status.last_error,
            "spooled": self.away.waiting().map(|w| w.len()).unwrap_or(0),
        })
    }

    /// Sends `bytes` on the live link, if there is one.
    fn send(&self, bytes: Bytes) {
        if let Some(out) = &lock(&self.state).out {
            let _ = out.try_send(bytes);
        }
    }

    /// Resolves when a call should stop waiting for its reply: at its
    /// deadline, or once the link has been down for [`RESEND_WINDOW`] (a
    /// primary that is gone for longer is not coming back in time to say
    /// what it did; the caller answers with a temporary failure).
    async fn give_up(&self) {
        let end = Instant::now() + self.link.timeout;
        loop {
            let now = Instant::now();
            if now >= end {
                return;
            }
            smol::Timer::after((end - now).min(Duration::from_millis(250))).await;
            let st = lock(&self.state);
            if st.out.is_none() && st.down_since.is_some_and(|t| t.elapsed() > RESEND_WINDOW) {
                return;
            }
        }
    }

    /// Whether a link is up, waiting for one while the last went down
    /// less than [`LINK_GRACE`] ago (a blip passes; a primary that is down
    /// is answered for at once).
    async fn linked(&self) -> bool {
        loop {
            let down_since = {
                let st = lock(&self.state);
                if st.out.is_some() {
                    return true;
                }
                st.down_since
            };
            match down_since {
                Some(t) if t.elapsed() < LINK_GRACE => {
                    smol::Timer::after(Duration::from_millis(50)).await;
                }
                _ => return false,
            }
        }
    }

    async fn call_remote(&self, request: Request) -> Result<Response, StoreError> {
        if !self.linked().await {
            return self.while_away(request).await;
        }
        if super::is_write(&request) {
            return self.call_keyed(request, None).await;
        }
        let again = request.clone();
        match self.call_keyed(request, None).await {
            Err(StoreError::Unavailable(why)) if why == LINK_LOST => {
                if self.linked().await {
                    self.call_keyed(again, None).await
                } else {
                    self.while_away(again).await
                }
            }
            other => other,
        }
    }

    /// What the secondary answers itself while its primary is away: mail
    /// for the aliases its directory names is sealed into its own spool;
    /// everything else is a temporary failure.
    async fn while_away(&self, request: Request) -> Result<Response, StoreError> {
        match request {
            Request::Lookup { address } => self
                .away
                .lookup(&address)
                .map(Response::Recipient)
                .ok_or_else(unavailable),
            Request::Deliver {
                address,
                message,
                to,
            } => {
                let away = self.away.clone();
                blocking::unblock(move || away.deliver(&address, &message, &to))
                    .await
                    .map(Response::Delivered)
            }
            _ => Err(unavailable()),
        }
    }

    /// Sends one request; `key` names a write for the primary's memory of
    /// what it applied (by default, this call's own).
    async fn call_keyed(
        &self,
        request: Request,
        key: Option<(u64, u64)>,
    ) -> Result<Response, StoreError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let read = !super::is_write(&request);
        let request = self.link.encode(&request)?;
        // The variant's number, for the log: bincode writes it first.
        let kind = request.first().copied().unwrap_or_default();
        let frame = Bytes::from(self.link.encode(&Frame::Call {
            id,
            key: key.unwrap_or((self.instance, id)),
            deadline_ms: u64::try_from(self.link.timeout.as_millis()).unwrap_or(u64::MAX),
            request,
        })?);
        let (tx, rx) = async_channel::bounded(1);
        let live = {
            let mut st = lock(&self.state);
            st.pending.insert(
                id,
                Waiting {
                    frame: frame.clone(),
                    caller: tx,
                    sent_to: None,
                    read,
                },
            );
            st.out.clone().zip(st.boot)
        };
        // Sent outside the lock, waiting for room in the link's queue; a
        // link that ends meanwhile leaves it to the next one.
        if let Some((out, boot)) = live
            && out.send(frame).await.is_ok()
            && let Some(w) = lock(&self.state).pending.get_mut(&id)
        {
            w.sent_to.get_or_insert(boot);
        }
        let reply = futures_lite::future::or(async { Some(rx.recv().await) }, async {
            self.give_up().await;
            None
        })
        .await;
        lock(&self.state).pending.remove(&id);
        match reply {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(StoreError::Unavailable(LINK_LOST.into())),
            None => {
                tracing::warn!(
                    request = kind,
                    id,
                    "no answer from the storage primary in time"
                );
                Err(unavailable())
            }
        }
    }
}

impl Backend for Remote {
    fn call(&self, request: Request) -> BoxFuture<'_, Result<Response, StoreError>> {
        Box::pin(self.call_remote(request))
    }

    fn subscribe(&self, session: SessionId) -> Result<async_channel::Receiver<Change>, StoreError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let frame = Bytes::from(self.link.encode(&Frame::Subscribe { id, session })?);
        let (tx, rx) = async_channel::unbounded();
        let mut st = lock(&self.state);
        let Some(out) = &st.out else {
            return Err(unavailable());
        };
        out.try_send(frame).map_err(|_| unavailable())?;
        st.subscriptions.insert(id, (session, tx));
        Ok(rx)
    }

    fn release(&self, session: SessionId) {
        lock(&self.state)
            .subscriptions
            .retain(|_, (s, _)| *s != session);
        if let Ok(frame) = self.link.encode(&Frame::Release { session }) {
            self.send(frame.into());
        }
    }
}

/// Keeps the link to the primary up until `stop` closes.
pub async fn run(
    remote: Arc<Remote>,
    join: Join,
    ex: Arc<smol::Executor<'static>>,
    stop: async_channel::Receiver<()>,
) {
    let tls = futures_rustls::TlsConnector::from(crate::net::tls::pinned_client(join.pin));
    let mut backoff = Duration::from_millis(250);
    loop {
        let attempt = futures_lite::future::or(
            async { Some(connect(&remote.link, &join, &tls).await) },
            async {
                let _ = stop.recv().await;
                None
            },
        )
        .await;
        match attempt {
            None => return,
            Some(Ok((ws, boot))) => {
                backoff = Duration::from_millis(250);
                tracing::info!(primary = %join.primary, "cluster link up");
                let lost = futures_lite::future::or(serve(&remote, ws, boot, &ex), async {
                    let _ = stop.recv().await;
                    None
                })
                .await;
                link_down(&remote, lost.clone());
                match lost {
                    None => return,
                    Some(why) => {
                        tracing::warn!(primary = %join.primary, reason = %why, "cluster link lost")
                    }
                }
            }
            Some(Err(e)) => {
                tracing::warn!(primary = %join.primary, error = %e, "cannot reach the storage primary");
                lock(&remote.state).status.last_error = Some(e);
            }
        }
        // Exponential backoff with jitter, up to 10 s.
        let mut r = [0u8; 2];
        let _ = crate::util::random_fill(&mut r);
        let jitter = Duration::from_millis(u64::from(u16::from_le_bytes(r)) % 250);
        if !crate::util::wait_or_stop(backoff + jitter, &stop).await {
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

type Ws = async_tungstenite::WebSocketStream<
    futures_rustls::client::TlsStream<Async<std::net::TcpStream>>,
>;

/// TCP, TLS with the pinned certificate, the WebSocket upgrade and the
/// proof of the secret.
async fn connect(
    link: &Link,
    join: &Join,
    tls: &futures_rustls::TlsConnector,
) -> Result<(Ws, u64), String> {
    let steps = async {
        let (host, port) = super::host_port(&join.primary)?;
        let addr = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("{host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}: no address"))?;
        let tcp = Async::<std::net::TcpStream>::connect(addr)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        // Requests are small and answered at once: no Nagle delay.
        let _ = tcp.get_ref().set_nodelay(true);
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("{host}: {e}"))?;
        let stream = tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let url = format!(
            "wss://{}/",
            join.primary
                .trim_start_matches("wss://")
                .trim_end_matches('/')
        );
        let (mut ws, _) =
            async_tungstenite::client_async_with_config(url, stream, Some(link.websocket()))
                .await
                .map_err(|e| format!("WebSocket: {e}"))?;
        let (nonce, boot) = match next_frame(link, &mut ws).await? {
            Frame::Hello {
                version,
                nonce,
                boot,
            } if version == VERSION => (nonce, boot),
            Frame::Hello { version, .. } => {
                return Err(format!(
                    "version skew: the primary speaks cluster link version {version}, this node {VERSION}; run the same sealmail release on every node"
                ));
            }
            _ => return Err("the primary did not greet".into()),
        };
        let mac = proof(&join.secret, &nonce);
        let bytes = link
            .encode(&Frame::Proof {
                version: VERSION,
                mac,
            })
            .map_err(|e| e.to_string())?;
        ws.send(Message::binary(bytes))
            .await
            .map_err(|e| e.to_string())?;
        match next_frame(link, &mut ws).await? {
            Frame::Welcome => Ok((ws, boot)),
            Frame::Refused(why) => Err(format!("the primary refused this node: {why}")),
            _ => Err("the primary answered the proof with something else".into()),
        }
    };
    futures_lite::future::or(steps, async {
        smol::Timer::after(super::HANDSHAKE_TIMEOUT).await;
        Err("the handshake with the primary timed out".into())
    })
    .await
}

/// Runs one operator's command on the primary over a link of its own
/// (`sealmail backup now` on a secondary), heartbeats included, however
/// long it takes.
pub async fn ask(join: &Join, link: &Link, command: &Command) -> Result<String, String> {
    let tls = futures_rustls::TlsConnector::from(crate::net::tls::pinned_client(join.pin));
    let (mut ws, _) = connect(link, join, &tls).await?;
    let command = link.encode(command).map_err(|e| e.to_string())?;
    let frame = link
        .encode(&Frame::Command { id: 1, command })
        .map_err(|e| e.to_string())?;
    ws.send(Message::binary(frame))
        .await
        .map_err(|e| e.to_string())?;
    let mut ping = 0u64;
    loop {
        let next =
            futures_lite::future::or(async { Some(next_frame(link, &mut ws).await) }, async {
                smol::Timer::after(super::SILENCE / 3).await;
                None
            })
            .await;
        match next {
            Some(Ok(Frame::Done { id: 1, result })) => {
                let _ = ws.close(None).await;
                return result;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("the link to the primary failed: {e}")),
            None => {
                ping += 1;
                let bytes = link.encode(&Frame::Ping(ping)).map_err(|e| e.to_string())?;
                ws.send(Message::binary(bytes))
                    .await
                    .map_err(|e| format!("the link to the primary failed: {e}"))?;
            }
        }
    }
}

async fn next_frame(link: &Link, ws: &mut Ws) -> Result<Frame, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return link.decode(&b),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(_)) | None => return Err("the primary closed the link".into()),
            Some(Err(e)) => return Err(e.to_string()),
        }
    }
}

/// Runs a live link until it fails; returns why.
async fn serve(
    remote: &Arc<Remote>,
    ws: Ws,
    boot: u64,
    ex: &Arc<smol::Executor<'static>>,
) -> Option<String> {
    let (sender, mut receiver) = ws.split();
    let (out_tx, out_rx) = async_channel::bounded::<Bytes>(1024);
    {
        let mut st = lock(&remote.state);
        // Calls that were waiting when the last link dropped go again,
        // with their keys: the primary applies each write once. Calls sent
        // to an earlier run of the primary fail instead: whether it applied
        // them died with it, and a temporary failure is the honest answer
        // (an SMTP client retries; it never got a 250).
        let mut again: Vec<(u64, Bytes)> = Vec::new();
        st.pending.retain(|id, w| {
            if w.sent_to.is_some_and(|b| b != boot) {
                let _ = w.caller.try_send(Err(StoreError::Unavailable(
                    "the storage primary restarted before it answered".into(),
                )));
                return false;
            }
            w.sent_to = Some(boot);
            again.push((*id, w.frame.clone()));
            true
        });
        again.sort_by_key(|(id, _)| *id);
        for (_, frame) in again {
            let _ = out_tx.try_send(frame);
        }
        st.boot = Some(boot);
        st.out = Some(out_tx.clone());
        st.status.connected_since = Some(crate::util::now_unix());
        st.status.last_error = None;
    }
    let writer = ex.spawn(super::write_frames(sender, out_rx));
    let started = Instant::now();
    let heartbeat = {
        let (remote, out) = (remote.clone(), out_tx.clone());
        ex.spawn(async move {
            loop {
                smol::Timer::after(super::SILENCE / 3).await;
                let now = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                let Ok(ping) = remote.link.encode(&Frame::Ping(now)) else {
                    return;
                };
                if out.send(ping.into()).await.is_err() {
                    return;
                }
            }
        })
    };
    let keeper = ex.spawn(keep(remote.clone()));
    let why = loop {
        let next = futures_lite::future::or(async { receiver.next().await.map(Some) }, async {
            smol::Timer::after(super::SILENCE).await;
            Some(None)
        })
        .await;
        let bytes = match next {
            None => break "the primary closed the link".to_string(),
            Some(None) => break "the primary went silent".to_string(),
            Some(Some(Err(e))) => break e.to_string(),
            Some(Some(Ok(Message::Binary(b)))) => b,
            Some(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Some(Some(Ok(_))) => break "the primary closed the link".to_string(),
        };
        match remote.link.decode::<Frame>(&bytes) {
            Ok(Frame::Reply { id, result }) => {
                let waiter = lock(&remote.state).pending.remove(&id);
                if let Some(w) = waiter {
                    let _ = w.caller.try_send(result);
                }
            }
            Ok(Frame::Event { id, change }) => {
                let mut st = lock(&remote.state);
                let gone = match st.subscriptions.get(&id) {
                    Some((_, tx)) => tx.try_send(change).is_err() && tx.is_closed(),
                    None => false,
                };
                if gone {
                    st.subscriptions.remove(&id);
                }
            }
            Ok(Frame::Pong(sent)) => {
                let now = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                lock(&remote.state).status.round_trip =
                    Some(Duration::from_micros(now.saturating_sub(sent)));
            }
            Ok(Frame::Ping(n)) => {
                if let Ok(pong) = remote.link.encode(&Frame::Pong(n)) {
                    let _ = out_tx.try_send(pong.into());
                }
            }
            Ok(_) => {}
            Err(e) => break format!("an undecodable frame from the primary: {e}"),
        }
    };
    drop(heartbeat);
    drop(keeper);
    out_tx.close();
    writer.await;
    Some(why)
}

/// While a link is up, every minute: the primary's directory is kept for
/// when it is away, and mail taken while it was is shipped, oldest first,
/// each file removed once the primary has it.
async fn keep(remote: Arc<Remote>) {
    loop {
        match remote.call_keyed(Request::Directory, None).await {
            Ok(Response::Directory(d)) => {
                let away = remote.away.clone();
                if let Err(e) = blocking::unblock(move || away.set_directory(d)).await {
                    tracing::warn!(error = %e, "cannot keep the primary's directory");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot fetch the primary's directory"),
        }
        let pause = match ship(&remote).await {
            // Mail sealed while the link came back may have missed this
            // pass: look again soon.
            Ok(shipped) if shipped > 0 => Duration::from_secs(5),
            Ok(_) => Duration::from_secs(60),
            Err(e) => {
                tracing::warn!(error = %e, "shipping mail taken while the primary was away stopped; retrying in 5 s");
                Duration::from_secs(5)
            }
        };
        smol::Timer::after(pause).await;
    }
}

/// Ships the local spool; returns how many files went. A file's key is
/// its name's hash: sent again (the reply was lost), it is applied once.
async fn ship(remote: &Remote) -> Result<usize, String> {
    use sha2::Digest;
    let away = remote.away.clone();
    let files = blocking::unblock(move || away.waiting())
        .await
        .map_err(|e| e.to_string())?;
    let mut shipped = 0usize;
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.as_encoded_bytes().to_vec())
            .unwrap_or_default();
        let hash = sha2::Sha256::digest(&name);
        let half = |r: std::ops::Range<usize>| {
            hash.get(r)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_le_bytes)
        };
        let key = (half(0..8), half(8..16));
        let p = path.clone();
        let (address, sealed) = blocking::unblock(move || Away::read(&p))
            .await
            .map_err(|e| e.to_string())?;
        let shipment = hash
            .get(..16)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .unwrap_or_default();
        let request = Request::DeliverSealed {
            address,
            sealed,
            shipment,
        };
        match remote.call_keyed(request, Some(key)).await {
            Ok(_) => {}
            Err(StoreError::NoSuchAddress | StoreError::NoMailbox) => {
                // The alias went while the primary was away: the mail stays
                // here for the operator, under a name shipping skips.
                tracing::error!(file = %path.display(), "mail taken while the primary was away has no mailbox there now; kept");
                let kept = path.with_extension("unshippable");
                let _ = std::fs::rename(&path, kept);
                continue;
            }
            Err(e) => return Err(e.to_string()),
        }
        let away = remote.away.clone();
        blocking::unblock(move || away.remove(&path))
            .await
            .map_err(|e| e.to_string())?;
        shipped += 1;
    }
    if shipped > 0 {
        tracing::info!(
            shipped,
            "mail taken while the primary was away is with it now"
        );
    }
    Ok(shipped)
}

/// The link is gone: no more sends; sessions' event streams end (their
/// sessions died with the link), waiting calls wait for the next link.
fn link_down(remote: &Remote, why: Option<String>) {
    let mut st = lock(&remote.state);
    st.out = None;
    st.down_since = Some(Instant::now());
    st.subscriptions.clear();
    // Reads stop waiting (their callers ask again or answer themselves);
    // writes wait for the next link, or their deadline.
    st.pending.retain(|_, w| !w.read);
    st.status.connected_since = None;
    st.status.last_error = why;
}
