#!/usr/bin/env bash
# HTTP benchmark: berth serving examples/hello against a bare hyper server answering the same
# JSON (ops/bench/bare-hyper). Follows ../shared/bench-method.md: servers pinned to core 0,
# wrk to core 1, one tokio worker each, 3 s warm-up, runs alternated A B A B, medians and spread,
# server CPU per request from /proc/PID/stat, idle CPU checked before every run and disturbed
# runs repeated. The machinery is in lib.sh, shared with isolation.sh.
#
# With WORKERS=2 it measures the multi-core ratio instead: berth and bare hyper with two tokio
# workers each, servers and wrk unpinned on both cores (the -c1 run too).
#
# Usage: bash ops/bench/http.sh
# Environment: DURATION=10 RUNS=3 WARMUP=3 CONNS=64 LAT_DURATION=5 IDLE_MIN=90 DISTURB_MAX=8
#   MAX_REPEATS=6 IDLE_WAIT=120 (what each means: lib.sh)   BERTH_PORT=18080  HYPER_PORT=18081
#   WORKERS=1 (tokio workers per server; 2: both cores shared, see above)
# The last line of the output is `ratio berth/hyper: X.XX` (median req/s of berth / bare hyper).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

BERTH_PORT="${BERTH_PORT:-18080}"
HYPER_PORT="${HYPER_PORT:-18081}"
URL_PATH="/hello/world"
EXPECTED_BODY='{"message":"Hello, world!"}'
BENCH_TAG=http
# shellcheck source=ops/bench/lib.sh
source "$ROOT/ops/bench/lib.sh"

need_tools wrk taskset curl awk cargo
if ((WORKERS > 1)); then
    SERVER_CPUS="$SERVER_CORE,$LOAD_CORE"
    LOAD_CPUS="$SERVER_CPUS"
fi

# --- build ---------------------------------------------------------------------------------
# Both servers in the deployment profile (`production`: release + fat LTO); the plugin as `berth up`
# builds it (`release`).
log "building berth and bare-hyper (profile production) and the hello plugin (release)"
cargo build --profile production --quiet -p berth-host -p berth-bench-bare-hyper
# Exactly the command `berth up` runs for a `path` group, so that it finds the plugin fresh.
cargo build --lib --quiet --profile release --manifest-path examples/hello/Cargo.toml

# --- servers -------------------------------------------------------------------------------
port_in_use "$BERTH_PORT" && die "port $BERTH_PORT is in use; set BERTH_PORT"
port_in_use "$HYPER_PORT" && die "port $HYPER_PORT is in use; set HYPER_PORT"

CONFIG="$OUT/http-berth.toml"
write_hello_config "$CONFIG" "berth serving only examples/hello." "$BERTH_PORT" "$OUT/http-berth-data"

start_server berth target/production/berth up --config "$CONFIG"
BERTH_PID="$STARTED_PID"
start_server bare-hyper env WORKERS="$WORKERS" target/production/bare-hyper "127.0.0.1:$HYPER_PORT"
HYPER_PID="$STARTED_PID"
wait_200 "http://127.0.0.1:$BERTH_PORT/readyz" "$BERTH_PID" berth
wait_200 "http://127.0.0.1:$HYPER_PORT$URL_PATH" "$HYPER_PID" bare-hyper

PID=([berth]="$BERTH_PID" [hyper]="$HYPER_PID")
PORT=([berth]="$BERTH_PORT" [hyper]="$HYPER_PORT")
check_contenders berth hyper

# --- runs ----------------------------------------------------------------------------------
echo "berth (pid $BERTH_PID) and bare hyper (pid $HYPER_PID) on cores $SERVER_CPUS, $WORKERS tokio worker(s) each;" \
    "wrk -t1 -c$CONNS on cores $LOAD_CPUS; ${WARMUP} s warm-up + ${DURATION} s per run, $RUNS runs each, alternated"
for ((n = 1; n <= RUNS; n++)); do
    measure berth "$n" load
    measure hyper "$n" load
done
# Per-request latency without the cross-core wake-up: wrk -c1 on the server's own core(s).
measure berth 1 c1
measure hyper 1 c1

# --- summary -------------------------------------------------------------------------------
summarize berth hyper
print_latency berth hyper
print_memory berth hyper
print_cpu_ratio berth hyper
awk -v b="${MED_RPS[berth]}" -v h="${MED_RPS[hyper]}" 'BEGIN { printf "ratio berth/hyper: %.2f\n", b / h }'
