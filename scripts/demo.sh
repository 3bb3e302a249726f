#!/usr/bin/env bash
# A tour of the offline tool: make a key, log some events, verify the log, prove an event.
# Usage: scripts/demo.sh [DIR]   (default: ./graven-demo; reused if it exists)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p graven
G=target/release/graven
DIR="${1:-./graven-demo}"
mkdir -p "$DIR"
if [ ! -f "$DIR/log.key" ]; then
  $G keygen --origin demo.graven.example/log --out "$DIR/log.key" > "$DIR/log.vkey"
fi
VKEY="$(cat "$DIR/log.vkey")"
echo "verifier key: $VKEY"
now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
cat <<JSON | $G log append --dir "$DIR/log" --key "$DIR/log.key"
{"v":1,"occurred_at":"$now","actor":{"id":"svc:payments-worker","kind":"service_account"},"action":"deployment.create","resource":{"type":"k8s.deployment","id":"prod/payments"},"outcome":"success"}
{"v":1,"occurred_at":"$now","actor":{"id":"ci:acme/payments","kind":"ci_job"},"action":"secret.read","resource":{"type":"vault.secret","id":"kv/payments/db"},"outcome":"success"}
{"v":1,"occurred_at":"$now","actor":{"id":"agent:triage-bot","kind":"agent"},"action":"ticket.close","resource":{"type":"jira.issue","id":"OPS-1234"},"outcome":"denied"}
JSON
$G verify "$DIR/log" --vkey "$VKEY"
$G prove --dir "$DIR/log" --index 0
