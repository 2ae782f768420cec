//! `sealmail alias …`: operator commands on the control plane's
//! addresses.
//!
//! Imports `app`, `config`, `store::{control, keys, spool}`; `sieve` holds
//! the Sieve subcommands. Invariants: a
//! command that destroys mail says so and needs an explicit flag.

use anyhow::{Result, bail};
use clap::Subcommand;

use super::read_password;
use crate::app;
use crate::config::{Config, describe_size, parse_size};
use crate::store::keys;

#[derive(Subcommand)]
pub enum AliasCmd {
    /// Add an address. It gets a mailbox and a generated password unless
    /// --no-mailbox is given.
    Add {
        address: String,
        /// Forward-only or webhook-only address.
        #[arg(long)]
        no_mailbox: bool,
        /// Forward a copy to this address (repeatable).
        #[arg(long = "forward")]
        forward: Vec<String>,
        /// Quota such as 500M, 2G, 2GB or 2GiB (every unit a power of 1024).
        #[arg(long)]
        quota: Option<String>,
    },
    /// List addresses, optionally of one domain.
    List { domain: Option<String> },
    /// Remove an address and destroy its mailbox and sealed spool.
    Remove {
        address: String,
        /// Confirm that the mailbox is to be destroyed.
        #[arg(long)]
        purge: bool,
    },
    /// Give an address a new generated password. Asks for the current one
    /// (SEALMAIL_PASSWORD or standard input): the mailbox key is re-wrapped,
    /// not changed.
    Password {
        address: String,
        /// The owner lost the password: start a new, empty mailbox. The old
        /// one can never be opened again and is destroyed.
        #[arg(long)]
        reset: bool,
        /// The owner types the new password (twice on a terminal, not
        /// echoed; else SEALMAIL_NEW_PASSWORD or the next line of standard
        /// input) instead of getting a generated one: the operator never
        /// sees it. At least 12 characters, not the address, not only
        /// digits and common words.
        #[arg(long)]
        choose: bool,
    },
    /// Set forward targets and webhooks (replacing the current ones).
    Forward {
        address: String,
        /// Target address (repeatable).
        #[arg(long = "to")]
        to: Vec<String>,
        /// Webhook URL (repeatable).
        #[arg(long = "webhook")]
        webhook: Vec<String>,
    },
    /// Set the quota (500M, 2G, 2GB, 2GiB: units of 1024), or `none`.
    Quota { address: String, size: String },
    /// What POP3 DELE does: `expunge` (default) or `trash`.
    Pop3 {
        address: String,
        #[arg(long, value_parser = ["expunge", "trash"])]
        delete: String,
    },
    /// The address' Sieve scripts (filters run when mail arrives).
    Sieve {
        address: String,
        #[command(subcommand)]
        cmd: super::sieve::SieveCmd,
    },
    /// Out-of-office replies: writes and activates a Sieve script.
    Vacation(super::sieve::VacationArgs),
    /// The address' OpenPGP public key: mail encrypted to it on arrival,
    /// published in the Web Key Directory.
    Pgp {
        address: String,
        #[command(subcommand)]
        cmd: super::pgp::PgpCmd,
    },
}

fn quota_arg(s: &str) -> Result<Option<u64>> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    match parse_size(s) {
        Some(n) => Ok(Some(n)),
        None => {
            bail!("{s:?} is not a size such as 500M, 2G, 2GB or 2GiB (units of 1024), or `none`")
        }
    }
}

pub fn alias(config: &Config, cmd: AliasCmd) -> Result<()> {
    let mut control = app::open_control(config)?;
    match cmd {
        AliasCmd::Add {
            address,
            no_mailbox,
            forward,
            quota,
        } => {
            let password = if no_mailbox {
                None
            } else {
                Some(keys::generate_password()?)
            };
            let a = control.add_alias(
                &address,
                password.as_deref().map(String::as_str),
                config.kdf,
            )?;
            if !forward.is_empty() {
                control.set_forward(&a.address, &forward)?;
            }
            let quota = quota.as_deref().map(quota_arg).transpose()?.flatten();
            if quota.is_some() {
                control.set_quota(&a.address, quota)?;
            }
            match quota {
                Some(q) => outln!("added {} (quota {})", a.address, describe_size(q)),
                None => outln!("added {}", a.address),
            }
            if let Some(p) = password {
                outln!("password (shown once, not stored): {}", p.as_str());
            }
        }
        AliasCmd::List { domain } => {
            for a in control.list_aliases(domain.as_deref())? {
                let quota = a.quota_bytes.map_or("no quota".to_string(), |q| {
                    format!("quota {}", describe_size(q))
                });
                let mut what = Vec::new();
                if a.mailbox {
                    what.push("mailbox".to_string());
                }
                if !a.forward.is_empty() {
                    what.push(format!("forward {}", a.forward.join(",")));
                }
                if !a.webhooks.is_empty() {
                    what.push(format!("{} webhooks", a.webhooks.len()));
                }
                outln!("{}\t{}\t{}", a.address, what.join("; "), quota);
            }
        }
        AliasCmd::Remove { address, purge } => {
            let Some(a) = control.alias(&address)? else {
                bail!("no alias {address}");
            };
            if a.mailbox && !purge {
                bail!(
                    "removing {} destroys its mailbox and sealed mail for good; add --purge to confirm",
                    a.address
                );
            }
            control.remove_alias(&a.address)?;
            remove_mailbox_files(config, &a.mailbox_id)?;
            outln!("removed {}", a.address);
        }
        AliasCmd::Password {
            address,
            reset,
            choose,
        } => {
            if control.alias(&address)?.is_none() {
                bail!("no alias {address}");
            }
            // Asked first: a wrong current password is refused before the
            // owner types a new one.
            let current = if reset {
                None
            } else {
                Some(read_password(&format!("current password of {address}"))?)
            };
            let new = if choose {
                choose_password(&address)?
            } else {
                keys::generate_password()?
            };
            // A generated one is shown before the commit: if this command
            // dies before it reports success, the old password still works.
            let show = |new: &str| {
                if choose {
                    Ok(())
                } else {
                    outln!("new password (shown once, not stored): {new}");
                    Ok::<(), anyhow::Error>(())
                }
            };
            match current {
                None => {
                    let (old, _) = control.reset_password(&address, &new, config.kdf)?;
                    remove_mailbox_files(config, &old.mailbox_id)?;
                    outln!(
                        "{}: new empty mailbox; the old one was destroyed",
                        old.address
                    );
                    show(&new)?;
                }
                Some(current) => {
                    let prepared =
                        control.prepare_password(&address, &current, &new, config.kdf)?;
                    show(&new)?;
                    control.commit_password(prepared)?;
                    outln!("password changed; the current one no longer works");
                }
            }
        }
        AliasCmd::Forward {
            address,
            to,
            webhook,
        } => {
            control.set_forward(&address, &to)?;
            control.set_webhooks(&address, &webhook)?;
            outln!(
                "{address}: {} forward targets, {} webhooks",
                to.len(),
                webhook.len()
            );
            if !webhook.is_empty() {
                let key = app::server_key(&config.data_dir)?;
                let canonical = control
                    .alias(&address)?
                    .map_or_else(|| address.to_lowercase(), |a| a.address);
                let secret = crate::relay::webhook_secret(&key, &canonical);
                outln!(
                    "webhook signing secret (HMAC-SHA256 over \"<t>.<body>\", header Sealmail-Signature: t=<t>,v1=<hex>): {}",
                    hex::encode(secret)
                );
            }
        }
        AliasCmd::Sieve { address, cmd } => {
            super::sieve::sieve(config, &mut control, &address, cmd)?;
        }
        AliasCmd::Vacation(args) => super::sieve::vacation(config, &mut control, args)?,
        AliasCmd::Pgp { address, cmd } => super::pgp::pgp(config, &mut control, &address, cmd)?,
        AliasCmd::Pop3 { address, delete } => {
            control.set_pop3_trash(&address, delete == "trash")?;
            outln!(
                "{address}: POP3 deletions {}",
                if delete == "trash" {
                    "move to Trash"
                } else {
                    "expunge"
                }
            );
        }
        AliasCmd::Quota { address, size } => {
            let quota = quota_arg(&size)?;
            control.set_quota(&address, quota)?;
            match quota {
                Some(q) => outln!("{address}: quota {}", describe_size(q)),
                None => outln!("{address}: no quota"),
            }
        }
    }
    Ok(())
}

pub(super) fn remove_mailbox_files(config: &Config, mailbox_id: &str) -> Result<()> {
    let base = config
        .data_dir
        .join("mailboxes")
        .join(format!("{mailbox_id}.sqlite"));
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", base.display()));
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    let spool = crate::store::spool::dir(&config.data_dir, mailbox_id);
    if spool.exists() {
        std::fs::remove_dir_all(spool)?;
    }
    Ok(())
}

/// The new password an owner types: twice on a terminal, once otherwise;
/// refused with the reason when it is weak.
fn choose_password(address: &str) -> Result<zeroize::Zeroizing<String>> {
    let new = super::read_secret(
        &format!("new password of {address}"),
        "SEALMAIL_NEW_PASSWORD",
    )?;
    if let Some(why) = keys::weak_password(&new, address) {
        bail!("that password is too weak: {why}");
    }
    if std::env::var_os("SEALMAIL_NEW_PASSWORD").is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stdin())
    {
        let again = super::read_secret("the same again", "SEALMAIL_NEW_PASSWORD")?;
        if *again != *new {
            bail!("the two passwords differ; nothing changed");
        }
    }
    Ok(new)
}
