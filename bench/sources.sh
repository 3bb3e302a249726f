#!/usr/bin/env bash
# Events per second through the source endpoints (kubernetes, openbao, cloudtrail, otlp) beside
# POST /v1/events (NDJSON), in the same run, on a release `graven serve` with a fresh data directory (bench/sources.py drives it).
#
# Usage: bench/sources.sh [ROUNDS]   (default 3)
# Env:   SKIP_BUILD=1  use target/release/graven as it is
#        SECONDS_PER=10 THREADS=4 BATCH=400 SOURCES=kubernetes,openbao,cloudtrail,otlp   (BATCH: records per EventList / events per batch;
#        400 is the API server's default --audit-webhook-batch-max-size)
set -euo pipefail
ROUNDS=${1:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/graven
[ "${SKIP_BUILD:-0}" = 1 ] || (cd "$ROOT" && cargo build --release -q -p graven)
TMP=$(mktemp -d /tmp/graven-sources.XXXXXX)
SPID=""
cleanup() { [ -n "$SPID" ] && kill -TERM "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" serve --data "$TMP/data" --listen 127.0.0.1:0 --origin bench.example/log >"$TMP/out" 2>"$TMP/err" &
SPID=$!
URL=""
for _ in $(seq 1 200); do
  URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$TMP/out" 2>/dev/null | head -1 || true)
  [ -n "$URL" ] && break
  sleep 0.05
done
[ -n "$URL" ] || { cat "$TMP/out" "$TMP/err" >&2; exit 1; }
export GRAVEN_TOKEN; GRAVEN_TOKEN=$(cat "$TMP/data/admin.token")
"$BIN" identity create src:bench --kind integration --owner bench --role source \
  --source-type kubernetes --source-type openbao --source-type cloudtrail --source-type otlp \
  --subject 'system:serviceaccount:*' --subject 'openbao:*' --subject 'arn:aws:iam::*' \
  --subject 'payments-*' --server "$URL" >/dev/null
"$BIN" identity create svc:bench --kind service_account --owner bench --server "$URL" >/dev/null
SKEY=$("$BIN" key create src:bench --server "$URL" 2>/dev/null)
WKEY=$("$BIN" key create svc:bench --server "$URL" 2>/dev/null)
python3 "$ROOT/bench/sources.py" "$URL" "$SKEY" "$WKEY" --rounds "$ROUNDS" \
  --seconds "${SECONDS_PER:-10}" --threads "${THREADS:-4}" --batch "${BATCH:-400}" \
  --sources "${SOURCES:-kubernetes,openbao,cloudtrail,otlp}"
