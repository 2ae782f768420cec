"""Submission with smtplib over STARTTLS (587) and implicit TLS (465): the
messages reach an aiosmtpd MX found through the loopback DNS server's MX
record, and their DKIM signatures (rsa-sha256 and ed25519-sha256) verify
with dkimpy against the keys published in that DNS server. Also the
refusals: AUTH before STARTTLS, a sender or From the account does not own,
and broken AUTH input.

usage: submission.py PORT_587 PORT_465 USER PASSWORD NOT_OWNED RCPT DNS_PORT SINK_DIR
"""
import base64
import email.policy
import glob
import json
import os
import smtplib
import socket
import ssl
import sys
import time
from email.message import EmailMessage

import dkim
from dnslib import DNSRecord

from checks import Checks, insecure_tls

p587, p465, user, password, not_owned, rcpt, dns_port, sink = sys.argv[1:9]
c = Checks("submission")


def message(subject, sender=user):
    m = EmailMessage()
    m["From"] = sender
    m["To"] = rcpt
    m["Subject"] = subject
    m.set_content(f"{subject}: hello from smtplib\n.leading dot line\n")
    return m.as_bytes(policy=email.policy.SMTP)


def dns_txt(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    q = DNSRecord.question(name.rstrip("."), "TXT")
    answer = DNSRecord.parse(q.send("127.0.0.1", int(dns_port), timeout=timeout))
    return b"".join(b"".join(rr.rdata.data) for rr in answer.rr)


def received():
    files = sorted(glob.glob(os.path.join(sink, "smtp-*.json")))
    return [json.load(open(p)) for p in files]


# 1. 587: AUTH is not offered before STARTTLS and refused if tried.
with smtplib.SMTP("127.0.0.1", int(p587), timeout=30) as s:
    s.ehlo("client.test")
    c("no AUTH before STARTTLS", not s.has_extn("auth"), s.esmtp_features)
    code, text = s.docmd("AUTH", "PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()).decode())
    c("AUTH before STARTTLS refused", code in (530, 538), (code, text))
    code, _ = s.docmd("MAIL", f"FROM:<{user}>")
    c("MAIL before AUTH refused", code == 530, code)
    s.starttls(context=insecure_tls())
    s.ehlo("client.test")
    c("AUTH offered after STARTTLS", "PLAIN" in s.esmtp_features.get("auth", "").upper(), s.esmtp_features)
    s.login(user, password)
    refused = s.sendmail(user, [rcpt], message("over-starttls"))
    c("sent over STARTTLS", refused == {}, refused)
    # A sender the account does not own.
    try:
        s.sendmail(not_owned, [rcpt], message("not-mine", sender=not_owned))
        c("foreign envelope sender refused", False, "accepted")
    except smtplib.SMTPSenderRefused as e:
        c("foreign envelope sender refused", e.smtp_code == 553 and b"5.7.1" in e.smtp_error, e)
    s.rset()
    try:
        s.sendmail(user, [rcpt], message("from-not-mine", sender=not_owned))
        c("foreign From header refused", False, "accepted")
    except smtplib.SMTPDataError as e:
        c("foreign From header refused", e.smtp_code == 553 and b"5.7.1" in e.smtp_error, e)

# 2. 465: implicit TLS, AUTH LOGIN.
with smtplib.SMTP_SSL("127.0.0.1", int(p465), timeout=30, context=insecure_tls()) as s:
    s.ehlo("client.test")
    s.login(user, password)  # smtplib prefers CRAM-MD5, PLAIN, LOGIN in turn
    refused = s.sendmail(user, [rcpt], message("over-implicit-tls"))
    c("sent over implicit TLS", refused == {}, refused)

# 3. Broken AUTH input over TLS: clear errors, the session goes on.
raw = insecure_tls().wrap_socket(socket.create_connection(("127.0.0.1", int(p465)), timeout=30))
f = raw.makefile("rb")


def reply():
    lines = []
    while True:
        line = f.readline().decode()
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return line[:3], "".join(lines)


def cmd(line):
    raw.sendall(line.encode() + b"\r\n")
    return reply()


reply()
cmd("EHLO client.test")
code, text = cmd("AUTH PLAIN !!!notbase64")
c("broken base64 -> 501", code == "501", text)
b64 = lambda b: base64.b64encode(b).decode()
code, text = cmd("AUTH PLAIN " + b64(f"someone-else@x.test\0{user}\0{password}".encode()))
c("authzid != authcid -> 535", code == "535", text)
code, text = cmd("AUTH PLAIN " + b64(b"\0us\0er\0pw"))
c("NUL in the user name -> 501", code == "501", text)
code, text = cmd("AUTH LOGIN")
c("LOGIN asks for the user", code == "334", text)
code, text = cmd(b64(b"x" * 2_000))
c("2 KB user name -> 501", code == "501", text)
code, text = cmd("AUTH LOGIN")
code, text = cmd(b64(b"x" * 10_000))
c("10 KB user name line -> 500", code == "500", text)
code, text = cmd("AUTH PLAIN " + b64(b"\0" + b"y" * 10_000 + b"\0pw"))
c("10 KB AUTH line -> 500", code == "500", text)
code, text = cmd("AUTH CRAM-MD5")
c("unknown mechanism -> 504", code == "504", text)
code, text = cmd("AUTH PLAIN")
code2, text2 = cmd("*")
c("cancelled exchange -> 501", code == "334" and code2 == "501", (text, text2))
code, text = cmd("NOOP")
c("session survives bad input", code == "250", text)
raw.close()

# 4. The MX (via DNS) got both messages once, DKIM-signed; dkimpy verifies
# every signature against the loopback DNS.
deadline = time.time() + 30
while time.time() < deadline and len(received()) < 2:
    time.sleep(0.1)
got = received()
c("MX received two messages", len(got) == 2, len(got))
for m in got:
    data = m["data"].encode()
    subject = [l for l in data.split(b"\r\n") if l.startswith(b"Subject:")]
    c("envelope sender kept", m["mail_from"] == user, m["mail_from"])
    c("envelope recipient", m["rcpt_tos"] == [rcpt], m["rcpt_tos"])
    c("dot line intact", b"\r\n.leading dot line\r\n" in data, data[-200:])
    sigs = [l for l in data.split(b"\r\n") if l.lower().startswith(b"dkim-signature:")]
    c("two DKIM signatures", len(sigs) == 2, sigs)
    d = dkim.DKIM(data)
    for i in range(2):
        ok = d.verify(idx=i, dnsfunc=dns_txt)
        c(f"DKIM signature {i} verifies {subject}", ok, data[:600])
    algs = sorted(l.split(b"a=")[1].split(b";")[0] for l in sigs)
    c("rsa-sha256 and ed25519-sha256", algs == [b"ed25519-sha256", b"rsa-sha256"], algs)
    tampered = data.replace(b"hello from smtplib", b"hello from mallory")
    try:
        forged = dkim.DKIM(tampered).verify(idx=0, dnsfunc=dns_txt)
    except dkim.DKIMException:
        forged = False
    c("tampered body fails", not forged, "")

c.finish()
