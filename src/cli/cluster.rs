//! `sealmail cluster`: what a secondary needs from its primary, printed
//! once on the primary and written into the secondary's data directory.
//!
//! Imports `cluster`, `config` and `util`. Invariants: the secret is
//! printed only by `init` and kept in files of mode 0600.

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::cluster::{self, Join};
use crate::config::Config;

#[derive(Subcommand)]
pub enum ClusterCmd {
    /// On the primary: make the cluster secret (once) and print what each
    /// secondary's `cluster join` needs.
    Init {
        /// The address secondaries reach this node by (default: the
        /// server's host name).
        #[arg(long)]
        host: Option<String>,
    },
    /// On a secondary: remember its primary (run `cluster init` there for
    /// the values).
    Join {
        /// wss://HOST:PORT
        primary: String,
        /// The cluster secret (64 hex digits).
        secret: String,
        /// The SHA-256 of the primary's certificate (64 hex digits).
        pin: String,
    },
    /// The links of the node running on this data directory.
    Status,
}

pub fn run(config: &Config, cmd: ClusterCmd) -> Result<()> {
    match cmd {
        ClusterCmd::Status => status(config),
        ClusterCmd::Init { host } => {
            let secret = cluster::primary_secret(&config.data_dir, true)?;
            let host = host.unwrap_or_else(|| config.hostname.clone());
            let pin = cluster::ensure_link_pair(&config.data_dir, &host)?;
            let port = config.cluster.listen.port();
            let url = if host.contains(':') {
                format!("wss://[{host}]:{port}")
            } else {
                format!("wss://{host}:{port}")
            };
            outln!(
                "Set role = \"primary\" in [cluster] of {} (or serve --role primary), then on each secondary run:\n\n  \
                 sealmail --data DIR cluster join {url} {} {}\n\n\
                 The secret opens no mailbox, but it lets a node act as a secondary: keep it like a password.",
                config.file.display(),
                hex::encode(&secret[..]),
                hex::encode(pin)
            );
            Ok(())
        }
        ClusterCmd::Join {
            primary,
            secret,
            pin,
        } => {
            let join = Join::new(&primary, &secret, &pin).map_err(anyhow::Error::msg)?;
            join.save(&config.data_dir).with_context(|| {
                format!("cannot write {}", Join::path(&config.data_dir).display())
            })?;
            outln!(
                "{} written; start this node with role = \"secondary\" in [cluster] (or serve --role secondary).",
                Join::path(&config.data_dir).display()
            );
            Ok(())
        }
    }
}

/// Prints what the running node last wrote to `cluster.status`.
fn status(config: &Config) -> Result<()> {
    let path = config.data_dir.join(cluster::STATUS_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{}: no status; is this node running with role primary or secondary?",
            path.display()
        )
    })?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let now = crate::util::now_unix();
    let age = now - v["written"].as_i64().unwrap_or(0);
    let since = |t: &serde_json::Value| {
        t.as_i64().map_or("not connected".to_string(), |t| {
            format!("connected {}s ago", now - t)
        })
    };
    if age > 30 {
        outln!("(written {age}s ago: the node may not be running)");
    }
    match v["role"].as_str() {
        Some("primary") => {
            let links = v["links"].as_array().cloned().unwrap_or_default();
            outln!("primary, {} secondaries linked", links.len());
            for l in links {
                outln!(
                    "  {}  {}  {} requests in flight",
                    l["peer"].as_str().unwrap_or("?"),
                    since(&l["connected_since"]),
                    l["in_flight"]
                );
            }
        }
        _ => {
            outln!(
                "secondary of {}: {}",
                v["primary"].as_str().unwrap_or("?"),
                since(&v["connected_since"])
            );
            if let Some(rtt) = v["round_trip_ms"].as_f64() {
                outln!("  round trip {rtt:.2} ms");
            }
            outln!("  {} requests in flight", v["in_flight"]);
            outln!(
                "  {} messages taken while the primary was away, not yet shipped",
                v["spooled"]
            );
            if let Some(e) = v["last_error"].as_str() {
                outln!("  last error: {e}");
            }
        }
    }
    Ok(())
}
