"""Forwarding, SRS and webhooks through sealmail's MX, with smtplib as the
sending MTA and sinks.py as the next hop.

usage: mx_forward.py SMTP_PORT SINK_DIR FWD_ADDR BOTH_ADDR SECRET_HEX
FWD_ADDR forwards to bob@far.test only; BOTH_ADDR has a mailbox, forwards
to carol@far.test and calls the sink's webhook.
"""
import glob
import hashlib
import hmac
import json
import os
import smtplib
import sys
import time
from email.message import EmailMessage

from checks import Checks

port, sink, fwd, both, secret = sys.argv[1:6]
secret = bytes.fromhex(secret)
c = Checks("mx_forward")


def set_mode(kind, m):
    with open(os.path.join(sink, f"{kind}_mode"), "w") as f:
        f.write(m)


def received(kind):
    files = sorted(glob.glob(os.path.join(sink, f"{kind}-*.json")),
                   key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0]))
    return [json.load(open(p)) for p in files]


def message(subject, body, sender="alice@origin.test", to=fwd):
    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m["Message-ID"] = f"<{subject}@origin.test>"
    m.set_content(body)
    return m.as_bytes()


def send(sender, rcpts, data):
    """The reply to the end of data (or to RCPT when all were refused)."""
    with smtplib.SMTP("127.0.0.1", int(port), timeout=60) as s:
        s.ehlo("origin.test")
        try:
            s.sendmail(sender, rcpts, data)
            return 250, ""
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()
        except smtplib.SMTPRecipientsRefused as e:
            code, text = list(e.recipients.values())[0]
            return code, text.decode()


# 1. A forward-only alias: relayed with an SRS sender, Received kept.
code, _ = send("alice@origin.test", [fwd], message("fwd1", "canary-forward-7f3a"))
c("forward accepted", code == 250, code)
got = received("smtp")
c("one copy at the next hop", len(got) == 1, got)
first = got[0] if got else {"mail_from": "", "rcpt_tos": [], "data": ""}
c("to the target", first["rcpt_tos"] == ["bob@far.test"], first["rcpt_tos"])
srs = first["mail_from"]
c("SRS0 sender at our domain",
  srs.startswith("SRS0=") and srs.endswith("=origin.test=alice@example.org"), srs)
c("trace header added", "Received: from origin.test ([127.0.0.1])\r\n\tby mail.example.org" in first["data"],
  first["data"][:300])
c("no Return-Path in a relayed copy", "Return-Path:" not in first["data"])
c("body intact", "canary-forward-7f3a" in first["data"])

# 2. The next hop fails temporarily: 451, mailbox and webhook served once.
set_mode("smtp", "tempfail")
retry = message("retry1", "second message", to=both)
code, text = send("alice@origin.test", [both], retry)
c("temporary forward failure answers 451", code == 451, (code, text))
hooks = received("http")
c("webhook called once", len(hooks) == 1, len(hooks))
if hooks:
    h = hooks[0]
    sig = h["headers"].get("Sealmail-Signature", "")
    t = sig.split(",")[0].removeprefix("t=")
    mac = hmac.new(secret, f"{t}.".encode() + h["body"].encode(), hashlib.sha256).hexdigest()
    c("signature verifies", sig == f"t={t},v1={mac}", sig)
    c("signature is fresh", abs(int(t) - time.time()) < 120, t)
    body = json.loads(h["body"])
    c("webhook JSON subject", body["headers"]["subject"] == "retry1", body["headers"])
    c("webhook JSON text", body["text"].strip() == "second message", body["text"])
    c("webhook JSON envelope", body["envelope"] == {"from": "alice@origin.test", "to": both},
      body["envelope"])
    c("webhook path", h["path"] == "/hook", h["path"])

# 3. The sending MTA retries the same message: only the forward is left.
set_mode("smtp", "accept")
code, text = send("alice@origin.test", [both], retry)
c("retry accepted", code == 250, (code, text))
got = received("smtp")
c("forward delivered on retry", len(got) == 2 and got[1]["rcpt_tos"] == ["carol@far.test"],
  [g["rcpt_tos"] for g in got])
c("webhook not called twice", len(received("http")) == 1, len(received("http")))

# 4. A bounce to the SRS address goes back to the original sender.
bounce = b"From: MAILER-DAEMON@far.test\r\nTo: " + srs.encode() + \
    b"\r\nSubject: bounce\r\n\r\nundeliverable\r\n"
code, text = send("", [srs], bounce)
c("bounce to SRS address accepted", code == 250, (code, text))
got = received("smtp")
c("bounce returned to the original sender",
  len(got) == 3 and got[2]["rcpt_tos"] == ["alice@origin.test"] and got[2]["mail_from"] in ("", "<>"),
  got[-1] if got else None)

# 5. A forged SRS address is an unknown user, not an open relay.
code, text = send("", ["SRS0=aaaaa=zz=victim.test=x@example.org"], bounce)
c("forged SRS refused", code == 550, (code, text))

# 6. The next hop refuses: the sending MTA is told (nothing else had it).
set_mode("smtp", "reject")
code, text = send("alice@origin.test", [fwd], message("fwd2", "refused"))
c("permanent forward failure answers 554", code == 554 and "5.4.0" in text, (code, text))

# 7. The webhook fails: 451 after in-session retries; the retry posts once
#    and does not forward or store a second copy.
set_mode("smtp", "accept")
set_mode("http", "tempfail")
hook = message("hookfail", "third", to=both)
code, text = send("alice@origin.test", [both], hook)
c("webhook failure answers 451", code == 451 and "Webhook" in text, (code, text))
attempts = int(open(os.path.join(sink, "http_attempts")).read())
c("webhook retried in session", attempts >= 1 + 3, attempts)
set_mode("http", "accept")
code, text = send("alice@origin.test", [both], hook)
c("webhook retry accepted", code == 250, (code, text))
got = received("smtp")
c("forward for hookfail once", sum("hookfail" in g["data"] for g in got) == 1,
  [g["rcpt_tos"] for g in got])
c("webhook for hookfail once",
  sum("hookfail" in json.loads(h["body"])["headers"]["subject"] for h in received("http")) == 1)

c.finish()
