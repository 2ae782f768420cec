//! `sealmail cluster`: what a secondary needs from its primary, printed
//! once on the primary and written into the secondary's data directory.
//!
//! Imports `cluster` and `config`. Invariants: the secret is
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
}

pub fn run(config: &Config, cmd: ClusterCmd) -> Result<()> {
    match cmd {
        ClusterCmd::Init { host } => {
            let secret = cluster::primary_secret(&config.data_dir, true)?;
            let pin = cluster::certificate_pin(&config.tls_cert)?;
            let host = host.unwrap_or_else(|| config.hostname.clone());
            let port = config.cluster.listen.port();
            let url = if host.contains(':') {
                format!("wss://[{host}]:{port}")
            } else {
                format!("wss://{host}:{port}")
            };
            println!(
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
            println!(
                "{} written; start this node with role = \"secondary\" in [cluster] (or serve --role secondary).",
                Join::path(&config.data_dir).display()
            );
            Ok(())
        }
    }
}
