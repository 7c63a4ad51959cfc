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
#   python/buf.gen.yaml           -> python/taskwire/v1/  the protocol's messages, in the Python package
#   test/buf.gen.python.yaml      -> test/gen/python/     the probe for the Python conformance worker
#   go/buf.gen.yaml               -> go/gen/              the protocol for the Go worker runtime
#   test/go/buf.gen.yaml          -> test/go/gen/         the probe for the Go conformance worker
# The Go and Python examples' templates generate into folders that are not committed:
# the tests run them.
set -euo pipefail
cd "$(dirname "$0")/.."
templates=(buf.gen.yaml examples/buf.gen.yaml examples/grpc-js/buf.gen.yaml test/buf.gen.yaml test/conformance/buf.gen.yaml bench/buf.gen.yaml)
# After test/buf.gen.yaml, whose clean empties test/gen.
templates+=(python/buf.gen.yaml test/buf.gen.python.yaml)
# The Go worker runtime's messages (go/gen) and the Go conformance worker's probe
# (test/go/gen), with protoc-gen-go from .tools/bin; a partial copy of the
# repository without them has nothing of Go to generate.
for template in go/buf.gen.yaml test/go/buf.gen.yaml; do
  if [ -f "$template" ]; then templates+=("$template"); fi
done
if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "${templates[@]}"
  exit 0
fi
if [ -f go/buf.gen.yaml ]; then bash scripts/install-tools.sh go-plugins; fi
for template in "${templates[@]}"; do
  buf generate --template "$template" "$@"
done
