//! Change events per mailbox, fanned out to every subscribed session (IDLE).
//!
//! Imports `store::types`. Invariants: publishing never blocks a writer; a
//! subscriber that falls more than `CAPACITY` events behind is dropped (its
//! channel closes) and must re-read the folder state, which IMAP does on
//! reconnect or re-select.

use std::collections::HashMap;
use std::sync::Mutex;

use async_channel::{Receiver, Sender, TrySendError};

use super::types::Change;

const CAPACITY: usize = 4096;

#[derive(Default)]
pub struct Hub {
    subscribers: Mutex<HashMap<i64, Vec<Sender<Change>>>>,
}

impl Hub {
    pub fn subscribe(&self, alias: i64) -> Receiver<Change> {
        // Unbounded, with the bound enforced in `publish`: a bounded channel
        // allocates all its slots up front, which 10,000 idle sessions pay
        // for in full.
        let (tx, rx) = async_channel::unbounded();
        let mut map = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(alias).or_default().push(tx);
        rx
    }

    pub fn publish(&self, alias: i64, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let mut map = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        let Some(subs) = map.get_mut(&alias) else {
            return;
        };
        subs.retain(|s| {
            changes.iter().all(|c| {
                if s.len() >= CAPACITY {
                    s.close();
                    return false;
                }
                match s.try_send(c.clone()) {
                    Ok(()) => true,
                    Err(TrySendError::Full(_) | TrySendError::Closed(_)) => false,
                }
            })
        });
        if subs.is_empty() {
            map.remove(&alias);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_reach_subscribers_of_that_mailbox_only() {
        let hub = Hub::default();
        let a = hub.subscribe(1);
        let b = hub.subscribe(2);
        hub.publish(1, vec![Change::FoldersChanged]);
        assert_eq!(a.try_recv().unwrap(), Change::FoldersChanged);
        assert!(b.try_recv().is_err());
        drop(a);
        hub.publish(1, vec![Change::FoldersChanged]);
        assert!(hub.subscribers.lock().unwrap().get(&1).is_none());
    }
}
