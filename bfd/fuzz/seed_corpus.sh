#!/bin/sh
# Writes the FRR fixtures of ../tests/wire.rs into corpus/ as fuzzing seeds.
set -eu
cd "$(dirname "$0")"
mkdir -p corpus
grep -o '"2[0-9a-f]\{47\}"' ../tests/wire.rs | tr -d '"' | while read -r hex; do
  printf '%s' "$hex" | xxd -r -p > "corpus/frr-$hex"
done
