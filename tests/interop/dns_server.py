"""A small authoritative DNS server for tests (dnslib), on 127.0.0.1 UDP
and TCP. Zone: JSON {"name": [["TXT"|"A"|"MX"|"SRV"|"CNAME", "value"], ...]};
an MX value is "PREF host" or "host", an SRV value "PRIO WEIGHT PORT host",
a CNAME value the target (answered, with the target's records of the asked
type, whatever type is asked). Names not in the zone get NXDOMAIN, and names without
the asked type no data, each with an SOA (RFC 2308) so resolvers may cache
the negative answer. Every question is appended to ZONE.json.log as
"name TYPE", so tests can count what was asked.

usage: dns_server.py PORT ZONE.json   (prints "ready" once listening)
"""
import json
import os
import sys
import time

from dnslib import CNAME, MX, QTYPE, RCODE, RR, SOA, SRV, TXT, A
from dnslib.server import BaseResolver, DNSServer

port, zone_file = int(sys.argv[1]), sys.argv[2]
with open(zone_file) as f:
    zone = {k.lower().rstrip("."): v for k, v in json.load(f).items()}


log = open(zone_file + ".log", "a", buffering=1)


def soa(name):
    """The negative answer's SOA: the name's last two labels as the apex."""
    apex = ".".join(name.split(".")[-2:]) + "."
    return RR(apex, QTYPE.SOA, ttl=60,
              rdata=SOA("ns." + apex, "hostmaster." + apex, (1, 3600, 600, 86400, 60)))


class Resolver(BaseResolver):
    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        log.write(f"{name} {qtype}\n")
        if name not in zone:
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(soa(name))
            return reply
        records = zone[name]
        owner = request.q.qname
        for rtype, value in records:
            if rtype == "CNAME" and qtype != "CNAME":
                reply.add_answer(RR(owner, QTYPE.CNAME, rdata=CNAME(value), ttl=60))
                owner = value
                records = zone.get(value.lower().rstrip("."), [])
                break
        for rtype, value in records:
            if rtype != qtype:
                continue
            if rtype == "TXT":
                chunks = [value[i:i + 255].encode() for i in range(0, len(value), 255)]
                rdata = TXT(chunks)
            elif rtype == "A":
                rdata = A(value)
            elif rtype == "CNAME":
                rdata = CNAME(value)
            elif rtype == "SRV":
                prio, weight, port, host = value.split()
                rdata = SRV(int(prio), int(weight), int(port), host)
            else:
                # "10 mx.example.net" or just the host (preference 10).
                pref, _, host = value.partition(" ") if " " in value else ("10", "", value)
                rdata = MX(host, int(pref))
            reply.add_answer(RR(owner, QTYPE.reverse[rtype], rdata=rdata, ttl=60))
        if not reply.rr:
            reply.add_auth(soa(name))
        return reply


for tcp in (False, True):
    DNSServer(Resolver(), port=port, address="127.0.0.1", tcp=tcp).start_thread()
print("ready", flush=True)
# The test stops reading after "ready"; dnslib's request log must not hit a
# closed pipe.
sys.stdout = open(os.devnull, "w")
while True:
    time.sleep(3600)
