"""Hostile input to sealmail's MX over raw sockets: long lines (513 B,
64 KB, 1 GB, with and without CRLF), controls in parameters, non-ASCII
without SMTPUTF8, 10,000 pipelined RCPTs, a million header lines, an
oversized message, slowloris in every state (commands, DATA, BDAT, the TLS
handshake), and 10,000 sockets from one address. Meanwhile a normal
client keeps delivering.

usage: mx_bad_input.py PORT DEADLINE_PORT ALIAS

Two servers with the same alias: PORT has generous deadlines, so that the
volume checks (64 MB lines, 100 MB messages) depend on what the server
answers and never on how fast this machine moves 100 MB; DEADLINE_PORT runs
with a 2 s command timeout and a 3 s data timeout for the checks that are
about deadlines (1 GB lines, slowloris, idle sockets).
"""
import resource
import smtplib
import socket
import sys
import time

from checks import Checks, KeepSending, LineClient, closed, trickle

port, deadline_port, alias = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = Checks("mx bad input")
T0 = time.time()
MB = 1 << 20


def connect(src="127.0.0.1", p=None):
    p = port if p is None else p
    s = socket.create_connection(("127.0.0.1", p), timeout=30, source_address=(src, 0))
    cl = LineClient(s)
    greeting = cl.line()
    return cl, greeting


def ehlo(cl):
    cl.sock.sendall(b"EHLO bad.test\r\n")
    while True:
        line = cl.line()
        if line[3:4] == b" ":
            return line




def good_delivery(tag):
    # From another loopback address: the flood below fills 127.0.0.1's cap.
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=("127.0.0.3", 0)) as s:
        s.sendmail("ok@sender.test", [alias],
                   f"Subject: {tag}\r\n\r\nfine\r\n".encode())
    return True


# A well-behaved client delivers throughout, from a thread.
good = KeepSending(good_delivery)

# Long lines.
cl, g = connect()
c("greeting", g.startswith(b"220 "), g)
ehlo(cl)
reply = cl.cmd(b"MAIL FROM:<" + b"a" * 488 + b"@sender.test>\r\n")
c("513 B line answered clearly", reply[:3] in (b"250", b"501", b"500"), reply)
cl.cmd(b"RSET\r\n")
c("64 KB line", cl.cmd(b"NOOP " + b"x" * (64 * 1024) + b"\r\n").startswith(b"500 5.5.2"))
c("usable after", cl.cmd(b"NOOP\r\n").startswith(b"250"))
chunk = b"x" * MB
for _ in range(64):
    cl.sock.sendall(chunk)
reply = cl.cmd(b"\r\n")
c("64 MB line refused", reply.startswith(b"500 5.5.2"), reply)
c("usable after 64 MB", cl.cmd(b"NOOP\r\n").startswith(b"250"))
cl.sock.close()
# 1 GB, with and without CRLF: the command deadline (2 s there) ends it
# whether or not the bytes keep coming.
cl, _ = connect(p=deadline_port)
for end in (b"\r\n", b""):
    t0 = time.time()
    try:
        for _ in range(1024):
            cl.sock.sendall(chunk)
        cl.sock.sendall(end)
        reply = cl.line()
    except (BrokenPipeError, ConnectionResetError, EOFError):
        reply = b"closed"
    c("1 GB line cut off", reply in (b"421 4.4.2 Timeout; closing connection", b"closed"), reply)
    c("1 GB line cut off in time", time.time() - t0 < 10, time.time() - t0)
    cl.sock.close()
    cl, _ = connect(p=deadline_port)
cl.sock.close()

print(f"long lines done at {time.time() - T0:.1f} s")
# Controls and non-ASCII in parameters.
cl, _ = connect()
ehlo(cl)
c("NUL in MAIL", cl.cmd(b"MAIL FROM:<a\x00b@sender.test>\r\n").startswith(b"501"))
c("bare CR joins no commands",
  cl.cmd(b"MAIL FROM:<a@sender.test>\rRCPT TO:<" + alias.encode() + b">\r\n").startswith(b"501"))
c("CR in EHLO", cl.cmd(b"EHLO a\rb\r\n").startswith(b"501"))
c("non-ASCII without SMTPUTF8",
  cl.cmd("MAIL FROM:<jöran@sender.test>\r\n".encode()).startswith(b"553 5.6.7"))
c("invalid UTF-8", cl.cmd(b"MAIL FROM:<\xff\xfe@sender.test>\r\n").startswith(b"501"))
cl.sock.close()

# 10,000 pipelined RCPTs: refused, then the connection is cut.
cl, _ = connect()
ehlo(cl)
cl.cmd(b"MAIL FROM:<a@sender.test>\r\n")
burst = b"".join(b"RCPT TO:<u%d@elsewhere.test>\r\n" % i for i in range(10_000))
try:
    cl.sock.sendall(burst)
except (BrokenPipeError, ConnectionResetError):
    pass
replies = []
try:
    while True:
        replies.append(cl.line())
except (EOFError, ConnectionResetError):
    pass
c("RCPT flood refused then cut",
  replies[-1:] == [b"421 4.7.0 Too many errors; closing connection"]
  and all(r.startswith(b"550 5.7.1") for r in replies[:-1]) and len(replies) <= 30,
  (len(replies), replies[-2:]))

# A million header lines, and a message over the size limit.
cl, _ = connect()
ehlo(cl)
cl.cmd(b"MAIL FROM:<a@sender.test>\r\n")
c("rcpt", cl.cmd(f"RCPT TO:<{alias}>\r\n".encode()).startswith(b"250"))
c("data", cl.cmd(b"DATA\r\n").startswith(b"354"))
lines = b"X-H: v\r\n" * 100_000
for _ in range(10):
    cl.sock.sendall(lines)
reply = cl.cmd(b"\r\nbody\r\n.\r\n")
c("million header lines refused", reply.startswith(b"552 5.3.4"), reply)
cl.cmd(b"MAIL FROM:<a@sender.test>\r\n")
cl.cmd(f"RCPT TO:<{alias}>\r\n".encode())
cl.cmd(b"DATA\r\n")
for _ in range(100):
    cl.sock.sendall(b"y" * 1000 + b"\r\n" + b"z" * (MB - 1002))
reply = cl.cmd(b"\r\n.\r\n")
c("100 MB message refused", reply.startswith(b"552 5.3.4"), reply)
c("usable after", cl.cmd(b"NOOP\r\n").startswith(b"250"))
cl.sock.close()

print(f"floods done at {time.time() - T0:.1f} s")
# Slowloris: a byte every half second gets cut off by the deadline.
cl, _ = connect(p=deadline_port)
spent = trickle(cl, b"NOOP and more and more and more", 8)
c("slow command cut", spent < 6, spent)
try:
    c("slow command told", cl.line().startswith(b"421 4.4.2"))
except (EOFError, ConnectionResetError) as e:
    c("slow command told", False, e)

cl, _ = connect(p=deadline_port)
ehlo(cl)
cl.cmd(b"MAIL FROM:<a@sender.test>\r\n")
cl.cmd(f"RCPT TO:<{alias}>\r\n".encode())
cl.cmd(b"DATA\r\n")
spent = trickle(cl, b"Subject: slow\r\n\r\n" + b"z" * 40, 10)
c("slow DATA cut", spent < 7, spent)

cl, _ = connect(p=deadline_port)
ehlo(cl)
cl.cmd(b"MAIL FROM:<a@sender.test>\r\n")
cl.cmd(f"RCPT TO:<{alias}>\r\n".encode())
cl.sock.sendall(b"BDAT 100 LAST\r\n")
spent = trickle(cl, b"z" * 40, 10)
c("slow BDAT cut", spent < 7, spent)

cl, _ = connect(p=deadline_port)
ehlo(cl)
c("starttls", cl.cmd(b"STARTTLS\r\n").startswith(b"220"))
cl.sock.sendall(b"\x16\x03\x01\x02\x00")  # a ClientHello header, then nothing
t0 = time.time()
c("stalled TLS handshake cut", closed(cl, 10) and time.time() - t0 < 6, time.time() - t0)

cl, _ = connect(p=deadline_port)
t0 = time.time()
c("silent client cut", closed(cl, 10) and time.time() - t0 < 6, time.time() - t0)

print(f"slowloris done at {time.time() - T0:.1f} s")
# 10,000 sockets from one address: the per-address cap holds.
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = 10_000 + 200
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
except (ValueError, OSError):
    pass
n = min(10_000, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 200)


def still_open(s):
    """False once the server has answered 421 or closed (it times idle
    sessions out after 2 s here, freeing their slots)."""
    s.setblocking(False)
    try:
        return not s.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)


t0 = time.time()
socks, live, admitted, refused, most = [], [], 0, 0, 0
for i in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", deadline_port), timeout=30)
    except OSError as e:
        c("socket opened", False, (i, e))
        break
    socks.append(s)
    try:
        code = LineClient(s).line()[:3]
    except (EOFError, ConnectionResetError):
        code = b"EOF"
    if code == b"220":
        admitted += 1
        live = [x for x in live if still_open(x)] + [s]
        most = max(most, len(live))
    elif code == b"421":
        refused += 1
print(f"{n} sockets from one address in {time.time() - t0:.1f} s: {admitted} admitted "
      f"(at most {most} at once), {refused} refused")
c("per-address cap", most <= 50 and admitted + refused == len(socks), (most, admitted, refused))
other, g = connect("127.0.0.2", p=deadline_port)
c("another address unaffected", g.startswith(b"220"), g)
other.sock.close()
for s in socks:
    s.close()

good.stop()
c("background deliveries kept working", good.sent >= 5 and not good.errors,
  (good.sent, good.errors[:3]))
c("delivery after all that", good_delivery("final"))
print(f"background deliveries: {good.sent}")
c.finish()
