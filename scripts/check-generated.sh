#!/usr/bin/env bash
# Fails when any committed generated folder differs from what `npm run generate`
# would produce now: regenerates every template into a temporary directory and
# compares each output folder with its committed copy.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
bash scripts/generate.sh --output "$tmp"
stale=0
for template in $(bash scripts/generate.sh --list); do
  for out in $(awk '$1 == "out:" { print $2 }' "$template" | sort -u); do
    if ! diff -r -q "$tmp/$out" "$out" >>"$tmp/diff.txt" 2>&1; then stale=1; fi
  done
done
if [ "$stale" -ne 0 ]; then
  echo "generated code is stale: run 'npm run generate' and commit it" >&2
  sed 's/^/  /' "$tmp/diff.txt" >&2
  exit 1
fi
echo "generated code is up to date"
