"""Sends mail to sealmail's MX while rspamd (started by the test with a
rule that scores a test subject as spam) judges it: GTUBE (rspamd says
reject), a spammy subject (add header: Junk), and plain mail (no action),
with smtplib; then, with rspamd stopped, plain mail that must still be
delivered.

usage: mx_spam.py SMTP_PORT ANN MODE   (MODE: checking | down)
"""
import smtplib
import sys
from email.message import EmailMessage

from checks import Checks

port, ann, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
check = Checks(f"mx spam ({mode})")
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def send(subject, body):
    m = EmailMessage()
    m["From"] = "a@example.net"
    m["To"] = ann
    m["Subject"] = subject
    m["Message-ID"] = f"<{subject.replace(' ', '-')}@example.net>"
    m.set_content(body)
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
        s.ehlo("client.example.net")
        try:
            s.send_message(m, from_addr="a@example.net", to_addrs=[ann])
            return 250, ""
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()


if mode == "checking":
    code, text = send("gtube", f"{GTUBE}\n")
    check("GTUBE: 550 5.7.1", code == 550 and text.startswith("5.7.1"), (code, text))
    code, text = send("sealmail-spammy-test offer", "buy now\n")
    check("spammy subject (add header): taken", code == 250, (code, text))
    code, text = send("lunch", "lunch tomorrow at noon?\n")
    check("plain mail: taken", code == 250, (code, text))
else:
    code, text = send("while rspamd is down", "hello\n")
    check("rspamd down: taken all the same", code == 250, (code, text))
check.finish()
