#!/usr/bin/env bash
# Witnessing's cost, measured in one run:
#  1. ingest of `graven serve` with no witness and with three `graven witness` processes
#     (quorum two of three), alternating, RUNS times each: single events (SINGLE_CONNECTIONS,
#     SINGLE_SECS) and NDJSON batches (BULK_EVENTS in batches of BULK_BATCH);
#  2. `graven witness` add-checkpoint throughput with 1 and WITNESS_ORIGINS logs at once.
# Everything on 127.0.0.1, free ports, fresh temp dirs. Prints JSON lines and a summary of
# medians and ratios.
#
#   bench/witnesses.sh                 # build (release), RUNS=3
#   SKIP_BUILD=1 RUNS=5 bench/witnesses.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
SINGLE_CONNECTIONS=${SINGLE_CONNECTIONS:-64}
SINGLE_SECS=${SINGLE_SECS:-10}
BULK_EVENTS=${BULK_EVENTS:-200000}
BULK_BATCH=${BULK_BATCH:-5000}
WITNESS_ORIGINS=${WITNESS_ORIGINS:-8}
WITNESS_SECS=${WITNESS_SECS:-10}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
GRAVEN=${GRAVEN_BIN:-$TARGET_DIR/release/graven}
LOADGEN=${LOADGEN_BIN:-$TARGET_DIR/release/graven-loadgen}
log() { echo "[witnesses $(date +%H:%M:%S)] $*" >&2; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building graven and graven-loadgen (release)"
    (cd "$ROOT" && cargo build --release -q -p graven -p graven-loadgen)
fi
TMP=$(mktemp -d /tmp/graven-witnesses.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# listen_url <stdout file> <pid>: waits for "listening on http://..." and prints the URL.
listen_url() {
    local url=""
    for _ in $(seq 1 400); do
        url=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$1" 2>/dev/null | sed 's/listening on //' || true)
        [ -n "$url" ] && { echo "$url"; return; }
        kill -0 "$2" 2>/dev/null || break
        sleep 0.05
    done
    echo "no listening line in $1" >&2; cat "${1%.out}.err" >&2 || true; exit 1
}

# start_witness <dir> <name> <log flags...>: prints "URL VKEY".
start_witness() {
    local d=$1 name=$2; shift 2
    mkdir -p "$d"
    local flags=()
    for f in "$@"; do flags+=(--log "$f"); done
    "$GRAVEN" witness --data "$d/data" --key "$d/key" --name "$name" --listen 127.0.0.1:0 "${flags[@]}" \
        >"$d.out" 2>"$d.err" &
    local pid=$!
    PIDS+=("$pid")
    local url; url=$(listen_url "$d.out" "$pid")
    echo "$url $(sed -n 's/^verifier key: //p' "$d.out") $pid"
}

# serve_run <label> <run> <mode: single|bulk> <witnesses: 0|3>
serve_run() {
    local label=$1 run=$2 mode=$3 nw=$4
    local d=$TMP/$label-$mode-$run
    mkdir -p "$d"
    local vkey; vkey=$("$GRAVEN" keygen --origin bench.example/log --out "$d/log.key")
    local args=() wpids=()
    if [ "$nw" -gt 0 ]; then
        local policy="log $vkey"$'\n'
        local names=""
        for n in $(seq 1 "$nw"); do
            read -r url wk pid < <(start_witness "$d/w$n" "w$n.bench.example" "bench.example/log=$vkey")
            wpids+=("$pid")
            policy+="witness w$n $wk $url"$'\n'
            names+=" w$n"
        done
        policy+="group quorum 2$names"$'\n'"quorum quorum"$'\n'
        printf '%s' "$policy" >"$d/policy"
        args=(--witness-policy "$d/policy")
    fi
    "$GRAVEN" serve --data "$d" --listen 127.0.0.1:0 "${args[@]}" >"$d/serve.out" 2>"$d/serve.err" &
    local spid=$!
    PIDS+=("$spid")
    local surl; surl=$(listen_url "$d/serve.out" "$spid")
    local out
    if [ "$mode" = single ]; then
        out=$(timeout 300 "$LOADGEN" single --url "$surl" --token-file "$d/admin.token" \
            --connections "$SINGLE_CONNECTIONS" --duration-secs "$SINGLE_SECS" --server-pid "$spid")
    else
        out=$(timeout 600 "$LOADGEN" bulk --url "$surl" --token-file "$d/admin.token" \
            --connections 4 --batch "$BULK_BATCH" --events "$BULK_EVENTS" --server-pid "$spid")
    fi
    local info; info=$(curl -s -H "Authorization: Bearer $(cat "$d/admin.token")" "$surl/v1/log")
    python3 -c 'import json,sys
d=json.loads(sys.argv[1]); i=json.loads(sys.argv[2]); w=i.get("witnessing") or {}
print(json.dumps({"label":sys.argv[3],"mode":sys.argv[4],"run":int(sys.argv[5]),"witnesses":int(sys.argv[6]),
 "events_per_s":d["events_per_s"],"non_201":d.get("non_201"),"tree_size":i["tree_size"],
 "witness_rounds":w.get("rounds"),"witnessed_size":w.get("witnessed_size"),
 "witness_requests":[x["requests"] for x in w.get("witnesses",[])],
 "witness_failures":[x["failures"] for x in w.get("witnesses",[])]}))' "$out" "$info" "$label" "$mode" "$run" "$nw"
    kill -TERM "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true
    for p in "${wpids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}

RESULTS=$TMP/results.jsonl
for run in $(seq 1 "$RUNS"); do
    for mode in single bulk; do
        # Alternate which goes first, so a drift across the run does not favour one.
        if [ $((run % 2)) = 1 ]; then order="0 3"; else order="3 0"; fi
        for nw in $order; do
            log "run $run: $mode, $nw witnesses"
            serve_run "w$nw" "$run" "$mode" "$nw" | tee -a "$RESULTS"
        done
    done
done

log "witness add-checkpoint throughput"
mapfile -t logflags < <("$LOADGEN" witness-logs --origins "$WITNESS_ORIGINS" | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)))')
for origins in 1 "$WITNESS_ORIGINS"; do
    for run in $(seq 1 "$RUNS"); do
        read -r wurl _ wpid < <(start_witness "$TMP/tw-$origins-$run" tw.bench.example "${logflags[@]}")
        out=$("$LOADGEN" witness --url "$wurl" --origins "$origins" --duration-secs "$WITNESS_SECS")
        python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["label"]="witness"; d["run"]=int(sys.argv[2]); print(json.dumps(d))' "$out" "$run" | tee -a "$RESULTS"
        kill -TERM "$wpid" 2>/dev/null || true; wait "$wpid" 2>/dev/null || true
    done
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(xs): return statistics.median(xs) if xs else float("nan")
print("\n## summary (medians)")
for mode in ("single", "bulk"):
    a = [r["events_per_s"] for r in rows if r.get("mode") == mode and r.get("witnesses") == 0]
    b = [r["events_per_s"] for r in rows if r.get("mode") == mode and r.get("witnesses") == 3]
    rounds = [r["witness_rounds"] for r in rows if r.get("mode") == mode and r.get("witnesses") == 3]
    print(f"{mode}: 0 witnesses {med(a):.0f} events/s ({a}), 3 witnesses {med(b):.0f} events/s ({b}); ratio {med(b)/med(a):.3f}; rounds per run {rounds}")
for o in sorted({r["origins"] for r in rows if r.get("label") == "witness"}):
    c = [r["cosignatures_per_s"] for r in rows if r.get("label") == "witness" and r["origins"] == o]
    p50 = [r["latency_us"]["p50"] for r in rows if r.get("label") == "witness" and r["origins"] == o]
    print(f"witness, {o} logs at once: {med(c):.0f} cosignatures/s ({[round(x) for x in c]}), p50 latency {med(p50):.0f} us")
PY
