"""Python's smtplib and raw sockets against sealmail's MX: delivery,
refusals, STARTTLS, BDAT, SMTP smuggling and STARTTLS command injection.

usage: mx_smtp.py PORT ALIAS CANARY
"""
import smtplib
import socket
import sys

from checks import Checks, LineClient, insecure_tls

port, alias, canary = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = insecure_tls()
check = Checks("mx")


msg = f"From: a@example.net\r\nTo: {alias}\r\nSubject: {canary} plain\r\n\r\nbody {canary}\r\n.leading dot\r\n"
s = smtplib.SMTP("127.0.0.1", port, timeout=20)
code, _ = s.ehlo("client.example.net")
check("ehlo", code == 250)
for ext in ["starttls", "pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes", "chunking"]:
    check("ext " + ext, s.has_extn(ext))
check("no auth on mx", not s.has_extn("auth"))
check("sendmail", s.sendmail("a@example.net", [alias], msg) == {})
try:
    s.sendmail("a@example.net", ["nobody@example.org"], msg)
    check("unknown user refused", False)
except smtplib.SMTPRecipientsRefused as e:
    code, text = e.recipients["nobody@example.org"]
    check("unknown user refused", code == 550 and text.startswith(b"5.1.1"), e.recipients)
try:
    s.sendmail("a@example.net", ["someone@elsewhere.net"], msg)
    check("relay refused", False)
except smtplib.SMTPRecipientsRefused as e:
    code, text = e.recipients["someone@elsewhere.net"]
    check("relay refused", code == 550 and text.startswith(b"5.7.1"), e.recipients)
check("vrfy", s.verify(alias)[0] == 252)
code, text = s.docmd("MAIL", "FROM:<a@example.net> SIZE=99999999999")
check("size refused", code == 552, text)
s.rset()
s.starttls(context=ctx)
s.ehlo("client.example.net")
check("no starttls after tls", not s.has_extn("starttls"))
check("sendmail over tls", s.sendmail("a@example.net", [alias], msg.replace("plain", "tls")) == {})
s.quit()


class Raw(LineClient):
    """An SMTP connection past its greeting; cmd() returns the final reply line."""

    def __init__(self):
        super().__init__(socket.create_connection(("127.0.0.1", port), timeout=20))
        self.line()

    def cmd(self, text):
        self.send(text)
        return self.reply()


# Smuggling: each of these inside DATA must not end the message.
variants = {"lf-dot-lf": b"\n.\n", "lf-dot-crlf": b"\n.\r\n", "crlf-dot-lf": b"\r\n.\n", "cr-dot-crlf": b"\r.\r\n", "cr-dot-cr": b"\r.\r"}
for name, seq in variants.items():
    r = Raw()
    r.cmd("EHLO client.example.net")
    r.cmd("MAIL FROM:<a@example.net>")
    r.cmd(f"RCPT TO:<{alias}>")
    check(name + " data", r.cmd("DATA").startswith(b"354"))
    payload = (
        f"Subject: smuggle-{name}\r\n\r\nhello".encode() + seq
        + f"MAIL FROM:<evil@example.net>\r\nRCPT TO:<{alias}>\r\nDATA\r\nSubject: smuggled-{name}\r\n\r\nevil\r\n.\r\n".encode()
    )
    r.sock.sendall(payload)
    check(name + " one message", r.reply().startswith(b"250"))
    r.sock.sendall(b"QUIT\r\n")
    check(name + " nothing smuggled", r.reply().startswith(b"221"))

# STARTTLS injection: the pipelined MAIL must be discarded.
r = Raw()
r.cmd("EHLO client.example.net")
r.sock.sendall(b"STARTTLS\r\nMAIL FROM:<injected@example.net>\r\n")
check("starttls", r.reply().startswith(b"220"))
r.sock = ctx.wrap_socket(r.sock)
r.buf = b""
r.cmd("EHLO client.example.net")
check("injected MAIL discarded", r.cmd(f"RCPT TO:<{alias}>").startswith(b"503"))

# BDAT (CHUNKING) in two chunks.
r = Raw()
r.cmd("EHLO client.example.net")
r.cmd("MAIL FROM:<a@example.net>")
r.cmd(f"RCPT TO:<{alias}>")
one = f"Subject: {canary} bdat\r\n\r\n".encode()
two = b"chunked body\r\n"
r.sock.sendall(b"BDAT %d\r\n" % len(one) + one)
check("bdat chunk", r.reply().startswith(b"250"))
r.sock.sendall(b"BDAT %d LAST\r\n" % len(two) + two)
check("bdat last", r.reply().startswith(b"250 2.0.0"))
check("commands in wrong order", r.cmd("DATA").startswith(b"554"))
check("1 MB line", r.cmd("NOOP " + "x" * (1 << 20)).startswith(b"500"))
check("still usable", r.cmd("NOOP").startswith(b"250"))
r.cmd("QUIT")

check.finish()
