//! The server's log: one line per event through `tracing`, as key=value
//! text or JSON lines, written to standard error (journald) or to a file
//! that SIGUSR1 and SIGHUP reopen (logrotate), with mail addresses shown or
//! redacted (`[log]` in `sealmail.toml`).
//!
//! Imports nothing of ours. Invariants: `init` runs once, before anything
//! logs; `apply` may run again while the server runs (a reload) and its
//! settings hold from the next event on; a file that cannot be opened
//! leaves the destination in use unchanged. Every line is written whole,
//! under one lock, so lines from several threads never interleave.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};

use tracing_subscriber::Layer;
use tracing_subscriber::filter::dynamic_filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How each line is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// `2026-12-02T08:00:00.000000Z  INFO sealmail::login: login ok proto=imap client=…`
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, message, the event's
    /// fields, target.
    Json,
}

/// The `[log]` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub format: Format,
    /// Appended to instead of standard error; reopened on SIGUSR1/SIGHUP.
    pub file: Option<PathBuf>,
    /// Mail addresses show only their domain (`*@example.org`).
    pub redact_addresses: bool,
}

/// Which layer writes: text with colours (a terminal), plain text, JSON.
const TEXT_ANSI: u8 = 0;
const TEXT: u8 = 1;
const JSON: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(TEXT);
static REDACT: AtomicBool = AtomicBool::new(false);
/// The open log file and its path; standard error when `None`.
static FILE: Mutex<Option<(PathBuf, File)>> = Mutex::new(None);

fn file() -> MutexGuard<'static, Option<(PathBuf, File)>> {
    FILE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs the global subscriber: text on standard error, at the level
/// `SEALMAIL_LOG` names (`info` by default), until `apply` says otherwise.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEALMAIL_LOG")
        .unwrap_or_else(|_| "info".into());
    if std::io::IsTerminal::is_terminal(&io::stderr()) {
        MODE.store(TEXT_ANSI, Ordering::Relaxed);
    }
    let layers = vec![
        text_layer(true).with_filter(when(TEXT_ANSI)).boxed(),
        text_layer(false).with_filter(when(TEXT)).boxed(),
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(Out)
            .log_internal_errors(false)
            .with_filter(when(JSON))
            .boxed(),
    ];
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layers)
        .try_init();
}

type Inner =
    tracing_subscriber::layer::Layered<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// Lets an event through while `mode` is the one in force.
fn when(mode: u8) -> impl tracing_subscriber::layer::Filter<Inner> {
    dynamic_filter_fn(move |_, _| MODE.load(Ordering::Relaxed) == mode)
}

fn text_layer(ansi: bool) -> impl Layer<Inner> {
    tracing_subscriber::fmt::layer()
        .with_writer(Out)
        .with_ansi(ansi)
        // A closed stderr must not stop the server (its eprintln! panics).
        .log_internal_errors(false)
}

/// Puts `settings` in force: the file is opened first, and if it cannot
/// be, nothing changes and the error says why.
pub fn apply(settings: &Settings) -> io::Result<()> {
    let opened = match &settings.file {
        Some(path) => Some((path.clone(), open(path)?)),
        None => None,
    };
    let terminal = std::io::IsTerminal::is_terminal(&io::stderr());
    let mode = match (settings.format, &opened) {
        (Format::Json, _) => JSON,
        (Format::Text, None) if terminal => TEXT_ANSI,
        (Format::Text, _) => TEXT,
    };
    *file() = opened;
    MODE.store(mode, Ordering::Relaxed);
    REDACT.store(settings.redact_addresses, Ordering::Relaxed);
    Ok(())
}

/// Opens the log file again under its name (after logrotate moved it).
/// Without a log file, nothing to do.
pub fn reopen() -> io::Result<()> {
    let mut current = file();
    if let Some((path, f)) = current.as_mut() {
        *f = open(path)?;
    }
    Ok(())
}

fn open(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// A mail address (or login name) as the log shows it: whole, or with
/// `redact_addresses` only its domain (`*@example.org`, `*` without one).
pub fn addr(a: &str) -> Cow<'_, str> {
    if !REDACT.load(Ordering::Relaxed) || a.is_empty() {
        return Cow::Borrowed(a);
    }
    match a.rsplit_once('@') {
        Some((_, domain)) => Cow::Owned(format!("*@{domain}")),
        None => Cow::Borrowed("*"),
    }
}

/// Several addresses, comma-separated, each as [`addr`] shows it.
pub fn addrs(list: &[String]) -> String {
    let shown: Vec<Cow<'_, str>> = list.iter().map(|a| addr(a)).collect();
    shown.join(",")
}

/// Where the formatters write: the log file, or standard error.
struct Out;

impl<'a> MakeWriter<'a> for Out {
    type Writer = Out;
    fn make_writer(&'a self) -> Out {
        Out
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    /// One formatted line, written whole under the lock.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match file().as_mut() {
            Some((_, f)) => f.write_all(buf),
            None => io::stderr().lock().write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_the_domain_only() {
        REDACT.store(true, Ordering::Relaxed);
        assert_eq!(addr("alice@example.org"), "*@example.org");
        assert_eq!(addr("\"a@b\"@example.org"), "*@example.org");
        assert_eq!(addr("alice"), "*");
        assert_eq!(addr(""), "");
        assert_eq!(
            addrs(&["a@x.org".into(), "b@y.org".into()]),
            "*@x.org,*@y.org"
        );
        REDACT.store(false, Ordering::Relaxed);
        assert_eq!(addr("alice@example.org"), "alice@example.org");
    }
}
