"""Mails DMARC aggregate reports (RFC 7489 §7.2, appendix C's XML) about
example.org to sealmail's MX, as receivers send them: zipped, gzipped and
plain XML attachments, one report sent twice, one report about another
domain, and a gzip that inflates past sealmail's limit; built with the
email, zipfile and gzip modules, sent with smtplib.

usage: dmarc_reports.py SMTP_PORT RUA
"""
import gzip
import io
import smtplib
import sys
import zipfile
from email.message import EmailMessage

from checks import Checks

port, rua = int(sys.argv[1]), sys.argv[2]
check = Checks("dmarc reports")


def feedback(org, rid, domain, rows):
    records = "".join(
        f"<record><row><source_ip>{ip}</source_ip><count>{n}</count><policy_evaluated>"
        f"<disposition>{disp}</disposition><dkim>{dkim}</dkim><spf>{spf}</spf></policy_evaluated></row>"
        f"<identifiers><header_from>{domain}</header_from></identifiers><auth_results>"
        f"<dkim><domain>{domain}</domain><result>{dkim}</result></dkim>"
        f"<spf><domain>{domain}</domain><result>{spf}</result></spf></auth_results></record>"
        for ip, n, disp, dkim, spf in rows)
    return (f'<?xml version="1.0" encoding="UTF-8"?><feedback><report_metadata><org_name>{org}</org_name>'
            f"<email>noreply-dmarc@{org}</email><report_id>{rid}</report_id><date_range>"
            f"<begin>1764460800</begin><end>1764547199</end></date_range></report_metadata>"
            f"<policy_published><domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>reject</p>"
            f"<sp>reject</sp><pct>100</pct></policy_published>{records}</feedback>").encode()


def send(org, name, data, ctype, subject_domain="example.org"):
    m = EmailMessage()
    m["From"] = f"noreply-dmarc@{org}"
    m["To"] = rua
    m["Subject"] = f"Report domain: {subject_domain} Submitter: {org} Report-ID: {name}"
    m.set_content("This is an aggregate report.\n")
    main, sub = ctype.split("/")
    m.add_attachment(data, maintype=main, subtype=sub, filename=name)
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
        s.ehlo("reports.example.net")
        s.send_message(m, from_addr=f"noreply-dmarc@{org}", to_addrs=[rua])


def zipped(name, data):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return buf.getvalue()


google = feedback("google.com", "g-1", "example.org", [
    ("192.0.2.10", 40, "none", "pass", "pass"),
    ("203.0.113.66", 6, "reject", "fail", "fail"),
])
yahoo = feedback("yahoo.com", "y-1", "example.org", [
    ("192.0.2.10", 12, "none", "pass", "fail"),
    ("198.51.100.7", 2, "quarantine", "fail", "fail"),
])
outlook = feedback("outlook.com", "o-1", "example.org", [("192.0.2.10", 3, "none", "fail", "pass")])
send("google.com", "google.com!example.org!1764460800!1764547199.zip",
     zipped("google.com!example.org!1764460800!1764547199.xml", google), "application/zip")
send("google.com", "google.com!example.org!1764460800!1764547199.zip",
     zipped("google.com!example.org!1764460800!1764547199.xml", google), "application/zip")
send("yahoo.com", "yahoo.com!example.org!1764460800!1764547199.xml.gz", gzip.compress(yahoo), "application/gzip")
send("outlook.com", "outlook.com!example.org!1764460800!1764547199.xml", outlook, "text/xml")
send("other.net", "other.net!other.example!1.xml", feedback("other.net", "x", "other.example", []), "text/xml",
     "other.example")
bomb = gzip.compress(b"<feedback>" + b" " * (17 << 20) + b"</feedback>")
send("bomb.example", "bomb.example!example.org!1!2.xml.gz", bomb, "application/gzip")
check("sent", True)
check.finish()
