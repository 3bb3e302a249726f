#!/usr/bin/env bash
# Short smoke run of every cargo-fuzz target in fuzz/ (see docs/fuzzing.md).
#
# Builds all targets once, then runs each for FUZZ_SECONDS (default 20) with the checked-in
# seeds in fuzz/seeds/<target>/ as an extra, read-only corpus. New inputs go to the gitignored
# fuzz/corpus/<target>/, crashes to fuzz/artifacts/<target>/. Exits non-zero if any target
# crashes, fails an assertion, hangs or fails to build.
#
# Works on the stable toolchain: by default the targets are built without a sanitizer
# (`cargo fuzz -s none`), which needs no nightly flag at all. FUZZ_SANITIZER=address builds with
# AddressSanitizer instead; that passes -Zsanitizer=address, so RUSTC_BOOTSTRAP=1 is set for it.
#
# Environment:
#   FUZZ_SECONDS    seconds per target (default 20)
#   FUZZ_TARGETS    space-separated subset of targets (default: all, from `cargo fuzz list`)
#   FUZZ_SANITIZER  none (default) or address
#   FUZZ_JOBS       targets run at once (default 1; 2 halves the wall time on 2 cores)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

seconds="${FUZZ_SECONDS:-20}"
sanitizer="${FUZZ_SANITIZER:-none}"
jobs="${FUZZ_JOBS:-1}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: cargo-fuzz is missing; installing it (takes about 1.5 minutes)"
    cargo install cargo-fuzz --locked
fi

fuzz_flags=(--sanitizer "$sanitizer")
if [[ "$sanitizer" != none ]]; then
    # Sanitizers are -Z flags; let the stable compiler accept them.
    export RUSTC_BOOTSTRAP=1
fi

if [[ -n "${FUZZ_TARGETS:-}" ]]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <(cargo fuzz list)
fi
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "fuzz-smoke: no fuzz targets found" >&2
    exit 1
fi

echo "fuzz-smoke: building ${#targets[@]} targets (sanitizer: $sanitizer)"
build_start=$SECONDS
cargo fuzz build "${fuzz_flags[@]}"
echo "fuzz-smoke: build took $((SECONDS - build_start)) s"

logs="$root/fuzz/target/smoke-logs"
mkdir -p "$logs"
rm -f "$logs"/*.status
run_start=$SECONDS

run_one() {
    local t="$1"
    mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t"
    # First corpus dir is written to, the seeds dir only read. -timeout: an input taking over
    # 10 s is a hang and fails the run. -rss_limit_mb bounds memory per target.
    if RUST_BACKTRACE=1 cargo fuzz run "${fuzz_flags[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$logs/$t.log" 2>&1; then
        echo "fuzz-smoke: $t ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$') runs, $(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$') exec/s)"
        return 0
    fi
    echo "fuzz-smoke: $t FAILED; log follows" >&2
    # The panic message, the stack and the reproduction command are near the end.
    tail -n 80 "$logs/$t.log" >&2
    local f
    for f in $(grep -o "fuzz/artifacts/$t/[a-z]*-[0-9a-f]*" "$logs/$t.log" | sort -u); do
        [[ -f "$f" ]] || continue
        echo "fuzz-smoke: $f ($(wc -c <"$f") bytes) hex:" >&2
        od -An -v -tx1 "$f" | tr -d ' \n' | fold -w 128 >&2
        echo >&2
    done
    return 1
}

failed=()
if [[ "$jobs" -le 1 ]]; then
    for t in "${targets[@]}"; do
        run_one "$t" || failed+=("$t")
    done
else
    # A simple pool of $jobs runs at once; each leaves its exit status in a file.
    for t in "${targets[@]}"; do
        while [[ $(jobs -rp | wc -l) -ge "$jobs" ]]; do
            wait -n || true
        done
        (
            rc=0
            run_one "$t" || rc=$?
            echo "$rc" >"$logs/$t.status"
        ) &
    done
    wait
    for t in "${targets[@]}"; do
        [[ "$(cat "$logs/$t.status" 2>/dev/null)" == 0 ]] || failed+=("$t")
    done
fi

echo "fuzz-smoke: fuzzing took $((SECONDS - run_start)) s for ${#targets[@]} targets, $seconds s each"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz-smoke: FAILED: ${failed[*]} (inputs in fuzz/artifacts/, logs in $logs/)" >&2
fi
echo "fuzz-smoke: $((${#targets[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
[[ ${#failed[@]} -eq 0 ]]
