//! What the HTTP(S) listener answers: by port, then by the host the client
//! named and the path.
//!
//! Imports `openpgp::wkd`, `proto::{autoconfig, mta_sts}`, the `store`
//! interface, `util`.
//! Invariants: a document about a domain is only given for a domain
//! served here (asked of the store, as the MX would); a path with a `..`
//! segment is refused before it is looked at; the MTA-STS policy is only
//! served over HTTPS, as are the Web Key Directory's keys (only those
//! their owners published); plain HTTP answers ACME's tokens and autoconfig and
//! redirects the rest to HTTPS.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::{Method, StatusCode};

use super::{Port, Reply, text, with_type};
use crate::openpgp::wkd;
use crate::proto::autoconfig::{self, Servers};
use crate::proto::mta_sts::Policy;
use crate::store::{Recipient, Store};

/// What the site knows.
pub struct Site {
    pub store: Store,
    /// Where clients reach the mail ports.
    pub servers: Servers,
    /// The MTA-STS policy of every domain.
    pub policy: Policy,
    /// ACME's http-01 tokens and their key authorizations.
    pub tokens: Arc<super::acme::Tokens>,
}

impl Site {
    /// The answer to one request, counted by port and status.
    pub async fn answer(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
        peer: SocketAddr,
        port: Port,
    ) -> Reply {
        let reply = self.route(req, port).await;
        let port_name = match port {
            Port::Http => "http",
            Port::Https => "https",
            Port::Metrics => "metrics",
        };
        crate::util::metrics::inc(
            "sealmail_http_requests_total",
            &[("port", port_name), ("code", reply.status().as_str())],
        );
        tracing::debug!(%peer, status = reply.status().as_u16(), "HTTP request");
        reply
    }

    async fn route(&self, req: hyper::Request<hyper::body::Incoming>, port: Port) -> Reply {
        let path = req.uri().path().to_string();
        if path.split('/').any(|seg| seg == ".." || seg == ".") || path.contains('\\') {
            return text(StatusCode::BAD_REQUEST, "bad path\n");
        }
        let query = req.uri().query().unwrap_or_default().to_string();
        let method = req.method().clone();
        let get = method == Method::GET || method == Method::HEAD;
        if port == Port::Metrics {
            return match (get, path.as_str()) {
                (true, "/metrics") => self.metrics(),
                (false, "/metrics") => not_allowed("GET"),
                _ => text(StatusCode::NOT_FOUND, "metrics are at /metrics\n"),
            };
        }
        let Some(host) = host_of(&req) else {
            return text(StatusCode::BAD_REQUEST, "no Host header\n");
        };
        let lower = path.to_ascii_lowercase();
        if port == Port::Http
            && let Some(token) = path.strip_prefix("/.well-known/acme-challenge/")
        {
            return match (get, self.tokens.get(token)) {
                (true, Some(auth)) => with_type(
                    StatusCode::OK,
                    "application/octet-stream",
                    auth.into_bytes(),
                ),
                (false, _) => not_allowed("GET"),
                (true, None) => text(StatusCode::NOT_FOUND, "no such token\n"),
            };
        }
        if port == Port::Https && lower.starts_with("/.well-known/openpgpkey/") {
            return if get {
                self.wkd(&host, &path).await
            } else {
                not_allowed("GET")
            };
        }
        match lower.as_str() {
            "/mail/config-v1.1.xml" | "/.well-known/autoconfig/mail/config-v1.1.xml" => {
                if !get {
                    return not_allowed("GET");
                }
                let address = autoconfig::query_param(&query, "emailaddress");
                let domain = match &address {
                    Some(a) => a.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()),
                    None => Some(
                        host.strip_prefix("autoconfig.")
                            .unwrap_or(&host)
                            .to_string(),
                    ),
                };
                match domain {
                    Some(d) if self.serves(&d).await => with_type(
                        StatusCode::OK,
                        "text/xml; charset=utf-8",
                        autoconfig::thunderbird(&d, &self.servers).into_bytes(),
                    ),
                    _ => unknown(&host),
                }
            }
            "/autodiscover/autodiscover.xml" => {
                if method != Method::POST {
                    return not_allowed("POST");
                }
                let body = http_body_util::Limited::new(req.into_body(), autoconfig::MAX_REQUEST)
                    .collect()
                    .await;
                let Ok(body) = body else {
                    return text(StatusCode::PAYLOAD_TOO_LARGE, "request too large\n");
                };
                match autoconfig::autodiscover_request(&body.to_bytes()) {
                    Ok(address) if self.serves_address(&address).await => with_type(
                        StatusCode::OK,
                        "application/xml; charset=utf-8",
                        autoconfig::autodiscover(&address, &self.servers).into_bytes(),
                    ),
                    Ok(_) => unknown(&host),
                    Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
                }
            }
            "/apple.mobileconfig" | "/.well-known/apple.mobileconfig" => {
                if !get {
                    return not_allowed("GET");
                }
                let Some(address) = autoconfig::query_param(&query, "emailaddress") else {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "add ?emailaddress=you@example.org\n",
                    );
                };
                if !self.serves_address(&address).await {
                    return unknown(&host);
                }
                let mut reply = with_type(
                    StatusCode::OK,
                    "application/x-apple-aspen-config",
                    autoconfig::mobileconfig(&address, &self.servers).into_bytes(),
                );
                reply.headers_mut().insert(
                    hyper::header::CONTENT_DISPOSITION,
                    hyper::header::HeaderValue::from_static(
                        "attachment; filename=\"mail.mobileconfig\"",
                    ),
                );
                reply
            }
            "/.well-known/mta-sts.txt" if port == Port::Https => {
                if !get {
                    return not_allowed("GET");
                }
                match host.strip_prefix("mta-sts.") {
                    Some(d) if self.serves(d).await => with_type(
                        StatusCode::OK,
                        "text/plain",
                        self.policy.text().into_bytes(),
                    ),
                    _ => unknown(&host),
                }
            }
            _ if port == Port::Http && self.is_ours(&host).await => {
                let mut reply = text(StatusCode::MOVED_PERMANENTLY, "see HTTPS\n");
                let to = format!("https://{host}{path}");
                if let Ok(v) = hyper::header::HeaderValue::from_str(&to) {
                    reply.headers_mut().insert(hyper::header::LOCATION, v);
                }
                reply
            }
            _ if self.is_ours(&host).await => text(StatusCode::NOT_FOUND, "not found\n"),
            _ => unknown(&host),
        }
    }

    /// The metrics page, the process' own gauges read now.
    fn metrics(&self) -> Reply {
        process_gauges();
        with_type(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            crate::util::metrics::render().into_bytes(),
        )
    }

    /// Whether mail for `domain` is received here.
    async fn serves(&self, domain: &str) -> bool {
        if !is_domain(domain) {
            return false;
        }
        matches!(
            self.store.lookup(&format!("postmaster@{domain}")).await,
            Ok(Recipient::Local(_) | Recipient::UnknownUser)
        )
    }

    async fn serves_address(&self, address: &str) -> bool {
        match address.rsplit_once('@') {
            Some((local, domain)) if !local.is_empty() => {
                self.serves(&domain.to_ascii_lowercase()).await
            }
            _ => false,
        }
    }

    /// The server's own name, a served domain, or one of its
    /// `mta-sts.`/`autoconfig.`/`autodiscover.` names.
    /// The Web Key Directory: a published key by its hash, or the
    /// domain's (empty) policy, for a domain served here.
    async fn wkd(&self, host: &str, path: &str) -> Reply {
        let Some(request) = wkd::parse_path(host, path) else {
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        let domain = match &request {
            wkd::Request::Key { domain, .. } | wkd::Request::Policy { domain } => domain.clone(),
        };
        if !self.serves(&domain).await {
            return unknown(host);
        }
        let mut reply = match request {
            wkd::Request::Policy { .. } => with_type(StatusCode::OK, "text/plain", Vec::new()),
            wkd::Request::Key { domain, hash } => match self.store.wkd_key(&domain, &hash).await {
                Ok(Some(key)) => with_type(StatusCode::OK, "application/octet-stream", key.key),
                Ok(None) => text(StatusCode::NOT_FOUND, "no key for this address\n"),
                Err(e) => {
                    tracing::warn!(error = %e, "a WKD lookup failed");
                    text(StatusCode::SERVICE_UNAVAILABLE, "try again later\n")
                }
            },
        };
        // Web clients fetch keys across origins (the draft asks for it).
        reply.headers_mut().insert(
            hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN,
            hyper::header::HeaderValue::from_static("*"),
        );
        reply
    }

    async fn is_ours(&self, host: &str) -> bool {
        if host == self.servers.hostname {
            return true;
        }
        let domain = ["mta-sts.", "autoconfig.", "autodiscover.", "openpgpkey."]
            .iter()
            .find_map(|p| host.strip_prefix(p))
            .unwrap_or(host);
        self.serves(domain).await
    }
}

/// The host a request names (`Host`, or the URI's authority), lowercase,
/// without port or trailing dot.
fn host_of(req: &hyper::Request<hyper::body::Incoming>) -> Option<String> {
    let raw = match req.headers().get(hyper::header::HOST) {
        Some(v) => v.to_str().ok()?.to_string(),
        None => req.uri().host()?.to_string(),
    };
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // An IPv6 literal, with or without a port after it.
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw.as_str(),
        }
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// A DNS name of letters, digits and hyphens, with at least one dot.
fn is_domain(s: &str) -> bool {
    s.len() <= 253
        && s.contains('.')
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn unknown(host: &str) -> Reply {
    let shown: String = host.chars().take(100).collect();
    text(
        StatusCode::NOT_FOUND,
        format!("this server serves no mail domain for {shown:?}\n"),
    )
}

fn not_allowed(allow: &'static str) -> Reply {
    let mut reply = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    reply.headers_mut().insert(
        hyper::header::ALLOW,
        hyper::header::HeaderValue::from_static(allow),
    );
    reply
}

/// `process_resident_memory_bytes` and `process_open_fds` from /proc.
fn process_gauges() {
    use crate::util::metrics::set;
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(kib) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
    {
        set("process_resident_memory_bytes", &[], kib * 1024.0);
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        set("process_open_fds", &[], dir.count() as f64);
    }
}
