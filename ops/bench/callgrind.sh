#!/usr/bin/env bash
# Instructions per request: berth serving examples/hello against bare hyper answering the same
# JSON, each under valgrind's callgrind. Instruction counts do not depend on what else the machine
# is doing (../shared/bench-method.md), so this is the repeatable figure behind http.sh's CPU
# ratio, and the tool to find where berth's extra instructions go.
#
# Each server starts uninstrumented; WARM requests on one keep-alive connection warm it up,
# then instrumentation is switched on for exactly REQUESTS more requests (a Python client that reads
# every answer before it sends the next) and off again. Instructions / REQUESTS is the server's
# cost per request: hyper, tokio, the kernel interface as seen from user space, and for berth the
# router, limits, metrics, the plugin boundary and the plugin itself.
#
# Usage: bash ops/bench/callgrind.sh
# Environment: REQUESTS=2000 WARM=200 BERTH_PORT=18082 HYPER_PORT=18083 PROFILE=production
#   TOP=25 (inclusive functions listed per contender; 0: none)
# Profiles are kept as target/bench/callgrind/<name>.out (read them with callgrind_annotate).
# The last line is `instructions per request berth/hyper: X.XX (B / H)`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

REQUESTS="${REQUESTS:-2000}"
WARM="${WARM:-200}"
BERTH_PORT="${BERTH_PORT:-18082}"
HYPER_PORT="${HYPER_PORT:-18083}"
PROFILE="${PROFILE:-production}"
TOP="${TOP:-25}"
URL_PATH="/hello/world"
EXPECTED_BODY='{"message":"Hello, world!"}'
BENCH_TAG=callgrind
# shellcheck source=ops/bench/lib.sh
source "$ROOT/ops/bench/lib.sh"
CG="$OUT/callgrind"

need_tools valgrind callgrind_control callgrind_annotate taskset python3 cargo curl
rm -rf "$CG"
mkdir -p "$CG"

log "building berth and bare-hyper (profile $PROFILE) and the hello plugin (release)"
cargo build --profile "$PROFILE" --quiet -p berth-host -p berth-bench-bare-hyper
cargo build --lib --quiet --profile release --manifest-path examples/hello/Cargo.toml
BIN="target/$PROFILE"

port_in_use "$BERTH_PORT" && die "port $BERTH_PORT is in use; set BERTH_PORT"
port_in_use "$HYPER_PORT" && die "port $HYPER_PORT is in use; set HYPER_PORT"
CONFIG="$CG/berth.toml"
write_hello_config "$CONFIG" "berth serving only examples/hello, under callgrind." "$BERTH_PORT" "$CG/data"

# Sends `count` GETs of URL_PATH to `port` on one keep-alive connection, each answered before the
# next is sent; fails on any answer other than EXPECTED_BODY.
client() {
    python3 - "$1" "$2" "$URL_PATH" "$EXPECTED_BODY" <<'EOF'
import http.client, sys
port, count, path, expected = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4].encode()
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for i in range(count):
    conn.request("GET", path)
    res = conn.getresponse()
    body = res.read()
    if res.status != 200 or body != expected:
        sys.exit(f"request {i}: {res.status} {body!r}, expected 200 {expected!r}")
EOF
}

declare -A IR
# Runs contender `name` (`port`, then its command) under callgrind; sets IR[name].
profile() {
    local name="$1" port="$2" pid out="$CG/$1.out" dump total
    shift 2
    start_server "$name" env "${ENVS[@]}" valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "$@"
    pid="$STARTED_PID"
    wait_200 "http://127.0.0.1:$port$URL_PATH" "$pid" "$name"
    client "$port" "$WARM"
    callgrind_control -i on "$pid" >/dev/null
    client "$port" "$REQUESTS"
    callgrind_control -i off "$pid" >/dev/null
    # The dump holds what was counted while instrumentation was on; it lands beside $out as a part.
    callgrind_control -d "$pid" >/dev/null
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    dump="$(ls -t "$out".* 2>/dev/null | head -n 1)"
    total="$(awk '/^totals:/ { print $2; exit }' "${dump:-/dev/null}")"
    [[ -n "$total" ]] || die "$name: no totals in the dump beside $out; see $OUT/$BENCH_TAG-$name.log"
    mv "$dump" "$out"
    IR[$name]="$total"
    printf '%-6s %10.0f instructions per request (%s requests, %s in all)\n' "$name" \
        "$(awk -v t="$total" -v n="$REQUESTS" 'BEGIN { print t / n }')" "$REQUESTS" "$total"
    if ((TOP > 0)); then
        callgrind_annotate --inclusive=yes "$out" 2>/dev/null | awk -v top="$TOP" -v n="$REQUESTS" '
            /^-+$/ { rule++ } rule >= 3 && $1 ~ /^[0-9,]+$/ && shown < top {
                ir = $1; gsub(",", "", ir); $1 = ""; $2 = $2; sub(/^ +/, "")
                printf "    %8.0f  %s\n", ir / n, substr($0, 1, 140); shown++ }'
    fi
}

ENVS=(WORKERS="$WORKERS")
profile hyper "$HYPER_PORT" "$BIN/bare-hyper" "127.0.0.1:$HYPER_PORT"
ENVS=()
profile berth "$BERTH_PORT" "$BIN/berth" up --config "$CONFIG"
awk -v b="${IR[berth]}" -v h="${IR[hyper]}" -v n="$REQUESTS" \
    'BEGIN { printf "instructions per request berth/hyper: %.2f (%.0f / %.0f)\n", b / h, b / n, h / n }'
