#!/usr/bin/env bash
# Builds sealmail's Debian package from a built binary:
#   packaging/deb/build.sh BINARY OUT.deb [COMPRESSION]
# (`make deb` passes the release binary.) Contents: the binary, the
# systemd unit, sealmail(1) made from the CLI's own definitions, the
# fail2ban filter and jail and a logrotate file as examples; postinst creates the `sealmail`
# system user and /var/lib/sealmail (0700, its own).
set -euo pipefail
bin=$1
out=$2
compression=${3:-xz}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

install -D -m 0755 "$bin" "$stage/usr/bin/sealmail"
sed 's|/usr/local/bin/sealmail|/usr/bin/sealmail|' "$root/packaging/sealmail.service" \
  > "$stage/sealmail.service"
install -D -m 0644 "$stage/sealmail.service" "$stage/lib/systemd/system/sealmail.service"
rm "$stage/sealmail.service"
mkdir -p "$stage/usr/share/man/man1"
"$bin" manpage | gzip -9n > "$stage/usr/share/man/man1/sealmail.1.gz"
doc="$stage/usr/share/doc/sealmail"
install -D -m 0644 "$root/README.md" "$doc/README.md"
install -D -m 0644 "$root/docs/operations.md" "$doc/operations.md"
install -D -m 0644 "$root/packaging/fail2ban/filter.d/sealmail.conf" "$doc/examples/fail2ban/filter.d/sealmail.conf"
install -D -m 0644 "$root/packaging/fail2ban/jail.d/sealmail.conf" "$doc/examples/fail2ban/jail.d/sealmail.conf"
install -D -m 0644 "$root/packaging/logrotate/sealmail" "$doc/examples/logrotate/sealmail"
printf 'sealmail is free software under the GNU Affero General Public License,\nversion 3 or later: /usr/share/common-licenses/AGPL-3 or https://www.gnu.org/licenses/agpl-3.0.txt\n' \
  > "$doc/copyright"

mkdir -p "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: sealmail
Version: $version
Architecture: $arch
Maintainer: sealmail developers <postmaster@localhost>
Installed-Size: $size
Depends: libc6, libssl3 | libssl3t64, adduser, ca-certificates
Section: mail
Priority: optional
Description: mail server whose mailboxes only their owners can open
 One binary runs the MX, IMAP, POP3, authenticated submission with an
 outbound queue, and scheduled backups. Each mailbox is its own
 encrypted SQLite file that only its owner's password opens.
CONTROL
install -m 0755 "$here/postinst" "$stage/DEBIAN/postinst"
install -m 0755 "$here/prerm" "$stage/DEBIAN/prerm"
install -m 0755 "$here/postrm" "$stage/DEBIAN/postrm"
dpkg-deb --root-owner-group -Z"$compression" --build "$stage" "$out" >/dev/null
echo "$out"
