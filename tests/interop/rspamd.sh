#!/bin/bash
# Runs Debian's rspamd in the foreground for tests and the bench: the
# stock configuration with local overrides in DIR, the normal worker on
# 127.0.0.1:PORT, the controller on CONTROLLER_PORT, no proxy, and one
# rule of the tests' (SEALMAIL_TEST_SPAMMY scores 10 a subject containing
# "sealmail-spammy-test", which puts it past "add header").
#
# usage: rspamd.sh DIR PORT CONTROLLER_PORT
set -eu
dir=$1 port=$2 controller=$3
mkdir -p "$dir/local.d" "$dir/db" "$dir/run" "$dir/log"
echo "bind_socket = \"127.0.0.1:$port\";" > "$dir/local.d/worker-normal.inc"
echo "bind_socket = \"127.0.0.1:$controller\";" > "$dir/local.d/worker-controller.inc"
echo "enabled = false;" > "$dir/local.d/worker-proxy.inc"
echo "type = \"file\"; filename = \"$dir/log/rspamd.log\"; level = \"error\";" > "$dir/local.d/logging.inc"
echo "/sealmail-spammy-test/i" > "$dir/spammy.map"
cat > "$dir/local.d/multimap.conf" <<CONF
SEALMAIL_TEST_SPAMMY {
  type = "header";
  header = "Subject";
  regexp = true;
  map = "$dir/spammy.map";
  score = 10.0;
}
CONF
as_root=()
# As root, rspamd would switch to its own user, who cannot write in DIR.
if [ "$(id -u)" = 0 ]; then as_root=(-i -u root -g root); fi
exec rspamd -f "${as_root[@]}" -c /etc/rspamd/rspamd.conf \
  --var="LOCAL_CONFDIR=$dir" --var="DBDIR=$dir/db" --var="RUNDIR=$dir/run" \
  --var="LOGDIR=$dir/log" -p "$dir/run/rspamd.pid"
