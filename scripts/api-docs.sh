#!/usr/bin/env bash
# Writes the API reference, docs/api/ (Markdown), from the doc comments of the package's
# entry points (taskwire, taskwire/worker, taskwire/server, taskwire/testing,
# taskwire/protocol) with TypeDoc and typedoc-plugin-markdown, then formats it as Biome
# formats the other docs. `api-docs.sh --output DIR` writes DIR instead (check-generated.sh
# compares the two). TypeDoc runs from tools/typedoc, on a TypeScript 6 of its own: it
# cannot read TypeScript 7 (docs/decisions/api-reference-typedoc.md). Any TypeDoc warning
# fails the run: a public symbol without a doc comment, a broken {@link}, a type the API
# uses but no entry point exports.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/docs/api"
if [ "${1:-}" = "--output" ]; then
  out="${2:?usage: api-docs.sh [--output DIR]}"
fi
typedoc="$root/tools/typedoc/node_modules/typedoc/bin/typedoc"
if [ ! -f "$typedoc" ]; then
  echo "TypeDoc is not installed in tools/typedoc/node_modules: run 'npm ci' (or 'npm install')" >&2
  exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$root/tools/typedoc" && node "$typedoc" --logLevel Warn --out "$tmp/api")
if ! "$root/node_modules/.bin/biome" format --write --config-path "$root" "$tmp/api" >"$tmp/biome.txt" 2>&1; then
  cat "$tmp/biome.txt" >&2
  exit 1
fi
rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$tmp/api" "$out"
