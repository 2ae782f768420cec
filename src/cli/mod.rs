//! The command line: clap definitions and the handlers that call into the
//! library. The only module that uses anyhow.
//!
//! May import every module. Invariants: a generated password is printed once
//! and never stored; passwords typed by a user come from `SEALMAIL_PASSWORD`
//! or standard input (echo off on a terminal), never from arguments, which
//! other users can see in the process list.

/// `println!` that returns the write's error (a reader that went away,
/// as `sealmail alias list | head` does) instead of panicking; `main`
/// ends quietly on a broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

/// `print!` as [`outln!`] is `println!`.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)?
    }};
}

mod admin;
mod backup;
mod cluster;
pub mod dmarc;
mod domain;
mod export;
mod mailbox;
mod migrate;
mod pgp;
mod queue;
mod sieve;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use zeroize::Zeroizing;

use crate::app;
use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "sealmail",
    version,
    about = "A mail server whose mailboxes only their owners can open."
)]
pub struct Cli {
    /// Data directory [default: ./data with --dev, else /var/lib/sealmail].
    #[arg(long, global = true, env = "SEALMAIL_DATA")]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data directory: config, server key, certificate, databases.
    Init {
        /// Host name for greetings and the self-signed certificate.
        #[arg(long, default_value = "localhost")]
        hostname: String,
        /// Write a development config (loopback high ports).
        #[arg(long)]
        dev: bool,
        /// Where backups go: a directory on another disk than the data
        /// [default: /var/backups/sealmail; ./data/backups with --dev].
        #[arg(long, value_name = "DIR")]
        backup_dir: Option<PathBuf>,
        /// Accept a backup directory on the data's disk (one disk failure
        /// then takes both; see [backup.s3] in sealmail.toml).
        #[arg(long)]
        allow_same_disk: bool,
    },
    /// Run the server until interrupted.
    Serve {
        /// Development mode: ./data, loopback high ports, a demo account on
        /// first start.
        #[arg(long)]
        dev: bool,
        /// standalone, primary or secondary (over [cluster] role).
        #[arg(long)]
        role: Option<String>,
        /// A secondary's primary, wss://HOST:PORT (over cluster.join).
        #[arg(long)]
        primary: Option<String>,
    },
    /// Link nodes: a primary and its secondaries.
    #[command(subcommand)]
    Cluster(cluster::ClusterCmd),
    /// Manage mail domains.
    #[command(subcommand)]
    Domain(domain::DomainCmd),
    /// Manage addresses: mailboxes, forwards, webhooks, quotas, passwords.
    #[command(subcommand)]
    Alias(admin::AliasCmd),
    /// Look inside a mailbox (needs its password).
    #[command(subcommand)]
    Mailbox(mailbox::MailboxCmd),
    /// Back up, list and restore mailboxes.
    #[command(subcommand)]
    Backup(backup::BackupCmd),
    /// Look at and act on the outbound queue.
    #[command(subcommand)]
    Queue(queue::QueueCmd),
    /// DMARC aggregate reports other servers sent about your domains.
    #[command(subcommand)]
    Dmarc(DmarcCmd),
    /// Print the manual page (roff) made from these definitions; `make
    /// deb` installs it as sealmail(1).
    #[command(hide = true)]
    Manpage,
    /// Import mail into a mailbox (needs its password): an mbox file, an
    /// .eml file, a Maildir, or a directory `sealmail export` wrote (mbox
    /// files or EML folders, each to its folder).
    Import {
        address: String,
        path: PathBuf,
        /// Put everything into this folder [default: INBOX for a file or
        /// Maildir, each folder's own name for an export].
        #[arg(long)]
        folder: Option<String>,
        /// Create folders that do not exist.
        #[arg(long)]
        create: bool,
        /// The internal date: the mbox `From ` line or the file's time
        /// (auto, falling back to the Date header), the Date header, or now.
        #[arg(long, value_enum, default_value_t = mailbox::DateFrom::Auto)]
        date_from: mailbox::DateFrom,
        /// Import messages the folder holds already (same bytes).
        #[arg(long)]
        allow_duplicates: bool,
    },
    /// Copy a mailbox from another IMAP server (needs this mailbox's
    /// password, then the source's: SEALMAIL_SOURCE_PASSWORD or the next
    /// line of standard input): every folder, flag and internal date. Run
    /// again after an interruption: nothing is copied twice.
    Migrate {
        address: String,
        /// imaps://USER@HOST[:PORT], or imap://... (STARTTLS; plain only to
        /// a loopback address).
        #[arg(long, value_name = "URL")]
        from: String,
        /// Trust the source's certificate by its SHA-256 (hex) instead of
        /// the public roots (a self-signed source).
        #[arg(long, value_name = "SHA256")]
        pin: Option<String>,
    },
    /// Export a mailbox (needs its password): mbox or EML per folder, or
    /// a plain SQLite copy. Not encrypted: it is for its owner.
    Export {
        address: String,
        #[arg(long, value_enum, default_value_t = export::Format::Mbox)]
        format: export::Format,
        /// Only this folder.
        #[arg(long)]
        folder: Option<String>,
        /// Where to write [default: ADDRESS.mbox, ADDRESS.eml (directories)
        /// or ADDRESS.sqlite].
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

pub fn main() -> Result<()> {
    let cli = Cli::parse();
    let dev = matches!(
        cli.command,
        Command::Serve { dev: true, .. } | Command::Init { dev: true, .. }
    );
    let data = cli.data.clone().unwrap_or_else(|| {
        if dev {
            PathBuf::from("./data")
        } else {
            PathBuf::from("/var/lib/sealmail")
        }
    });
    if let Command::Manpage = cli.command {
        let mut page = Vec::new();
        clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut page)?;
        std::io::stdout().lock().write_all(&page)?;
        return Ok(());
    }
    // `serve` binds its ports first, then becomes the owner.
    if !matches!(cli.command, Command::Serve { .. }) {
        become_owner(&data)?;
    }
    match cli.command {
        Command::Init {
            hostname,
            dev,
            backup_dir,
            allow_same_disk,
        } => {
            let choice = app::BackupChoice {
                dir: backup_dir,
                allow_same_disk,
            };
            let r = app::init(&data, &hostname, dev, &choice)?;
            outln!(
                "{}: config {}, server key {}, certificate {}",
                data.display(),
                if r.config_written { "written" } else { "kept" },
                if r.key_written { "written" } else { "kept" },
                if r.cert_written { "written" } else { "kept" },
            );
            if r.key_written {
                outln!(
                    "keep a copy of {} off this machine: a restore after a disk loss needs it",
                    data.join("server.key").display()
                );
            }
            if let Some((dir, shared)) = &r.backups {
                outln!(
                    "backups: {}{}",
                    dir.display(),
                    if *shared {
                        " (on the same disk as the mail: a disk failure takes both; set [backup.s3] or backup.dir on another disk)"
                    } else {
                        " (another filesystem than the mail)"
                    }
                );
            }
            Ok(())
        }
        Command::Serve { dev, role, primary } => serve(&data, dev, role, primary),
        Command::Cluster(cmd) => cluster::run(&load(&data)?, cmd),
        Command::Domain(cmd) => domain::domain(&load(&data)?, cmd),
        Command::Alias(cmd) => admin::alias(&load(&data)?, cmd),
        Command::Mailbox(cmd) => mailbox::run(&load(&data)?, cmd),
        Command::Backup(cmd) => backup::run(&load(&data)?, cmd),
        Command::Queue(cmd) => queue::run(&load(&data)?, cmd),
        Command::Dmarc(DmarcCmd::Report {
            domain,
            mailbox,
            folder,
        }) => dmarc::report(&load(&data)?, &domain, &mailbox, &folder),
        Command::Import {
            address,
            path,
            folder,
            create,
            date_from,
            allow_duplicates,
        } => {
            let options = mailbox::ImportOptions {
                folder,
                create,
                date_from,
                allow_duplicates,
            };
            mailbox::import(&load(&data)?, &address, &path, &options)
        }
        Command::Migrate { address, from, pin } => {
            let source = migrate::Source::parse(&from)?;
            let pin = pin
                .map(|p| {
                    hex::decode(p.replace(':', ""))
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .context("--pin: 64 hex digits (the certificate's SHA-256)")
                })
                .transpose()?;
            migrate::migrate(&load(&data)?, &address, &source, pin)
        }
        Command::Export {
            address,
            format,
            folder,
            output,
        } => export::export(&load(&data)?, &address, format, folder.as_deref(), output),
        Command::Manpage => Ok(()),
    }
}

#[derive(Subcommand)]
enum DmarcCmd {
    /// Sum up the aggregate reports about DOMAIN found in the mailbox its
    /// DMARC record's rua= names (needs that mailbox's password): messages
    /// by sending address and by reporter, and how many passed.
    Report {
        domain: String,
        /// The alias whose mailbox receives the reports.
        #[arg(long)]
        mailbox: String,
        #[arg(long, default_value = "INBOX")]
        folder: String,
    },
}

/// Run as root on a data directory that another user owns (the service's
/// `sealmail` user), a command runs as that user: what it creates stays
/// readable by the server, and it can read what the server made.
fn become_owner(data: &Path) -> Result<()> {
    use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let Ok(meta) = std::fs::metadata(data) else {
        return Ok(());
    };
    if meta.uid() == 0 {
        return Ok(());
    }
    let (uid, gid) = (Uid::from_raw(meta.uid()), Gid::from_raw(meta.gid()));
    let dropped = setgroups(&[gid])
        .and_then(|()| setgid(gid))
        .and_then(|()| setuid(uid));
    dropped.with_context(|| {
        format!(
            "{} belongs to uid {uid}; cannot become that user: run the command as it (sudo -u '#{uid}' sealmail ...)",
            data.display()
        )
    })?;
    tracing::debug!(%uid, %gid, "running as the data directory's owner");
    Ok(())
}

fn load(data: &Path) -> Result<Config> {
    Ok(Config::load(data)?)
}

fn serve(data: &Path, dev: bool, role: Option<String>, primary: Option<String>) -> Result<()> {
    if dev && !data.join(crate::config::FILE_NAME).exists() {
        app::init(data, "localhost", true, &app::BackupChoice::default())?;
    }
    let mut config = load(data)?;
    if let Some(r) = role {
        config.cluster.role = crate::config::Role::parse(&r)
            .with_context(|| format!("--role {r:?}: expected standalone, primary or secondary"))?;
    }
    if primary.is_some() {
        config.cluster.primary = primary;
    }
    let config = Arc::new(config);
    if dev && !config.dev {
        anyhow::bail!(
            "{}: --dev needs a development config (server.dev = true); this one is for production",
            config.file.display()
        );
    }
    // Ports first (below 1024 needs root), then the data directory's
    // owner, before anything in it is opened.
    let listeners = app::Listeners::bind(&config)?;
    become_owner(&config.data_dir)?;
    crate::util::log::apply(&config.log).context("log.file in sealmail.toml")?;
    if dev
        && config.cluster.role != crate::config::Role::Secondary
        && let Some(demo) = app::ensure_demo(&config)?
    {
        print_demo(&config, &demo)?;
    }
    // SIGINT and SIGTERM stop the server; SIGHUP (`systemctl reload`)
    // reloads its configuration and certificate; SIGUSR1 and SIGHUP open
    // the log file again (after logrotate moved it).
    use async_signal::{Signal, Signals};
    use futures_lite::StreamExt;
    let mut signals = Signals::new([Signal::Int, Signal::Term, Signal::Hup, Signal::Usr1])
        .context("cannot install the signal handlers")?;
    if config.cluster.role != crate::config::Role::Secondary {
        warn_required_addresses(&config);
    }
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let (reload_tx, reload_rx) = async_channel::bounded::<()>(1);
    let _signals = smol::spawn(async move {
        while let Some(Ok(signal)) = signals.next().await {
            match signal {
                Signal::Hup | Signal::Usr1 => {
                    if let Err(e) = crate::util::log::reopen() {
                        tracing::error!(error = %e, "log file not reopened: the one open stays");
                    }
                    if signal == Signal::Hup {
                        tracing::info!("SIGHUP: reloading");
                        let _ = reload_tx.try_send(());
                    }
                }
                _ => {
                    let _ = stop_tx.try_send(());
                }
            }
        }
    });
    smol::block_on(app::serve(
        config,
        listeners,
        async move {
            let _ = stop_rx.recv().await;
        },
        reload_rx,
    ))?;
    Ok(())
}

/// Domains added before `domain add` created postmaster@ and abuse@ are
/// named at start, with the command that mends them.
fn warn_required_addresses(config: &Config) {
    let Ok(control) = app::open_control(config) else {
        return;
    };
    for (domain, _) in control.list_domains().unwrap_or_default() {
        for local in crate::store::control::REQUIRED {
            let address = format!("{local}@{domain}");
            if matches!(control.alias(&address), Ok(None)) {
                tracing::warn!(
                    %address,
                    "missing: RFC 5321 and RFC 2142 ask every domain for it; add it with `sealmail alias add {address} --no-mailbox --forward YOU@...`"
                );
            }
        }
    }
}

fn print_demo(config: &Config, demo: &app::Demo) -> Result<()> {
    let l = &config.listen;
    let bin = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "sealmail".into());
    outln!(
        "\nA demo mailbox was created. Its password is shown this once:\n\n  \
         address:  {addr}\n  password: {pw}\n\n\
         Client settings (self-signed certificate; accept it once):\n  \
         IMAP        {imap_host} port {imap_port} STARTTLS, or port {imaps_port} SSL/TLS\n  \
         POP3        {pop_host} port {pop_port} STARTTLS, or port {pops_port} SSL/TLS\n  \
         SMTP        {sub_host} port {sub_port} STARTTLS, or port {subs_port} SSL/TLS\n  \
         user name   {addr}\n\n\
         Incoming mail (MX): {mx} (port 25 in production)\n\n\
         Change it with: {bin} --data {data} alias password {addr}\n",
        addr = demo.address,
        pw = demo.password.as_str(),
        imap_host = l.imap.ip(),
        imap_port = l.imap.port(),
        imaps_port = l.imaps.port(),
        pop_host = l.pop3.ip(),
        pop_port = l.pop3.port(),
        pops_port = l.pop3s.port(),
        sub_host = l.submission.ip(),
        sub_port = l.submission.port(),
        subs_port = l.submissions.port(),
        mx = l.smtp,
        data = config.data_dir.display(),
    );
    Ok(())
}

/// A password typed by a user: `SEALMAIL_PASSWORD`, else one line of
/// standard input, with echo off on a terminal.
pub(crate) fn read_password(prompt: &str) -> Result<Zeroizing<String>> {
    read_secret(prompt, "SEALMAIL_PASSWORD")
}

/// A password from the environment variable `var`, or else a line of
/// standard input (not echoed on a terminal).
pub(crate) fn read_secret(prompt: &str, var: &str) -> Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var(var) {
        return Ok(Zeroizing::new(p));
    }
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("{prompt}: ");
        let _ = std::io::stderr().flush();
        let _ = std::process::Command::new("stty").arg("-echo").status();
    }
    let mut line = Zeroizing::new(String::new());
    let read = stdin.lock().read_line(&mut line);
    if tty {
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
    }
    read.context("cannot read the password from standard input")?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
    if trimmed.is_empty() {
        anyhow::bail!("no password given (set {var} or type it on standard input)");
    }
    Ok(trimmed)
}
