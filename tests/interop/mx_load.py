"""Load for the crash test: CLIENTS threads each send up to PER_CLIENT
messages over SMTP, one transaction per connection, and record the
Message-ID of every message that got 250. Optionally keeps a POP3 login
open, so the server holds the owner's key and files mail into INBOX.
Prints "ready" once the load is about to start.

usage: mx_load.py SMTP_PORT POP3_PORT|- ALIAS PASSWORD CLIENTS PER_CLIENT TAG OUT
"""
import poplib
import smtplib
import sys
import threading

smtp_port, pop_port, alias, password, clients, per_client, tag, out = sys.argv[1:9]
smtp_port, clients, per_client = int(smtp_port), int(clients), int(per_client)
acked = []
lock = threading.Lock()

if pop_port != "-":
    pop = poplib.POP3("127.0.0.1", int(pop_port), timeout=20)
    pop.user(alias)
    pop.pass_(password)

# The caller starts its kill timer on this line (after the POP3 login, if
# any: the key is in memory then).
print("ready", flush=True)


def client(n):
    for i in range(per_client):
        mid = f"<{tag}-{n}-{i}@load.example.net>"
        msg = f"From: load@example.net\r\nTo: {alias}\r\nSubject: load {tag} {n} {i}\r\nMessage-ID: {mid}\r\n\r\nbody {i}\r\n"
        try:
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=20) as s:
                s.sendmail("load@example.net", [alias], msg)
        except (OSError, smtplib.SMTPException):
            return  # the server is gone
        with lock:
            acked.append(mid)


threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
with open(out, "w") as f:
    f.write("\n".join(acked))
print(f"acked {len(acked)}", flush=True)
