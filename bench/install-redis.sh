#!/usr/bin/env bash
# Installs Debian's redis-server for the BullMQ leg of `npm run bench`, if missing.
# Only the binary is used: the harness starts its own server on a random loopback port.
set -euo pipefail
if [ -x /usr/bin/redis-server ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "redis-server is missing: run 'apt-get install -y redis-server' as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends redis-server >/dev/null
# The package starts a system-wide server on port 6379; the benchmark does not use it.
if command -v service >/dev/null 2>&1; then
  service redis-server stop >/dev/null 2>&1 || true
fi
