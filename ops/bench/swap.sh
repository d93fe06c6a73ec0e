#!/usr/bin/env bash
# Hot-swap benchmark: berth serving the `swap` fixture group while it is swapped v1 -> v2 -> v1 ...
# SWAPS times through the admin API, under CLIENTS keep-alive clients in a closed loop.
#
# Steady windows (no swaps, STEADY_SECS each) and swapping windows (SWAPS/ROUNDS swaps each)
# alternate ROUNDS times in the same run. Prints request latency p50/p99 of every window and the
# median p99 of each kind, swap latency (deploy call -> new version serving) p50/p99, and berth's
# resident memory after 10 and after SWAPS swaps (each once the replaced versions have retired).
# berth runs on core 0 with one tokio worker, the driver (ops/bench/swap-driver) on core 1 (see
# ../shared/bench-method.md).
#
# The machine is shared: the run starts once both cores are IDLE_MIN % idle, each window reports
# the CPU other processes took during it, and windows where that exceeds DISTURB_MAX % of a core
# are marked DISTURBED and left out of the medians.
#
# Then HALF_SWAPS more swaps (2 rounds) with the clients paced at half the steady throughput the
# saturated run measured: swap latency and request p99 at about half load.
#
# Usage: bash ops/bench/swap.sh
# Environment: SWAPS=1000 HALF_SWAPS=200 (0: no half-load run) ROUNDS=4 CLIENTS=16 STEADY_SECS=5 WARMUP_SECS=2 INTERVAL_MS=0 (pause between swaps)
#              BERTH_PORT=18090 ADMIN_PORT=18091 IDLE_MIN=90 DISTURB_MAX=8
#              PROFILE=release (cargo profile of berth and the plugins)
# The last line reads `swaps: N, failed requests: F, rss growth 10->1000: X MB, swap cpu: Y ms` (Y: the
# berth-swap thread's CPU time per swap).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

SWAPS="${SWAPS:-1000}"
CLIENTS="${CLIENTS:-16}"
STEADY_SECS="${STEADY_SECS:-5}"
ROUNDS="${ROUNDS:-4}"
WARMUP_SECS="${WARMUP_SECS:-2}"
BERTH_PORT="${BERTH_PORT:-18090}"
ADMIN_PORT="${ADMIN_PORT:-18091}"
PROFILE="${PROFILE:-release}"
INTERVAL_MS="${INTERVAL_MS:-0}"
HALF_SWAPS="${HALF_SWAPS:-200}"
IDLE_MIN="${IDLE_MIN:-90}"
DISTURB_MAX="${DISTURB_MAX:-8}"
SERVER_CORE=0
LOAD_CORE=1

OUT="$ROOT/target/bench/swap"
log() { echo "$@" >&2; }
die() { log "swap.sh: $*"; exit 1; }

((SWAPS % 2 == 0 && HALF_SWAPS % 2 == 0)) || die "SWAPS and HALF_SWAPS must be even (each run ends on v1)"
for t in taskset curl cargo; do command -v "$t" >/dev/null || die "needs \`$t\` on PATH"; done
[[ "$(nproc)" -ge 2 ]] || die "needs 2 cores (berth on core $SERVER_CORE, the driver on core $LOAD_CORE)"

# --- build -----------------------------------------------------------------------------------
log "building berth, the swap driver and the two plugin versions ($PROFILE)"
cargo build --quiet --profile "$PROFILE" -p berth-host -p berth-bench-swap-driver
for v in 1 2; do
    cargo build --quiet --lib --profile "$PROFILE" --manifest-path "host/fixtures/swap-v$v/Cargo.toml"
done
DIR="$ROOT/target/$([[ "$PROFILE" == dev ]] && echo debug || echo "$PROFILE")"
V1="$DIR/libfixture_swap_v1.so"
V2="$DIR/libfixture_swap_v2.so"
[[ -f "$V1" && -f "$V2" ]] || die "plugins not found: $V1 $V2"

# --- berth -----------------------------------------------------------------------------------
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_in_use "$BERTH_PORT" && die "port $BERTH_PORT is in use; set BERTH_PORT"
port_in_use "$ADMIN_PORT" && die "port $ADMIN_PORT is in use; set ADMIN_PORT"

rm -rf "$OUT"
mkdir -p "$OUT"
TOKEN="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
CONFIG="$OUT/berth.toml"
cat >"$CONFIG" <<EOF
# Written by ops/bench/swap.sh.
version = 1
log = "warn"
data_dir = "$OUT/data"

[server]
listen = "127.0.0.1:$BERTH_PORT"
workers = 1

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[services.state]
kind = "blob"

[[groups]]
file = "$V1"
EOF

BERTH_PID=""
cleanup() {
    if [[ -n "$BERTH_PID" ]]; then
        kill "$BERTH_PID" 2>/dev/null || true
        wait "$BERTH_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BERTH_ADMIN__TOKEN="$TOKEN" taskset -c "$SERVER_CORE" "$DIR/berth" up --config "$CONFIG" >"$OUT/berth.log" 2>&1 &
BERTH_PID=$!
for ((i = 0; i < 3000; i++)); do
    kill -0 "$BERTH_PID" 2>/dev/null || die "berth exited during startup; see $OUT/berth.log"
    [[ "$(curl -s "http://127.0.0.1:$BERTH_PORT/swap/version" || true)" == v1 ]] && break
    sleep 0.1
done
[[ "$(curl -s "http://127.0.0.1:$BERTH_PORT/swap/version")" == v1 ]] || die "berth did not serve v1; see $OUT/berth.log"

# --- idle check and CPU accounting --------------------------------------------------------------
HZ="$(getconf CLK_TCK)"
# "busy idle" jiffies of one core (idle = idle + iowait).
core_times() { awk -v cpu="cpu$1" '$1 == cpu { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
all_busy() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
proc_cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
children_cpu() { local s; read -r s <"/proc/$$/stat"; s="${s##*) }"; set -- $s; echo $((${14} + ${15})); }
for ((tries = 0; tries < 60; tries++)); do
    read -r b0 i0 < <(core_times "$SERVER_CORE")
    read -r b1 i1 < <(core_times "$LOAD_CORE")
    sleep 1
    read -r b0b i0b < <(core_times "$SERVER_CORE")
    read -r b1b i1b < <(core_times "$LOAD_CORE")
    idle0=$(((i0b - i0) * 100 / (b0b - b0 + i0b - i0 + 1)))
    idle1=$(((i1b - i1) * 100 / (b1b - b1 + i1b - i1 + 1)))
    ((idle0 >= IDLE_MIN && idle1 >= IDLE_MIN)) && break
    log "  waiting for idle cores (core $SERVER_CORE ${idle0}% idle, core $LOAD_CORE ${idle1}% idle; need ${IDLE_MIN}%)"
done

echo "berth (pid $BERTH_PID) on core $SERVER_CORE with 1 tokio worker; driver on core $LOAD_CORE:" \
    "$CLIENTS clients, ${WARMUP_SECS} s warm-up, then $ROUNDS rounds of ${STEADY_SECS} s steady + $((SWAPS / ROUNDS)) swaps" \
    "v1 <-> v2 by path ($PROFILE plugins, ${INTERVAL_MS} ms between swaps)"
status=0
started=$SECONDS
a0="$(all_busy)"
s0="$(proc_cpu "$BERTH_PID")"
c0="$(children_cpu)"
# The CPU a swap costs: the berth-swap thread (reads, hashes, copies, opens and closes plugin
# libraries) in ns from its schedstat, whatever core time it got.
SWAP_TID=""
for t in /proc/"$BERTH_PID"/task/*; do
    [[ "$(cat "$t/comm" 2>/dev/null)" == berth-swap ]] && SWAP_TID="${t##*/}"
done
[[ -n "$SWAP_TID" ]] || die "berth has no berth-swap thread; see $OUT/berth.log"
thread_ns() { awk '{ print $1 }' "/proc/$BERTH_PID/task/$SWAP_TID/schedstat"; }
w0="$(thread_ns)"
taskset -c "$LOAD_CORE" "$DIR/swap-driver" --app "127.0.0.1:$BERTH_PORT" --admin "127.0.0.1:$ADMIN_PORT" \
    --token "$TOKEN" --v1 "$V1" --v2 "$V2" --pid "$BERTH_PID" --swaps "$SWAPS" --clients "$CLIENTS" \
    --rounds "$ROUNDS" --steady-secs "$STEADY_SECS" --warmup-secs "$WARMUP_SECS" --interval-ms "$INTERVAL_MS" \
    --hz "$HZ" --disturb-max "$DISTURB_MAX" >"$OUT/driver.out" || status=$?
secs=$((SECONDS - started))
w1="$(thread_ns)"
others=$(((($(all_busy) - a0) - ($(proc_cpu "$BERTH_PID") - s0) - ($(children_cpu) - c0)) * 100 / ((secs > 0 ? secs : 1) * HZ)))
((others >= 0)) || others=0
# Everything but the final line, then berth's own account, then the final line last.
head -n -1 "$OUT/driver.out"
verdict=""
((others > DISTURB_MAX)) && verdict="  DISTURBED: figures are not representative; run again on a quiet machine"
echo "other processes used ${others}% of a core during the ${secs} s run (cores ${idle0}%/${idle1}% idle before)$verdict"
METRICS="$(curl -s "http://127.0.0.1:$BERTH_PORT/metrics")"
echo "berth metrics: $(grep -E '^berth_(swap_total|plugin_versions_loaded|plugin_libraries_mapped|swap_duration_seconds_(sum|count))' <<<"$METRICS" | tr '\n' ' ')"
# The same swaps at about half the saturated rate: what a deploy costs a server that is not
# flat out (the saturated run above starves the swap thread of its core by design).
half=""
if ((HALF_SWAPS > 0)) && ((status == 0)); then
    rps="$(sed -n 's/^steady throughput, median of windows: \([0-9]*\) req\/s/\1/p' "$OUT/driver.out")"
    half=$((${rps:-0} / 2))
    ((half > 0)) || die "the saturated run printed no steady throughput; see $OUT/driver.out"
    taskset -c "$LOAD_CORE" "$DIR/swap-driver" --app "127.0.0.1:$BERTH_PORT" --admin "127.0.0.1:$ADMIN_PORT" \
        --token "$TOKEN" --v1 "$V1" --v2 "$V2" --pid "$BERTH_PID" --swaps "$HALF_SWAPS" --clients "$CLIENTS" \
        --rounds 2 --steady-secs "$STEADY_SECS" --warmup-secs "$WARMUP_SECS" --interval-ms "$INTERVAL_MS" \
        --rate "$half" --hz "$HZ" --disturb-max "$DISTURB_MAX" >"$OUT/driver-half.out" || status=$?
    grep -E '^(request p99|swap latency|steady throughput)' "$OUT/driver-half.out" | sed "s/^/at half load ($half req\/s offered): /"
fi
swapped="$(tail -n 1 "$OUT/driver.out" | sed -n 's/^swaps: \([0-9]*\),.*/\1/p')"
swap_cpu="$(awk -v ns=$((w1 - w0)) -v n="${swapped:-0}" 'BEGIN { printf "%.2f", (n > 0 ? ns / n / 1e6 : 0) }')"
echo "swap cpu: $swap_cpu ms of the berth-swap thread per swap ($(((w1 - w0) / 1000000)) ms for ${swapped:-0} swaps)"
echo "$(tail -n 1 "$OUT/driver.out"), swap cpu: $swap_cpu ms"
exit "$status"
