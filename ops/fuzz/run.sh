#!/usr/bin/env bash
# Fuzzes every decoder of outside input for SECONDS each (libFuzzer through cargo-fuzz).
#
#   ops/fuzz/run.sh SECONDS [TARGET...]
#
#   ops/fuzz/run.sh 30     # the short run .ci/run calls (two targets at a time)
#   ops/fuzz/run.sh 600    # the long run: 10 minutes per target
#
# The targets and their oracles are in host/fuzzing (berth_fuzzing::TARGETS); ops/fuzz only
# links them to libFuzzer. Seeds come from host/fuzzing/corpus/<target> and every input that
# once failed from host/fuzzing/regressions/<target>; what the fuzzer learns is kept in
# target/fuzz/corpus/<target>, so a later run starts from it.
#
# The machine has one stable toolchain. cargo-fuzz needs nightly flags (-Zsanitizer=address,
# the sancov passes); RUSTC_BOOTSTRAP=1 lets stable rustc take them. The sanitizer runtime ships
# with the toolchain, so nothing else is needed.
#
# A crash stops that target, keeps the input in target/fuzz/artifacts/<target>/ and makes this
# script fail. Fix it, then copy the input into host/fuzzing/regressions/<target>/: `cargo test
# -p berth-fuzzing` replays it from then on.
#
# BERTH_FUZZ_JOBS (default 2): targets fuzzed at once, one core each.
# BERTH_FUZZ_PROFILE (default release): `dev` builds unoptimised, in about half the time (5 min
# against 11 here) and runs several times slower; .ci/run's short run uses it.
set -euo pipefail

secs=${1:?usage: ops/fuzz/run.sh SECONDS [TARGET...]}
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
jobs=${BERTH_FUZZ_JOBS:-2}
out=$root/target/fuzz
mkdir -p "$out/logs"

if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in ops/fuzz/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz (once)" >&2
    cargo install --locked cargo-fuzz@0.13.2 >&2
fi

export RUSTC_BOOTSTRAP=1
triple=$(rustc -vV | sed -n 's/^host: //p')
case ${BERTH_FUZZ_PROFILE:-release} in
    release) cargo fuzz build --fuzz-dir ops/fuzz --target-dir "$out/build" -O --debug-assertions >&2
             bin=$out/build/$triple/release ;;
    dev) cargo fuzz build --fuzz-dir ops/fuzz --target-dir "$out/build-dev" --dev >&2
         bin=$out/build-dev/$triple/debug ;;
    *) echo "BERTH_FUZZ_PROFILE must be release or dev" >&2; exit 2 ;;
esac

fuzz_one() {
    local t=$1
    local dirs=("$out/corpus/$t")
    mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
    for d in "host/fuzzing/corpus/$t" "host/fuzzing/regressions/$t"; do
        [ -d "$d" ] && dirs+=("$d")
    done
    # -close_fd_mask=1: the shims print FC's and SCF's log lines to stdout on every call.
    if "$bin/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -close_fd_mask=1 -print_final_stats=1 -artifact_prefix="$out/artifacts/$t/" "${dirs[@]}" \
        >"$out/logs/$t.log" 2>&1; then
        echo ok >"$out/logs/$t.result"
    else
        echo "failed ($?)" >"$out/logs/$t.result"
    fi
}
export -f fuzz_one
export out bin secs

rm -f "$out"/logs/*.result
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'fuzz_one {}'

failed=0
printf '%-12s %14s %10s %8s  %s\n' target executions "exec/s" corpus result
for t in "${targets[@]}"; do
    log=$out/logs/$t.log
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    corpus=$(find "$out/corpus/$t" -type f | wc -l)
    result=$(cat "$out/logs/$t.result" 2>/dev/null || echo "did not run")
    if [ "$result" != ok ]; then
        failed=1
        artifact=$(ls -t "$out/artifacts/$t"/* 2>/dev/null | head -1 || true)
        result="$result: ${artifact:-no input kept}; log $log"
    fi
    printf '%-12s %14s %10s %8s  %s\n' "$t" "${runs:-?}" "${rate:-?}" "$corpus" "$result"
done
if [ $failed -ne 0 ]; then
    echo "fuzzing found a failure: fix it, then copy the input into host/fuzzing/regressions/<target>/" >&2
    exit 1
fi
echo "fuzzed ${#targets[@]} targets for ${secs}s each: no failure"
