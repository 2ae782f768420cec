//! The web listener's figures: a `/metrics` scrape against a 404 of the
//! same listener (the HTTP cost alone), with 10,000 aliases configured,
//! and the resident memory of a server with its HTTP, HTTPS and metrics
//! listeners against the same server with them off, both as processes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{free_port, ms, percentile, rss_of, spawn_server_with};

/// Aliases in the control database while scraping.
const ALIASES: usize = 10_000;
/// Requests per figure.
const REQUESTS: usize = 2_000;

pub(crate) fn web_bench(tmp: &Path) {
    let data = tmp.join("web");
    let config = crate::common::dev_data(&data);
    {
        let mut control = sealmail::app::open_control(&config).expect("control");
        control.add_domain("example.org").expect("domain");
        for i in 0..ALIASES {
            control
                .add_alias(&format!("user{i}@example.org"), None, config.kdf)
                .expect("alias");
        }
    }
    println!(
        "\nweb: /metrics with {ALIASES} aliases, {REQUESTS} requests on keep-alive connections"
    );
    let metrics = free_port();
    set_web(&data, Some(metrics));
    let (mut server, _, _) = spawn_server_with(&data, &[]);
    let addr: SocketAddr = format!("127.0.0.1:{metrics}").parse().expect("addr");
    // The gauges' first pass, then a warm-up.
    std::thread::sleep(Duration::from_millis(500));
    let _ = times(addr, "/nothing", 200);
    let (mut scrape, mut base) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        base.extend(times(addr, "/nothing", REQUESTS / 2));
        scrape.extend(times(addr, "/metrics", REQUESTS / 2));
    }
    let _ = server.kill();
    let _ = server.wait();
    let (p50, p99) = (percentile(scrape.clone(), 0.5), percentile(scrape, 0.99));
    let (b50, b99) = (percentile(base.clone(), 0.5), percentile(base, 0.99));
    println!(
        "  /metrics: p50 {:.2} ms, p99 {:.2} ms (goal p50 <= 5 ms); a 404 on the same listener: p50 {:.2} ms, p99 {:.2} ms; ratio {:.2}",
        ms(p50),
        ms(p99),
        ms(b50),
        ms(b99),
        ms(p50) / ms(b50).max(1e-6)
    );
    // Idle: the same server started with its web listeners and without,
    // alternating, three times each; nothing asked of either.
    let (mut with_web, mut without) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        for on in [true, false] {
            set_web(&data, on.then(free_port));
            let (mut server, _, _) = spawn_server_with(&data, &[]);
            std::thread::sleep(Duration::from_millis(500));
            let rss = settled_rss(server.id());
            let _ = server.kill();
            let _ = server.wait();
            if on {
                with_web.push(rss);
            } else {
                without.push(rss);
            }
        }
    }
    with_web.sort_unstable();
    without.sort_unstable();
    let (w, wo) = (with_web[1], without[1]);
    println!(
        "  idle RSS (median of 3 starts each): {w} KiB with the web listeners, {wo} KiB without: {} KiB (goal <= 1024 KiB)",
        w as i64 - wo as i64
    );
}

/// Turns the HTTP, HTTPS and metrics listeners on (metrics on `port`,
/// the others on any port) or off.
fn set_web(data: &Path, metrics: Option<u16>) {
    let file = data.join("sealmail.toml");
    let text = std::fs::read_to_string(&file).expect("config");
    let text: String = text
        .lines()
        .map(|l| match (l.split(" = ").next().unwrap_or(""), metrics) {
            ("http" | "https", Some(_)) => {
                format!("{} = \"127.0.0.1:0\"", l.split(" = ").next().unwrap_or(""))
            }
            ("metrics", Some(p)) => format!("metrics = \"127.0.0.1:{p}\""),
            ("http" | "https" | "metrics", None) => {
                format!("{} = \"off\"", l.split(" = ").next().unwrap_or(""))
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&file, text).expect("config");
}

/// The smallest of five readings of a process' resident set, a quarter
/// second apart.
fn settled_rss(pid: u32) -> u64 {
    (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(250));
            rss_of(pid)
        })
        .min()
        .unwrap_or(0)
}

/// The time of each of `n` GETs of `path`, on keep-alive connections
/// (a new one when the server closes one).
fn times(addr: SocketAddr, path: &str, n: usize) -> Vec<Duration> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut out = Vec::with_capacity(n);
    let mut conn: Option<(BufReader<TcpStream>, TcpStream)> = None;
    while out.len() < n {
        let (r, w) = conn.get_or_insert_with(|| {
            let s = TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            (BufReader::new(s.try_clone().expect("clone")), s)
        });
        let start = Instant::now();
        w.write_all(request.as_bytes()).expect("write");
        let (length, close) = head(r);
        let mut body = vec![0; length];
        r.read_exact(&mut body).expect("body");
        out.push(start.elapsed());
        if close {
            conn = None;
        }
    }
    out
}

/// Reads a response head: its Content-Length and whether the server
/// closes the connection after it.
fn head(r: &mut BufReader<TcpStream>) -> (usize, bool) {
    let (mut length, mut close) = (0, false);
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("head");
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            return (length, close);
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            length = v.trim().parse().expect("length");
        }
        if l == "connection: close" {
            close = true;
        }
    }
}
