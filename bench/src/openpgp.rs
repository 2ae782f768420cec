//! OpenPGP on arrival: MX intake to owners whose mail is encrypted to
//! their key against owners without one, in the same server, alternating;
//! 4 KiB messages (Curve25519 and RSA-3072 keys) and 1 MiB ones.

use std::path::Path;
use std::time::Instant;

use pgp::composed::{
    EncryptionCaps, KeyType, SecretKeyParamsBuilder, SignedPublicKey, SubkeyParamsBuilder,
};
use pgp::crypto::ecc_curve::ECCCurve;
use pgp::ser::Serialize;

use crate::common::*;
use crate::mx::sender;

/// A public key for `address` with an encryption subkey of `kind`.
fn public_key(address: &str, rsa: bool) -> Vec<u8> {
    let (primary, encryption) = if rsa {
        (KeyType::Rsa(3072), KeyType::Rsa(3072))
    } else {
        (
            KeyType::Ed25519Legacy,
            KeyType::ECDH(ECCCurve::Curve25519Legacy),
        )
    };
    let mut enc = SubkeyParamsBuilder::default();
    enc.key_type(encryption)
        .can_sign(false)
        .can_encrypt(EncryptionCaps::All)
        .can_authenticate(false);
    let mut params = SecretKeyParamsBuilder::default();
    params
        .key_type(primary)
        .can_certify(true)
        .can_sign(true)
        .can_encrypt(EncryptionCaps::None)
        .primary_user_id(format!("<{address}>"))
        .subkeys(vec![enc.build().expect("subkey")]);
    let secret = params
        .build()
        .expect("params")
        .generate(rand_core::OsRng)
        .expect("key");
    SignedPublicKey::from(secret).to_bytes().expect("bytes")
}

pub(crate) fn openpgp_bench(tmp: &Path) {
    let config = ten_users(&tmp.join("openpgp"));
    {
        let mut control = sealmail::app::open_control(&config).expect("control");
        // Owners 0-4: no key; 5-8: Curve25519; 9: RSA-3072.
        for id in 5..10 {
            let address = format!("user{id}@example.org");
            let key = public_key(&address, id == 9);
            let checked = sealmail::openpgp::check(&key, &address, sealmail::util::now_unix())
                .expect("check");
            control
                .pgp_put(
                    &address,
                    &sealmail::store::PgpKey {
                        key: checked.bytes,
                        fingerprint: checked.fingerprint,
                        encrypt: true,
                        publish: true,
                        ..Default::default()
                    },
                )
                .expect("put");
        }
    }
    let rounds = 3;
    let results = with_server(config, |addr, _, _| {
        // Ten senders to owners `owners`, `per` messages of `size` each.
        let load = |owners: &[usize], size: usize, per: usize| {
            let t = Instant::now();
            std::thread::scope(|scope| {
                for id in 0..10 {
                    let rcpt = format!("user{}@example.org", owners[id % owners.len()]);
                    scope.spawn(move || sender(addr, "EHLO", &rcpt, id, per, size));
                }
            });
            (10 * per) as f64 / t.elapsed().as_secs_f64()
        };
        let mut out = Vec::new();
        for (what, with_key, size, per) in [
            ("4 KiB, Curve25519", &[5, 6, 7, 8][..], 4096, 100),
            ("4 KiB, RSA-3072", &[9][..], 4096, 100),
            ("1 MiB, Curve25519", &[5, 6, 7, 8][..], 1 << 20, 4),
        ] {
            let mut ratios = Vec::new();
            for _ in 0..rounds {
                let none = load(&[0, 1, 2, 3], size, per);
                let with = load(with_key, size, per);
                println!("  {what}: no key {none:.1} msgs/s, with key {with:.1} msgs/s");
                ratios.push(with / none);
            }
            ratios.sort_by(|a, b| a.total_cmp(b));
            out.push((what, size, ratios[ratios.len() / 2]));
        }
        out
    });
    for (what, size, median) in results {
        let goal = if size == 4096 {
            format!("goal >= 0.7: {}", ok(median >= 0.7))
        } else {
            "reported".to_string()
        };
        println!(
            "\nOpenPGP: MX intake to owners away, 10 senders, {what}, keys vs none, \
             {rounds} alternating rounds: median ratio {median:.2}; {goal}"
        );
    }
}
