"""Reads the TLS reports (RFC 8460) that reached the test's SMTP peer,
checks each mail's form (§5.3: multipart/report with report-type tlsrpt,
TLS-Report-Domain and TLS-Report-Submitter headers, the gzipped JSON as
application/tlsrpt+gzip) and each report against the RFC's schema
(tlsrpt.schema.json, with the jsonschema package), and writes the reports
to OUT.json as {policy-domain: report} for the test to read.

usage: tlsrpt_check.py SINK_DIR SCHEMA.json OUT.json
"""
import email
import email.policy
import glob
import gzip
import json
import sys

import jsonschema

from checks import Checks

sink, schema_file, out = sys.argv[1], sys.argv[2], sys.argv[3]
check = Checks("tls reports")
with open(schema_file) as f:
    schema = json.load(f)
reports = {}
for path in sorted(glob.glob(f"{sink}/smtp-*.json")):
    with open(path) as f:
        got = json.load(f)
    if not any(r.startswith("tlsrpt@") for r in got["rcpt_tos"]):
        continue
    m = email.message_from_string(got["data"], policy=email.policy.default)
    domain = m["TLS-Report-Domain"]
    check(f"{path}: TLS-Report-Domain", bool(domain), dict(m.items()))
    check(f"{path}: TLS-Report-Submitter", m["TLS-Report-Submitter"] == "mail.example.org", m["TLS-Report-Submitter"])
    check(f"{path}: multipart/report; report-type=tlsrpt",
          m.get_content_type() == "multipart/report" and m.get_param("report-type") == "tlsrpt",
          m["Content-Type"])
    check(f"{path}: subject", str(m["Subject"]).startswith(f"Report Domain: {domain} Submitter: mail.example.org Report-ID: <"),
          m["Subject"])
    parts = [p for p in m.iter_attachments() if p.get_content_type() == "application/tlsrpt+gzip"]
    check(f"{path}: one application/tlsrpt+gzip part", len(parts) == 1, [p.get_content_type() for p in m.walk()])
    if not parts:
        continue
    name = parts[0].get_filename() or ""
    check(f"{path}: file name submitter!domain!begin!end.json.gz",
          name.startswith(f"mail.example.org!{domain}!") and name.endswith(".json.gz"), name)
    report = json.loads(gzip.decompress(parts[0].get_content()))
    try:
        jsonschema.validate(report, schema)
        check(f"{domain}: valid against RFC 8460's schema", True)
    except jsonschema.ValidationError as e:
        check(f"{domain}: valid against RFC 8460's schema", False, e.message)
    check(f"{domain}: the policy is the report's domain",
          report["policies"][0]["policy"]["policy-domain"] == domain, report["policies"][0]["policy"])
    reports[domain] = report
with open(out, "w") as f:
    json.dump(reports, f)
check("reports arrived", len(reports) > 0, reports)
check.finish()
