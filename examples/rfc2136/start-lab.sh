#!/bin/sh
# Start a throw-away BIND9 primary for example.test on 127.0.0.1:$LAB_PORT (default 5300),
# updatable with the TSIG key in lab.key (created here on first run). Runs in the
# foreground; Ctrl-C stops it. Needs bind9 (apt-get install bind9); no root needed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
port=${LAB_PORT:-5300}
state=${LAB_DIR:-"${TMPDIR:-/tmp}/mxflip-lab-$port"}
named=$(command -v named || echo /usr/sbin/named)
keygen=$(command -v tsig-keygen || echo /usr/sbin/tsig-keygen)

[ -x "$named" ] || { echo "start-lab.sh: named not found (apt-get install bind9)" >&2; exit 1; }
if [ ! -f "$here/lab.key" ]; then
    "$keygen" -a hmac-sha256 mxflip-lab > "$here/lab.key"
    chmod 600 "$here/lab.key"
fi
mkdir -p "$state"
cp "$here/example.test.zone" "$state/example.test.zone"
cat > "$state/named.conf" <<CONF
include "$here/lab.key";
options {
    directory "$state";
    pid-file "$state/named.pid";
    session-keyfile "$state/session.key";
    listen-on port $port { 127.0.0.1; };
    listen-on-v6 { none; };
    recursion no;
    dnssec-validation no;
    notify no;
};
controls { };
zone "example.test" {
    type primary;
    file "example.test.zone";
    update-policy { grant mxflip-lab zonesub MX; };
};
CONF
echo "start-lab.sh: BIND9 for example.test on 127.0.0.1:$port (state in $state)" >&2
exec "$named" -g -4 -n 1 -c "$state/named.conf"
