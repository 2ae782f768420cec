//! The primary's side of the link: accepts secondaries on the cluster
//! listener, checks their proof of the secret, and runs their requests on
//! the local backend.
//!
//! Imports the siblings, `net` (TLS), `store` (the interface) and `util`.
//! Invariants: a link runs requests only after its proof held; it names
//! only sessions it opened, and releases all of them when it ends; a write
//! repeated with a key the primary remembers ([`Applied`]) is answered
//! from the first call, never applied twice; at most [`HANDSHAKING`] links
//! are in their handshake at once, so strangers hold little memory.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use futures_lite::StreamExt;
use smol::Async;

use super::{
    Bytes, Command, Frame, Link, Operator, Secret, VERSION, is_write, proof_holds, session_of,
};
use crate::store::types::{Request, Response, SessionId};
use crate::store::{Backend, StoreError};

/// Links in their handshake at once; more wait in the kernel's backlog.
const HANDSHAKING: usize = 4;
/// Write keys remembered, oldest forgotten first.
const REMEMBERED: usize = 20_000;
/// Requests one link may have running at once; past it, a request gets a
/// temporary error at once.
const IN_FLIGHT: usize = 4096;

/// What the primary's link listener shares.
pub struct Primary {
    pub backend: Arc<dyn Backend>,
    pub tls: futures_rustls::TlsAcceptor,
    pub secret: Secret,
    pub link: Link,
    pub applied: Applied,
    /// Runs operators' commands from other nodes (none: refused).
    operator: Option<Arc<dyn Operator>>,
    /// This run's random number (`Frame::Hello`).
    boot: u64,
    handshakes: smol::lock::Semaphore,
    links: Mutex<HashMap<u64, LinkInfo>>,
}

/// One connected secondary, for `cluster status`.
#[derive(Clone, Debug)]
pub struct LinkInfo {
    pub peer: SocketAddr,
    pub since: i64,
    pub in_flight: usize,
}

impl Primary {
    pub fn new(
        backend: Arc<dyn Backend>,
        tls: futures_rustls::TlsAcceptor,
        secret: Secret,
        link: Link,
        operator: Option<Arc<dyn Operator>>,
    ) -> Arc<Primary> {
        let mut boot = [0u8; 8];
        let _ = crate::util::random_fill(&mut boot);
        Arc::new(Primary {
            boot: u64::from_le_bytes(boot),
            backend,
            tls,
            secret,
            link,
            applied: Applied::default(),
            operator,
            handshakes: smol::lock::Semaphore::new(HANDSHAKING),
            links: Mutex::new(HashMap::new()),
        })
    }

    /// The secondaries connected now.
    pub fn links(&self) -> Vec<LinkInfo> {
        lock(&self.links).values().cloned().collect()
    }

    /// For `cluster status`.
    pub fn status(&self) -> serde_json::Value {
        let links: Vec<serde_json::Value> = self
            .links()
            .into_iter()
            .map(|l| {
                serde_json::json!({
                    "peer": l.peer.to_string(),
                    "connected_since": l.since,
                    "in_flight": l.in_flight,
                })
            })
            .collect();
        serde_json::json!({ "role": "primary", "links": links })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The replies of writes, by key, for retries.
#[derive(Default)]
pub struct Applied {
    inner: Mutex<AppliedInner>,
}

#[derive(Default)]
struct AppliedInner {
    replies: HashMap<(u64, u64), Option<Result<Response, StoreError>>>,
    order: VecDeque<(u64, u64)>,
}

/// What to do with a write's key.
enum Claim {
    /// New: run it.
    Run,
    /// Ran: its reply.
    Done(Result<Response, StoreError>),
    /// Running under another link's call: ask again later.
    Running,
}

impl Applied {
    fn claim(&self, key: (u64, u64)) -> Claim {
        let mut a = lock(&self.inner);
        match a.replies.get(&key) {
            Some(Some(reply)) => Claim::Done(reply.clone()),
            Some(None) => Claim::Running,
            None => {
                a.replies.insert(key, None);
                a.order.push_back(key);
                while a.order.len() > REMEMBERED {
                    if let Some(old) = a.order.pop_front() {
                        a.replies.remove(&old);
                    }
                }
                Claim::Run
            }
        }
    }

    fn finish(&self, key: (u64, u64), reply: &Result<Response, StoreError>) {
        let mut a = lock(&self.inner);
        if let Some(slot) = a.replies.get_mut(&key) {
            *slot = Some(reply.clone());
        }
    }
}

/// Accepts secondaries until `stop` closes.
pub async fn serve(
    primary: Arc<Primary>,
    listener: Async<TcpListener>,
    ex: Arc<smol::Executor<'static>>,
    stop: async_channel::Receiver<()>,
) {
    let mut next_link = 0u64;
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            let _ = stop.recv().await;
            None
        })
        .await;
        let (stream, peer) = match accepted {
            None => return,
            Some(Ok(a)) => a,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "cluster link accept failed");
                smol::Timer::after(Duration::from_millis(200)).await;
                continue;
            }
        };
        let _ = stream.get_ref().set_nodelay(true);
        next_link += 1;
        let (p, stop, ex2) = (primary.clone(), stop.clone(), ex.clone());
        let id = next_link;
        ex.spawn(async move {
            let served = futures_lite::future::or(link(&p, id, stream, peer, ex2), async {
                let _ = stop.recv().await;
                Ok(())
            })
            .await;
            if let Err(e) = served {
                tracing::warn!(%peer, error = %e, "cluster link refused or lost");
            }
            lock(&p.links).remove(&id);
        })
        .detach();
    }
}

type Ws = async_tungstenite::WebSocketStream<
    futures_rustls::server::TlsStream<Async<std::net::TcpStream>>,
>;

/// One secondary's link, from its TLS handshake to its end.
async fn link(
    p: &Arc<Primary>,
    id: u64,
    stream: Async<std::net::TcpStream>,
    peer: SocketAddr,
    ex: Arc<smol::Executor<'static>>,
) -> Result<(), String> {
    let ws = {
        let _slot = p.handshakes.acquire().await;
        let hs = handshake(p, stream);
        let timeout = async {
            smol::Timer::after(super::HANDSHAKE_TIMEOUT).await;
            Err("no proof of the cluster secret in time".to_string())
        };
        futures_lite::future::or(hs, timeout).await?
    };
    tracing::info!(%peer, "cluster secondary connected");
    lock(&p.links).insert(
        id,
        LinkInfo {
            peer,
            since: crate::util::now_unix(),
            in_flight: 0,
        },
    );
    let (sender, mut receiver) = ws.split();
    let (out_tx, out_rx) = async_channel::bounded::<Bytes>(256);
    let writer = ex.spawn(super::write_frames(sender, out_rx));
    let state = Arc::new(LinkState {
        sessions: Mutex::new(HashSet::new()),
        subscriptions: Mutex::new(HashMap::new()),
        out: out_tx,
    });
    let result = loop {
        let next = futures_lite::future::or(async { receiver.next().await.map(Some) }, async {
            smol::Timer::after(super::SILENCE).await;
            Some(None)
        })
        .await;
        let msg = match next {
            None => break Ok(()),
            Some(None) => break Err("the secondary went silent".to_string()),
            Some(Some(Err(e))) => break Err(format!("link error: {e}")),
            Some(Some(Ok(m))) => m,
        };
        let bytes = match msg {
            Message::Binary(b) => b,
            Message::Close(_) => break Ok(()),
            Message::Ping(_) | Message::Pong(_) => continue,
            _ => break Err("a frame that is not binary".to_string()),
        };
        let frame: Frame = match p.link.decode(&bytes) {
            Ok(f) => f,
            Err(e) => break Err(format!("an undecodable frame: {e}")),
        };
        drop(bytes);
        on_frame(p, id, &state, &ex, frame);
    };
    // Everything this link opened ends with it.
    let sessions: Vec<SessionId> = lock(&state.sessions).drain().collect();
    lock(&state.subscriptions).clear();
    for s in sessions {
        p.backend.release(s);
    }
    state.out.close();
    writer.await;
    result
}

/// TLS, the WebSocket upgrade, the challenge and its proof.
async fn handshake(p: &Primary, stream: Async<std::net::TcpStream>) -> Result<Ws, String> {
    let tls = p
        .tls
        .accept(stream)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let mut ws = async_tungstenite::accept_async_with_config(tls, Some(p.link.websocket()))
        .await
        .map_err(|e| format!("WebSocket handshake: {e}"))?;
    let mut nonce = [0u8; 32];
    crate::util::random_fill(&mut nonce).map_err(|e| e.to_string())?;
    let hello = p
        .link
        .encode(&Frame::Hello {
            version: VERSION,
            nonce,
            boot: p.boot,
        })
        .map_err(|e| e.to_string())?;
    ws.send(Message::binary(hello))
        .await
        .map_err(|e| e.to_string())?;
    let answer = match ws.next().await {
        Some(Ok(Message::Binary(b))) => b,
        _ => return Err("no proof of the cluster secret".into()),
    };
    let why = match p.link.decode::<Frame>(&answer) {
        Ok(Frame::Proof { version, .. }) if version != VERSION => format!(
            "version skew: this primary speaks cluster link version {VERSION}, the secondary {version}; run the same sealmail release on every node"
        ),
        Ok(Frame::Proof { mac, .. }) if proof_holds(&p.secret, &nonce, &mac) => String::new(),
        _ => "wrong cluster secret".into(),
    };
    if !why.is_empty() {
        if let Ok(f) = p.link.encode(&Frame::Refused(why.clone())) {
            let _ = ws.send(Message::binary(f)).await;
        }
        let _ = ws.close(None).await;
        return Err(why);
    }
    let welcome = p.link.encode(&Frame::Welcome).map_err(|e| e.to_string())?;
    ws.send(Message::binary(welcome))
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// What one link's requests share.
struct LinkState {
    /// Sessions this link opened: the only ones it may name.
    sessions: Mutex<HashSet<SessionId>>,
    /// Event forwarders, by the session they follow.
    subscriptions: Mutex<HashMap<SessionId, Vec<smol::Task<()>>>>,
    out: async_channel::Sender<Bytes>,
}

impl LinkState {
    fn send(&self, link: &Link, frame: &Frame) {
        if let Ok(bytes) = link.encode(frame) {
            // A full queue means the secondary stopped reading; the
            // silence check ends the link.
            let _ = self.out.try_send(bytes.into());
        }
    }
}

fn on_frame(
    p: &Arc<Primary>,
    link_id: u64,
    state: &Arc<LinkState>,
    ex: &Arc<smol::Executor<'static>>,
    frame: Frame,
) {
    match frame {
        Frame::Call {
            id,
            key,
            deadline_ms,
            request,
        } => {
            let received = Instant::now();
            if lock(&p.links)
                .get(&link_id)
                .is_some_and(|l| l.in_flight >= IN_FLIGHT)
            {
                state.send(
                    &p.link,
                    &Frame::Reply {
                        id,
                        result: Err(StoreError::Unavailable(
                            "too many requests in flight on this link".into(),
                        )),
                    },
                );
                return;
            }
            set_in_flight(p, link_id, 1);
            let (p, state) = (p.clone(), state.clone());
            ex.spawn(async move {
                let result = call(&p, &state, key, request).await;
                set_in_flight(&p, link_id, -1);
                if received.elapsed() > Duration::from_millis(deadline_ms) {
                    tracing::debug!(id, "a cluster reply after its caller's deadline");
                }
                let reply = Frame::Reply { id, result };
                match p.link.encode(&reply) {
                    Ok(bytes) => {
                        let _ = state.out.send(bytes.into()).await;
                    }
                    Err(_) => state.send(
                        &p.link,
                        &Frame::Reply {
                            id,
                            result: Err(StoreError::Unavailable(
                                "the reply is larger than the cluster link's frame limit".into(),
                            )),
                        },
                    ),
                }
            })
            .detach();
        }
        Frame::Subscribe { id, session } => {
            if !lock(&state.sessions).contains(&session) {
                return;
            }
            let Ok(events) = p.backend.subscribe(session) else {
                return;
            };
            let (link, st) = (p.link.clone(), state.clone());
            let task = ex.spawn(async move {
                while let Ok(change) = events.recv().await {
                    let Ok(bytes) = link.encode(&Frame::Event { id, change }) else {
                        continue;
                    };
                    if st.out.send(bytes.into()).await.is_err() {
                        return;
                    }
                }
            });
            lock(&state.subscriptions)
                .entry(session)
                .or_default()
                .push(task);
        }
        Frame::Release { session } => {
            if lock(&state.sessions).remove(&session) {
                lock(&state.subscriptions).remove(&session);
                p.backend.release(session);
            }
        }
        Frame::Command { id, command } => {
            let (p, state) = (p.clone(), state.clone());
            ex.spawn(async move {
                let result = match (p.link.decode::<Command>(&command), &p.operator) {
                    (Err(e), _) => Err(format!("the primary cannot read this command: {e}")),
                    (Ok(_), None) => Err("this primary takes no commands from other nodes".into()),
                    (Ok(c), Some(op)) => op.run(c).await,
                };
                if let Ok(bytes) = p.link.encode(&Frame::Done { id, result }) {
                    let _ = state.out.send(bytes.into()).await;
                }
            })
            .detach();
        }
        Frame::Ping(n) => state.send(&p.link, &Frame::Pong(n)),
        Frame::Pong(_) => {}
        other => {
            tracing::debug!(frame = ?std::mem::discriminant(&other), "unexpected cluster frame")
        }
    }
}

fn set_in_flight(p: &Primary, link_id: u64, delta: isize) {
    if let Some(info) = lock(&p.links).get_mut(&link_id) {
        info.in_flight = info.in_flight.saturating_add_signed(delta);
    }
}

/// Runs one request for the link, once per write key.
async fn call(
    p: &Primary,
    state: &LinkState,
    key: (u64, u64),
    request: Vec<u8>,
) -> Result<Response, StoreError> {
    let request: Request = p
        .link
        .decode(&request)
        .map_err(|e| StoreError::Internal(format!("the primary cannot read this request: {e}")))?;
    if let Some(s) = session_of(&request)
        && !lock(&state.sessions).contains(&s)
    {
        return Err(StoreError::NoSession);
    }
    let write = is_write(&request);
    if write {
        loop {
            match p.applied.claim(key) {
                Claim::Run => break,
                Claim::Done(reply) => return reply,
                Claim::Running => {
                    smol::Timer::after(Duration::from_millis(20)).await;
                }
            }
        }
    }
    let result = p.backend.call(request).await;
    if let Ok(Response::Unlocked(info)) = &result {
        lock(&state.sessions).insert(info.id);
        // A link that ended meanwhile released its sessions already.
        if state.out.is_closed() && lock(&state.sessions).remove(&info.id) {
            p.backend.release(info.id);
        }
    }
    if write {
        p.applied.finish(key, &result);
    }
    result
}
