"""Receiving peers for outbound TLS tests: SMTP servers (aiosmtpd) on
several loopback addresses, each with STARTTLS under its own certificate
or without STARTTLS, and an HTTPS server that serves MTA-STS policies by
the Host it is asked for.

usage: tls_peers.py CONFIG.json   (prints "ready" once listening)

CONFIG: {"smtp_port": N, "out": DIR,
         "smtp": [{"ip": "127.0.0.2", "cert": PEM, "key": PEM} | {"ip": ..., "tls": false}],
         "https": {"ip": "127.0.0.1", "port": N, "cert": PEM, "key": PEM,
                   "policies": {"mta-sts.example": "version: STSv1\\n..."}}}
("https" may be left out.)
Each accepted message is written to DIR/smtp-N.json ({"ip", "mail_from",
"rcpt_tos", "tls", "data"}); each policy request is appended to
DIR/https.log.
"""
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

with open(sys.argv[1]) as f:
    config = json.load(f)
out = config["out"]
lock = threading.Lock()


def record(obj):
    with lock:
        i = len([x for x in os.listdir(out) if x.startswith("smtp-")])
        tmp = os.path.join(out, f".smtp-{i}.tmp")
        with open(tmp, "w") as f:
            json.dump(obj, f)
        os.rename(tmp, os.path.join(out, f"smtp-{i}.json"))


class Sink:
    def __init__(self, ip):
        self.ip = ip

    async def handle_DATA(self, server, session, envelope):
        record({"ip": self.ip, "mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                "tls": session.ssl is not None,
                "data": envelope.content.decode("utf-8", "replace")})
        return "250 OK"


def context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


controllers = []
for s in config["smtp"]:
    tls = context(s["cert"], s["key"]) if s.get("tls", True) else None
    c = Controller(Sink(s["ip"]), hostname=s["ip"], port=config["smtp_port"], tls_context=tls,
                   require_starttls=False, ready_timeout=60)
    c.start()
    controllers.append(c)

https = config.get("https")
policies = https["policies"] if https else {}


class Policy(BaseHTTPRequestHandler):
    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        with lock:
            with open(os.path.join(out, "https.log"), "a") as f:
                f.write(f"{host} {self.path}\n")
        body = policies.get(host)
        if body is None or self.path != "/.well-known/mta-sts.txt":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if https:
    server = ThreadingHTTPServer((https["ip"], https["port"]), Policy)
    server.socket = context(https["cert"], https["key"]).wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
print("ready", flush=True)
sys.stdout = open(os.devnull, "w")
while True:
    time.sleep(3600)
