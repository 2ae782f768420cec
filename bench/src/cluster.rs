//! Several nodes: the same loads through a secondary and directly on its
//! primary, alternating in one run, and the secondary's own sealed intake
//! while its primary is down against the primary's.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::imap::{ImapClient, steady_load};
use crate::mx::mx_sender;

/// A primary whose ann@example.org holds 1,000 messages and with
/// user0..9@example.org, and a secondary joined to it; returns their data
/// directories.
fn pair(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let config = pop3_mailbox(tmp, "cluster-primary", 1000, 4096);
    {
        let mut control = sealmail::app::open_control(&config).expect("control");
        for i in 0..10 {
            control
                .add_alias(
                    &format!("user{i}@example.org"),
                    Some("pw"),
                    sealmail::store::keys::KdfParams::default(),
                )
                .expect("alias");
        }
    }
    let link = free_port();
    let file = config.data_dir.join("sealmail.toml");
    let text = std::fs::read_to_string(&file).expect("config");
    let text = text.replace(
        "listen = \"127.0.0.1:2744\"",
        &format!("listen = \"127.0.0.1:{link}\""),
    );
    std::fs::write(&file, text).expect("config");
    let secret = sealmail::cluster::primary_secret(&config.data_dir, true).expect("secret");
    let pin = sealmail::cluster::ensure_link_pair(&config.data_dir, "127.0.0.1").expect("pin");
    let secondary = tmp.join("cluster-secondary");
    sealmail::app::init(
        &secondary,
        "bench.example.org",
        true,
        &sealmail::app::BackupChoice::default(),
    )
    .expect("init");
    sealmail::cluster::Join::new(
        &format!("wss://127.0.0.1:{link}"),
        &hex::encode(&secret[..]),
        &hex::encode(pin),
    )
    .expect("join")
    .save(&secondary)
    .expect("join");
    (config.data_dir, secondary)
}

/// Waits until a LOGIN through `imap` works (the link is up).
fn linked(imap: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        use std::io::{BufRead, Write};
        let mut c = ImapClient::connect(imap);
        c.r.get_mut()
            .write_all(b"l LOGIN ann@example.org pw\r\n")
            .expect("write");
        let mut line = String::new();
        while c.r.read_line(&mut line).is_ok_and(|n| n > 0) && !line.starts_with("l ") {
            line.clear();
        }
        if line.starts_with("l OK") {
            return;
        }
        assert!(Instant::now() < deadline, "the secondary never linked");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mx_rate(smtp: std::net::SocketAddr, per: usize, base: usize) -> f64 {
    let t = Instant::now();
    std::thread::scope(|scope| {
        for id in 0..10 {
            scope.spawn(move || mx_sender(smtp, &format!("user{id}@example.org"), base + id, per));
        }
    });
    (10 * per) as f64 / t.elapsed().as_secs_f64()
}

pub(crate) fn cluster_bench(tmp: &Path) {
    let (pdata, sdata) = pair(tmp);
    let (mut primary, p_imap, p_smtp) = spawn_server_with(&pdata, &["--role", "primary"]);
    let (mut secondary, s_imap, s_smtp) = spawn_server_with(&sdata, &["--role", "secondary"]);
    linked(s_imap);

    // IMAP, the steady load of imap_steady_bench, alternating.
    let (mut direct, mut through) = ((0.0f64, Duration::MAX), (0.0f64, Duration::MAX));
    for _ in 0..2 {
        let (rate, fetches) = steady_load(p_imap, 10, 40);
        let p50 = percentile(fetches, 0.5);
        direct = (direct.0.max(rate), direct.1.min(p50));
        let (rate, fetches) = steady_load(s_imap, 10, 40);
        let p50 = percentile(fetches, 0.5);
        through = (through.0.max(rate), through.1.min(p50));
    }
    let ratio = through.0 / direct.0;
    let added = through.1.saturating_sub(direct.1);
    println!(
        "\nCluster, IMAP steady load (10 sessions): on the primary {:.0} commands/s, FETCH p50 {:.2} ms; \
         through a secondary {:.0} commands/s, FETCH p50 {:.2} ms: ratio {ratio:.2} (goal >= 0.7: {}), \
         added p50 under this load {:.2} ms",
        direct.0,
        ms(direct.1),
        through.0,
        ms(through.1),
        ok(ratio >= 0.7),
        ms(added),
    );

    // One session alone: the latency a FETCH of one message gains.
    let one = |imap| {
        let mut c = ImapClient::connect(imap);
        c.cmd("LOGIN ann@example.org pw");
        c.cmd("SELECT INBOX");
        let mut v = Vec::new();
        for i in 0..300 {
            let t = Instant::now();
            c.cmd(&format!("FETCH {} BODY.PEEK[]", 1 + i % 1000));
            v.push(t.elapsed());
        }
        c.cmd("LOGOUT");
        percentile(v, 0.5)
    };
    let (mut d1, mut t1) = (Duration::MAX, Duration::MAX);
    for _ in 0..2 {
        d1 = d1.min(one(p_imap));
        t1 = t1.min(one(s_imap));
    }
    let added1 = t1.saturating_sub(d1);
    println!(
        "Cluster, one session, FETCH of one 4 KiB message: p50 {:.3} ms on the primary, {:.3} ms through a secondary: \
         added {:.3} ms (goal <= 1 ms: {})",
        ms(d1),
        ms(t1),
        ms(added1),
        ok(added1 <= Duration::from_millis(1))
    );

    // MX, owners away (sealed on the primary), alternating.
    let per = 200;
    let (mut d, mut t) = (0.0f64, 0.0f64);
    for round in 0..2 {
        d = d.max(mx_rate(p_smtp, per, 1000 * (2 * round)));
        t = t.max(mx_rate(s_smtp, per, 1000 * (2 * round + 1)));
    }
    println!(
        "Cluster, MX 10 sessions x {per} x 4 KiB to owners away: on the primary {d:.0} msg/s; \
         through a secondary {t:.0} msg/s: ratio {:.2} (goal >= 0.8: {})",
        t / d,
        ok(t / d >= 0.8)
    );

    // 1,000 IDLE sessions on the secondary.
    let before = rss_of(secondary.id());
    let mut held = Vec::new();
    for _ in 0..1000 {
        held.push(ImapClient::idling(s_imap));
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_of(secondary.id());
    drop(held);
    println!(
        "Cluster, 1,000 IMAP sessions in IDLE on a secondary: RSS {} -> {} MiB (goal <= +64 MiB: {})",
        before / 1024,
        after / 1024,
        ok(after <= before + 64 * 1024)
    );

    // The primary down: the secondary seals into its own spool.
    let _ = primary.kill();
    let _ = primary.wait();
    std::thread::sleep(Duration::from_secs(3));
    let away = mx_rate(s_smtp, per, 9000);
    println!(
        "Cluster, MX through a secondary whose primary is down (sealed into its spool): {away:.0} msg/s; \
         against the primary's own sealed intake {d:.0}: ratio {:.2} (goal >= 0.9: {})",
        away / d,
        ok(away / d >= 0.9)
    );
    let _ = secondary.kill();
    let _ = secondary.wait();
}
