"""Checks what sealmail's HTTP(S) listener serves, as clients read it.

usage: web_check.py site HTTP_PORT HTTPS_PORT IMAPS_PORT SUBMISSIONS_PORT
       web_check.py metrics METRICS_PORT      (prints the samples as JSON)
       web_check.py srv DNS_PORT DOMAIN

site: Thunderbird's autoconfig (checked against the element and value rules
Thunderbird's autoconfig validator documents), Autodiscover (POX), an Apple
profile read by plistlib, the MTA-STS policy over HTTPS, and the answers to
unknown domains, bad paths and wrong methods.
srv: finds the IMAP and submission servers of DOMAIN as RFC 6186 clients
do, with dnspython (SRV, then the target's address) from the DNS server on
DNS_PORT, and logs the greetings of both with imaplib and smtplib.
metrics: parses /metrics with prometheus_client's parser and, when promtool
is installed, lints it with `promtool check metrics`.
"""
import http.client
import json
import plistlib
import shutil
import ssl
import subprocess
import sys
import xml.etree.ElementTree as ET

PASSED, FAILED = 0, 0


def check(what, ok, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
    else:
        FAILED += 1
        print(f"FAIL {what}: {detail}")


def insecure():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def request(port, host, path, method="GET", body=None, tls=False, headers=None):
    if tls:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=insecure())
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = {"Host": host}
    h.update(headers or {})
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data


SOCKET_TYPES = {"plain", "SSL", "STARTTLS"}
AUTH_TYPES = {"password-cleartext", "password-encrypted", "NTLM", "GSSAPI",
              "client-IP-address", "TLS-client-cert", "OAuth2", "none"}


def thunderbird_valid(xml_bytes, domain):
    """The rules of Thunderbird's autoconfig format: clientConfig version 1.1
    with one emailProvider (id, domain+, displayName, displayShortName, at
    least one incoming and one outgoing server), each server with hostname,
    port 1..65535, a known socketType and authentication, and a username."""
    root = ET.fromstring(xml_bytes)
    problems = []
    if root.tag != "clientConfig" or root.get("version") != "1.1":
        problems.append(f"root {root.tag} version {root.get('version')}")
    providers = root.findall("emailProvider")
    if len(providers) != 1:
        return [f"{len(providers)} emailProvider elements"]
    p = providers[0]
    if not p.get("id"):
        problems.append("emailProvider without id")
    if domain not in [d.text for d in p.findall("domain")]:
        problems.append(f"domain {domain} not listed")
    for name in ("displayName", "displayShortName"):
        if not (p.findtext(name) or "").strip():
            problems.append(f"no {name}")
    incoming, outgoing = p.findall("incomingServer"), p.findall("outgoingServer")
    if not incoming or not outgoing:
        problems.append("needs incoming and outgoing servers")
    for s in incoming + outgoing:
        kind = s.get("type")
        allowed = {"imap", "pop3", "exchange"} if s.tag == "incomingServer" else {"smtp"}
        if kind not in allowed:
            problems.append(f"{s.tag} type {kind}")
        for name in ("hostname", "port", "socketType", "authentication", "username"):
            if s.find(name) is None:
                problems.append(f"{s.tag} without {name}")
        port = s.findtext("port") or ""
        if not port.isdigit() or not 0 < int(port) < 65536:
            problems.append(f"port {port!r}")
        if s.findtext("socketType") not in SOCKET_TYPES:
            problems.append(f"socketType {s.findtext('socketType')}")
        if s.findtext("authentication") not in AUTH_TYPES:
            problems.append(f"authentication {s.findtext('authentication')}")
    return problems


def servers_of(xml_bytes):
    root = ET.fromstring(xml_bytes)
    p = root.find("emailProvider")
    return [(s.tag, s.get("type"), s.findtext("hostname"), int(s.findtext("port")),
             s.findtext("socketType")) for s in p if s.tag.endswith("Server")]


def site(http_port, https_port, imaps_port, submissions_port):
    addr = "ann%40example.org"
    # Thunderbird: autoconfig.DOMAIN over HTTP and HTTPS, and the
    # well-known path on the domain itself.
    for port, tls, host, path in [
        (http_port, False, "autoconfig.example.org", f"/mail/config-v1.1.xml?emailaddress={addr}"),
        (https_port, True, "autoconfig.example.org", "/mail/config-v1.1.xml"),
        (https_port, True, "example.org", f"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress={addr}"),
    ]:
        status, headers, body = request(port, host, path, tls=tls)
        check(f"autoconfig {host}{path} status", status == 200, status)
        check("autoconfig content type", headers.get("content-type", "").startswith("text/xml"), headers)
        problems = thunderbird_valid(body, "example.org")
        check("autoconfig follows Thunderbird's format", not problems, problems)
        servers = servers_of(body)
        check("IMAP over TLS first", servers[0] == ("incomingServer", "imap", "mail.example.org", imaps_port, "SSL"), servers)
        check("submission over TLS", ("outgoingServer", "smtp", "mail.example.org", submissions_port, "SSL") in servers, servers)
    status, _, body = request(http_port, "autoconfig.other.net", "/mail/config-v1.1.xml")
    check("autoconfig of a domain not served is 404", status == 404, (status, body))
    status, _, _ = request(http_port, "autoconfig.example.org",
                           "/mail/config-v1.1.xml?emailaddress=ann%40other.net")
    check("autoconfig for an address not served is 404", status == 404, status)

    # Autodiscover (POX), as Outlook posts it.
    req = ("<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/"
           "exchange/autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>ann@example.org"
           "</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/"
           "outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>")
    status, headers, body = request(https_port, "autodiscover.example.org", "/Autodiscover/Autodiscover.xml",
                                    method="POST", body=req.encode(), tls=True,
                                    headers={"Content-Type": "text/xml"})
    check("autodiscover status", status == 200, (status, body))
    ns = {"r": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}
    root = ET.fromstring(body)
    protocols = {p.findtext("r:Type", namespaces=ns): p for p in root.iterfind(".//r:Protocol", ns)}
    check("autodiscover IMAP and SMTP", set(protocols) == {"IMAP", "SMTP"}, list(protocols))
    imap = protocols.get("IMAP")
    check("autodiscover IMAP server",
          imap is not None and imap.findtext("r:Server", namespaces=ns) == "mail.example.org"
          and imap.findtext("r:Port", namespaces=ns) == str(imaps_port)
          and imap.findtext("r:SSL", namespaces=ns) == "on"
          and imap.findtext("r:LoginName", namespaces=ns) == "ann@example.org", body)
    status, _, _ = request(https_port, "autodiscover.example.org", "/autodiscover/autodiscover.xml",
                           method="POST", body=req.replace("example.org", "other.net").encode(), tls=True)
    check("autodiscover for another domain is 404", status == 404, status)
    status, headers, _ = request(https_port, "autodiscover.example.org", "/autodiscover/autodiscover.xml", tls=True)
    check("autodiscover GET is 405 with Allow", status == 405 and headers.get("allow") == "POST", (status, headers))
    status, _, _ = request(https_port, "autodiscover.example.org", "/autodiscover/autodiscover.xml",
                           method="POST", body=b"<x>" * 10000, tls=True)
    check("autodiscover over 16 KiB is 413", status == 413, status)
    status, _, body = request(https_port, "autodiscover.example.org", "/autodiscover/autodiscover.xml",
                              method="POST", body=b"<Request/>", tls=True)
    check("autodiscover without an address is 400", status == 400 and b"EMailAddress" in body, (status, body))

    # Apple profile.
    status, headers, body = request(https_port, "autoconfig.example.org", f"/apple.mobileconfig?emailaddress={addr}", tls=True)
    check("mobileconfig status", status == 200, status)
    check("mobileconfig type", headers.get("content-type") == "application/x-apple-aspen-config", headers)
    profile = plistlib.loads(body)
    account = profile["PayloadContent"][0]
    check("profile is a Configuration", profile["PayloadType"] == "Configuration", profile)
    check("mail payload", account["PayloadType"] == "com.apple.mail.managed"
          and account["EmailAddress"] == "ann@example.org"
          and account["IncomingMailServerHostName"] == "mail.example.org"
          and account["IncomingMailServerPortNumber"] == imaps_port
          and account["IncomingMailServerUseSSL"] is True
          and account["OutgoingMailServerPortNumber"] == submissions_port, account)
    check("no password in the profile",
          not any("Password" in k and k != "OutgoingPasswordSameAsIncomingPassword" for k in account), list(account))
    status, _, _ = request(https_port, "autoconfig.example.org", "/apple.mobileconfig?emailaddress=x%40other.net", tls=True)
    check("mobileconfig for another domain is 404", status == 404, status)

    # MTA-STS: over HTTPS only, for served domains.
    status, headers, body = request(https_port, "mta-sts.example.org", "/.well-known/mta-sts.txt", tls=True)
    check("mta-sts status", status == 200, status)
    check("mta-sts type", headers.get("content-type", "").startswith("text/plain"), headers)
    lines = body.decode().split("\r\n")
    check("mta-sts policy", lines[:2] == ["version: STSv1", "mode: enforce"]
          and "mx: mail.example.org" in lines and any(l.startswith("max_age: ") for l in lines), lines)
    status, _, _ = request(https_port, "mta-sts.other.net", "/.well-known/mta-sts.txt", tls=True)
    check("mta-sts of a domain not served is 404", status == 404, status)
    status, headers, _ = request(http_port, "mta-sts.example.org", "/.well-known/mta-sts.txt")
    check("mta-sts over plain HTTP redirects to HTTPS",
          status == 301 and headers.get("location") == "https://mta-sts.example.org/.well-known/mta-sts.txt",
          (status, headers))

    # Bad paths and hosts.
    for path in ["/../../etc/passwd", "/mail/../../etc/passwd", "/.well-known/acme-challenge/../x"]:
        status, _, _ = request(http_port, "autoconfig.example.org", path)
        check(f"{path} is refused", status == 400, status)
    status, _, _ = request(http_port, "autoconfig.example.org", "/.well-known/acme-challenge/nothing")
    check("unknown ACME token is 404", status == 404, status)
    status, _, _ = request(https_port, "www.unknown.test", "/", tls=True)
    check("unknown host is 404", status == 404, status)


def metrics(port):
    from prometheus_client.parser import text_string_to_metric_families
    status, headers, body = request(port, "localhost", "/metrics")
    if status != 200:
        print(f"FAIL /metrics answered {status}")
        sys.exit(1)
    text = body.decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + "{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}"
            samples[key] = s.value
    if shutil.which("promtool"):
        lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
        if lint.returncode != 0:
            print(f"FAIL promtool: {lint.stdout.decode()} {lint.stderr.decode()}")
            sys.exit(1)
    print(json.dumps({"type": headers.get("content-type"), "samples": samples}))


def srv(dns_port, domain):
    import imaplib
    import smtplib
    import dns.resolver
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = dns_port
    found = {}
    for service in ("imaps", "submissions"):
        answers = sorted(resolver.resolve(f"_{service}._tcp.{domain}", "SRV"),
                         key=lambda r: (r.priority, -r.weight))
        target = str(answers[0].target).rstrip(".")
        address = resolver.resolve(target, "A")[0].address
        found[service] = (target, address, answers[0].port)
    target, address, port = found["imaps"]
    imap = imaplib.IMAP4_SSL(address, port, ssl_context=insecure(), timeout=30)
    check("IMAP server found by SRV greets", imap.welcome.startswith(b"* OK"), imap.welcome)
    imap.logout()
    target, address, port = found["submissions"]
    with smtplib.SMTP_SSL(address, port, context=insecure(), timeout=30) as smtp:
        code, _ = smtp.ehlo("client.example.net")
        check("submission server found by SRV greets", code == 250, code)
    print(json.dumps(found))


if __name__ == "__main__":
    if sys.argv[1] == "srv":
        srv(int(sys.argv[2]), sys.argv[3])
        print(f"{PASSED} passed, {FAILED} failed")
        sys.exit(1 if FAILED else 0)
    if sys.argv[1] == "metrics":
        metrics(int(sys.argv[2]))
        sys.exit(0)
    site(*(int(a) for a in sys.argv[2:6]))
    print(f"{PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)
