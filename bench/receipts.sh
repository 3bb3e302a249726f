#!/usr/bin/env bash
# Bulk ingest answered with a receipt per event against one range receipt per batch
# (docs/receipts.md), in the same run: for each run, a fresh release server per mode gets
#   graven-loadgen bulk --receipt each|range --connections $CONNECTIONS --batch $BATCH --events $EVENTS
# and the medians of events/s and response bytes per event are printed with their ratio.
#
# Env: RUNS (3), EVENTS (500000), CONNECTIONS (4), BATCH (10000), SKIP_BUILD=1
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
EVENTS=${EVENTS:-500000}
CONNECTIONS=${CONNECTIONS:-4}
BATCH=${BATCH:-10000}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
GRAVEN=$TARGET_DIR/release/graven
LOADGEN=$TARGET_DIR/release/graven-loadgen
[ "${SKIP_BUILD:-0}" = 1 ] || (cd "$ROOT" && cargo build --release -q -p graven -p graven-loadgen)
TMP=$(mktemp -d /tmp/graven-receipts.XXXXXX)
SPID=""
cleanup() { [ -n "$SPID" ] && kill -TERM "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
echo "== $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), commit $(git -C "$ROOT" rev-parse --short HEAD)"
RESULTS=$TMP/results.jsonl
for run in $(seq 1 "$RUNS"); do
  for mode in each range; do
    data=$TMP/$mode$run
    "$GRAVEN" serve --data "$data" --listen 127.0.0.1:0 >"$data.out" 2>"$data.err" &
    SPID=$!
    URL=""
    for _ in $(seq 1 200); do
      URL=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$data.out" 2>/dev/null | sed 's/listening on //' || true)
      [ -n "$URL" ] && break
      sleep 0.05
    done
    [ -n "$URL" ] || { cat "$data.out" "$data.err" >&2; exit 1; }
    out=$("$LOADGEN" bulk --url "$URL" --token-file "$data/admin.token" --receipt "$mode" \
      --connections "$CONNECTIONS" --batch "$BATCH" --events "$EVENTS" --drain-max-secs 0)
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(json.dumps({"run":int(sys.argv[2]),"mode":sys.argv[3],"events_per_s":d["events_per_s"],"bytes_per_event":d["response_bytes_per_event"],"non_201":d["non_201"],"acked":d["events_acked"]}))' "$out" "$run" "$mode" | tee -a "$RESULTS"
    kill -TERM "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=""
    rm -rf "$data"
  done
done
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
m = lambda mode, k: statistics.median(r[k] for r in rows if r["mode"] == mode)
assert all(r["non_201"] == 0 for r in rows), "a request failed"
e, r = m("each", "events_per_s"), m("range", "events_per_s")
be, br = m("each", "bytes_per_event"), m("range", "bytes_per_event")
print(f"median: each {e:,.0f} events/s, {be:,.1f} response bytes/event | range {r:,.0f} events/s, {br:,.1f} response bytes/event | range/each {r/e:.2f}x events/s, {be/br:.1f}x fewer bytes")
PY
