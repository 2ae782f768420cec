//! How mail arrives: recipient lookups, deliveries (into INBOX when the
//! owner's key is cached, else sealed into the spool), and what cluster
//! secondaries need of this backend: the directory they keep for when
//! the primary is away, and the sealed mail they took meanwhile.
//!
//! Imports the rest of `store` through its parent. Invariants: those of
//! the parent's gate: per alias, "key present → INBOX, else seal" is
//! decided under the gate, and a sealed file is placed under it and
//! acknowledged only after the spool directory is synced.

use std::path::PathBuf;

use super::*;
use crate::store::types::{Placement, Route, SieveOp};

impl Inner {
    pub(super) fn lookup(&self, address: &str) -> Result<Recipient, StoreError> {
        let control = lock(&self.control);
        let internal = |e: crate::store::control::ControlError| StoreError::Internal(e.to_string());
        if let Some(a) = control.alias(address).map_err(internal)? {
            return Ok(Recipient::Local(Route {
                address: a.address,
                mailbox: a.mailbox,
                forward: a.forward,
                webhooks: a.webhooks,
            }));
        }
        let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
        let local = control.has_domain(domain).map_err(internal)?;
        Ok(if local {
            Recipient::UnknownUser
        } else {
            Recipient::ForeignDomain
        })
    }

    /// Delivers into INBOX, or where `to` says (the folder marked `\Junk`,
    /// a folder a Sieve script chose, with flags); sealed mail carries that
    /// choice inside the seal.
    pub(super) fn deliver(
        &self,
        address: &str,
        message: Vec<u8>,
        to: Placement,
    ) -> Result<Delivery, StoreError> {
        let alias = self.alias(address)?.ok_or(StoreError::NoSuchAddress)?;
        if !alias.mailbox {
            return Err(StoreError::NoMailbox);
        }
        // The limit applies to what the sender sent; encrypted, it may
        // grow past it (`Limits::fits`).
        if message.len() as u64 > self.cfg.limits.max_message_bytes {
            return Err(StoreError::TooBig(self.cfg.limits.max_message_bytes));
        }
        let message = self.encrypted_on_arrival(&alias, message)?;
        let verifier = lock(&self.control)
            .credentials(alias.id)
            .map_err(|e| StoreError::Internal(e.to_string()))?
            .ok_or(StoreError::NoMailbox)?
            .verifier;
        // Refuse now, before any lock, what the mailbox (or the import
        // later) would refuse, while the sender can still be told.
        let parsed = parse_within(&self.cfg.limits, &message)?;
        // Mail that will likely be sealed is sealed and synced now, outside
        // the gate, where deliveries to one owner run side by side; under
        // the gate it is only renamed into place (or dropped, if the key
        // came back meanwhile).
        let likely_sealed = self.keys.peek(alias.id, &verifier).is_none()
            || lock(&self.imports).contains_key(&alias.id);
        let mut prepared = if likely_sealed {
            Some(self.prepare_seal(&alias, &message, &to)?)
        } else {
            None
        };
        let request = to.request(message, None);
        let queued = Queued::new(request, parsed);
        self.intake.enqueue(alias.id, &queued);
        let gate = self.gate(alias.id);
        let g = lock(&gate);
        // A delivery that held the gate before this one may have committed
        // this message with its own.
        let done = queued.outcome();
        let importing = lock(&self.imports).contains_key(&alias.id);
        let dek = (done.is_none() && !importing)
            .then(|| self.keys.peek(alias.id, &verifier))
            .flatten();
        let outcome = match (done, dek) {
            (Some(outcome), _) => outcome,
            (None, Some(dek)) => {
                let mb = self.open_mailbox(&alias, &dek);
                match mb {
                    Ok(mb) => {
                        let (outcome, index) =
                            self.intake
                                .commit_until(alias.id, &mb, alias.quota_bytes, &queued);
                        if index {
                            self.index_later(alias.id, &mb);
                        }
                        outcome
                    }
                    Err(e) => {
                        self.intake.withdraw(alias.id, &queued);
                        Err(e)
                    }
                }
            }
            (None, None) => {
                let (request, _) = self
                    .intake
                    .withdraw(alias.id, &queued)
                    .ok_or_else(|| StoreError::Internal("a queued delivery was lost".into()))?;
                let sealed = match prepared.take() {
                    Some(p) => Ok(p),
                    None => self.prepare_seal(&alias, &request.message, &to),
                };
                let placed = sealed.and_then(|p| self.place_sealed(&alias, p, &request.message));
                drop(g);
                // The 250 waits for the directory, without the gate:
                // concurrent deliveries' syncs overlap.
                let dir = placed?;
                crate::util::fsync_dir(&dir).map_err(|e| StoreError::Unavailable(e.to_string()))?;
                return Ok(Delivery::Sealed);
            }
        };
        // The 250 waits for the disk, without the mailbox or its gate:
        // concurrent deliveries share one sync.
        drop(g);
        let (folder, a, durable) = outcome?;
        durable.wait()?;
        self.hub
            .publish(alias.id, vec![Change::Exists { folder, uid: a.uid }]);
        Ok(Delivery::Inbox { uid: a.uid })
    }

    /// The message as the alias' mailbox keeps it: wrapped into PGP/MIME
    /// when its owner gave a key and asked for encryption on arrival.
    /// A key that cannot encrypt is a temporary failure, never a reason
    /// to store the message in the clear.
    fn encrypted_on_arrival(&self, alias: &Alias, message: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let key = lock(&self.control)
            .pgp_key_of(alias.id)
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        match key {
            Some(k) if k.encrypt => crate::openpgp::encrypt_for(&k.key, message, k.protect_subject)
                .map_err(|e| {
                    tracing::error!(error = %e, "the owner's OpenPGP key cannot encrypt");
                    StoreError::Unavailable(format!("the owner's OpenPGP key cannot encrypt: {e}"))
                }),
            _ => Ok(message),
        }
    }

    /// Places mail a cluster secondary sealed while this primary was away
    /// in the alias' spool, as the next sealed message: its owner's next
    /// login imports it. The secondary acknowledged it already, so the
    /// quota does not refuse it.
    pub(super) fn deliver_sealed(
        &self,
        address: &str,
        sealed: &[u8],
        shipment: &[u8; 16],
    ) -> Result<Delivery, StoreError> {
        let internal = |e: crate::store::control::ControlError| StoreError::Internal(e.to_string());
        let alias = self.alias(address)?.ok_or(StoreError::NoSuchAddress)?;
        if !alias.mailbox {
            return Err(StoreError::NoMailbox);
        }
        let prepared = spool::prepare_sealed(&self.cfg.data_dir, &alias.mailbox_id, sealed)
            .map_err(spool_error)?;
        let dir = prepared.dir().to_path_buf();
        {
            let gate = self.gate(alias.id);
            let _g = lock(&gate);
            // Placed by an earlier run whose answer was lost: `prepared`
            // drops unused.
            if lock(&self.control).shipped(shipment).map_err(internal)? {
                return Ok(Delivery::Sealed);
            }
            prepared.place().map_err(spool_error)?;
        }
        crate::util::fsync_dir(&dir).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        // Only once the file is durable: a crash before this line places
        // it again on the resend (twice, never lost).
        lock(&self.control)
            .record_shipment(shipment)
            .map_err(internal)?;
        Ok(Delivery::Sealed)
    }

    /// The alias' Sieve scripts, when one is active (read by the MX
    /// without the owner's key: they live in the control database).
    pub(super) fn sieve_scripts(&self, address: &str) -> Result<Response, StoreError> {
        lock(&self.control)
            .sieve_scripts(address)
            .map(Response::SieveScripts)
            .map_err(|e| StoreError::Internal(e.to_string()))
    }

    /// A ManageSieve operation on the alias' scripts.
    pub(super) fn sieve(&self, address: &str, op: SieveOp) -> Result<Response, StoreError> {
        match lock(&self.control).sieve(address, op) {
            Ok(reply) => Ok(Response::Sieve(reply)),
            Err(crate::store::control::ControlError::Script(kind, why)) => {
                Err(StoreError::Script(kind, why))
            }
            Err(e) => Err(StoreError::Internal(e.to_string())),
        }
    }

    /// Checks and records a Sieve tracking id (`Control::sieve_seen`).
    pub(super) fn sieve_seen(
        &self,
        address: &str,
        id: &str,
        expiry: u64,
    ) -> Result<Response, StoreError> {
        lock(&self.control)
            .sieve_seen(address, id, expiry)
            .map(Response::Seen)
            .map_err(|e| StoreError::Internal(e.to_string()))
    }

    /// Every alias with its route and public key, and the local domains.
    pub(super) fn directory(&self) -> Result<Directory, StoreError> {
        let control = lock(&self.control);
        let internal = |e: crate::store::control::ControlError| StoreError::Internal(e.to_string());
        let domains = control
            .list_domains()
            .map_err(internal)?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let aliases = control
            .list_aliases(None)
            .map_err(internal)?
            .into_iter()
            .map(|a| {
                let pgp = control
                    .pgp_key_of(a.id)
                    .map_err(internal)?
                    .filter(|k| k.encrypt);
                Ok(DirectoryEntry {
                    route: Route {
                        address: a.address,
                        mailbox: a.mailbox,
                        forward: a.forward,
                        webhooks: a.webhooks,
                    },
                    public_key: a.public_key,
                    pgp,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Directory { domains, aliases })
    }

    /// Seals a message into a synced temporary file of the spool of an
    /// owner whose key is absent (`spool::prepare`); no lock needed.
    fn prepare_seal(
        &self,
        alias: &Alias,
        message: &[u8],
        to: &Placement,
    ) -> Result<spool::Sealed, StoreError> {
        let public = alias.public_key.as_deref().ok_or(StoreError::NoMailbox)?;
        spool::prepare(&self.cfg.data_dir, &alias.mailbox_id, public, message, to)
            .map_err(spool_error)
    }

    /// Places a sealed message in the spool, if the owner's quota has room
    /// for it; returns the directory whose sync makes it durable. The
    /// caller holds the alias' gate.
    fn place_sealed(
        &self,
        alias: &Alias,
        sealed: spool::Sealed,
        message: &[u8],
    ) -> Result<PathBuf, StoreError> {
        if let Some(limit) = alias.quota_bytes {
            // The mailbox is locked: its size when last open, plus what
            // waits in the spool.
            let stored = lock(&self.control)
                .usage(alias.id)
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            let waiting = spool::pending_bytes(&self.cfg.data_dir, &alias.mailbox_id)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            if stored
                .saturating_add(waiting)
                .saturating_add(message.len() as u64)
                > limit
            {
                return Err(StoreError::OverQuota);
            }
        }
        let dir = sealed.dir().to_path_buf();
        sealed.place().map_err(spool_error)?;
        Ok(dir)
    }
}
