//! Backups of a large mailbox against a plain `cp` of the same file.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealmail::store::keys::KdfParams;
use sealmail::store::{AppendRequest, Flags};

use crate::common::*;

/// A backup (checkpoint, file snapshot, keyed check, SHA-256, durable move
/// into the directory target, manifest) of a mailbox of about `mib` MiB,
/// against `cp` of the same file, and the memory it takes.
pub(crate) fn backup_bench(tmp: &Path, mib: u64) {
    use sealmail::backup::{Outcome, Target, backup_now};
    let dir = tmp.join("backup");
    std::fs::create_dir_all(&dir).expect("dir");
    let (creds, keys) = sealmail::store::keys::create(
        "pw",
        KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
    )
    .expect("keys");
    let path = dir.join("mailbox.sqlite");
    let mut mb = open(&path, Some(&keys.dek));
    // Random attachments: neither zstd nor the attachment store shrink them.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut i = 0usize;
    let fill_start = Instant::now();
    while std::fs::metadata(&path).map_or(0, |m| m.len())
        + std::fs::metadata(dir.join("mailbox.sqlite-wal")).map_or(0, |m| m.len())
        < mib << 20
    {
        let reqs: Vec<AppendRequest> = (0..16)
            .map(|_| {
                let mut blob = vec![0u8; 192 * 1024];
                for b in blob.iter_mut() {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    *b = rng as u8;
                }
                i += 1;
                let body = base64_lines(&blob);
                AppendRequest {
                    folder: "INBOX".into(),
                    message: format!(
                        "From: a@example.net\r\nSubject: big {i}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}--b--\r\n"
                    )
                    .into_bytes(),
                    flags: Flags::default(),
                    internal_date: None,
                    if_missing: Default::default(),
                }
            })
            .collect();
        mb.append(&reqs, None).expect("append");
    }
    mb.connection()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoint");
    let size = std::fs::metadata(&path).expect("size").len();
    println!(
        "\nbackup: filled a {} MiB mailbox ({i} messages with random attachments) in {:.1} s",
        size >> 20,
        fill_start.elapsed().as_secs_f64()
    );
    // Each figure is taken twice: with the mailbox file out of the page
    // cache, as a daily backup mostly finds it, and with it cached.
    let cp_time = || {
        settle();
        let start = Instant::now();
        std::fs::copy(&path, dir.join("cp.sqlite")).expect("cp");
        let took = start.elapsed();
        std::fs::remove_file(dir.join("cp.sqlite")).expect("rm");
        took
    };
    let baseline = rss_kib();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(baseline));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let mb = std::sync::Mutex::new(mb);
    let backup_time = |name: &str| {
        // A target of its own, so the state check finds no earlier backup.
        let target = Target::Dir(dir.join(name));
        settle();
        let start = Instant::now();
        let outcome =
            backup_now(&target, &dir, "bench", &mb, &keys.dek, &creds, false).expect("backup");
        let took = start.elapsed();
        assert!(matches!(outcome, Outcome::Stored(_)));
        took
    };
    evict_from_cache(&path);
    let cp_cold = cp_time();
    evict_from_cache(&path);
    let backup_cold = backup_time("backups-cold");
    warm_cache(&path);
    let cp_warm = cp_time();
    let backup_warm = backup_time("backups-warm");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sampler.join();
    let grown = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(baseline);
    for (cache, took, cp) in [
        ("not cached", backup_cold, cp_cold),
        ("cached", backup_warm, cp_warm),
    ] {
        let ratio = took.as_secs_f64() / cp.as_secs_f64().max(1e-9);
        println!(
            "backup of {} MiB, file {cache}: {:.2} s; cp of the same file {:.2} s (ratio {ratio:.2}, goal <= 2: {})",
            size >> 20,
            took.as_secs_f64(),
            cp.as_secs_f64(),
            ok(ratio <= 2.0)
        );
    }
    println!(
        "backup peak memory: +{:.1} MiB over the process before it (goal <= 64 MiB, flat in size: {})",
        grown as f64 / 1024.0,
        ok(grown <= 64 * 1024)
    );
}
