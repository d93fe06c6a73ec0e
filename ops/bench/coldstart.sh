#!/usr/bin/env bash
# Cold start: exec → first 200, for bare hyper, `berth up` with one prebuilt group (hello) and
# `berth up` with the five example groups of berth.toml prebuilt (hello, users, todo, welcome,
# unzip). Follows ../shared/bench-method.md: the server is exec'd on core 0, an in-process
# poller on core 1 tries one HTTP request every 1 ms (a curl loop costs ~11 ms a try here) from
# just before the exec; runs alternate between the contenders and medians are quoted.
#
# What counts as serving: bare hyper answering its route; berth with one group answering
# /hello/world; berth with five groups answering /readyz 200 (every group loaded), then
# /hello/world once. Plugins are the release build with debug info stripped (what `berth package`
# ships), each pinned by sha256, loaded as `file` groups (nothing is built at start). The data
# directory is kept between runs (a restart; the first run of each contender, which applies the
# migrations, is not counted).
#
# Usage: bash ops/bench/coldstart.sh
# Environment: RUNS=11 (counted runs per contender) IDLE_MIN=90 IDLE_WAIT=120 PORT=18095
#   PROFILE=production (cargo profile of berth and bare hyper)
# The last line reads `cold start berth(5 groups)/hyper: X.XX, berth 5 groups: N ms`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BENCH_TAG=coldstart
# Before lib.sh, whose RUNS (wrk runs) defaults to 3.
RUNS="${RUNS:-11}"
# shellcheck source=ops/bench/lib.sh
source "$ROOT/ops/bench/lib.sh"
PORT_NO="${PORT:-18095}"
PROFILE="${PROFILE:-production}"
need_tools taskset python3 cargo strip sha256sum

log "building berth and bare-hyper (profile $PROFILE) and the five example plugins (release)"
cargo build --profile "$PROFILE" --quiet -p berth-host -p berth-bench-bare-hyper
cargo build --lib --quiet --release -p hello -p users -p todo -p welcome -p unzip
BIN="target/$PROFILE"
port_in_use "$PORT_NO" && die "port $PORT_NO is in use; set PORT"

PLUGINS="$OUT/coldstart-plugins"
strip_examples "$PLUGINS"
# A restart finds plugins deployed a while ago: berth trusts what it hashed before only of files
# whose times are settled (2 s, berth-loader's `known::SETTLED`), and these were just written.
sleep 2.5
ONE="$OUT/coldstart-one.toml"
write_berth_config "$ONE" "berth with one prebuilt group." "$PORT_NO" "$OUT/coldstart-one-data"
example_group hello "$PLUGINS" >>"$ONE"
FIVE="$OUT/coldstart-five.toml"
write_berth_config "$FIVE" "berth with the five example groups prebuilt." "$PORT_NO" "$OUT/coldstart-five-data"
example_groups "$PLUGINS" >>"$FIVE"

wait_idle
log "cores idle ($IDLE_SEEN %); $RUNS runs per contender, alternated, plus one uncounted first run each"
python3 - "$RUNS" "$PORT_NO" "$SERVER_CORE" "$LOAD_CORE" "$OUT/coldstart" \
    "hyper=env WORKERS=$WORKERS $BIN/bare-hyper 127.0.0.1:$PORT_NO|/hello/world" \
    "berth-1=$BIN/berth up --config $ONE|/hello/world" \
    "berth-5=$BIN/berth up --config $FIVE|/readyz" <<'EOF'
import os, socket, statistics, subprocess, sys, time

runs, port, server_core, poll_core, logs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
contenders = []
for spec in sys.argv[6:]:
    name, rest = spec.split("=", 1)
    cmd, path = rest.rsplit("|", 1)
    contenders.append((name, cmd.split(), path))
os.sched_setaffinity(0, {poll_core})

def get(path):
    """One request; the status, or None when nothing answers yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64)
            return int(head.split()[1]) if head.startswith(b"HTTP/1.1 ") else None
    except OSError:
        return None

def one(name, cmd, path):
    with open(f"{logs}-{name}.log", "ab") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(["taskset", "-c", server_core] + cmd, stdout=log, stderr=log)
        try:
            while True:
                if proc.poll() is not None:
                    sys.exit(f"{name} exited during startup; see {logs}-{name}.log")
                if get(path) == 200:
                    ms = (time.perf_counter() - start) * 1000
                    break
                if time.perf_counter() - start > 60:
                    sys.exit(f"{name} did not answer 200 on {path} within 60 s")
                time.sleep(0.001)
            if path != "/hello/world" and get("/hello/world") != 200:
                sys.exit(f"{name} is ready but /hello/world does not answer 200")
            return ms
        finally:
            proc.terminate()
            proc.wait()

results = {name: [] for name, _, _ in contenders}
for name, cmd, path in contenders:
    one(name, cmd, path)  # the uncounted first run
for _ in range(runs):
    for name, cmd, path in contenders:
        results[name].append(one(name, cmd, path))
for name, ms in results.items():
    ms.sort()
    print(f"{name:8} median {statistics.median(ms):7.1f} ms   min {ms[0]:7.1f}   max {ms[-1]:7.1f}   ({len(ms)} runs)")
h, b5 = statistics.median(results["hyper"]), statistics.median(results["berth-5"])
print(f"cold start berth(5 groups)/hyper: {b5 / h:.2f}, berth 5 groups: {b5:.0f} ms")
EOF
