#!/usr/bin/env bash
# Process-isolation benchmark: what serving a group from a worker process costs, and how soon a
# crashed worker serves again. Same method as http.sh (the machinery is lib.sh; see
# ../shared/bench-method.md).
#
# 1. Throughput: `GET /hello/world` of examples/hello from bare hyper (ops/bench/bare-hyper),
#    from berth with hello in its own process (`inproc`) and from berth with hello in a worker
#    process (`isolated`: `isolation = "process"`). Servers on core 0 (an isolated worker too:
#    it is pinned there), wrk on core 1, one tokio worker, 3 s warm-up, runs alternated
#    hyper inproc isolated ..., medians and spread, server CPU per request from /proc/PID/stat,
#    idle cores checked before every run, disturbed runs repeated. berth-isolated's CPU and
#    memory are berth's plus its workers' (its child processes, and those it reaped).
# 2. Restart: berth serving host/fixtures/crashy isolated, with no circuit breaker
#    (max_crashes = 1000000). ops/bench/restart_driver.py (on core 1) crashes the worker CRASHES
#    times with `GET /crashy/abort` (502 expected) and polls `GET /crashy/ok` as fast as it can
#    until it answers 200: a restart time is from the 502 received to that 200 received. The
#    polls are answered by berth on core 0, the core the new worker starts on, so the figure
#    includes what answering them costs. Its server CPU is berth's and its workers' per crash
#    (warm-up crashes and the polls' answers included).
#
# Usage: bash ops/bench/isolation.sh
# Environment: DURATION=10 RUNS=3 WARMUP=3 CONNS=64 LAT_DURATION=5 IDLE_MIN=90 DISTURB_MAX=8
#   MAX_REPEATS=6 IDLE_WAIT=120 (what each means: lib.sh)   CRASHES=200 (at least 100)
#   RESTART_TIMEOUT=30 (s one restart may take)
#   HYPER_PORT=18380 INPROC_PORT=18381 ISOLATED_PORT=18382 CRASHY_PORT=18383
# The last line of the output is `isolated/in-process: X.XX, restart p99: N ms` (median req/s
# of berth-isolated / berth-inproc; p99 of the restart times, whole ms).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

CRASHES="${CRASHES:-200}"
RESTART_TIMEOUT="${RESTART_TIMEOUT:-30}"
RESTART_WARMUP=3
HYPER_PORT="${HYPER_PORT:-18380}"
INPROC_PORT="${INPROC_PORT:-18381}"
ISOLATED_PORT="${ISOLATED_PORT:-18382}"
CRASHY_PORT="${CRASHY_PORT:-18383}"
URL_PATH="/hello/world"
EXPECTED_BODY='{"message":"Hello, world!"}'
BENCH_TAG=isolation
NAME_WIDTH=8
# shellcheck source=ops/bench/lib.sh
source "$ROOT/ops/bench/lib.sh"

((CRASHES >= 100)) || die "CRASHES=$CRASHES: a p99 needs at least 100 crashes"
need_tools wrk taskset curl awk cargo pgrep python3
# Hundreds of aborted workers must not leave a core file each.
ulimit -c 0

# --- build ---------------------------------------------------------------------------------
log "building berth and bare-hyper (profile production), the hello and crashy plugins (release)"
cargo build --profile production --quiet -p berth-host -p berth-bench-bare-hyper
cargo build --lib --quiet --profile release --manifest-path examples/hello/Cargo.toml
cargo build --release --quiet -p fixture-crashy
HELLO_SO="$ROOT/target/release/libhello.so"
CRASHY_SO="$ROOT/target/release/libfixture_crashy.so"
for f in "$HELLO_SO" "$CRASHY_SO"; do [[ -f "$f" ]] || die "no $f after the build"; done

# --- berth's workers -----------------------------------------------------------------------
# The child processes of `pid` (for berth: its group workers), space-separated.
children_of() { pgrep -P "$1" | paste -sd ' ' || true; }

# What a server used, in jiffies: its own utime + stime, the children it reaped (cutime +
# cstime: workers that ended) and its live children's utime + stime.
server_cpu() {
    local total c
    total="$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat")"
    for c in $(children_of "$1"); do
        total=$((total + $(proc_cpu "$c" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

# Resident memory and its high-water mark, of a server and its live children together.
tree_files() {
    local p
    for p in "$1" $(children_of "$1"); do
        [[ -r "/proc/$p/$2" ]] && echo "/proc/$p/$2"
    done
    return 0
}
rss_kb() {
    local files
    mapfile -t files < <(tree_files "$1" statm)
    ((${#files[@]} > 0)) || { echo 0; return; }
    awk -v p="$PAGE" '{ s += $2 } END { print s * p / 1024 }' "${files[@]}"
}
hwm_kb() {
    local files
    mapfile -t files < <(tree_files "$1" status)
    ((${#files[@]} > 0)) || { echo 0; return; }
    awk '/^VmHWM:/ { s += $2 } END { print s }' "${files[@]}"
}

# Pins the workers of berth `pid` (all their threads) to the server core, like berth; prints
# their pids. Dies when there are none: then this berth does not isolate the group.
pin_workers() {
    local pid="$1" name="$2" ws w
    ws="$(children_of "$pid")"
    [[ -n "${ws// /}" ]] || die "$name (pid $pid) has no worker process: does this berth build run isolation = \"process\"?"
    for w in $ws; do taskset -a -p -c "$SERVER_CORE" "$w" >/dev/null; done
    echo "$ws"
}

# --- servers -------------------------------------------------------------------------------
for p in "$HYPER_PORT" "$INPROC_PORT" "$ISOLATED_PORT" "$CRASHY_PORT"; do
    if port_in_use "$p"; then die "port $p is in use; set HYPER_PORT, INPROC_PORT, ISOLATED_PORT or CRASHY_PORT"; fi
done

# Writes $OUT/isolation-<name>.toml: berth on `port` serving the plugin file `plugin`, in a
# worker process (no circuit breaker) when `isolated` is `process`, after the `services` given
# (TOML); prints its path.
berth_config() {
    local name="$1" port="$2" plugin="$3" isolated="$4" services="${5:-}"
    local file="$OUT/isolation-$name.toml" data="$OUT/isolation-$name-data"
    rm -rf "$data"
    write_berth_config "$file" "berth serving ${plugin##*/} ($name)." "$port" "$data"
    printf '%s' "$services" >>"$file"
    printf '[[groups]]\nfile = "%s"\n' "$plugin" >>"$file"
    if [[ "$isolated" == process ]]; then
        printf 'isolation = "process"\n\n[groups.worker]\n# The circuit breaker never opens (the restart runs crash a worker %s times).\nmax_crashes = 1000000\n' \
            "$CRASHES" >>"$file"
    fi
    echo "$file"
}

INPROC_CONFIG="$(berth_config inproc "$INPROC_PORT" "$HELLO_SO" none)"
ISOLATED_CONFIG="$(berth_config isolated "$ISOLATED_PORT" "$HELLO_SO" process)"
start_server bare-hyper env WORKERS="$WORKERS" target/production/bare-hyper "127.0.0.1:$HYPER_PORT"
HYPER_PID="$STARTED_PID"
start_server berth-inproc target/production/berth up --config "$INPROC_CONFIG"
INPROC_PID="$STARTED_PID"
start_server berth-isolated target/production/berth up --config "$ISOLATED_CONFIG"
ISOLATED_PID="$STARTED_PID"
wait_200 "http://127.0.0.1:$HYPER_PORT$URL_PATH" "$HYPER_PID" bare-hyper
wait_200 "http://127.0.0.1:$INPROC_PORT/readyz" "$INPROC_PID" berth-inproc
wait_200 "http://127.0.0.1:$ISOLATED_PORT/readyz" "$ISOLATED_PID" berth-isolated
wait_200 "http://127.0.0.1:$ISOLATED_PORT$URL_PATH" "$ISOLATED_PID" berth-isolated

[[ -z "$(children_of "$INPROC_PID")" ]] ||
    die "berth-inproc (pid $INPROC_PID) has child processes ($(children_of "$INPROC_PID")); hello should run in-process"
WORKERS_BEFORE="$(pin_workers "$ISOLATED_PID" berth-isolated)"

PID=([hyper]="$HYPER_PID" [inproc]="$INPROC_PID" [isolated]="$ISOLATED_PID")
PORT=([hyper]="$HYPER_PORT" [inproc]="$INPROC_PORT" [isolated]="$ISOLATED_PORT")
CONTENDERS=(hyper inproc isolated)
check_contenders "${CONTENDERS[@]}"

# --- throughput runs -----------------------------------------------------------------------
echo "bare hyper (pid $HYPER_PID), berth in-process (pid $INPROC_PID) and berth isolated (pid $ISOLATED_PID," \
    "worker $WORKERS_BEFORE) on core $SERVER_CORE, $WORKERS tokio worker(s) each; wrk -t1 -c$CONNS on core $LOAD_CORE;" \
    "${WARMUP} s warm-up + ${DURATION} s per run, $RUNS runs each, alternated"
for ((n = 1; n <= RUNS; n++)); do
    for c in "${CONTENDERS[@]}"; do measure "$c" "$n" load; done
done
# Per-request latency without the cross-core wake-up: wrk -c1 on the server's own core.
for c in "${CONTENDERS[@]}"; do measure "$c" 1 c1; done
WORKERS_AFTER="$(children_of "$ISOLATED_PID")"
[[ "$WORKERS_AFTER" == "$WORKERS_BEFORE" ]] ||
    log "WARNING: berth-isolated's workers changed during the runs ($WORKERS_BEFORE -> $WORKERS_AFTER); see $OUT/isolation-berth-isolated.log"

# --- restart runs --------------------------------------------------------------------------
# Memory-only stores. Queue `jobs` stays unconfigured: berth logs that `work`'s consumer cannot
# start, which the restart runs do not need.
CRASHY_SERVICES='[services.state]
kind = "memory-kv"

[services.seen]
kind = "memory-kv"

'
CRASHY_CONFIG="$(berth_config crashy "$CRASHY_PORT" "$CRASHY_SO" process "$CRASHY_SERVICES")"
start_server berth-crashy target/production/berth up --config "$CRASHY_CONFIG"
CRASHY_PID="$STARTED_PID"
wait_200 "http://127.0.0.1:$CRASHY_PORT/crashy/ok" "$CRASHY_PID" berth-crashy
CRASHY_WORKERS="$(pin_workers "$CRASHY_PID" berth-crashy)"
SERVING_PID="$(curl -s "http://127.0.0.1:$CRASHY_PORT/crashy/pid" | tr -cd '0-9')"
[[ " $CRASHY_WORKERS " == *" $SERVING_PID "* ]] ||
    die "GET /crashy/pid answered pid '$SERVING_PID', not one of berth-crashy's workers ($CRASHY_WORKERS)"

# "process irq steal" jiffies of the whole machine: user + nice + system, irq + softirq, steal.
machine_times() { awk '$1 == "cpu" { print $2 + $3 + $4, $7 + $8, $9 }' /proc/stat; }

RESTART_OUT="$OUT/isolation-restart.out"
echo
echo "restart: berth (pid $CRASHY_PID) serving crashy from worker $SERVING_PID on core $SERVER_CORE;" \
    "restart_driver.py on core $LOAD_CORE, $CRASHES crashes"
while :; do
    wait_idle
    s0="$(server_cpu "$CRASHY_PID")" d0="$(children_cpu)" t0="$(date +%s%N)"
    read -r p0 i0 st0 < <(machine_times)
    taskset -c "$LOAD_CORE" python3 ops/bench/restart_driver.py --port "$CRASHY_PORT" --crashes "$CRASHES" \
        --warmup "$RESTART_WARMUP" --timeout "$RESTART_TIMEOUT" --samples "$OUT/isolation-restart-ms.txt" >"$RESTART_OUT" ||
        die "the restart driver failed (above); see $OUT/isolation-berth-crashy.log"
    read -r p1 i1 st1 < <(machine_times)
    t1="$(date +%s%N)" d1="$(children_cpu)" s1="$(server_cpu "$CRASHY_PID")"
    read -r R_P50 R_P99 R_MAX < <(awk '$1 == "restart_ms" {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        print v["p50"], v["p99"], v["max"] }' "$RESTART_OUT")
    [[ -n "${R_MAX:-}" ]] || die "could not parse the restart driver's output: $(cat "$RESTART_OUT")"
    ticks=$(((t1 - t0) * HZ / 1000000000 + 1))
    server=$((s1 - s0))
    # Process time of the machine not spent by berth, its workers or the driver, in % of one
    # core. Softirq and steal are printed, not counted: the polls' own wake-ups make them grow.
    other=$(((p1 - p0 - server - (d1 - d0)) * 100 / ticks))
    ((other >= 0)) || other=0
    head -n -1 "$RESTART_OUT"
    line="$(printf 'restart  %d crashes  p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms  server CPU %5.1f ms/crash  others %2d%%  softirq %2d%%  steal %2d%%  idle before %s' \
        "$CRASHES" "$R_P50" "$R_P99" "$R_MAX" "$(awk -v j="$server" -v hz="$HZ" -v n="$((CRASHES + RESTART_WARMUP))" 'BEGIN { print j * 1000 / hz / n }')" \
        "$other" $(((i1 - i0) * 100 / ticks)) $(((st1 - st0) * 100 / ticks)) "$IDLE_SEEN")"
    keep_run "$line" "$other" && break
done

# --- summary -------------------------------------------------------------------------------
summarize "${CONTENDERS[@]}"
print_latency "${CONTENDERS[@]}"
echo "(isolated: berth and its worker together)"
print_memory "${CONTENDERS[@]}"
print_cpu_ratio inproc hyper in-process/hyper
print_cpu_ratio isolated hyper isolated/hyper
print_cpu_ratio isolated inproc isolated/in-process
awk -v p="${MED_RPS[inproc]}" -v i="${MED_RPS[isolated]}" -v h="${MED_RPS[hyper]}" \
    'BEGIN { printf "req/s in-process/hyper: %.2f, isolated/hyper: %.2f\n", p / h, i / h }'
echo "restart after a crash: p50 $R_P50 ms, p99 $R_P99 ms, max $R_MAX ms ($CRASHES crashes; every time in $OUT/isolation-restart-ms.txt)"
awk -v i="${MED_RPS[isolated]}" -v p="${MED_RPS[inproc]}" -v r="$R_P99" \
    'BEGIN { printf "isolated/in-process: %.2f, restart p99: %.0f ms\n", i / p, r }'
