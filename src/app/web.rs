//! The HTTP, HTTPS and metrics listeners and the ACME client, wired from
//! the `Config` and the bound mail listeners.
//!
//! Imports the parent's imports and `web`. Invariants: ACME runs only
//! where the control database is (standalone and primary); the autoconfig
//! documents name the ports the mail listeners are bound to.

use std::net::TcpListener;
use std::sync::Arc;

use smol::Async;

use super::{AppError, Tasks};
use crate::config::{Config, Role};
use crate::net::tls;
use crate::proto::autoconfig::Servers;
use crate::proto::mta_sts::Policy;
use crate::web::{self, Port, Site};

/// The web listeners, bound with the others.
pub struct WebListeners {
    pub http: Option<Async<TcpListener>>,
    pub https: Option<Async<TcpListener>>,
    pub metrics: Option<Async<TcpListener>>,
}

/// The MTA-STS policy every domain publishes: this server is its MX.
pub fn policy(config: &Config) -> Policy {
    Policy {
        mode: config.web.mta_sts,
        mx: vec![config.hostname.clone()],
        max_age: config.web.mta_sts_max_age,
    }
}

/// Starts the ACME client (when `[acme]` is on) and the web listeners.
pub(super) fn start(
    config: &Config,
    listeners: WebListeners,
    servers: Servers,
    store: crate::store::Store,
    certificates: Arc<tls::Certificates>,
    tasks: &mut Tasks,
) -> Result<(), AppError> {
    crate::util::metrics::set(
        "process_start_time_seconds",
        &[],
        crate::util::now_unix() as f64,
    );
    let tokens = Arc::new(web::acme::Tokens::default());
    if let Some(settings) = &config.acme {
        if config.cluster.role == Role::Secondary {
            tracing::warn!(
                "acme is on, but a secondary gets no certificates itself: copy the primary's tls/ files"
            );
        } else {
            let control_config = config.clone();
            let client = Arc::new(web::acme::Client {
                settings: settings.clone(),
                dir: config.data_dir.join("tls").join("acme"),
                hostname: config.hostname.clone(),
                certificates: certificates.clone(),
                tokens: tokens.clone(),
                domains: Arc::new(move || served_domains(&control_config)),
            });
            client.load_issued();
            let every = settings.check_every;
            tasks.spawn(web::acme::run(client, every, tasks.stop.clone()));
        }
    }
    let site = Arc::new(Site {
        store,
        servers,
        policy: policy(config),
        tokens,
    });
    let web_tls =
        tls::web_server_config(certificates).map_err(|e| AppError::Invalid(e.to_string()))?;
    let web_tls = futures_rustls::TlsAcceptor::from(web_tls);
    let slots = tasks.limiter.protocol();
    let ports = [
        (listeners.http, Port::Http, None, "HTTP"),
        (listeners.https, Port::Https, Some(web_tls), "HTTPS"),
        (listeners.metrics, Port::Metrics, None, "metrics"),
    ];
    for (listener, port, tls, what) in ports {
        let Some(listener) = listener else { continue };
        let (site, stop) = (site.clone(), tasks.stop.clone());
        let session = move |acc| web::serve(site.clone(), acc, tls.clone(), port, stop.clone());
        tasks.listen(listener, what, &slots, &web::REFUSALS, session);
    }
    Ok(())
}

/// Every 15 s until `stop`: the outbound queue's size and age, the
/// sealed spool's bytes, and the banned addresses, for `/metrics`.
pub(super) async fn gauges(
    queue: Arc<crate::queue::Queue>,
    throttle: Arc<crate::net::limits::AuthThrottle>,
    data_dir: std::path::PathBuf,
    stop: async_channel::Receiver<()>,
) {
    use crate::util::metrics::set;
    loop {
        let (q, dir) = (queue.clone(), data_dir.clone());
        let (waiting, spool) =
            blocking::unblock(move || (q.waiting(), crate::store::spool::all_pending_bytes(&dir)))
                .await;
        if let Ok((n, oldest)) = waiting {
            set("sealmail_queue_messages", &[], n as f64);
            let age = oldest.map_or(0, |t| (crate::util::now_unix() - t).max(0));
            set("sealmail_queue_oldest_age_seconds", &[], age as f64);
        }
        set("sealmail_spool_bytes", &[], spool as f64);
        set(
            "sealmail_banned_addresses",
            &[],
            throttle.banned_count() as f64,
        );
        if !crate::util::wait_or_stop(std::time::Duration::from_secs(15), &stop).await {
            return;
        }
    }
}

/// The domains of the control database (none when it cannot be read:
/// the error is logged).
fn served_domains(config: &Config) -> Vec<String> {
    match super::open_control(config).and_then(|c| {
        c.list_domains()
            .map_err(|e| AppError::Invalid(e.to_string()))
    }) {
        Ok(list) => list.into_iter().map(|(name, _)| name).collect(),
        Err(e) => {
            tracing::error!(error = %e, "ACME: cannot read the domains");
            Vec::new()
        }
    }
}

/// Where clients reach the mail ports: the server's name and the ports
/// the listeners are bound to.
pub fn servers(hostname: &str, listeners: &super::Listeners) -> Servers {
    let port = |l: &Async<TcpListener>| l.get_ref().local_addr().ok().map(|a| a.port());
    Servers {
        hostname: hostname.to_string(),
        imaps: port(&listeners.imaps),
        imap: port(&listeners.imap),
        pop3s: port(&listeners.pop3s),
        pop3: port(&listeners.pop3),
        submissions: port(&listeners.submissions),
        submission: port(&listeners.submission),
    }
}
