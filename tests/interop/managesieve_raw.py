"""ManageSieve (RFC 5804) as a hand-written client speaks it, to check what
sieve-connect does not exercise: capabilities before and after STARTTLS,
AUTHENTICATE refused without TLS, the SASL continuation, response codes
(NONEXISTENT, ACTIVE, ALREADYEXISTS, QUOTA/MAXSCRIPTS, QUOTA/MAXSIZE),
bounded input before login, ten bad commands, and many sessions of one
owner at once, each reply checked against a model of the scripts.

usage: managesieve_raw.py PORT ADDRESS PASSWORD
"""
import base64
import random
import socket
import ssl
import sys
import threading

port, address, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
passed = failed = 0
lock = threading.Lock()


def check(what, ok, detail=""):
    global passed, failed
    with lock:
        if ok:
            passed += 1
            print(f"ok   {what}")
        else:
            failed += 1
            print(f"FAIL {what}: {detail!r}")


class Client:
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.f = self.s.makefile("rb")

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def response(self):
        """Lines up to and including OK/NO/BYE; literals read whole."""
        lines = []
        while True:
            try:
                line = self.f.readline()
            except (ConnectionResetError, BrokenPipeError):
                return lines, "EOF"
            if not line:
                return lines, "EOF"
            text = line.decode(errors="replace").rstrip("\r\n")
            if text.endswith("}") and "{" in text:
                n = int(text[text.rindex("{") + 1:-1].rstrip("+"))
                lines.append(self.f.read(n).decode())
                self.f.readline()  # the CRLF that ends the literal's line
                continue
            for end in ("OK", "NO", "BYE"):
                if text == end or text.startswith(end + " "):
                    return lines, text
            lines.append(text)

    def cmd(self, data):
        self.send(data)
        return self.response()

    def starttls(self):
        lines, end = self.cmd("STARTTLS\r\n")
        assert end.startswith("OK"), end
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.s = ctx.wrap_socket(self.s)
        self.f = self.s.makefile("rb")
        return self.response()

    def login(self):
        token = base64.b64encode(f"\0{address}\0{password}".encode()).decode()
        return self.cmd(f'AUTHENTICATE "PLAIN" "{token}"\r\n')


def put(c, name, script):
    data = script.encode()
    return c.cmd(f'PUTSCRIPT "{name}" {{{len(data)}+}}\r\n'.encode() + data + b"\r\n")


# Capabilities: STARTTLS and no SASL before TLS; SASL PLAIN after.
c = Client()
caps, end = c.response()
check("greeting ends in OK", end.startswith("OK"), end)
check("STARTTLS offered", '"STARTTLS"' in caps, caps)
check("no SASL before TLS", not any(l.startswith('"SASL"') for l in caps), caps)
check("SIEVE lists fileinto and vacation",
      any(l.startswith('"SIEVE"') and "fileinto" in l and "vacation" in l for l in caps), caps)
_, end = c.login()
check("AUTHENTICATE before TLS: NO (ENCRYPT-NEEDED)", end.startswith("NO (ENCRYPT-NEEDED)"), end)
_, end = c.cmd("LISTSCRIPTS\r\n")
check("LISTSCRIPTS before login refused", end.startswith("NO"), end)
caps, end = c.starttls()
check("capabilities again after STARTTLS", end.startswith("OK") and '"SASL" "PLAIN"' in caps, caps)
check("no STARTTLS after it", '"STARTTLS"' not in caps, caps)
# The SASL continuation: an empty challenge, then the response.
c.send('AUTHENTICATE "PLAIN"\r\n')
line = c.f.readline()
check("empty challenge", line == b'""\r\n', line)
wrong = base64.b64encode(f"\0{address}\0wrong-password".encode()).decode()
_, end = c.cmd(f'"{wrong}"\r\n')
check("wrong password: NO", end.startswith("NO"), end)
_, end = c.login()
check("login", end.startswith("OK"), end)

# Response codes.
_, end = c.cmd('GETSCRIPT "nothing"\r\n')
check("NONEXISTENT", end.startswith("NO (NONEXISTENT)"), end)
_, end = put(c, "one", "keep;\n")
check("PUTSCRIPT", end.startswith("OK"), end)
_, end = put(c, "broken", 'require "fileinto";\nfileinto "A"\nkeep;\n')
check("syntax error names the line", end.startswith("NO") and "line 3" in end, end)
_, end = put(c, "nope", 'require "editheader";\naddheader "X" "y";\n')
check("an extension not offered is refused", end.startswith("NO") and "editheader" in end, end)
_, end = c.cmd('SETACTIVE "one"\r\n')
check("SETACTIVE", end.startswith("OK"), end)
_, end = c.cmd('DELETESCRIPT "one"\r\n')
check("ACTIVE", end.startswith("NO (ACTIVE)"), end)
_, end = put(c, "two", "discard;\n")
_, end = c.cmd('RENAMESCRIPT "two" "one"\r\n')
check("ALREADYEXISTS", end.startswith("NO (ALREADYEXISTS)"), end)
big = "# " + "x" * (64 * 1024) + "\nkeep;\n"
_, end = put(c, "big", big)
check("QUOTA/MAXSIZE", end.startswith("NO (QUOTA/MAXSIZE)"), end)
_, end = c.cmd('HAVESPACE "big" 70000\r\n')
check("HAVESPACE over the size: NO (QUOTA)", end.startswith("NO (QUOTA"), end)
_, end = c.cmd('HAVESPACE "small" 100\r\n')
check("HAVESPACE within: OK", end.startswith("OK"), end)
lines, end = c.cmd('GETSCRIPT "one"\r\n')
check("GETSCRIPT gives the script", end.startswith("OK") and lines == ["keep;\n"], (lines, end))
_, end = c.cmd('NOOP "t1"\r\n')
check("NOOP echoes its tag", end.startswith('OK (TAG "t1")'), end)
_, end = c.cmd('SETACTIVE ""\r\n')
_, end = c.cmd('DELETESCRIPT "one"\r\n')
_, end = c.cmd('DELETESCRIPT "two"\r\n')
check("deleted once inactive", end.startswith("OK"), end)
c.cmd("LOGOUT\r\n")

# Many sessions of one owner at once: each puts, lists, renames and
# deletes its own scripts; every reply is checked against the model (its
# own names are there, with what it put), and the quota holds in the end.
def worker(i, results):
    try:
        w = Client()
        w.response()
        w.starttls()
        _, end = w.login()
        ok = end.startswith("OK")
        rnd = random.Random(i)
        mine = {}
        for step in range(6):
            name = f"w{i}-{step % 3}"
            body = f"# {i} {step} {rnd.random()}\nkeep;\n"
            _, end = put(w, name, body)
            if end.startswith("OK"):
                mine[name] = body
            elif not end.startswith("NO (QUOTA/MAXSCRIPTS)"):
                ok = False
            lines, end = w.cmd("LISTSCRIPTS\r\n")
            names = {l.split('"')[1] for l in lines if l.startswith('"')}
            ok &= end.startswith("OK") and set(mine) <= names
            for n, b in mine.items():
                got, end = w.cmd(f'GETSCRIPT "{n}"\r\n')
                ok &= end.startswith("OK") and got == [b]
        for n in list(mine):
            _, end = w.cmd(f'DELETESCRIPT "{n}"\r\n')
            ok &= end.startswith("OK")
        w.cmd("LOGOUT\r\n")
        results[i] = ok
    except Exception as e:  # noqa: BLE001 - reported as a failure
        results[i] = repr(e)


results = {}
threads = [threading.Thread(target=worker, args=(i, results)) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
check("8 sessions at once, every reply as the model says",
      all(v is True for v in results.values()) and len(results) == 8, results)

c = Client()
c.response()
c.starttls()
c.login()
for i in range(16):
    put(c, f"q{i}", "keep;\n")
_, end = put(c, "q16", "keep;\n")
check("QUOTA/MAXSCRIPTS at the 17th", end.startswith("NO (QUOTA/MAXSCRIPTS)"), end)
lines, _ = c.cmd("LISTSCRIPTS\r\n")
check("16 scripts kept", len(lines) == 16, lines)
for i in range(16):
    c.cmd(f'DELETESCRIPT "q{i}"\r\n')
c.cmd("LOGOUT\r\n")

# Before login, a large literal is not buffered: the connection ends.
c = Client()
c.response()
try:
    c.send(b'PUTSCRIPT "x" {500000+}\r\n' + b"x" * 100000)
except (ConnectionResetError, BrokenPipeError):
    pass
lines, end = c.response()
check("a large literal before login: BYE", end.startswith("BYE") or end == "EOF", end)

# Ten bad commands end the connection.
c = Client()
c.response()
ends = [c.cmd("FROB\r\n")[1] for _ in range(10)]
check("ten bad commands answered NO", all(e.startswith("NO") for e in ends), ends)
_, end = c.response()
check("the tenth ends the connection: BYE", end.startswith("BYE"), end)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
