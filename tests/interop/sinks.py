"""Receiving peers for relay tests: an SMTP server (aiosmtpd) and an HTTP
server (webhooks), both on 127.0.0.1.

usage: sinks.py SMTP_PORT HTTP_PORT DIR   (prints "ready" once listening)

Behaviour is read from DIR/smtp_mode and DIR/http_mode at each message:
"accept" (default), "tempfail" (SMTP 451 at end of data / HTTP 503),
"tempfail_first N" (SMTP 451 for the first N attempts, then accept),
"slow SECONDS" (accept after a pause), "close_after N" (accept, and close
the connection once it carried N messages, as a server with a limit per
connection or an idle timeout does) or "reject" (SMTP 550 / HTTP 400).
Each accepted message is written to DIR/smtp-N.json ({"mail_from",
"rcpt_tos", "data"}) or DIR/http-N.json ({"path", "headers", "body"});
each attempt is counted in DIR/*_attempts, each SMTP connection (EHLO) in
DIR/smtp_connections.
"""
import asyncio
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

smtp_port, http_port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()


def mode(kind):
    try:
        with open(os.path.join(out, f"{kind}_mode")) as f:
            return f.read().strip() or "accept"
    except FileNotFoundError:
        return "accept"


def bump(name):
    count_file = os.path.join(out, name)
    n = 0
    if os.path.exists(count_file):
        with open(count_file) as f:
            n = int(f.read() or 0)
    with open(count_file, "w") as f:
        f.write(str(n + 1))


def record(kind, obj):
    with lock:
        bump(f"{kind}_attempts")
        if obj is None:
            return
        i = len([x for x in os.listdir(out) if x.startswith(f"{kind}-")])
        tmp = os.path.join(out, f".{kind}-{i}.tmp")
        with open(tmp, "w") as f:
            json.dump(obj, f)
        os.rename(tmp, os.path.join(out, f"{kind}-{i}.json"))


def attempts(kind):
    try:
        with open(os.path.join(out, f"{kind}_attempts")) as f:
            return int(f.read() or 0)
    except FileNotFoundError:
        return 0


class Smtp:
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        session.carried = 0
        with lock:
            bump("smtp_connections")
        return responses

    async def handle_DATA(self, server, session, envelope):
        m = mode("smtp")
        if m.startswith("close_after"):
            session.carried = getattr(session, "carried", 0) + 1
            if session.carried >= int(m.split()[1]):
                # After the 250 below is written, without waiting for QUIT.
                asyncio.get_running_loop().call_soon(server.transport.close)
            m = "accept"
        if m.startswith("tempfail_first"):
            m = "tempfail" if attempts("smtp") < int(m.split()[1]) else "accept"
        if m.startswith("slow"):
            await asyncio.sleep(float(m.split()[1]))
            m = "accept"
        if m == "tempfail":
            record("smtp", None)
            return "451 4.3.0 Try again later"
        if m == "reject":
            record("smtp", None)
            return "550 5.1.1 No such user"
        record(
            "smtp",
            {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "data": envelope.original_content.decode("utf-8", "replace"),
            },
        )
        return "250 2.0.0 OK"


class Http(BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        m = mode("http")
        if m == "accept":
            record(
                "http",
                {
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "body": body.decode("utf-8", "replace"),
                },
            )
            code = 200
        else:
            record("http", None)
            code = 503 if m == "tempfail" else 400
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


controller = Controller(Smtp(), hostname="127.0.0.1", port=smtp_port)
controller.start()
httpd = ThreadingHTTPServer(("127.0.0.1", http_port), Http)
threading.Thread(target=httpd.serve_forever, daemon=True).start()
print("ready", flush=True)
sys.stdout = open(os.devnull, "w")
while True:
    time.sleep(3600)
