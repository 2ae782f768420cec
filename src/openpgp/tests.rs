//! Table tests of key checks, PGP/MIME wrapping (decrypted again with the
//! generated secret key) and WKD names. Keys that need GnuPG to make
//! (expired ones) are tested in `tests/openpgp.rs`.
//!
//! Imports the parent module and rPGP's key generator.

use pgp::composed::{
    EncryptionCaps, KeyType, Message, SecretKeyParamsBuilder, SignedPublicKey, SignedSecretKey,
    SubkeyParamsBuilder,
};
use pgp::crypto::ecc_curve::ECCCurve;
use pgp::ser::Serialize;

use super::*;

/// A new Ed25519 key for `uid`, with a Curve25519 encryption subkey if
/// `encryption` (other modules' tests use it too).
pub(crate) fn keygen(uid: &str, encryption: bool) -> SignedSecretKey {
    let mut subkeys = Vec::new();
    if encryption {
        let mut enc = SubkeyParamsBuilder::default();
        enc.key_type(KeyType::ECDH(ECCCurve::Curve25519Legacy))
            .can_sign(false)
            .can_encrypt(EncryptionCaps::All)
            .can_authenticate(false);
        subkeys.push(enc.build().unwrap());
    }
    let mut params = SecretKeyParamsBuilder::default();
    params
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(true)
        .can_encrypt(EncryptionCaps::None)
        .primary_user_id(uid.into())
        .subkeys(subkeys);
    params.build().unwrap().generate(rand_core::OsRng).unwrap()
}

/// The binary public key of `secret`.
pub(crate) fn public(secret: &SignedSecretKey) -> Vec<u8> {
    SignedPublicKey::from(secret.clone()).to_bytes().unwrap()
}

/// The plaintext of an armored message `secret` opens.
pub(crate) fn decrypt(secret: &SignedSecretKey, armored: &[u8]) -> Vec<u8> {
    let (msg, _) = Message::from_armor(armored).unwrap();
    let mut plain = msg.decrypt(&"".into(), secret).unwrap();
    plain.as_data_vec().unwrap()
}

/// The armored block of a wrapped message.
pub(crate) fn armored(wrapped: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(wrapped.to_vec()).unwrap();
    let start = text.find("-----BEGIN PGP MESSAGE-----").unwrap();
    let end = text.find("-----END PGP MESSAGE-----").unwrap() + 25;
    text.get(start..end)
        .unwrap()
        .replace("\r\n", "\n")
        .into_bytes()
}

#[test]
fn keys_are_checked_for_address_encryption_and_secrecy() {
    let ann = keygen("Ann <ann@example.org>", true);
    let ok = check(&public(&ann), "Ann@Example.org", crate::util::now_unix()).unwrap();
    assert_eq!(ok.user_ids, vec!["Ann <ann@example.org>".to_string()]);
    assert_eq!(ok.fingerprint.len(), 40);
    assert_ne!(ok.encryption_key, ok.fingerprint);
    // Armored works as binary does.
    let armored = SignedPublicKey::from(ann.clone())
        .to_armored_bytes(Default::default())
        .unwrap();
    assert!(check(&armored, "ann@example.org", 0).is_ok());

    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            public(&ann),
            "bob@example.org",
            "no user ID names bob@example.org",
        ),
        (
            public(&keygen("Sign Only <s@example.org>", false)),
            "s@example.org",
            "no encryption subkey",
        ),
        (ann.to_bytes().unwrap(), "ann@example.org", "secret key"),
        (
            b"hello".to_vec(),
            "ann@example.org",
            "not an OpenPGP public key",
        ),
        (Vec::new(), "ann@example.org", "not an OpenPGP public key"),
        (
            vec![0x99; MAX_KEY_BYTES + 1],
            "ann@example.org",
            "larger than",
        ),
    ];
    for (input, address, why) in cases {
        let err = check(&input, address, 0).unwrap_err().to_string();
        assert!(err.contains(why), "{address}: {err}");
    }
    // A key bit flipped in its self-signature does not verify.
    let mut bytes = public(&ann);
    let at = bytes.len() - 10;
    bytes[at] ^= 0x55;
    assert!(check(&bytes, "ann@example.org", 0).is_err());
}

#[test]
fn wrapped_mail_decrypts_to_the_original_bytes_under_kept_headers() {
    let ann = keygen("ann@example.org", true);
    let key = parse(&public(&ann)).unwrap();
    let original = b"Received: from x by y; Mon, 1 Jan 2026 00:00:00 +0000\r\n\
        From: Bob <bob@example.net>\r\nTo: ann@example.org\r\n\
        Subject: =?utf-8?q?h=C3=A9llo?=\r\n  folded\r\nDate: Mon, 1 Jan 2026 00:00:00 +0000\r\n\
        Message-ID: <1@example.net>\r\nX-Secret: CANARY-HEADER\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\r\nCANARY-BODY\r\n";
    let Wrapped::Encrypted(out) = wrap(&key, original, false, 0).unwrap() else {
        panic!("not wrapped")
    };
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(!text.contains("CANARY"), "{text}");
    assert!(text.contains("Subject: =?utf-8?q?h=C3=A9llo?=\r\n  folded\r\n"));
    assert!(text.starts_with("Received: from x"));
    assert!(text.contains("protocol=\"application/pgp-encrypted\""));
    assert!(text.contains("\r\nVersion: 1\r\n"));
    assert_eq!(decrypt(&ann, &armored(&out)), original);
    // The wrapped message is itself left alone.
    assert!(matches!(
        wrap(&key, &out, false, 0).unwrap(),
        Wrapped::AlreadyEncrypted
    ));
}

#[test]
fn protected_headers_hide_the_subject_and_mark_the_inner_part() {
    let ann = keygen("ann@example.org", true);
    let key = parse(&public(&ann)).unwrap();
    let cases: [(&[u8], &[u8]); 3] = [
        (
            b"Subject: secret plans\r\nContent-Type: text/plain;\r\n charset=utf-8\r\n\r\nbody\r\n",
            b"Subject: secret plans\r\nContent-Type: text/plain;\r\n charset=utf-8; protected-headers=\"v1\"\r\n\r\nbody\r\n",
        ),
        (
            b"Subject: secret plans\r\n\r\nbody\r\n",
            b"Subject: secret plans\r\nContent-Type: text/plain; charset=us-ascii; protected-headers=\"v1\"\r\n\r\nbody\r\n",
        ),
        (
            b"Subject: secret plans\n",
            b"Subject: secret plans\nContent-Type: text/plain; charset=us-ascii; protected-headers=\"v1\"\n\n",
        ),
    ];
    for (original, inner) in cases {
        let Wrapped::Encrypted(out) = wrap(&key, original, true, 0).unwrap() else {
            panic!("not wrapped")
        };
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("Subject: ...\r\n"), "{text}");
        assert!(!text.contains("secret plans"));
        assert_eq!(
            String::from_utf8(decrypt(&ann, &armored(&out))).unwrap(),
            String::from_utf8(inner.to_vec()).unwrap()
        );
    }
}

#[test]
fn encrypted_mail_is_recognised() {
    let cases: [(&str, bool); 7] = [
        (
            "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=x\r\n\r\n",
            true,
        ),
        (
            "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\n",
            true,
        ),
        ("Content-Type: application/x-pkcs7-mime\r\n\r\n", true),
        (
            "Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n\r\n",
            false,
        ),
        ("Content-Type: multipart/signed; protocol=x\r\n\r\n", false),
        ("Subject: x\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n", false),
        ("", false),
    ];
    for (message, encrypted) in cases {
        assert_eq!(
            already_encrypted(message.as_bytes()),
            encrypted,
            "{message}"
        );
    }
}

#[test]
fn wkd_names_follow_the_draft() {
    // The example of draft-koch-openpgp-webkey-service §3.1.
    assert_eq!(wkd::hash("Joe.Doe"), "iy9q119eutrkn8s1mk4r39qejnbu3n5q");
    let [(host, path), (direct_host, direct_path)] = wkd::locations("Joe.Doe@Example.ORG").unwrap();
    assert_eq!(
        format!("https://{host}{path}"),
        "https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe"
    );
    assert_eq!(
        format!("https://{direct_host}{direct_path}"),
        "https://example.org/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe"
    );
    use wkd::Request as R;
    let h = "iy9q119eutrkn8s1mk4r39qejnbu3n5q";
    let cases: Vec<(&str, String, Option<R>)> = vec![
        (
            "openpgpkey.example.org",
            format!("/.well-known/openpgpkey/example.org/hu/{h}"),
            Some(R::Key {
                domain: "example.org".into(),
                hash: h.into(),
            }),
        ),
        (
            "example.org",
            format!("/.well-known/openpgpkey/hu/{h}"),
            Some(R::Key {
                domain: "example.org".into(),
                hash: h.into(),
            }),
        ),
        (
            "openpgpkey.example.org",
            "/.well-known/openpgpkey/example.org/policy".into(),
            Some(R::Policy {
                domain: "example.org".into(),
            }),
        ),
        (
            "example.org",
            "/.well-known/openpgpkey/policy".into(),
            Some(R::Policy {
                domain: "example.org".into(),
            }),
        ),
        // Another domain's directory, under this host.
        (
            "openpgpkey.example.org",
            format!("/.well-known/openpgpkey/evil.test/hu/{h}"),
            None,
        ),
        (
            "openpgpkey.example.org",
            "/.well-known/openpgpkey/example.org/hu/short".into(),
            None,
        ),
        (
            "openpgpkey.example.org",
            "/.well-known/openpgpkey/example.org/hu/".into(),
            None,
        ),
        ("x", "/.well-known/openpgpkey/../hu/x".into(), None),
        ("x", "/elsewhere".into(), None),
    ];
    for (host, path, want) in cases {
        assert_eq!(wkd::parse_path(host, &path), want, "{host}{path}");
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let ann = keygen("ann@example.org", true);
    let key = parse(&public(&ann)).unwrap();
    for input in [
        &b""[..],
        b"\n",
        b"\r\n\r\n",
        b":",
        b" continued\r\nno colon\r\n\r\n",
        b"Content-Type: \xff\xfe\r\n",
        b"Content-Type:\r\n\t\r\n",
    ] {
        for protect in [false, true] {
            let _ = wrap(&key, input, protect, 0).unwrap();
        }
        let _ = check(input, "a@b", 0);
    }
}

#[test]
fn a_wrapped_message_stays_within_the_stored_bound() {
    let ann = keygen("ann@example.org", true);
    let key = parse(&public(&ann)).unwrap();
    // Half kept header fields, half body: the outer header copies the half.
    let mut m = Vec::new();
    while m.len() < 200_000 {
        m.extend_from_slice(
            b"Received: from relay.example.net by mx.example.org with ESMTP id 0123456789\r\n",
        );
    }
    m.extend_from_slice(b"\r\n");
    m.resize(400_000, b'x');
    let Wrapped::Encrypted(out) = wrap(&key, &m, false, 0).unwrap() else {
        panic!("not wrapped")
    };
    // `store::mailbox::Limits::fits` takes up to 5/2 of the limit and
    // 64 KiB for encrypted mail.
    assert!(out.len() > m.len() * 3 / 2, "{}", out.len());
    assert!(out.len() <= m.len() * 5 / 2 + 65_536, "{}", out.len());
}
