#!/bin/sh
# Boots UML with capture-init.sh and leaves v1/v0 pcaps and ip_vs_conn snapshots in $1
# (default: ./capture-out). Needs /usr/bin/linux.uml, ipvsadm, tcpdump, socat, busybox, python3.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(mkdir -p "${1:-capture-out}" && cd "${1:-capture-out}" && pwd)
rm -f "$OUT/capture.log"
timeout 120 linux.uml mem=512M rootfstype=hostfs rootflags=/ rw \
    init="$HERE/capture-init.sh" OUT="$OUT" con=null con0=null,fd:1 >"$OUT/console.log" 2>&1 || true
grep -q CAPTURE_DONE "$OUT/capture.log" || { echo "capture failed, see $OUT/capture.log" >&2; exit 1; }
echo "capture in $OUT"
