//! Counts kept by UTC day and by domain until they are reported: the TLS
//! sessions of mail that leaves (`tls_rpt`) and the DMARC results of mail
//! that arrives (`dmarc_rpt`). In memory, and in a JSON file of the data
//! directory that `save` writes whole and `load` reads back.
//!
//! Imports `util` (durable writes). Invariants: at most `max_keys`
//! domains a day; a file that does not parse is set aside as `.bad` and
//! counting starts afresh; a day leaves only through `take_before`; the
//! file is written only when the counts changed since it last was.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

type Days<T> = BTreeMap<String, BTreeMap<String, T>>;

/// Day (`YYYY-MM-DD`) → domain → what was counted.
pub struct Daily<T> {
    days: Mutex<Days<T>>,
    file: Option<PathBuf>,
    max_keys: usize,
    /// Changed since the file was last written.
    dirty: AtomicBool,
}

impl<T: Default + Clone + Serialize + DeserializeOwned> Daily<T> {
    /// Counts kept in memory only.
    pub fn in_memory(max_keys: usize) -> Daily<T> {
        Daily {
            days: Mutex::new(BTreeMap::new()),
            file: None,
            max_keys,
            dirty: AtomicBool::new(false),
        }
    }

    /// The counts saved in `file` (none when it does not exist).
    pub fn load(file: PathBuf, max_keys: usize) -> Daily<T> {
        let days = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %file.display(), error = %e, "saved report counts unreadable; set aside, counting afresh");
                let _ = std::fs::rename(&file, file.with_extension("json.bad"));
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        Daily {
            days: Mutex::new(days),
            file: Some(file),
            max_keys,
            dirty: AtomicBool::new(false),
        }
    }

    fn days(&self) -> std::sync::MutexGuard<'_, Days<T>> {
        self.days.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes `key`'s counts of `day` (made empty first); nothing when
    /// the day already counts `max_keys` other keys.
    pub fn update(&self, day: &str, key: &str, change: impl FnOnce(&mut T)) {
        let mut days = self.days();
        let keys = days.entry(day.to_string()).or_default();
        if keys.len() >= self.max_keys && !keys.contains_key(key) {
            return;
        }
        change(keys.entry(key.to_string()).or_default());
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Whether `save` has anything to write.
    pub fn is_dirty(&self) -> bool {
        self.file.is_some() && self.dirty.load(Ordering::Relaxed)
    }

    /// Writes the counts to their file (when they have one).
    pub fn save(&self) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let json = serde_json::to_vec(&*self.days()).map_err(io::Error::other)?;
        crate::util::write_durable(file, &json, 0o600).inspect_err(|_| {
            self.dirty.store(true, Ordering::Relaxed);
        })
    }

    /// Takes the counts of every day before `today` out (to be reported).
    pub fn take_before(&self, today: &str) -> Vec<(String, String, T)> {
        let mut days = self.days();
        let later = days.split_off(today);
        let done = std::mem::replace(&mut *days, later);
        if !done.is_empty() {
            self.dirty.store(true, Ordering::Relaxed);
        }
        done.into_iter()
            .flat_map(|(day, keys)| keys.into_iter().map(move |(k, t)| (day.clone(), k, t)))
            .collect()
    }

    /// The counts of `day`, left in place.
    pub fn of_day(&self, day: &str) -> BTreeMap<String, T> {
        self.days().get(day).cloned().unwrap_or_default()
    }
}

/// Today, as the counts name days.
pub fn today() -> String {
    crate::util::date_only(crate::util::now_unix(), 0)
}
