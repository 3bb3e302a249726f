#!/usr/bin/env bash
# Pipelined commits against one commit at a time, on the local disk, in the same rounds.
#
# Usage: [RUNS=3] [SINGLE_SECS=10] [BULK_EVENTS=300000] bench/pipeline.sh
#
# Each round, for each variant ("pipelined": the default; "serial": `pipeline_commits =
# false`, alternating which goes first), a FRESH server (fresh data dir, free loopback port):
#   single  graven-loadgen single --connections $SINGLE_CONNECTIONS (256) --duration-secs $SINGLE_SECS
#   bulk    graven-loadgen bulk --connections 4 --batch 10000 --events $BULK_EVENTS (fresh server)
# Every response must be 201 with a receipt. Medians of RUNS and the pipelined/serial ratio are
# printed; rows go to RESULTS (default target/bench-pipeline/results-<time>.jsonl).
# Env: RUNS (3), SINGLE_SECS (10), SINGLE_CONNECTIONS (256), BULK_EVENTS (300000; 0 skips),
# SKIP_BUILD=1, GRAVEN_BIN / LOADGEN_BIN, KEEP=1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
SINGLE_SECS=${SINGLE_SECS:-10}
SINGLE_CONNECTIONS=${SINGLE_CONNECTIONS:-256}
BULK_EVENTS=${BULK_EVENTS:-300000}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
GRAVEN=${GRAVEN_BIN:-$TARGET_DIR/release/graven}
LOADGEN=${LOADGEN_BIN:-$TARGET_DIR/release/graven-loadgen}

log() { echo "[pipeline $(date +%H:%M:%S)] $*" >&2; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building graven and graven-loadgen (release)"
    (cd "$ROOT" && cargo build --release -q -p graven -p graven-loadgen)
fi
[ -x "$GRAVEN" ] && [ -x "$LOADGEN" ] || { echo "missing $GRAVEN or $LOADGEN" >&2; exit 1; }

mkdir -p "$TARGET_DIR/bench-pipeline"
RESULTS=${RESULTS:-$TARGET_DIR/bench-pipeline/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
TMP=$(mktemp -d /tmp/graven-pipeline.XXXXXX)
SPID=""
cleanup() {
    [ -n "$SPID" ] && kill -TERM "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
printf 'pipeline_commits = false\n' >"$TMP/serial.toml"

# Starts graven serve on a fresh data dir; sets SPID and SURL. $1 = data dir, $2 = variant.
start_server() {
    local data=$1 args=()
    [ "$2" = serial ] && args=(--config "$TMP/serial.toml")
    "$GRAVEN" serve --data "$data" --listen 127.0.0.1:0 "${args[@]}" >"$data.out" 2>"$data.err" &
    SPID=$!
    SURL=""
    for _ in $(seq 1 200); do
        SURL=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$data.out" 2>/dev/null | sed 's/listening on //' || true)
        [ -n "$SURL" ] && break
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    [ -n "$SURL" ] || { echo "graven serve did not start:" >&2; cat "$data.out" "$data.err" >&2; exit 1; }
}
stop_server() {
    kill -TERM "$SPID"
    local i
    for i in $(seq 1 600); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$SPID" 2>/dev/null && kill -KILL "$SPID"
    wait "$SPID" 2>/dev/null || true
    SPID=""
}
record() {  # $1 run, $2 variant, $3 phase, $4 loadgen JSON
    python3 -c 'import json,sys; d=json.loads(sys.argv[4]); print(json.dumps({"run":int(sys.argv[1]),"variant":sys.argv[2],"phase":sys.argv[3],**d}))' \
        "$@" >>"$RESULTS"
    tail -1 "$RESULTS" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read()); l = d.get("latency_ms") or d.get("request_latency_ms") or {}; s = d.get("server") or {}
print("    %s %s: %.0f events/s, p50 %.1f ms, p99 %.1f ms, non-201 %d, %.0f events/commit, server CPU %.0f%%" % (
    d["variant"], d["phase"], d["events_per_s"], l.get("p50", 0), l.get("p99", 0), d.get("non_201", 0),
    s.get("events_per_commit") or 0, s.get("server_cpu_pct") or 0))' >&2
}

python3 -c '
import json, os, subprocess, sys
cpu = next((l.split(":",1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
git = lambda *a: subprocess.run(["git","-C",sys.argv[1],*a],capture_output=True,text=True).stdout.strip()
print(json.dumps({"machine": True, "nproc": os.cpu_count(), "cpu": cpu, "loadavg": open("/proc/loadavg").read().split()[:3],
    "commit": git("rev-parse","--short","HEAD") + ("+dirty" if git("status","--porcelain","--untracked-files=no") else ""),
    "date": subprocess.run(["date","-u","+%Y-%m-%dT%H:%M:%SZ"],capture_output=True,text=True).stdout.strip()}))' "$ROOT" >>"$RESULTS"

for run in $(seq 1 "$RUNS"); do
    order="pipelined serial"
    [ $((run % 2)) = 0 ] && order="serial pipelined"
    for variant in $order; do
        data=$TMP/$variant-single$run
        start_server "$data" "$variant"
        log "run $run: $variant single, $SINGLE_CONNECTIONS connections, ${SINGLE_SECS}s"
        out=$(timeout 300 "$LOADGEN" single --url "$SURL" --token-file "$data/admin.token" \
            --connections "$SINGLE_CONNECTIONS" --duration-secs "$SINGLE_SECS" --server-pid "$SPID")
        record "$run" "$variant" single "$out"
        stop_server
        if [ "$BULK_EVENTS" != 0 ]; then
            data=$TMP/$variant-bulk$run
            start_server "$data" "$variant"
            log "run $run: $variant bulk, 4 x 10000 events/request, $BULK_EVENTS events"
            out=$(timeout 900 "$LOADGEN" bulk --url "$SURL" --token-file "$data/admin.token" \
                --connections 4 --batch 10000 --events "$BULK_EVENTS" --server-pid "$SPID")
            record "$run" "$variant" bulk "$out"
            stop_server
        fi
    done
done

log "results: $RESULTS"
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
m = next(r for r in rows if r.get("machine"))
rows = [r for r in rows if not r.get("machine")]
print(f"# pipelined vs serial commits, local disk; commit {m['commit']}, {m['nproc']} cores ({m['cpu']}), load at start {' '.join(m['loadavg'])}, {m['date']}")
def get(d, path):
    for k in path.split("."):
        d = d.get(k) if isinstance(d, dict) else None
    return d
def med(variant, phase, path):
    xs = [get(r, path) for r in rows if r["variant"] == variant and r["phase"] == phase]
    xs = [x for x in xs if isinstance(x, (int, float))]
    return (statistics.median(xs), min(xs), max(xs)) if xs else None
def fmt(x, d):
    return "-" if x is None else f"{x[0]:,.{d}f} ({x[1]:,.{d}f}-{x[2]:,.{d}f})"
print(f"{'phase':<7} {'metric':<22} {'pipelined':>30} {'serial':>30} {'ratio':>6}")
for phase, name, path, d in [("single", "events/s", "events_per_s", 0), ("single", "p50 ms", "latency_ms.p50", 2),
        ("single", "p99 ms", "latency_ms.p99", 2), ("single", "events/commit", "server.events_per_commit", 1),
        ("single", "server CPU %", "server.server_cpu_pct", 0), ("single", "server RSS KiB", "server.server_vmrss_kb", 0),
        ("bulk", "events/s", "events_per_s", 0), ("bulk", "request p99 ms", "request_latency_ms.p99", 1),
        ("bulk", "events/commit", "server.events_per_commit", 0), ("bulk", "server CPU %", "server.server_cpu_pct", 0)]:
    p, s = med("pipelined", phase, path), med("serial", phase, path)
    if p is None and s is None:
        continue
    r = f"{p[0] / s[0]:.2f}" if p and s and s[0] else "-"
    print(f"{phase:<7} {name:<22} {fmt(p, d):>30} {fmt(s, d):>30} {r:>6}")
bad = [(r["run"], r["variant"], r["phase"]) for r in rows if (r.get("non_201") or 0) + (r.get("transport_errors") or 0) + (r.get("receipt_mismatches") or 0)]
print("ERRORS in: %s" % bad if bad else "every response 201 with its receipt")
PY
