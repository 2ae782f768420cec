//! `sealmail alias pgp ADDR …`: an owner's OpenPGP public key, what is
//! done with it (encryption on arrival, encrypted forwards, the Web Key
//! Directory), and the WKD tree for another web server.
//!
//! Imports `config`, `dns`, `net::tls`, `openpgp`, `relay::http`,
//! `store::{control, types}`. Invariants: a key is stored only once
//! `openpgp::check` accepts it for the address (the refusal says why);
//! only public material is read or written.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use crate::config::Config;
use crate::openpgp::{self, wkd};
use crate::store::control::Control;
use crate::store::types::PgpKey;

#[derive(Subcommand)]
pub enum PgpCmd {
    /// Store the address' public key (replacing one it had) from FILE
    /// (armored or binary, `-` for standard input), or from the address'
    /// own Web Key Directory. Mail to the address is encrypted to it on
    /// arrival unless `--no-encrypt`.
    Import {
        #[arg(required_unless_present = "from_wkd")]
        file: Option<PathBuf>,
        /// Fetch the key from the address' Web Key Directory over HTTPS.
        #[arg(long, conflicts_with = "file")]
        from_wkd: bool,
        #[command(flatten)]
        settings: Settings,
    },
    /// Change what is done with the stored key.
    Set {
        #[command(flatten)]
        settings: Settings,
    },
    /// The stored key: fingerprint, user IDs, expiry and settings.
    Show,
    /// Forget the key: mail is stored as it comes again.
    Remove,
    /// Write the key's WKD files under DIR (the document root of
    /// `openpgpkey.DOMAIN`, and of `DOMAIN` for the direct method).
    WkdExport { dir: PathBuf },
}

/// Switches of `import` and `set`; `import` takes the defaults for the
/// ones not given (encrypt, publish; clear Subject; forwards as they are).
#[derive(clap::Args, Default)]
pub struct Settings {
    /// Wrap mail delivered to the address into PGP/MIME to the key.
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    encrypt: Option<bool>,
    /// Import without encrypting (only publish the key).
    #[arg(long, conflicts_with = "encrypt")]
    no_encrypt: bool,
    /// Keep the Subject only inside the encryption (the outer one reads
    /// "..."; Thunderbird's protected headers show the real one).
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    protect_subject: Option<bool>,
    /// Encrypt the copies the address forwards elsewhere too.
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    forward_encrypted: Option<bool>,
    /// Serve the key in the Web Key Directory.
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    publish: Option<bool>,
}

fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(format!("{s:?}: say on or off")),
    }
}

impl Settings {
    fn apply(&self, key: &mut PgpKey) {
        if let Some(v) = self.encrypt {
            key.encrypt = v;
        }
        if self.no_encrypt {
            key.encrypt = false;
        }
        if let Some(v) = self.protect_subject {
            key.protect_subject = v;
        }
        if let Some(v) = self.forward_encrypted {
            key.forward = v;
        }
        if let Some(v) = self.publish {
            key.publish = v;
        }
    }
}

pub fn pgp(config: &Config, control: &mut Control, address: &str, cmd: PgpCmd) -> Result<()> {
    let alias = control
        .alias(address)?
        .with_context(|| format!("no address {address}"))?;
    let address = alias.address.as_str();
    match cmd {
        PgpCmd::Import {
            file,
            from_wkd,
            settings,
        } => {
            let input = match (file, from_wkd) {
                (_, true) => fetch_wkd(config, address)?,
                (Some(f), false) => read(&f)?,
                (None, false) => bail!("give a key FILE or --from-wkd"),
            };
            let checked = openpgp::check(&input, address, crate::util::now_unix())
                .map_err(|e| anyhow::anyhow!("refused: {e}"))?;
            let old = control.pgp_key(address)?;
            let mut key = PgpKey {
                key: checked.bytes.clone(),
                fingerprint: checked.fingerprint.clone(),
                encrypt: true,
                publish: true,
                protect_subject: old.as_ref().is_some_and(|k| k.protect_subject),
                forward: old.as_ref().is_some_and(|k| k.forward),
            };
            settings.apply(&mut key);
            control.pgp_put(address, &key)?;
            outln!("{address}: stored key {}", checked.fingerprint);
            show(&checked, &key)?;
        }
        PgpCmd::Set { settings } => {
            let Some(mut key) = control.pgp_key(address)? else {
                bail!("{address} has no OpenPGP key: `sealmail alias pgp {address} import FILE`");
            };
            settings.apply(&mut key);
            control.pgp_put(address, &key)?;
            show(&details(address, &key)?, &key)?;
        }
        PgpCmd::Show => match control.pgp_key(address)? {
            Some(key) => show(&details(address, &key)?, &key)?,
            None => outln!("{address} has no OpenPGP key"),
        },
        PgpCmd::Remove => {
            if control.pgp_remove(address)? {
                outln!("{address}: key removed; mail is stored as it comes");
            } else {
                outln!("{address} had no OpenPGP key");
            }
        }
        PgpCmd::WkdExport { dir } => {
            let Some(key) = control.pgp_key(address)? else {
                bail!("{address} has no OpenPGP key");
            };
            for path in wkd_export(&dir, address, &key.key)? {
                outln!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}

/// What `show` prints of a stored key, checked again now (so an expiry
/// since the import shows).
fn details(address: &str, key: &PgpKey) -> Result<openpgp::Checked> {
    match openpgp::check(&key.key, address, crate::util::now_unix()) {
        Ok(c) => Ok(c),
        Err(e) => {
            outln!("warning: the stored key would be refused now: {e}");
            let parsed = openpgp::parse(&key.key).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(openpgp::Checked {
                bytes: key.key.clone(),
                fingerprint: key.fingerprint.clone(),
                user_ids: openpgp::user_ids(&parsed),
                expires: None,
                encryption_key: String::from("-"),
                algorithm: String::from("-"),
            })
        }
    }
}

fn show(c: &openpgp::Checked, key: &PgpKey) -> Result<()> {
    let yes = |b: bool| if b { "on" } else { "off" };
    outln!("fingerprint     {}", c.fingerprint);
    outln!("algorithm       {}", c.algorithm);
    outln!("encryption key  {}", c.encryption_key);
    for u in &c.user_ids {
        outln!("user ID         {u}");
    }
    outln!(
        "expires         {}",
        c.expires
            .map_or_else(|| "never".to_string(), crate::util::iso8601_utc)
    );
    outln!("encrypt         {}", yes(key.encrypt));
    outln!("protect subject {}", yes(key.protect_subject));
    outln!("forward         {}", yes(key.forward));
    outln!("publish (WKD)   {}", yes(key.publish));
    Ok(())
}

fn read(file: &PathBuf) -> Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
        Ok(b)
    } else {
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))
    }
}

/// The files of the key under `dir`: the advanced method's
/// `.well-known/openpgpkey/DOMAIN/{hu/HASH,policy}` and the direct one's
/// `.well-known/openpgpkey/{hu/HASH,policy}`.
pub fn wkd_export(dir: &Path, address: &str, key: &[u8]) -> Result<Vec<PathBuf>> {
    let (local, domain) = address
        .rsplit_once('@')
        .with_context(|| format!("{address} is not an address"))?;
    let base = dir.join(".well-known").join("openpgpkey");
    let mut written = Vec::new();
    for root in [base.join(domain), base.clone()] {
        let hu = root.join("hu");
        std::fs::create_dir_all(&hu).with_context(|| format!("creating {}", hu.display()))?;
        let file = hu.join(wkd::hash(local));
        std::fs::write(&file, key).with_context(|| format!("writing {}", file.display()))?;
        let policy = root.join("policy");
        if !policy.exists() {
            std::fs::write(&policy, b"")?;
        }
        written.push(file);
    }
    Ok(written)
}

/// The address' key from its Web Key Directory: the advanced method,
/// then the direct one (over `relay.https_port`, trusting `relay.ca_file`
/// as the MTA-STS fetches do).
fn fetch_wkd(config: &Config, address: &str) -> Result<Vec<u8>> {
    let tries = wkd::locations(address).with_context(|| format!("{address} is not an address"))?;
    let dns = crate::dns::Dns::new(&config.nameservers).map_err(anyhow::Error::msg)?;
    let extra = match &config.relay.ca_file {
        Some(f) => crate::net::tls::read_certificates(f)?,
        None => Vec::new(),
    };
    let tls = futures_rustls::TlsConnector::from(crate::net::tls::verifying_client(&extra));
    let mut errors = Vec::new();
    for (host, path) in tries {
        let got = smol::block_on(crate::relay::http::get(
            &dns,
            &tls,
            (&host, config.relay.https_port),
            &path,
            openpgp::MAX_KEY_BYTES + crate::proto::http::MAX_HEAD,
        ));
        match got {
            Ok(r) if r.status == 200 => return Ok(r.body),
            Ok(r) => errors.push(format!("https://{host}{path}: HTTP {}", r.status)),
            Err(e) => errors.push(format!("https://{host}{path}: {e}")),
        }
    }
    bail!("no key in the Web Key Directory: {}", errors.join("; "))
}
