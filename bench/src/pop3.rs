//! POP3 sessions against a real server on loopback, beside reading the
//! same messages straight from the store.

use std::path::Path;
use std::time::Instant;

use crate::common::*;

pub(crate) struct Pop3Client {
    r: std::io::BufReader<std::net::TcpStream>,
    w: std::net::TcpStream,
}

impl Pop3Client {
    pub(crate) fn connect(addr: std::net::SocketAddr) -> Pop3Client {
        let s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        let mut c = Pop3Client {
            r: std::io::BufReader::new(s.try_clone().expect("clone")),
            w: s,
        };
        c.line();
        c
    }

    pub(crate) fn line(&mut self) -> String {
        use std::io::BufRead;
        let mut l = String::new();
        self.r.read_line(&mut l).expect("read");
        l
    }

    pub(crate) fn cmd(&mut self, c: &str) -> String {
        use std::io::Write;
        self.w
            .write_all(format!("{c}\r\n").as_bytes())
            .expect("write");
        self.line()
    }

    /// Reads a multi-line body; returns its byte count.
    pub(crate) fn body(&mut self) -> usize {
        use std::io::BufRead;
        let mut total = 0;
        let mut l = Vec::new();
        loop {
            l.clear();
            self.r.read_until(b'\n', &mut l).expect("read");
            if l == b".\r\n" || l.is_empty() {
                return total;
            }
            total += l.len();
        }
    }
}

pub(crate) fn pop3_bench(tmp: &Path, big: usize) {
    let n = 10_000;
    let config = pop3_mailbox(tmp, "pop3-retr", n, 4096);
    // Baseline: the same bytes read straight from the store, no network.
    let (_b, store) = sealmail::app::open_store(&config).expect("store");
    let s = smol::block_on(store.unlock("ann@example.org", "pw")).expect("unlock");
    let what = sealmail::store::FetchWhat {
        sections: vec![sealmail::store::Section {
            path: vec![],
            kind: sealmail::store::SectionKind::Whole,
        }],
        ..Default::default()
    };
    let t = Instant::now();
    let mut direct = 0usize;
    for uid in 1..=n as u32 {
        let got = smol::block_on(s.fetch(
            "INBOX",
            sealmail::store::UidSet::range(uid, uid),
            what.clone(),
        ))
        .expect("fetch");
        direct += got[0].sections[0].1.len();
    }
    let direct_rate = direct as f64 / t.elapsed().as_secs_f64() / 1e6;
    drop(s);
    let pop3_rate = with_server(config, |_, addr, _| {
        let mut c = Pop3Client::connect(addr);
        c.cmd("USER ann@example.org");
        assert!(c.cmd("PASS pw").starts_with("+OK"));
        let t = Instant::now();
        let mut bytes = 0;
        for i in 1..=n {
            assert!(c.cmd(&format!("RETR {i}")).starts_with("+OK"));
            bytes += c.body();
        }
        let rate = bytes as f64 / t.elapsed().as_secs_f64() / 1e6;
        c.cmd("QUIT");
        rate
    });
    println!(
        "\nPOP3 RETR of {n} messages of ~4 KiB, one at a time: {pop3_rate:.1} MB/s; the same reads straight from the store: {direct_rate:.1} MB/s (ratio {:.2})",
        pop3_rate / direct_rate
    );
    let config = pop3_mailbox(tmp, "pop3-stat", big, 512);
    with_server(config, |_, addr, _| {
        for round in ["cold key", "warm key"] {
            let mut c = Pop3Client::connect(addr);
            c.cmd("USER ann@example.org");
            let t = Instant::now();
            assert!(c.cmd("PASS pw").starts_with("+OK"));
            let login = t.elapsed();
            let t = Instant::now();
            let stat = c.cmd("STAT");
            let first = t.elapsed();
            assert!(stat.starts_with(&format!("+OK {big} ")), "{stat}");
            println!(
                "POP3 on {big} messages ({round}): PASS (unlock + snapshot) {:.1} ms, then STAT first byte {:.2} ms; goal <= 100 ms: {}",
                ms(login),
                ms(first),
                ok(ms(login + first) <= 100.0)
            );
            c.cmd("QUIT");
        }
    });
}
