//! `sealmail mailbox …` and `sealmail import`: commands a mailbox owner runs
//! with their password.
//!
//! Imports `app`, `config`, `openpgp`, `proto::mbox`, `store`. Invariants: the mailbox
//! is reached through the same storage interface the protocols use; an
//! import reads its input one message at a time and appends in batches of
//! bounded size; a message the folder holds already (the same bytes) is
//! skipped unless asked otherwise, so running an import twice adds nothing.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use super::read_password;
use crate::app;
use crate::config::Config;
use crate::proto::mbox;
use crate::store::{AppendRequest, Flags, PgpKey, Session};

#[derive(Subcommand)]
pub enum MailboxCmd {
    /// Folders, message counts and quota use (imports sealed mail first).
    Status { address: String },
}

pub(super) fn unlock(config: &Config, address: &str) -> Result<Session> {
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

/// Messages per transaction when importing, and their bytes at most.
const BATCH: usize = 200;
const BATCH_BYTES: usize = 8 << 20;

/// Where an imported message's internal date comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DateFrom {
    /// The mbox `From ` line, or the file's time (EML, Maildir); else the
    /// Date header; else now.
    Auto,
    /// The Date header; else now.
    Header,
    /// The time of the import.
    Now,
}

pub struct ImportOptions {
    pub folder: Option<String>,
    pub create: bool,
    pub date_from: DateFrom,
    pub allow_duplicates: bool,
}

/// One input and the folder its messages go to.
enum Source {
    Mbox(PathBuf),
    /// One message (an .eml file, or a Maildir file with the flags its
    /// name gives).
    Message(PathBuf, Option<(u8, Vec<String>)>),
}

/// What to import from `path`, folder by folder: an mbox or .eml file; a
/// Maildir (`cur/`, `new/`, and `.Sub.Folder` directories); or a directory
/// `sealmail export` wrote (`FOLDER.mbox` files, or `FOLDER/` directories of
/// .eml files).
fn sources(path: &Path, folder: Option<&str>) -> Result<Vec<(String, Source)>> {
    let into = |name: &str| folder.map_or_else(|| name.to_string(), str::to_string);
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_file() {
        let mut head = [0u8; 5];
        let n = std::io::Read::read(&mut std::fs::File::open(path)?, &mut head)?;
        let source = if mbox::is_mbox(head.get(..n).unwrap_or_default()) {
            Source::Mbox(path.to_path_buf())
        } else {
            Source::Message(path.to_path_buf(), None)
        };
        return Ok(vec![(into("INBOX"), source)]);
    }
    let mut out = Vec::new();
    if path.join("cur").is_dir() || path.join("new").is_dir() {
        maildir(path, &into("INBOX"), &mut out)?;
        for entry in sorted_entries(path)? {
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(sub) = name.strip_prefix('.')
                && !sub.is_empty()
                && entry.path().join("cur").is_dir()
            {
                maildir(&entry.path(), &into(&sub.replace('.', "/")), &mut out)?;
            }
        }
        return Ok(out);
    }
    for entry in sorted_entries(path)? {
        let p = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if p.is_dir() {
            let folder = mbox::folder_from_file_name(&name).unwrap_or(name);
            for file in sorted_entries(&p)? {
                if file.path().extension().is_some_and(|e| e == "eml") {
                    out.push((into(&folder), Source::Message(file.path(), None)));
                }
            }
        } else if let Some(stem) = name.strip_suffix(".mbox") {
            let folder = mbox::folder_from_file_name(stem).unwrap_or_else(|| stem.to_string());
            out.push((into(&folder), Source::Mbox(p)));
        } else if name.ends_with(".eml") {
            out.push((into("INBOX"), Source::Message(p, None)));
        }
    }
    if out.is_empty() {
        bail!(
            "{}: no mbox files, .eml files or Maildir found in it",
            path.display()
        );
    }
    Ok(out)
}

fn sorted_entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

/// A Maildir's messages (`new/`, then `cur/` with the flags after `:2,`).
fn maildir(dir: &Path, folder: &str, out: &mut Vec<(String, Source)>) -> Result<()> {
    for sub in ["new", "cur"] {
        let d = dir.join(sub);
        if !d.is_dir() {
            continue;
        }
        for entry in sorted_entries(&d)? {
            let name = entry.file_name().to_string_lossy().to_string();
            let flags = name.rsplit_once(":2,").map(|(_, f)| {
                let system = [
                    ('S', mbox::SEEN),
                    ('R', mbox::ANSWERED),
                    ('F', mbox::FLAGGED),
                    ('T', mbox::DELETED),
                    ('D', mbox::DRAFT),
                ]
                .iter()
                .filter(|(c, _)| f.contains(*c))
                .fold(0, |acc, (_, bit)| acc | bit);
                (system, Vec::new())
            });
            out.push((folder.to_string(), Source::Message(entry.path(), flags)));
        }
    }
    Ok(())
}

/// What an import did.
#[derive(Default)]
pub(super) struct Tally {
    pub imported: u64,
    pub duplicates: u64,
    pub refused: u64,
    /// The first reasons, for the summary.
    pub reasons: Vec<String>,
}

/// Appends messages in batches, skipping those a folder holds already.
pub(super) struct Importer<'a> {
    session: &'a Session,
    options: &'a ImportOptions,
    max_bytes: u64,
    folders: HashSet<String>,
    /// Per folder: SHA-256 of every message it holds or was given.
    known: HashMap<String, HashSet<[u8; 32]>>,
    batch: Vec<AppendRequest>,
    batch_bytes: usize,
    tally: Tally,
    /// The owner's OpenPGP key, when mail is encrypted to it on arrival:
    /// imported mail is too.
    encrypt_to: Option<PgpKey>,
}

/// The alias' OpenPGP key if mail to it is encrypted on arrival.
pub(super) fn arrival_key(config: &Config, address: &str) -> Result<Option<PgpKey>> {
    Ok(app::open_control(config)?
        .pgp_key(address)?
        .filter(|k| k.encrypt))
}

impl<'a> Importer<'a> {
    pub(super) async fn new(
        session: &'a Session,
        options: &'a ImportOptions,
        max_bytes: u64,
    ) -> Result<Importer<'a>> {
        Ok(Importer {
            session,
            options,
            max_bytes,
            folders: existing_folders(session).await?,
            known: HashMap::new(),
            batch: Vec::new(),
            batch_bytes: 0,
            tally: Tally::default(),
            encrypt_to: None,
        })
    }

    /// Encrypts what is imported to `key` (PGP/MIME), as delivery does.
    pub(super) fn encrypting(mut self, key: Option<PgpKey>) -> Self {
        self.encrypt_to = key;
        self
    }

    pub(super) fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Stores what is left of the last batch and adds everything stored to
    /// the search index, so the owner's first searches do not wait for the
    /// server to do it; says what was done.
    pub(super) async fn finish(mut self) -> Result<Tally> {
        self.flush().await?;
        if self.tally.imported > 0 {
            eprintln!();
            eprint!("adding the new messages to the search index...");
            let start = std::time::Instant::now();
            let n = self.session.index_now().await?;
            eprintln!(" {n} in {:.1} s", start.elapsed().as_secs_f64());
        }
        Ok(self.tally)
    }

    /// The folder exists (created with `--create`), and what it holds is
    /// known for the duplicate check.
    pub(super) async fn folder(&mut self, folder: &str) -> Result<()> {
        if !self.folders.contains(folder) {
            if !self.options.create {
                bail!("there is no folder {folder:?} in this mailbox: add --create to make it");
            }
            self.session.create_folder(folder).await?;
            // Parents come into being with it (`Work` for `Work/2026`).
            self.folders = existing_folders(self.session).await?;
        }
        if !self.options.allow_duplicates && !self.known.contains_key(folder) {
            let mut hashes = HashSet::new();
            super::export::for_each_message(self.session, folder, |m| {
                if let Some((_, body)) = m.sections.first() {
                    hashes.insert(sha256(body));
                }
                Ok(())
            })
            .await?;
            self.known.insert(folder.to_string(), hashes);
        }
        Ok(())
    }

    pub(super) fn refuse(&mut self, what: &str, why: &str) {
        self.tally.refused += 1;
        if self.tally.reasons.len() < 20 {
            self.tally.reasons.push(format!("{what}: {why}"));
        }
    }

    /// One message for `folder`: its flags from its mbox flag headers (or
    /// `flags`), its date as `--date-from` says (`hint` from the `From `
    /// line or the file), skipped when the folder has it already.
    pub(super) async fn add(
        &mut self,
        folder: &str,
        message: Vec<u8>,
        hint: Option<i64>,
        flags: Option<(u8, Vec<String>)>,
    ) -> Result<()> {
        let (message, flags) = match mbox::take_flag_headers(&message) {
            Some((stripped, system, keywords)) => (stripped, Some((system, keywords))),
            None => (message, flags),
        };
        let hash = sha256(&message);
        if !self.options.allow_duplicates
            && !self
                .known
                .entry(folder.to_string())
                .or_default()
                .insert(hash)
        {
            self.tally.duplicates += 1;
            return Ok(());
        }
        let date = match self.options.date_from {
            DateFrom::Auto => hint.or_else(|| header_date(&message)),
            DateFrom::Header => header_date(&message),
            DateFrom::Now => None,
        };
        let (system, keywords) = flags.unwrap_or_default();
        // Duplicates are told apart by the original's bytes: within a run;
        // a second run does not recognise encrypted copies (their
        // ciphertext differs each time).
        let message = match &self.encrypt_to {
            Some(key) => crate::openpgp::encrypt_for(&key.key, message, key.protect_subject)
                .map_err(|e| anyhow::anyhow!("encrypting to the owner's OpenPGP key: {e}"))?,
            None => message,
        };
        self.batch_bytes += message.len();
        self.batch.push(AppendRequest {
            folder: folder.to_string(),
            message,
            flags: Flags {
                system: system
                    & (Flags::SEEN
                        | Flags::ANSWERED
                        | Flags::FLAGGED
                        | Flags::DELETED
                        | Flags::DRAFT),
                keywords,
            },
            internal_date: date,
            if_missing: Default::default(),
        });
        if self.batch.len() >= BATCH || self.batch_bytes >= BATCH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    pub(super) async fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let n = self.batch.len() as u64;
        self.session
            .append_batch(std::mem::take(&mut self.batch))
            .await?;
        self.batch_bytes = 0;
        self.tally.imported += n;
        // Progress on standard error, rewritten in place on a terminal.
        eprint!(
            "\rimported {}, {} duplicates skipped",
            self.tally.imported, self.tally.duplicates
        );
        Ok(())
    }

    /// Every message of an mbox file, one at a time.
    async fn mbox(&mut self, folder: &str, path: &Path) -> Result<()> {
        use std::io::{BufRead, Read};
        let limit = usize::try_from(self.max_bytes).unwrap_or(usize::MAX);
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
        let mut splitter = mbox::Splitter::with_limit(limit);
        let mut line = Vec::new();
        let line_max = self.max_bytes + 2;
        let mut n = 0u64;
        loop {
            line.clear();
            let got = (&mut reader).take(line_max).read_until(b'\n', &mut line)?;
            if got == 0 {
                break;
            }
            if got as u64 == line_max && !line.ends_with(b"\n") {
                // A line longer than any message may be: its message is
                // refused, the rest of the line skipped.
                splitter.oversize();
                let mut rest = Vec::new();
                while (&mut reader).take(1 << 16).read_until(b'\n', &mut rest)? > 0
                    && !rest.ends_with(b"\n")
                {
                    rest.clear();
                }
                continue;
            }
            if let Some(entry) = splitter.line(&line) {
                n += 1;
                self.entry(folder, path, n, entry).await?;
            }
        }
        if let Some(entry) = splitter.finish() {
            n += 1;
            self.entry(folder, path, n, entry).await?;
        }
        Ok(())
    }

    async fn entry(&mut self, folder: &str, path: &Path, n: u64, entry: mbox::Entry) -> Result<()> {
        if entry.oversized {
            let what = format!("{} message {n}", path.display());
            self.refuse(
                &what,
                &format!(
                    "larger than limits.max_message_size ({} bytes)",
                    self.max_bytes
                ),
            );
            return Ok(());
        }
        self.add(folder, entry.message, entry.date, None).await
    }

    /// One message file (.eml, Maildir): its time is the file's.
    async fn file(
        &mut self,
        folder: &str,
        path: &Path,
        flags: Option<(u8, Vec<String>)>,
    ) -> Result<()> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.len() > self.max_bytes {
            let why = format!(
                "larger than limits.max_message_size ({} bytes)",
                self.max_bytes
            );
            self.refuse(&path.display().to_string(), &why);
            return Ok(());
        }
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok());
        self.add(folder, mbox::to_crlf(&data), mtime, flags).await
    }
}

async fn existing_folders(session: &Session) -> Result<HashSet<String>> {
    Ok(session
        .list_folders()
        .await?
        .into_iter()
        .filter(|f| !f.nonexistent)
        .map(|f| f.name)
        .collect())
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

/// The Unix time of a message's Date header, if it has one that parses.
fn header_date(message: &[u8]) -> Option<i64> {
    let (headers, _) = mailparse::parse_headers(message).ok()?;
    let date = mailparse::MailHeaderMap::get_first_value(headers.as_slice(), "Date")?;
    mailparse::dateparse(&date).ok()
}

/// `sealmail import ADDR PATH`: see [`sources`] for what PATH may be.
/// Memory holds one message (and a batch of at most `BATCH_BYTES`), not
/// the input.
pub fn import(config: &Config, address: &str, path: &Path, options: &ImportOptions) -> Result<()> {
    let sources = sources(path, options.folder.as_deref())?;
    let session = unlock(config, address)?;
    let tally = smol::block_on(async {
        session.settle().await?;
        let mut importer = Importer::new(&session, options, config.limits.max_message_bytes)
            .await?
            .encrypting(arrival_key(config, address)?);
        for (folder, source) in &sources {
            importer.folder(folder).await?;
            match source {
                Source::Mbox(p) => importer.mbox(folder, p).await?,
                Source::Message(p, flags) => importer.file(folder, p, flags.clone()).await?,
            }
        }
        importer.finish().await
    })?;
    let folders: HashSet<&String> = sources.iter().map(|(f, _)| f).collect();
    outln!(
        "imported {} messages into {} folders of {address}; {} duplicates skipped; {} refused",
        tally.imported,
        folders.len(),
        tally.duplicates,
        tally.refused
    );
    for reason in &tally.reasons {
        outln!("  refused {reason}");
    }
    Ok(())
}
