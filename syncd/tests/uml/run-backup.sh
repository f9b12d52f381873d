#!/bin/sh
# Boots UML with backup-init.sh: a kernel backup sync daemon fed by examples/send_sync.
# Usage: run-backup.sh SEND_SYNC_BINARY [OUT_DIR]   (build it: cargo build -p syncd --example send_sync)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
OUT=$(mkdir -p "${2:-backup-out}" && cd "${2:-backup-out}" && pwd)
rm -f "$OUT/backup.log"
timeout 120 linux.uml mem=512M rootfstype=hostfs rootflags=/ rw \
    init="$HERE/backup-init.sh" OUT="$OUT" SEND_SYNC="$BIN" con=null con0=null,fd:1 >"$OUT/console.log" 2>&1 || true
grep -E '^(PASS|FAIL)' "$OUT/backup.log" || true
grep -q BACKUP_OK "$OUT/backup.log" || { echo "backup check failed, see $OUT/backup.log" >&2; exit 1; }
echo BACKUP_OK
