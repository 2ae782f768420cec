//! Certificates from Pebble (Let's Encrypt's test ACME server, Debian's
//! `pebble`) on loopback, through both challenges: tls-alpn-01 answered on
//! the HTTPS port and http-01 on the HTTP port. The IMAPS port then
//! presents the issued certificate (its fingerprint read by `openssl
//! s_client`), a renewal swaps it under an open IMAP session, and an order
//! whose challenge fails leaves the certificate in force alone.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::imap::Client;
use common::*;

/// Pebble on its own ports with a CA and certificate of the test's making,
/// validating challenges on `http` and `https`, resolving names through
/// the loopback DNS server on `dns`. Returns it, its directory URL and
/// the CA file that signs its HTTPS certificate.
fn start_pebble(dir: &Path, dns: u16, http: u16, https: u16) -> (Daemon, String, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "test ACME CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    leaf.subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let ca_file = dir.join("pebble-ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    std::fs::write(dir.join("pebble-cert.pem"), leaf_cert.pem()).unwrap();
    std::fs::write(dir.join("pebble-key.pem"), leaf_key.serialize_pem()).unwrap();
    let (api, management) = (free_port(), free_port());
    let config = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{api}"),
        "managementListenAddress": format!("127.0.0.1:{management}"),
        "certificate": dir.join("pebble-cert.pem"),
        "privateKey": dir.join("pebble-key.pem"),
        "httpPort": http,
        "tlsPort": https,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false
    }});
    std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
    let log = std::fs::File::create(dir.join("pebble.log")).unwrap();
    let daemon = Daemon(
        Command::new("pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .arg("-dnsserver")
            .arg(format!("127.0.0.1:{dns}"))
            // Validate at once, accept every nonce, and check each order's
            // names again (a renewal proves control anew).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("pebble (installed by `make test`)"),
    );
    wait_for("pebble's ACME API", || {
        std::net::TcpStream::connect(("127.0.0.1", api)).is_ok()
    });
    (daemon, format!("https://127.0.0.1:{api}/dir"), ca_file)
}

/// A server process whose web and IMAPS listeners are on known ports and
/// whose DNS is the loopback server on `dns`: (env, http, https, imaps).
/// ACME stays off until [`enable_acme`].
fn acme_server(dns: u16) -> (Env, u16, u16, u16) {
    let mut env = Env::subprocess();
    let text = std::fs::read_to_string(&env.config.file).unwrap().replacen(
        "nameservers = []",
        &format!("nameservers = [\"127.0.0.1:{dns}\"]"),
        1,
    );
    std::fs::write(&env.config.file, text).unwrap();
    let ports = env.known_ports(&["http", "https", "imaps"]);
    (env, ports[0], ports[1], ports[2])
}

/// Puts `section` (an `[acme]` table) in place of the template's.
fn enable_acme(env: &mut Env, section: &str) -> String {
    let body = section.strip_prefix("[acme]\n").unwrap();
    let text =
        std::fs::read_to_string(&env.config.file)
            .unwrap()
            .replacen("enabled = false\n", body, 1);
    std::fs::write(&env.config.file, &text).unwrap();
    env.config = sealmail::config::Config::load(env.data()).unwrap();
    assert!(env.config.acme.is_some(), "acme is on");
    text
}

/// SHA-256 fingerprint (openssl's form) of the certificate `port`
/// presents to a client naming `name`, as `openssl s_client` reads it.
fn presented(port: u16, name: &str) -> String {
    let s_client = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", name])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    fingerprint_of(&s_client.stdout)
}

fn fingerprint_of(pem: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(pem).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The issued chain of a group, once it is on disk.
fn issued(env: &Env, first: &str) -> Vec<u8> {
    let file = env.data().join("tls/acme").join(format!("{first}.pem"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let pem = std::fs::read(&file).unwrap_or_default();
        if !pem.is_empty() {
            return pem;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no certificate for {first}; the server said:\n{}",
            std::fs::read_to_string(env.data().join("serve.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn zone(bad: &[&str]) -> serde_json::Value {
    let mut z = serde_json::Map::new();
    for name in [
        "mail.example.org",
        "mta-sts.example.org",
        "autoconfig.example.org",
        "autodiscover.example.org",
        "openpgpkey.example.org",
    ] {
        z.insert(name.into(), serde_json::json!([["A", "127.0.0.1"]]));
    }
    // Names that point where nothing answers: their challenges fail.
    for name in bad {
        z.insert((*name).into(), serde_json::json!([["A", "127.0.0.2"]]));
    }
    serde_json::Value::Object(z)
}

#[test]
fn tls_alpn_certificates_are_issued_renewed_and_survive_a_failed_order() {
    let work = tempfile::tempdir().unwrap();
    let (_dns, dns) = start_dns(work.path(), &zone(&["broken.example.org"]));
    let (mut env, http, https, imaps) = acme_server(dns);
    let (_pebble, directory, ca) = start_pebble(work.path(), dns, http, https);
    // renew_before exceeds the certificates' life: every round renews.
    let text = enable_acme(
        &mut env,
        &format!(
            "[acme]\nenabled = true\ndirectory = \"{directory}\"\nca_file = \"{}\"\ncontact = [\"postmaster@example.org\"]\nchallenge = \"tls-alpn-01\"\nrenew_before = \"100000d\"\ncheck_every = \"2s\"\n",
            ca.display()
        ),
    );
    let ann = env.alias("ann", "pw");
    let server = env.spawn_server(&[]);

    // Issued: IMAPS and HTTPS present it, to clients naming the server.
    let first = issued(&env, "mail.example.org");
    let fingerprint = fingerprint_of(&first);
    assert!(fingerprint.contains("Fingerprint="), "{fingerprint}");
    wait_for("IMAPS to present the issued certificate", || {
        presented(imaps, "mail.example.org") == fingerprint
    });
    let domain = issued(&env, "mta-sts.example.org");
    wait_for("HTTPS to present the domain's certificate", || {
        presented(https, "mta-sts.example.org") == fingerprint_of(&domain)
    });
    let key = env.data().join("tls/acme/mail.example.org.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(env.data().join("tls/acme/account.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // Renewed (every round: renew_before exceeds its life) without a
    // restart, while an IMAP session stays open.
    let mut imap = Client::login(env.config.listen.imap, &ann);
    wait_for("a renewal to be presented on IMAPS", || {
        let now = presented(imaps, "mail.example.org");
        now.contains("Fingerprint=") && now != fingerprint
    });
    let r = imap.cmd("n NOOP");
    assert!(r.last().unwrap().starts_with("n OK"), "{r:?}");
    drop(server);

    // Restarted wanting a name whose challenge fails: the order fails and
    // the certificate in force stays (loaded from tls/acme/).
    let in_force =
        fingerprint_of(&std::fs::read(env.data().join("tls/acme/mail.example.org.pem")).unwrap());
    let text = text.replace(
        "check_every = \"2s\"\n",
        "check_every = \"2s\"\nnames = [\"broken.example.org\"]\n",
    );
    std::fs::write(&env.config.file, &text).unwrap();
    let server = env.spawn_server(&[]);
    let log = env.data().join("serve.log");
    wait_for("the failed order in the log", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("ACME order failed")
    });
    assert_eq!(presented(imaps, "mail.example.org"), in_force);
    let names =
        std::fs::read_to_string(env.data().join("tls/acme/mail.example.org.names")).unwrap();
    assert!(!names.contains("broken"), "{names}");
    drop(server);
}

#[test]
fn http_01_certificates_are_issued() {
    let work = tempfile::tempdir().unwrap();
    let (_dns, dns) = start_dns(work.path(), &zone(&[]));
    let (mut env, http, https, imaps) = acme_server(dns);
    let (_pebble, directory, ca) = start_pebble(work.path(), dns, http, https);
    enable_acme(
        &mut env,
        &format!(
            "[acme]\nenabled = true\ndirectory = \"{directory}\"\nca_file = \"{}\"\nchallenge = \"http-01\"\n",
            ca.display()
        ),
    );
    let server = env.spawn_server(&[]);
    let pem = issued(&env, "mail.example.org");
    let fingerprint = fingerprint_of(&pem);
    wait_for("IMAPS to present the http-01 certificate", || {
        presented(imaps, "mail.example.org") == fingerprint
    });
    // The challenge tokens are gone once the order is done.
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!(
            "http://127.0.0.1:{http}/.well-known/acme-challenge/anything"
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
    drop(server);
}
