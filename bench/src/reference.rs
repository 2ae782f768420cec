//! The reference: Debian's Dovecot (`make bench` installs dovecot-imapd,
//! dovecot-pop3d and dovecot-lmtpd when missing) started on loopback from
//! a config in a temporary directory, never the system service, maildir
//! with `mail_fsync` at its default, and tuned as its documentation
//! advises for performance: login processes that serve many connections
//! (`service_count = 0`), mail processes reused and started ahead; in
//! front of it for the MX figures, Postfix (`postfix.rs`). The same load
//! clients run against them and against sealmail in one run, alternating,
//! and each figure is printed with its ratio, with each side's CPU (every
//! process below its masters, from /proc) and memory (PSS).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::imap::{ImapClient, login_load, steady_load};
use crate::mx::sender;
use crate::pop3::Pop3Client;
use crate::postfix::{Postfix, delivered, maildir_count, smtp_source};

const DOVECOT: &str = "/usr/sbin/dovecot";

/// A Dovecot master process of our own; stopped on drop.
pub(crate) struct Dovecot {
    master: Child,
    dir: PathBuf,
    pub(crate) imap: SocketAddr,
    pub(crate) pop3: SocketAddr,
    pub(crate) lmtp: SocketAddr,
}

impl Dovecot {
    /// Starts Dovecot in `dir` with the users of `USERS` (password pw);
    /// `None` (with the reason printed) where it cannot run here.
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
        let_others_pass(dir);
        let status = Command::new("chown")
            .args(["nobody:nogroup"])
            .arg(dir.join("mail"))
            .status()
            .expect("chown");
        assert!(status.success(), "chown");
        std::fs::write(
            dir.join("users"),
            USERS
                .iter()
                .map(|u| format!("{u}:{{PLAIN}}pw::::::\n"))
                .collect::<String>(),
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
            dir: dir.to_path_buf(),
            imap: at(imap),
            pop3: at(pop3),
            lmtp: at(lmtp),
        };
        wait_for_listener(dovecot.imap, &format!("Dovecot; see {d}/dovecot.log"));
        Some(dovecot)
    }

    /// The maildir of `user`.
    pub(crate) fn maildir(&self, user: &str) -> PathBuf {
        self.dir.join("mail").join(user)
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

/// The reference's users, password pw on both sides: ann holds the
/// mailbox of the IMAP and POP3 loads, bob returns to mail that waited for
/// him, carol is away while mail for her arrives, dan is logged in.
const USERS: [&str; 4] = [
    "ann@example.org",
    "bob@example.org",
    "carol@example.org",
    "dan@example.org",
];

/// Messages of 4 KiB per MX run, from `smtp-source` over 10 sessions.
const INTAKE: usize = 5_000;

/// Commands in one run of the steady load (10 sessions x 60 rounds of 9).
const STEADY: (usize, usize) = (10, 60);

/// sealmail's key TTL in this section, so "memory after the TTL" is
/// measured in seconds; the idle sweep runs every half TTL.
const KEY_TTL: Duration = Duration::from_secs(10);

/// sealmail beside Dovecot (and Postfix in front of it) under the same
/// loads, alternating, two runs each.
pub(crate) fn reference_bench(tmp: &Path) {
    let Some(dovecot) = Dovecot::start(&tmp.join("dovecot")) else {
        return;
    };
    let postfix = Postfix::start(&tmp.join("postfix"), dovecot.lmtp, &USERS);
    dovecot.fill(1000, 4096);
    let mut config = pop3_mailbox(tmp, "reference", 1000, 4096);
    config.connections_per_ip = 1000;
    let data: PathBuf = config.data_dir.clone();
    let mut control = sealmail::app::open_control(&config).expect("control");
    for alias in &USERS[1..] {
        control
            .add_alias(
                alias,
                Some("pw"),
                sealmail::store::keys::KdfParams::default(),
            )
            .expect("alias");
    }
    drop(control);
    let file = data.join("sealmail.toml");
    let text = std::fs::read_to_string(&file).expect("config");
    let ttl = format!("cache_ttl = \"{}s\"", KEY_TTL.as_secs());
    std::fs::write(&file, text.replace("cache_ttl = \"15m\"", &ttl)).expect("config");
    let (mut server, sealmail_imap) = spawn_server(&data);
    let listen = sealmail::config::Config::load(&data)
        .expect("config")
        .listen;
    let ours_side = Side {
        imap: sealmail_imap,
        pop3: listen.pop3,
        roots: vec![server.id()],
        live: (listen.smtp, false),
        away: Some((listen.smtp, None)),
    };
    let mut reference_roots = vec![dovecot.master.id()];
    reference_roots.extend(postfix.as_ref().and_then(Postfix::master));
    let theirs_side = Side {
        imap: dovecot.imap,
        pop3: dovecot.pop3,
        roots: reference_roots,
        live: (dovecot.lmtp, true),
        away: postfix
            .as_ref()
            .map(|p| (p.smtp, Some(dovecot.maildir("carol@example.org")))),
    };
    std::thread::sleep(Duration::from_secs(1));
    let fresh = (ours_side.pss(), theirs_side.pss());
    // dan stays logged in while his mail arrives.
    let mut dan = ImapClient::connect(sealmail_imap);
    dan.cmd("LOGIN dan@example.org pw");
    dan.cmd("SELECT INBOX");
    let mut ours = Figures::default();
    let mut theirs = Figures::default();
    for _ in 0..2 {
        ours.add(&ours_side);
        theirs.add(&theirs_side);
    }
    dan.cmd("LOGOUT");
    let ours_back = returning_owner(sealmail_imap, (listen.smtp, "EHLO"));
    let theirs_back = returning_owner(dovecot.imap, (dovecot.lmtp, "LHLO"));
    let loaded = (ours_side.pss(), theirs_side.pss());
    // Every session has ended: after one TTL the keys go, and the next
    // sweep (half a TTL later at most) closes their files.
    std::thread::sleep(KEY_TTL + KEY_TTL / 2 + Duration::from_secs(2));
    let rested = (ours_side.pss(), theirs_side.pss());
    let _ = server.kill();
    let _ = server.wait();
    let line = |what: &str, a: f64, b: f64, unit: &str, goal: f64| {
        println!(
            "  {what}: sealmail {a:.0} {unit}, reference {b:.0} {unit}: ratio {:.2} (goal >= {goal}: {})",
            a / b,
            ok(a / b >= goal)
        );
    };
    println!(
        "\nAgainst Dovecot 2.3 (maildir) and Postfix 3.7 (same clients, same run, alternating, best of two):"
    );
    line(
        "IMAP, 10 sessions logged in once (the steady mix)",
        ours.steady,
        theirs.steady,
        "commands/s",
        1.5,
    );
    println!(
        "  server CPU per command under that load: sealmail {:.3} ms, Dovecot {:.3} ms (goal <= Dovecot's: {})",
        ms(ours.steady_cpu),
        ms(theirs.steady_cpu),
        ok(ours.steady_cpu <= theirs.steady_cpu)
    );
    println!(
        "  FETCH p50 under that load: sealmail {:.2} ms, Dovecot {:.2} ms (goal <= 2 ms: {})",
        ms(ours.fetch_p50),
        ms(theirs.fetch_p50),
        ok(ours.fetch_p50 <= Duration::from_millis(2))
    );
    line(
        "IMAP, a login per session",
        ours.per_login,
        theirs.per_login,
        "commands/s",
        1.0,
    );
    line(
        &format!(
            "mail for a logged-in owner, smtp-source 10 sessions x {INTAKE} x 4 KiB, each acknowledged once durable (sealmail's MX; Dovecot's LMTP alone)"
        ),
        ours.live,
        theirs.live,
        "msgs/s",
        2.0,
    );
    println!(
        "    sealmail >= 2,000 msgs/s: {}; server CPU per message: sealmail {:.3} ms, Dovecot {:.3} ms",
        ok(ours.live >= 2000.0),
        ms(ours.live_cpu),
        ms(theirs.live_cpu)
    );
    if postfix.is_some() {
        line(
            &format!(
                "mail for an owner away, smtp-source 10 sessions x {INTAKE} x 4 KiB (sealmail's MX, sealed on acknowledgement; Postfix until Dovecot has delivered it over LMTP)"
            ),
            ours.away,
            theirs.away,
            "msgs/s",
            3.0,
        );
        println!(
            "    Postfix acknowledged {:.0} msgs/s (queued); server CPU per message: sealmail {:.3} ms, Postfix and Dovecot {:.3} ms",
            theirs.away_accepted,
            ms(ours.away_cpu),
            ms(theirs.away_cpu)
        );
    }
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
    let mib = |kib: u64| kib / 1024;
    println!(
        "  memory (PSS of every process of each server): sealmail fresh {} MiB, after the loads {} MiB, {} s after the last session ended {} MiB \
         (key TTL {} s; goal <= fresh + 64 MiB: {}); reference fresh {} MiB, after the loads {} MiB, then {} MiB",
        mib(fresh.0),
        mib(loaded.0),
        (KEY_TTL + KEY_TTL / 2).as_secs() + 2,
        mib(rested.0),
        KEY_TTL.as_secs(),
        ok(rested.0 <= fresh.0 + 64 * 1024),
        mib(fresh.1),
        mib(loaded.1),
        mib(rested.1),
    );
}

/// One side of the comparison.
struct Side {
    imap: SocketAddr,
    pop3: SocketAddr,
    /// Every process of the side descends from one of these.
    roots: Vec<u32>,
    /// Where mail for dan (logged in) goes; true for LMTP.
    live: (SocketAddr, bool),
    /// Where mail for carol (away) goes, and the maildir it ends in when
    /// that is later than its acknowledgement.
    away: Option<(SocketAddr, Option<PathBuf>)>,
}

impl Side {
    fn cpu(&self) -> Duration {
        self.roots.iter().map(|&r| cpu_of_tree(r)).sum()
    }

    fn pss(&self) -> u64 {
        self.roots.iter().map(|&r| pss_of_tree(r)).sum()
    }
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
            scope.spawn(move || sender(addr, hello, "bob@example.org", id, WAITING / 10, 4096));
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

/// The best of the runs of each load against one side; CPU per command
/// or message from the best run.
#[derive(Default)]
struct Figures {
    steady: f64,
    steady_cpu: Duration,
    fetch_p50: Duration,
    per_login: f64,
    pop3: f64,
    live: f64,
    live_cpu: Duration,
    away: f64,
    away_cpu: Duration,
    away_accepted: f64,
}

impl Figures {
    fn add(&mut self, side: &Side) {
        let cpu = side.cpu();
        let (clients, rounds) = STEADY;
        let (steady, fetches) = steady_load(side.imap, clients, rounds);
        if steady > self.steady {
            self.steady = steady;
            self.steady_cpu = (side.cpu() - cpu) / (clients * rounds * 9) as u32;
            self.fetch_p50 = percentile(fetches, 0.5);
        }
        let (per_login, _) = login_load(side.imap, 8, 40);
        self.per_login = self.per_login.max(per_login);
        self.pop3 = self.pop3.max(pop3_sessions(side.pop3, 8, 40));
        let (addr, lmtp) = side.live;
        let cpu = side.cpu();
        let rate =
            INTAKE as f64 / smtp_source(addr, lmtp, 10, INTAKE, "dan@example.org").as_secs_f64();
        if rate > self.live {
            self.live = rate;
            self.live_cpu = (side.cpu() - cpu) / INTAKE as u32;
        }
        let Some((addr, maildir)) = &side.away else {
            return;
        };
        let before = maildir.as_deref().map_or(0, maildir_count);
        let cpu = side.cpu();
        let t = Instant::now();
        let accepted = smtp_source(*addr, false, 10, INTAKE, "carol@example.org");
        let done = match maildir {
            Some(m) => delivered(m, before + INTAKE, t),
            None => accepted,
        };
        let rate = INTAKE as f64 / done.as_secs_f64();
        if rate > self.away {
            self.away = rate;
            self.away_cpu = (side.cpu() - cpu) / INTAKE as u32;
            self.away_accepted = INTAKE as f64 / accepted.as_secs_f64();
        }
    }
}
