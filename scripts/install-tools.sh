#!/usr/bin/env bash
# Installs the pinned tools Taskwire runs into <repo>/.tools/bin, built from source
# with `go install`, and what the examples in other languages need: the Go
# example's modules and a Python virtualenv in <repo>/.tools/venv with the
# packages of examples/python/requirements.txt. Idempotent: a tool whose binary
# already reports its pinned version is skipped, and so is a virtualenv that has
# the listed packages. Uses Go's default GOPATH, GOCACHE and GOPROXY, and PyPI.
set -euo pipefail

NATS_SERVER_VERSION=v2.15.2
GRPCURL_VERSION=v1.9.4
# Keep these two equal to the versions in examples/go/go.mod.
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_CONNECT_GO_VERSION=v1.21.1

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.tools/bin"

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    PATH="/usr/local/go/bin:$PATH"
  else
    echo "install-tools: 'go' not found on PATH. Go is needed to build nats-server, grpcurl and the Go example's plugins: install it from https://go.dev/dl/ and run again." >&2
    exit 1
  fi
fi

mkdir -p "$bin"

# The version a binary reports, or the empty string. grpcurl prints it on stderr.
reported_version() { # path, version flag
  "$1" "$2" 2>&1 || true
}

# The module version in the binary's Go build info, or the empty string. grpcurl
# built by a plain `go install` reports "dev build <no version set>", so this is
# how such a binary is recognised as already pinned.
module_version() { # path, module
  go version -m "$1" 2>/dev/null | awk -v m="$2" '$1 == "mod" && $2 == m { print $3 }' || true
}

# install NAME VERSION MODULE PACKAGE VERSION_FLAG EXPECTED_OUTPUT [GO_INSTALL_FLAGS...]
install() {
  local name="$1" version="$2" module="$3" package="$4" flag="$5" expected="$6"
  shift 6
  local path="$bin/$name"
  if [ -x "$path" ]; then
    if [ "$(reported_version "$path" "$flag")" = "$expected" ] || [ "$(module_version "$path" "$module")" = "$version" ]; then
      echo "install-tools: $name $version already installed"
      return
    fi
  fi
  echo "install-tools: building $name $version into .tools/bin"
  GOBIN="$bin" go install "$@" "$package@$version"
}

install nats-server "$NATS_SERVER_VERSION" \
  github.com/nats-io/nats-server/v2 github.com/nats-io/nats-server/v2 \
  --version "nats-server: $NATS_SERVER_VERSION"

# grpcurl's release builds set main.version with ldflags; do the same so that
# `grpcurl -version` prints the pinned version.
install grpcurl "$GRPCURL_VERSION" \
  github.com/fullstorydev/grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl \
  -version "grpcurl $GRPCURL_VERSION" \
  -ldflags "-X main.version=$GRPCURL_VERSION"

# Code generators for the Go example (examples/go/buf.gen.yaml), and its modules.
install protoc-gen-go "$PROTOC_GEN_GO_VERSION" \
  google.golang.org/protobuf google.golang.org/protobuf/cmd/protoc-gen-go \
  --version "protoc-gen-go $PROTOC_GEN_GO_VERSION"
install protoc-gen-connect-go "$PROTOC_GEN_CONNECT_GO_VERSION" \
  connectrpc.com/connect connectrpc.com/connect/cmd/protoc-gen-connect-go \
  --version "${PROTOC_GEN_CONNECT_GO_VERSION#v}"
# Compiling the example's dependencies now fills Go's build cache, so that the
# tests' first `go run` takes seconds, not half a minute.
(cd "$root/examples/go" && go mod download && go build connectrpc.com/connect google.golang.org/protobuf/types/known/anypb)

# The Python example's virtualenv. A copy of the requirements it was made from marks
# it complete; a different list installs again.
venv="$root/.tools/venv"
requirements="$root/examples/python/requirements.txt"
if cmp -s "$requirements" "$venv/requirements.txt"; then
  echo "install-tools: Python packages of examples/python already installed in .tools/venv"
else
  if ! command -v python3 >/dev/null 2>&1; then
    echo "install-tools: 'python3' not found on PATH. Python 3 (with venv) is needed for the Python example: install it and run again." >&2
    exit 1
  fi
  echo "install-tools: installing the Python packages of examples/python into .tools/venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/requirements.txt"
fi
