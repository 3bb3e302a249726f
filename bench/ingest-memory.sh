#!/usr/bin/env bash
# Does graven serve's memory grow with the size of its log? Peak RSS (VmHWM) of an append
# burst into a small log against the same burst into a big one.
#
#   bench/ingest-memory.sh          # SMALL=10000, BIG=10000000, BURST=500000
#
# For each size: a fresh data dir is filled through the server itself (bulk NDJSON,
# graven-loadgen), the search index is left to catch up, the server is restarted (so VmHWM
# starts afresh; nothing is left to index), and then BURST events are sent (4 connections x
# 10,000 events). Reported per size: startup time, RSS after start, VmHWM after the burst and
# after the index caught up, burst throughput, disk usage.
#
# Filling BIG stops early, at a whole number of FILL_CHUNK events, once FILL_MAX_SECS have
# passed; the size actually reached is reported.
#
# Disk needed: about 9 GB for BIG=10000000 (6.3 GB of tiles, 2.6-4.3 GB of index).
#
# Env: SMALL (10000), BIG (10000000), BURST (500000), FILL_CHUNK (1000000), FILL_MAX_SECS (720),
# SKIP_BUILD=1, GRAVEN_BIN / LOADGEN_BIN, KEEP=1, RESULTS (default
# target/bench-ingest/memory-<time>.jsonl).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SMALL=${SMALL:-10000}
BIG=${BIG:-10000000}
BURST=${BURST:-500000}
FILL_CHUNK=${FILL_CHUNK:-1000000}
FILL_MAX_SECS=${FILL_MAX_SECS:-720}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
GRAVEN=${GRAVEN_BIN:-$TARGET_DIR/release/graven}
LOADGEN=${LOADGEN_BIN:-$TARGET_DIR/release/graven-loadgen}

log() { echo "[memory $(date +%H:%M:%S)] $*" >&2; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building graven and graven-loadgen (release)"
    (cd "$ROOT" && cargo build --release -q -p graven -p graven-loadgen)
fi
mkdir -p "$TARGET_DIR/bench-ingest"
RESULTS=${RESULTS:-$TARGET_DIR/bench-ingest/memory-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
TMP=$(mktemp -d /tmp/graven-memory.XXXXXX)
SPID=""
cleanup() {
    [ -n "$SPID" ] && kill -TERM "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

start_server() {  # $1 data dir; sets SPID, SURL, START_S
    local data=$1 t0
    t0=$(date +%s.%N)
    "$GRAVEN" serve --data "$data" --listen 127.0.0.1:0 >>"$data.out" 2>>"$data.err" &
    SPID=$!
    SURL=""
    for _ in $(seq 1 6000); do
        SURL=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$data.out" 2>/dev/null | tail -1 | sed 's/listening on //' || true)
        [ -n "$SURL" ] && break
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    [ -n "$SURL" ] || { cat "$data.out" "$data.err" >&2; exit 1; }
    START_S=$(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))" "$t0" "$(date +%s.%N)")
}
stop_server() {
    kill -TERM "$SPID"
    for _ in $(seq 1 1200); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$SPID" 2>/dev/null && kill -KILL "$SPID"
    wait "$SPID" 2>/dev/null || true
    SPID=""
    : >"$1.out"  # the next start's "listening on" line is the only one
}
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# Waits until the server has used < 10 % of a core for a second (index caught up).
wait_idle() {
    python3 - "$SPID" <<'PY'
import os, sys, time
pid = sys.argv[1]; tck = os.sysconf("SC_CLK_TCK")
def cpu():
    s = open(f"/proc/{pid}/stat").read(); f = s[s.rfind(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / tck
last, quiet, t0 = cpu(), 0, time.time()
while time.time() - t0 < 1800:
    time.sleep(0.5); now = cpu()
    quiet = quiet + 1 if now - last < 0.05 else 0
    last = now
    if quiet >= 2: break
print(round(time.time() - t0 - 1.0, 1))
PY
}

for which in small big; do
    target=$SMALL
    [ "$which" = big ] && target=$BIG
    data=$TMP/$which
    start_server "$data"
    log "$which: filling to $target events through the server ($SURL)"
    t0=$(date +%s)
    filled=0
    while [ "$filled" -lt "$target" ]; do
        n=$((target - filled))
        [ "$n" -gt "$FILL_CHUNK" ] && n=$FILL_CHUNK
        batch=10000
        [ "$n" -lt "$batch" ] && batch=$n
        out=$("$LOADGEN" bulk --url "$SURL" --token-file "$data/admin.token" --connections 4 \
            --batch "$batch" --events "$n" --seed $((filled + 1)) --drain-max-secs 0)
        acked=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["events_acked"])' "$out")
        filled=$((filled + acked))
        el=$(( $(date +%s) - t0 ))
        log "  $filled events after ${el}s ($(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["events_per_s"]))' "$out") events/s in this chunk; server RSS $(( $(kb "$SPID" VmRSS) / 1024 )) MB, peak $(( $(kb "$SPID" VmHWM) / 1024 )) MB)"
        if [ "$el" -ge "$FILL_MAX_SECS" ] && [ "$filled" -lt "$target" ]; then
            log "  stopping the fill at $filled events: FILL_MAX_SECS=$FILL_MAX_SECS reached"
            break
        fi
    done
    fill_s=$(( $(date +%s) - t0 ))
    log "$which: waiting for the index to catch up"
    idle_s=$(wait_idle)
    fill_hwm=$(kb "$SPID" VmHWM)
    stop_server "$data"
    log_du=$(du -sb "$data/log" | cut -f1)
    idx_du=$(du -sb "$data/index.redb" | cut -f1)
    files=$(find "$data/log" -type f | wc -l)

    start_server "$data"
    sleep 1
    rss0=$(kb "$SPID" VmRSS)
    log "$which: restarted in ${START_S}s, RSS $((rss0 / 1024)) MB; burst of $BURST events"
    out=$("$LOADGEN" bulk --url "$SURL" --token-file "$data/admin.token" --connections 4 --batch 10000 \
        --events "$BURST" --seed 999 --server-pid "$SPID")
    hwm=$(kb "$SPID" VmHWM)
    python3 -c '
import json, sys
d = json.loads(sys.argv[1])
(which, filled, fill_s, idle_s, fill_hwm, log_du, idx_du, files, start_s, rss0, hwm) = sys.argv[2:13]
r = {"system": "graven", "mode": "memory", "log": which, "entries_before_burst": int(filled),
     "fill_s": int(fill_s), "fill_index_catch_up_s": float(idle_s), "fill_vmhwm_kb": int(fill_hwm),
     "log_bytes": int(log_du), "index_bytes": int(idx_du), "log_files": int(files),
     "startup_s": float(start_s), "rss_after_start_kb": int(rss0),
     "burst_events": d["events_acked"], "burst_non_201": d["non_201"], "burst_events_per_s": d["events_per_s"],
     "burst_vmhwm_kb": d["server"]["server_vmhwm_kb"], "vmhwm_after_index_kb": int(hwm),
     "burst_drain_s": (d.get("drain") or {}).get("drain_s"),
     "burst_cpu_us_per_event": (d.get("drain") or {}).get("server_cpu_us_per_event_incl_drain")}
print(json.dumps(r))
' "$out" "$which" "$filled" "$fill_s" "$idle_s" "$fill_hwm" "$log_du" "$idx_du" "$files" "$START_S" "$rss0" "$hwm" | tee -a "$RESULTS" >&2
    stop_server "$data"
    # Data dirs go at the end (see bench/ingest.sh on deleting files before a run).
done

log "results: $RESULTS"
python3 - "$RESULTS" <<'PY'
import json, sys
rows = {r["log"]: r for r in map(json.loads, open(sys.argv[1])) if r.get("mode") == "memory"}
mb = lambda kb: "%.0f MB" % (kb / 1024)
print("| | small log | big log |")
print("|---|---|---|")
s, b = rows.get("small"), rows.get("big")
def row(name, f):
    print("| %s | %s | %s |" % (name, f(s) if s else "n/a", f(b) if b else "n/a"))
row("entries before the burst", lambda r: "{:,}".format(r["entries_before_burst"]))
row("log on disk / files / index.redb", lambda r: "%.2f GB / %s / %.2f GB" % (r["log_bytes"] / 1e9, "{:,}".format(r["log_files"]), r["index_bytes"] / 1e9))
row("fill time (+ index catch-up)", lambda r: "%d s (+%.0f s)" % (r["fill_s"], r["fill_index_catch_up_s"]))
row("startup to listening", lambda r: "%.2f s" % r["startup_s"])
row("RSS after start", lambda r: mb(r["rss_after_start_kb"]))
row("burst: events/s", lambda r: "{:,.0f}".format(r["burst_events_per_s"]))
row("burst: peak RSS (VmHWM) at last ack", lambda r: mb(r["burst_vmhwm_kb"]))
row("burst: peak RSS incl. index catch-up", lambda r: mb(r["vmhwm_after_index_kb"]))
PY
