"""OpenPGP on arrival, as senders and owners see it: smtplib sends to
sealmail's MX, imaplib fetches what was stored, GnuPG (with the owners'
secret keys in GNUPGHOME) decrypts it, Python's email package reads the
protected headers; an aiosmtpd sink (sinks.py) catches the encrypted
copy an alias forwards.

usage: openpgp_mx.py SMTP_PORT IMAPS_PORT GNUPGHOME BOB BOB_PW CAROL
                     CAROL_PW SINK_DIR CANARY

BOB's key has a clear Subject and encrypted forwards (to dora@remote.test);
CAROL's has protected headers. Mail to BOB is sent before his first login
(it waits sealed) and while he is logged in.
"""
import email
import email.policy
import glob
import imaplib
import json
import os
import smtplib
import subprocess
import sys
import time

from checks import Checks, insecure_tls

(smtp_port, imaps_port, gnupghome, bob, bob_pw, carol, carol_pw, sink,
 canary) = sys.argv[1:10]
smtp_port, imaps_port = int(smtp_port), int(imaps_port)
check = Checks("openpgp_mx")
TRACE = (b"received:", b"authentication-results:", b"return-path:")


def message(subject, extra=b"", body=None, mid=None, secret=True):
    body = body or (f"Dear owner,\r\nthe word is {canary}.\r\n"
                    ".dot-started line and trailing spaces   \r\n").encode()
    return (f"From: Ann <ann@remote.test>\r\nTo: someone@example.org\r\n"
            f"Subject: {subject}\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{mid or subject}-{time.time()}@remote.test>\r\n"
            + (f"X-Secret-Header: {canary}\r\n" if secret else "")).encode() + extra + b"\r\n" + body


def send(rcpt, raw):
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=120) as s:
        s.ehlo("client.remote.test")
        refused = s.sendmail("ann@remote.test", [rcpt], raw)
        check(f"250 for {rcpt}", not refused, refused)


def login(user, password):
    m = imaplib.IMAP4_SSL("127.0.0.1", imaps_port, ssl_context=insecure_tls(), timeout=120)
    m.login(user, password)
    return m


def fetch_subject(m, subject, timeout=90):
    """The stored bytes of the one INBOX message whose outer Subject or
    Message-ID mentions `subject`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        m.select("INBOX", readonly=True)
        typ, data = m.uid("SEARCH", None, "HEADER", "Message-ID", subject)
        uids = data[0].split() if typ == "OK" and data[0] else []
        if uids:
            typ, data = m.uid("FETCH", uids[-1], "(BODY.PEEK[])")
            return [d for d in data if isinstance(d, tuple)][0][1]
        time.sleep(0.3)
    check(f"{subject} arrived", False, "not in INBOX")
    return b""


def armored_part(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    if msg.get_content_type() != "multipart/encrypted":
        return None, msg
    parts = msg.get_payload()
    ok = (len(parts) == 2 and parts[0].get_content_type() == "application/pgp-encrypted"
          and b"Version: 1" in parts[0].get_payload(decode=True)
          and parts[1].get_content_type() == "application/octet-stream"
          and msg.get_param("protocol") == "application/pgp-encrypted")
    check("RFC 3156 structure", ok, raw[:600])
    return parts[1].get_payload(decode=True), msg


def decrypt(armored):
    out = subprocess.run(
        ["gpg", "--homedir", gnupghome, "--batch", "--pinentry-mode", "loopback",
         "--passphrase", "", "--decrypt"],
        input=armored, capture_output=True, timeout=120)
    check("gpg decrypts", out.returncode == 0, out.stderr.decode(errors="replace"))
    return out.stdout


def trace_then(decrypted, sent):
    """Whether `decrypted` is `sent` under trace fields the MX added."""
    if not decrypted.endswith(sent):
        return False
    prefix = decrypted[: len(decrypted) - len(sent)]
    fields = [f for f in prefix.split(b"\r\n") if f and not f[:1] in (b" ", b"\t")]
    return all(f.lower().startswith(TRACE) for f in fields)


def encrypted_roundtrip(m, subject, sent, owner):
    raw = fetch_subject(m, subject)
    check(f"{owner}: no canary outside the ciphertext", canary.encode() not in raw, raw[:600])
    armored, outer = armored_part(raw)
    check(f"{owner}: stored PGP/MIME", armored is not None, raw[:600])
    if armored is None:
        return None, outer
    plain = decrypt(armored)
    check(f"{owner}: decrypted bytes are what was sent (under trace fields)",
          trace_then(plain, sent), (plain[:300], sent[:300]))
    return plain, outer


# bob, away: the message is encrypted, then sealed, then imported at login.
away = message("away-1")
send(bob, away)
m = login(bob, bob_pw)
plain, outer = encrypted_roundtrip(m, "away-1", away, "bob away")
check("outer Subject kept in clear", outer.get("Subject") == "away-1", outer.get("Subject"))
for field in ("From", "To", "Date", "Message-ID"):
    check(f"outer {field} kept", outer.get(field) is not None, outer.items())
check("other fields only inside", outer.get("X-Secret-Header") is None, outer.items())

# Searching reads the outer header only.
m.select("INBOX", readonly=True)
typ, data = m.uid("SEARCH", None, "SUBJECT", "away-1")
check("SEARCH SUBJECT finds the outer Subject", typ == "OK" and len(data[0].split()) == 1, data)
typ, data = m.uid("SEARCH", None, "BODY", canary)
check("SEARCH BODY does not see inside", typ == "OK" and data[0] in (b"", None), data)

# bob, logged in: the same, without the seal.
present = message("present-1", body=b"Line\r\n" * 5000 + canary.encode() + b"\r\n")
send(bob, present)
encrypted_roundtrip(m, "present-1", present, "bob present")

# Already encrypted: kept as it came, not wrapped twice.
pgp_mime = message(
    "already-pgp",
    extra=b'MIME-Version: 1.0\r\nContent-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n boundary="b1"\r\n',
    body=b"--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n"
         b"--b1\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n"
         b"hF4DAAAAAAAAAAASAQdA\r\n-----END PGP MESSAGE-----\r\n\r\n--b1--\r\n",
    secret=False,
)
smime = message(
    "already-smime",
    extra=b'MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"\r\n'
          b"Content-Transfer-Encoding: base64\r\n",
    body=b"MIAGCSqGSIb3DQEHA6CAMIACAQAxggFAMIIBPAIBADAkMBcxFTATBgNVBAMTDGV4YW1wbGUu\r\n",
    secret=False,
)
for subject, sent in (("already-pgp", pgp_mime), ("already-smime", smime)):
    send(bob, sent)
    raw = fetch_subject(m, subject)
    check(f"{subject}: stored as it came", trace_then(raw, sent), raw[:400])
    check(f"{subject}: one OpenPGP block", raw.count(b"BEGIN PGP MESSAGE") <= 1, raw[:400])
m.logout()

# The forwarded copy left encrypted too.
deadline = time.time() + 90
copies = []
while time.time() < deadline and not copies:
    for p in sorted(glob.glob(os.path.join(sink, "smtp-*.json"))):
        with open(p) as f:
            got = json.load(f)
        if "away-1" in got["data"] and got["rcpt_tos"] == ["dora@remote.test"]:
            copies.append(got)
    time.sleep(0.2)
check("the forward arrived", len(copies) == 1, copies)
if copies:
    raw = copies[0]["data"].encode()
    check("forward: no canary in clear", canary.encode() not in raw, raw[:400])
    armored, _ = armored_part(raw)
    if armored is not None:
        check("forward: decrypts to the message",
              trace_then(decrypt(armored).replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"),
                         away), "")

# carol: protected headers, as Thunderbird writes and reads them.
m = login(carol, carol_pw)
secret = message("secret plans " + canary[:4], mid="carol-1")
send(carol, secret)
raw = b""
deadline = time.time() + 90
while time.time() < deadline and not raw:
    m.select("INBOX", readonly=True)
    typ, data = m.uid("SEARCH", None, "ALL")
    if data[0]:
        typ, data = m.uid("FETCH", data[0].split()[-1], "(BODY.PEEK[])")
        raw = [d for d in data if isinstance(d, tuple)][0][1]
    else:
        time.sleep(0.3)
armored, outer = armored_part(raw)
check("protected: outer Subject is ...", outer.get("Subject") == "...", outer.get("Subject"))
check("protected: the Subject is not in clear", b"secret plans" not in raw, raw[:400])
if armored is not None:
    inner = decrypt(armored)
    part = email.message_from_bytes(inner, policy=email.policy.default)
    check("protected: inner Content-Type marked v1",
          part.get_param("protected-headers") == "v1", part.get("Content-Type"))
    check("protected: inner Subject is the real one",
          part["Subject"] == "secret plans " + canary[:4], part["Subject"])
    check("protected: the body is intact",
          inner.split(b"\r\n\r\n", 1)[1] == secret.split(b"\r\n\r\n", 1)[1], inner[-200:])
m.logout()

check.finish()
