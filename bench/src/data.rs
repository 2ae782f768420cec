//! Moving a mailbox in and out: `sealmail import` of a large mbox,
//! `sealmail export` of the same mailbox back to mbox, and `sealmail
//! migrate` from Debian's Dovecot on loopback. Each runs as the release
//! binary in its own process; its peak memory is the kernel's high-water
//! mark of that process (`VmHWM`), read until it exits. (`wait4`'s
//! `ru_maxrss` would not do: it starts from this process's own size,
//! which the child shares until it executes.)

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::imap::ImapClient;

/// A command's wall time, peak resident memory and standard output.
struct Run {
    took: Duration,
    peak_kib: u64,
    stdout: String,
    stderr: String,
}

/// Runs `sealmail ARGS` on `data` with `env`, to completion; panics with
/// its output if it fails.
fn sealmail(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let bin = std::env::current_exe()
        .expect("exe")
        .with_file_name("sealmail");
    let out = data.join("command.out");
    let err = data.join("command.err");
    let start = Instant::now();
    let mut child = Command::new(&bin)
        .arg("--data")
        .arg(data)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("out"))
        .stderr(std::fs::File::create(&err).expect("err"))
        .spawn()
        .unwrap_or_else(|e| panic!("{} (build it: cargo build --release): {e}", bin.display()));
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let status = loop {
        // The mark only grows, and is read until the process is gone.
        peak_kib = peak_kib.max(status_kib(&status_file, "VmHWM:"));
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = start.elapsed();
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(
        status.success(),
        "sealmail {args:?} failed: {stdout}{stderr}"
    );
    Run {
        took,
        peak_kib,
        stdout,
        stderr,
    }
}

fn mb_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64().max(1e-9)
}

/// Writes an mboxrd file of about `mib` MiB: text messages of 2-60 KB,
/// every fourth with a 256 KiB attachment of random bytes (base64), LF
/// line ends as mbox files on disk have them, `From ` lines with dates
/// spread over a year, some body lines that need `>From ` quoting, and
/// Status/X-Status flags on some. Returns the message count.
fn write_mbox(path: &Path, mib: u64) -> usize {
    let mut out =
        std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("mbox"));
    let (mut rng, mut written, mut i) = (0x9e37_79b9_7f4a_7c15u64, 0u64, 0usize);
    let mut blob = vec![0u8; 256 * 1024];
    while written < mib << 20 {
        let size = 2_000 + (i * 7_919) % 58_000;
        let text = message(i, size, &mut rng);
        let text = String::from_utf8(text)
            .expect("ascii")
            .replace("\r\n", "\n");
        let (head, body) = text.split_once("\n\n").expect("header");
        let day = i % 365;
        let mut m = format!(
            "From s{}@example.net {} {} {:2} {:02}:{:02}:{:02} 2025\n{head}\n",
            i % 50,
            ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][day % 7],
            [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
            ][day / 31 % 12],
            day % 28 + 1,
            i % 24,
            i % 60,
            (i * 7) % 60
        );
        match i % 3 {
            0 => m.push_str("Status: RO\n"),
            1 => m.push_str("Status: RO\nX-Status: AF\n"),
            _ => {}
        }
        if i.is_multiple_of(4) {
            for b in blob.iter_mut() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                *b = rng as u8;
            }
            m.push_str(
                "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n",
            );
            m.push_str(body);
            m.push_str("\n--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n");
            m.push_str(&base64_lines(&blob).replace("\r\n", "\n"));
            m.push_str("--b--\n");
        } else {
            m.push('\n');
            m.push_str(body);
        }
        if i.is_multiple_of(50) {
            // A body line an mbox reader must not take for a separator.
            m.push_str(">From the desk of the treasurer\n");
        }
        m.push('\n');
        out.write_all(m.as_bytes()).expect("write");
        written += m.len() as u64;
        i += 1;
    }
    out.flush().expect("flush");
    i
}

/// Messages in an mbox file: lines beginning `From ` (mboxrd quotes the
/// others).
fn mbox_messages(path: &Path) -> usize {
    use std::io::BufRead;
    let mut r =
        std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path).expect("open"));
    let (mut line, mut n) = (Vec::new(), 0);
    while r.read_until(b'\n', &mut line).expect("read") > 0 {
        if line.starts_with(b"From ") {
            n += 1;
        }
        line.clear();
    }
    n
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|d| {
            d.flatten()
                .map(|e| e.metadata().map_or(0, |m| m.len()))
                .sum()
        })
        .unwrap_or(0)
}

/// Import of an mbox of about `mib` MiB into a new folder, then export of
/// the mailbox to mbox, each beside `cp` of the mbox file; then migration
/// from Dovecot where it can run.
pub(crate) fn data_bench(tmp: &Path, mib: u64) {
    let config = pop3_mailbox(tmp, "data", 0, 0);
    let data = config.data_dir.clone();
    let mbox = tmp.join("import.mbox");
    let start = Instant::now();
    let n = write_mbox(&mbox, mib);
    let size = std::fs::metadata(&mbox).expect("size").len();
    println!(
        "\nimport/export: wrote an mbox of {} MiB ({n} messages, a quarter with 256 KiB attachments) in {:.1} s",
        size >> 20,
        start.elapsed().as_secs_f64()
    );
    let pw = [("SEALMAIL_PASSWORD", "pw")];
    let cp = |from: &Path| {
        settle();
        let to = tmp.join("cp.copy");
        let start = Instant::now();
        std::fs::copy(from, &to).expect("cp");
        let took = start.elapsed();
        std::fs::remove_file(&to).expect("rm");
        took
    };
    let cp_in = cp(&mbox);
    settle();
    let import = sealmail(
        &data,
        &[
            "import",
            "ann@example.org",
            path(&mbox),
            "--folder",
            "Archive",
            "--create",
        ],
        &pw,
    );
    assert!(
        import.stdout.contains(&format!("imported {n}")),
        "import: {}",
        import.stdout
    );
    let rate = mb_per_s(size, import.took);
    // "adding the new messages to the search index... N in S s"
    let index = import
        .stderr
        .rsplit_once("search index... ")
        .and_then(|(_, t)| t.trim().strip_suffix(" s")?.rsplit_once(" in "))
        .and_then(|(_, s)| s.parse::<f64>().ok())
        .unwrap_or(0.0);
    let storing = (import.took.as_secs_f64() - index).max(1e-9);
    println!(
        "import: storing {:.1} s ({:.0} MB/s), then adding it to the full-text index {index:.1} s",
        storing,
        size as f64 / 1e6 / storing
    );
    println!(
        "import of {} MiB mbox: {:.1} s, {rate:.0} MB/s (goal >= 50: {}); cp of the file {:.2} s; peak memory {:.1} MiB (goal <= 100: {})",
        size >> 20,
        import.took.as_secs_f64(),
        ok(rate >= 50.0),
        cp_in.as_secs_f64(),
        import.peak_kib as f64 / 1024.0,
        ok(import.peak_kib <= 100 * 1024)
    );
    let out = tmp.join("export");
    settle();
    let export = sealmail(
        &data,
        &[
            "export",
            "ann@example.org",
            "--format",
            "mbox",
            "--output",
            path(&out),
        ],
        &pw,
    );
    let written = dir_size(&out);
    let archive = std::fs::read_dir(&out)
        .expect("export dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("Archive"))
        .expect("Archive in the export");
    let back = mbox_messages(&archive);
    assert_eq!(back, n, "messages exported");
    let rate = mb_per_s(written, export.took);
    let cp_out = cp(&archive);
    println!(
        "export to mbox, {} MiB written ({back} messages): {:.1} s, {rate:.0} MB/s (goal >= 100: {}); cp of the output {:.2} s; peak memory {:.1} MiB (goal <= 100: {})",
        written >> 20,
        export.took.as_secs_f64(),
        ok(rate >= 100.0),
        cp_out.as_secs_f64(),
        export.peak_kib as f64 / 1024.0,
        ok(export.peak_kib <= 100 * 1024)
    );
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_file(&mbox);
    migrate_bench(tmp, &data);
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Messages and folders on the Dovecot side of the migration.
const MIGRATE: (usize, [&str; 4]) = (1_000, ["INBOX", "Archive", "Sent", "Lists.rust"]);

/// `sealmail migrate` of 1,000 messages in four folders from Dovecot on
/// loopback, beside one client fetching the same messages (what reading
/// them alone costs).
fn migrate_bench(tmp: &Path, data: &Path) {
    let Some(dovecot) = crate::reference::Dovecot::start(&tmp.join("dovecot-migrate")) else {
        return;
    };
    {
        let control = sealmail::config::Config::load(data).expect("config");
        let mut control = sealmail::app::open_control(&control).expect("control");
        control
            .add_alias(
                "bob@example.org",
                Some("pw"),
                sealmail::store::keys::KdfParams::default(),
            )
            .expect("alias");
    }
    let (n, folders) = MIGRATE;
    let mut c = ImapClient::connect(dovecot.imap);
    c.cmd("LOGIN ann@example.org pw");
    for f in &folders[1..] {
        c.cmd(&format!("CREATE \"{f}\""));
    }
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut bytes = 0;
    for i in 0..n {
        let m =
            String::from_utf8(message(i, 2_000 + (i * 7_919) % 30_000, &mut rng)).expect("ascii");
        bytes += m.len();
        let flags = ["", "\\Seen", "\\Seen \\Answered", "\\Flagged $Important"][i % 4];
        c.cmd(&format!(
            "APPEND \"{}\" ({flags}) \"{:02}-Mar-2025 10:00:00 +0000\" {{{}+}}\r\n{m}",
            folders[i % folders.len()],
            i % 28 + 1,
            m.len()
        ));
    }
    let start = Instant::now();
    for f in folders {
        c.cmd(&format!("EXAMINE \"{f}\""));
        c.cmd("UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])");
    }
    let fetch = start.elapsed();
    c.cmd("LOGOUT");
    let from = format!("imap://ann%40example.org@{}", dovecot.imap);
    let run = sealmail(
        data,
        &["migrate", "bob@example.org", "--from", &from],
        &[
            ("SEALMAIL_PASSWORD", "pw"),
            ("SEALMAIL_SOURCE_PASSWORD", "pw"),
        ],
    );
    assert!(
        run.stdout.contains(&format!("copied {n} messages")),
        "migrate: {}",
        run.stdout
    );
    // Unlocking the mailbox (Argon2 at its default cost) is part of the
    // command; it is measured alone to show what the copy itself takes.
    let unlock = sealmail(
        data,
        &["mailbox", "status", "bob@example.org"],
        &[("SEALMAIL_PASSWORD", "pw")],
    );
    let copy = run.took.saturating_sub(unlock.took);
    println!(
        "migrate from Dovecot: {n} messages ({:.1} MB) in {} folders in {:.2} s, {:.0} messages/s ({:.0}/s without the {:.2} s of unlocking); one client fetching them all from Dovecot: {:.2} s, {:.0} messages/s; peak memory {:.1} MiB",
        bytes as f64 / 1e6,
        folders.len(),
        run.took.as_secs_f64(),
        n as f64 / run.took.as_secs_f64(),
        n as f64 / copy.as_secs_f64().max(1e-9),
        unlock.took.as_secs_f64(),
        fetch.as_secs_f64(),
        n as f64 / fetch.as_secs_f64(),
        run.peak_kib as f64 / 1024.0
    );
}
