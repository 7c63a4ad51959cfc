#!/usr/bin/env bash
# Installs the pinned tools Taskwire runs, on first use: `install-tools.sh [NAME...]`
# with NAME one of nats-server, grpcurl, go-plugins, conformance, python, chromium (all
# when none is named). scripts/run.mjs calls it before `npm start`, `npm test` and the rest.
# - nats-server, grpcurl: built with `go install` into <repo>/.tools/bin;
# - go-plugins: protoc-gen-go and protoc-gen-connect-go for the Go example, whose
#   modules are downloaded and compiled once so that the tests' first `go run` is quick,
#   and the same for the Go worker runtime's modules (go/);
# - python: a virtualenv in <repo>/.tools/venv with examples/python/requirements.txt;
# - chromium: Debian's chromium package (apt-get) for the console's browser tests, where
#   /usr/bin/chromium is missing; it needs root (CI runs as root) or passwordless sudo.
# A tool already at its pinned version is left alone, silently; one being installed
# says so in one line, and the installer's own output is shown only if it fails.
# Uses Go's default GOPATH, GOCACHE and GOPROXY, PyPI, and the machine's apt sources.
set -euo pipefail

NATS_SERVER_VERSION=v2.15.2
GRPCURL_VERSION=v1.9.4
# Keep these two equal to the versions in examples/go/go.mod.
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_CONNECT_GO_VERSION=v1.21.1
# The Connect conformance suite's runner (test/conformance).
CONFORMANCE_VERSION=v1.0.7

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.tools/bin"
log="$root/.tools/install.log"
mkdir -p "$bin"

say() { echo "taskwire: $*" >&2; }

# Runs a command with its output kept in .tools/install.log, shown if it fails.
quietly() {
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    say "failed: $*"
    exit 1
  fi
}

need_go() {
  command -v go >/dev/null 2>&1 && return
  if [ -x /usr/local/go/bin/go ]; then
    PATH="/usr/local/go/bin:$PATH"
    return
  fi
  say "'go' not found on PATH. Go (1.26+) builds nats-server, grpcurl and the Go example's plugins: install it from https://go.dev/dl/ and run again."
  exit 1
}

# The module version in the binary's Go build info, or the empty string.
module_version() { # path, module
  go version -m "$1" 2>/dev/null | awk -v m="$2" '$1 == "mod" && $2 == m { print $3 }' || true
}

# go_tool NAME VERSION MODULE PACKAGE [GO_INSTALL_FLAGS...]
go_tool() {
  local name="$1" version="$2" module="$3" package="$4"
  shift 4
  need_go
  if [ -x "$bin/$name" ] && [ "$(module_version "$bin/$name" "$module")" = "$version" ]; then
    return
  fi
  say "installing $name $version into .tools/bin (go install, once)"
  GOBIN="$bin" quietly go install "$@" "$package@$version"
}

install_nats_server() {
  go_tool nats-server "$NATS_SERVER_VERSION" github.com/nats-io/nats-server/v2 github.com/nats-io/nats-server/v2
}

install_grpcurl() {
  # grpcurl's release builds set main.version with ldflags; so does this one, so that
  # `grpcurl -version` prints the pinned version.
  go_tool grpcurl "$GRPCURL_VERSION" github.com/fullstorydev/grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl \
    -ldflags "-X main.version=$GRPCURL_VERSION"
}

install_conformance() {
  go_tool connectconformance "$CONFORMANCE_VERSION" connectrpc.com/conformance \
    connectrpc.com/conformance/cmd/connectconformance
}

install_go_plugins() {
  go_tool protoc-gen-go "$PROTOC_GEN_GO_VERSION" \
    google.golang.org/protobuf google.golang.org/protobuf/cmd/protoc-gen-go
  go_tool protoc-gen-connect-go "$PROTOC_GEN_CONNECT_GO_VERSION" \
    connectrpc.com/connect connectrpc.com/connect/cmd/protoc-gen-connect-go
  local marker="$root/.tools/go-example.sum"
  if ! cmp -s "$root/examples/go/go.sum" "$marker"; then
    say "downloading and compiling the Go example's modules (once)"
    (cd "$root/examples/go" && quietly go mod download &&
      quietly go build connectrpc.com/connect google.golang.org/protobuf/types/known/anypb)
    cp "$root/examples/go/go.sum" "$marker"
  fi
  # The Go worker runtime's modules (go/, and test/go/ which uses it).
  local runtime_marker="$root/.tools/go-runtime.sum"
  if [ -f "$root/go/go.sum" ] && ! cmp -s "$root/go/go.sum" "$runtime_marker"; then
    say "downloading and compiling the Go worker runtime's modules (once)"
    (cd "$root/go" && quietly go mod download && quietly go build ./...)
    cp "$root/go/go.sum" "$runtime_marker"
  fi
}

install_python() {
  # A copy of the requirements the virtualenv was made from marks it complete; a
  # different list installs again.
  local venv="$root/.tools/venv" requirements="$root/examples/python/requirements.txt"
  cmp -s "$requirements" "$venv/requirements.txt" && return
  if ! command -v python3 >/dev/null 2>&1; then
    say "'python3' not found on PATH. Python 3 (with venv) runs the Python example: install it and run again."
    exit 1
  fi
  say "installing the Python example's packages into .tools/venv (pip, once)"
  [ -x "$venv/bin/python" ] || quietly python3 -m venv "$venv"
  quietly "$venv/bin/python" -m pip install --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/requirements.txt"
}

install_chromium() {
  [ -x /usr/bin/chromium ] && return
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
      say "/usr/bin/chromium not found. The console's browser tests drive Debian's chromium: install it as root (apt-get install chromium) and run again."
      exit 1
    fi
    sudo=(sudo -n)
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    say "/usr/bin/chromium not found and there is no apt-get: install Chromium at /usr/bin/chromium and run again."
    exit 1
  fi
  say "installing chromium (apt-get, once)"
  quietly "${sudo[@]}" apt-get update
  quietly "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
}

[ $# -gt 0 ] || set -- nats-server grpcurl go-plugins conformance python chromium
for tool in "$@"; do
  case "$tool" in
    nats-server) install_nats_server ;;
    grpcurl) install_grpcurl ;;
    go-plugins) install_go_plugins ;;
    conformance) install_conformance ;;
    python) install_python ;;
    chromium) install_chromium ;;
    *) say "unknown tool '$tool' (nats-server, grpcurl, go-plugins, conformance, python, chromium)"; exit 1 ;;
  esac
done
