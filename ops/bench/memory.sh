#!/usr/bin/env bash
# Memory per group: berth's resident set with 1, 10 and 100 small groups, idle and after use, and
# with the five example groups of berth.toml, so that the cost of one more group is known.
#
# The small groups are generated: one crate per name (g0, g1, ...; two HTTP functions, no
# services), each plugin its own stripped file, as `berth package` ships it. berth runs on
# core 0 with one tokio worker; every figure is read from /proc/PID/statm (resident pages) once
# /readyz answers 200 and the process has settled for SETTLE s ("idle"), then again after every
# group served REQUESTS requests on each of its routes ("used"), and VmHWM at the end.
#
# Usage: bash ops/bench/memory.sh
# Environment: COUNTS="1 10 100" SETTLE=2 REQUESTS=50 PORT=18096 PROFILE=production
# The last line reads `memory: 1 group A MB, 10 groups B MB, 100 groups C MB idle; per extra group
# D MB; five examples E MB idle (bare hyper H MB)`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BENCH_TAG=memory
# shellcheck source=ops/bench/lib.sh
source "$ROOT/ops/bench/lib.sh"
COUNTS="${COUNTS:-1 10 100}"
SETTLE="${SETTLE:-2}"
REQUESTS="${REQUESTS:-50}"
PORT_NO="${PORT:-18096}"
PROFILE="${PROFILE:-production}"
need_tools taskset python3 cargo strip curl sha256sum
port_in_use "$PORT_NO" && die "port $PORT_NO is in use; set PORT"

log "building berth (profile $PROFILE) and the five example plugins (release)"
cargo build --profile "$PROFILE" --quiet -p berth-host -p berth-bench-bare-hyper
cargo build --lib --quiet --release -p hello -p users -p todo -p welcome -p unzip
BERTH="target/$PROFILE/berth"

# --- the generated small groups ---------------------------------------------------------------
MAX=0
for n in $COUNTS; do ((n > MAX)) && MAX=$n; done
FIX="$OUT/memory-fixture"
PLUGINS="$OUT/memory-plugins"
mkdir -p "$FIX" "$PLUGINS"
template() {
    cat <<EOF
//! Written by ops/bench/memory.sh: group \`$1\`, two HTTP functions and no services.

/// \`GET /$1/hello\`.
#[berth::http(GET, "/$1/hello")]
async fn hello() -> &'static str {
    "hello from $1"
}

/// \`GET /$1/items/{id}\`.
#[berth::http(GET, "/$1/items/{id}")]
async fn item(berth::Path(id): berth::Path<u32>) -> String {
    format!("item {id} of $1")
}

berth::group! { name: "$1", functions: [hello, item] }
EOF
}
# One workspace of MAX crates g0, g1, ..., built by one cargo call (a crate per group name: the
# name is compiled into the plugin's manifest).
members=""
for ((i = 0; i < MAX; i++)); do
    mkdir -p "$FIX/g$i/src"
    members+="\"g$i\", "
    cat >"$FIX/g$i/Cargo.toml" <<EOF
[package]
name = "g$i"
version = "1.0.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
berth = { path = "$ROOT/sdk" }
EOF
    template "g$i" >"$FIX/g$i/src/lib.rs.new"
    cmp -s "$FIX/g$i/src/lib.rs.new" "$FIX/g$i/src/lib.rs" 2>/dev/null && rm "$FIX/g$i/src/lib.rs.new" \
        || mv "$FIX/g$i/src/lib.rs.new" "$FIX/g$i/src/lib.rs"
done
cat >"$FIX/Cargo.toml" <<EOF
# Written by ops/bench/memory.sh: the small groups it loads, one crate per group name.
[workspace]
resolver = "2"
members = [${members%, }]
EOF
[[ -f "$FIX/Cargo.lock" ]] || cp Cargo.lock "$FIX/Cargo.lock"
log "building $MAX small groups (one cargo call)"
cargo build --quiet --release --lib --manifest-path "$FIX/Cargo.toml" --target-dir "$FIX/target"
for ((i = 0; i < MAX; i++)); do
    strip --strip-debug -o "$PLUGINS/g$i.so" "$FIX/target/release/libg$i.so"
done
strip_examples "$PLUGINS"

# --- one configuration ------------------------------------------------------------------------
# Starts berth with `config`, waits for /readyz, sets M_IDLE, M_USED and M_HWM (kB).
measure_config() {
    local name="$1" config="$2" routes="$3" pid i
    rm -rf "$OUT/memory-data"
    start_server "$name" "$BERTH" up --config "$config"
    pid="$STARTED_PID"
    for ((i = 0; i < 3000; i++)); do
        kill -0 "$pid" 2>/dev/null || die "berth ($name) exited during startup; see $OUT/$BENCH_TAG-$name.log"
        [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT_NO/readyz" || true)" == 200 ]] && break
        sleep 0.05
    done
    ((i < 3000)) || die "berth ($name) was not ready within 150 s; see $OUT/$BENCH_TAG-$name.log"
    sleep "$SETTLE"
    M_IDLE="$(rss_kb "$pid")"
    # Where the idle pages are: anonymous (heap, stacks) or file-backed (the host's and the
    # plugins' code and data, mapped from their files).
    M_SPLIT="$(awk '/^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 } END { printf "%.1f anon + %.1f file", a / 1024, f / 1024 }' "/proc/$pid/status")"
    python3 - "$PORT_NO" "$REQUESTS" $routes <<'EOF'
import http.client, sys
port, n, routes = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
c = http.client.HTTPConnection("127.0.0.1", port)
for route in routes:
    for _ in range(n):
        c.request("GET", route)
        r = c.getresponse()
        r.read()
        if r.status != 200:
            sys.exit(f"GET {route} answered {r.status}")
EOF
    sleep "$SETTLE"
    M_USED="$(rss_kb "$pid")"
    M_HWM="$(hwm_kb "$pid")"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    SERVER_PIDS="${SERVER_PIDS/ $pid/}"
}

mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
declare -A IDLE USED
wait_idle
printf '%-16s %10s %10s %10s   %s\n' groups "idle MB" "used MB" "peak MB" "idle MB by kind"
for n in $COUNTS; do
    config="$OUT/memory-$n.toml"
    write_berth_config "$config" "berth with $n small groups." "$PORT_NO" "$OUT/memory-data"
    routes=""
    for ((i = 0; i < n; i++)); do
        printf '\n[[groups]]\nfile = "%s"\n' "$PLUGINS/g$i.so" >>"$config"
        routes+=" /g$i/hello /g$i/items/$i"
    done
    measure_config "small-$n" "$config" "$routes"
    IDLE[$n]=$M_IDLE
    USED[$n]=$M_USED
    printf '%-16s %10s %10s %10s   %s\n' "$n small" "$(mb "$M_IDLE")" "$(mb "$M_USED")" "$(mb "$M_HWM")" "$M_SPLIT"
done

config="$OUT/memory-examples.toml"
write_berth_config "$config" "berth with the five example groups." "$PORT_NO" "$OUT/memory-data"
example_groups "$PLUGINS" >>"$config"
measure_config examples "$config" "/hello/world /text /todos /users"
ex_idle=$M_IDLE
printf '%-16s %10s %10s %10s   %s\n' "5 examples" "$(mb "$M_IDLE")" "$(mb "$M_USED")" "$(mb "$M_HWM")" "$M_SPLIT"

# The baseline: bare hyper serving one route, same core, one worker.
start_server hyper env WORKERS=1 "target/$PROFILE/bare-hyper" "127.0.0.1:$PORT_NO"
pid="$STARTED_PID"
for ((i = 0; i < 200; i++)); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT_NO/hello/world" || true)" == 200 ]] && break
    sleep 0.05
done
sleep "$SETTLE"
hyper_idle="$(rss_kb "$pid")"
kill "$pid"
wait "$pid" 2>/dev/null || true
SERVER_PIDS="${SERVER_PIDS/ $pid/}"
printf '%-16s %10s\n' "bare hyper" "$(mb "$hyper_idle")"

read -r first last < <(echo "$COUNTS" | awk '{ print $1, $NF }')
slope="$(awk -v a="${IDLE[$first]}" -v b="${IDLE[$last]}" -v n="$first" -v m="$last" 'BEGIN { printf "%.2f", (b - a) / (m - n) / 1024 }')"
used_slope="$(awk -v a="${USED[$first]}" -v b="${USED[$last]}" -v n="$first" -v m="$last" 'BEGIN { printf "%.2f", (b - a) / (m - n) / 1024 }')"
echo "per extra small group: $slope MB idle, $used_slope MB used (from $first to $last groups)"
line="memory:"
for n in $COUNTS; do line+=" $n group$([[ $n == 1 ]] || echo s) $(mb "${IDLE[$n]}") MB,"; done
echo "${line%,} idle; per extra group $slope MB; five examples $(mb "$ex_idle") MB idle (bare hyper $(mb "$hyper_idle") MB)"
