#!/bin/bash
# Prepares a DNSSEC-signed test zone and the two servers that make it
# real, for DANE tests: ldns-signzone signs DIR/zone (origin ORIGIN) with a
# fresh KSK and ZSK; nsd serves the signed zone on 127.0.0.1:NSD_PORT;
# unbound, trusting the KSK as the zone's anchor, validates on
# 127.0.0.1:UNBOUND_PORT and sets the AD bit on what it proved. The
# servers are started by the caller: nsd -d -c DIR/nsd.conf and
# unbound -d -c DIR/unbound.conf.
#
# usage: dnssec.sh DIR ORIGIN NSD_PORT UNBOUND_PORT
set -eu
dir=$1 origin=$2 nsd_port=$3 unbound_port=$4
cd "$dir"
ksk=$(ldns-keygen -a ECDSAP256SHA256 -k "$origin")
zsk=$(ldns-keygen -a ECDSAP256SHA256 "$origin")
ldns-signzone -o "$origin" zone "$zsk" "$ksk"
cat > nsd.conf <<CONF
server:
  ip-address: 127.0.0.1@$nsd_port
  port: $nsd_port
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "$dir"
  database: ""
  pidfile: "$dir/nsd.pid"
  xfrdfile: "$dir/xfrd.state"
  zonelistfile: "$dir/zone.list"
  logfile: "$dir/nsd.log"
remote-control:
  control-enable: no
zone:
  name: "$origin"
  zonefile: "zone.signed"
CONF
cat > unbound.conf <<CONF
server:
  interface: 127.0.0.1
  port: $unbound_port
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$dir"
  pidfile: "$dir/unbound.pid"
  use-syslog: no
  logfile: "$dir/unbound.log"
  do-not-query-localhost: no
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  module-config: "validator iterator"
  trust-anchor-file: "$dir/$ksk.ds"
  val-log-level: 2
  # .test is a special-use name (RFC 6761) unbound answers itself.
  local-zone: "test." nodefault
remote-control:
  control-enable: no
stub-zone:
  name: "$origin"
  stub-addr: 127.0.0.1@$nsd_port
CONF
