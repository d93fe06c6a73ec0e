#!/usr/bin/env bash
# Queue benchmark: messages/s through berth's queue trigger into a no-op function
# (ops/bench/queue-noop) against a raw client consumer of the same backend with the same client
# library (ops/bench/queue-driver), in the same run, for Redis Streams, NATS JetStream and
# RabbitMQ. Follows ../shared/bench-method.md where it applies: the consumer (berth, or the raw
# client) pinned to core 0 with one tokio worker, the publisher on core 1, runs alternated
# raw berth raw berth, medians and spread, consumer CPU per message from /proc/PID/stat, idle
# cores checked before every run.
#
# Each run fills a fresh stream (or queue) with COUNT messages first, then starts the consumer
# and times it from the first message it takes to the COUNT-th acknowledgement (berth: from the
# first acknowledgement its /metrics shows, polled every 10 ms). Both acknowledge every message
# individually and keep CONCURRENCY messages in flight. The brokers run on this machine too and
# are not pinned: they take CPU from both cores during a run, the same for both contenders.
#
# Usage: bash ops/bench/queue.sh
# Environment:
#   BACKENDS="redis nats rabbitmq"   COUNT=20000 messages per run   RUNS=3 runs per contender
#   CONCURRENCY=32 in-flight messages   SIZE=64 payload bytes   IDLE_MIN=80 % idle per core
#   REDIS_URL NATS_URL AMQP_URL (defaults: the local servers)   BERTH_PORT=18290 (first port tried)
# Per backend it prints both rates, CPU per message and the ratio; the last line is
# `queue ratio berth/raw: X.XX`: the geometric mean of the backends' ratios of median rates.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

BACKENDS="${BACKENDS:-redis nats rabbitmq}"
COUNT="${COUNT:-20000}"
RUNS="${RUNS:-3}"
CONCURRENCY="${CONCURRENCY:-32}"
SIZE="${SIZE:-64}"
IDLE_MIN="${IDLE_MIN:-80}"
BERTH_PORT="${BERTH_PORT:-18290}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
CONSUMER_CORE=0
LOAD_CORE=1

OUT="$ROOT/target/bench"
mkdir -p "$OUT"

log() { echo "$@" >&2; }
die() { log "queue.sh: $*"; exit 1; }

for t in taskset curl awk cargo; do command -v "$t" >/dev/null || die "needs \`$t\` on PATH"; done
[[ "$(nproc)" -ge 2 ]] || die "needs 2 cores (consumer on core $CONSUMER_CORE, publisher on core $LOAD_CORE)"

# --- build ---------------------------------------------------------------------------------
log "building release binaries and the queue-noop plugin"
cargo build --release --quiet -p berth-host -p berth-bench-queue
cargo build --lib --quiet --profile release -p berth-bench-queue-noop
BENCH="$ROOT/target/release/queue-bench"
BERTH="$ROOT/target/release/berth"
# Served as a built file, so that starting berth runs no cargo (which may wait for other builds).
PLUGIN="$ROOT/target/release/libberth_bench_queue_noop.so"
[[ -f "$PLUGIN" ]] || die "no $PLUGIN after the build"

BERTH_PID=""
STREAM=""
KIND=""
cleanup() {
    if [[ -n "$BERTH_PID" ]]; then
        kill "$BERTH_PID" 2>/dev/null || true
        wait "$BERTH_PID" 2>/dev/null || true
    fi
    if [[ -n "$STREAM" ]]; then
        "$BENCH" cleanup "$KIND" "$(url_of "$KIND")" "$STREAM" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

url_of() {
    case "$1" in
        redis) echo "$REDIS_URL" ;;
        nats) echo "$NATS_URL" ;;
        rabbitmq) echo "$AMQP_URL" ;;
        *) die "unknown backend \`$1\`" ;;
    esac
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# "busy idle" jiffies of one core from /proc/stat (idle = idle + iowait).
core_times() { awk -v cpu="cpu$1" '$1 == cpu { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }

# Waits (up to 15 s) until both cores are at least IDLE_MIN % idle over half a second.
BUSY_RUNS=0
wait_idle() {
    local tries b0 i0 b1 i1 b0b i0b b1b i1b idle0 idle1
    for ((tries = 0; tries < 30; tries++)); do
        read -r b0 i0 < <(core_times "$CONSUMER_CORE")
        read -r b1 i1 < <(core_times "$LOAD_CORE")
        sleep 0.5
        read -r b0b i0b < <(core_times "$CONSUMER_CORE")
        read -r b1b i1b < <(core_times "$LOAD_CORE")
        idle0=$(((i0b - i0) * 100 / (b0b - b0 + i0b - i0 + 1)))
        idle1=$(((i1b - i1) * 100 / (b1b - b1 + i1b - i1 + 1)))
        ((idle0 >= IDLE_MIN && idle1 >= IDLE_MIN)) && return 0
    done
    BUSY_RUNS=$((BUSY_RUNS + 1))
    log "  cores still busy after 15 s (${idle0}%/${idle1}% idle); running anyway"
}

# Parses `RESULT rate=N cpu_us=F` into R_RATE and R_CPU.
parse_result() {
    local line
    line="$(grep '^RESULT ' "$1" | tail -1)" || die "no result in $1: $(tail -5 "$1")"
    R_RATE="$(sed -E 's/.*rate=([0-9.]+).*/\1/' <<<"$line")"
    R_CPU="$(sed -E 's/.*cpu_us=([0-9.]+).*/\1/' <<<"$line")"
}

# Fills a fresh stream for one run; sets STREAM.
fill() {
    local kind="$1"
    STREAM="bench-$kind-$$-$RANDOM"
    taskset -c "$LOAD_CORE" "$BENCH" fill "$kind" "$(url_of "$kind")" "$STREAM" "$COUNT" "$SIZE" ||
        die "filling $STREAM failed"
}

drop_stream() {
    "$BENCH" cleanup "$1" "$(url_of "$1")" "$STREAM" >/dev/null 2>&1 || log "  could not delete $STREAM"
    STREAM=""
}

run_raw() {
    local kind="$1"
    fill "$kind"
    wait_idle
    taskset -c "$CONSUMER_CORE" "$BENCH" consume "$kind" "$(url_of "$kind")" "$STREAM" "$COUNT" "$CONCURRENCY" \
        >"$OUT/queue-raw.out" 2>&1 || die "raw consumer failed: $(tail -5 "$OUT/queue-raw.out")"
    parse_result "$OUT/queue-raw.out"
    drop_stream "$kind"
}

run_berth() {
    local kind="$1" config="$OUT/queue-bench.toml" i port="$BERTH_PORT"
    # Other processes on this shared machine may take a port between runs.
    while port_in_use "$port"; do port=$((port + 1)); done
    fill "$kind"
    cat >"$config" <<EOF
# Written by ops/bench/queue.sh: berth consuming one stream into a no-op function.
version = 1
log = "warn"
data_dir = "$OUT/queue-bench-data"

[server]
listen = "127.0.0.1:$port"
workers = 1

[admin]
enabled = false

[[groups]]
file = "$PLUGIN"

[queues.bench]
kind = "$kind"
url = "$(url_of "$kind")"
stream = "$STREAM"
concurrency = $CONCURRENCY
EOF
    wait_idle
    # The consumer starts while the host starts; the watcher times from the first acknowledgement.
    taskset -c "$CONSUMER_CORE" "$BERTH" up --config "$config" >"$OUT/queue-berth.log" 2>&1 &
    BERTH_PID=$!
    for ((i = 0; i < 600; i++)); do
        kill -0 "$BERTH_PID" 2>/dev/null || die "berth exited during startup; see $OUT/queue-berth.log"
        curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break
        sleep 0.02
    done
    kill -0 "$BERTH_PID" 2>/dev/null || die "berth exited during startup; see $OUT/queue-berth.log"
    taskset -c "$LOAD_CORE" "$BENCH" watch "http://127.0.0.1:$port/metrics" bench "$COUNT" "$BERTH_PID" 120 \
        >"$OUT/queue-watch.out" 2>&1 || die "berth did not take the messages: $(tail -5 "$OUT/queue-watch.out"); see $OUT/queue-berth.log"
    parse_result "$OUT/queue-watch.out"
    kill -TERM "$BERTH_PID"
    wait "$BERTH_PID" || true
    BERTH_PID=""
    drop_stream "$kind"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
spread() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f-%.0f", lo, hi }'; }

RATIOS=""
for kind in $BACKENDS; do
    KIND="$kind"
    url_of "$kind" >/dev/null
    log "$kind: $RUNS runs of $COUNT messages each, concurrency $CONCURRENCY, alternating raw and berth"
    raw_rates="" raw_cpus="" berth_rates="" berth_cpus=""
    for ((run = 1; run <= RUNS; run++)); do
        run_raw "$kind"
        log "  run $run raw:   ${R_RATE} msg/s, ${R_CPU} µs CPU/msg"
        raw_rates+=" $R_RATE" raw_cpus+=" $R_CPU"
        run_berth "$kind"
        log "  run $run berth: ${R_RATE} msg/s, ${R_CPU} µs CPU/msg"
        berth_rates+=" $R_RATE" berth_cpus+=" $R_CPU"
    done
    raw="$(median <<<"$raw_rates")" berth="$(median <<<"$berth_rates")"
    ratio="$(awk -v b="$berth" -v r="$raw" 'BEGIN { printf "%.2f", b / r }')"
    RATIOS+=" $ratio"
    printf '%s: raw %.0f msg/s (%s, %.1f µs CPU/msg), berth %.0f msg/s (%s, %.1f µs CPU/msg), ratio %s\n' \
        "$kind" "$raw" "$(spread <<<"$raw_rates")" "$(median <<<"$raw_cpus")" \
        "$berth" "$(spread <<<"$berth_rates")" "$(median <<<"$berth_cpus")" "$ratio"
done
((BUSY_RUNS == 0)) || echo "($BUSY_RUNS runs started on busy cores)"
echo "queue ratio berth/raw: $(tr ' ' '\n' <<<"$RATIOS" | grep -v '^$' | awk '{ s += log($1); n++ } END { printf "%.2f", exp(s / n) }')"
