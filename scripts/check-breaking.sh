#!/usr/bin/env bash
# Fails when a proto changed incompatibly (buf's FILE rules) since the previous
# commit. A shallow clone is deepened by one commit to find it; a clone that cannot
# be deepened fails. Skips only where there is nothing to break: the first commit,
# or a previous commit without protos.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
against="${TASKWIRE_BREAKING_AGAINST:-HEAD~1}"
has_commit() { git rev-parse --verify --quiet "$against^{commit}" >/dev/null; }
if ! has_commit && [ "$(git rev-parse --is-shallow-repository)" = true ]; then
  git fetch --quiet --deepen=1 || true
  if ! has_commit; then
    echo "check-breaking: $against is missing from this shallow clone and fetching it failed" >&2
    exit 1
  fi
fi
if ! has_commit; then
  echo "no commit $against to compare with: skipping buf breaking"
  exit 0
fi
# Not `| grep -q`: under pipefail, git dying of SIGPIPE once grep has its match
# would read as "no protos" and skip the check.
if [ -z "$(git ls-tree -r --name-only "$against" -- proto | grep '\.proto$' || true)" ]; then
  echo "$against has no protos: skipping buf breaking"
  exit 0
fi
buf breaking --against ".git#ref=$(git rev-parse "$against")"
echo "no breaking proto changes since $against"
