#!/usr/bin/env bash
# Time from `berth new` to the first 200: what a newcomer waits for, with a warm cargo cache
# (the registry's crates downloaded) but nothing of the new crate built. Each run makes a new
# group in a fresh directory outside the repository (`berth new first-run`), starts `berth up`
# inside it (a dev build of the crate and its dependencies into its own target/, then
# serving), and polls `GET /first-run/hello/world` every 10 ms until it answers 200. The clock
# starts before `berth new`. One warm-up run fills the registry cache first and is not counted.
#
# Usage: bash ops/bench/first-run.sh
# Environment: RUNS=3 (measured runs) PORT=18390 TIMEOUT=600 (s a run may take)
# The last line is `new to first 200: N s` (median of the runs, one decimal).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
RUNS="${RUNS:-3}"
PORT="${PORT:-18390}"
TIMEOUT="${TIMEOUT:-600}"
log() { echo "$@" >&2; }
die() { log "${0##*/}: $*"; exit 1; }
command -v curl >/dev/null || die "needs curl"
command -v python3 >/dev/null || die "needs python3"
if (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then die "port $PORT is in use; set PORT"; fi

log "building berth (release)"
cargo build --release --quiet -p berth-host
BERTH="$ROOT/target/release/berth"
WORK="$(mktemp -d /tmp/berth-first-run.XXXXXX)"
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$WORK"' EXIT

# One run: prints seconds from `berth new` to the first 200.
one_run() {
    local dir="$WORK/run-$1/first-run" pid
    mkdir -p "$(dirname "$dir")"
    local started
    started="$(python3 -c 'import time; print(time.monotonic())')"
    "$BERTH" new "$dir" >/dev/null
    (cd "$dir" && exec env -u CARGO_TARGET_DIR BERTH_SERVER__LISTEN="127.0.0.1:$PORT" BERTH_ADMIN__ENABLED=false \
        "$BERTH" up >"$WORK/run-$1.log" 2>&1) &
    pid=$!
    python3 - "$PORT" "$started" "$TIMEOUT" <<'EOF' || { kill "$pid" 2>/dev/null; die "run $1: no 200 within ${TIMEOUT}s (see $WORK/run-$1.log)"; }
import sys, time, urllib.request
port, started, timeout = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
url = f"http://127.0.0.1:{port}/first-run/hello/world"
while time.monotonic() - started < timeout:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                print(f"{time.monotonic() - started:.2f}")
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.01)
sys.exit(1)
EOF
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

log "warm-up run (fills the registry cache; not counted)"
one_run warmup >/dev/null
times=()
for ((i = 1; i <= RUNS; i++)); do
    t="$(one_run "$i")"
    log "run $i: new to first 200 in $t s"
    times+=("$t")
done
median="$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')"
printf 'runs: %s s\n' "${times[*]}"
printf 'new to first 200: %.1f s\n' "$median"
