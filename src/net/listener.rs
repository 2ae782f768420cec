//! The accept loop: admits a connection (per-address cap), then runs its
//! session as a task that cannot take the server down.
//!
//! Imports `net::limits`. Invariants: the loop stops when `stop` closes;
//! each task holds a clone of `alive`, so whoever owns its receiver learns
//! when the last connection ended.

use std::future::Future;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_lite::FutureExt;
use smol::Async;

use super::limits::{ConnGuard, ConnLimiter};

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

/// Accepts until `stop` closes. `refuse` writes a last line to a client
/// over its address' cap; `session` runs each admitted connection.
pub async fn accept_loop<S, F>(
    ex: Arc<smol::Executor<'static>>,
    listener: Async<TcpListener>,
    limiter: Arc<ConnLimiter>,
    refuse: &'static [u8],
    session: S,
    stop: async_channel::Receiver<()>,
    alive: async_channel::Sender<()>,
) where
    S: Fn(Accepted) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
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
                tracing::warn!(error = %e, "accept failed");
                smol::Timer::after(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(guard) = limiter.admit(peer.ip()) else {
            ex.spawn(async move {
                let mut tcp = tcp;
                let _ = futures_lite::AsyncWriteExt::write_all(&mut tcp, refuse).await;
            })
            .detach();
            continue;
        };
        let fut = session(Accepted {
            tcp,
            peer,
            guard: Some(guard),
        });
        let token = alive.clone();
        ex.spawn(async move {
            if AssertUnwindSafe(fut).catch_unwind().await.is_err() {
                PANICS.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%peer, "a connection task panicked; the connection was closed");
            }
            drop(token);
        })
        .detach();
    }
}
