"""Python's poplib against sealmail's POP3: a full session over STLS and over
implicit TLS, deletions applied only at QUIT, and a dropped connection that
deletes nothing.

usage: pop3_poplib.py PLAIN_PORT TLS_PORT USER PASSWORD UIDL,UIDL,...
"""
import poplib
import sys

from checks import Checks, insecure_tls

plain_port, tls_port, user, password, uidls = sys.argv[1:6]
plain_port, tls_port = int(plain_port), int(tls_port)
uidls = uidls.split(",")
ctx = insecure_tls()
check = Checks("poplib")


# Plain port: login refused before STLS, then a whole session after it.
p = poplib.POP3("127.0.0.1", plain_port, timeout=10)
check("greeting", p.getwelcome().startswith(b"+OK"))
caps = p.capa()
check("capa before tls", "STLS" in caps and "USER" not in caps, caps)
try:
    p.user(user)
    check("user before tls refused", False)
except poplib.error_proto as e:
    check("user before tls refused", b"[AUTH]" in e.args[0], e)
p.stls(ctx)
caps = p.capa()
check("capa after tls", "USER" in caps and "STLS" not in caps and "TOP" in caps and "UIDL" in caps, caps)
p.user(user)
check("login", p.pass_(password).startswith(b"+OK"))
count, size = p.stat()
check("stat", count == len(uidls), (count, size))
resp, listing, _ = p.list()
check("list", len(listing) == count and sum(int(l.split()[1]) for l in listing) == size, listing)
resp, ids, _ = p.uidl()
check("uidl", [l.split()[1].decode() for l in ids] == uidls, ids)
check("uidl one", p.uidl(2).split()[2].decode() == uidls[1])
resp, lines, _ = p.top(1, 0)
check("top 0", any(l.startswith(b"Subject: ") for l in lines) and lines[-1] == b"", lines[-3:])
resp, lines, octets = p.retr(2)
check("retr", b"Subject: message 2" in lines and b"..dotted line" not in lines and b".dotted line" in lines, lines)
p.dele(1)
p.dele(3)
try:
    p.retr(1)
    check("retr deleted refused", False)
except poplib.error_proto:
    check("retr deleted refused", True)
check("stat after dele", p.stat()[0] == count - 2)
p.rset()
check("rset", p.stat()[0] == count)
p.dele(1)
p.dele(3)
check("quit", p.quit().startswith(b"+OK"))

# Implicit TLS: the deletions happened.
s = poplib.POP3_SSL("127.0.0.1", tls_port, context=ctx, timeout=10)
s.user(user)
s.pass_(password)
resp, ids, _ = s.uidl()
left = [l.split()[1].decode() for l in ids]
check("deleted at quit", left == [uidls[1]] + uidls[3:], left)
# Drop the connection after DELE without QUIT: nothing is deleted.
s.dele(1)
s.sock.close()

s = poplib.POP3_SSL("127.0.0.1", tls_port, context=ctx, timeout=10)
s.user(user)
s.pass_(password)
check("dropped connection deleted nothing", s.stat()[0] == count - 2)
s.quit()

try:
    bad = poplib.POP3_SSL("127.0.0.1", tls_port, context=ctx, timeout=10)
    bad.user(user)
    bad.pass_("wrong password")
    check("wrong password refused", False)
except poplib.error_proto as e:
    check("wrong password refused", e.args[0] == b"-ERR [AUTH] authentication failed", e)

check.finish()
