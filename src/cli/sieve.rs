//! `sealmail alias sieve …` and `sealmail alias vacation …`: an owner's
//! Sieve scripts, managed by the operator (owners use ManageSieve).
//!
//! Imports `app`, `config`, `sieve`, `store::{control, scripts}`.
//! Invariants: a script is stored only once it compiles with the
//! extensions sealmail runs; the error names its line.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use crate::config::Config;
use crate::sieve::{Interpreter, Vacation, vacation_script};
use crate::store::control::Control;

#[derive(Subcommand)]
pub enum SieveCmd {
    /// Store a script (replacing one of that name) from FILE, or `-` for
    /// standard input, once it compiles.
    Put {
        name: String,
        file: PathBuf,
        /// Make it the active script as well.
        #[arg(long)]
        activate: bool,
    },
    /// Print a script.
    Get { name: String },
    /// Make a script the active one (the one mail is filtered with).
    Activate { name: String },
    /// Filter with no script.
    Deactivate,
    /// List the scripts, the active one marked.
    List,
    /// Delete a script that is not active.
    Delete { name: String },
    /// Check a file without storing it.
    Check { file: PathBuf },
}

/// The name `sealmail alias vacation` stores its script under.
const VACATION: &str = "vacation";

/// `sealmail alias vacation ADDR …`.
#[derive(clap::Args)]
pub struct VacationArgs {
    pub address: String,
    /// The reply's Subject (by default "Auto: " and the message's).
    #[arg(long)]
    pub subject: Option<String>,
    /// The reply's text, from a file (`-` for standard input).
    #[arg(long)]
    pub body_file: Option<PathBuf>,
    /// Reply at most once per sender in this many days.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// First day to reply (YYYY-MM-DD, UTC).
    #[arg(long)]
    pub from: Option<String>,
    /// Last day to reply (YYYY-MM-DD, UTC).
    #[arg(long)]
    pub until: Option<String>,
    /// Stop replying: the active script is deactivated if it is the
    /// vacation script.
    #[arg(long, conflicts_with_all = ["subject", "body_file", "from", "until"])]
    pub off: bool,
}

fn read(file: &PathBuf) -> Result<String> {
    let bytes = if file.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
        b
    } else {
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))?
    };
    String::from_utf8(bytes).context("a Sieve script is UTF-8 text")
}

fn compile(config: &Config, text: &str) -> Result<()> {
    Interpreter::new(&config.hostname)
        .compile(text.as_bytes())
        .map(drop)
        .map_err(|e| anyhow::anyhow!("the script does not compile: {e}"))
}

pub fn sieve(config: &Config, control: &mut Control, address: &str, cmd: SieveCmd) -> Result<()> {
    match cmd {
        SieveCmd::Put {
            name,
            file,
            activate,
        } => {
            let text = read(&file)?;
            compile(config, &text)?;
            control.sieve_put(address, &name, &text)?;
            if activate {
                control.sieve_activate(address, Some(&name))?;
            }
            println!("stored {name:?}{}", if activate { ", active" } else { "" });
        }
        SieveCmd::Get { name } => match control.sieve_get(address, &name)? {
            Some(text) => print!("{text}"),
            None => bail!("no script {name:?} for {address}"),
        },
        SieveCmd::Activate { name } => {
            control.sieve_activate(address, Some(&name))?;
            println!("{name:?} is active");
        }
        SieveCmd::Deactivate => {
            control.sieve_activate(address, None)?;
            println!("no script is active");
        }
        SieveCmd::List => {
            for s in control.sieve_list(address)? {
                let mark = if s.active { "  (active)" } else { "" };
                println!("{}\t{} bytes{mark}", s.name, s.bytes);
            }
        }
        SieveCmd::Delete { name } => {
            control.sieve_delete(address, &name)?;
            println!("deleted {name:?}");
        }
        SieveCmd::Check { file } => {
            compile(config, &read(&file)?)?;
            println!("the script compiles");
        }
    }
    Ok(())
}

/// Checks a `YYYY-MM-DD` date.
fn date(s: &Option<String>) -> Result<()> {
    if let Some(d) = s {
        let parts: Vec<&str> = d.split('-').collect();
        let ok = matches!(parts.as_slice(), [y, m, dd] if y.len() == 4 && m.len() == 2 && dd.len() == 2
            && d.chars().all(|c| c.is_ascii_digit() || c == '-'));
        if !ok {
            bail!("{d:?} is not a date such as 2026-12-24");
        }
    }
    Ok(())
}

pub fn vacation(config: &Config, control: &mut Control, v: VacationArgs) -> Result<()> {
    if v.off {
        let active = control.sieve_scripts(&v.address)?.map(|s| s.active);
        if active.as_deref() == Some(VACATION) {
            control.sieve_activate(&v.address, None)?;
            println!("vacation replies are off");
        } else {
            println!("the vacation script is not active");
        }
        return Ok(());
    }
    let Some(body_file) = &v.body_file else {
        bail!("--body-file is required (the reply's text)");
    };
    date(&v.from)?;
    date(&v.until)?;
    let body = read(body_file)?;
    let text = vacation_script(&Vacation {
        subject: v.subject.as_deref(),
        body: &body,
        days: v.days,
        from: v.from.as_deref(),
        until: v.until.as_deref(),
    });
    compile(config, &text)?;
    control.sieve_put(&v.address, VACATION, &text)?;
    control.sieve_activate(&v.address, Some(VACATION))?;
    println!("vacation replies are on (script {VACATION:?}, active)");
    Ok(())
}
