"""Sends DKIM-signed (dkimpy), forged and unsigned mail to sealmail's MX,
whose SPF/DKIM/DMARC checks ask the test's loopback DNS server.

usage: mx_auth.py SMTP_PORT ALIAS KEY.pem
"""
import smtplib
import sys

import dkim

from checks import Checks

port, alias, key_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
key = open(key_file, "rb").read()
check = Checks("mx auth")


def message(sender, subject, body="hello\r\n"):
    return (f"From: {sender}\r\nTo: {alias}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n{body}").encode()


def signed(sender, subject, body="hello\r\n"):
    m = message(sender, subject, body)
    sig = dkim.sign(m, b"sel", b"good.test", key, include_headers=[b"from", b"to", b"subject", b"message-id"],
                    canonicalize=(b"relaxed", b"relaxed"))
    return sig + m


def send(sender, data):
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("good.test")
        try:
            s.sendmail(sender, [alias], data)
            return 250, b""
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error


code, _ = send("a@good.test", signed("a@good.test", "authpass"))
check("signed from an SPF-permitted host is accepted", code == 250)
forged = signed("a@good.test", "authforged").replace(b"hello", b"HELLO")
code, _ = send("a@good.test", forged)
check("altered body still accepted (SPF aligns)", code == 250)
code, text = send("x@strict.test", message("x@strict.test", "authreject"))
check("DMARC p=reject failure refused", code == 550 and text.startswith(b"5.7.1"), (code, text))
code, _ = send("x@lenient.test", message("x@lenient.test", "authquarantine"))
check("DMARC p=quarantine failure accepted (for Junk)", code == 250)
code, _ = send("y@nopolicy.test", message("y@nopolicy.test", "authnone"))
check("no records at all is accepted", code == 250)
# A relay that checked the message and vouches for it with an ARC set
# (dkimpy signs it with good.test's key, as the relay's domain).
relayed = (b"Authentication-Results: relay.good.test; spf=pass smtp.mailfrom=a@good.test\r\n"
           + message("a@good.test", "authrelayed"))
arc = dkim.arc_sign(relayed, b"sel", b"good.test", key, b"relay.good.test")
code, _ = send("a@good.test", b"".join(arc) + relayed)
check("an ARC-sealed message is accepted", code == 250 and len(arc) == 3, (code, arc))
claimed = (b"Authentication-Results: mail.example.org; dkim=pass header.d=bank.example; dmarc=pass\r\n"
           b"ARC-Authentication-Results: i=1; MAIL.example.org;\r\n\tdmarc=pass\r\n"
           b"Authentication-Results: relay.example.net; spf=pass smtp.mailfrom=y@nopolicy.test\r\n"
           + message("y@nopolicy.test", "authclaimed"))
code, _ = send("y@nopolicy.test", claimed)
check("results claiming this server are accepted (and removed)", code == 250)
check.finish()
