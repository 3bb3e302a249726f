#!/usr/bin/env bash
# Benchmarks `graven verify` on a local 1,000,000-entry log against this machine's SHA-256 limit,
# both measured in the same run, interleaved round by round so they see the same noise.
#
# Usage: bench/verify-1m.sh [RUNS]        (RUNS verify rounds, default 5)
# Env:   ENTRIES=1000000                   log size
#        APPEND_RUNS=1                     how many fresh logs to build (append timing)
#        OPENSSL_SECONDS=2                 seconds per `openssl speed` measurement
#        CRITERION=1                       also run the sha2 (Graven's own SHA-256) criterion
#                                          benches for the same-code limit; 0 to skip
#        KEEP=1                            keep the temporary directory
#
# What is measured, per round:
#   - `graven verify DIR --vkey VKEY --json`: entries_per_second from its JSON, plus CPU% and
#     max RSS from /usr/bin/time -v (graven verify is single-threaded: CPU% ~ 100 means one core).
#   - `openssl speed -evp sha256 -bytes 16`: one-shot SHA-256 of 16-byte messages. A message of
#     up to 55 bytes pads to one 64-byte block, so this is single-compression hashes/s, i.e. the
#     per-core limit for leaf hashes of short entries (leaf = SHA-256(0x00 || entry); the entries
#     here are `entry-N`, at most 13 bytes with the prefix: one compression each).
#   - `openssl speed -evp sha256 -bytes 65`: one-shot SHA-256 of 65 bytes, the size of an RFC 6962
#     node hash input (0x01 || left || right): two compressions.
# Bounds reported (all per core):
#   leaf limit       = single-block hashes/s                       (the "leaf hashes/s" figure)
#   3-compression    = single-block hashes/s / 3                   (1 leaf + ~1 node of 2 blocks)
#   leaf+node        = 1 / (1/hashes16 + 1/hashes65)               (same, with measured costs)
# The same bounds are also computed from the `sha2` crate Graven links (criterion, after the
# rounds): `sha256_limit/one_block_55B`, `node_hash`, `leaf_hash/8B` and
# `tree_build/leaf_hash_and_push_65536` (the verifier's per-entry compute with no I/O).
# Building a tree of n leaves costs exactly n-1 node hashes, so the verifier cannot do less
# than one 1-block hash and one 2-block hash per entry.
set -euo pipefail

RUNS=${1:-5}
ENTRIES=${ENTRIES:-1000000}
APPEND_RUNS=${APPEND_RUNS:-1}
OPENSSL_SECONDS=${OPENSSL_SECONDS:-2}
CRITERION=${CRITERION:-1}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

for tool in openssl python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "verify-1m.sh: needs $tool" >&2; exit 1; }
done

echo "== machine"
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "nproc:   $(nproc)"
echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "sha_ni:  $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no)"
echo "rustc:   $(rustc --version)"
echo "openssl: $(openssl version)"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== build"
cargo build --release -p graven 2>&1 | tail -1
BIN="$ROOT/target/release/graven"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/graven-bench.XXXXXX")
if [[ -z "${KEEP:-}" ]]; then trap 'rm -rf "$TMP"' EXIT; else echo "keeping $TMP"; fi

KEY="$TMP/key"
VKEY=$("$BIN" keygen --origin bench.example/log --out "$KEY")
echo "vkey:    $VKEY"

median() { python3 -c 'import sys,statistics; v=[float(x) for x in sys.argv[1:]]; print(statistics.median(v))' "$@"; }

# Field from `/usr/bin/time -v` output.
tv() { grep -F "$1" "$2" | head -1 | awk -F': ' '{print $2}' | tr -d '%'; }

echo "== append: $ENTRIES entries (--raw), $APPEND_RUNS fresh log(s)"
seq 0 $((ENTRIES - 1)) | sed 's/^/entry-/' > "$TMP/entries.txt"
append_secs=()
for i in $(seq 1 "$APPEND_RUNS"); do
  DIR="$TMP/log$i"
  /usr/bin/time -v -o "$TMP/append.time" "$BIN" log append --dir "$DIR" --key "$KEY" --raw \
    < "$TMP/entries.txt" > "$TMP/append.json"
  secs=$(python3 - "$TMP/append.time" <<'EOF'
import sys
for line in open(sys.argv[1]):
    if "Elapsed (wall clock)" in line:
        t = line.rsplit(": ", 1)[1].strip().split(":")
        s = 0.0
        for part in t:
            s = s * 60 + float(part)
        print(s)
EOF
)
  append_secs+=("$secs")
  printf 'append %d: %.2f s wall, %s%% CPU, max RSS %s kB, %s\n' "$i" "$secs" \
    "$(tv 'Percent of CPU' "$TMP/append.time")" "$(tv 'Maximum resident' "$TMP/append.time")" "$(cat "$TMP/append.json")"
done
APPEND_MED=$(median "${append_secs[@]}")
DIR="$TMP/log1"
echo "log size on disk: $(du -sh "$DIR" | cut -f1), files: $(find "$DIR" -type f | wc -l)"

# `openssl speed -mr` prints `+F:<n>:<alg>:<bytes/s>`; hashes/s = bytes/s / message size.
openssl_hps() {
  local bytes=$1
  openssl speed -mr -evp sha256 -seconds "$OPENSSL_SECONDS" -bytes "$bytes" 2>/dev/null \
    | awk -F: -v b="$bytes" '/^\+F:/ {printf "%.0f\n", $4 / b}'
}

echo "== rounds: verify, then openssl 16 B and 65 B"
verify_eps=(); verify_cpu=(); verify_cpus=(); h16=(); h65=()
for i in $(seq 1 "$RUNS"); do
  /usr/bin/time -v -o "$TMP/verify.time" "$BIN" verify "$DIR" --vkey "$VKEY" --json > "$TMP/verify.json"
  eps=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ok"], d; assert d["tree_size"]==int(sys.argv[2]); print(d["entries_per_second"])' "$TMP/verify.json" "$ENTRIES")
  cpu=$(tv 'Percent of CPU' "$TMP/verify.time")
  rss=$(tv 'Maximum resident' "$TMP/verify.time")
  cpus=$(python3 -c 'import sys; print(float(sys.argv[1]) + float(sys.argv[2]))' \
    "$(tv 'User time (seconds)' "$TMP/verify.time")" "$(tv 'System time (seconds)' "$TMP/verify.time")")
  a=$(openssl_hps 16)
  b=$(openssl_hps 65)
  verify_eps+=("$eps"); verify_cpu+=("$cpu"); verify_cpus+=("$cpus"); h16+=("$a"); h65+=("$b")
  printf 'round %d: verify %.0f entries/s (CPU %s%%, user+sys %.2f s, max RSS %s kB) | sha256 16B %s/s | sha256 65B %s/s\n' \
    "$i" "$eps" "$cpu" "$cpus" "$rss" "$a" "$b"
done

CRIT_DIR=""
if [[ "$CRITERION" == 1 ]]; then
  echo "== criterion: sha2 limits (graven-core bench, short run)"
  cargo bench -p graven-core --bench core -- --warm-up-time 1 --measurement-time 3 \
    '^(sha256_limit/one_block_55B|node_hash/node_hash|leaf_hash/8B|tree_build/leaf_hash_and_push_65536)$' \
    2>&1 | grep -E '^(sha256_limit|node_hash|leaf_hash|tree_build)|time:' || true
  CRIT_DIR="$ROOT/target/criterion"
fi

CRIT_DIR="$CRIT_DIR" python3 - "$ENTRIES" "$APPEND_MED" "${#verify_eps[@]}" "${verify_eps[@]}" "${verify_cpu[@]}" "${verify_cpus[@]}" "${h16[@]}" "${h65[@]}" <<'EOF'
import json, os, sys, statistics as st
a = sys.argv[1:]
entries, append_s, n = int(a[0]), float(a[1]), int(a[2])
v = [float(x) for x in a[3:3 + n]]
cpu = [float(x) for x in a[3 + n:3 + 2 * n]]
cpus = [float(x) for x in a[3 + 2 * n:3 + 3 * n]]
h16 = [float(x) for x in a[3 + 3 * n:3 + 4 * n]]
h65 = [float(x) for x in a[3 + 4 * n:3 + 5 * n]]
V, C, L, N = st.median(v), st.median(cpu), st.median(h16), st.median(h65)
per_core = entries / st.median(cpus) if st.median(cpus) > 0 else float("nan")
three = L / 3
leaf_node = 1 / (1 / L + 1 / N)
print("== summary (medians of %d rounds)" % n)
print("append %d entries:              %.2f s  (%.0f entries/s)" % (entries, append_s, entries / append_s))
print("graven verify:                  %.0f entries/s  (min %.0f, max %.0f)" % (V, min(v), max(v)))
print("graven verify CPU:              %.0f%% of one core (whole process, /usr/bin/time -v)" % C)
print("graven verify per CPU-second:   %.0f entries / (user+sys s), whole process" % per_core)
print("SHA-256 1 block (16 B, openssl): %.0f hashes/s  = leaf-hash limit per core" % L)
print("SHA-256 2 blocks (65 B, openssl): %.0f hashes/s = node-hash limit per core" % N)
print("3-compression bound (L/3):      %.0f entries/s" % three)
print("leaf+node bound 1/(1/L+1/N):    %.0f entries/s" % leaf_node)
print("ratio verify / leaf-hash limit: %.3f" % (V / L))
print("ratio verify / 3-compression:   %.3f" % (V / three))
print("ratio verify / leaf+node bound: %.3f" % (V / leaf_node))
crit = os.environ.get("CRIT_DIR")
if crit:
    def med_ns(bid):
        return json.load(open(os.path.join(crit, bid, "new", "estimates.json")))["median"]["point_estimate"]
    one, node = 1e9 / med_ns("sha256_limit/one_block_55B"), 1e9 / med_ns("node_hash/node_hash")
    leaf8 = 1e9 / med_ns("leaf_hash/8B")
    inner = 65536 * 1e9 / med_ns("tree_build/leaf_hash_and_push_65536")
    print("-- sha2 crate (criterion medians, same machine, run after the rounds)")
    print("sha2 1 block (55 B):            %.0f hashes/s" % one)
    print("graven leaf_hash (8 B):         %.0f hashes/s" % leaf8)
    print("graven node_hash:               %.0f hashes/s" % node)
    print("leaf_hash+RightEdge::push:      %.0f entries/s (verify's compute, no I/O)" % inner)
    print("ratio verify / sha2 1-block:    %.3f" % (V / one))
    print("ratio verify / sha2 (1-block)/3: %.3f" % (V / (one / 3)))
    print("ratio verify / sha2 leaf+node:  %.3f" % (V / (1 / (1 / one + 1 / node))))
    print("ratio verify / in-memory compute: %.3f" % (V / inner))
print("goal >= 1,000,000 entries/s per core: %s" % ("MET" if min(V, per_core) >= 1e6 else "NOT MET"))
EOF
