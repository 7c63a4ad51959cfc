#!/usr/bin/env bash
# Fails when a proto changed incompatibly (buf's FILE rules) since the previous
# commit of main. Skips on the first commit, where there is nothing to break.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
against="${TASKWIRE_BREAKING_AGAINST:-HEAD~1}"
if ! git rev-parse --verify --quiet "$against^{commit}" >/dev/null; then
  echo "no commit $against to compare with: skipping buf breaking"
  exit 0
fi
# Not `| grep -q`: under pipefail, git dying of SIGPIPE once grep has its match
# would read as "no protos" and skip the check.
if [ -z "$(git ls-tree -r --name-only "$against" -- proto | grep '\.proto$' || true)" ]; then
  echo "$against has no protos: skipping buf breaking"
  exit 0
fi
PATH="$root/node_modules/.bin:$PATH" buf breaking --against ".git#ref=$(git rev-parse "$against")"
echo "no breaking proto changes since $against"
