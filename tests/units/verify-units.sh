#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# systemd-analyze verify on every unit in units/ (templates as an instance), with ExecStart= pointing at
# the freshly built binary so the check that the executable exists is real; the stacks', the reuseport
# and the notify-reload drop-ins with them.
set -euo pipefail
src=$1
bindir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for f in "$src"/units/*; do
    name=$(basename "$f" .in)
    name=${name/@./@verify.}
    sed "s|@BINDIR@|$bindir|g" "$f" >"$tmp/$name"
done
# The stacks' drop-ins (contrib/examples/*/drop-in.conf) apply to the template service.
mkdir -p "$tmp/corral@verify.service.d"
for f in "$src"/contrib/examples/*/drop-in.conf; do
    cp "$f" "$tmp/corral@verify.service.d/$(basename "$(dirname "$f")").conf"
done
# The reuseport drop-in applies to the template service too.
cp "$src/contrib/reuseport.conf" "$tmp/corral@verify.service.d/"
# The notify-reload drop-in is for systemd >= 253; older versions rightly reject Type=notify-reload.
version=$(systemctl --version | awk 'NR == 1 { print $2 }')
if [ "${version%%.*}" -ge 253 ]; then
    mkdir -p "$tmp/corral@verify.service.d"
    cp "$src/contrib/notify-reload.conf" "$tmp/corral@verify.service.d/"
    echo "systemd $version: verifying the notify-reload drop-in too"
else
    echo "systemd $version: the notify-reload drop-in needs >= 253 and is not verified on this host"
fi

cd "$tmp"
units=(*.service *.socket)
echo "verifying: ${units[*]}"
# Any warning fails the check: systemd-analyze prints them but exits 0 for some.
out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "${units[@]}" 2>&1) || {
    echo "$out"
    exit 1
}
if [ -n "$out" ]; then
    echo "$out"
    exit 1
fi
echo "all units verified"
