//! Shared set-up for the scenario tests: a temp data directory made by the
//! real `init`, aliases with known passwords, the in-process store, and the
//! built binary for tests that need a process to kill.
#![allow(dead_code)]

pub mod disaster;
pub mod imap;
pub mod mbsync;
pub mod tls_peers;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use sealmail::app;
use sealmail::config::Config;
use sealmail::store::control::Control;
use sealmail::store::keys::{self, KdfParams};
use sealmail::store::local::LocalBackend;
use sealmail::store::{AppendRequest, Flags, Session, Store};

pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: Config,
}

/// Cheap argon2 for tests that are not about argon2 cost.
pub const FAST: KdfParams = KdfParams {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        // Backups inside the test's directory.
        let backups = app::BackupChoice {
            dir: Some(dir.path().join("backups")),
            allow_same_disk: true,
        };
        app::init(dir.path(), "mail.example.org", false, &backups).expect("init");
        // No DNS beyond loopback in tests: sender checks run only where a
        // test starts its own DNS server. No pause before the MX greeting
        // but in the test of that pause (each connection would wait 1 s).
        let file = dir.path().join("sealmail.toml");
        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace("check_senders = true", "check_senders = false")
            .replace("greet_pause = \"1s\"", "greet_pause = \"0s\"")
            // The web listeners on any loopback port (a test that needs
            // them on known ones says so).
            .replace("\"0.0.0.0:80\"", "\"127.0.0.1:0\"")
            .replace("\"0.0.0.0:443\"", "\"127.0.0.1:0\"")
            .replace("\"127.0.0.1:9465\"", "\"127.0.0.1:0\"")
            .replace("\"0.0.0.0:4190\"", "\"127.0.0.1:0\"");
        std::fs::write(&file, text).unwrap();
        let config = Config::load(dir.path()).expect("config");
        let env = Env { dir, config };
        env.control().add_domain("example.org").expect("domain");
        env
    }

    pub fn data(&self) -> &Path {
        self.dir.path()
    }

    pub fn control(&self) -> Control {
        app::open_control(&self.config).expect("control")
    }

    /// Adds `local@example.org` with `password`; returns the address.
    pub fn alias(&self, local: &str, password: &str) -> String {
        let a = self
            .control()
            .add_alias(&format!("{local}@example.org"), Some(password), FAST)
            .expect("alias");
        a.address
    }

    pub fn store(&self) -> (Arc<LocalBackend>, Store) {
        app::open_store(&self.config).expect("store")
    }

    /// The raw DEK of an alias, unwrapped with its password.
    pub fn dek(&self, address: &str, password: &str) -> zeroize::Zeroizing<[u8; 32]> {
        let c = self.control();
        let a = c.alias(address).unwrap().unwrap();
        let creds = c.credentials(a.id).unwrap().unwrap();
        keys::unwrap(&creds, password).unwrap().dek
    }

    pub fn mailbox_path(&self, address: &str) -> PathBuf {
        let a = self.control().alias(address).unwrap().unwrap();
        self.data()
            .join("mailboxes")
            .join(format!("{}.sqlite", a.mailbox_id))
    }

    /// The alias' mailbox file opened beside the store, for what its API
    /// does not tell (the search index, for one).
    pub fn mailbox_file(&self, address: &str, password: &str) -> sealmail::store::mailbox::Mailbox {
        let dek = self.dek(address, password);
        sealmail::store::mailbox::Mailbox::open(
            &self.mailbox_path(address),
            sealmail::store::db::DbKey::Raw(&dek),
            Default::default(),
        )
        .unwrap()
    }

    /// Runs `sealmail ARGS` on this data directory: whether it succeeded,
    /// and what it printed on both streams.
    #[allow(dead_code)] // Not every test binary runs the command line.
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = self.bin().args(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// The `sealmail` binary with `--data` set.
    pub fn bin(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sealmail"));
        c.arg("--data").arg(self.data());
        c.env("SEALMAIL_LOG", "warn");
        c
    }

    /// An environment for a server run as its own process
    /// ([`Env::spawn_server`]): development mode, SMTP, POP3 and IMAP on
    /// free loopback ports (in `config.listen`), the other ports on any.
    #[allow(dead_code)] // Not every test binary runs a server process.
    pub fn subprocess() -> Env {
        let mut env = Env::new();
        let text = std::fs::read_to_string(&env.config.file).unwrap();
        let mut text = text.replace("dev = false", "dev = true");
        for p in ["25", "110", "143"] {
            text = text.replace(
                &format!("\"0.0.0.0:{p}\""),
                &format!("\"127.0.0.1:{}\"", free_port()),
            );
        }
        for p in ["587", "465", "993", "995", "7443"] {
            text = text.replace(&format!("\"0.0.0.0:{p}\""), "\"127.0.0.1:0\"");
        }
        std::fs::write(&env.config.file, text).unwrap();
        env.config = sealmail::config::Config::load(env.data()).unwrap();
        env
    }

    /// Moves the listeners named by `keys` (`listen.http`, `listen.imaps`,
    /// ... left on any port by [`Env::subprocess`]) to free loopback
    /// ports, reloads the config, and returns the ports in order.
    #[allow(dead_code)]
    pub fn known_ports(&mut self, keys: &[&str]) -> Vec<u16> {
        let mut text = std::fs::read_to_string(&self.config.file).unwrap();
        let ports: Vec<u16> = keys.iter().map(|_| free_port()).collect();
        for (key, port) in keys.iter().zip(&ports) {
            let any = format!("{key} = \"127.0.0.1:0\"");
            assert!(text.contains(&any), "{key} is not on any port");
            text = text.replacen(&any, &format!("{key} = \"127.0.0.1:{port}\""), 1);
        }
        std::fs::write(&self.config.file, text).unwrap();
        self.config = sealmail::config::Config::load(self.data()).unwrap();
        ports
    }

    /// Starts `sealmail serve` as a process with the extra environment
    /// `vars`, its log in `serve.log` of the data directory; returns once
    /// its SMTP port answers.
    #[allow(dead_code)]
    pub fn spawn_server(&self, vars: &[(&str, &str)]) -> ServerProcess {
        let log = std::fs::File::create(self.data().join("serve.log")).unwrap();
        let child = ServerProcess(
            self.bin()
                .arg("serve")
                .envs(vars.iter().copied())
                .stdout(std::process::Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(self.config.listen.smtp).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "server did not start: {}",
                std::fs::read_to_string(self.data().join("serve.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child
    }
}

/// A server process, killed when dropped (a failed test leaves none).
pub struct ServerProcess(pub std::process::Child);

/// Reads `child`'s piped standard error until `needle` appears (a
/// progress line, say), then kills it (SIGKILL) and reaps it.
pub fn kill_after(child: &mut std::process::Child, needle: &str) {
    use std::io::Read;
    let mut err = child.stderr.take().expect("stderr piped");
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = err.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "ended before {needle:?}: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

impl ServerProcess {
    /// Sends `signal` (`HUP`, `USR1`, ...) with kill(1).
    pub fn signal(&self, signal: &str) {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{signal}");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP connection to `server` from the loopback address `source`
/// (127.0.0.0/8 is all ours), with a 120 s read timeout.
pub fn connect_from(source: std::net::IpAddr, server: std::net::SocketAddr) -> std::net::TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    socket
        .bind(&std::net::SocketAddr::new(source, 0).into())
        .unwrap();
    socket.connect(&server.into()).unwrap();
    let stream: std::net::TcpStream = socket.into();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .unwrap();
    stream
}

pub fn append_req(folder: &str, message: Vec<u8>) -> AppendRequest {
    AppendRequest {
        folder: folder.into(),
        message,
        flags: Flags::default(),
        internal_date: None,
        if_missing: Default::default(),
    }
}

pub fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(f)
}

/// Opens a mailbox and waits for its sealed mail to be in INBOX.
pub fn unlock(store: &Store, address: &str, password: &str) -> Session {
    let s = block(store.unlock(address, password)).expect("unlock");
    block(s.settle()).expect("sealed mail imported");
    s
}

/// Opens a mailbox and waits for its sealed mail: returns the session and
/// how many messages were imported.
pub fn unlock_imported(store: &Store, address: &str, password: &str) -> (Session, u32) {
    let s = block(store.unlock(address, password)).expect("unlock");
    let n = block(s.settle()).expect("sealed mail imported");
    (s, n)
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                hits.push(p);
            }
        }
    }
    hits
}

/// A plain text message.
pub fn text_message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Ann <ann@example.net>\r\nTo: bob@example.org\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{}@example.net>\r\n\r\n{body}\r\n",
        subject.len() * 7919 + body.len()
    )
    .into_bytes()
}

/// A message with an attachment body of at least 4 KiB.
pub fn with_attachment(subject: &str, body: &str, attachment: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "From: ann@example.net\r\nTo: bob@example.org\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n--XYZ\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n--XYZ\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"data.bin\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(attachment);
    m.extend_from_slice(b"\r\n--XYZ--\r\n");
    m
}

/// A server running in-process on ephemeral loopback ports.
pub struct Server {
    pub smtp: std::net::SocketAddr,
    pub submission: std::net::SocketAddr,
    pub submissions: std::net::SocketAddr,
    pub pop3: std::net::SocketAddr,
    pub pop3s: std::net::SocketAddr,
    pub imap: std::net::SocketAddr,
    pub imaps: std::net::SocketAddr,
    pub http: std::net::SocketAddr,
    pub https: std::net::SocketAddr,
    pub metrics: std::net::SocketAddr,
    pub managesieve: std::net::SocketAddr,
    stop: Option<async_channel::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Env {
    /// Starts `app::run` on 127.0.0.1 port 0 for every listener.
    pub fn serve(&self) -> Server {
        let mut config = self.config.clone();
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        config.listen.smtp = any;
        config.listen.submission = any;
        config.listen.submissions = any;
        config.listen.pop3 = any;
        config.listen.pop3s = any;
        config.listen.imap = any;
        config.listen.imaps = any;
        config.listen.http = Some(any);
        config.listen.https = Some(any);
        config.listen.metrics = Some(any);
        config.listen.managesieve = Some(any);
        let listeners = app::Listeners::bind(&config).expect("bind");
        let smtp = listeners.smtp.get_ref().local_addr().unwrap();
        let submission = listeners.submission.get_ref().local_addr().unwrap();
        let submissions = listeners.submissions.get_ref().local_addr().unwrap();
        let pop3 = listeners.pop3.get_ref().local_addr().unwrap();
        let pop3s = listeners.pop3s.get_ref().local_addr().unwrap();
        let imap = listeners.imap.get_ref().local_addr().unwrap();
        let imaps = listeners.imaps.get_ref().local_addr().unwrap();
        let web = |l: &Option<smol::Async<std::net::TcpListener>>| {
            l.as_ref().unwrap().get_ref().local_addr().unwrap()
        };
        let (http, https, metrics) = (
            web(&listeners.web.http),
            web(&listeners.web.https),
            web(&listeners.web.metrics),
        );
        let managesieve = web(&listeners.managesieve);
        let (tx, rx) = async_channel::bounded::<()>(1);
        let config = Arc::new(config);
        let thread = std::thread::spawn(move || {
            smol::block_on(app::run(config, listeners, async move {
                let _ = rx.recv().await;
            }))
            .expect("server ran");
        });
        Server {
            smtp,
            submission,
            submissions,
            pop3,
            pop3s,
            imap,
            imaps,
            http,
            https,
            metrics,
            managesieve,
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.try_send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if !std::thread::panicking() {
            assert_eq!(
                sealmail::net::listener::panics(),
                0,
                "a connection task panicked"
            );
        }
    }
}

/// Runs a command that must succeed; returns its stdout. On failure the
/// panic shows both streams.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} could not start ({e}); `make test` installs it"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs a Python script from `tests/interop/` with arguments; panics with
/// its output unless it exits 0.
pub fn python(script: &str, args: &[String]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    run_ok(Command::new("python3").arg(&path).args(args))
}

/// [`python`] with the virtualenv's packages (IMAPClient and the peers).
pub fn venv_script(script: &str, args: &[String]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    run_ok(Command::new(venv_python()).arg(&path).args(args))
}

/// The SMTP and HTTP sinks (`tests/interop/sinks.py`) on free ports,
/// writing what they receive under `dir/sink`; the SMTP port and that
/// directory.
pub fn start_sinks(dir: &Path) -> (Peer, u16, PathBuf) {
    let (smtp_port, http_port) = (free_port(), free_port());
    let out = dir.join("sink");
    std::fs::create_dir_all(&out).unwrap();
    let peer = start_peer(
        "sinks.py",
        &[
            smtp_port.to_string(),
            http_port.to_string(),
            out.display().to_string(),
        ],
    );
    (peer, smtp_port, out)
}

/// New DKIM keys for example.org, stored, and their TXT records added to
/// a loopback DNS zone.
pub fn publish_dkim(env: &Env, zone: &mut serde_json::Value) -> Vec<sealmail::store::DkimKey> {
    let keys = sealmail::smtp::dkim::generate(sealmail::util::now_unix()).unwrap();
    env.control().add_dkim_keys("example.org", &keys).unwrap();
    for k in &keys {
        zone[format!("{}._domainkey.example.org", k.selector)] =
            serde_json::json!([["TXT", sealmail::smtp::dkim::record(k)]]);
    }
    keys
}

/// The Python with the test peers' packages (dnslib, dkimpy, aiosmtpd)
/// that `make test` installs.
pub fn venv_python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python3");
    assert!(
        p.exists(),
        "{} is missing: run `make test`, which installs the Python test peers",
        p.display()
    );
    p
}

/// A helper process, killed when dropped.
pub struct Peer(pub std::process::Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server process that stops its own children when asked (rspamd,
/// nsd): SIGTERM when dropped, then waited for.
pub struct Daemon(pub std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

/// Starts `tests/interop/<script>` under the venv and waits for its
/// "ready" line.
pub fn start_peer(script: &str, args: &[String]) -> Peer {
    use std::io::{BufRead, BufReader};
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    let mut child = Command::new(venv_python())
        .arg(path)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "{script} did not start");
    Peer(child)
}

/// A loopback port that was free a moment ago (UDP and TCP), below the
/// kernel's ephemeral range (32768 and up on Linux), so no socket bound
/// to port 0 meanwhile (a server's other listeners, any client) takes it
/// before its server binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Spread test binaries apart: each starts at its own offset.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 1_000) as u16 * 12,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        if !(20_000..32_000).contains(&port) {
            NEXT.store(20_000, Ordering::SeqCst);
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
}

/// Starts the loopback DNS server with `zone`
/// (`{"name": [["TXT"|"A"|"MX", "value"], ...]}`); returns it and its port.
pub fn start_dns(dir: &Path, zone: &serde_json::Value) -> (Peer, u16) {
    let file = dir.join("zone.json");
    std::fs::write(&file, zone.to_string()).unwrap();
    let port = free_port();
    let peer = start_peer(
        "dns_server.py",
        &[port.to_string(), file.display().to_string()],
    );
    (peer, port)
}

/// One SMTP reply (the last line of a multi-line one), or "EOF".
pub fn smtp_reply(r: &mut std::io::BufReader<std::net::TcpStream>) -> String {
    use std::io::BufRead;
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap() == 0 {
            return "EOF".into();
        }
        if l.as_bytes().get(3) != Some(&b'-') {
            return l.trim_end().to_string();
        }
    }
}

/// An SMTP exchange on `stream`: the greeting, then each line sent and
/// its reply read (60 s each at most); returns every reply.
#[allow(dead_code)]
pub fn smtp_exchange<S: AsRef<str>>(stream: std::net::TcpStream, lines: &[S]) -> Vec<String> {
    use std::io::{BufReader, Write};
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut r = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let mut replies = vec![smtp_reply(&mut r)];
    for l in lines {
        w.write_all(format!("{}\r\n", l.as_ref()).as_bytes())
            .unwrap();
        replies.push(smtp_reply(&mut r));
    }
    replies
}

/// Sends one message over plain SMTP; returns the final reply.
pub fn smtp_send(addr: std::net::SocketAddr, rcpt: &str, subject: &str) -> String {
    use std::io::{BufReader, Write};
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let reply = smtp_reply;
    reply(&mut r);
    let body = format!("Subject: {subject}\r\n\r\nhello\r\n.\r\n");
    for cmd in [
        "HELO client.example.net".to_string(),
        "MAIL FROM:<a@example.net>".into(),
        format!("RCPT TO:<{rcpt}>"),
        "DATA".into(),
    ] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        reply(&mut r);
    }
    w.write_all(body.as_bytes()).unwrap();
    let last = reply(&mut r);
    w.write_all(b"QUIT\r\n").unwrap();
    last
}

/// Logs `addr` (password "pw") in over POP3 and keeps the session, and so
/// its key, open until the stream is dropped.
pub fn pop3_login(server: std::net::SocketAddr, addr: &str) -> std::net::TcpStream {
    use std::io::{BufRead, BufReader, Write};
    let s = std::net::TcpStream::connect(server).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s.try_clone().unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    w.write_all(format!("USER {addr}\r\nPASS pw\r\n").as_bytes())
        .unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("+OK"), "{line}");
    s
}

/// Peak resident memory of this process (the server runs in it), in KiB.
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The one integer `sql` selects from a mailbox file.
pub fn count(file: &mut sealmail::store::mailbox::Mailbox, sql: &str) -> usize {
    let n: i64 = file.connection().query_row(sql, [], |r| r.get(0)).unwrap();
    n as usize
}

/// Polls `cond` until it holds; fails the test naming `what` after 90 s.
#[allow(dead_code)]
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Waits (up to two minutes) until fewer than `below` bodies of the file
/// wait for the search index.
pub fn wait_for_index(file: &mut sealmail::store::mailbox::Mailbox, below: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let waiting = count(file, "SELECT count(*) FROM fts_pending");
        if waiting < below {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{waiting} never indexed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// How many INBOX messages a BODY search for `needle` finds.
pub fn body_hits(s: &sealmail::store::Session, needle: &str) -> usize {
    block(s.search("INBOX", sealmail::store::Criteria::Body(needle.into())))
        .unwrap()
        .uids
        .len()
}

/// Appends `n` messages to `addr`'s INBOX (password "pw"); returns their UIDLs as POP3 shows them.
pub fn pop3_seed(env: &Env, addr: &str, n: usize) -> Vec<String> {
    let (_b, store) = env.store();
    let s = unlock(&store, addr, "pw");
    let reqs: Vec<sealmail::store::AppendRequest> = (1..=n)
        .map(|i| {
            let body = if i == 2 { ".dotted line\r\nplain line".to_string() } else { format!("body {i}") };
            let msg = format!(
                "From: sender@example.net\r\nTo: {addr}\r\nSubject: message {i}\r\nMessage-ID: <pop{i}@example.net>\r\n\r\n{body}\r\n"
            );
            append_req("INBOX", msg.into_bytes())
        })
        .collect();
    let uids = block(s.append_batch(reqs)).unwrap();
    uids.iter()
        .map(|u| format!("{:08X}{:08X}", u.uid, u.uidvalidity))
        .collect()
}

/// Every text cell of every table of a database, one per line.
#[allow(dead_code)] // Not every test binary reads databases whole.
pub fn db_text(db: &rusqlite::Connection) -> String {
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = String::new();
    for t in tables {
        let mut stmt = db.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..n {
                match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                        out.push_str(&String::from_utf8_lossy(b));
                        out.push('\n');
                    }
                    _ => {}
                }
            }
        }
    }
    out
}
