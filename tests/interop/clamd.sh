#!/bin/bash
# Runs Debian's clamd in the foreground for tests and the bench: its own
# configuration in DIR, a Unix socket DIR/clamd.sock, and a database of
# one signature NAME matching the hex PATTERN anywhere (clamd cannot fetch
# signatures here).
#
# usage: clamd.sh DIR NAME PATTERN_HEX
set -eu
dir=$1 name=$2 pattern=$3
mkdir -p "$dir/db"
echo "$name:0:*:$pattern" > "$dir/db/test.ndb"
cat > "$dir/clamd.conf" <<CONF
LocalSocket $dir/clamd.sock
DatabaseDirectory $dir/db
TemporaryDirectory $dir
Foreground yes
LogFile $dir/clamd.log
PidFile $dir/clamd.pid
MaxThreads 4
CONF
exec clamd -c "$dir/clamd.conf"
