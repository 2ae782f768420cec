"""Load for the submission crash test: CLIENTS threads each send PER_CLIENT
messages over implicit TLS (a few per connection) and record the Message-ID
of every message that got 250. Prints "done N" at the end.

usage: submission_load.py PORT_465 USER PASSWORD RCPT CLIENTS PER_CLIENT OUT
"""
import smtplib
import sys
import threading

from checks import insecure_tls

port, user, password, rcpt, clients, per_client, out = sys.argv[1:8]
port, clients, per_client = int(port), int(clients), int(per_client)
acked = []
lock = threading.Lock()


def client(n):
    i = 0
    while i < per_client:
        try:
            with smtplib.SMTP_SSL("127.0.0.1", port, timeout=30, context=insecure_tls()) as s:
                s.login(user, password)
                for _ in range(10):
                    if i >= per_client:
                        break
                    mid = f"<load-{n}-{i}@crash.test>"
                    body = (f"From: {user}\r\nTo: {rcpt}\r\nSubject: load {n} {i}\r\n"
                            f"Message-ID: {mid}\r\n\r\n" + ("x" * 76 + "\r\n") * 26)
                    s.sendmail(user, [rcpt], body)
                    with lock:
                        acked.append(mid)
                    i += 1
        except (smtplib.SMTPException, OSError):
            pass


threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
with open(out, "w") as f:
    f.write("\n".join(acked) + "\n")
print(f"done {len(acked)}", flush=True)
