//! The store alone: appends, opens, unlocks and SEARCH, encrypted beside
//! the same code with encryption off.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealmail::store::keys::KdfParams;
use sealmail::store::local::{LocalBackend, LocalConfig};
use sealmail::store::mailbox::Limits;
use sealmail::store::{Criteria, Flags, Store};

use crate::common::*;

pub(crate) fn append_bench(tmp: &Path, size: usize, n: usize) {
    let k = key();
    let mut rates = Vec::new();
    for (label, key) in [("encrypted", Some(&k)), ("plain", None)] {
        let path = tmp.join(format!("append-{size}-{label}.sqlite"));
        let mut mb = open(&path, key);
        let t = fill(&mut mb, n, size, 100);
        drop(mb);
        let rate = n as f64 / t.as_secs_f64();
        let disk = std::fs::metadata(&path).map_or(0, |m| m.len());
        println!(
            "append {:>3} KiB x {n:<5} {label:<9} {rate:>9.0} msgs/s  ({:.1} MB/s, {:.1} KiB on disk per message)",
            size / 1024,
            rate * size as f64 / 1e6,
            disk as f64 / n as f64 / 1024.0
        );
        rates.push(rate);
    }
    let ratio = rates[0] / rates[1];
    let goal = if size <= 4096 {
        format!(
            ", goal >= 0.6 and >= 2,000 msgs/s: {}",
            ok(ratio >= 0.6 && rates[0] >= 2000.0)
        )
    } else {
        format!(", goal >= 0.6: {}", ok(ratio >= 0.6))
    };
    println!(
        "append {:>3} KiB encrypted/plain ratio {ratio:.2}{goal}\n",
        size / 1024
    );
}

pub(crate) fn open_bench(tmp: &Path) {
    let k = key();
    let path = tmp.join("open.sqlite");
    fill(&mut open(&path, Some(&k)), 1000, 2048, 500);
    let mut times = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let mb = open(&path, Some(&k));
        times.push(t.elapsed());
        drop(mb);
    }
    let p50 = percentile(times.clone(), 0.5);
    println!(
        "open existing mailbox (keyed, PRAGMAs asserted)  p50 {:.3} ms  p99 {:.3} ms, goal p50 <= 1 ms: {}\n",
        ms(p50),
        ms(percentile(times, 0.99)),
        ok(ms(p50) <= 1.0)
    );
}

pub(crate) fn unlock_bench(tmp: &Path) {
    let data = tmp.join("unlock");
    // Production settings (argon2 cost) with its backups beside it.
    let backups = sealmail::app::BackupChoice {
        dir: Some(data.join("backups")),
        allow_same_disk: true,
    };
    sealmail::app::init(&data, "bench.example.org", false, &backups).expect("init");
    let config = sealmail::config::Config::load(&data).expect("config");
    let mut control = sealmail::app::open_control(&config).expect("control");
    control.add_domain("example.org").expect("domain");
    control
        .add_alias(
            "ann@example.org",
            Some("bench password"),
            KdfParams::default(),
        )
        .expect("alias");
    drop(control);
    let backend = |ttl: Duration| {
        let b = Arc::new(
            LocalBackend::open(LocalConfig {
                data_dir: data.clone(),
                server_key: sealmail::app::server_key(&data).expect("key"),
                kdf: KdfParams::default(),
                key_ttl: ttl,
                limits: Limits::default(),
                open_mailboxes: 1000,
            })
            .expect("backend"),
        );
        Store::new(b)
    };
    let cold_store = backend(Duration::ZERO);
    let mut cold = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let s =
            smol::block_on(cold_store.unlock("ann@example.org", "bench password")).expect("unlock");
        cold.push(t.elapsed());
        drop(s); // ttl 0: the key is dropped, the next unlock is cold again
    }
    let warm_store = backend(Duration::from_secs(600));
    let keep =
        smol::block_on(warm_store.unlock("ann@example.org", "bench password")).expect("unlock");
    let mut warm = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let s =
            smol::block_on(warm_store.unlock("ann@example.org", "bench password")).expect("unlock");
        warm.push(t.elapsed());
        drop(s);
    }
    drop(keep);
    let (c, w) = (percentile(cold, 0.5), percentile(warm, 0.5));
    println!(
        "unlock cold (argon2id 19 MiB, t=2, open, spool check)  p50 {:.2} ms, goal <= 60 ms: {}",
        ms(c),
        ok(ms(c) <= 60.0)
    );
    println!(
        "unlock warm (key cached)                               p50 {:.3} ms, goal <= 2 ms: {}\n",
        ms(w),
        ok(ms(w) <= 2.0)
    );
}

pub(crate) fn search_bench(tmp: &Path, n: usize) {
    let k = key();
    let mut p50s = Vec::new();
    for (label, key) in [("encrypted", Some(&k)), ("plain", None)] {
        let path = tmp.join(format!("search-{label}.sqlite"));
        let mut mb = open(&path, key);
        let t = fill(&mut mb, n, 1024, 1000);
        println!(
            "search {label}: filled {n} messages of ~1 KiB in {:.1} s",
            t.as_secs_f64()
        );
        // The server indexes new bodies in the background as they
        // arrive; the searches below measure an indexed mailbox.
        let t = Instant::now();
        let mut indexed = 0;
        loop {
            let done = mb.index_pending(10_000).expect("index");
            if done == 0 {
                break;
            }
            indexed += done;
        }
        println!(
            "  full-text index of {indexed} bodies: {:.1} s",
            t.elapsed().as_secs_f64()
        );
        drop(mb);
        let mut mb = open(&path, key);
        let t = Instant::now();
        mb.search("INBOX", &Criteria::Text("zebracorn".into()))
            .expect("search");
        println!(
            "  SEARCH TEXT rare word, first query after open  {:.2} ms",
            ms(t.elapsed())
        );
        let mut rare = Vec::new();
        let mut common = Vec::new();
        let mut select = Vec::new();
        let mut found = (0, 0);
        for i in 0..21 {
            let t = Instant::now();
            let r = mb
                .search("INBOX", &Criteria::Text("zebracorn".into()))
                .expect("search");
            rare.push(t.elapsed());
            found.0 = r.uids.len();
            let t = Instant::now();
            let r = mb
                .search(
                    "INBOX",
                    &Criteria::And(vec![
                        Criteria::Text(WORDS[i % WORDS.len()].into()),
                        Criteria::Flag(Flags::SEEN, false),
                    ]),
                )
                .expect("search");
            common.push(t.elapsed());
            found.1 = r.uids.len();
            let t = Instant::now();
            let s = mb.select("INBOX").expect("select");
            select.push(t.elapsed());
            assert_eq!(s.uids.len(), n);
        }
        let (r, c, s) = (
            percentile(rare, 0.5),
            percentile(common, 0.5),
            percentile(select, 0.5),
        );
        println!(
            "  SEARCH TEXT rare word ({} hits)       p50 {:.2} ms",
            found.0,
            ms(r)
        );
        println!(
            "  SEARCH TEXT common word UNSEEN ({} hits) p50 {:.2} ms",
            found.1,
            ms(c)
        );
        println!(
            "  SELECT (counts, UIDs, keywords)        p50 {:.2} ms",
            ms(s)
        );
        p50s.push((r, c, s));
        drop(mb);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    let (e, p) = (p50s[0], p50s[1]);
    println!(
        "search over {n}: encrypted/plain time ratio rare {:.2}, common {:.2}, select {:.2}",
        ms(e.0) / ms(p.0),
        ms(e.1) / ms(p.1),
        ms(e.2) / ms(p.2)
    );
    println!(
        "  goal SEARCH TEXT p50 <= 20 ms: {}; goal SELECT p50 <= 50 ms: {}",
        ok(ms(e.0) <= 20.0),
        ok(ms(e.2) <= 50.0)
    );
}
