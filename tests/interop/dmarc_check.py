"""Reads the DMARC aggregate reports (RFC 7489 §7.2) that reached the
test's SMTP peer: each mail must carry the report as a gzipped XML
attachment (application/gzip, a .xml.gz name) whose root is <feedback>;
the XML is read with Python's ElementTree and written to OUT.json as
{domain: {"org": ..., "begin": ..., "rows": [[ip, count, disposition,
dkim, spf, header_from], ...], "rcpt": [...]}}.

usage: dmarc_check.py SINK_DIR OUT.json
"""
import email
import email.policy
import glob
import gzip
import json
import sys
import xml.etree.ElementTree as ET

from checks import Checks

sink, out = sys.argv[1], sys.argv[2]
check = Checks("dmarc reports sent")
found = {}
for path in sorted(glob.glob(f"{sink}/smtp-*.json")):
    with open(path) as f:
        got = json.load(f)
    m = email.message_from_string(got["data"], policy=email.policy.default)
    if not str(m["Subject"] or "").startswith("Report Domain:"):
        continue
    parts = [p for p in m.walk() if p.get_content_type() == "application/gzip"]
    check(f"{path}: a gzip attachment", len(parts) == 1, [p.get_content_type() for p in m.walk()])
    if not parts:
        continue
    name = parts[0].get_filename() or ""
    check(f"{path}: name ends .xml.gz", name.endswith(".xml.gz"), name)
    root = ET.fromstring(gzip.decompress(parts[0].get_content()))
    ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
    t = lambda e, p: (e.findtext(p.replace("/", "/" + ns).join([ns, ""])) if False else e.findtext("/".join(ns + x for x in p.split("/"))))
    check(f"{path}: <feedback>", root.tag == ns + "feedback", root.tag)
    domain = t(root, "policy_published/domain")
    rows = []
    for rec in root.findall(ns + "record"):
        rows.append([t(rec, "row/source_ip"), int(t(rec, "row/count")), t(rec, "row/policy_evaluated/disposition"),
                     t(rec, "row/policy_evaluated/dkim"), t(rec, "row/policy_evaluated/spf"),
                     t(rec, "identifiers/header_from")])
    found[domain] = {"org": t(root, "report_metadata/org_name"), "begin": t(root, "report_metadata/date_range/begin"),
                     "p": t(root, "policy_published/p"), "rows": sorted(rows), "rcpt": got["rcpt_tos"]}
with open(out, "w") as f:
    json.dump(found, f)
check("reports arrived", len(found) > 0, found)
check.finish()
