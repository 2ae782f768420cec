//! `sealmail export ADDR`: a mailbox's mail out of sealmail, as its owner
//! asked, in a form other mail programs read: mbox (one mboxrd file per
//! folder), EML (one directory per folder, one file per message) or a
//! plain SQLite copy of the mailbox database.
//!
//! Imports `app`, `config`, `proto::mbox`, `store`, `util`. Invariants: the
//! output is written under `NAME.partial` and renamed to `NAME` only once
//! complete, so an interrupted export never leaves a result that looks
//! whole; messages are fetched in batches of bounded size, so memory does
//! not grow with the mailbox; flags and keywords travel in `Status`,
//! `X-Status` and `X-Keywords` headers and internal dates in the `From `
//! line (mbox) or the file's time (EML), which `sealmail import` reads
//! back.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::proto::mbox;
use crate::store::{FetchWhat, Section, SectionKind, Session, UidSet};

/// Bytes of messages fetched at once (one message when it is larger).
const BATCH_BYTES: u64 = 8 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One mboxrd file per folder (`FOLDER.mbox`).
    Mbox,
    /// One directory per folder, one `.eml` file per message.
    Eml,
    /// The mailbox database itself, decrypted: a plain SQLite file.
    Sqlite,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Mbox => "mbox",
            Format::Eml => "eml",
            Format::Sqlite => "sqlite",
        }
    }
}

/// What an export wrote.
#[derive(Default)]
struct Written {
    folders: usize,
    messages: u64,
    bytes: u64,
}

pub fn export(
    config: &Config,
    address: &str,
    format: Format,
    folder: Option<&str>,
    output: Option<PathBuf>,
) -> Result<()> {
    let output =
        output.unwrap_or_else(|| PathBuf::from(format!("{address}.{}", format.extension())));
    if output.exists() {
        bail!(
            "{} exists already: remove it or name another --output",
            output.display()
        );
    }
    let mut partial = output.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    // What an interrupted export left.
    let _ = std::fs::remove_dir_all(&partial);
    let _ = std::fs::remove_file(&partial);
    eprintln!(
        "note: the export is not encrypted; whoever can read {} reads this mail",
        output.display()
    );
    let written = match format {
        Format::Sqlite => {
            if folder.is_some() {
                bail!("--folder does not apply to --format sqlite (the whole database is copied)");
            }
            sqlite(config, address, &partial)?
        }
        Format::Mbox | Format::Eml => {
            let session = super::mailbox::unlock(config, address)?;
            crate::util::create_private_dir(&partial)
                .with_context(|| format!("cannot create {}", partial.display()))?;
            smol::block_on(messages(&session, format, folder, &partial))?
        }
    };
    std::fs::rename(&partial, &output).with_context(|| {
        format!(
            "cannot rename {} to {}",
            partial.display(),
            output.display()
        )
    })?;
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = crate::util::fsync_dir(dir);
    }
    outln!(
        "exported {} messages ({} bytes) in {} folders of {address} to {}",
        written.messages,
        written.bytes,
        written.folders,
        output.display()
    );
    Ok(())
}

/// mbox or EML: every folder (or `only`), in batches.
async fn messages(
    session: &Session,
    format: Format,
    only: Option<&str>,
    out: &Path,
) -> Result<Written> {
    // Sealed mail waiting for the owner comes in first.
    session.settle().await?;
    let folders: Vec<String> = session
        .list_folders()
        .await?
        .into_iter()
        .filter(|f| !f.nonexistent)
        .map(|f| f.name)
        .filter(|name| only.is_none_or(|o| o == name))
        .collect();
    if let Some(o) = only
        && folders.is_empty()
    {
        bail!("no folder {o:?} in this mailbox");
    }
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut written = Written::default();
    for folder in &folders {
        let name = mbox::folder_file_name(folder);
        let mut sink = match format {
            Format::Mbox => Sink::Mbox(std::io::BufWriter::new(
                crate::util::create_private_file(&out.join(format!("{name}.mbox")))
                    .with_context(|| format!("cannot write the file of {folder:?}"))?,
            )),
            _ => {
                let dir = out.join(&name);
                crate::util::create_private_dir(&dir)?;
                Sink::Eml(dir)
            }
        };
        for_each_message(session, folder, |m| {
            let body = m
                .sections
                .into_iter()
                .next()
                .map(|(_, b)| b)
                .unwrap_or_default();
            let date = crate::util::parse_iso8601(&m.meta.internal_date).unwrap_or(0);
            let headers = mbox::flag_headers(m.meta.flags.system, &m.meta.flags.keywords);
            let message = mbox::insert_headers(&body, &headers);
            sink.write(m.meta.uid, date, &message)?;
            written.messages += 1;
            written.bytes += body.len() as u64;
            if progress && written.messages % 100 == 0 {
                eprint!("\r{folder}: {} messages exported", written.messages);
            }
            Ok(())
        })
        .await?;
        sink.finish()?;
        written.folders += 1;
    }
    if progress {
        eprintln!();
    }
    Ok(written)
}

/// Calls `each` with every message of `folder`, whole, in UID order,
/// fetching batches of at most `BATCH_BYTES` (one message when larger):
/// memory follows the largest message, not the folder.
pub(super) async fn for_each_message(
    session: &Session,
    folder: &str,
    mut each: impl FnMut(crate::store::FetchedMessage) -> Result<()>,
) -> Result<()> {
    session.select(folder).await?;
    // Sizes first (no bodies), to cut batches by bytes.
    let all = session
        .fetch(folder, UidSet::all(), FetchWhat::default())
        .await?;
    let mut batch: Vec<u32> = Vec::new();
    let mut batch_bytes = 0u64;
    let mut iter = all.iter().peekable();
    while let Some(m) = iter.next() {
        batch.push(m.meta.uid);
        batch_bytes += m.meta.size;
        let full = iter
            .peek()
            .is_none_or(|next| batch_bytes + next.meta.size > BATCH_BYTES);
        if !full {
            continue;
        }
        let what = FetchWhat {
            sections: vec![Section {
                path: vec![],
                kind: SectionKind::Whole,
            }],
            ..Default::default()
        };
        for m in session
            .fetch(folder, UidSet::from_uids(&batch), what)
            .await?
        {
            each(m)?;
        }
        batch.clear();
        batch_bytes = 0;
    }
    Ok(())
}

/// Where one folder's messages go.
enum Sink {
    Mbox(std::io::BufWriter<std::fs::File>),
    Eml(PathBuf),
}

impl Sink {
    fn write(&mut self, uid: u32, date: i64, message: &[u8]) -> Result<()> {
        match self {
            Sink::Mbox(w) => {
                let mut out = Vec::with_capacity(message.len() + 128);
                out.extend_from_slice(mbox::from_line("MAILER-DAEMON", date).as_bytes());
                mbox::write_message(message, &mut out);
                w.write_all(&out)?;
            }
            Sink::Eml(dir) => {
                let path = dir.join(format!("{uid:010}.eml"));
                let mut f = crate::util::create_private_file(&path)?;
                f.write_all(message)?;
                let when = std::time::UNIX_EPOCH
                    + std::time::Duration::from_secs(u64::try_from(date).unwrap_or(0));
                f.set_modified(when)?;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            Sink::Mbox(w) => {
                let f = w.into_inner().map_err(|e| e.into_error())?;
                f.sync_all()?;
            }
            Sink::Eml(dir) => crate::util::fsync_dir(&dir)?,
        }
        Ok(())
    }
}

/// The mailbox database decrypted into a plain SQLite file at `out`, read
/// beside a running server (a read transaction of its own).
fn sqlite(config: &Config, address: &str, out: &Path) -> Result<Written> {
    let control = crate::app::open_control(config)?;
    let alias = control
        .alias(address)?
        .filter(|a| a.mailbox)
        .with_context(|| format!("{address} has no mailbox here"))?;
    let creds = control
        .credentials(alias.id)?
        .context("the alias has no credentials")?;
    let password = super::read_password(&format!("password of {address}"))?;
    let keys = crate::store::keys::unwrap(&creds, &password)
        .map_err(|_| anyhow::anyhow!("that is not the password of {address}"))?;
    let live = config
        .data_dir
        .join("mailboxes")
        .join(format!("{}.sqlite", alias.mailbox_id));
    if !live.exists() {
        bail!("{address}'s mailbox has never been opened: it holds no mail yet");
    }
    let messages = crate::store::mailbox::export_plain(&live, &keys.dek, out)?;
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    Ok(Written {
        folders: 0,
        messages,
        bytes,
    })
}
