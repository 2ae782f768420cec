//! `sealmail backup now|list|restore`: mailbox backups by hand.
//!
//! Imports `app`, `backup`, `cluster`, `config`, `store`. Invariants: a
//! backup needs the owner's password (only it unwraps the key that reads
//! the mailbox), and on a secondary the primary takes it: only it holds
//! mailboxes;
//! a restore claims the mailbox file (`FileClaim`) before it replaces it,
//! so it refuses while a running server has that mailbox open, and the
//! server waits for the swap otherwise.

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use super::read_password;
use crate::app;
use crate::backup::{self, Manifest, Outcome, Target};
use crate::cluster::{Command, Join, Link, secondary};
use crate::config::Config;
use crate::store::keys;
use crate::store::mailbox::FileClaim;

#[derive(Subcommand)]
pub enum BackupCmd {
    /// Back up a mailbox now. Needs its owner's password (SEALMAIL_PASSWORD
    /// or standard input): only it opens the mailbox. Skipped if nothing
    /// changed since the last backup; on a secondary, the primary runs it.
    Now { address: String },
    /// List a mailbox's backups.
    List { address: String },
    /// Replace a mailbox with a backup (refused while the server has it
    /// open). Needs the owner's current password (SEALMAIL_PASSWORD or
    /// standard input).
    Restore {
        address: String,
        /// The newest backup made at or before this time
        /// (`2026-11-23T10:00:00Z` or Unix seconds); default: the newest.
        #[arg(long)]
        at: Option<String>,
    },
    /// The server's own files: the control database and the sealed spool.
    #[command(subcommand)]
    Server(ServerCmd),
}

#[derive(Subcommand)]
pub enum ServerCmd {
    /// Back up the control database and the spool now.
    Now,
    /// List the control database's backups.
    List,
    /// Put back the control database, the spooled mail and every mailbox
    /// file that is missing (the server must be stopped): the whole server
    /// after a disk loss, into a data directory made by `init`. Owners then
    /// log in with their passwords and find their mail.
    Restore {
        /// As for a mailbox restore.
        #[arg(long)]
        at: Option<String>,
        /// The lost server's key (a copy of its server.key): it opens the
        /// control database's backups, and replaces this data directory's.
        #[arg(long, value_name = "FILE")]
        server_key: Option<std::path::PathBuf>,
    },
}

pub fn run(config: &Config, cmd: BackupCmd) -> Result<()> {
    if let BackupCmd::Now { address } = &cmd
        && on_secondary(config)
    {
        return ask_primary(config, address);
    }
    let target = Target::from_config(config)?;
    let address = match &cmd {
        BackupCmd::Now { address }
        | BackupCmd::List { address }
        | BackupCmd::Restore { address, .. } => address.clone(),
        BackupCmd::Server(cmd) => return server(config, &target, cmd),
    };
    mailbox(config, &target, &address, cmd)
}

/// A secondary's data directory (`cluster join` wrote it) holds no
/// mailbox: its primary's does.
fn on_secondary(config: &Config) -> bool {
    config.cluster.role == crate::config::Role::Secondary || Join::path(&config.data_dir).exists()
}

/// `backup now` on a secondary: the primary runs it, over a link of this
/// command's own.
fn ask_primary(config: &Config, address: &str) -> Result<()> {
    let mut join = Join::load(&config.data_dir).map_err(anyhow::Error::msg)?;
    if let Some(url) = &config.cluster.primary {
        join.primary = url.clone();
    }
    let password = read_password(&format!("password of {address}"))?;
    let link = Link::new(config.limits.max_message_bytes, config.cluster.timeout);
    let command = Command::BackupNow {
        address: address.to_string(),
        password: password.to_string(),
    };
    let line = smol::block_on(secondary::ask(&join, &link, &command))
        .map_err(|e| anyhow::anyhow!("the primary {}: {e}", join.primary))?;
    outln!("{line}");
    Ok(())
}

/// The commands on one alias' mailbox.
fn mailbox(config: &Config, target: &Target, address: &str, cmd: BackupCmd) -> Result<()> {
    let mut control = app::open_control(config)?;
    let alias = control
        .alias(address)?
        .filter(|a| a.mailbox)
        .with_context(|| format!("{address} has no mailbox here"))?;
    let live = config
        .data_dir
        .join("mailboxes")
        .join(format!("{}.sqlite", alias.mailbox_id));
    match cmd {
        BackupCmd::List { .. } => {
            let all = backup::list(target, &alias.mailbox_id)?;
            if all.is_empty() {
                outln!("no backups of {address}");
            }
            if let Some(crate::store::control::BackupStatus {
                last_error: Some((error, at)),
                ..
            }) = control.backup_status(alias.id)?
            {
                eprintln!("last scheduled backup failed at {at}: {error}");
            }
            for m in all {
                let checked = match (&m.bad, m.verified) {
                    (Some(why), _) => format!("BAD, not restored: {why}"),
                    (None, true) => format!("{} messages", m.messages),
                    (None, false) => {
                        "copied while its owner was away; checked at the next login".to_string()
                    }
                };
                outln!(
                    "{}\t{} bytes\t{checked}\tsha256 {}",
                    m.created,
                    m.size,
                    m.sha256.get(..16).unwrap_or(&m.sha256)
                );
            }
        }
        BackupCmd::Now { .. } => {
            let password = read_password(&format!("password of {address}"))?;
            let outcome = backup::by_password(config, &mut control, address, &password, true)?;
            outln!("{}", outcome.describe(address));
        }
        // Not a mailbox command (`run` sends it to `server`).
        BackupCmd::Server(ref cmd) => return server(config, target, cmd),
        BackupCmd::Restore { at, .. } => {
            // Into a data directory rebuilt after a loss, `mailboxes/` may
            // not exist yet.
            if let Some(dir) = live.parent() {
                crate::util::create_private_dir(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            // A running server keeps the file claimed while the mailbox is
            // open; once claimed here, it waits for the swap.
            let Some(_claim) = FileClaim::try_take(&live)? else {
                bail!(
                    "{address}'s mailbox is in use by the running server (a session is logged in, \
                     or ended less than {} minutes ago): log it out and try again, or stop the server",
                    config.key_ttl.as_secs().div_ceil(60)
                );
            };
            let all = backup::list(target, &alias.mailbox_id)?;
            let chosen = pick(&all, at.as_deref())?;
            let creds = control
                .credentials(alias.id)?
                .context("the alias has no credentials")?;
            let password = read_password(&format!("password of {address}"))?;
            let current = keys::unwrap(&creds, &password)
                .context("that is not the mailbox's current password")?;
            let n = backup::restore(
                target,
                &config.data_dir,
                chosen,
                &password,
                &live,
                &current.dek,
                true,
            )?;
            outln!(
                "restored {address} from {}: {n} messages (folders have new UIDVALIDITY values; clients resynchronise)",
                chosen.created
            );
        }
    }
    Ok(())
}

fn server(config: &Config, target: &Target, cmd: &ServerCmd) -> Result<()> {
    use crate::backup::server::{self, CONTROL};
    let key = app::server_key(&config.data_dir)?;
    match cmd {
        ServerCmd::Now => {
            match server::backup_control(target, &config.data_dir, &key)? {
                Outcome::Stored(m) => outln!(
                    "backed up the control database: {} aliases, {} bytes, {}",
                    m.messages,
                    m.size,
                    m.created
                ),
                Outcome::Unchanged(m) => outln!(
                    "the control database is unchanged since the backup of {}",
                    m.created
                ),
            }
            let s = server::sync_spool(target, &config.data_dir)?;
            outln!(
                "spool: {} files uploaded, {} no longer needed removed",
                s.uploaded,
                s.pruned
            );
        }
        ServerCmd::List => {
            let all = backup::list(target, CONTROL)?;
            if all.is_empty() {
                outln!("no backups of the control database");
            }
            for m in all {
                outln!(
                    "{}	{} bytes	{} aliases	sha256 {}",
                    m.created,
                    m.size,
                    m.messages,
                    m.sha256.get(..16).unwrap_or(&m.sha256)
                );
            }
        }
        ServerCmd::Restore { at, server_key } => {
            let _lock = app::serve_lock(&config.data_dir).map_err(|_| {
                anyhow::anyhow!(
                    "a server is running on {}: stop it first, this replaces the control database",
                    config.data_dir.display()
                )
            })?;
            let all = backup::list(target, CONTROL)?;
            let chosen = pick(&all, at.as_deref())?;
            let key = match server_key {
                Some(path) => read_server_key(path)?,
                None => key,
            };
            let n = server::restore_control(target, &config.data_dir, chosen, &key)?;
            if server_key.is_some() {
                let path = config.data_dir.join("server.key");
                crate::util::write_durable(&path, key.as_ref(), 0o600)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            let files = server::restore_spool(target, &config.data_dir)?;
            outln!(
                "restored the control database from {}: {n} aliases; {files} spooled messages put back",
                chosen.created
            );
            let ids: Vec<String> = app::open_control(config)?
                .list_aliases(None)?
                .into_iter()
                .filter(|a| a.mailbox)
                .map(|a| a.mailbox_id)
                .collect();
            let put = server::restore_mailboxes(target, &config.data_dir, &ids)?;
            outln!(
                "{} mailbox files put back from their newest backups ({} had none, {} were in place); \
                 their folders get new UIDVALIDITY values at their owners' next login",
                put.restored,
                put.missing,
                put.present
            );
        }
    }
    Ok(())
}

/// The newest backup at or before `at` (the newest of all without it),
/// passing over those that failed their check.
/// A copy of a server.key: its 32 bytes.
fn read_server_key(path: &std::path::Path) -> Result<zeroize::Zeroizing<[u8; 32]>> {
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        anyhow::anyhow!(
            "{}: a server key is 32 bytes, this is {}",
            path.display(),
            bytes.len()
        )
    })?;
    Ok(zeroize::Zeroizing::new(key))
}

fn pick<'a>(all: &'a [Manifest], at: Option<&str>) -> Result<&'a Manifest> {
    let good = || all.iter().rev().filter(|m| m.bad.is_none());
    let Some(at) = at else {
        return good().next().context("no backups to restore");
    };
    let limit = match at.parse::<i64>() {
        Ok(t) => t,
        Err(_) => {
            crate::util::parse_iso8601(at).with_context(|| format!("{at:?} is not a time"))?
        }
    };
    match good().find(|m| m.created_at <= limit) {
        Some(m) => Ok(m),
        None => bail!("no backup at or before {at}"),
    }
}
