#!/usr/bin/env bash
# A long fuzz campaign measured in CPU time, not wall time: each target runs until its fuzzing
# process has used FUZZ_CPU_SECONDS of CPU (default 900: 15 CPU-minutes), however busy the
# machine is, then stops with libFuzzer's final statistics. Prints one Markdown table row per
# target (CPU seconds, executions, coverage, corpus, crashes) for docs/fuzzing.md.
#
# Environment:
#   FUZZ_CPU_SECONDS  CPU seconds per target (default 900)
#   FUZZ_TARGETS      space-separated subset (default: all, from `cargo fuzz list`)
#   FUZZ_JOBS         targets at once (default 1)
#   FUZZ_SANITIZER    none (default) or address
#   FUZZ_FRESH        1 to run every target again; by default a target whose row is already in
#                     fuzz/target/campaign-logs/<target>.row (a finished run of at least
#                     FUZZ_CPU_SECONDS) is not run again, so a campaign cut short resumes
# Crashes go to fuzz/artifacts/<target>/; logs to fuzz/target/campaign-logs/<target>.log.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cpu_limit="${FUZZ_CPU_SECONDS:-900}"
jobs="${FUZZ_JOBS:-1}"
sanitizer="${FUZZ_SANITIZER:-none}"
[[ "$sanitizer" != none ]] && export RUSTC_BOOTSTRAP=1
if [[ -n "${FUZZ_TARGETS:-}" ]]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <(cargo fuzz list)
fi
logs="$root/fuzz/target/campaign-logs"
mkdir -p "$logs"
cargo fuzz build --sanitizer "$sanitizer" >/dev/null
bin_dir="$root/fuzz/target/x86_64-unknown-linux-gnu/release"
ticks=$(getconf CLK_TCK)

# CPU seconds (user + system) used so far by process $1.
cpu_of() {
    local f
    f=$(cut -d' ' -f14,15 "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    set -- $f
    echo $(( ($1 + $2) / ticks ))
}

run_one() {
    local t="$1" log="$logs/$1.log" pid used=0 start=$SECONDS
    mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t" "fuzz/artifacts/$t"
    # One process, no forks: its CPU time is the campaign's for this target.
    "$bin_dir/$t" -artifact_prefix="fuzz/artifacts/$t/" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "fuzz/corpus/$t" "fuzz/seeds/$t" >"$log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        used=$(cpu_of "$pid")
        if (( used >= cpu_limit )); then
            kill -INT "$pid" 2>/dev/null || true
            break
        fi
        sleep 5
    done
    local rc=0
    wait "$pid" || rc=$?
    local runs cov ft corp crashes
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo "?")
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo "?")
    corp=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo "?")
    crashes=$(find "fuzz/artifacts/$t" -type f -newer "$log.start" 2>/dev/null | wc -l)
    # libFuzzer exits 0 on a clean finish and after SIGINT once it has written its stats (older
    # versions exit 72 on an interrupt); anything else is a crash or a failed assertion.
    local verdict="ok"
    if [[ "$crashes" -gt 0 ]] || { [[ $rc -ne 0 ]] && [[ $rc -ne 72 ]] && [[ $rc -ne 130 ]]; }; then
        verdict="FAILED (exit $rc, see $log)"
    fi
    local row="| \`$t\` | $used | $((SECONDS - start)) | $runs | $cov | $ft | $corp | $crashes | $verdict |"
    # Kept only for a run that used its whole budget and passed: that one is done.
    if [[ "$verdict" == ok ]] && (( used >= cpu_limit )); then
        echo "$cpu_limit $row" >"$logs/$t.row"
    fi
    echo "$row"
}

# The row of a target already run to this budget, if any.
done_row() {
    local f="$logs/$1.row" budget row
    [[ "${FUZZ_FRESH:-0}" == 1 || ! -f "$f" ]] && return 1
    read -r budget row <"$f"
    (( budget >= cpu_limit )) || return 1
    echo "$row"
}

echo "| target | CPU s | wall s | executions | coverage (cov) | features (ft) | corpus | crashes | result |"
echo "|---|---|---|---|---|---|---|---|---|"
for t in "${targets[@]}"; do
    if done_row "$t"; then
        continue
    fi
    touch "$logs/$t.log.start"
    if [[ "$jobs" -le 1 ]]; then
        run_one "$t"
    else
        while [[ $(jobs -rp | wc -l) -ge "$jobs" ]]; do wait -n || true; done
        run_one "$t" &
    fi
done
wait
