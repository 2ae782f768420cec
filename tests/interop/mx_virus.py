"""Sends mail to sealmail's MX while it scans with a clamd that knows one
test signature (PATTERN): in an attachment, in a zip inside one, clean
mail, and mail for a recipient exempt from scanning; with smtplib and the
email package, archives made by Python's zipfile.

usage: mx_virus.py SMTP_PORT ANN DEV PATTERN MODE
MODE: scanning (clamd up), defer (clamd down, the default policy: 451),
deliver (clamd down, when_unreachable = "deliver": 250)
"""
import sys

from checks import Checks, send_to_mx, with_attachments, zipped

port, ann, dev, pattern, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].encode(), sys.argv[5]
check = Checks(f"mx virus ({mode})")


def message(subject, attachments):
    return with_attachments(ann, subject, "see attached\n", attachments)


def send(rcpts, m):
    return send_to_mx(port, rcpts, m)


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
