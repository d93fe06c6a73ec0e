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
# Usage: bash ops/bench/swap.sh
# Environment: SWAPS=1000 ROUNDS=4 CLIENTS=16 STEADY_SECS=5 WARMUP_SECS=2 INTERVAL_MS=0 (pause between swaps)
#              BERTH_PORT=18090 ADMIN_PORT=18091 IDLE_MIN=90 DISTURB_MAX=8
#              PROFILE=release (cargo profile of berth and the plugins)
# The last line reads `swaps: N, failed requests: F, rss growth 10->1000: X MB`.
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
IDLE_MIN="${IDLE_MIN:-90}"
DISTURB_MAX="${DISTURB_MAX:-8}"
SERVER_CORE=0
LOAD_CORE=1

OUT="$ROOT/target/bench/swap"
log() { echo "$@" >&2; }
die() { log "swap.sh: $*"; exit 1; }

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
taskset -c "$LOAD_CORE" "$DIR/swap-driver" --app "127.0.0.1:$BERTH_PORT" --admin "127.0.0.1:$ADMIN_PORT" \
    --token "$TOKEN" --v1 "$V1" --v2 "$V2" --pid "$BERTH_PID" --swaps "$SWAPS" --clients "$CLIENTS" \
    --rounds "$ROUNDS" --steady-secs "$STEADY_SECS" --warmup-secs "$WARMUP_SECS" --interval-ms "$INTERVAL_MS" \
    --hz "$HZ" --disturb-max "$DISTURB_MAX" >"$OUT/driver.out" || status=$?
secs=$((SECONDS - started))
others=$(((($(all_busy) - a0) - ($(proc_cpu "$BERTH_PID") - s0) - ($(children_cpu) - c0)) * 100 / ((secs > 0 ? secs : 1) * HZ)))
((others >= 0)) || others=0
# Everything but the final line, then berth's own account, then the final line last.
head -n -1 "$OUT/driver.out"
verdict=""
((others > DISTURB_MAX)) && verdict="  DISTURBED: figures are not representative; run again on a quiet machine"
echo "other processes used ${others}% of a core during the ${secs} s run (cores ${idle0}%/${idle1}% idle before)$verdict"
METRICS="$(curl -s "http://127.0.0.1:$BERTH_PORT/metrics")"
echo "berth metrics: $(grep -E '^berth_(swap_total|plugin_versions_loaded|plugin_libraries_mapped|swap_duration_seconds_(sum|count))' <<<"$METRICS" | tr '\n' ' ')"
tail -n 1 "$OUT/driver.out"
exit "$status"
