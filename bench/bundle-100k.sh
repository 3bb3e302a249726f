#!/usr/bin/env bash
# Benchmarks evidence bundles on a local log of 100,000 events: `graven export --bundle --dir`
# (scan and verify the whole log, build and check an inclusion proof per event, write the tar)
# and `graven verify bundle.tar` (fully offline: manifest hashes, checkpoint signature, each
# event's leaf hash and inclusion proof). Every event is selected, so both figures are per
# exported event. Reports each run and the median of RUNS runs, in entries/s, and each run's
# ratio to this machine's SHA-256 limit for one-shot hashes of the events' mean size
# (`openssl speed -evp sha256 -bytes <mean entry size>`, measured after each run, same run).
#
# Usage: bench/bundle-100k.sh [RUNS]      (default 3)
# Env:   ENTRIES=100000                   log size (all of it is exported)
#        CARGO_TARGET_DIR                 where the release build is (default: ./target)
#        KEEP=1                           keep the temporary directory
set -euo pipefail

RUNS=${1:-3}
ENTRIES=${ENTRIES:-100000}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
command -v python3 >/dev/null || { echo "bundle-100k.sh: needs python3" >&2; exit 1; }

echo "== machine"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "nproc:   $(nproc)"
echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "rustc:   $(rustc --version)"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== build"
cargo build --release --locked -p graven 2>&1 | tail -1
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/graven"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/graven-bundle-bench.XXXXXX")
if [[ -z "${KEEP:-}" ]]; then trap 'rm -rf "$TMP"' EXIT; else echo "keeping $TMP"; fi

echo "== log of $ENTRIES events"
VKEY=$("$BIN" keygen --origin bench.example/audit --out "$TMP/key")
python3 - "$ENTRIES" > "$TMP/events.ndjson" <<'EOF'
import json, sys
n = int(sys.argv[1])
kinds = ["service_account", "ci_job", "ai_agent"]
actions = ["deployment.create", "secret.read", "key.rotate", "token.revoke"]
outcomes = ["success", "success", "success", "failure", "denied"]
for i in range(n):
    print(json.dumps({
        "v": 1,
        "logged_at": "2026-11-26T%02d:%02d:%02d.%06dZ" % (i // 3600000 % 24, i // 60000 % 60, i // 1000 % 60, (i % 1000) * 1000),
        "actor": {"id": "svc:worker-%d" % (i % 97), "kind": kinds[i % 3], "credential": "key:%06x" % (i % 997), "auth": "api_key"},
        "action": actions[i % 4],
        "resource": {"type": "k8s.deployment", "id": "prod/app-%d" % (i % 113)},
        "outcome": outcomes[i % 5],
        "occurred_at": "2026-11-26T17:48:19.900Z",
        "source": {"ip": "10.2.%d.%d" % (i // 256 % 256, i % 256), "user_agent": "deployer/1.4"},
        "request_id": "req-%08d" % i,
        "details": {"replicas": i % 7, "note": "benchmark event %d" % i},
    }, separators=(",", ":")))
EOF
"$BIN" log append --dir "$TMP/log" --key "$TMP/key" < "$TMP/events.ndjson"
du -sh "$TMP/log" | sed 's/^/log size: /'

median() { python3 -c 'import sys, statistics; print("%.0f" % statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
rate() { python3 -c 'import sys; print("%.0f" % (int(sys.argv[1]) / float(sys.argv[2])))' "$@"; }

MEAN=$(python3 -c 'import sys; n=0; t=0
for l in open(sys.argv[1], "rb"): n += 1; t += len(l) - 1
print(round(t / n))' "$TMP/events.ndjson")
echo "mean event size (as given to log append; canonical bytes are about the same): $MEAN B"
hps() { openssl speed -mr -evp sha256 -seconds 2 -bytes "$MEAN" 2>/dev/null | awk -F: -v b="$MEAN" '/^\+F:/ {printf "%.0f\n", $4 / b}'; }
EXPORT_RATES=()
VERIFY_RATES=()
LIMITS=()
for run in $(seq 1 "$RUNS"); do
  rm -f "$TMP/bundle.tar"
  t0=$(date +%s.%N)
  "$BIN" export --dir "$TMP/log" --vkey "$VKEY" --bundle "$TMP/bundle.tar" 2>/dev/null
  t1=$(date +%s.%N)
  "$BIN" verify "$TMP/bundle.tar" --vkey "$VKEY" --json > "$TMP/verify.json" 2>/dev/null
  t2=$(date +%s.%N)
  python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["ok"] and v["events"] == int(sys.argv[2]), v' \
    "$TMP/verify.json" "$ENTRIES"
  e=$(python3 -c "print($t1 - $t0)"); v=$(python3 -c "print($t2 - $t1)")
  er=$(rate "$ENTRIES" "$e"); vr=$(rate "$ENTRIES" "$v")
  lim=$(hps)
  EXPORT_RATES+=("$er"); VERIFY_RATES+=("$vr"); LIMITS+=("$lim")
  printf 'run %d: export %.2fs (%s entries/s), verify %.2fs (%s entries/s) | sha256 %s B: %s/s\n' "$run" "$e" "$er" "$v" "$vr" "$MEAN" "$lim"
done
ls -l "$TMP/bundle.tar" | awk '{printf "bundle size: %.1f MiB\n", $5/1048576}'
echo "== median of $RUNS runs ($ENTRIES events)"
echo "export --bundle --dir: $(median "${EXPORT_RATES[@]}") entries/s"
echo "verify bundle.tar:     $(median "${VERIFY_RATES[@]}") entries/s"
L=$(median "${LIMITS[@]}")
echo "SHA-256 limit, $MEAN-byte messages: $L/s per core; ratios: export $(python3 -c "print(round($(median "${EXPORT_RATES[@]}") / $L, 3))"), verify $(python3 -c "print(round($(median "${VERIFY_RATES[@]}") / $L, 3))")"
