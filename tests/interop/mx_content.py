"""Sends mail with attachments that run when opened (by name, by type, by
their first bytes, inside zip, gzip and 7z archives) and clean mail to
sealmail's MX, with smtplib and the email package; archives are made by
Python's zipfile and gzip, and by 7-Zip's 7zz (its default, compressed
header, and without it).

usage: mx_content.py SMTP_PORT ANN DEV CANARY
(DEV takes executables: it is in mx.allow_executables)
"""
import gzip
import os
import subprocess
import sys
import tempfile

from checks import Checks, send_to_mx, with_attachments, zipped

port, ann, dev, canary = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
check = Checks("mx content")
PE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + b"\x00" * 50 + canary.encode()


def message(subject, attachments):
    return with_attachments(ann, subject, f"{canary} see attached\n", attachments)


def send(rcpts, m):
    return send_to_mx(port, rcpts, m)


def sevenz(files, *options):
    with tempfile.TemporaryDirectory() as d:
        for name, data in files:
            path = os.path.join(d, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        out = os.path.join(d, "out.7z")
        subprocess.run(["7zz", "a", "-bd", "-bso0", *options, out, *[n for n, _ in files]], cwd=d, check=True)
        with open(out, "rb") as f:
            return f.read()


def refused(label, attachments, naming, rcpts=None):
    code, text = send(rcpts or [ann], message(f"refused {label}", attachments))
    check(f"{label}: 550 5.7.1 naming {naming}",
          code == 550 and text.startswith("5.7.1") and naming in text, (code, text))


refused("exe by name", [("invoice.pdf.exe", b"\x00\x01", "application/octet-stream")], "invoice.pdf.exe")
refused("script by name", [("run.js", b"WScript.Echo(1)", "application/javascript")], "run.js")
refused("program posing as a picture", [("cat.jpg", PE, "image/jpeg")], "Windows program")
refused("script in a zip", [("documents.zip", zipped([("a.txt", b"hi"), ("docs/run.vbs", b"x")]), "application/zip")],
        "docs/run.vbs")
refused("program in a zip", [("photos.zip", zipped([("holiday.jpg", PE)]), "application/zip")], "holiday.jpg")
refused("program in a gzip", [("tool.gz", gzip.compress(PE), "application/gzip")], "Windows program")
refused("script in a 7z", [("files.7z", sevenz([("a.txt", b"hi"), ("bin/run.cmd", b"x")]), "application/x-7z-compressed")],
        "bin/run.cmd")
refused("program in a 7z with a plain header",
        [("files.7z", sevenz([("setup.exe", PE)], "-mhc=off"), "application/x-7z-compressed")], "setup.exe")
refused("one recipient of two opted out", [("setup.exe", PE, "application/octet-stream")], "setup.exe",
        rcpts=[dev, ann])

code, text = send([ann], message("clean pdf and zip", [
    ("report.pdf", b"%PDF-1.7 " + canary.encode(), "application/pdf"),
    ("notes.zip", zipped([("notes.txt", b"plain notes"), ("inner.zip", zipped([("x.exe", PE)]))]),
     "application/zip"),
    ("photos.7z", sevenz([("holiday.jpg", b"\xff\xd8\xff jpeg")]), "application/x-7z-compressed"),
]))
check("clean mail (and a zip within a zip, one level only) is taken", code == 250, (code, text))
code, text = send([dev], message("for dev", [("setup.exe", PE, "application/octet-stream")]))
check("a recipient in allow_executables takes it", code == 250, (code, text))
check.finish()
