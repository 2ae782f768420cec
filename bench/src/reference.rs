//! The reference: Debian's Dovecot (`make bench` installs dovecot-imapd,
//! dovecot-pop3d and dovecot-lmtpd when missing) started on loopback from
//! a config in a temporary directory, never the system service, maildir
//! with `mail_fsync` at its default, and tuned as its documentation
//! advises for performance: login processes that serve many connections
//! (`service_count = 0`), mail processes reused and started ahead. The same load clients run against it
//! and against sealmail in one run, alternating, and each figure is
//! printed with its ratio.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::imap::{ImapClient, login_load, steady_load};
use crate::mx::sender;
use crate::pop3::Pop3Client;

const DOVECOT: &str = "/usr/sbin/dovecot";

/// A Dovecot master process of our own; stopped on drop.
pub(crate) struct Dovecot {
    master: Child,
    pub(crate) imap: SocketAddr,
    pub(crate) pop3: SocketAddr,
    pub(crate) lmtp: SocketAddr,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    l.local_addr().expect("addr").port()
}

impl Dovecot {
    /// Starts Dovecot in `dir` with one user, ann@example.org (password
    /// pw); `None` (with the reason printed) where it cannot run here.
    pub(crate) fn start(dir: &Path) -> Option<Dovecot> {
        if !Path::new(DOVECOT).exists() {
            println!(
                "(Dovecot is not installed: `make bench` installs dovecot-imapd, dovecot-pop3d and dovecot-lmtpd; reference skipped)"
            );
            return None;
        }
        // Dovecot's master runs as root and gives mail processes the
        // user's uid; as another user it would need a different setup.
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            println!("(the Dovecot reference runs as root only; reference skipped)");
            return None;
        }
        std::fs::create_dir_all(dir.join("run")).expect("dir");
        std::fs::create_dir_all(dir.join("state")).expect("dir");
        std::fs::create_dir_all(dir.join("mail")).expect("dir");
        // Mail belongs to nobody; the directories above must let it pass.
        let mut up = Some(dir);
        while let Some(d) = up {
            if d == Path::new("/") {
                break;
            }
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d).expect("stat").permissions().mode();
            let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o711));
            up = d.parent();
        }
        let status = Command::new("chown")
            .args(["nobody:nogroup"])
            .arg(dir.join("mail"))
            .status()
            .expect("chown");
        assert!(status.success(), "chown");
        std::fs::write(
            dir.join("users"),
            "ann@example.org:{PLAIN}pw::::::\nbob@example.org:{PLAIN}pw::::::\n",
        )
        .expect("users");
        let (imap, pop3, lmtp) = (free_port(), free_port(), free_port());
        let d = dir.display();
        let conf = format!(
            "base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap pop3 lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{d}/mail/%u
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%u
}}
service imap-login {{
  service_count = 0
  process_min_avail = 2
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  service_count = 0
  process_min_avail = 2
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service imap {{
  service_count = 100
  process_min_avail = 4
}}
service pop3 {{
  service_count = 100
  process_min_avail = 4
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
"
        );
        let file = dir.join("dovecot.conf");
        std::fs::write(&file, conf).expect("conf");
        let master = Command::new(DOVECOT)
            .arg("-F")
            .arg("-c")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dovecot");
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let dovecot = Dovecot {
            master,
            imap: at(imap),
            pop3: at(pop3),
            lmtp: at(lmtp),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(dovecot.imap).is_err() {
            assert!(
                Instant::now() < deadline,
                "Dovecot did not start; see {d}/dovecot.log"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(dovecot)
    }

    /// Fills INBOX with `n` messages of `size` bytes (the messages of
    /// `pop3_mailbox`), by APPEND.
    fn fill(&self, n: usize, size: usize) {
        let mut c = ImapClient::connect(self.imap);
        c.cmd("LOGIN ann@example.org pw");
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for i in 0..n {
            let m = message(i, size, &mut rng);
            let m = String::from_utf8(m).expect("ascii");
            c.cmd(&format!("APPEND INBOX {{{}+}}\r\n{m}", m.len()));
        }
        c.cmd("LOGOUT");
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.master.kill();
        let _ = self.master.wait();
    }
}

/// POP3 sessions: each connects, logs in, lists, retrieves one message
/// and quits. Sessions/s.
pub(crate) fn pop3_sessions(addr: SocketAddr, clients: usize, rounds: usize) -> f64 {
    let t = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|k| {
            std::thread::spawn(move || {
                for r in 0..rounds {
                    let mut c = Pop3Client::connect(addr);
                    assert!(c.cmd("USER ann@example.org").starts_with("+OK"));
                    let pass = c.cmd("PASS pw");
                    assert!(pass.starts_with("+OK"), "{pass}");
                    assert!(c.cmd("STAT").starts_with("+OK"));
                    assert!(c.cmd("LIST").starts_with("+OK"));
                    c.body();
                    let at = (k * rounds + r) % 900 + 1;
                    assert!(c.cmd(&format!("RETR {at}")).starts_with("+OK"));
                    c.body();
                    assert!(c.cmd("QUIT").starts_with("+OK"));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client");
    }
    (clients * rounds) as f64 / t.elapsed().as_secs_f64()
}

/// sealmail and Dovecot under the same loads, alternating, two runs each.
pub(crate) fn reference_bench(tmp: &Path) {
    let Some(dovecot) = Dovecot::start(&tmp.join("dovecot")) else {
        return;
    };
    dovecot.fill(1000, 4096);
    let config = pop3_mailbox(tmp, "reference", 1000, 4096);
    let mut config = config;
    config.connections_per_ip = 1000;
    let data: PathBuf = config.data_dir.clone();
    // Bob is away: his mail waits sealed until he logs in.
    sealmail::app::open_control(&config)
        .expect("control")
        .add_alias(
            "bob@example.org",
            Some("pw"),
            sealmail::store::keys::KdfParams::default(),
        )
        .expect("alias");
    let (mut server, sealmail_imap) = spawn_server(&data);
    let listen = sealmail::config::Config::load(&data)
        .expect("config")
        .listen;
    // Mail for an owner who is logged in goes straight into the mailbox.
    let mut owner = ImapClient::connect(sealmail_imap);
    owner.cmd("LOGIN ann@example.org pw");
    owner.cmd("SELECT INBOX");
    let mut ours = Figures::default();
    let mut theirs = Figures::default();
    for _ in 0..2 {
        ours.add(sealmail_imap, listen.pop3, (listen.smtp, "EHLO"));
        theirs.add(dovecot.imap, dovecot.pop3, (dovecot.lmtp, "LHLO"));
    }
    owner.cmd("LOGOUT");
    let ours_back = returning_owner(sealmail_imap, (listen.smtp, "EHLO"));
    let theirs_back = returning_owner(dovecot.imap, (dovecot.lmtp, "LHLO"));
    let _ = server.kill();
    let _ = server.wait();
    let line = |what: &str, a: f64, b: f64, unit: &str, goal: f64| {
        println!(
            "  {what}: sealmail {a:.0} {unit}, Dovecot {b:.0} {unit}: ratio {:.2} (goal >= {goal}: {})",
            a / b,
            ok(a / b >= goal)
        );
    };
    println!("\nAgainst Dovecot 2.3 (maildir, same clients, same run, alternating, best of two):");
    line(
        "IMAP, 10 sessions logged in once (the steady mix)",
        ours.steady,
        theirs.steady,
        "commands/s",
        1.5,
    );
    println!(
        "  FETCH p50 under that load: sealmail {:.2} ms, Dovecot {:.2} ms",
        ms(ours.fetch_p50),
        ms(theirs.fetch_p50)
    );
    line(
        "IMAP, a login per session",
        ours.per_login,
        theirs.per_login,
        "commands/s",
        1.0,
    );
    line(
        "mail for a logged-in owner, 10 senders x 200 x 4 KiB, each acknowledged once durable (sealmail's MX; Dovecot's LMTP alone)",
        ours.intake,
        theirs.intake,
        "msgs/s",
        2.0,
    );
    println!(
        "  an owner returning to {WAITING} messages of 4 KiB (sealmail: sealed, imported after LOGIN; Dovecot: delivered by LMTP): \
         LOGIN sealmail {:.0} ms, Dovecot {:.0} ms; LOGIN + SELECT sealmail {:.0} ms, Dovecot {:.0} ms; \
         all {WAITING} in INBOX sealmail {:.0} ms, Dovecot {:.0} ms (goal: LOGIN <= 100 ms: {}, all <= 1.5 s: {})",
        ms(ours_back.login),
        ms(theirs_back.login),
        ms(ours_back.login_select),
        ms(theirs_back.login_select),
        ms(ours_back.all),
        ms(theirs_back.all),
        ok(ours_back.login <= Duration::from_millis(100)),
        ok(ours_back.all <= Duration::from_millis(1500)),
    );
    line(
        "POP3 sessions (login, list, one RETR, quit), 8 clients",
        ours.pop3,
        theirs.pop3,
        "sessions/s",
        1.5,
    );
}

/// Messages waiting for the owner who returns.
const WAITING: usize = 5_000;

/// What an owner who was away meets: `WAITING` messages of 4 KiB were
/// delivered to bob (10 senders), then he logs in and selects INBOX.
struct Returning {
    login: Duration,
    login_select: Duration,
    /// Until every message is in INBOX (sealmail imports after LOGIN).
    all: Duration,
}

fn returning_owner(imap: SocketAddr, intake: (SocketAddr, &'static str)) -> Returning {
    let (addr, hello) = intake;
    std::thread::scope(|scope| {
        for id in 0..10 {
            scope.spawn(move || sender(addr, hello, "bob@example.org", id, WAITING / 10));
        }
    });
    let exists = |lines: Vec<String>| {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXISTS")?.parse().ok())
            .next_back()
    };
    let mut c = ImapClient::connect(imap);
    let t = Instant::now();
    c.cmd("LOGIN bob@example.org pw");
    let login = t.elapsed();
    let mut seen: usize = exists(c.lines("SELECT INBOX")).unwrap_or(0);
    let login_select = t.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen < WAITING && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        seen = exists(c.lines("NOOP")).unwrap_or(seen);
    }
    assert_eq!(seen, WAITING, "every message waiting arrives");
    let all = t.elapsed();
    c.cmd("LOGOUT");
    Returning {
        login,
        login_select,
        all,
    }
}

/// The best of the runs of each load against one server.
#[derive(Default)]
struct Figures {
    steady: f64,
    fetch_p50: Duration,
    per_login: f64,
    pop3: f64,
    intake: f64,
}

impl Figures {
    fn add(&mut self, imap: SocketAddr, pop3: SocketAddr, intake: (SocketAddr, &'static str)) {
        let (steady, fetches) = steady_load(imap, 10, 60);
        if steady > self.steady {
            self.steady = steady;
            self.fetch_p50 = percentile(fetches, 0.5);
        }
        let (per_login, _) = login_load(imap, 8, 40);
        self.per_login = self.per_login.max(per_login);
        self.pop3 = self.pop3.max(pop3_sessions(pop3, 8, 40));
        let (addr, hello) = intake;
        let per = 200;
        let t = Instant::now();
        std::thread::scope(|scope| {
            for id in 0..10 {
                scope.spawn(move || sender(addr, hello, "ann@example.org", id, per));
            }
        });
        self.intake = self
            .intake
            .max((10 * per) as f64 / t.elapsed().as_secs_f64());
    }
}
