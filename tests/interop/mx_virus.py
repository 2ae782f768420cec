"""Sends mail to sealmail's MX while it scans with a clamd that knows one
test signature (PATTERN): in an attachment, in a zip inside one, clean
mail, and mail for a recipient exempt from scanning; with smtplib and the
email package, archives made by Python's zipfile.

usage: mx_virus.py SMTP_PORT ANN DEV PATTERN MODE
MODE: scanning (clamd up), defer (clamd down, the default policy: 451),
deliver (clamd down, when_unreachable = "deliver": 250)
"""
import io
import smtplib
import sys
import zipfile
from email.message import EmailMessage

from checks import Checks

port, ann, dev, pattern, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].encode(), sys.argv[5]
check = Checks(f"mx virus ({mode})")


def message(subject, attachments):
    m = EmailMessage()
    m["From"] = "a@example.net"
    m["To"] = ann
    m["Subject"] = subject
    m.set_content("see attached\n")
    for name, data, ctype in attachments:
        main, sub = ctype.split("/")
        m.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return m


def send(rcpts, m):
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
        s.ehlo("client.example.net")
        try:
            s.send_message(m, from_addr="a@example.net", to_addrs=rcpts)
            return 250, ""
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()


def zipped(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files:
            z.writestr(name, data)
    return buf.getvalue()


infected = b"some data " + pattern + b" more data"
clean = message(f"clean {mode}", [("report.pdf", b"%PDF-1.7 a report", "application/pdf")])

if mode == "scanning":
    for label, attachments in [
        ("in an attachment", [("notes.bin", infected, "application/octet-stream")]),
        ("in a zip", [("notes.zip", zipped([("readme.txt", b"hi"), ("data/notes.txt", infected)]),
                      "application/zip")]),
    ]:
        code, text = send([ann], message(f"infected {label}", attachments))
        check(f"virus {label}: 550 5.7.1 naming the signature",
              code == 550 and text.startswith("5.7.1") and "Sealmail.Test.Pattern" in text, (code, text))
    code, text = send([ann], clean)
    check("clean mail is taken", code == 250, (code, text))
    code, text = send([dev], message("for dev", [("notes.bin", infected, "application/octet-stream")]))
    check("a recipient exempt from scanning takes it", code == 250, (code, text))
    code, text = send([dev, ann], message("infected for two", [("notes.bin", infected, "application/octet-stream")]))
    check("one exempt recipient of two does not let it through", code == 550, (code, text))
elif mode == "defer":
    code, text = send([ann], clean)
    check("clamd down: 451 4.7.1", code == 451 and text.startswith("4.7.1"), (code, text))
    code, text = send([dev], message("for dev unscanned", []))
    check("clamd down, an exempt recipient still takes mail", code == 250, (code, text))
else:
    code, text = send([ann], clean)
    check("clamd down, when_unreachable = deliver: taken", code == 250, (code, text))
check.finish()
