//! The storage backend of this process: control plane, key cache, open
//! mailbox files, spool and change events behind the [`Backend`] trait.
//!
//! Imports the rest of `store` and `util`. Invariants: all SQLite, argon2
//! and age work runs on the blocking pool; a mailbox file is open only while
//! its key is cached; per alias, the decision "key present → INBOX, else
//! seal" is made under one gate, and while a cold unlock's spool import
//! runs (in the background, `import`) it is "seal", so no sealed message is
//! left behind and mail keeps its arrival order; a spool file is imported
//! and recorded in one transaction and only then unlinked.

mod import;
mod inbound;
mod index;
mod intake;
mod open;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use zeroize::Zeroizing;

use super::control::{Alias, Control};
use super::events::Hub;
use super::keys::{self, KdfParams, KeyCache};
use super::mailbox::{INDEX_BATCH, Limits, Mailbox, normalize, parse_within};
use super::types::*;
use super::{Backend, BoxFuture, StoreError};
use super::{order, spool};
use crate::util::create_private_dir;
use import::Import;
use intake::{Intake, Queued};
use open::OpenFiles;

/// What the local backend needs to know.
#[derive(Clone)]
pub struct LocalConfig {
    pub data_dir: PathBuf,
    pub server_key: Zeroizing<[u8; 32]>,
    pub kdf: KdfParams,
    pub key_ttl: Duration,
    pub limits: Limits,
    /// See `Config::open_mailboxes`.
    pub open_mailboxes: usize,
}

pub struct LocalBackend {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: LocalConfig,
    control: Mutex<Control>,
    keys: KeyCache,
    hub: Hub,
    sessions: Mutex<HashMap<SessionId, Live>>,
    /// Open files by alias.
    open: Mutex<OpenFiles>,
    /// Counts uses of open files (`OpenFile::used`).
    tick: AtomicU64,
    /// Set when the backend is dropped: a running import stops after its
    /// batch (the rest waits for the next login).
    stopping: AtomicBool,
    gates: Mutex<HashMap<i64, Arc<Mutex<()>>>>,
    /// Deliveries waiting to be committed together, by alias.
    intake: Intake,
    /// Spool imports running, by alias.
    imports: Mutex<HashMap<i64, Arc<Import>>>,
    /// (alias, folder) -> the highest UID known claimed as `\Recent`, so
    /// the sessions that hear of a delivery after the one that claimed it
    /// do not each open a transaction to learn so. Cleared for an alias
    /// when its folders change (a re-created folder starts its UIDs anew).
    recent: Mutex<HashMap<(i64, String), u32>>,
    next_session: AtomicU64,
    /// Aliases whose mailbox a background job is adding to the search
    /// index (`index_later`).
    indexing: Mutex<HashSet<i64>>,
    /// This state itself, for jobs that must hold it.
    me: Weak<Inner>,
}

#[derive(Clone)]
struct Live {
    alias: i64,
    quota: Option<u64>,
    /// The spool import this session's login started or found running,
    /// which `settle` waits for (it may end before anyone asks).
    import: Option<Arc<Import>>,
}

fn spool_error(e: spool::SpoolError) -> StoreError {
    match e {
        spool::SpoolError::Io(io) => StoreError::Unavailable(io.to_string()),
        other => StoreError::Internal(other.to_string()),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these maps leaves plain data whole.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LocalBackend {
    pub fn open(cfg: LocalConfig) -> Result<LocalBackend, StoreError> {
        create_private_dir(&cfg.data_dir.join("mailboxes"))?;
        create_private_dir(&cfg.data_dir.join("spool"))?;
        let control = Control::open(&cfg.data_dir.join("control.sqlite"), &cfg.server_key)
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let keys = KeyCache::new(cfg.key_ttl).map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(LocalBackend {
            inner: Arc::new_cyclic(|me| Inner {
                cfg,
                control: Mutex::new(control),
                keys,
                hub: Hub::default(),
                sessions: Mutex::new(HashMap::new()),
                open: Mutex::new(HashMap::new()),
                tick: AtomicU64::new(0),
                stopping: AtomicBool::new(false),
                gates: Mutex::new(HashMap::new()),
                intake: Intake::default(),
                imports: Mutex::new(HashMap::new()),
                recent: Mutex::new(HashMap::new()),
                next_session: AtomicU64::new(1),
                indexing: Mutex::new(HashSet::new()),
                me: me.clone(),
            }),
        })
    }

    /// Drops keys (and closes files) idle past their time to live.
    pub fn sweep(&self) {
        self.inner.sweep();
    }

    /// Number of mailbox files open now.
    pub fn open_mailboxes(&self) -> usize {
        lock(&self.inner.open).len()
    }

    /// Mailboxes whose key is in memory now (a session is open or just
    /// closed), with what a backup of each needs. The caller locks the
    /// mailbox for the snapshot, which holds its writers off.
    pub fn open_with_keys(&self) -> Vec<OpenMailbox> {
        let open: Vec<(i64, String, Arc<Mutex<Mailbox>>)> = lock(&self.inner.open)
            .iter()
            .map(|(a, f)| (*a, f.id.clone(), f.mailbox.clone()))
            .collect();
        let mut out = Vec::new();
        for (alias_id, mailbox_id, mailbox) in open {
            let Ok(Some(credentials)) = lock(&self.inner.control).credentials(alias_id) else {
                continue;
            };
            if let Some(dek) = self.inner.keys.peek(alias_id, &credentials.verifier) {
                out.push(OpenMailbox {
                    alias_id,
                    mailbox_id,
                    mailbox,
                    dek,
                    credentials,
                });
            }
        }
        out
    }

    /// Mailbox files no session has open (their owners are away), with
    /// what a backup without the key needs: the server cannot open them,
    /// but the encrypted file can be copied while nothing writes it.
    pub fn closed_mailboxes(&self) -> Vec<ClosedMailbox> {
        let open: HashSet<i64> = lock(&self.inner.open).keys().copied().collect();
        let control = lock(&self.inner.control);
        let Ok(aliases) = control.list_aliases(None) else {
            return Vec::new();
        };
        aliases
            .into_iter()
            .filter(|a| a.mailbox && !open.contains(&a.id))
            .filter_map(|a| {
                let credentials = control.credentials(a.id).ok().flatten()?;
                Some(ClosedMailbox {
                    path: self.inner.mailbox_path(&a),
                    alias_id: a.id,
                    mailbox_id: a.mailbox_id,
                    credentials,
                })
            })
            .collect()
    }
}

/// A mailbox file with no session: [`LocalBackend::closed_mailboxes`].
pub struct ClosedMailbox {
    pub alias_id: i64,
    pub mailbox_id: String,
    pub path: PathBuf,
    pub credentials: keys::Credentials,
}

/// Dropping the backend (the server stopping, a command ending, a test
/// ending) waits until nothing else holds its state: background jobs
/// (imports stop after their batch, caches given back at logout) and
/// requests whose caller went away. The files then close on this thread,
/// so nothing is inside SQLCipher when the process exits.
impl Drop for LocalBackend {
    fn drop(&mut self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + DROP_WAIT;
        while Arc::strong_count(&self.inner) > 1 {
            if std::time::Instant::now() > deadline {
                tracing::warn!("store closed while a job still runs");
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// How long dropping the backend waits for its jobs: an import batch or a
/// large commit, with room for a slow disk.
const DROP_WAIT: Duration = Duration::from_secs(300);

impl LocalBackend {
    /// Records the backup scheduler's outcome for `sealmail backup list`.
    pub fn record_backup(&self, alias_id: i64, result: Result<(), &str>) {
        if let Err(e) = lock(&self.inner.control).set_backup_status(alias_id, result) {
            tracing::warn!(error = %e, "cannot record backup status");
        }
    }
}

/// See [`LocalBackend::open_with_keys`].
pub struct OpenMailbox {
    pub alias_id: i64,
    pub mailbox_id: String,
    pub mailbox: Arc<Mutex<Mailbox>>,
    pub dek: keys::Dek,
    pub credentials: keys::Credentials,
}

impl Backend for LocalBackend {
    fn call(&self, request: Request) -> BoxFuture<'_, Result<Response, StoreError>> {
        let inner = self.inner.clone();
        Box::pin(blocking::unblock(move || inner.handle(request)))
    }

    fn subscribe(&self, session: SessionId) -> Result<async_channel::Receiver<Change>, StoreError> {
        let live = self.inner.live(session)?;
        Ok(self.inner.hub.subscribe(live.alias))
    }

    fn release(&self, session: SessionId) {
        let live = lock(&self.inner.sessions).remove(&session);
        if let Some(live) = live {
            self.inner.record_usage(live.alias);
            self.inner.keys.release(live.alias);
            self.inner.sweep();
            let last = !lock(&self.inner.sessions)
                .values()
                .any(|l| l.alias == live.alias);
            if last {
                // The file stays open for deliveries until the key expires;
                // its page cache need not.
                self.inner
                    .in_background(move |inner| inner.shrink(live.alias));
            }
        }
    }
}

impl Inner {
    /// Runs `f` on the blocking pool; dropping the backend waits for it.
    fn in_background(self: &Arc<Self>, f: impl FnOnce(&Inner) + Send + 'static) {
        let inner = self.clone();
        blocking::unblock(move || f(&inner)).detach();
    }

    fn handle(self: &Arc<Self>, req: Request) -> Result<Response, StoreError> {
        use Request as R;
        match req {
            R::Unlock { address, password } => {
                self.unlock(&address, &password).map(Response::Unlocked)
            }
            R::Settle { session } => self.settle(session).map(Response::Settled),
            R::Lookup { address } => self.lookup(&address).map(Response::Recipient),
            R::Authenticate { address, password } => self
                .authenticate(&address, &password)
                .map(Response::Account),
            R::DkimKeys { domain } => lock(&self.control)
                .dkim_keys(&domain)
                .map(Response::DkimKeys)
                .map_err(|e| StoreError::Internal(e.to_string())),
            R::Deliver {
                address,
                message,
                to,
            } => self.deliver(&address, message, to).map(Response::Delivered),
            R::SieveScripts { address } => self.sieve_scripts(&address),
            R::PgpKey { address } => lock(&self.control)
                .pgp_key(&address)
                .map(Response::PgpKey)
                .map_err(|e| StoreError::Internal(e.to_string())),
            R::WkdKey { domain, hash } => lock(&self.control)
                .wkd_key(&domain, &hash)
                .map(Response::PgpKey)
                .map_err(|e| StoreError::Internal(e.to_string())),
            R::Sieve { address, op } => self.sieve(&address, op),
            R::SieveSeen {
                address,
                id,
                expiry,
            } => self.sieve_seen(&address, &id, expiry),
            R::DeliverSealed {
                address,
                sealed,
                shipment,
            } => self
                .deliver_sealed(&address, &sealed, &shipment)
                .map(Response::Delivered),
            R::Directory => self.directory().map(Response::Directory),
            R::ListFolders { session } => self
                .read(session, |m, _| m.list_folders())
                .map(Response::Folders),
            R::CreateFolder { session, name } => self.changed(session, |m| m.create_folder(&name)),
            R::RenameFolder { session, from, to } => {
                self.changed(session, |m| m.rename_folder(&from, &to))
            }
            R::DeleteFolder { session, name } => {
                self.changed(session, |m| m.delete_folder(&name).map(drop))
            }
            R::Subscribe {
                session,
                name,
                subscribed,
            } => self
                .with(session, |m, _| m.subscribe(&name, subscribed))
                .map(|()| Response::Done),
            R::Select { session, folder } => self
                .with(session, |m, _| m.select(&folder))
                .map(Response::Selected),
            R::Status { session, folder } => self
                .read(session, |m, _| m.status(&folder))
                .map(Response::Status),
            R::GetMetadata {
                session,
                folder,
                names,
                depth,
            } => self
                .read(session, |m, _| m.get_metadata(&folder, &names, depth))
                .map(Response::Metadata),
            R::SetMetadata {
                session,
                folder,
                entries,
            } => self
                .with(session, |m, _| m.set_metadata(&folder, &entries))
                .map(|()| Response::Done),
            R::ClaimRecent {
                session,
                folder,
                up_to,
            } => self
                .claim_recent(session, &folder, up_to)
                .map(Response::Expunged),
            R::Listing { session, folder } => self
                .with(session, |m, _| m.listing(&folder))
                .map(Response::Listing),
            R::Append {
                session,
                messages,
                recent: false,
            } => self
                .append(session, &messages, false)
                .map(|(a, _)| Response::Appended(a)),
            R::Append {
                session,
                messages,
                recent: true,
            } => self
                .append(session, &messages, true)
                .map(|(a, claimed)| Response::AppendedRecent(a, claimed)),
            R::Fetch {
                session,
                folder,
                uids,
                what,
            } => self
                .read(session, |m, _| m.fetch(&folder, &uids, &what))
                .map(Response::Fetched),
            R::Store { session, request } => self.store(session, &request).map(Response::Stored),
            R::Copy {
                session,
                from,
                uids,
                to,
            } => self
                .copy(session, &from, &uids, &to, false)
                .map(Response::Copied),
            R::Move {
                session,
                from,
                uids,
                to,
            } => self
                .copy(session, &from, &uids, &to, true)
                .map(Response::Copied),
            R::Expunge {
                session,
                folder,
                uids,
            } => self
                .expunge(session, &folder, uids.as_ref())
                .map(Response::Expunged),
            R::Search {
                session,
                folder,
                criteria,
            } => self
                .with(session, |m, _| m.search(&folder, &criteria))
                .map(Response::Found),
            R::Sort {
                session,
                folder,
                criteria,
                keys,
            } => self
                .with(session, |m, _| {
                    let mut rows = m.order_rows(&folder, &criteria)?;
                    order::sort(&mut rows, &keys);
                    Ok(SearchResult {
                        uids: rows.iter().map(|r| r.uid).collect(),
                        highest_modseq: None,
                    })
                })
                .map(Response::Found),
            R::Thread {
                session,
                folder,
                criteria,
                algorithm,
            } => self
                .with(session, |m, _| {
                    Ok(order::thread(m.order_rows(&folder, &criteria)?, algorithm))
                })
                .map(Response::Threads),
            R::ChangesSince {
                session,
                folder,
                modseq,
            } => self
                .with(session, |m, _| m.changes_since(&folder, modseq))
                .map(Response::Changes),
            R::Quota { session } => self
                .read(session, |m, live| {
                    let (used_bytes, messages) = m.usage()?;
                    Ok(QuotaUsage {
                        used_bytes,
                        messages,
                        limit_bytes: live.quota,
                    })
                })
                .map(Response::Quota),
            R::Vacuum { session } => self
                .with(session, |m, _| m.vacuum())
                .map(|()| Response::Done),
            R::Index { session } => self.index_now(session).map(Response::Indexed),
        }
    }

    fn live(&self, session: SessionId) -> Result<Live, StoreError> {
        lock(&self.sessions)
            .get(&session)
            .cloned()
            .ok_or(StoreError::NoSession)
    }

    /// Runs `f` on the session's open mailbox.
    fn with<T>(
        &self,
        session: SessionId,
        f: impl FnOnce(&mut Mailbox, &Live) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let live = self.live(session)?;
        let mb = lock(&self.open)
            .get(&live.alias)
            .map(|f| self.used(f))
            .ok_or(StoreError::NoSession)?;
        let mut guard = lock(&mb);
        let out = f(&mut guard, &live);
        if guard.unindexed() >= INDEX_BATCH {
            self.index_later(live.alias, &mb);
        }
        out
    }

    /// Runs a read `f` on the session's mailbox without waiting for a
    /// write: on the mailbox itself when nobody holds it (its page cache is
    /// warm), else on one of its readers (`open::Readers`), which sees the
    /// last commit but starts with a cold cache whenever the file changed.
    fn read<T>(
        &self,
        session: SessionId,
        f: impl FnOnce(&mut Mailbox, &Live) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let live = self.live(session)?;
        let (mb, readers) = lock(&self.open)
            .get(&live.alias)
            .map(|f| (self.used(f), f.readers.clone()))
            .ok_or(StoreError::NoSession)?;
        let free = match mb.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        match free {
            Some(mut g) => f(&mut g, &live),
            None => readers.run(|m| f(m, &live)),
        }
    }

    fn changed(
        &self,
        session: SessionId,
        f: impl FnOnce(&mut Mailbox) -> Result<(), StoreError>,
    ) -> Result<Response, StoreError> {
        let live = self.live(session)?;
        self.with(session, |m, _| f(m))?;
        lock(&self.recent).retain(|k, _| k.0 != live.alias);
        self.hub.publish(live.alias, vec![Change::FoldersChanged]);
        Ok(Response::Done)
    }

    /// See `Request::ClaimRecent`; answered from memory when another
    /// session already claimed that far.
    fn claim_recent(
        &self,
        session: SessionId,
        folder: &str,
        up_to: u32,
    ) -> Result<Vec<u32>, StoreError> {
        let live = self.live(session)?;
        let key = (live.alias, super::normalize_folder_name(folder));
        if lock(&self.recent)
            .get(&key)
            .is_some_and(|&mark| mark >= up_to)
        {
            return Ok(Vec::new());
        }
        let (uids, mark) = self.with(session, |m, _| m.claim_recent(folder, up_to))?;
        let mut known = lock(&self.recent);
        let e = known.entry(key).or_default();
        *e = (*e).max(mark);
        Ok(uids)
    }

    fn gate(&self, alias: i64) -> Arc<Mutex<()>> {
        lock(&self.gates).entry(alias).or_default().clone()
    }

    fn alias(&self, address: &str) -> Result<Option<Alias>, StoreError> {
        lock(&self.control)
            .alias(address)
            .map_err(|e| StoreError::Internal(e.to_string()))
    }

    fn mailbox_path(&self, alias: &Alias) -> PathBuf {
        self.cfg
            .data_dir
            .join("mailboxes")
            .join(format!("{}.sqlite", alias.mailbox_id))
    }

    fn unlock(self: &Arc<Self>, address: &str, password: &str) -> Result<SessionInfo, StoreError> {
        let alias = self.alias(address)?;
        let creds = match &alias {
            Some(a) if a.mailbox => lock(&self.control)
                .credentials(a.id)
                .map_err(|e| StoreError::Internal(e.to_string()))?,
            _ => None,
        };
        let (Some(alias), Some(creds)) = (alias, creds) else {
            // Spend the same time as a real check, so probing for addresses
            // learns nothing.
            let _ = keys::create(password, self.cfg.kdf);
            return Err(StoreError::AuthFailed);
        };
        // Warm: the key is cached and nothing waits in the spool, or an
        // import of it is already running.
        let mut import = lock(&self.imports).get(&alias.id).cloned();
        let warm = import.is_some() || !spool::has_pending(&self.cfg.data_dir, &alias.mailbox_id);
        // Held until the session is registered, so that the file cannot be
        // closed as unneeded in between.
        let _pinned;
        if warm && let Some(dek) = self.keys.acquire(alias.id, &creds.verifier, password) {
            match self.open_mailbox(&alias, &dek) {
                Ok(mb) => _pinned = mb,
                Err(e) => {
                    self.keys.release(alias.id);
                    return Err(e);
                }
            }
        } else {
            let unwrapped = keys::unwrap(&creds, password).map_err(|e| match e {
                keys::KeyError::WrongPassword => StoreError::AuthFailed,
                other => StoreError::Internal(other.to_string()),
            })?;
            let mb = self.open_mailbox(&alias, &unwrapped.dek)?;
            _pinned = mb.clone();
            let started = {
                let gate = self.gate(alias.id);
                let _g = lock(&gate);
                self.keys
                    .insert(alias.id, &creds.verifier, password, &unwrapped.dek);
                let mut imports = lock(&self.imports);
                import = imports.get(&alias.id).cloned();
                let start =
                    import.is_none() && spool::has_pending(&self.cfg.data_dir, &alias.mailbox_id);
                if start {
                    let new = Arc::new(Import::default());
                    imports.insert(alias.id, new.clone());
                    import = Some(new);
                }
                start
            };
            if let Some(run) = import.clone().filter(|_| started) {
                let alias = alias.clone();
                let identity = unwrapped.identity;
                self.in_background(move |inner| {
                    inner.run_import(&alias, &mb, &identity, &run);
                });
            }
        }
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        lock(&self.sessions).insert(
            id,
            Live {
                alias: alias.id,
                quota: alias.quota_bytes,
                import,
            },
        );
        Ok(SessionInfo {
            id,
            address: alias.address,
            pop3_trash: alias.pop3_trash,
        })
    }

    /// Waits for the spool import the session's login started or found
    /// running, even one that has ended since; returns how many messages it
    /// imported.
    fn settle(&self, session: SessionId) -> Result<u32, StoreError> {
        self.live(session)?.import.map_or(Ok(0), |i| i.wait())
    }

    /// Checks a password for submission. A key cached by an open session
    /// (or one that closed within the cache time) answers without argon2.
    fn authenticate(&self, address: &str, password: &str) -> Result<Account, StoreError> {
        let internal = |e: super::control::ControlError| StoreError::Internal(e.to_string());
        let alias = self.alias(address)?;
        let creds = match &alias {
            Some(a) if a.mailbox => lock(&self.control).credentials(a.id).map_err(internal)?,
            _ => None,
        };
        let (Some(alias), Some(creds)) = (alias, creds) else {
            let _ = keys::create(password, self.cfg.kdf);
            return Err(StoreError::AuthFailed);
        };
        if !self.keys.matches(alias.id, &creds.verifier, password) {
            keys::verify(&creds, password).map_err(|e| match e {
                keys::KeyError::WrongPassword => StoreError::AuthFailed,
                other => StoreError::Internal(other.to_string()),
            })?;
        }
        let send_as = lock(&self.control)
            .send_as(&alias.address)
            .map_err(internal)?;
        Ok(Account {
            address: alias.address,
            send_as,
        })
    }

    fn append(
        &self,
        session: SessionId,
        messages: &[AppendRequest],
        recent: bool,
    ) -> Result<(Vec<AppendUid>, bool), StoreError> {
        let live = self.live(session)?;
        let (appended, claimed, durable) = self.with(session, |m, live| {
            let (appended, claimed) = if recent {
                m.append_recent(messages, live.quota)?
            } else {
                (m.append(messages, live.quota)?, false)
            };
            Ok((appended, claimed, m.committed()))
        })?;
        // APPEND's OK promises the mail survives a power cut.
        durable.wait()?;
        if claimed && let Some((folder, last)) = appended.last() {
            let mut known = lock(&self.recent);
            let e = known.entry((live.alias, folder.clone())).or_default();
            *e = (*e).max(last.uid);
        }
        let changes = appended
            .iter()
            .map(|(folder, a)| Change::Exists {
                folder: folder.clone(),
                uid: a.uid,
            })
            .collect();
        self.hub.publish(live.alias, changes);
        Ok((appended.into_iter().map(|(_, a)| a).collect(), claimed))
    }

    fn store(&self, session: SessionId, req: &StoreFlags) -> Result<StoreResult, StoreError> {
        let live = self.live(session)?;
        let (folder, result) = self.with(session, |m, _| {
            Ok((normalize(&req.folder), m.store_flags(req)?))
        })?;
        let changes = result
            .updated
            .iter()
            .map(|meta| Change::Flags {
                folder: folder.clone(),
                meta: meta.clone(),
            })
            .collect();
        self.hub.publish(live.alias, changes);
        Ok(result)
    }

    fn copy(
        &self,
        session: SessionId,
        from: &str,
        uids: &UidSet,
        to: &str,
        remove: bool,
    ) -> Result<CopyResult, StoreError> {
        let live = self.live(session)?;
        let (src, dst, result, durable) = self.with(session, |m, live| {
            let result = m.copy(from, uids, to, remove, live.quota)?;
            Ok((normalize(from), normalize(to), result, m.committed()))
        })?;
        // COPY's and MOVE's OK promise the copies survive a power cut.
        durable.wait()?;
        let mut changes: Vec<Change> = result
            .dest
            .iter()
            .map(|&uid| Change::Exists {
                folder: dst.clone(),
                uid,
            })
            .collect();
        if remove && !result.source.is_empty() {
            changes.push(Change::Expunged {
                folder: src,
                uids: result.source.clone(),
            });
        }
        self.hub.publish(live.alias, changes);
        Ok(result)
    }

    fn expunge(
        &self,
        session: SessionId,
        folder: &str,
        uids: Option<&UidSet>,
    ) -> Result<Vec<u32>, StoreError> {
        let live = self.live(session)?;
        let (name, gone) = self.with(session, |m, _| {
            Ok((normalize(folder), m.expunge(folder, uids)?))
        })?;
        if !gone.is_empty() {
            self.hub.publish(
                live.alias,
                vec![Change::Expunged {
                    folder: name,
                    uids: gone.clone(),
                }],
            );
        }
        Ok(gone)
    }
}
