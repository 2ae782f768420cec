//! The data directory: what `sealmail init` and `serve --dev` create
//! (configuration, server key, TLS, backup place), the checks on where
//! backups go, and opening its control database and store.
//!
//! Part of `app`; imports what `app` may. Invariants: `server.key` is
//! created once, mode 0600, and never rewritten.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

use super::{AppError, io_at};
use crate::config::{self, Config};
use crate::net::tls;
use crate::store::Store;
use crate::store::control::Control;
use crate::store::keys;
use crate::store::local::{LocalBackend, LocalConfig};
use crate::util::{create_private_dir, random_fill, write_durable};

/// What `init` created.
pub struct InitReport {
    pub config_written: bool,
    /// A new config's backup directory, and whether it shares the data's
    /// disk.
    pub backups: Option<(PathBuf, bool)>,
    pub key_written: bool,
    pub cert_written: bool,
}

/// Where a new data directory's backups go: `dir` (default
/// `config::DEFAULT_BACKUP_DIR`, or `backups` inside the data directory in
/// development), and whether it may be on the data's disk.
#[derive(Clone, Debug, Default)]
pub struct BackupChoice {
    pub dir: Option<PathBuf>,
    pub allow_same_disk: bool,
}

/// Creates a data directory: config, server key, certificate, databases.
/// Existing files are kept. A new config's backup directory is created,
/// and refused on the data's filesystem unless allowed (development
/// allows it).
pub fn init(
    data: &Path,
    hostname: &str,
    dev: bool,
    backups: &BackupChoice,
) -> Result<InitReport, AppError> {
    let cfg_path = data.join(config::FILE_NAME);
    let config_written = !cfg_path.exists();
    let backup_dir = match (&backups.dir, dev) {
        (Some(d), _) => d.clone(),
        (None, true) => PathBuf::from("backups"),
        (None, false) => PathBuf::from(config::DEFAULT_BACKUP_DIR),
    };
    let allow_same_disk = backups.allow_same_disk || dev;
    let mut report_backups = None;
    if config_written {
        let dir = data.join(&backup_dir);
        let shared = same_disk(data, &dir)?;
        report_backups = Some((dir.clone(), shared));
        if !allow_same_disk && shared {
            return Err(AppError::Invalid(format!(
                "backups in {} would be on the same disk as the mail in {}: one disk failure would take both. \
                 Give --backup-dir a directory on another disk, or accept it with --allow-same-disk \
                 (and later set [backup.s3] in sealmail.toml for copies elsewhere)",
                dir.display(),
                data.display()
            )));
        }
    }
    create_private_dir(data).map_err(io_at(data))?;
    // An existing directory is made private too: it will hold keys.
    std::fs::set_permissions(data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(io_at(data))?;
    if config_written {
        let dir = data.join(&backup_dir);
        create_private_dir(&dir).map_err(|e| {
            AppError::Invalid(format!(
                "cannot create the backup directory {}: {e} (give another with --backup-dir)",
                dir.display()
            ))
        })?;
        let text = config::render_template(
            hostname,
            dev,
            &backup_dir.to_string_lossy(),
            allow_same_disk,
        );
        // Validate what is about to be written, so a bad hostname fails here.
        Config::parse(&text, &cfg_path, data)?;
        write_durable(&cfg_path, text.as_bytes(), 0o600).map_err(io_at(&cfg_path))?;
    }
    let config = Config::load(data)?;
    let key_path = data.join("server.key");
    let key_written = !key_path.exists();
    if key_written {
        let mut key = Zeroizing::new([0u8; 32]);
        random_fill(key.as_mut()).map_err(io_at(&key_path))?;
        write_durable(&key_path, key.as_ref(), 0o600).map_err(io_at(&key_path))?;
    }
    let cert_written = tls::ensure_self_signed(&config.tls_cert, &config.tls_key, &config.hostname)
        .map_err(io_at(&config.tls_cert))?;
    for sub in ["mailboxes", "spool"] {
        let p = data.join(sub);
        create_private_dir(&p).map_err(io_at(&p))?;
    }
    open_control(&config)?;
    Ok(InitReport {
        config_written,
        backups: report_backups,
        key_written,
        cert_written,
    })
}

/// Whether a backup directory shares the data directory's filesystem.
fn same_disk(data: &Path, backups: &Path) -> Result<bool, AppError> {
    // The data directory may not exist yet: its parent then stands for it.
    crate::util::same_filesystem(data, backups).map_err(io_at(backups))
}

/// Backups on the data's disk stop the server unless allowed
/// (`backup.allow_same_disk`, or a development config), and are named at
/// every start when allowed;
/// no backups at all are named too.
pub(super) fn check_backup_place(config: &Config) -> Result<(), AppError> {
    if config.backup_s3.is_some() {
        return Ok(());
    }
    if config.backup_policy.is_none() {
        tracing::warn!(
            "scheduled backups are off (backup.schedule = false): nothing copies the mailboxes elsewhere"
        );
        return Ok(());
    }
    let dir = &config.backup_dir;
    if !same_disk(&config.data_dir, dir)? {
        return Ok(());
    }
    // A development server's data is disposable.
    if config.backup_same_disk || config.dev {
        tracing::warn!(
            dir = %dir.display(),
            "backups are on the same disk as the mail (backup.allow_same_disk): a disk failure takes both; set backup.dir on another disk or [backup.s3]"
        );
        return Ok(());
    }
    Err(AppError::Invalid(format!(
        "{}: backup.dir {} is on the same disk as the data directory, so one disk failure would take the mail and its backups. \
         Set backup.dir to a directory on another disk, or [backup.s3], or accept the risk with backup.allow_same_disk = true",
        config.file.display(),
        dir.display()
    )))
}

/// Reads the 32-byte server key.
pub fn server_key(data: &Path) -> Result<Zeroizing<[u8; 32]>, AppError> {
    let path = data.join("server.key");
    let bytes = Zeroizing::new(std::fs::read(&path).map_err(io_at(&path))?);
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return Err(AppError::Invalid(format!(
            "{}: expected 32 bytes, found {}",
            path.display(),
            bytes.len()
        )));
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// Opens the control plane for CLI administration.
pub fn open_control(config: &Config) -> Result<Control, AppError> {
    let key = server_key(&config.data_dir)?;
    Ok(Control::open(
        &config.data_dir.join("control.sqlite"),
        &key,
    )?)
}

/// Builds the local storage backend and the handle sessions use.
pub fn open_store(config: &Config) -> Result<(Arc<LocalBackend>, Store), AppError> {
    crate::store::db::limit_memory(config.database_memory)
        .map_err(|e| AppError::Store(crate::store::StoreError::Internal(e.to_string())))?;
    let backend = Arc::new(LocalBackend::open(LocalConfig {
        data_dir: config.data_dir.clone(),
        server_key: server_key(&config.data_dir)?,
        kdf: config.kdf,
        key_ttl: config.key_ttl,
        limits: config.limits,
        open_mailboxes: config.open_mailboxes,
    })?);
    let store = Store::new(backend.clone());
    Ok((backend, store))
}

/// The demo account `serve --dev` creates on first start.
pub struct Demo {
    pub address: String,
    pub password: Zeroizing<String>,
}

pub const DEMO_DOMAIN: &str = "sealmail.test";

/// Creates the demo domain and alias if no domain exists yet.
pub fn ensure_demo(config: &Config) -> Result<Option<Demo>, AppError> {
    let mut control = open_control(config)?;
    if !control.list_domains()?.is_empty() {
        return Ok(None);
    }
    control.add_domain(DEMO_DOMAIN)?;
    let keys = crate::smtp::dkim::generate(crate::util::now_unix()).map_err(AppError::Invalid)?;
    control.add_dkim_keys(DEMO_DOMAIN, &keys)?;
    let password = keys::generate_password()?;
    let alias = control.add_alias(&format!("demo@{DEMO_DOMAIN}"), Some(&password), config.kdf)?;
    for local in crate::store::control::REQUIRED {
        let required = format!("{local}@{DEMO_DOMAIN}");
        control.add_alias(&required, None, config.kdf)?;
        control.set_forward(&required, std::slice::from_ref(&alias.address))?;
    }
    Ok(Some(Demo {
        address: alias.address,
        password,
    }))
}
