#!/usr/bin/env bash
# Events per second through the syslog listener (RFC 5424, octet-counted TCP) and the listener
# of OpenBao's socket audit device (one JSON entry per line) beside POST /v1/events (NDJSON), in
# the same run, on a release `graven serve` with a fresh data directory
# (bench/syslog.py drives it). The source identity is registered on a first start, then the
# server is restarted with --syslog-listen and --bao-audit-listen (the identity must exist at
# start-up).
#
# Usage: bench/syslog.sh [ROUNDS]   (default 3)
# Env:   SKIP_BUILD=1  use target/release/graven as it is
#        SECONDS_PER=10 THREADS=4 BATCH=400   (BATCH: messages per send / events per batch)
set -euo pipefail
ROUNDS=${1:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/graven
[ "${SKIP_BUILD:-0}" = 1 ] || (cd "$ROOT" && cargo build --release -q -p graven)
TMP=$(mktemp -d /tmp/graven-syslog.XXXXXX)
SPID=""
stop() { [ -n "$SPID" ] && kill -TERM "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null || true; SPID=""; }
cleanup() { stop; rm -rf "$TMP"; }
trap cleanup EXIT
start() {
  "$BIN" serve --data "$TMP/data" --listen 127.0.0.1:0 --origin bench.example/log "$@" >"$TMP/out" 2>"$TMP/err" &
  SPID=$!
  URL=""
  for _ in $(seq 1 200); do
    URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$TMP/out" 2>/dev/null | head -1 || true)
    [ -n "$URL" ] && break
    sleep 0.05
  done
  [ -n "$URL" ] || { cat "$TMP/out" "$TMP/err" >&2; exit 1; }
}
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
start
export GRAVEN_TOKEN; GRAVEN_TOKEN=$(cat "$TMP/data/admin.token")
"$BIN" identity create src:bench --kind integration --owner bench --role source \
  --source-type syslog --source-type openbao --subject '*' --server "$URL" >/dev/null
"$BIN" identity create svc:bench --kind service_account --owner bench --server "$URL" >/dev/null
WKEY=$("$BIN" key create svc:bench --server "$URL" 2>/dev/null)
stop
start --syslog-listen 127.0.0.1:0 --syslog-identity src:bench \
  --bao-audit-listen 127.0.0.1:0 --bao-audit-identity src:bench
SYSLOG=$(grep -o 'syslog listening on tcp://[0-9.:]*' "$TMP/out" | sed 's|.*tcp://||')
BAO=$(grep -o 'openbao audit listening on tcp://[0-9.:]*' "$TMP/out" | sed 's|.*tcp://||')
python3 "$ROOT/bench/syslog.py" "$URL" "$GRAVEN_TOKEN" "$WKEY" "$SYSLOG" --openbao "$BAO" --rounds "$ROUNDS" \
  --seconds "${SECONDS_PER:-10}" --threads "${THREADS:-4}" --batch "${BATCH:-400}"
