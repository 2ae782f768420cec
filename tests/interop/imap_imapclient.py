"""IMAPClient (PyPI) parses what sealmail answers: ENVELOPE address edge
cases (a name in a comment, several groups, a source route, comments inside
an address), BODYSTRUCTURE of a message appended as binary, MULTIAPPEND
(IMAPClient puts two spaces between messages), and the object ids and
MAILBOXID of RFC 8474.

usage: imap_imapclient.py IMAPS_PORT ADDRESS PASSWORD
"""
import sys

from imapclient import IMAPClient

from checks import Checks, insecure_tls

port = int(sys.argv[1])
address, password = sys.argv[2], sys.argv[3]
check = Checks("imap_imapclient")


def message(from_, to, subject, extra=""):
    return (
        f"From: {from_}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n{extra}"
        f"Message-ID: <{subject.replace(' ', '-')}@example.net>\r\n\r\nbody of {subject}\r\n"
    ).encode()


c = IMAPClient("127.0.0.1", port=port, ssl=True, ssl_context=insecure_tls())
c.login(address, password)
caps = c.capabilities()
check("capabilities", b"MULTIAPPEND" in caps and b"OBJECTID" in caps, caps)
c.select_folder("INBOX")

# MULTIAPPEND: three messages in one command.
result = c.multiappend(
    "INBOX",
    [
        message("ann@example.net (Ann Lee)", "A: a@x.org, b@x.org;, B: ;, c@y.org", "one"),
        message(
            "Ann <@relay.example,@hub.example:ann@example.net>",
            "<bob (the builder)@ (at) example.org>",
            "two",
        ),
        message('"Lee, Ann" <ann@example.net>', "undisclosed-recipients:;", "three"),
    ],
)
check("multiappend", result[0] == "OK" and b" 1:3]" in result[1][0], result)

data = c.fetch("1:3", ["ENVELOPE", "BODYSTRUCTURE", "EMAILID", "THREADID"])
check("fetch three", sorted(data) == [1, 2, 3], data)
one, two, three = (data[i][b"ENVELOPE"] for i in (1, 2, 3))

f = one.from_[0]
check("comment names the address", (f.name, f.mailbox, f.host) == (b"Ann Lee", b"ann", b"example.net"), f)
to = [(a.name, a.mailbox, a.host) for a in one.to]
check(
    "groups start and end",
    to
    == [
        (None, b"A", None),
        (None, b"a", b"x.org"),
        (None, b"b", b"x.org"),
        (None, None, None),
        (None, b"B", None),
        (None, None, None),
        (None, b"c", b"y.org"),
    ],
    to,
)

f = two.from_[0]
check("source route in adl", f.route == b"@relay.example,@hub.example" and f.mailbox == b"ann", f)
t = two.to[0]
check("comments inside an address", (t.mailbox, t.host) == (b"bob", b"example.org"), t)

f = three.from_[0]
check("quoted phrase", f.name == b"Lee, Ann" and f.mailbox == b"ann", f)
check("empty group", [(a.mailbox, a.host) for a in three.to] == [(b"undisclosed-recipients", None), (None, None)], three.to)

ids = {i: (data[i][b"EMAILID"], data[i][b"THREADID"]) for i in (1, 2, 3)}
check("email ids differ", len({v[0] for v in ids.values()}) == 3, ids)

# A binary APPEND: the binary part is stored base64, BODYSTRUCTURE says so.
binary = (
    b"Subject: bin\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    b"\x00\x01\x02\xff\x00\r\n--b--\r\n"
)
typ, resp = c._imap._simple_command("APPEND", "INBOX", b"~{%d+}\r\n" % len(binary) + binary)
check("literal8 append", typ == "OK", resp)
c.noop()
# (IMAPClient cannot read a literal8, so BINARY.SIZE stands in for BINARY.)
data = c.fetch("4", ["BODYSTRUCTURE", "BODY.PEEK[2]", "BINARY.SIZE[2]"])
bs = data[4][b"BODYSTRUCTURE"]
check("multipart structure", bs.is_multipart and len(bs[0]) == 2, bs)
part2 = bs[0][1]
check("binary part re-encoded", part2[5] == b"BASE64", part2)
check("BODY[2] is base64", data[4].get(b"BODY[2]") == b"AAEC/wA=", data[4])
check("BINARY.SIZE[2] is the decoded size", data[4].get(b"BINARY.SIZE[2]") == 5, data[4])

# MAILBOXID survives RENAME.
c.create_folder("Projects")
before = c.folder_status("Projects", [b"MAILBOXID"])
c.rename_folder("Projects", "Work")
after = c.folder_status("Work", [b"MAILBOXID"])
check("mailbox id kept by rename", before[b"MAILBOXID"] == after[b"MAILBOXID"], (before, after))

c.logout()
check.finish()
