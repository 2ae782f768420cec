//! Outbound TLS test peers: a test CA and certificates it signs (rcgen),
//! `tests/interop/tls_peers.py` (aiosmtpd MX hosts with or without
//! STARTTLS, an HTTPS policy server), forward aliases whose copies go to
//! them, and what they received.

use std::path::{Path, PathBuf};

use super::{Env, FAST, Peer, smtp_exchange, start_peer};

/// A CA for tests: its certificate file, and the issuer that signs with it.
pub fn test_ca(dir: &Path) -> (PathBuf, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sealmail test CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let file = dir.join("ca.pem");
    std::fs::write(&file, cert.pem()).unwrap();
    (file, rcgen::Issuer::new(params, key))
}

/// A key and a certificate for `names` in FILE.pem and FILE.key, signed
/// by `issuer` or by itself; `chain`'s certificates follow it in the file
/// (what the server presents). Returns the two paths.
pub fn certificate(
    dir: &Path,
    file: &str,
    names: &[&str],
    issuer: Option<&rcgen::Issuer<'static, rcgen::KeyPair>>,
    chain: Option<&Path>,
) -> (String, String) {
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = match issuer {
        Some(i) => params.signed_by(&key, i).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    let (c, k) = (
        dir.join(format!("{file}.pem")),
        dir.join(format!("{file}.key")),
    );
    let mut pem = cert.pem();
    if let Some(chain) = chain {
        pem.push_str(&std::fs::read_to_string(chain).unwrap());
    }
    std::fs::write(&c, pem).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c.display().to_string(), k.display().to_string())
}

/// Starts `tls_peers.py` with `config` (see the script).
pub fn start_tls_peers(dir: &Path, config: &serde_json::Value) -> Peer {
    let file = dir.join("peers.json");
    std::fs::write(&file, config.to_string()).unwrap();
    start_peer("tls_peers.py", &[file.display().to_string()])
}

/// Aliases `to-LOCAL@example.org`, each forwarding to `rcpt@DOMAIN`.
pub fn forwards(env: &Env, to: &[(&str, &str)]) {
    let mut control = env.control();
    for (local, domain) in to {
        let fwd = control
            .add_alias(&format!("to-{local}@example.org"), None, FAST)
            .unwrap()
            .address;
        control
            .set_forward(&fwd, &[format!("rcpt@{domain}")])
            .unwrap();
    }
}

/// The MX's reply to a message for `to-LOCAL@example.org` (its forward
/// relayed while the MX waits: 250 delivered, 451 waiting).
pub fn forward_reply(smtp: std::net::SocketAddr, local: &str) -> String {
    let r = smtp_exchange(
        std::net::TcpStream::connect(smtp).unwrap(),
        &[
            "EHLO client.example.net".to_string(),
            "MAIL FROM:<a@example.net>".into(),
            format!("RCPT TO:<to-{local}@example.org>"),
            "DATA".into(),
            format!("From: a@example.net\r\nSubject: to {local}\r\n\r\nhello\r\n."),
            "QUIT".into(),
        ],
    );
    r.get(5).cloned().unwrap_or_else(|| format!("{r:?}"))
}

/// Sends a message for each `(local, code, words)`: the forward's reply
/// must have that code and contain those words.
pub fn expect_forwards(smtp: std::net::SocketAddr, expect: &[(&str, u16, &str)]) {
    for (local, code, why) in expect {
        let got = forward_reply(smtp, local);
        assert!(
            got.starts_with(&code.to_string()) && got.contains(why),
            "{local}: {got}"
        );
    }
}

/// `(recipient, address)` pairs as `delivered` lists copies that came
/// over TLS.
pub fn over_tls(pairs: &[(&str, &str)]) -> Vec<(String, String, bool)> {
    let mut v: Vec<_> = pairs
        .iter()
        .map(|(r, ip)| (r.to_string(), ip.to_string(), true))
        .collect();
    v.sort();
    v
}

/// What the peers received, sorted: (first recipient, their address,
/// whether over TLS).
pub fn delivered(out: &Path) -> Vec<(String, String, bool)> {
    let mut got: Vec<(String, String, bool)> = std::fs::read_dir(out)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name()?.to_string_lossy().to_string();
            (name.starts_with("smtp-") && name.ends_with(".json")).then(|| {
                let v: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                (
                    v["rcpt_tos"][0].as_str().unwrap().to_string(),
                    v["ip"].as_str().unwrap().to_string(),
                    v["tls"].as_bool().unwrap(),
                )
            })
        })
        .collect();
    got.sort();
    got
}
