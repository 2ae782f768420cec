"""Hostile input to sealmail's submission ports (587 STARTTLS, 465 implicit
TLS), as the MX gets it, but from clients that may have logged in: long
lines before and after AUTH, controls and non-ASCII in parameters, 10,000
pipelined RCPTs, a million header lines, an oversized message, slowloris
before TLS, in the TLS handshake and in DATA, many sockets from one
address, and password spraying across aliases (growing delays, then a ban
of the address; many addresses against one account slow down addresses
the account does not know, but never lock its owner out).
Meanwhile a logged-in client keeps submitting.

usage: submission_bad_input.py PORT_587 PORT_465 DEADLINE_587 DEADLINE_465
       USER PASSWORD VICTIM VICTIM_PASSWORD
Two servers with the same aliases: the first pair of ports has generous
deadlines, for the volume checks (64 MB lines, 100 MB messages), which must
depend on what the server answers, not on how fast this machine is; the
second runs with a 2 s command timeout and a 3 s data timeout, for the
checks about deadlines, sockets and password spraying. The login throttle
is the default: 250 ms doubling, a ban after 10 failures per address;
after 20 failures on an account, unknown addresses take turns.
"""
import base64
import smtplib
import socket
import ssl
import sys
import time

from checks import Checks, KeepSending, LineClient, closed, insecure_tls, trickle

p587, p465, d587, d465 = (int(a) for a in sys.argv[1:5])
user, password, victim, victim_password = sys.argv[5:9]
c = Checks("submission bad input")
T0 = time.time()
MB = 1 << 20
RCPT = "carol@remote.test"


def plain(u, p):
    return base64.b64encode(f"\0{u}\0{p}".encode())


def connect(port=p465, src="127.0.0.1", tls=True):
    """A raw line client; on 465 inside TLS. Returns it and the greeting."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(src, 0))
    if tls:
        s = insecure_tls().wrap_socket(s, server_hostname="localhost")
    cl = LineClient(s)
    return cl, cl.line()


def logged_in(src="127.0.0.1", port=p465):
    cl, g = connect(port, src=src)
    cl.send(b"EHLO bad.test\r\n")
    cl.reply()
    reply = cl.cmd(b"AUTH PLAIN " + plain(user, password) + b"\r\n")
    c("login", reply.startswith(b"235"), reply)
    return cl




def good_submission(tag):
    ctx = insecure_tls()
    with smtplib.SMTP_SSL("127.0.0.1", p465, timeout=30, context=ctx,
                          source_address=("127.0.0.3", 0)) as s:
        s.login(user, password)
        s.sendmail(user, [RCPT], f"From: {user}\r\nSubject: {tag}\r\n\r\nfine\r\n".encode())
    return True


good = KeepSending(good_submission)

# Long lines, before TLS on 587 and after AUTH on 465.
cl, g = connect(p587, tls=False)
c("587 greeting", g.startswith(b"220 "), g)
c("64 KB line before TLS", cl.cmd(b"NOOP " + b"x" * (64 * 1024) + b"\r\n").startswith(b"500 5.5.2"))
c("usable after", cl.cmd(b"NOOP\r\n").startswith(b"250"))
cl.sock.close()
cl = logged_in()
c("64 KB line after AUTH", cl.cmd(b"NOOP " + b"x" * (64 * 1024) + b"\r\n").startswith(b"500 5.5.2"))
chunk = b"x" * MB
for _ in range(64):
    cl.sock.sendall(chunk)
reply = cl.cmd(b"\r\n")
c("64 MB line refused", reply.startswith(b"500 5.5.2"), reply)
c("usable after 64 MB", cl.cmd(b"NOOP\r\n").startswith(b"250"))
cl.sock.close()
cl = logged_in(port=d465)
t0 = time.time()
try:
    for _ in range(1024):
        cl.sock.sendall(chunk)
    reply = cl.line()
except (BrokenPipeError, ConnectionResetError, EOFError, ssl.SSLError, socket.timeout):
    reply = b"closed"
c("1 GB line cut off", reply in (b"421 4.4.2 Timeout; closing connection", b"closed"), reply)
c("1 GB line cut off in time", time.time() - t0 < 15, time.time() - t0)
cl.sock.close()
print(f"long lines done at {time.time() - T0:.1f} s")

# Controls and non-ASCII in parameters, logged in.
cl = logged_in()
c("NUL in MAIL", cl.cmd(f"MAIL FROM:<{user}\x00x>\r\n".encode()).startswith(b"501"))
c("bare CR joins no commands",
  cl.cmd(f"MAIL FROM:<{user}>\rRCPT TO:<{RCPT}>\r\n".encode()).startswith(b"501"))
c("non-ASCII without SMTPUTF8",
  cl.cmd("MAIL FROM:<jöran@example.org>\r\n".encode()).startswith(b"553 5.6.7"))
c("invalid UTF-8", cl.cmd(b"MAIL FROM:<\xff\xfe@example.org>\r\n").startswith(b"501"))
c("NUL in RCPT after a good MAIL",
  cl.cmd(f"MAIL FROM:<{user}>\r\n".encode()).startswith(b"250")
  and cl.cmd(b"RCPT TO:<a\x00b@remote.test>\r\n").startswith(b"501"))
c("RSET", cl.cmd(b"RSET\r\n").startswith(b"250"))

# 10,000 pipelined RCPTs: the first 100 taken, the rest told to wait.
cl.cmd(f"MAIL FROM:<{user}>\r\n".encode())
replies = []
for start in range(0, 10_000, 500):
    # Pipelined in groups (one TLS socket is not written and read from
    # two threads at once).
    cl.sock.sendall(b"".join(b"RCPT TO:<u%d@remote.test>\r\n" % i
                             for i in range(start, start + 500)))
    replies += [cl.line() for _ in range(500)]
ok = sum(r.startswith(b"250") for r in replies)
told = sum(r.startswith(b"452 4.5.3") for r in replies)
c("RCPT flood bounded", ok == 100 and told == 9_900, (ok, told, replies[-1:]))
c("usable after the flood", cl.cmd(b"RSET\r\n").startswith(b"250"))

# A million header lines, and a message over the size limit.
cl.cmd(f"MAIL FROM:<{user}>\r\n".encode())
c("rcpt", cl.cmd(f"RCPT TO:<{RCPT}>\r\n".encode()).startswith(b"250"))
c("data", cl.cmd(b"DATA\r\n").startswith(b"354"))
cl.sock.sendall(f"From: {user}\r\n".encode())
lines = b"X-H: v\r\n" * 100_000
for _ in range(10):
    cl.sock.sendall(lines)
reply = cl.cmd(b"\r\nbody\r\n.\r\n")
c("million header lines refused", reply.startswith(b"552 5.3.4"), reply)
cl.cmd(f"MAIL FROM:<{user}>\r\n".encode())
cl.cmd(f"RCPT TO:<{RCPT}>\r\n".encode())
cl.cmd(b"DATA\r\n")
for _ in range(100):
    cl.sock.sendall(b"y" * 1000 + b"\r\n" + b"z" * (MB - 1002))
reply = cl.cmd(b"\r\n.\r\n")
c("100 MB message refused", reply.startswith(b"552 5.3.4"), reply)
c("usable after", cl.cmd(b"NOOP\r\n").startswith(b"250"))
cl.sock.close()
print(f"floods done at {time.time() - T0:.1f} s")
# Slowloris: a byte every half second gets cut off by the deadline.
cl, _ = connect(d587, tls=False)
spent = trickle(cl, b"EHLO and more and more and more", 8)
c("slow command before TLS cut", spent < 6, spent)

cl = logged_in(port=d465)
cl.cmd(f"MAIL FROM:<{user}>\r\n".encode())
cl.cmd(f"RCPT TO:<{RCPT}>\r\n".encode())
cl.cmd(b"DATA\r\n")
spent = trickle(cl, f"From: {user}\r\nSubject: slow\r\n\r\n".encode() + b"z" * 40, 10)
c("slow DATA cut", spent < 7, spent)

raw = socket.create_connection(("127.0.0.1", d465), timeout=30)
raw.sendall(b"\x16\x03\x01\x02\x00")  # a ClientHello header, then nothing
t0 = time.time()
c("stalled implicit TLS handshake cut", closed(LineClient(raw), 10) and time.time() - t0 < 6,
  time.time() - t0)

cl, _ = connect(d587, tls=False)
c("starttls", cl.cmd(b"EHLO x\r\n") and cl.reply() and cl.cmd(b"STARTTLS\r\n").startswith(b"220"))
cl.sock.sendall(b"\x16\x03\x01\x02\x00")
t0 = time.time()
c("stalled STARTTLS handshake cut", closed(cl, 10) and time.time() - t0 < 6, time.time() - t0)

cl = logged_in(port=d465)
t0 = time.time()
c("silent logged-in client cut", closed(cl, 10) and time.time() - t0 < 6, time.time() - t0)
print(f"slowloris done at {time.time() - T0:.1f} s")

# Many sockets from one address: the per-address cap holds on 587 too.
socks, most = [], 0
for i in range(200):
    s = socket.create_connection(("127.0.0.1", d587), timeout=30, source_address=("127.0.0.4", 0))
    socks.append(s)
    try:
        code = LineClient(s).line()[:3]
    except (EOFError, ConnectionResetError):
        code = b"EOF"
    if code == b"220":
        most += 1
c("per-address cap", 0 < most <= 50, most)
c("other address unaffected", connect(d465, src="127.0.0.5")[1].startswith(b"220"))
for s in socks:
    s.close()


# Password spraying: one address tries one password on many aliases.
def try_auth(src, u, p, wait=True):
    cl, _ = connect(d465, src=src)
    cl.send(b"EHLO spray.test\r\n")
    cl.reply()
    cl.send(b"AUTH PLAIN " + plain(u, p) + b"\r\n")
    if not wait:
        cl.sock.close()
        return None
    try:
        return cl.line()
    finally:
        cl.sock.close()


delays = []
for i in range(3):
    t0 = time.time()
    reply = try_auth("127.0.0.6", f"user{i}@example.org", "Winter2026!")
    delays.append(time.time() - t0)
    c("spray refused", reply.startswith(b"535 5.7.8"), reply)
# The server waits 250 ms, then 500 ms, then 1 s before answering: lower
# bounds, which hold however slow (or loaded) the machine is.
c("delays grow", delays[0] >= 0.25 and delays[1] >= 0.5 and delays[2] >= 1.0, delays)
for i in range(3, 10):
    try_auth("127.0.0.6", f"user{i}@example.org", "Winter2026!", wait=False)
# The server counts a failure before its delay, whether or not the client
# waited; each check takes its time (argon2), so ask until it has caught
# up, with a wrong password (a right one would count as a success).
deadline = time.time() + 60
while not try_auth("127.0.0.6", "nobody@example.org", "x").startswith(b"454") \
        and time.time() < deadline:
    pass
reply = try_auth("127.0.0.6", user, password)
c("address banned: even a right password is refused", reply.startswith(b"454 4.7.0"), reply)
c("another address still logs in", try_auth("127.0.0.7", user, password).startswith(b"235"))

# One account tried from 20 addresses: the account is slowed down for
# addresses it does not know, never closed to its owner.
for i in range(20):
    c("a wrong guess fails", try_auth(f"127.0.1.{i + 1}", victim, "guess").startswith(b"535"))
t0 = time.time()
reply = try_auth("127.0.0.8", victim, victim_password)
c("account under attack: the right password from a fresh address works",
  reply.startswith(b"235"), reply)
c("... after a delay at most", time.time() - t0 >= 0.25, time.time() - t0)
c("other accounts unaffected", try_auth("127.0.0.8", user, password).startswith(b"235"))

good.stop()
c("background submissions kept working", good.sent >= 5 and not good.errors,
  (good.sent, good.errors[:3]))
c("submission after all that", good_submission("final"))
print(f"background submissions: {good.sent}")
c.finish()
