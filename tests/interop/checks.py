"""Shared by the interop scripts: counted checks that end with the
`N passed, N failed` line, a TLS context for sealmail's self-signed test
certificates, and mail with attachments sent to the MX."""
import io
import smtplib
import socket
import ssl
import sys
import threading
import time
import zipfile
from email.message import EmailMessage


class Checks:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def __call__(self, label, cond, detail=""):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {label}: {detail!r}")

    def finish(self):
        print(f"{self.name}: {self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)


def insecure_tls():
    """Test servers use a self-signed certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class LineClient:
    """A raw CRLF line client over a connected socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        """One SMTP reply, skipping `250-` continuation lines."""
        while True:
            l = self.line()
            if l[3:4] != b"-":
                return l

    def send(self, text):
        self.sock.sendall(text if isinstance(text, bytes) else text.encode() + b"\r\n")

    def cmd(self, text):
        self.send(text)
        return self.line()

    def multi(self):
        """A dot-terminated POP3 multi-line body."""
        lines = []
        while True:
            l = self.line()
            if l == b".":
                return lines
            lines.append(l)


def closed(cl, within):
    """True if the server closes the connection within `within` seconds."""
    cl.sock.settimeout(within)
    try:
        while True:
            if not cl.sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        return True
    except socket.timeout:
        return False


def trickle(cl, data, limit):
    """Sends `data` a byte every half second (slowloris) until the server
    cuts the connection or `limit` seconds pass; returns the time spent."""
    start = time.time()
    for b in data:
        try:
            cl.sock.sendall(bytes([b]))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            break
        time.sleep(0.5)
        if time.time() - start > limit:
            break
    return time.time() - start


class KeepSending:
    """Calls send(tag) from a thread every 0.2 s until stop(), counting the
    sends that worked in `sent` and keeping what the others raised in
    `errors`: a well-behaved client beside the hostile ones."""

    def __init__(self, send):
        self.sent = 0
        self.errors = []
        self._stop = threading.Event()

        def loop():
            while not self._stop.is_set():
                try:
                    send(f"good-{self.sent}")
                    self.sent += 1
                except Exception as e:  # noqa: BLE001 - reported by the caller
                    self.errors.append(repr(e))
                time.sleep(0.2)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()


def with_attachments(to, subject, body, attachments, sender="a@example.net"):
    """A message from `sender` to `to` with `attachments` [(name, bytes,
    "type/subtype")]."""
    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m.set_content(body)
    for name, data, ctype in attachments:
        main, sub = ctype.split("/")
        m.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return m


def send_to_mx(port, rcpts, m, sender="a@example.net"):
    """Sends `m` through the MX on `port`: (250, "") or the refusal's
    (code, text)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
        s.ehlo("client.example.net")
        try:
            s.send_message(m, from_addr=sender, to_addrs=rcpts)
            return 250, ""
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()


def zipped(files):
    """A deflated zip of [(name, bytes)]."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files:
            z.writestr(name, data)
    return buf.getvalue()
