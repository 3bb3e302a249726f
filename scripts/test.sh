#!/usr/bin/env bash
# The one test command: what the README tells people to run and what CI runs.
# Runs the whole suite: lint gates, every unit/property/vector/end-to-end test, and a short
# fuzz smoke of every parser. Needs only the Rust toolchain and the shared test vectors
# (../shared/vectors beside the checkout, or GRAVEN_VECTORS).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CARGO_NET_RETRY=5

if [ -z "${GRAVEN_VECTORS:-}" ]; then
  export GRAVEN_VECTORS="$(cd .. && pwd)/shared/vectors"
fi
if [ ! -d "$GRAVEN_VECTORS" ]; then
  echo "test vectors not found at $GRAVEN_VECTORS (set GRAVEN_VECTORS)" >&2
  exit 1
fi

step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

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
