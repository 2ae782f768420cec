"""Sieve at delivery, as senders and owners see it: smtplib sends to
sealmail's MX, imaplib reads what was filed where (with the flags the
script set), an aiosmtpd sink (sinks.py) catches what the server sent
(vacation replies, DKIM-verified by dkimpy against the loopback DNS
server; redirects with their SRS sender; rejection notices).

usage: sieve_mx.py SMTP_PORT IMAPS_PORT OWNER PASSWORD OTHER LOOPER
                   DNS_PORT SINK_DIR PHASE

PHASE "away": the owner has never logged in (everything is sealed);
"import": the owner logs in and the sealed mail is filed; "present": the
owner is logged in while mail arrives.
"""
import glob
import imaplib
import json
import os
import smtplib
import ssl
import sys
import time

import dkim
from dnslib import DNSRecord

(smtp_port, imaps_port, owner, password, other, looper, dns_port, sink,
 phase) = sys.argv[1:10]
smtp_port, imaps_port = int(smtp_port), int(imaps_port)
passed = failed = 0


def check(what, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}: {detail!r}")


def send(subject, sender="ann@remote.test", rcpts=None, extra="", body="Hello."):
    rcpts = rcpts or [owner]
    msg = (f"From: Ann <{sender or 'mailer-daemon@remote.test'}>\r\nTo: {owner}\r\n"
           f"Subject: {subject}\r\nMessage-ID: <{subject}-{time.time()}@remote.test>\r\n"
           f"{extra}\r\n{body}\r\n")
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=120) as s:
        s.ehlo("client.remote.test")
        try:
            refused = s.sendmail(sender, rcpts, msg.encode())
            return 250, refused
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()


def received():
    out = []
    for p in sorted(glob.glob(os.path.join(sink, "smtp-*.json"))):
        with open(p) as f:
            out.append(json.load(f))
    return out


def wait_sink(pred, what, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [m for m in received() if pred(m)]
        if found:
            return found
        time.sleep(0.2)
    check(what, False, "nothing arrived")
    return []


def dns_txt(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    q = DNSRecord.question(name.rstrip("."), "TXT")
    answer = DNSRecord.parse(q.send("127.0.0.1", int(dns_port), timeout=timeout))
    return b"".join(b"".join(rr.rdata.data) for rr in answer.rr)


def imap():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    m = imaplib.IMAP4_SSL("127.0.0.1", imaps_port, ssl_context=ctx, timeout=120)
    m.login(owner, password)
    return m


def subjects(m, folder):
    """Subject -> flags of every message in folder."""
    typ, count = m.select(f'"{folder}"', readonly=True)
    if typ != "OK":
        return None
    if int(count[0]) == 0:
        return {}
    typ, data = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    out = {}
    if typ != "OK" or data == [None]:
        return out
    for item in data:
        if isinstance(item, tuple):
            meta, header = item
            subject = header.decode().split(":", 1)[1].strip()
            flags = meta.decode().split("FLAGS (", 1)[1].split(")", 1)[0].split()
            # \Recent is the session's, not the script's.
            out.setdefault(subject, []).append(sorted(f for f in flags if f != "\\Recent"))
    return out


def filed_once(listing, subject, flags=None):
    got = (listing or {}).get(subject, [])
    if flags is None:
        return len(got) == 1
    return got == [sorted(flags)]


if phase == "away":
    for subject in ["to-work", "to-new", "to-missing", "discard-me", "keep-me"]:
        code, _ = send(subject)
        check(f"{subject}: 250", code == 250, code)
    code, why = send("ereject-me")
    check("ereject: 550 with the script's reason", code == 550 and "no thanks" in why, (code, why))

    # reject with a second recipient who has no script: accepted, and the
    # sender gets a notice.
    code, refused = send("reject-me", rcpts=[owner, other])
    check("reject among two: 250", code == 250 and not refused, (code, refused))
    notices = wait_sink(lambda m: "reject-me" in m["data"] and "disposition-notification" in m["data"],
                        "rejection notice")
    if notices:
        n = notices[0]
        check("notice to the sender, from <>", n["rcpt_tos"] == ["ann@remote.test"]
              and n["mail_from"] in ("", "<>"), (n["rcpt_tos"], n["mail_from"]))
        check("notice carries the reason", "not wanted here" in n["data"], n["data"][:400])

    # redirect: relayed with an SRS sender; not kept.
    code, _ = send("redirect-me")
    check("redirect: 250", code == 250, code)
    red = wait_sink(lambda m: "Subject: redirect-me" in m["data"] and m["rcpt_tos"] == ["carol@remote.test"],
                    "redirected copy")
    if red:
        check("redirect's sender is SRS at our domain",
              red[0]["mail_from"].upper().startswith("SRS0") and red[0]["mail_from"].endswith("@example.org"),
              red[0]["mail_from"])

    # vacation: one reply per sender; none to lists, bulk, automatic mail,
    # the null sender.
    code, _ = send("vacation-1", sender="dora@remote.test")
    check("vacation-1: 250", code == 250, code)
    replies = wait_sink(lambda m: m["rcpt_tos"] == ["dora@remote.test"], "vacation reply")
    if replies:
        r = replies[0]
        data = r["data"].encode()
        check("reply from <>", r["mail_from"] in ("", "<>"), r["mail_from"])
        check("reply is auto-replied", b"Auto-Submitted: auto-replied" in data, data[:300])
        check("reply's subject", b"Subject: Away until Monday" in data, data[:300])
        check("reply DKIM-verifies", dkim.verify(data, dnsfunc=dns_txt), data[:300])
    for subject, extra, sender in [
        ("vacation-2", "", "dora@remote.test"),
        ("vacation-list", "List-Id: <news.remote.test>\r\n", "erin@remote.test"),
        ("vacation-bulk", "Precedence: bulk\r\n", "fred@remote.test"),
        ("vacation-auto", "Auto-Submitted: auto-replied\r\n", "gina@remote.test"),
        ("vacation-bounce", "", ""),
    ]:
        code, _ = send(subject, sender=sender, extra=extra)
        check(f"{subject}: 250", code == 250, code)
    # A message sent after them all: once its reply is in, theirs would be.
    send("vacation-last", sender="hank@remote.test")
    wait_sink(lambda m: m["rcpt_tos"] == ["hank@remote.test"], "last vacation reply")
    time.sleep(1)
    to = [tuple(m["rcpt_tos"]) for m in received() if "auto-replied" in m["data"]
          and "disposition-notification" not in m["data"]]
    check("exactly one reply to dora, hank; none to the others",
          sorted(to) == [("dora@remote.test",), ("hank@remote.test",)], to)

    # A script that recurses through include: delivered to INBOX.
    code, _ = send("loop-me", rcpts=[looper])
    check("looping script: 250", code == 250, code)

elif phase == "import":
    m = imap()
    # The sealed mail is imported in the background after the first login.
    deadline = time.time() + 120
    while time.time() < deadline and not (subjects(m, "Work") and subjects(m, "New/Sub")
                                          and "vacation-last" in (subjects(m, "INBOX") or {})):
        time.sleep(0.2)
    work = subjects(m, "Work")
    check("fileinto an existing folder, with flags, once",
          filed_once(work, "to-work", ["\\Flagged", "$Work"]), work)
    new = subjects(m, "New/Sub")
    check("fileinto :create made the folder", filed_once(new, "to-new", ["\\Seen"]), new)
    inbox = subjects(m, "INBOX")
    check("a missing folder without :create: INBOX", filed_once(inbox, "to-missing"), inbox)
    check("keep: INBOX", filed_once(inbox, "keep-me"), inbox)
    for gone in ["discard-me", "ereject-me", "reject-me", "redirect-me"]:
        check(f"{gone} not stored", gone not in (inbox or {}), inbox)
    check("vacation: the message itself kept", filed_once(inbox, "vacation-1"), inbox)
    m.logout()

elif phase == "present":
    m = imap()
    for subject in ["to-work", "to-fresh"]:
        code, _ = send(f"{subject}-live")
        check(f"{subject}-live: 250", code == 250, code)
    m.noop()
    work = subjects(m, "Work")
    check("logged in: fileinto with flags", filed_once(work, "to-work-live", ["\\Flagged", "$Work"]), work)
    fresh = subjects(m, "Fresh")
    check("logged in: fileinto :create", filed_once(fresh, "to-fresh-live"), fresh)
    m.logout()

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
