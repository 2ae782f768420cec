"""Python's imaplib drives a whole IMAP session against sealmail, over
STARTTLS and over implicit TLS, plus a raw check that a command pipelined
behind STARTTLS is discarded.

usage: imap_imaplib.py IMAP_PORT IMAPS_PORT SMTP_PORT ADDRESS PASSWORD
"""
import imaplib
import smtplib
import socket
import sys
import time

from checks import Checks, insecure_tls

imap_port, imaps_port, smtp_port = map(int, sys.argv[1:4])
address, password = sys.argv[4], sys.argv[5]
check = Checks("imap_imaplib")
# Python before 3.14 knows neither IDLE nor MOVE by name.
imaplib.Commands.setdefault("IDLE", ("SELECTED",))
imaplib.Commands.setdefault("MOVE", ("SELECTED",))


def message(subject, body="hello from imaplib"):
    return (
        f"From: Ann <ann@example.net>\r\nTo: {address}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@example.net>\r\n\r\n{body}\r\n"
    ).encode()


def session(m, label):
    typ, caps = m.capability()
    check(f"{label} capability", typ == "OK" and b"IDLE" in caps[0], caps)
    typ, data = m.login(address, password)
    check(f"{label} login", typ == "OK", data)
    typ, data = m.list()
    names = [line.decode().rsplit(" ", 1)[-1].strip('"') for line in data]
    check(f"{label} list", "INBOX" in names and "Sent" in names, names)
    typ, data = m.create(f"Work-{label}")
    check(f"{label} create", typ == "OK", data)
    typ, data = m.select("INBOX")
    check(f"{label} select", typ == "OK", data)
    before = int(data[0])
    t = imaplib.Time2Internaldate(time.time())
    typ, data = m.append("INBOX", "(\\Flagged)", t, message(f"appended {label}"))
    check(f"{label} append", typ == "OK" and b"APPENDUID" in data[0], data)
    typ, data = m.noop()
    typ, data = m.search(None, "SUBJECT", f'"appended {label}"')
    hits = data[0].split()
    check(f"{label} search", typ == "OK" and len(hits) == 1, data)
    seq = hits[0].decode()
    typ, data = m.fetch(seq, "(UID FLAGS RFC822.SIZE BODY.PEEK[])")
    body = data[0][1] if typ == "OK" and isinstance(data[0], tuple) else b""
    check(f"{label} fetch", body == message(f"appended {label}"), data)
    check(f"{label} fetch flags", b"\\Flagged" in data[0][0], data)
    typ, data = m.store(seq, "+FLAGS", "(\\Seen)")
    check(f"{label} store", typ == "OK" and b"\\Seen" in data[0], data)
    typ, data = m.uid("SEARCH", "SEEN")
    check(f"{label} uid search", typ == "OK" and len(data[0].split()) >= 1, data)
    typ, data = m.copy(seq, f"Work-{label}")
    check(f"{label} copy", typ == "OK", data)
    typ, data = m._simple_command("MOVE", seq, "Archive")
    check(f"{label} move", typ == "OK", data)
    typ, data = m.status(f"Work-{label}", "(MESSAGES)")
    check(f"{label} status", typ == "OK" and b"MESSAGES 1" in data[0], data)

    # IDLE: a message delivered over SMTP shows up at once.
    tag = m._command("IDLE")
    cont = m.readline()
    check(f"{label} idle continuation", cont.startswith(b"+"), cont)
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=20) as s:
        s.sendmail("ann@example.net", [address], message(f"pushed {label}"))
    line = m.readline()
    took = time.monotonic() - started
    check(f"{label} idle exists", line.endswith(b"EXISTS\r\n"), line)
    # Pushed, not polled: generous for a slow machine, far below any poll.
    check(f"{label} idle pushed within 5 s", took < 5.0, took)
    m.send(b"DONE\r\n")
    typ, data = m._command_complete("IDLE", tag)
    check(f"{label} idle done", typ == "OK", data)

    typ, data = m.store("1:*", "+FLAGS", "(\\Deleted)")
    typ, data = m.expunge()
    check(f"{label} expunge", typ == "OK" and len(data) >= before + 1, data)
    typ, data = m.select("INBOX")
    check(f"{label} empty after expunge", data[0] == b"0", data)
    typ, data = m.logout()
    check(f"{label} logout", typ == "BYE", data)


m = imaplib.IMAP4("127.0.0.1", imap_port)
check("plaintext login refused", "LOGINDISABLED" in m.capabilities, m.capabilities)
m.starttls(ssl_context=insecure_tls())
session(m, "starttls")
session(imaplib.IMAP4_SSL("127.0.0.1", imaps_port, ssl_context=insecure_tls()), "imaps")

# STARTTLS injection: a command sent in the same packet as STARTTLS must
# not run after the handshake.
raw = socket.create_connection(("127.0.0.1", imap_port), timeout=20)
raw.recv(4096)
raw.sendall(b"a STARTTLS\r\nb CAPABILITY\r\n")
reply = b""
while b"\r\n" not in reply:
    reply += raw.recv(4096)
check("starttls ok", reply.startswith(b"a OK"), reply)
tls = insecure_tls().wrap_socket(raw, server_hostname="localhost")
tls.sendall(b"c NOOP\r\n")
after = b""
while not after.endswith(b"\r\n") or b"c OK" not in after:
    chunk = tls.recv(4096)
    if not chunk:
        break
    after += chunk
check("pipelined command discarded", b"b OK" not in after and b"c OK" in after, after)
tls.close()

check.finish()
