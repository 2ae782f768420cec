//! The process's counters and gauges, rendered in Prometheus' text format
//! (version 0.0.4) by the metrics listener.
//!
//! Imports nothing of ours. Invariants: every series belongs to a family
//! listed in `FAMILIES` (name, type, help), so what is rendered always has
//! its `# HELP` and `# TYPE` lines; label values are escaped; counting is
//! one short lock, never I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// The families: name, type, help.
pub const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "sealmail_connections_total",
        "counter",
        "Connections accepted, by protocol.",
    ),
    (
        "sealmail_connections_refused_total",
        "counter",
        "Connections refused at accept (per-address or server-wide caps), by protocol.",
    ),
    (
        "sealmail_sessions",
        "gauge",
        "Connections open now, by protocol.",
    ),
    (
        "sealmail_logins_total",
        "counter",
        "Password checks, by protocol and result (ok, failed).",
    ),
    (
        "sealmail_messages_total",
        "counter",
        "Messages received, by port (mx, submission), result (accepted, refused, deferred) and reason.",
    ),
    (
        "sealmail_recipients_total",
        "counter",
        "Recipients (RCPT TO) answered, by port, result (accepted, refused, deferred) and reason.",
    ),
    (
        "sealmail_delivery_attempts_total",
        "counter",
        "Outbound delivery attempts per recipient, by result (delivered, deferred, bounced).",
    ),
    (
        "sealmail_queue_messages",
        "gauge",
        "Messages waiting in the outbound queue.",
    ),
    (
        "sealmail_queue_oldest_age_seconds",
        "gauge",
        "Age of the oldest message in the outbound queue.",
    ),
    (
        "sealmail_spool_bytes",
        "gauge",
        "Bytes of sealed mail waiting for their mailboxes' owners.",
    ),
    ("sealmail_mailboxes", "gauge", "Mailboxes on this server."),
    (
        "sealmail_mailboxes_without_recent_backup",
        "gauge",
        "Mailboxes with no backup younger than the backup interval.",
    ),
    (
        "sealmail_banned_addresses",
        "gauge",
        "Client addresses refused for failed logins now.",
    ),
    (
        "sealmail_tls_handshakes_total",
        "counter",
        "TLS handshakes completed, by protocol and TLS version.",
    ),
    (
        "sealmail_http_requests_total",
        "counter",
        "HTTP requests answered, by port and status code.",
    ),
    (
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
    ),
    (
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
    ),
    (
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch in seconds.",
    ),
];

/// Series by family name, then by rendered label set.
static SERIES: Mutex<BTreeMap<&'static str, BTreeMap<String, f64>>> = Mutex::new(BTreeMap::new());

/// `{a="x",b="y"}` with values escaped (backslash, quote, line feed).
fn label_set(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut out = String::from("{");
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

fn update(name: &'static str, labels: &[(&str, &str)], f: impl FnOnce(&mut f64)) {
    let key = label_set(labels);
    let mut series = SERIES.lock().unwrap_or_else(|e| e.into_inner());
    f(series.entry(name).or_default().entry(key).or_insert(0.0));
}

/// Adds one to a counter.
pub fn inc(name: &'static str, labels: &[(&str, &str)]) {
    update(name, labels, |v| *v += 1.0);
}

/// Adds `n` to a gauge (negative to take away).
pub fn add(name: &'static str, labels: &[(&str, &str)], n: f64) {
    update(name, labels, |v| *v += n);
}

/// Sets a gauge.
pub fn set(name: &'static str, labels: &[(&str, &str)], value: f64) {
    update(name, labels, |v| *v = value);
}

/// One open connection of `protocol`: counted when made, the
/// `sealmail_sessions` gauge taken down again when dropped.
pub struct Session(&'static str);

impl Session {
    pub fn open(protocol: &'static str) -> Session {
        inc("sealmail_connections_total", &[("protocol", protocol)]);
        add("sealmail_sessions", &[("protocol", protocol)], 1.0);
        Session(protocol)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        add("sealmail_sessions", &[("protocol", self.0)], -1.0);
    }
}

/// Every family with its series, in the text format.
pub fn render() -> String {
    let series = SERIES.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = String::with_capacity(4096);
    for (name, kind, help) in FAMILIES {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        let Some(values) = series.get(name) else {
            continue;
        };
        for (labels, value) in values {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_render_with_their_family() {
        inc(
            "sealmail_logins_total",
            &[("protocol", "imap"), ("result", "ok")],
        );
        inc(
            "sealmail_logins_total",
            &[("protocol", "imap"), ("result", "ok")],
        );
        set("sealmail_queue_messages", &[], 3.0);
        add(
            "sealmail_http_requests_total",
            &[("port", "a\"b\\c\nd"), ("code", "200")],
            1.0,
        );
        {
            let _s = Session::open("test");
            assert!(render().contains("sealmail_sessions{protocol=\"test\"} 1\n"));
        }
        let text = render();
        assert!(text.contains("sealmail_logins_total{protocol=\"imap\",result=\"ok\"} 2\n"));
        assert!(text.contains("sealmail_queue_messages 3\n"));
        assert!(text.contains("{port=\"a\\\"b\\\\c\\nd\",code=\"200\"} 1\n"));
        assert!(text.contains("sealmail_sessions{protocol=\"test\"} 0\n"));
        assert!(text.contains("# TYPE sealmail_logins_total counter\n"));
    }
}
