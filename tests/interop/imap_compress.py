"""COMPRESS=DEFLATE (RFC 4978) against sealmail over IMAPS, with Python's
zlib as the client's raw DEFLATE stream: a session carried on after
COMPRESS, a 300 KB message appended and fetched back byte for byte,
pipelined commands, and a command split into one-byte writes.

usage: imap_compress.py IMAPS_PORT ADDRESS PASSWORD
"""
import random
import socket
import sys
import zlib

from checks import Checks, insecure_tls

port = int(sys.argv[1])
address, password = sys.argv[2], sys.argv[3]
check = Checks("imap_compress")


class Client:
    """A raw IMAP client whose wire can switch to raw DEFLATE."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.inflate = None
        self.deflate = None
        self.wire_in = 0

    def start_compression(self):
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)

    def send(self, data, split=False):
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        if split:
            for i in range(len(data)):
                self.sock.sendall(data[i : i + 1])
        else:
            self.sock.sendall(data)

    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("server closed the connection")
        self.wire_in += len(chunk)
        if self.inflate is not None:
            chunk = self.inflate.decompress(chunk)
        self.buf += chunk

    def line(self):
        """One response; a literal's bytes stay inline."""
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self.fill()
            line, self.buf = self.buf.split(b"\r\n", 1)
            out += line
            if line.endswith(b"}") and b"{" in line:
                n = int(line[line.rindex(b"{") + 1 : -1])
                while len(self.buf) < n:
                    self.fill()
                out += b"\r\n" + self.buf[:n]
                self.buf = self.buf[n:]
                continue
            return out

    def until(self, tag):
        out = []
        while True:
            line = self.line()
            out.append(line)
            if line.startswith(tag.encode() + b" "):
                return out

    def cmd(self, line, split=False):
        tag = line.split(" ", 1)[0]
        self.send(line.encode() + b"\r\n", split)
        return self.until(tag)


raw = socket.create_connection(("127.0.0.1", port), timeout=20)
c = Client(insecure_tls().wrap_socket(raw, server_hostname="localhost"))
check("greeting", c.line().startswith(b"* OK"))
r = c.cmd(f"a LOGIN {address} {password}")
check("login", r[-1].startswith(b"a OK"), r)
r = c.cmd("b CAPABILITY")
check("COMPRESS=DEFLATE announced after login", b" COMPRESS=DEFLATE" in r[0], r)
r = c.cmd("c COMPRESS DEFLATE")
check("COMPRESS accepted", r == [b"c OK DEFLATE active"], r)
c.start_compression()

r = c.cmd("d CAPABILITY")
check("no COMPRESS once compressed", b"COMPRESS=DEFLATE" not in r[0] and r[-1].startswith(b"d OK"), r)
r = c.cmd("e COMPRESS DEFLATE")
check("second COMPRESS refused", r == [b"e NO [COMPRESSIONACTIVE] DEFLATE is already active"], r)

rng = random.Random(4978)
words = ["mail", "seal", "deflate", "stream", "window", "literal", "octet", "imap", "zlib"]
lines = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(4000)]
body = "\r\n".join(lines)
message = (
    f"From: Ann <ann@example.net>\r\nTo: {address}\r\nSubject: compressed\r\n"
    f"Message-ID: <compress@example.net>\r\n\r\n{body}\r\n"
).encode()
c.send(b"f APPEND INBOX {%d+}\r\n" % len(message) + message + b"\r\n")
r = c.until("f")
check("append of %d bytes" % len(message), r[-1].startswith(b"f OK [APPENDUID"), r)
r = c.cmd("g SELECT INBOX")
check("select", r[-1].startswith(b"g OK [READ-WRITE]"), r)
before = c.wire_in
r = c.cmd("h UID FETCH 1 BODY.PEEK[]")
fetched = r[0]
prefix = b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % len(message)
check("fetched back byte for byte", fetched == prefix + message + b")", fetched[:80])
wire = c.wire_in - before
check("the fetch was compressed on the wire", wire < len(message) // 2, (wire, len(message)))

c.send(b"".join(b"n%d NOOP\r\n" % i for i in range(50)))
oks = [c.until("n%d" % i)[-1] for i in range(50)]
check("50 pipelined commands", all(o.endswith(b"OK NOOP completed") for o in oks), oks[-3:])

r = c.cmd('s SEARCH SUBJECT "compressed"', split=True)
check("a command in one-byte writes", r == [b"* SEARCH 1", b"s OK SEARCH completed"], r)

r = c.cmd("z LOGOUT")
check("logout", r == [b"* BYE sealmail logging out", b"z OK LOGOUT completed"], r)
check.finish()
