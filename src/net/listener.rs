//! The accept loop: admits a connection (per-address, per-protocol and
//! server-wide caps), then runs its session as a task that cannot take the
//! server down.
//!
//! Imports `net::limits`. Invariants: the loop stops when `stop` closes;
//! each task holds a clone of `alive`, so whoever owns its receiver learns
//! when the last connection ended; a refused client always gets its
//! protocol's last line, never silence; failed accepts (out of
//! descriptors) pause the loop, doubling up to a second, and log once.

use std::future::Future;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_lite::FutureExt;
use smol::Async;

use super::limits::{ConnGuard, ConnLimiter, Full, ProtocolSlots};

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Connection tasks that panicked since the process started.
pub fn panics() -> usize {
    PANICS.load(Ordering::Relaxed)
}

/// What a session task receives.
pub struct Accepted {
    pub tcp: Async<TcpStream>,
    pub peer: SocketAddr,
    pub guard: Option<ConnGuard>,
}

/// The last lines a refused client reads, in its protocol.
pub struct Refusals {
    /// The protocol's name in metrics (`smtp`, `imap`, `http`, ...).
    pub protocol: &'static str,
    /// Its address holds as many connections as it may.
    pub per_ip: &'static [u8],
    /// The server (or the protocol's share of it) is full.
    pub busy: &'static [u8],
}

/// The longest pause after failed accepts in a row (out of descriptors).
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// Accepts until `stop` closes. A refused client reads its `refusals`
/// line and is closed; `session` runs each admitted connection.
#[allow(clippy::too_many_arguments)]
pub async fn accept_loop<S, F>(
    ex: Arc<smol::Executor<'static>>,
    listener: Async<TcpListener>,
    limiter: Arc<ConnLimiter>,
    protocol: Arc<ProtocolSlots>,
    refusals: &'static Refusals,
    session: S,
    stop: async_channel::Receiver<()>,
    alive: async_channel::Sender<()>,
) where
    S: Fn(Accepted) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    // Failed accepts in a row: the pause doubles, and one line is logged
    // per run of failures, not one per failure.
    let mut failures: u32 = 0;
    loop {
        let next = async { Some(listener.accept().await) };
        let stopped = async {
            let _ = stop.recv().await;
            None
        };
        let Some(accepted) = next.or(stopped).await else {
            break;
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(error = %e, "accept failed; pausing this listener");
                }
                let pause = Duration::from_millis(10) * (1u32 << failures.min(7));
                smol::Timer::after(pause.min(MAX_ACCEPT_PAUSE)).await;
                continue;
            }
        };
        if failures > 0 {
            tracing::info!(failures, "accepting again");
            failures = 0;
        }
        let guard = match limiter.admit(peer.ip(), &protocol) {
            Ok(g) => g,
            Err(full) => {
                crate::util::metrics::inc(
                    "sealmail_connections_refused_total",
                    &[("protocol", refusals.protocol)],
                );
                let line = match full {
                    Full::Address => refusals.per_ip,
                    Full::Server => {
                        tracing::warn!(%peer, "connection refused: server busy");
                        refusals.busy
                    }
                };
                ex.spawn(async move {
                    let mut tcp = tcp;
                    let write = futures_lite::AsyncWriteExt::write_all(&mut tcp, line);
                    // A client that does not read gets no more than this.
                    let _ = write
                        .or(async {
                            smol::Timer::after(Duration::from_secs(5)).await;
                            Ok(())
                        })
                        .await;
                })
                .detach();
                continue;
            }
        };
        let fut = session(Accepted {
            tcp,
            peer,
            guard: Some(guard),
        });
        let token = alive.clone();
        let counted = crate::util::metrics::Session::open(refusals.protocol);
        ex.spawn(async move {
            let _counted = counted;
            if AssertUnwindSafe(fut).catch_unwind().await.is_err() {
                PANICS.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%peer, "a connection task panicked; the connection was closed");
            }
            drop(token);
        })
        .detach();
    }
}
