//! Wiring: builds the subsystems from a `Config`, owns the executor and the
//! tasks, and stops them on shutdown.
//!
//! `reload` holds what SIGHUP changes in a running server; `setup` makes
//! and opens the data directory.
//!
//! May import every module; nothing imports `app` but `cli`. Invariants:
//! `run` returns only after every task it started has stopped.

mod reload;
mod reports;
mod setup;
mod web;
pub use web::policy as mta_sts_policy;

use reload::{Reloadable, reloads};
use setup::check_backup_place;
pub use setup::{
    BackupChoice, Demo, InitReport, ensure_demo, init, open_control, open_store, server_key,
};
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use smol::Async;

use crate::config::{Config, ConfigError};

use crate::imap::{self, Imap};
use crate::net::limits::{
    AuthThrottle, ConnLimiter, ProtocolSlots, ThrottlePolicy, default_max_connections,
    raise_open_files,
};
use crate::net::listener::{Refusals, accept_loop};
use crate::net::tls;
use crate::pop3::{self, Pop3};
use crate::smtp::{self, Smtp};
use crate::store::control::ControlError;
use crate::store::keys::KeyError;
use crate::store::local::LocalBackend;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
    #[error("{0}")]
    Invalid(String),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> AppError + '_ {
    move |e| AppError::Io(path.to_path_buf(), e)
}

/// The bound sockets of the protocol listeners. Binding is separate from
/// running so tests can bind port 0 and read the ports back.
pub struct Listeners {
    pub smtp: Async<TcpListener>,
    pub submission: Async<TcpListener>,
    pub submissions: Async<TcpListener>,
    pub imap: Async<TcpListener>,
    pub imaps: Async<TcpListener>,
    pub pop3: Async<TcpListener>,
    pub pop3s: Async<TcpListener>,
    /// A primary's cluster link listener (none on other roles).
    pub cluster: Option<Async<TcpListener>>,
    /// HTTP, HTTPS and metrics (each may be off).
    pub web: web::WebListeners,
    /// ManageSieve (may be off).
    pub managesieve: Option<Async<TcpListener>>,
}

impl Listeners {
    pub fn bind(config: &Config) -> Result<Listeners, AppError> {
        let bind = |addr: std::net::SocketAddr| {
            Async::<TcpListener>::bind(addr)
                .map_err(|e| AppError::Invalid(format!("cannot listen on {addr}: {e}")))
        };
        Ok(Listeners {
            smtp: bind(config.listen.smtp)?,
            submission: bind(config.listen.submission)?,
            submissions: bind(config.listen.submissions)?,
            imap: bind(config.listen.imap)?,
            imaps: bind(config.listen.imaps)?,
            pop3: bind(config.listen.pop3)?,
            pop3s: bind(config.listen.pop3s)?,
            cluster: (config.cluster.role == crate::config::Role::Primary)
                .then(|| bind(config.cluster.listen))
                .transpose()?,
            web: web::WebListeners {
                http: config.listen.http.map(bind).transpose()?,
                https: config.listen.https.map(bind).transpose()?,
                metrics: config.listen.metrics.map(bind).transpose()?,
            },
            managesieve: config.listen.managesieve.map(bind).transpose()?,
        })
    }
}

/// Holds the data directory's serve lock: one server per data directory,
/// and no mailbox file swapped (restore) under a running one. Released
/// when the file is dropped or the process ends.
pub fn serve_lock(data: &Path) -> Result<std::fs::File, AppError> {
    let path = data.join("serve.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_at(&path))?;
    f.try_lock().map_err(|_| {
        AppError::Invalid(format!(
            "{}: another sealmail process is using this data directory",
            path.display()
        ))
    })?;
    Ok(f)
}

/// The executor, every task on it, and what the accept loops share.
struct Tasks {
    ex: Arc<smol::Executor<'static>>,
    tasks: Vec<smol::Task<()>>,
    limiter: Arc<ConnLimiter>,
    /// Closed at shutdown: every loop and session watches it.
    stop: async_channel::Receiver<()>,
    /// Held by every connection task; `recv` fails once they are all gone.
    alive: async_channel::Sender<()>,
}

impl Tasks {
    fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(self.ex.spawn(task));
    }

    /// Runs an accept loop on `listener` whose connections run `session`.
    fn listen<S, F>(
        &mut self,
        listener: Async<TcpListener>,
        what: &str,
        protocol: &Arc<ProtocolSlots>,
        refusals: &'static Refusals,
        session: S,
    ) where
        S: Fn(crate::net::listener::Accepted) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        if let Ok(addr) = listener.get_ref().local_addr() {
            tracing::info!(%addr, "{what} listening");
        }
        let accept = accept_loop(
            self.ex.clone(),
            listener,
            self.limiter.clone(),
            protocol.clone(),
            refusals,
            session,
            self.stop.clone(),
            self.alive.clone(),
        );
        self.spawn(accept);
    }
}

/// What the protocol front ends share.
struct Shared {
    store: Store,
    tls: futures_rustls::TlsAcceptor,
    throttle: Arc<AuthThrottle>,
    memory: Arc<crate::util::MemoryBudget>,
    spills: Arc<crate::util::spill::Spills>,
    live: Reloadable,
    /// Sieve, for the MX's filters and ManageSieve's checks.
    sieve: Arc<crate::sieve::Interpreter>,
}

/// Runs the server on `listeners` until `shutdown` resolves, then stops
/// accepting, tells every session to end, and waits for them (at most ten
/// seconds).
pub async fn run(
    config: Arc<Config>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    let (_never, reload) = async_channel::bounded(1);
    serve(config, listeners, shutdown, reload).await
}

/// [`run`], and each message on `reload` (SIGHUP) re-reads `sealmail.toml`
/// and the certificate files ([`reloads`]).
pub async fn serve(
    config: Arc<Config>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    reload: async_channel::Receiver<()>,
) -> Result<(), AppError> {
    let _lock = serve_lock(&config.data_dir)?;
    // Snapshots and restores left by a crash (one running by hand now
    // keeps its files).
    crate::backup::clean_temp(&config.data_dir);
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let (alive_tx, alive_rx) = async_channel::bounded::<()>(1);
    let open_files = raise_open_files();
    let max_connections = config
        .max_connections
        .unwrap_or_else(|| default_max_connections(open_files));
    tracing::info!(open_files, max_connections, "connection limits");
    let mut tasks = Tasks {
        ex: Arc::new(smol::Executor::new()),
        tasks: Vec::new(),
        limiter: ConnLimiter::new(config.connections_per_ip, max_connections),
        stop: stop_rx,
        alive: alive_tx,
    };
    let live = Reloadable::new(&config, tasks.limiter.clone());
    let certificates = tls::Certificates::load(&config.tls_cert, &config.tls_key)
        .map_err(|e| AppError::Invalid(e.to_string()))?;
    tasks.spawn(reloads(
        config.clone(),
        (certificates.clone(), live.clone()),
        reload,
        tasks.stop.clone(),
    ));
    let tls =
        tls::server_config(certificates.clone()).map_err(|e| AppError::Invalid(e.to_string()))?;
    let tls = futures_rustls::TlsAcceptor::from(tls);
    if config.cluster.role != crate::config::Role::Secondary {
        check_backup_place(&config)?;
    }
    let servers = web::servers(&config.hostname, &listeners);
    let (backend, store) = open_role_store(&config, listeners.cluster, &mut tasks)?;
    let spill_dir = config.data_dir.join("spill");
    // Spill files left by a crash are removed here.
    let spills = crate::util::spill::Spills::open(&spill_dir, config.message_disk)
        .map_err(io_at(&spill_dir))?;
    let shared = Shared {
        store,
        tls,
        throttle: AuthThrottle::new(ThrottlePolicy {
            checks_global: config.password_checks,
            ..ThrottlePolicy::default()
        }),
        // Receivers leave room to process the largest message (APPEND
        // takes five times its size).
        memory: crate::util::MemoryBudget::new(
            config.message_memory,
            config.message_memory - 5 * config.limits.max_message_bytes,
        ),
        spills,
        live,
        sieve: Arc::new(crate::sieve::Interpreter::new(&config.hostname)),
    };
    let Listeners {
        smtp,
        submission,
        submissions,
        pop3: pop3_plain,
        pop3s,
        imap: imap_plain,
        imaps,
        cluster: _,
        web: web_listeners,
        managesieve,
    } = listeners;
    web::start(
        &config,
        web_listeners,
        servers,
        shared.store.clone(),
        certificates,
        &mut tasks,
    )?;
    let queue = start_smtp(
        &config,
        &shared,
        [smtp, submission, submissions],
        &mut tasks,
    )?;
    tasks.spawn(web::gauges(
        queue,
        shared.throttle.clone(),
        config.data_dir.clone(),
        tasks.stop.clone(),
    ));
    let pop3 = Arc::new(Pop3 {
        store: shared.store.clone(),
        tls: shared.tls.clone(),
        throttle: shared.throttle.clone(),
        dev: config.dev,
    });
    let pop3_slots = tasks.limiter.protocol();
    for (listener, implicit_tls, what) in [(pop3_plain, false, "POP3"), (pop3s, true, "POP3S")] {
        let (ctx, stop) = (pop3.clone(), tasks.stop.clone());
        let session = move |acc| pop3::serve(ctx.clone(), acc, implicit_tls, stop.clone());
        tasks.listen(listener, what, &pop3_slots, &pop3::REFUSALS, session);
    }
    let imap = Arc::new(Imap {
        store: shared.store.clone(),
        tls: shared.tls.clone(),
        throttle: shared.throttle.clone(),
        dev: config.dev,
        max_message_bytes: config.limits.max_message_bytes,
        hostname: config.hostname.clone(),
        memory: shared.memory.clone(),
        spills: shared.spills.clone(),
    });
    let imap_slots = tasks.limiter.protocol();
    for (listener, implicit_tls, what) in [(imap_plain, false, "IMAP"), (imaps, true, "IMAPS")] {
        let (ctx, stop) = (imap.clone(), tasks.stop.clone());
        let session = move |acc| imap::serve(ctx.clone(), acc, implicit_tls, stop.clone());
        tasks.listen(listener, what, &imap_slots, &imap::REFUSALS, session);
    }
    if let Some(listener) = managesieve {
        let ctx = Arc::new(crate::managesieve::ManageSieve {
            store: shared.store.clone(),
            tls: shared.tls.clone(),
            throttle: shared.throttle.clone(),
            interpreter: shared.sieve.clone(),
            dev: config.dev,
        });
        let (slots, stop) = (tasks.limiter.protocol(), tasks.stop.clone());
        let session = move |acc| crate::managesieve::serve(ctx.clone(), acc, stop.clone());
        tasks.listen(
            listener,
            "ManageSieve",
            &slots,
            &crate::managesieve::REFUSALS,
            session,
        );
    }
    if let Some(backend) = &backend {
        start_backups(&config, backend, &mut tasks)?;
    }
    let stop = tasks.stop.clone();
    tasks.spawn(sweeper(backend, shared.throttle, config.key_ttl, stop));
    let workers = start_workers(&tasks);
    tracing::info!(data = %config.data_dir.display(), hostname = %config.hostname, "sealmail is ready");
    tasks.ex.run(shutdown).await;
    tracing::info!("shutting down: sessions are told to end");
    stop_tx.close();
    let Tasks {
        ex, tasks, alive, ..
    } = tasks;
    drop(alive);
    ex.run(async {
        for t in tasks {
            t.await;
        }
        let drained = async {
            let _ = alive_rx.recv().await;
        };
        let deadline = async {
            smol::Timer::after(Duration::from_secs(10)).await;
        };
        futures_lite::future::or(drained, deadline).await;
    })
    .await;
    for w in workers {
        let _ = w.join();
    }
    tracing::info!("stopped");
    Ok(())
}

/// The store this node's sessions use: the local backend (standalone and
/// primary, which also starts its link listener), or the primary's over
/// the cluster link (secondary, which opens no mailbox, control database
/// or spool).
fn open_role_store(
    config: &Config,
    link_listener: Option<Async<TcpListener>>,
    tasks: &mut Tasks,
) -> Result<(Option<Arc<LocalBackend>>, Store), AppError> {
    use crate::cluster::{Join, Link, primary, secondary};
    use crate::config::Role;
    let link = Link::new(config.limits.max_message_bytes, config.cluster.timeout);
    if config.cluster.role == Role::Secondary {
        let mut join = Join::load(&config.data_dir).map_err(AppError::Invalid)?;
        if let Some(url) = &config.cluster.primary {
            crate::cluster::host_port(url).map_err(AppError::Invalid)?;
            join.primary = url.clone();
        }
        tracing::info!(primary = %join.primary, "secondary: storage is on the primary");
        let away =
            crate::cluster::away::Away::open(&config.data_dir).map_err(io_at(&config.data_dir))?;
        let remote = secondary::Remote::new(link, Arc::new(away));
        let stop = tasks.stop.clone();
        let (r, url) = (remote.clone(), join.primary.clone());
        tasks.spawn(crate::cluster::report_status(
            config.data_dir.clone(),
            move || r.status(&url),
            stop.clone(),
        ));
        tasks.spawn(secondary::run(remote.clone(), join, tasks.ex.clone(), stop));
        return Ok((None, Store::new(remote)));
    }
    let (backend, store) = open_store(config)?;
    if let Some(listener) = link_listener {
        let secret = crate::cluster::primary_secret(&config.data_dir, false)
            .map_err(|e| AppError::Invalid(e.to_string()))?;
        let (cert, key) = crate::cluster::link_pair(&config.data_dir);
        let link_tls = tls::Certificates::load(&cert, &key)
            .and_then(tls::server_config)
            .map_err(|e| {
                AppError::Invalid(format!(
                    "the cluster link's certificate: {e} (run `sealmail cluster init`)"
                ))
            })?;
        let link_tls = futures_rustls::TlsAcceptor::from(link_tls);
        tracing::info!(addr = %config.cluster.listen, "cluster link listening");
        let operator = Arc::new(Operator {
            config: config.clone(),
        });
        let primary =
            primary::Primary::new(backend.clone(), link_tls, secret, link, Some(operator));
        let (ex, stop) = (tasks.ex.clone(), tasks.stop.clone());
        let p = primary.clone();
        tasks.spawn(crate::cluster::report_status(
            config.data_dir.clone(),
            move || p.status(),
            stop.clone(),
        ));
        tasks.spawn(primary::serve(primary, listener, ex, stop));
    }
    Ok((Some(backend), store))
}

/// Runs what an operator on a secondary asks of this primary.
struct Operator {
    config: Config,
}

impl crate::cluster::Operator for Operator {
    fn run(
        &self,
        command: crate::cluster::Command,
    ) -> crate::store::BoxFuture<'_, Result<String, String>> {
        let config = self.config.clone();
        Box::pin(blocking::unblock(move || match command {
            crate::cluster::Command::BackupNow { address, password } => {
                let password = zeroize::Zeroizing::new(password);
                let mut control = open_control(&config).map_err(|e| e.to_string())?;
                let outcome =
                    crate::backup::by_password(&config, &mut control, &address, &password, false)
                        .map_err(|e| e.to_string())?;
                tracing::info!(address = %crate::util::log::addr(&address), "backup asked for by a secondary");
                Ok(outcome.describe(&address))
            }
        }))
    }
}

/// The MX and submission listeners (in that order: 25, 587, 465), the
/// DNS-based checks, the relay, and the outbound queue with its worker
/// (returned, for its gauges).
fn start_smtp(
    config: &Config,
    shared: &Shared,
    [mx, starttls, implicit]: [Async<TcpListener>; 3],
    tasks: &mut Tasks,
) -> Result<Arc<crate::queue::Queue>, AppError> {
    let dns = match crate::dns::Dns::new(&config.nameservers) {
        Ok(d) => Some(d),
        Err(e) => {
            // Mail still flows; the operator is told loudly what is off.
            tracing::error!(error = %e, "no DNS resolver: SPF/DKIM/DMARC checks and forwarding are OFF; set dns.nameservers in sealmail.toml");
            None
        }
    };
    if let Some(d) = dns.clone() {
        tasks.spawn(log_dns_cache(d, tasks.stop.clone()));
    }
    let server_key = server_key(&config.data_dir)?;
    let dnsbl = dns
        .clone()
        .filter(|_| !config.mx.dnsbl.is_empty())
        .map(|d| {
            Arc::new(smtp::Dnsbl {
                dns: d,
                zones: config.mx.dnsbl.clone(),
            })
        });
    let relay = match dns.clone() {
        Some(d) => Some(Arc::new(
            crate::relay::Relay::new(d, config.relay.clone(), &config.hostname, &server_key)
                .map_err(|e| AppError::Invalid(format!("relay.ca_file: {e}")))?
                .keep_state_in(&config.data_dir),
        )),
        None => None,
    };
    let auth = dns.clone().filter(|_| config.mx.check_senders).map(|d| {
        let auth = smtp::InboundAuth::new(
            d,
            &config.hostname,
            &config.mx.authserv_id,
            config.mx.dmarc_reject,
        );
        Arc::new(match &relay {
            Some(r) if config.mx.dmarc_reports => auth.with_reports(r.dmarc_results.clone()),
            _ => auth,
        })
    });
    let queue = Arc::new(crate::queue::Queue::open(
        &config.data_dir,
        &server_key,
        Arc::new(crate::queue::SystemClock),
        config.queue.clone(),
    )?);
    drop(server_key);
    let (wake_tx, wake_rx) = async_channel::bounded::<()>(1);
    let deliverer = Arc::new(crate::queue::worker::Deliverer {
        queue: queue.clone(),
        relay: relay.clone(),
        store: shared.store.clone(),
        hostname: config.hostname.clone(),
        mime_limits: config.limits.mime,
    });
    let stop = tasks.stop.clone();
    tasks.spawn(crate::queue::worker::run(deliverer, wake_rx, stop));
    if let Some(relay) = &relay {
        let reporter = reports::Reporter {
            relay: relay.clone(),
            queue: queue.clone(),
            store: shared.store.clone(),
            hostname: config.hostname.clone(),
            wake: wake_tx.clone(),
            send: config.relay.tls_reports,
        };
        tasks.spawn(reports::run(reporter, tasks.stop.clone()));
    }
    let filters = Arc::new(smtp::filter::Filters {
        interpreter: shared.sieve.clone(),
        queue: queue.clone(),
        wake: wake_tx.clone(),
    });
    let submission = Arc::new(smtp::submit::Submission::new(
        queue.clone(),
        wake_tx,
        shared.throttle.clone(),
        shared.live.send_limits.clone(),
        config.hide_client_address,
    ));
    let inbound_rate = Arc::new(crate::net::rate::InboundRate::new(
        config.mx.client_messages_per_minute,
        config.mx.client_recipients_per_minute,
        config.mx.rate_exempt.clone(),
    ));
    let smtp_ctx = |submission: Option<Arc<smtp::submit::Submission>>| {
        Arc::new(Smtp {
            auth: auth.clone(),
            relay: relay.clone(),
            delivered: Default::default(),
            store: shared.store.clone(),
            tls: shared.tls.clone(),
            hostname: config.hostname.clone(),
            authserv_id: config.mx.authserv_id.clone(),
            refuse_executables: config.mx.refuse_executables,
            allow_executables: Arc::new(config.mx.allow_executables.clone()),
            clamd: config.mx.clamd.clone().map(Arc::new),
            rspamd: config.mx.rspamd.clone().map(Arc::new),
            inbound_rate: inbound_rate.clone(),
            dnsbl: dnsbl.clone(),
            max_message_bytes: config.limits.max_message_bytes,
            mime_limits: config.limits.mime,
            timeouts: shared.live.smtp_timeouts.clone(),
            max_recipients: shared.live.max_recipients.clone(),
            memory: shared.memory.clone(),
            spills: shared.spills.clone(),
            filters: submission.is_none().then(|| filters.clone()),
            submission,
        })
    };
    let listeners = [
        (mx, false, None, "SMTP (MX)"),
        (
            starttls,
            false,
            Some(submission.clone()),
            "submission (STARTTLS)",
        ),
        (implicit, true, Some(submission), "submission (TLS)"),
    ];
    let (mx_slots, submission_slots) = (tasks.limiter.protocol(), tasks.limiter.protocol());
    for (listener, implicit_tls, submission, what) in listeners {
        let slots = if submission.is_some() {
            &submission_slots
        } else {
            &mx_slots
        };
        let (ctx, stop) = (smtp_ctx(submission), tasks.stop.clone());
        let session = move |acc| smtp::serve(ctx.clone(), acc, implicit_tls, stop.clone());
        tasks.listen(listener, what, slots, &smtp::REFUSALS, session);
    }
    Ok(queue)
}

/// The backup scheduler, when `[backup]` schedules backups.
fn start_backups(
    config: &Config,
    backend: &Arc<LocalBackend>,
    tasks: &mut Tasks,
) -> Result<(), AppError> {
    let Some(policy) = config.backup_policy else {
        return Ok(());
    };
    let target = match crate::backup::Target::from_config(config) {
        Ok(target) => target,
        Err(e) => {
            tracing::error!(error = %e, "scheduled backups are OFF: cannot open the backup target");
            return Ok(());
        }
    };
    let scheduler = Arc::new(
        crate::backup::scheduler::Scheduler::new(
            target,
            &config.data_dir,
            policy,
            Arc::new(crate::backup::scheduler::SystemClock),
        )
        .with_server_files(&*server_key(&config.data_dir)?),
    );
    let stop = tasks.stop.clone();
    tasks.spawn(crate::backup::scheduler::run(
        scheduler,
        backend.clone(),
        stop,
    ));
    Ok(())
}

/// This thread and one more per further core (up to four in all) run the
/// connection tasks; SQLite and argon2 run on the blocking pool.
fn start_workers(tasks: &Tasks) -> Vec<std::thread::JoinHandle<()>> {
    let cores = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    (1..cores)
        .map(|_| {
            let ex = tasks.ex.clone();
            let stop = tasks.stop.clone();
            std::thread::spawn(move || {
                smol::block_on(ex.run(async move { while stop.recv().await.is_ok() {} }))
            })
        })
        .collect()
}

/// Every 30 s, or every half key TTL where that is shorter (so an idle
/// key's files close within 1.5 TTL): drops idle keys (closing their
/// files) and old login failures, then gives the heap's free pages back
/// to the OS.
async fn sweeper(
    backend: Option<Arc<LocalBackend>>,
    throttle: Arc<AuthThrottle>,
    key_ttl: Duration,
    stop: async_channel::Receiver<()>,
) {
    let every = (key_ttl / 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
    while crate::util::wait_or_stop(every, &stop).await {
        if let Some(b) = &backend {
            b.sweep();
        }
        throttle.sweep();
        // What the closed files, ended sessions and finished transfers
        // freed leaves the resident set now, not at the next peak.
        sealmail_heap::trim();
    }
}

/// Logs the DNS cache's hits and misses every ten minutes that had
/// lookups, so an operator sees how often the resolver is asked.
async fn log_dns_cache(dns: crate::dns::Dns, stop: async_channel::Receiver<()>) {
    let mut last = (0, 0);
    while crate::util::wait_or_stop(Duration::from_secs(600), &stop).await {
        let (hits, misses) = dns.caches().counts();
        if (hits, misses) != last {
            let (h, m) = (hits - last.0, misses - last.1);
            tracing::info!(
                hits = h,
                misses = m,
                hit_rate = format!("{:.0}%", 100.0 * h as f64 / (h + m).max(1) as f64),
                entries = dns.caches().len(),
                "DNS cache, last ten minutes"
            );
            last = (hits, misses);
        }
    }
}
