#!/usr/bin/env bash
# Installs the pinned tools Taskwire runs into .tools/bin, built from source with
# `go install` (the Go module proxy is the only source needed). Idempotent: a tool
# already at its pinned version is skipped.
set -euo pipefail

NATS_SERVER_VERSION=v2.15.2
GRPCURL_VERSION=v1.9.4

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.tools/bin"
mkdir -p "$bin"

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    PATH="/usr/local/go/bin:$PATH"
  else
    echo "install-tools: Go is required to build nats-server and grpcurl (https://go.dev/dl/)" >&2
    exit 1
  fi
fi

# A marker file records the version built: `go install` leaves grpcurl without one.
install() { # name, version, module
  local name="$1" version="$2" module="$3"
  if [ -x "$bin/$name" ] && [ "$(cat "$bin/$name.version" 2>/dev/null)" = "$version" ]; then
    echo "install-tools: $name $version already installed"
    return
  fi
  echo "install-tools: building $name $version"
  GOBIN="$bin" go install "$module@$version"
  echo "$version" >"$bin/$name.version"
}

install nats-server "$NATS_SERVER_VERSION" github.com/nats-io/nats-server/v2
install grpcurl "$GRPCURL_VERSION" github.com/fullstorydev/grpcurl/cmd/grpcurl
