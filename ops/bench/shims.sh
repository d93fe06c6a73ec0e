#!/usr/bin/env bash
# Lambda shim benchmark: berth's packaged Lambda bootstrap (`berth package --target lambda`,
# examples/hello) against a hello function on AWS's own Rust runtime, the `lambda_runtime` crate
# (ops/bench/lambda-hello), both built with the `production` profile and zipped stripped as
# `bootstrap`, both run under cargo-lambda's Runtime API emulator (`cargo-lambda lambda watch
# --only-lambda-apis`, from target/peers/venv as the tests install it) with the same API Gateway
# HTTP API (v2) event for `GET /hello/world` (AWS's sample, `sam local generate-event`).
# Follows ../shared/bench-method.md: bootstrap and emulator pinned to core 0, the load driver
# (ops/bench/lambda-driver) on core 1, runs alternated berth lambda_runtime berth ..., medians and
# spread, bootstrap CPU per invocation from /proc/PID/stat, idle cores checked before every run
# and disturbed runs repeated (disturbed: processes other than the bootstrap, the emulator and the
# driver used more than DISTURB_MAX % of a core; softirq and steal, which this VM's wake-ups
# cause, are printed but not counted).
#
# Each run starts a fresh emulator, queues one invocation through its Invoke API (`POST
# /2015-03-31/functions/_/invocations`, which blocks until answered), then execs the unzipped
# `bootstrap` and times exec → that answer in the driver (the cold start). Then WARMUP s of
# back-to-back invocations and DURATION s measured, CONCURRENCY in flight (Lambda gives one
# instance one invocation at a time). Every answer must be byte for byte the expected JSON; any
# other answer fails the run. The emulator is on every invocation's path (two HTTP exchanges per
# invocation, one with the driver, one with the bootstrap) and on the bootstrap's core: its CPU
# per invocation is printed too.
#
# Usage: bash ops/bench/shims.sh
# Environment:
#   DURATION=10     seconds per measured run           RUNS=3          measured runs per contender
#   WARMUP=3        seconds of warm-up before each run CONCURRENCY=1   invocations in flight
#   IDLE_MIN=90     % idle each core needs before a run IDLE_WAIT=120  s to wait for idle cores per run
#   DISTURB_MAX=8   % of a core used by other processes during a run above which it is repeated
#   MAX_REPEATS=6   repeated runs allowed in total     QUEUE_MS=200    ms the cold invocation waits queued
#   BERTH_PORT=19190  LR_PORT=19191  (the two emulators' ports)
#   EMU_CORE=0      core of the emulator (0: with the bootstrap; 1 moves it
#                   to the driver's core, to see the bootstraps with less of the emulator's cost)
# The last line of the output is `lambda berth/lambda_runtime: X.XX` (median warm invocations/s of
# berth / lambda_runtime).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

DURATION="${DURATION:-10}"
RUNS="${RUNS:-3}"
WARMUP="${WARMUP:-3}"
CONCURRENCY="${CONCURRENCY:-1}"
IDLE_MIN="${IDLE_MIN:-90}"
IDLE_WAIT="${IDLE_WAIT:-120}"
DISTURB_MAX="${DISTURB_MAX:-8}"
MAX_REPEATS="${MAX_REPEATS:-6}"
QUEUE_MS="${QUEUE_MS:-200}"
BERTH_PORT="${BERTH_PORT:-19190}"
LR_PORT="${LR_PORT:-19191}"
SERVER_CORE=0
LOAD_CORE=1
EMU_CORE="${EMU_CORE:-$SERVER_CORE}"
URL_PATH="/hello/world"
# What berth's packaged examples/hello answers (keys sorted), and lambda-hello byte for byte.
EXPECTED='{"body":"{\"message\":\"Hello, world!\"}","cookies":[],"headers":{"content-type":"application/json"},"isBase64Encoded":false,"statusCode":200}'
CONTENDERS=(berth lambda_runtime)

OUT="$ROOT/target/bench/shims"
mkdir -p "$OUT"
HZ="$(getconf CLK_TCK)"
VENV="$ROOT/target/peers/venv"
REQUIREMENTS="$ROOT/host/tests/peers/requirements.txt"
# Both standalone crates build into the tree's target/ to share compiled dependencies.
export CARGO_TARGET_DIR="$ROOT/target"

log() { echo "$@" >&2; }
die() { log "shims.sh: $*"; exit 1; }

# --- tools ---------------------------------------------------------------------------------
for t in taskset python3 strip awk cargo; do command -v "$t" >/dev/null || die "needs \`$t\` on PATH"; done
[[ "$(nproc)" -ge 2 ]] || die "needs 2 cores (bootstrap and emulator on core $SERVER_CORE, driver on core $LOAD_CORE)"
CARGO_BIN="${CARGO:-$(command -v cargo)}"

# cargo-lambda (the emulator) and aws-sam-cli (the event), installed as host/tests/all/peers.rs
# installs them, with the marker the tests check so that they reuse this venv.
if [[ ! -x "$VENV/bin/cargo-lambda" ]]; then
    log "installing $REQUIREMENTS into $VENV (takes a few minutes)"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv --clear "$VENV"
    PIP_NO_INPUT=1 "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS"
    python3 - "$REQUIREMENTS" "$VENV/.berth-requirements-hash" <<'EOF'
import sys
h = 0xcbf29ce484222325
for b in open(sys.argv[1], "rb").read():
    h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
open(sys.argv[2], "w").write(f"{h:016x}")
EOF
fi
EMULATOR="$VENV/bin/cargo-lambda"
[[ -x "$VENV/bin/sam" ]] || die "$VENV has no sam; remove $VENV to reinstall it"

# --- build ---------------------------------------------------------------------------------
log "building berth and lambda-hello (profile production) and the driver (release)"
cargo build --profile production --quiet -p berth-host
cargo build --profile production --quiet --manifest-path ops/bench/lambda-hello/Cargo.toml
cargo build --release --quiet --manifest-path ops/bench/lambda-driver/Cargo.toml
DRIVER="$CARGO_TARGET_DIR/release/lambda-driver"

# Unpacks a zip as Lambda does (the executable bits kept).
unzip_to() {
    rm -rf "$2"
    python3 - "$1" "$2" <<'EOF'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for info in z.infolist():
        path = z.extract(info, sys.argv[2])
        mode = (info.external_attr >> 16) & 0o777
        if mode:
            os.chmod(path, mode)
EOF
}

# --- packages ------------------------------------------------------------------------------
CONFIG="$OUT/berth.toml"
cat >"$CONFIG" <<EOF
# Written by ops/bench/shims.sh: berth packaged for Lambda with only examples/hello.
version = 1
log = "warn"

[[groups]]
path = "$ROOT/examples/hello"
EOF
log "packaging berth for lambda"
rm -rf "$OUT/berth-package"
target/production/berth package --target lambda --profile production --quiet --config "$CONFIG" \
    --out "$OUT/berth-package" --host-binary target/production/berth >"$OUT/berth-package.log" 2>&1 ||
    die "berth package failed: $(cat "$OUT/berth-package.log")"
BERTH_ZIP="$OUT/berth-package/berth-lambda.zip"

# lambda-hello as cargo-lambda builds it for provided.al2023: the binary, stripped, as
# `bootstrap` (mode 755) at the root of a deflated zip.
log "zipping lambda-hello as bootstrap"
LR_ZIP="$OUT/lambda-hello.zip"
rm -rf "$OUT/lambda-hello-stage"
mkdir -p "$OUT/lambda-hello-stage"
cp "$CARGO_TARGET_DIR/production/lambda-hello" "$OUT/lambda-hello-stage/bootstrap"
strip --strip-all "$OUT/lambda-hello-stage/bootstrap"
chmod 755 "$OUT/lambda-hello-stage/bootstrap"
python3 - "$OUT/lambda-hello-stage/bootstrap" "$LR_ZIP" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED) as z:
    z.write(sys.argv[1], "bootstrap")
EOF

declare -A ZIP=([berth]="$BERTH_ZIP" [lambda_runtime]="$LR_ZIP")
declare -A ROOTDIR=([berth]="$OUT/berth" [lambda_runtime]="$OUT/lambda_runtime")
declare -A PORT=([berth]="$BERTH_PORT" [lambda_runtime]="$LR_PORT")
declare -A ZIP_BYTES BOOT_BYTES
for c in "${CONTENDERS[@]}"; do
    unzip_to "${ZIP[$c]}" "${ROOTDIR[$c]}"
    [[ -x "${ROOTDIR[$c]}/bootstrap" ]] || die "${ZIP[$c]} has no executable bootstrap"
    ZIP_BYTES[$c]="$(stat -c %s "${ZIP[$c]}")"
    BOOT_BYTES[$c]="$(stat -c %s "${ROOTDIR[$c]}/bootstrap")"
done

# The event: AWS's own HTTP API (v2) sample for GET /hello/world, compact as API Gateway sends it.
EVENT="$OUT/event.json"
SAM_CLI_TELEMETRY=0 "$VENV/bin/sam" local generate-event apigateway http-api-proxy \
    --path "${URL_PATH#/}" --method GET --body "" >"$OUT/event-sam.json" 2>"$OUT/sam.log" ||
    die "sam local generate-event failed: $(cat "$OUT/sam.log")"
python3 -c 'import json, sys; sys.stdout.write(json.dumps(json.load(open(sys.argv[1])), separators=(",", ":")))' \
    "$OUT/event-sam.json" >"$EVENT"
printf '%s' "$EXPECTED" >"$OUT/expected.json"

# The emulator runs `cargo metadata` in its working directory: a minimal project, never built.
EMU_DIR="$OUT/emulator"
mkdir -p "$EMU_DIR/src"
printf '[package]\nname = "lambda-peer"\nversion = "0.0.0"\nedition = "2021"\n\n[workspace]\n' >"$EMU_DIR/Cargo.toml"
printf 'fn main() {}\n' >"$EMU_DIR/src/main.rs"

# --- emulator ------------------------------------------------------------------------------
EMU_PID=""
cleanup() {
    if [[ -n "$EMU_PID" ]]; then
        kill "$EMU_PID" 2>/dev/null || true
        wait "$EMU_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for c in "${CONTENDERS[@]}"; do
    port_in_use "${PORT[$c]}" && die "port ${PORT[$c]} is in use; set BERTH_PORT / LR_PORT"
done

# Starts a fresh emulator for contender $1 on its port, pinned to EMU_CORE; sets
# EMU_PID and EMU_ENV (the variables it prints for the bootstrap, as --env arguments).
start_emulator() {
    local c="$1" port="${PORT[$1]}" elog="$OUT/emulator-$1.log" i
    (cd "$EMU_DIR" && exec env -u RUST_LOG CARGO="$CARGO_BIN" taskset -c "$EMU_CORE" "$EMULATOR" \
        lambda watch --only-lambda-apis --color never -A 127.0.0.1 -P "$port" --timeout 60) >"$elog" 2>&1 &
    EMU_PID=$!
    # A bare connect only: any HTTP request would queue an invocation.
    for ((i = 0; i < 600; i++)); do
        kill -0 "$EMU_PID" 2>/dev/null || die "the emulator for $c exited during startup: $(cat "$elog")"
        if grep -q 'AWS_LAMBDA_RUNTIME_API=' "$elog" && port_in_use "$port"; then
            sleep 0.1
            kill -0 "$EMU_PID" 2>/dev/null || die "the emulator for $c exited (port $port taken?): $(cat "$elog")"
            EMU_ENV=()
            local kv
            while read -r kv; do EMU_ENV+=(--env "$kv"); done < <(awk '$1 == "INFO" && $2 ~ /^AWS_[A-Z0-9_]+=/ { print $2 }' "$elog" | sort -u)
            [[ "${EMU_ENV[*]}" == *AWS_LAMBDA_RUNTIME_API=* ]] || die "the emulator printed no AWS_LAMBDA_RUNTIME_API: $(cat "$elog")"
            return 0
        fi
        sleep 0.1
    done
    die "the emulator for $c did not open port $port within 60 s: $(cat "$elog")"
}

stop_emulator() {
    kill "$EMU_PID" 2>/dev/null || true
    wait "$EMU_PID" 2>/dev/null || true
    EMU_PID=""
}

# --- measurement helpers -------------------------------------------------------------------
# "busy idle" jiffies of one core from /proc/stat (idle = idle + iowait; busy includes steal).
core_times() {
    awk -v cpu="cpu$1" '$1 == cpu { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat
}

# Waits (up to IDLE_WAIT s) until both cores are at least IDLE_MIN % idle over one second.
wait_idle() {
    local tries b0 i0 b1 i1 b0b i0b b1b i1b idle0 idle1
    for ((tries = 0; tries < IDLE_WAIT; tries++)); do
        read -r b0 i0 < <(core_times "$SERVER_CORE")
        read -r b1 i1 < <(core_times "$LOAD_CORE")
        sleep 1
        read -r b0b i0b < <(core_times "$SERVER_CORE")
        read -r b1b i1b < <(core_times "$LOAD_CORE")
        idle0=$(((i0b - i0) * 100 / (b0b - b0 + i0b - i0 + 1)))
        idle1=$(((i1b - i1) * 100 / (b1b - b1 + i1b - i1 + 1)))
        if ((idle0 >= IDLE_MIN && idle1 >= IDLE_MIN)); then
            IDLE_SEEN="$idle0/$idle1"
            return 0
        fi
        log "  waiting for idle cores (core $SERVER_CORE ${idle0}% idle, core $LOAD_CORE ${idle1}% idle; need ${IDLE_MIN}%)"
    done
    IDLE_SEEN="$idle0/$idle1(busy!)"
    log "  cores still busy after $IDLE_WAIT s; running anyway (the run will likely be repeated)"
}

# "median min max spread%" of a list of numbers.
stats() {
    printf '%s\n' $1 | sort -g | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%s %s %s %.1f\n", m, v[1], v[NR], (m ? (v[NR] - v[1]) * 100 / m : 0) }'
}

declare -A COLD IPS BOOT_CPU EMU_CPU P50 P99 HWM STEAL
REPEATED=0
KEPT_DISTURBED=0

# One measured run of contender $1 (run number $2): fresh emulator, idle check, cold start,
# warm-up, measured window; repeated when another process used more than DISTURB_MAX % of a
# core during the measured window.
measure() {
    local c="$1" n="$2" res="$OUT/driver-$1.out" data
    while :; do
        start_emulator "$c"
        data="$(mktemp -d "$OUT/data-$c.XXXXXX")"
        wait_idle
        taskset -c "$LOAD_CORE" "$DRIVER" --port "${PORT[$c]}" --emu-pid "$EMU_PID" --root "${ROOTDIR[$c]}" \
            --event "$EVENT" --expect "$OUT/expected.json" "${EMU_ENV[@]}" \
            --env "LAMBDA_TASK_ROOT=${ROOTDIR[$c]}" --env "AWS_REGION=us-east-1" --env "_HANDLER=bootstrap" \
            --env "BERTH_DATA_DIR=$data" --env "BERTH_LOG=warn" \
            --boot-core "$SERVER_CORE" --warmup "$WARMUP" --duration "$DURATION" --concurrency "$CONCURRENCY" \
            --queue-ms "$QUEUE_MS" --log "$OUT/bootstrap-$c.log" >"$res" ||
            die "$c run $n failed; bootstrap log: $(tail -20 "$OUT/bootstrap-$c.log"); emulator log: $(tail -20 "$OUT/emulator-$c.log")"
        stop_emulator
        rm -rf "$data"
        local -A r=()
        local kv
        for kv in $(cat "$res"); do r[${kv%%=*}]="${kv#*=}"; done
        # Process time (user+nice+system) of the machine not spent by the bootstrap, the emulator or
        # the driver, in % of one core. Softirq and steal are not counted: on this VM they grow with
        # the run's own wake-ups (printed, for a look).
        local other irq steal
        read -r other irq steal < <(awk -v t="${r[proc_ticks]}" -v b="${r[boot_ticks]}" -v e="${r[emu_ticks]}" \
            -v d="${r[driver_ticks]}" -v i="${r[irq_ticks]}" -v st="${r[steal_ticks]}" -v s="${r[secs]}" -v hz="$HZ" \
            'BEGIN { o = (t - b - e - d) * 100 / (s * hz); printf "%d %d %d\n", (o < 0 ? 0 : o), i * 100 / (s * hz), st * 100 / (s * hz) }')
        local line
        line="$(printf '%-14s run %d  cold %6.2f ms  %5.0f inv/s  p50 %5d us  p99 %5d us  CPU/inv: bootstrap %5.1f us  emulator %5.1f us  driver %5.1f us  others %2d%%  softirq %2d%%  steal %2d%%  idle before %s' \
            "$c" "$n" "${r[cold_ms]}" "${r[ips]}" "${r[p50_us]}" "${r[p99_us]}" "${r[boot_us_per_inv]}" \
            "${r[emu_us_per_inv]}" "${r[driver_us_per_inv]}" "$other" "$irq" "$steal" "$IDLE_SEEN")"
        if ((other > DISTURB_MAX && REPEATED < MAX_REPEATS)); then
            REPEATED=$((REPEATED + 1))
            echo "$line  DISTURBED (others > ${DISTURB_MAX}%): repeating"
            continue
        fi
        if ((other > DISTURB_MAX)); then
            KEPT_DISTURBED=$((KEPT_DISTURBED + 1))
            line="$line  DISTURBED (repeat budget spent; kept)"
        fi
        echo "$line"
        COLD[$c]+="${r[cold_ms]} "
        IPS[$c]+="${r[ips]} "
        BOOT_CPU[$c]+="${r[boot_us_per_inv]} "
        EMU_CPU[$c]+="${r[emu_us_per_inv]} "
        P50[$c]+="${r[p50_us]} "
        P99[$c]+="${r[p99_us]} "
        HWM[$c]+="${r[hwm_kb]} "
        STEAL[$c]+="$steal "
        return 0
    done
}

# --- runs ----------------------------------------------------------------------------------
echo "bootstrap on core $SERVER_CORE, a fresh cargo-lambda emulator per run on core $EMU_CORE, driver on core $LOAD_CORE;" \
    "cold start + ${WARMUP} s warm-up + ${DURATION} s of invocations (concurrency $CONCURRENCY) per run, $RUNS runs each, alternated"
for ((n = 1; n <= RUNS; n++)); do
    for c in "${CONTENDERS[@]}"; do
        measure "$c" "$n"
    done
done

# --- summary -------------------------------------------------------------------------------
echo
echo "summary (median [min..max] spread = (max-min)/median; $REPEATED disturbed run(s) repeated)"
if ((KEPT_DISTURBED > 0)); then
    echo "WARNING: $KEPT_DISTURBED run(s) kept although another process used the CPU; run again on a quiet machine"
fi
printf '%-14s  %-24s  %-26s  %-11s  %-10s  %-6s  %-6s  %-5s  %-8s  %-9s  %s\n' contender "cold start ms" "invocations/s" \
    "boot us/inv" "emu us/inv" "p50 us" "p99 us" "steal" "VmHWM MB" "zip bytes" "bootstrap bytes"
declare -A MED_IPS MED_BOOT
for c in "${CONTENDERS[@]}"; do
    read -r cm clo chi _ < <(stats "${COLD[$c]}")
    read -r im ilo ihi isp < <(stats "${IPS[$c]}")
    read -r bm _ _ _ < <(stats "${BOOT_CPU[$c]}")
    read -r em _ _ _ < <(stats "${EMU_CPU[$c]}")
    read -r pm _ _ _ < <(stats "${P50[$c]}")
    read -r qm _ _ _ < <(stats "${P99[$c]}")
    read -r hm _ _ _ < <(stats "${HWM[$c]}")
    read -r sm _ _ _ < <(stats "${STEAL[$c]}")
    printf '%-14s  %-24s  %-26s  %-11.1f  %-10.1f  %-6.0f  %-6.0f  %-5s  %-8.1f  %-9s  %s\n' "$c" \
        "$(printf '%.2f [%.2f..%.2f]' "$cm" "$clo" "$chi")" \
        "$(printf '%.0f [%.0f..%.0f] %.1f%%' "$im" "$ilo" "$ihi" "$isp")" \
        "$bm" "$em" "$pm" "$qm" "$sm%" "$(awk -v k="$hm" 'BEGIN { print k / 1024 }')" "${ZIP_BYTES[$c]}" "${BOOT_BYTES[$c]}"
    MED_IPS[$c]="$im"
    MED_BOOT[$c]="$bm"
done
echo "(CPU per invocation: utime+stime from /proc/PID/stat over the measured window, medians; the emulator on core $EMU_CORE)"
awk -v b="${MED_BOOT[berth]}" -v l="${MED_BOOT[lambda_runtime]}" \
    'BEGIN { printf "bootstrap cpu/invocation berth/lambda_runtime: %.2f (%.1f us extra per invocation)\n", b / l, b - l }'
awk -v b="${MED_IPS[berth]}" -v l="${MED_IPS[lambda_runtime]}" 'BEGIN { printf "lambda berth/lambda_runtime: %.2f\n", b / l }'
