//! Sieve mail filtering (RFC 5228 and the extensions sealmail offers):
//! compiling an owner's scripts, and running the active one against a
//! message at delivery, in memory, into an [`Outcome`] the caller carries
//! out (folders and flags, reject, redirect, vacation replies).
//!
//! The interpreter is Stalwart's `sieve-rs` (AGPL-3.0-only, which
//! sealmail's AGPL-3.0-or-later licence is compatible with). It runs no
//! I/O: what a script asks of the server (an included script, whether a
//! folder exists, whether a reply already went to a sender) it asks of a
//! [`Host`], which the MX answers from the store.
//!
//! Imports `util` only. Invariants: every run is bounded (instructions,
//! nested includes, redirects, outgoing messages, variable sizes, the
//! regex engine's backtracking, and the part of a large message's body a
//! script sees); a run-time error (a limit reached included) gives the
//! implicit keep alone, never a partial set of actions; only the
//! extensions in [`EXTENSIONS`] are allowed, so a script that requires
//! anything else is refused when it is stored, not at delivery.

use std::collections::HashMap;
use std::sync::Arc;

use sieve::compiler::grammar::Capability;
use sieve::{Compiler, Event, Input, Recipient, Runtime, Script};

pub use sieve::Sieve;

/// A script's largest size, and the most scripts an owner keeps.
pub const MAX_SCRIPT_BYTES: usize = 64 * 1024;
pub const MAX_SCRIPTS: usize = 16;
/// Instructions one delivery may run (includes counted).
const CPU_LIMIT: usize = 20_000;
/// Redirects per message; outgoing messages (redirects and replies).
const MAX_REDIRECTS: usize = 4;
const MAX_OUT_MESSAGES: usize = 5;
/// Includes nested in includes.
const MAX_NESTED_INCLUDES: usize = 3;
/// What of a larger message's body a script's `body` and `header` tests
/// see: its header whole, its body up to this many bytes.
pub const BODY_SEEN: usize = 1 << 20;
/// A script's variables and a header it reads, at most.
const MAX_VARIABLE_BYTES: usize = 16 * 1024;

/// The extensions sealmail runs (`require` names them), as ManageSieve's
/// SIEVE capability lists them. Those that rewrite the message
/// (editheader, mime, …), notify, and vendor extensions are not offered.
pub const EXTENSIONS: &[&str] = &[
    "fileinto",
    "reject",
    "ereject",
    "envelope",
    "encoded-character",
    "body",
    "variables",
    "relational",
    "comparator-i;ascii-numeric",
    "imap4flags",
    "copy",
    "vacation",
    "vacation-seconds",
    "date",
    "index",
    "regex",
    "mailbox",
    "subaddress",
    "include",
    "environment",
    "duplicate",
    "ihave",
];

/// Comparators every script has (RFC 5228 §2.7.3), allowed in `require`
/// without being listed.
const IMPLICIT: &[&str] = &["comparator-i;octet", "comparator-i;ascii-casemap"];

/// The interpreter, set up once with sealmail's limits and extensions.
pub struct Interpreter {
    runtime: Runtime,
    compiler: Compiler,
    /// Scripts compiled at delivery, by the SHA-256 of their text.
    compiled: std::sync::Mutex<HashMap<[u8; 32], Arc<Sieve>>>,
}

/// Compiled scripts kept for deliveries; the cache starts over past it.
const MAX_COMPILED: usize = 1024;

/// What a script asks of the server while it runs.
pub trait Host {
    /// The text of the owner's script `name` (`include :personal`).
    fn script(&mut self, name: &str) -> Option<String>;
    /// Whether `id` was seen within `expiry` seconds; it is recorded as
    /// seen now either way (`vacation`'s tracking, `duplicate`).
    fn duplicate(&mut self, id: &str, expiry: u64) -> bool;
    /// Whether every folder named exists (`mailboxexists`).
    fn folders_exist(&mut self, names: &[String]) -> bool;
}

/// The message and its envelope, as the MX has them.
pub struct Message<'a> {
    pub raw: &'a [u8],
    /// The envelope sender; empty for the null sender.
    pub from: &'a str,
    /// The envelope recipient as the client gave it (with its
    /// `+detail`, if any).
    pub rcpt: &'a str,
    /// The alias whose script runs.
    pub alias: &'a str,
}

/// A copy to store: `folder` `None` is INBOX (the keep).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filing {
    pub folder: Option<String>,
    pub flags: Vec<String>,
    /// `fileinto :create` (RFC 5490): a missing folder is created; without
    /// it, a missing folder gets INBOX instead.
    pub create: bool,
}

/// What a script decided. No filing and no reject means discarded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub filings: Vec<Filing>,
    /// `reject` (a bounce) or `ereject` (refused in the SMTP dialogue
    /// where it can be), with the script's reason.
    pub reject: Option<Reject>,
    pub redirects: Vec<String>,
    pub replies: Vec<Reply>,
    /// A run-time error (a limit reached, a missing include): the outcome
    /// is the implicit keep alone.
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    pub extended: bool,
    pub reason: String,
}

/// An automatic reply (`vacation`): its recipient and whole message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub to: String,
    pub message: Vec<u8>,
}

impl Outcome {
    /// The implicit keep: INBOX, no other action.
    pub fn keep() -> Outcome {
        Outcome {
            filings: vec![Filing::default()],
            ..Outcome::default()
        }
    }

    fn failed(why: String) -> Outcome {
        Outcome {
            error: Some(why),
            ..Outcome::keep()
        }
    }
}

impl Interpreter {
    /// `hostname` names this server in the Message-IDs of replies.
    pub fn new(hostname: &str) -> Interpreter {
        let mut runtime = Runtime::new()
            .with_cpu_limit(CPU_LIMIT)
            .with_max_nested_includes(MAX_NESTED_INCLUDES)
            .with_max_redirects(MAX_REDIRECTS)
            .with_max_out_messages(MAX_OUT_MESSAGES)
            .with_max_variable_size(MAX_VARIABLE_BYTES)
            .with_max_header_size(MAX_VARIABLE_BYTES)
            .with_local_hostname(hostname.to_string())
            .with_env_variable("name", "sealmail")
            .with_env_variable("version", env!("CARGO_PKG_VERSION"))
            .with_env_variable("domain", hostname.to_string())
            .with_env_variable("host", hostname.to_string())
            .with_env_variable("phase", "during");
        for c in Capability::all() {
            let name = c.to_string();
            if !EXTENSIONS.contains(&name.as_str()) && !IMPLICIT.contains(&name.as_str()) {
                runtime.unset_capability(c.clone());
            }
        }
        let compiler = Compiler::new()
            .with_max_script_size(MAX_SCRIPT_BYTES)
            .with_max_string_size(MAX_VARIABLE_BYTES)
            .with_max_includes(MAX_NESTED_INCLUDES * 4)
            .with_max_nested_blocks(32)
            .with_max_nested_tests(32);
        Interpreter {
            runtime,
            compiler,
            compiled: Default::default(),
        }
    }

    /// [`Interpreter::compile`], remembering what compiled: deliveries run
    /// the same few scripts again and again.
    pub fn compile_cached(&self, text: &[u8]) -> Result<Arc<Sieve>, String> {
        use sha2::Digest;
        let key: [u8; 32] = sha2::Sha256::digest(text).into();
        let lock = || self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(script) = lock().get(&key) {
            return Ok(script.clone());
        }
        let script = self.compile(text)?;
        let mut cache = lock();
        if cache.len() >= MAX_COMPILED {
            cache.clear();
        }
        cache.insert(key, script.clone());
        Ok(script)
    }

    /// Compiles a script, refusing one that requires an extension sealmail
    /// does not run; the error names the line and the reason.
    pub fn compile(&self, text: &[u8]) -> Result<Arc<Sieve>, String> {
        let script = Arc::new(self.compiler.compile(text).map_err(|e| e.to_string())?);
        // `require` is checked when it runs, first thing: a run over an
        // empty message finds an extension that is not allowed.
        let mut ctx = self.runtime.filter(b"Subject: check\r\n\r\n");
        let mut input = Input::script(Script::Personal("check".into()), script.clone());
        while let Some(event) = ctx.run(input) {
            input = Input::False;
            if let Err(e) = event {
                use sieve::runtime::RuntimeError as E;
                if let E::CapabilityNotAllowed(_) | E::CapabilityNotSupported(_) = e {
                    return Err(format!("{e} (sealmail runs: {})", EXTENSIONS.join(" ")));
                }
                break;
            }
        }
        Ok(script)
    }

    /// Runs `script` (the owner's active script, named `name`) on a
    /// message. Never fails: an error gives the implicit keep, and says why.
    pub fn run(
        &self,
        (name, script): (&str, Arc<Sieve>),
        message: &Message<'_>,
        host: &mut dyn Host,
    ) -> Outcome {
        let raw = seen(message.raw);
        let mut ctx = self
            .runtime
            .filter(raw)
            .with_user_address(message.alias.to_string())
            .with_envelope(sieve::Envelope::To, message.rcpt.to_string());
        if !message.from.is_empty() {
            ctx.set_envelope(sieve::Envelope::From, message.from.to_string());
        }
        let mut out = Outcome::default();
        let mut created: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut input = Input::script(Script::Personal(name.to_string()), script);
        while let Some(event) = ctx.run(input) {
            input = Input::True;
            let event = match event {
                Ok(e) => e,
                Err(e) => return Outcome::failed(e.to_string()),
            };
            match event {
                Event::IncludeScript { name, optional } => {
                    let text = match &name {
                        Script::Personal(n) => host.script(n),
                        Script::Global(_) => None,
                    };
                    input = match text.map(|t| self.compile_cached(t.as_bytes())) {
                        Some(Ok(s)) => Input::script(name, s),
                        None if optional => Input::False,
                        None => {
                            return Outcome::failed(format!(
                                "the included script {:?} does not exist",
                                name.as_str()
                            ));
                        }
                        Some(Err(e)) => {
                            return Outcome::failed(format!(
                                "the included script {:?} does not compile: {e}",
                                name.as_str()
                            ));
                        }
                    };
                }
                Event::MailboxExists { mailboxes, .. } => {
                    let names: Vec<String> = mailboxes
                        .into_iter()
                        .map(|m| match m {
                            sieve::Mailbox::Name(n) | sieve::Mailbox::Id(n) => n,
                        })
                        .collect();
                    input = host.folders_exist(&names).into();
                }
                // Vacation's tracking ("_v" and the sender): mail that is
                // never answered is not tracked either.
                Event::DuplicateId { id, .. }
                    if id.starts_with("_v") && !auto_reply_allowed(raw) =>
                {
                    input = Input::True;
                }
                Event::DuplicateId { id, expiry, .. } => {
                    input = host.duplicate(&id, expiry).into();
                }
                Event::ListContains { .. } | Event::SetEnvelope { .. } => input = Input::False,
                Event::Function { .. } => {
                    input = Input::result(sieve::runtime::Variable::default())
                }
                Event::Keep { flags, .. } => file(&mut out.filings, None, flags, false),
                Event::FileInto {
                    folder,
                    flags,
                    create,
                    ..
                } => {
                    let folder = (!folder.eq_ignore_ascii_case("INBOX")).then_some(folder);
                    file(&mut out.filings, folder, flags, create);
                }
                Event::Discard | Event::Notify { .. } => {}
                Event::Reject { extended, reason } => {
                    out.reject = Some(Reject { extended, reason });
                }
                Event::CreatedMessage {
                    message_id,
                    message,
                } => created.push((message_id, message)),
                Event::SendMessage {
                    recipient,
                    message_id,
                    ..
                } => {
                    let Recipient::Address(to) = recipient else {
                        continue;
                    };
                    if message_id == 0 {
                        out.redirects.push(to);
                    } else if let Some(i) = created.iter().position(|(id, _)| *id == message_id) {
                        let (_, message) = created.swap_remove(i);
                        if auto_reply_allowed(raw) {
                            out.replies.push(Reply { to, message });
                        }
                    }
                }
            }
        }
        out
    }
}

/// Adds a copy for `folder`, once per folder (RFC 5228 §4.2: the same
/// folder named twice gets one copy, with the flags named last).
fn file(filings: &mut Vec<Filing>, folder: Option<String>, flags: Vec<String>, create: bool) {
    let same = |f: &&mut Filing| match (&f.folder, &folder) {
        (None, None) => true,
        (Some(a), Some(b)) => a == b,
        _ => false,
    };
    match filings.iter_mut().find(|f| same(f)) {
        Some(f) => {
            f.flags = flags;
            f.create |= create;
        }
        None => filings.push(Filing {
            folder,
            flags,
            create,
        }),
    }
}

/// The part of a message a script sees: all of it, or for a larger one its
/// header and the first [`BODY_SEEN`] bytes of its body.
pub fn seen(raw: &[u8]) -> &[u8] {
    let header = header_end(raw);
    raw.get(..header.saturating_add(BODY_SEEN).min(raw.len()))
        .unwrap_or(raw)
}

fn header_end(raw: &[u8]) -> usize {
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |i| i + 4)
}

/// RFC 3834 §2, checked again beside the interpreter's own checks: no
/// reply to mail marked bulk, list or junk by `Precedence`, automatic by
/// `Auto-Submitted` (anything but `no`), or sent through a list (`List-*`).
fn auto_reply_allowed(raw: &[u8]) -> bool {
    let header = raw.get(..header_end(raw)).unwrap_or(raw);
    let text = String::from_utf8_lossy(header);
    !text.split("\r\n").any(|line| {
        let Some((name, value)) = line.split_once(':') else {
            return false;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        let is = |words: &[&str]| {
            words.iter().any(|w| {
                value
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case(w)
            })
        };
        match name.as_str() {
            "precedence" => is(&["bulk", "list", "junk"]),
            "auto-submitted" => !is(&["no"]),
            _ => name.starts_with("list-"),
        }
    })
}

/// A Sieve quoted string (RFC 5228 §2.4.2).
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// What `sealmail alias vacation` asks for.
pub struct Vacation<'a> {
    pub subject: Option<&'a str>,
    pub body: &'a str,
    pub days: u32,
    /// `YYYY-MM-DD` (UTC), inclusive.
    pub from: Option<&'a str>,
    pub until: Option<&'a str>,
}

/// A script that answers with `v` (within its dates, if given).
pub fn vacation_script(v: &Vacation<'_>) -> String {
    let mut s = String::from("require [\"vacation\", \"date\", \"relational\"];\n");
    let mut dates = Vec::new();
    if let Some(d) = v.from {
        dates.push(format!("currentdate :value \"ge\" \"date\" {}", quoted(d)));
    }
    if let Some(d) = v.until {
        dates.push(format!("currentdate :value \"le\" \"date\" {}", quoted(d)));
    }
    let mut action = format!("vacation :days {}", v.days.max(1));
    if let Some(subject) = v.subject {
        action.push_str(&format!(" :subject {}", quoted(subject)));
    }
    action.push_str(&format!(" {};\n", quoted(v.body)));
    if dates.is_empty() {
        s.push_str(&action);
    } else {
        s.push_str(&format!(
            "if allof ({}) {{\n    {action}}}\n",
            dates.join(", ")
        ));
    }
    s
}

#[cfg(test)]
mod tests;
