#!/usr/bin/env bash
# Fails when any committed generated folder differs from what `npm run generate`
# would produce now: regenerates every template into a temporary directory and
# compares each output folder with its committed copy. Then the same for the API
# reference, docs/api/ (`npm run docs:api`), which also fails on any TypeDoc warning
# (a public symbol without a doc comment, a broken link). A tree without
# tools/typedoc/typedoc.config.mjs (a partial copy of the repository, as
# test/toolchain.test.ts makes) has no API reference to check.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
bash scripts/generate.sh --output "$tmp"
stale=0
for template in $(bash scripts/generate.sh --list); do
  for out in $(awk '$1 == "out:" { print $2 }' "$template" | sort -u); do
    if grep -q '^clean: true' "$template"; then
      if ! diff -r -q "$tmp/$out" "$out" >>"$tmp/diff.txt" 2>&1; then stale=1; fi
      continue
    fi
    # Without `clean`, the folder holds hand-written files too (python/): only the files
    # the template writes are compared.
    while IFS= read -r file; do
      if ! cmp -s "$tmp/$out/$file" "$out/$file"; then
        echo "differs: $out/$file" >>"$tmp/diff.txt"
        stale=1
      fi
    done < <(cd "$tmp/$out" && find . -type f | sed 's|^\./||')
  done
done
if [ "$stale" -ne 0 ]; then
  echo "generated code is stale: run 'npm run generate' and commit it" >&2
  sed 's/^/  /' "$tmp/diff.txt" >&2
  exit 1
fi
if [ -f tools/typedoc/typedoc.config.mjs ]; then
  if ! bash scripts/api-docs.sh --output "$tmp/docs-api" >"$tmp/typedoc.txt" 2>&1; then
    echo "the API reference cannot be generated: fix the doc comments TypeDoc names" >&2
    sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/  /' "$tmp/typedoc.txt" >&2
    exit 1
  fi
  if ! diff -r -q "$tmp/docs-api" docs/api >"$tmp/diff.txt" 2>&1; then
    echo "the API reference is stale: run 'npm run docs:api' and commit docs/api" >&2
    sed 's/^/  /' "$tmp/diff.txt" >&2
    exit 1
  fi
fi
echo "generated code is up to date"
