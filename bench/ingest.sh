#!/usr/bin/env bash
# Ingest benchmark of `graven serve` over HTTP, with PostgreSQL measured in the same run.
#
#   bench/ingest.sh                    # build, RUNS=3 of each mode, PostgreSQL, summary
#   RUNS=5 PROFILE=1 bench/ingest.sh   # also perf-profile the first run of each mode
#
# For each run a fresh server (fresh temp data dir, free port on 127.0.0.1 only) gets:
#   bulk:   graven-loadgen bulk   --connections $BULK_CONNECTIONS --batch $BULK_BATCH --events $BULK_EVENTS
#   single: graven-loadgen single --connections $SINGLE_CONNECTIONS --duration-secs $SINGLE_SECS
#           and again with --connections $PG_CLIENTS (32), the PostgreSQL client count
# Client events are ~450 bytes (~590 canonical bytes once the server adds actor, logged_at
# and v). Every response must be 201; the loadgen counts receipts and reports non-201s.
# Then bench/pg-audit.sh runs the hash-chained PostgreSQL table (single-row commits with 32
# clients, 1,000-row transactions, COPY), and a summary of medians and ratios is printed.
#
# Env: RUNS (3), BULK_EVENTS (1000000), BULK_CONNECTIONS (4), BULK_BATCH (10000),
# SINGLE_CONNECTIONS (256), SINGLE_SECS (10), PG=0 skips PostgreSQL, PG_* (see pg-audit.sh),
# SERVER_ARGS (extra flags for graven serve), SKIP_BUILD=1, GRAVEN_BIN / LOADGEN_BIN (use
# these binaries), PROFILE=1 (perf record the first run of each mode), KEEP=1 (keep temp dirs),
# RESULTS (results file; default target/bench-ingest/results-<time>.jsonl).
#
# Data dirs are deleted only at the end: ext4 (here without a journal) skips recently freed
# inodes when it allocates new ones, and every commit creates files, so deleting a big data dir
# just before a run slows that run's commits (measured: -18 % single-event rate right after
# deleting 100,000 files). For the same reason, do not start this right after deleting a big
# directory on the same filesystem. Disk needed: about 1 GB per bulk run of 1 M events.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE=$ROOT/bench
RUNS=${RUNS:-3}
BULK_EVENTS=${BULK_EVENTS:-1000000}
BULK_CONNECTIONS=${BULK_CONNECTIONS:-4}
BULK_BATCH=${BULK_BATCH:-10000}
SINGLE_CONNECTIONS=${SINGLE_CONNECTIONS:-256}
SINGLE_SECS=${SINGLE_SECS:-10}
export PG_CLIENTS=${PG_CLIENTS:-32}
SERVER_ARGS=${SERVER_ARGS:-}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
GRAVEN=${GRAVEN_BIN:-$TARGET_DIR/release/graven}
LOADGEN=${LOADGEN_BIN:-$TARGET_DIR/release/graven-loadgen}

log() { echo "[ingest $(date +%H:%M:%S)] $*" >&2; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building graven and graven-loadgen (release)"
    (cd "$ROOT" && cargo build --release -q -p graven -p graven-loadgen)
fi
[ -x "$GRAVEN" ] && [ -x "$LOADGEN" ] || { echo "missing $GRAVEN or $LOADGEN" >&2; exit 1; }

mkdir -p "$TARGET_DIR/bench-ingest"
RESULTS=${RESULTS:-$TARGET_DIR/bench-ingest/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
TMP=$(mktemp -d /tmp/graven-ingest.XXXXXX)
SPID=""
PERFPID=""
cleanup() {
    [ -n "$PERFPID" ] && kill -INT "$PERFPID" 2>/dev/null && wait "$PERFPID" 2>/dev/null || true
    [ -n "$SPID" ] && kill -TERM "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# Starts graven serve on a fresh data dir; sets SPID and SURL.
start_server() {
    local data=$1
    # shellcheck disable=SC2086
    "$GRAVEN" serve --data "$data" --listen 127.0.0.1:0 $SERVER_ARGS >"$data.out" 2>"$data.err" &
    SPID=$!
    SURL=""
    for _ in $(seq 1 200); do
        SURL=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$data.out" 2>/dev/null | sed 's/listening on //' || true)
        [ -n "$SURL" ] && break
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$SURL" ]; then
        echo "graven serve did not start:" >&2
        cat "$data.out" "$data.err" >&2
        exit 1
    fi
}
stop_server() {
    kill -TERM "$SPID"
    local i
    for i in $(seq 1 600); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$SPID" 2>/dev/null && { log "server did not stop in 60 s; killing"; kill -KILL "$SPID"; }
    wait "$SPID" 2>/dev/null || true
    SPID=""
}
perf_start() {  # $1 = output file
    if [ "${PROFILE:-0}" = 1 ] && command -v perf >/dev/null; then
        perf record -q -F 499 --call-graph dwarf,32768 -o "$1" -p "$SPID" >/dev/null 2>&1 &
        PERFPID=$!
        sleep 0.3
    fi
}
perf_stop() {  # $1 = output file, $2 = title
    if [ -n "$PERFPID" ]; then
        kill -INT "$PERFPID" 2>/dev/null || true
        wait "$PERFPID" 2>/dev/null || true
        PERFPID=""
        log "profile: $2"
        perf script -i "$1" -F comm,tid,ip,sym 2>/dev/null | python3 "$HERE/perf-breakdown.py" >&2 || true
        cp "$1" "$TARGET_DIR/bench-ingest/" 2>/dev/null || true
    fi
}
# Appends the loadgen's JSON line to RESULTS with system/run fields.
record() {  # $1 = run, $2 = json
    python3 -c 'import json,sys; d=json.loads(sys.argv[2]); d={"system":"graven","run":int(sys.argv[1]),**d}; print(json.dumps(d))' "$1" "$2" >>"$RESULTS"
}

show_single() {
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); s=d["server"]; l=d["latency_ms"]
print("    %.0f events/s, p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms, non-201 %d, server CPU %.0f%%, %.0f events/commit" % (
 d["events_per_s"], l["p50"], l["p99"], l["p99_9"], d["non_201"], s["server_cpu_pct"] or 0, s["events_per_commit"] or 0))' "$1" >&2
}

python3 -c '
import json, os, subprocess, sys
cpu = next((l.split(":",1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
rev = subprocess.run(["git","-C",sys.argv[1],"rev-parse","--short","HEAD"],capture_output=True,text=True).stdout.strip()
dirty = subprocess.run(["git","-C",sys.argv[1],"status","--porcelain","--untracked-files=no"],capture_output=True,text=True).stdout.strip() != ""
print(json.dumps({"system":"machine","nproc":os.cpu_count(),"cpu":cpu,"loadavg":open("/proc/loadavg").read().split()[:3],
                  "commit":rev + ("+dirty" if dirty else ""),"date":subprocess.run(["date","-u","+%Y-%m-%dT%H:%M:%SZ"],capture_output=True,text=True).stdout.strip(),
                  "runs":int(sys.argv[2]),"bulk":{"events":int(sys.argv[3]),"connections":int(sys.argv[4]),"batch":int(sys.argv[5])},
                  "single":{"connections":int(sys.argv[6]),"secs":float(sys.argv[7])},"server_args":sys.argv[8]}))
' "$ROOT" "$RUNS" "$BULK_EVENTS" "$BULK_CONNECTIONS" "$BULK_BATCH" "$SINGLE_CONNECTIONS" "$SINGLE_SECS" "$SERVER_ARGS" >>"$RESULTS"

for run in $(seq 1 "$RUNS"); do
    data=$TMP/bulk$run
    start_server "$data"
    log "run $run: bulk, $BULK_CONNECTIONS connections x $BULK_BATCH events/request, $BULK_EVENTS events ($SURL)"
    [ "$run" = 1 ] && perf_start "$TMP/perf-bulk.data"
    out=$(timeout 900 "$LOADGEN" bulk --url "$SURL" --token-file "$data/admin.token" \
        --connections "$BULK_CONNECTIONS" --batch "$BULK_BATCH" --events "$BULK_EVENTS" --server-pid "$SPID")
    [ "$run" = 1 ] && perf_stop "$TMP/perf-bulk.data" "bulk"
    record "$run" "$out"
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); s=d["server"]; dr=d.get("drain") or {}
print("    %.0f events/s, %.1f MB/s in, non-201 %d, server CPU %.0f%%, VmHWM %.0f MB, %.0f events/commit; incl. index catch-up %.0f events/s, %.1f us CPU/event" % (
 d["events_per_s"], d["request_mb_per_s"], d["non_201"], s["server_cpu_pct"] or 0, (s["server_vmhwm_kb"] or 0)/1024, s["events_per_commit"] or 0,
 dr.get("events_per_s_incl_drain") or 0, dr.get("server_cpu_us_per_event_incl_drain") or 0))' "$out" >&2
    stop_server

    data=$TMP/single$run
    start_server "$data"
    log "run $run: single, $SINGLE_CONNECTIONS connections, ${SINGLE_SECS}s ($SURL)"
    [ "$run" = 1 ] && perf_start "$TMP/perf-single.data"
    out=$(timeout 300 "$LOADGEN" single --url "$SURL" --token-file "$data/admin.token" \
        --connections "$SINGLE_CONNECTIONS" --duration-secs "$SINGLE_SECS" --server-pid "$SPID")
    [ "$run" = 1 ] && perf_stop "$TMP/perf-single.data" "single"
    record "$run" "$out"
    show_single "$out"
    stop_server

    # The same with as many connections as PostgreSQL's clients, for a like-for-like latency.
    data=$TMP/single-pg$run
    start_server "$data"
    log "run $run: single, $PG_CLIENTS connections (as PostgreSQL's clients), ${SINGLE_SECS}s ($SURL)"
    out=$(timeout 300 "$LOADGEN" single --url "$SURL" --token-file "$data/admin.token" \
        --connections "$PG_CLIENTS" --duration-secs "$SINGLE_SECS" --server-pid "$SPID")
    record "$run" "$out"
    show_single "$out"
    stop_server
done

if [ "${PG:-1}" = 1 ]; then
    RUNS=$RUNS "$HERE/pg-audit.sh" "$RESULTS"
fi

log "results: $RESULTS"
python3 "$HERE/ingest-summary.py" "$RESULTS"
