#!/usr/bin/env bash
# Runs every buf template whose output is committed, or, with --output DIR, writes
# their output under DIR instead (scripts/check-generated.sh compares the two).
# Each folder of generated code lives beside its users:
#   buf.gen.yaml                  -> gen/                 the protocol, shipped
#   examples/buf.gen.yaml         -> examples/gen/        the examples' task services
#   examples/grpc-js/buf.gen.yaml -> examples/grpc-js/gen/ ts-proto for the grpc-js example
#   test/buf.gen.yaml             -> test/gen/            the tests' task services
#   test/conformance/buf.gen.yaml -> test/conformance/gen/ the Connect conformance suite's messages
#   bench/buf.gen.yaml            -> bench/gen/           the benchmark's task service
# The Go and Python examples' templates generate into folders that are not committed:
# the tests run them.
set -euo pipefail
cd "$(dirname "$0")/.."
templates=(buf.gen.yaml examples/buf.gen.yaml examples/grpc-js/buf.gen.yaml test/buf.gen.yaml test/conformance/buf.gen.yaml bench/buf.gen.yaml)
if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "${templates[@]}"
  exit 0
fi
for template in "${templates[@]}"; do
  buf generate --template "$template" "$@"
done
