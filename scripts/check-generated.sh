#!/usr/bin/env bash
# Fails when the committed generated code differs from what `npm run generate`
# would produce now: regenerates into a temporary directory and compares.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
PATH="$PATH:$root/node_modules/.bin" buf generate --output "$tmp"
if ! diff -r -q "$tmp/gen" gen >"$tmp/diff.txt"; then
  echo "generated code is stale: run 'npm run generate' and commit gen/" >&2
  sed 's/^/  /' "$tmp/diff.txt" >&2
  exit 1
fi
echo "generated code is up to date"
