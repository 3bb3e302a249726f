#!/usr/bin/env bash
# `graven verify` of a running server and of the same log's directory, against the SHA-256
# limit for the same entry size, all measured in the same run, round by round.
#
# Usage: bench/verify-server.sh [RUNS]      (default 5)
# Env:   EVENTS=1000000   events ingested first (graven-loadgen bulk, ~590-byte canonical events)
#        SKIP_BUILD=1     use the binaries already in target/release
#        KEEP=1           keep the temporary directory
#
# Per round:
#   - `graven verify http://127.0.0.1:PORT/ --full --json` (a fresh trust dir, so every tile and
#     bundle is fetched over HTTP and re-hashed; the server keeps running, idle), with the
#     default --fetch-ahead and with --fetch-ahead 0 (one request at a time, as before),
#   - `graven verify DATA/log --full --json` (same log, from the directory),
#   - `openssl speed -evp sha256 -bytes 600`: one-shot SHA-256 of a 600-byte message, i.e. the
#     per-core leaf-hash limit for entries of this size (a leaf hash is SHA-256(0x00 || entry)).
# The verifier is single-threaded; figures are entries/s and the ratio to that limit.
set -euo pipefail
RUNS=${1:-5}
EVENTS=${EVENTS:-1000000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release/graven
LOADGEN=$TARGET_DIR/release/graven-loadgen
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  (cd "$ROOT" && cargo build --release -q -p graven -p graven-loadgen)
fi
TMP=$(mktemp -d /tmp/graven-vserver.XXXXXX)
SPID=""
cleanup() {
  [ -n "$SPID" ] && kill -TERM "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" serve --data "$TMP/data" --listen 127.0.0.1:0 >"$TMP/out" 2>"$TMP/err" &
SPID=$!
URL=""
for _ in $(seq 1 200); do
  URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$TMP/out" 2>/dev/null | head -1 || true)
  [ -n "$URL" ] && break
  sleep 0.05
done
[ -n "$URL" ] || { cat "$TMP/out" "$TMP/err" >&2; exit 1; }
VKEY=$(grep -o 'verifier key: .*' "$TMP/out" | sed 's/verifier key: //')
echo "== ingest $EVENTS events into $URL"
"$LOADGEN" bulk --url "$URL" --token-file "$TMP/data/admin.token" --connections 4 --batch 10000 \
  --events "$EVENTS" | tail -1 | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); assert d["events_acked"]==int(sys.argv[1]), d; print("ingested", d["events_acked"])' "$EVENTS"
echo "log on disk: $(du -sh "$TMP/data/log" | cut -f1)"

hps600() {
  openssl speed -mr -evp sha256 -seconds 2 -bytes 600 2>/dev/null | awk -F: '/^\+F:/ {printf "%.0f\n", $4 / 600}'
}
run_verify() { # target [extra verify flags] -> entries/s
  rm -rf "$TMP/trust"
  local target=$1; shift
  # The read path needs the auditor or admin role (public_read_path is off by default).
  "$BIN" verify "$target" "$@" --vkey "$VKEY" --full --json --trust-dir "$TMP/trust" --token-file "$TMP/data/admin.token" > "$TMP/v.json"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ok"] and d["tree_size"]>=int(sys.argv[2]), d; print(round(d["entries_per_second"]))' "$TMP/v.json" "$EVENTS"
}
http=(); seq1=(); dir=(); lim=()
for i in $(seq 1 "$RUNS"); do
  h=$(run_verify "$URL/"); s=$(run_verify "$URL/" --fetch-ahead 0); d=$(run_verify "$TMP/data/log"); l=$(hps600)
  http+=("$h"); seq1+=("$s"); dir+=("$d"); lim+=("$l")
  echo "round $i: server $h entries/s | server, one request at a time $s entries/s | directory $d entries/s | sha256 600 B $l/s"
done
python3 - "${http[*]}" "${seq1[*]}" "${dir[*]}" "${lim[*]}" <<'PY'
import statistics as st, sys
h, s, d, l = ([float(x) for x in a.split()] for a in sys.argv[1:5])
H, S, D, L = st.median(h), st.median(s), st.median(d), st.median(l)
print(f"median: server {H:,.0f} entries/s ({H/L:.3f} of the limit, {H/S:.2f}x one-at-a-time, {H/D:.3f} of the directory) | server, one request at a time {S:,.0f} ({S/L:.3f}) | directory {D:,.0f} entries/s ({D/L:.3f}) | SHA-256 limit (600 B leaves) {L:,.0f}/s")
PY
