"""Hostile input to sealmail's POP3 over raw sockets: a 1 MB line, bad
numbers, commands before login, a USER pipelined after STLS, and AUTH PLAIN.

usage: pop3_bad_input.py PLAIN_PORT TLS_PORT USER PASSWORD
"""
import base64
import socket
import sys

from checks import Checks, LineClient, insecure_tls

plain_port, tls_port, user, password = sys.argv[1:5]
plain_port, tls_port = int(plain_port), int(tls_port)
ctx = insecure_tls()
check = Checks("pop3 bad input")


Client = LineClient


def tls_client():
    c = Client(ctx.wrap_socket(socket.create_connection(("127.0.0.1", tls_port), timeout=10)))
    c.line()
    return c


c = Client(socket.create_connection(("127.0.0.1", plain_port), timeout=10))
check("greeting", c.line().startswith(b"+OK"))
check("1 MB line", c.cmd(b"NOOP " + b"x" * (1 << 20) + b"\r\n") == b"-ERR line too long")
check("still usable", c.cmd("CAPA").startswith(b"+OK"))
c.multi()
check("stat before login", c.cmd("STAT") == b"-ERR command not valid before login")
check("retr -1", c.cmd("RETR -1").startswith(b"-ERR"))
check("unknown", c.cmd("FROB").startswith(b"-ERR unknown command"))
check("pass without user", c.cmd("PASS x").startswith(b"-ERR"))
# STLS with a pipelined USER: the USER must be discarded.
c.sock.sendall(b"STLS\r\nUSER " + user.encode() + b"\r\n")
check("stls", c.line().startswith(b"+OK"))
c = Client(ctx.wrap_socket(c.sock))
check("pipelined USER discarded", c.cmd("PASS " + password) == b"-ERR send USER first")
check("second stls refused", c.cmd("STLS").startswith(b"-ERR"))

t = tls_client()
check("auth list", t.cmd("AUTH") == b"+OK" and t.multi() == [b"PLAIN"])
check("auth other mech", t.cmd("AUTH CRAM-MD5").startswith(b"-ERR"))
check("auth cancelled", t.cmd("AUTH PLAIN") == b"+ " and t.cmd("*").startswith(b"-ERR"))
check("auth malformed", t.cmd("AUTH PLAIN !!!!") == b"-ERR [AUTH] malformed PLAIN response")
token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
check("auth plain", t.cmd("AUTH PLAIN " + token).startswith(b"+OK maildrop has"))
check("retr 0", t.cmd("RETR 0").startswith(b"-ERR"))
check("retr huge", t.cmd("RETR 99999999999").startswith(b"-ERR"))
check("retr missing", t.cmd("RETR 4000000000") == b"-ERR no such message")
reply = t.cmd("TOP 1 99999999999")
body = t.multi()
check("top huge", reply.startswith(b"+OK") and len(body) > 3, body[:3])
check("user after login", t.cmd("USER x") == b"-ERR command not valid after login")
check("pipelined", t.cmd(b"NOOP\r\nNOOP\r\nSTAT\r\n") == b"+OK" and t.line() == b"+OK" and t.line().startswith(b"+OK "))
check("quit", t.cmd("QUIT").startswith(b"+OK"))

check.finish()
