//! `sealmail mailbox …` and `sealmail import`: commands a mailbox owner runs
//! with their password.
//!
//! Imports `app`, `config`, `proto::mbox`, `store`. Invariants: the mailbox
//! is reached through the same storage interface the protocols use.

use std::path::Path;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::read_password;
use crate::app;
use crate::config::Config;
use crate::proto::mbox;
use crate::store::{AppendRequest, Flags, Session};

#[derive(Subcommand)]
pub enum MailboxCmd {
    /// Folders, message counts and quota use (imports sealed mail first).
    Status { address: String },
}

fn unlock(config: &Config, address: &str) -> Result<Session> {
    // Asked before the password, and never creating anything.
    match app::open_control(config)?.alias(address)? {
        None => anyhow::bail!("no alias {address}"),
        Some(a) if !a.mailbox => anyhow::bail!("{address} has no mailbox (it only forwards)"),
        Some(_) => {}
    }
    let (_backend, store) = app::open_store(config)?;
    let password = read_password(&format!("password of {address}"))?;
    smol::block_on(store.unlock(address, &password))
        .with_context(|| format!("cannot open the mailbox of {address}"))
}

pub fn run(config: &Config, cmd: MailboxCmd) -> Result<()> {
    match cmd {
        MailboxCmd::Status { address } => {
            let session = unlock(config, &address)?;
            smol::block_on(async {
                let imported = session.settle().await?;
                if imported > 0 {
                    outln!("imported {imported} sealed messages into INBOX");
                }
                for f in session.list_folders().await? {
                    if f.nonexistent {
                        continue;
                    }
                    let s = session.status(&f.name).await?;
                    outln!(
                        "{}\t{} messages\t{} unseen\t{} bytes\tuidnext {}",
                        s.name,
                        s.messages,
                        s.unseen,
                        s.size,
                        s.uidnext
                    );
                }
                let q = session.quota().await?;
                match q.limit_bytes {
                    Some(l) => outln!("quota: {} of {} bytes", q.used_bytes, l),
                    None => outln!("quota: {} bytes used, no limit", q.used_bytes),
                }
                anyhow::Ok(())
            })
        }
    }
}

/// Messages per transaction when importing.
const BATCH: usize = 200;

pub fn import(config: &Config, address: &str, file: &Path, folder: &str) -> Result<()> {
    let data = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let messages = if mbox::is_mbox(&data) {
        mbox::split(&data)
    } else {
        vec![mbox::to_crlf(&data)]
    };
    drop(data);
    let session = unlock(config, address)?;
    let total = messages.len();
    let mut done = 0;
    smol::block_on(async {
        for chunk in messages.chunks(BATCH) {
            let batch = chunk
                .iter()
                .map(|m| AppendRequest {
                    folder: folder.to_string(),
                    message: m.clone(),
                    flags: Flags::default(),
                    internal_date: None,
                })
                .collect();
            session.append_batch(batch).await?;
            done += chunk.len();
            eprint!("\rimported {done}/{total}");
        }
        eprintln!();
        anyhow::Ok(())
    })?;
    outln!("imported {total} messages into {folder}");
    Ok(())
}
