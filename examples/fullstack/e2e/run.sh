#!/usr/bin/env bash
# End-to-end test of examples/fullstack in real headless Chromium: installs what it needs
# (Debian's chromium, the front end's npm packages), builds the host and the `notes` group,
# checks that web/src/api.ts is what `berth client` generates, builds the front end, serves it
# all with `berth up` on a free port with a fresh data dir, and drives the page with
# playwright-core (e2e/notes.e2e.mjs). The screenshot is target/fullstack-e2e/notes.png.
#
# Run from anywhere: bash examples/fullstack/e2e/run.sh
# Environment: CHROMIUM (default /usr/bin/chromium), CARGO_LOCK (default /tmp/cargo.lock: cargo
# runs under `flock` on it, so parallel builds on a small machine take turns).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
example="$(dirname "$here")"
root="$(cd "$example/../.." && pwd)"
web="$example/web"
out="$root/target/fullstack-e2e"
chromium_bin="${CHROMIUM:-/usr/bin/chromium}"
cargo_lock="${CARGO_LOCK:-/tmp/cargo.lock}"
berth="$root/target/debug/berth"
log="$out/berth.log"
cd "$root"

step() { echo "==> $*"; }
fail() {
  echo "FAIL fullstack e2e: $*" >&2
  exit 1
}

# --- tools --------------------------------------------------------------------------------
command -v node >/dev/null || fail "node is required (Node.js 20.19+; Debian: apt-get install nodejs npm)"
command -v npm >/dev/null || fail "npm is required (Debian: apt-get install npm)"
command -v curl >/dev/null || fail "curl is required (Debian: apt-get install curl)"
if [ ! -x "$chromium_bin" ]; then
  [ "$chromium_bin" = /usr/bin/chromium ] || fail "CHROMIUM=$chromium_bin is not an executable"
  step "installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends chromium; then
    apt-get update
    apt-get install -y --no-install-recommends chromium \
      || fail "could not install chromium with apt-get; install it (or set CHROMIUM to a Chromium binary) and rerun"
  fi
fi
echo "chromium: $("$chromium_bin" --version 2>/dev/null | tail -n 1)"

step "npm ci (examples/fullstack/web)"
(cd "$web" && npm ci --no-audit --no-fund) || fail "npm ci failed in $web (is package-lock.json in sync with package.json?)"

# --- build --------------------------------------------------------------------------------
# The group is built exactly as `berth up` builds a `path` group (build.profile = "dev" in
# berth.toml), so that berth's own cargo run finds it fresh; built together with the host,
# cargo would unify their features and berth up would build the group's dependencies again.
step "cargo build (host, notes group)"
flock "$cargo_lock" cargo build -p berth-host || fail "the host did not build"
flock "$cargo_lock" cargo build --lib --profile dev --manifest-path "$example/Cargo.toml" \
  || fail "the notes group did not build"

rm -rf "$out"
mkdir -p "$out"
export BERTH_DATA_DIR="$out/data"
# Another berth on this machine may hold the admin port; the test needs no admin API.
export BERTH_ADMIN__ENABLED=false

# --- the generated client -----------------------------------------------------------------
step "berth client --lang ts: is web/src/api.ts up to date?"
"$berth" client --lang ts --out "$out/api.ts" -c "$example/berth.toml" || fail "berth client could not generate the client (see above)"
if ! diff -u "$web/src/api.ts" "$out/api.ts"; then
  fail "web/src/api.ts is stale: regenerate it (from examples/fullstack: berth client --lang ts --out web/src/api.ts -c berth.toml) and commit it"
fi
echo "PASS web/src/api.ts is what berth client generates"

step "npm run build (tsc --strict, vite build)"
(cd "$web" && npm run build) || fail "the front end did not build (tsc or vite failed above)"

# --- serve --------------------------------------------------------------------------------
port="$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
base="http://127.0.0.1:$port"
step "berth up -c examples/fullstack/berth.toml on $base (log: $log)"
BERTH_SERVER__LISTEN="127.0.0.1:$port" "$berth" up -c "$example/berth.toml" >"$log" 2>&1 &
berth_pid=$!
show_log() {
  echo "---- berth log ($log) ----" >&2
  tail -n 80 "$log" >&2 || true
  echo "---- end of berth log ----" >&2
}
stop_berth() {
  if kill -0 "$berth_pid" 2>/dev/null; then
    kill "$berth_pid" 2>/dev/null || true
    wait "$berth_pid" 2>/dev/null || true
  fi
}
trap stop_berth EXIT

ready=""
for _ in $(seq 1 240); do
  if ! kill -0 "$berth_pid" 2>/dev/null; then
    show_log
    fail "berth up exited before it was ready"
  fi
  if curl -fsS "$base/readyz" >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.5
done
if [ -z "$ready" ]; then
  show_log
  curl -sS "$base/readyz" >&2 || true
  fail "berth was not ready on $base/readyz within 120 s"
fi
echo "berth is ready on $base"

# --- the browser test ---------------------------------------------------------------------
step "node e2e/notes.e2e.mjs (headless Chromium)"
if ! BASE_URL="$base" SCREENSHOT="$out/notes.png" CHROMIUM="$chromium_bin" node "$here/notes.e2e.mjs"; then
  show_log
  fail "the browser test failed (see the FAIL line above)"
fi
echo "PASS fullstack e2e: screenshot at ${out#"$root/"}/notes.png"
