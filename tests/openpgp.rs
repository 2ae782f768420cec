//! OpenPGP with tools nobody here wrote: keys made by GnuPG, imported with
//! `sealmail alias pgp` (and refused with the reason when they cannot
//! serve), mail sent by smtplib, fetched by imaplib and decrypted by gpg
//! (`tests/interop/openpgp_mx.py`); the Web Key Directory's URL computed by
//! `gpg-wks-client`, fetched by curl over the loopback HTTPS listener and
//! read by gpg; and the canary: an owner's mailbox, opened with the
//! password, holds the message's words only inside the ciphertext.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::path::Path;
use std::process::Command;

use common::tls_peers::{certificate, test_ca};
use common::*;
use sealmail::store::{FetchWhat, Section, SectionKind, UidSet};

const CANARY: &str = "CanaryPgp4u";

/// gpg in batch mode on a home of its own, with no passphrases.
fn gpg(home: &Path) -> Command {
    let mut c = Command::new("gpg");
    c.arg("--homedir").arg(home).args([
        "--batch",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
    ]);
    c
}

fn gpg_ok(home: &Path, args: &[&str]) -> Vec<u8> {
    let out = gpg(home).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "gpg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// What `gpg-wks-client OPTION ADDRESS` prints (Debian installs it
/// outside PATH), trimmed.
fn wks_client(option: &str, address: &str) -> String {
    let out = Command::new("/usr/lib/gnupg/gpg-wks-client")
        .args([option, address])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The fingerprint gpg reads off a key file.
fn fingerprint(home: &Path, key: &Path) -> String {
    let out = gpg_ok(
        home,
        &["--with-colons", "--show-keys", key.to_str().unwrap()],
    );
    String::from_utf8(out)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("fpr:"))
        .map(|l| l.trim_matches(':').to_string())
        .unwrap()
}

#[test]
fn mail_is_encrypted_to_keys_gnupg_made_and_keys_are_published() {
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("gnupg");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let keygen = |uid: &str, algo: &str, usage: &str, expire: &str| {
        gpg_ok(&home, &["--quick-gen-key", uid, algo, usage, expire]);
    };
    keygen(
        "Bob <bob@example.org>",
        "future-default",
        "default",
        "never",
    );
    keygen("Carol <carol@example.org>", "rsa2048", "default", "never");
    keygen(
        "Mallory <mallory@evil.test>",
        "future-default",
        "default",
        "never",
    );
    // Expired a year ago: made with the clock turned back.
    gpg_ok(
        &home,
        &[
            "--faked-system-time",
            "20200101T000000",
            "--quick-gen-key",
            "Old <old@example.org>",
            "future-default",
            "default",
            "1d",
        ],
    );
    let export = |who: &str, secret: bool| {
        let file = work
            .path()
            .join(format!("{who}{}.asc", if secret { ".sec" } else { "" }));
        let what = if secret {
            "--export-secret-keys"
        } else {
            "--export"
        };
        std::fs::write(&file, gpg_ok(&home, &["--armor", what, who])).unwrap();
        file.display().to_string()
    };

    let (_sinks, smtp_port, sink) = start_sinks(work.path());
    let mut env = Env::new();
    let bob = env.alias("bob", "bob-password");
    let carol = env.alias("carol", "carol-password");
    env.alias("old", "old-password");
    env.control()
        .set_forward(&bob, &["dora@remote.test".to_string()])
        .unwrap();

    // Refusals, with the reason.
    let refused = |who: &str, file: &str, why: &str| {
        let (ok, out) = env.cli(&["alias", "pgp", who, "import", file]);
        assert!(!ok && out.contains(why), "{who} {file}: {out}");
    };
    refused(
        &bob,
        &export("mallory@evil.test", false),
        "no user ID names bob@example.org",
    );
    refused(&bob, &export("bob@example.org", true), "secret key");
    refused(
        "old@example.org",
        &export("old@example.org", false),
        "expired",
    );
    // Carol's RSA key signs only until it gets an encryption subkey.
    refused(
        &carol,
        &export("carol@example.org", false),
        "no encryption subkey",
    );
    let carol_fpr = fingerprint(&home, Path::new(&export("carol@example.org", false)));
    gpg_ok(
        &home,
        &["--quick-add-key", &carol_fpr, "rsa2048", "encr", "never"],
    );

    let bob_key = export("bob@example.org", false);
    let (ok, out) = env.cli(&[
        "alias",
        "pgp",
        &bob,
        "import",
        &bob_key,
        "--forward-encrypted",
        "on",
    ]);
    assert!(ok, "{out}");
    let bob_fpr = fingerprint(&home, Path::new(&bob_key));
    assert!(out.contains(&bob_fpr), "{out}");
    assert!(
        out.contains("forward         on") && out.contains("encrypt         on"),
        "{out}"
    );
    let (ok, out) = env.cli(&[
        "alias",
        "pgp",
        &carol,
        "import",
        &export("carol@example.org", false),
        "--protect-subject",
        "on",
        "--publish",
        "off",
    ]);
    assert!(ok && out.contains("protect subject on"), "{out}");
    let (ok, out) = env.cli(&["alias", "pgp", &bob, "show"]);
    assert!(
        ok && out.contains("user ID         Bob <bob@example.org>"),
        "{out}"
    );

    // The loopback HTTPS listener with a certificate from a test CA for
    // the WKD host; DNS for the forward's MX and the WKD host.
    let (ca, issuer) = test_ca(work.path());
    let (cert, key) = certificate(
        work.path(),
        "web",
        &["mail.example.org", "openpgpkey.example.org", "example.org"],
        Some(&issuer),
        None,
    );
    std::fs::copy(&cert, &env.config.tls_cert).unwrap();
    std::fs::copy(&key, &env.config.tls_key).unwrap();
    let zone = serde_json::json!({
        "remote.test": [["MX", "10 mx.remote.test"]],
        "mx.remote.test": [["A", "127.0.0.1"]],
        "openpgpkey.example.org": [["A", "127.0.0.1"]],
    });
    let (_dns, dns_port) = start_dns(work.path(), &zone);
    env.config.nameservers = vec![format!("127.0.0.1:{dns_port}").parse().unwrap()];
    env.config.relay.port = smtp_port;
    let server = env.serve();

    let out = venv_script(
        "openpgp_mx.py",
        &[
            server.smtp.port().to_string(),
            server.imaps.port().to_string(),
            home.display().to_string(),
            bob.clone(),
            "bob-password".into(),
            carol.clone(),
            "carol-password".into(),
            sink.display().to_string(),
            CANARY.into(),
        ],
    );
    assert!(out.contains(" 0 failed"), "{out}");

    // WKD: gpg-wks-client names the URL, curl fetches it from the HTTPS
    // listener, gpg reads the key it got.
    let url = wks_client("--print-wkd-url", &bob);
    assert!(
        url.starts_with("https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/"),
        "{url}"
    );
    let port = server.https.port();
    let curl = |url: &str| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "-",
                "-w",
                "\n%{http_code}",
                "--cacert",
                ca.to_str().unwrap(),
            ])
            .arg("--resolve")
            .arg(format!("openpgpkey.example.org:{port}:127.0.0.1"))
            .arg("--resolve")
            .arg(format!("example.org:{port}:127.0.0.1"))
            .arg({
                // https://HOST/PATH on the listener's port.
                let rest = url.strip_prefix("https://").unwrap();
                let (host, path) = rest.split_once('/').unwrap();
                format!("https://{host}:{port}/{path}")
            })
            .output()
            .unwrap();
        let mut body = out.stdout;
        let split = body.iter().rposition(|&b| b == b'\n').unwrap();
        let code = String::from_utf8(body.split_off(split)).unwrap();
        (code.trim().to_string(), body)
    };
    let (code, published) = curl(&url);
    assert_eq!(code, "200", "{url}");
    let fetched = work.path().join("fetched.key");
    std::fs::write(&fetched, &published).unwrap();
    assert_eq!(fingerprint(&home, &fetched), bob_fpr);
    // A fresh keyring takes it as gpg would from WKD.
    let fresh = work.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    std::fs::set_permissions(&fresh, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    gpg_ok(&fresh, &["--import", fetched.to_str().unwrap()]);
    let listed = String::from_utf8(gpg_ok(&fresh, &["--list-keys", "bob@example.org"])).unwrap();
    assert!(listed.contains(&bob_fpr), "{listed}");
    // The policy file, the direct method, and what is not published.
    let (code, _) =
        curl("https://openpgpkey.example.org/.well-known/openpgpkey/example.org/policy");
    assert_eq!(code, "200");
    let direct = url.replace(
        "openpgpkey.example.org/.well-known/openpgpkey/example.org/",
        "example.org/.well-known/openpgpkey/",
    );
    assert_eq!(curl(&direct).0, "200", "{direct}");
    let carol_url = wks_client("--print-wkd-url", &carol);
    assert_eq!(curl(&carol_url).0, "404", "carol did not publish");

    // `import --from-wkd` fetches the same key over the same path.
    let config = std::fs::read_to_string(&env.config.file)
        .unwrap()
        .replace(
            "nameservers = []",
            &format!("nameservers = [\"127.0.0.1:{dns_port}\"]"),
        )
        .replace("ca_file = \"\"", &format!("ca_file = \"{}\"", ca.display()))
        .replace("https_port = 443", &format!("https_port = {port}"));
    std::fs::write(&env.config.file, config).unwrap();
    let (ok, out) = env.cli(&[
        "alias",
        "pgp",
        &bob,
        "import",
        "--from-wkd",
        "--forward-encrypted",
        "on",
    ]);
    assert!(ok && out.contains(&bob_fpr), "{out}");

    // wkd-export writes the files another web server would serve, under
    // the hash gpg-wks-client computes.
    let hash = wks_client("--print-wkd-hash", &bob);
    let hash = hash.split_whitespace().next().unwrap().to_string();
    let tree = work.path().join("wkd");
    let (ok, out) = env.cli(&["alias", "pgp", &bob, "wkd-export", tree.to_str().unwrap()]);
    assert!(ok, "{out}");
    for file in [
        format!(".well-known/openpgpkey/example.org/hu/{hash}"),
        format!(".well-known/openpgpkey/hu/{hash}"),
    ] {
        assert_eq!(
            std::fs::read(tree.join(&file)).unwrap(),
            published,
            "{file}"
        );
    }
    assert!(
        tree.join(".well-known/openpgpkey/example.org/policy")
            .exists()
    );
    drop(server);

    // The canary: nowhere on disk in clear, and in no readable byte of
    // bob's mailbox opened with his password: not in any message the
    // store gives back, not in any cell of any table (the search index
    // included).
    assert!(files_containing(env.data(), CANARY.as_bytes()).is_empty());
    let (_b, store) = env.store();
    let (s, _) = unlock_imported(&store, &bob, "bob-password");
    let whole = FetchWhat {
        sections: vec![Section {
            path: vec![],
            kind: SectionKind::Whole,
        }],
        ..Default::default()
    };
    let fetched = block(s.fetch("INBOX", UidSet::all(), whole)).unwrap();
    assert_eq!(
        fetched.len(),
        4,
        "away, present, and the two already encrypted"
    );
    for m in &fetched {
        let (_, body) = &m.sections[0];
        assert!(body.len() > 200);
        assert!(!body.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()));
    }
    drop(s);
    let mut file = env.mailbox_file(&bob, "bob-password");
    let text = db_text(file.connection());
    assert!(text.contains("away-1"), "the outer Subject is readable");
    assert!(!text.contains(CANARY), "the canary in the opened mailbox");
}
