# shellcheck shell=bash
# What the wrk benchmarks (http.sh, isolation.sh) share: tools, starting and stopping servers,
# berth's config, the idle-core check, one wrk run, one measured run with server CPU per request
# and the disturbed-run repeat, medians, and the summary. Follows ../shared/bench-method.md.
#
# Source it after setting ROOT (the repository), BENCH_TAG (prefix of the files under $OUT) and
# URL_PATH / EXPECTED_BODY (what every contender serves). The contenders are named in the
# associative arrays PID (server process) and PORT, filled by the script. A script may redefine
# server_cpu, rss_kb and hwm_kb (e.g. to count a server's child processes too).
#
# Knobs shared by the scripts (environment, defaults below):
#   DURATION=10     seconds per measured run          RUNS=3        measured runs per contender
#   WARMUP=3        seconds of warm-up before each run CONNS=64      wrk connections
#   LAT_DURATION=5  seconds of the -c1 latency run     IDLE_MIN=90   % idle each core needs before a run
#   DISTURB_MAX=8   % of a core used by other processes during a run above which it is repeated
#   MAX_REPEATS=6   repeated runs allowed in total     IDLE_WAIT=120 s to wait for idle cores per run

DURATION="${DURATION:-10}"
RUNS="${RUNS:-3}"
WARMUP="${WARMUP:-3}"
CONNS="${CONNS:-64}"
LAT_DURATION="${LAT_DURATION:-5}"
IDLE_MIN="${IDLE_MIN:-90}"
DISTURB_MAX="${DISTURB_MAX:-8}"
MAX_REPEATS="${MAX_REPEATS:-6}"
IDLE_WAIT="${IDLE_WAIT:-120}"
SERVER_CORE=0
LOAD_CORE=1
# The CPUs the servers and wrk run on (taskset lists): one core each unless a script shares both
# cores between them (http.sh with WORKERS=2). The idle check always looks at both cores.
SERVER_CPUS="$SERVER_CORE"
LOAD_CPUS="$LOAD_CORE"
# tokio workers of berth (and of bare hyper, where the script passes it on).
WORKERS="${WORKERS:-1}"
# Width of the contender's name in the result lines.
NAME_WIDTH="${NAME_WIDTH:-6}"

OUT="$ROOT/target/bench"
mkdir -p "$OUT"
HZ="$(getconf CLK_TCK)"
PAGE="$(getconf PAGESIZE)"

log() { echo "$@" >&2; }
die() { log "${0##*/}: $*"; exit 1; }

# --- tools ---------------------------------------------------------------------------------
# Installs wrk when missing, then checks that every tool named is on PATH and that there are
# two cores.
need_tools() {
    local t sudo=""
    if ! command -v wrk >/dev/null; then
        log "installing wrk"
        [[ "$(id -u)" == 0 ]] || sudo="sudo"
        $sudo apt-get update -qq && $sudo apt-get install -y -qq wrk >/dev/null
    fi
    for t in "$@"; do command -v "$t" >/dev/null || die "needs \`$t\` on PATH"; done
    [[ "$(nproc)" -ge 2 ]] || die "needs 2 cores (server on core $SERVER_CORE, wrk on core $LOAD_CORE)"
}

# --- servers -------------------------------------------------------------------------------
SERVER_PIDS=""
WRK_OUT="$OUT/$BENCH_TAG-wrk.$$.out"
# Stops every server started (and any child process one left behind, e.g. a berth worker).
cleanup() {
    local pid children=""
    for pid in $SERVER_PIDS; do
        children+=" $(pgrep -P "$pid" 2>/dev/null | tr '\n' ' ' || true)"
        kill "$pid" 2>/dev/null || true
    done
    for pid in $SERVER_PIDS; do
        wait "$pid" 2>/dev/null || true
    done
    for pid in $children; do
        kill "$pid" 2>/dev/null || true
    done
    rm -f "$WRK_OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts `command...` on the server core, logging to $OUT/$BENCH_TAG-<name>.log; sets STARTED_PID.
start_server() {
    local name="$1"
    shift
    taskset -c "$SERVER_CPUS" "$@" >"$OUT/$BENCH_TAG-$name.log" 2>&1 &
    STARTED_PID=$!
    SERVER_PIDS+=" $STARTED_PID"
}

# Writes a berth config serving on 127.0.0.1:`port` with WORKERS tokio workers, data in `data_dir`
# and no admin API; the caller appends its groups (and services).
write_berth_config() {
    local file="$1" comment="$2" port="$3" data_dir="$4"
    cat >"$file" <<EOF
# Written by ops/bench/${0##*/}: $comment
version = 1
log = "warn"
data_dir = "$data_dir"

[server]
listen = "127.0.0.1:$port"
workers = $WORKERS

# The admin API (hot swap) is not measured; leaving it off keeps port 8081 free.
[admin]
enabled = false

EOF
}

# Writes the config of berth serving only examples/hello, built as `berth up` builds it
# (http.sh, callgrind.sh); the arguments are write_berth_config's.
write_hello_config() {
    write_berth_config "$@"
    cat >>"$1" <<EOF
[build]
profile = "release"

[[groups]]
path = "$ROOT/examples/hello"
EOF
}

# The five example groups of berth.toml, prebuilt (coldstart.sh, memory.sh).
EXAMPLES="hello users todo welcome unzip"
# Copies each example's release plugin into `dir` with its debug info stripped (as `berth
# package` ships it).
strip_examples() {
    local dir="$1" p
    mkdir -p "$dir"
    for p in $EXAMPLES; do strip --strip-debug -o "$dir/lib$p.so" "$ROOT/target/release/lib$p.so"; done
}
# Prints the [[groups]] entry of example `name` from `dir`: its file, pinned by sha256, and its
# migrations folder when it has one (a `path` group finds that in its crate).
example_group() {
    local name="$1" dir="$2"
    printf '\n[[groups]]\nfile = "%s"\nsha256 = "%s"\n' "$dir/lib$name.so" "$(sha256sum "$dir/lib$name.so" | cut -d' ' -f1)"
    [[ -d "$ROOT/examples/$name/migrations" ]] && printf 'migrations = "%s"\n' "$ROOT/examples/$name/migrations"
    return 0
}
# Prints the services the examples declare, on the embedded backends (as berth.toml has them),
# then every example's [[groups]] entry from `dir`.
example_groups() {
    local dir="$1" p
    cat <<'EOF'
[services.db]
kind = "sqlite"
[services.cache]
kind = "kv"
[services.userstore]
kind = "kv"
[services.uploads]
kind = "blob"
[services.extracted]
kind = "blob"
EOF
    for p in $EXAMPLES; do example_group "$p" "$dir"; done
}

# Waits until `url` answers 200 (the server must still be alive).
wait_200() {
    local url="$1" pid="$2" name="$3" i
    for ((i = 0; i < 3000; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during startup; see $OUT/$BENCH_TAG-$name.log"
        [[ "$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)" == 200 ]] && return 0
        sleep 0.1
    done
    die "$name did not answer 200 on $url within 300 s; see $OUT/$BENCH_TAG-$name.log"
}

rss_kb() { awk -v p="$PAGE" '{ print $2 * p / 1024 }' "/proc/$1/statm"; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
declare -A PID PORT RSS_IDLE RSS_LOAD

# Checks that each contender answers EXPECTED_BODY as JSON on URL_PATH; notes its idle RSS.
check_contenders() {
    local c body ctype
    for c in "$@"; do
        RSS_IDLE[$c]="$(rss_kb "${PID[$c]}")"
        RSS_LOAD[$c]=0
        body="$(curl -s "http://127.0.0.1:${PORT[$c]}$URL_PATH")"
        ctype="$(curl -s -o /dev/null -w '%{content_type}' "http://127.0.0.1:${PORT[$c]}$URL_PATH")"
        [[ "$body" == "$EXPECTED_BODY" && "$ctype" == application/json ]] ||
            die "$c answered \`$body\` ($ctype), expected \`$EXPECTED_BODY\` (application/json)"
    done
}

# --- measurement helpers -------------------------------------------------------------------
# "busy idle" jiffies of one core from /proc/stat (idle = idle + iowait; busy includes steal).
core_times() {
    awk -v cpu="cpu$1" '$1 == cpu { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat
}
# Busy jiffies of the whole machine.
all_busy() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# utime + stime of a process, all threads, in jiffies.
proc_cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# The CPU a contender's server used so far, in jiffies (what `measure` divides by the requests).
server_cpu() { proc_cpu "$1"; }
# CPU time of this shell's reaped children (cutime + cstime), in jiffies.
# shellcheck disable=SC2086 # splitting /proc/self/stat into fields is the point
children_cpu() { local s; read -r s <"/proc/$$/stat"; s="${s##*) }"; set -- $s; echo $((${14} + ${15})); }

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

# Converts a wrk latency ("1.23ms", "850.00us", "1.01s") to µs.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000; else if (v ~ /s$/) m = 1000000; else m = 1
        printf "%.1f", n * m }'
}

# One wrk run; sets W_RPS W_REQS W_P99 W_P50 W_AVG W_ERR and W_WRKCPU (wrk's own CPU, jiffies).
wrk_run() {
    local core="$1" conns="$2" secs="$3" port="$4" file="$WRK_OUT" before
    before="$(children_cpu)"
    taskset -c "$core" wrk -t1 -c"$conns" -d"${secs}s" --latency "http://127.0.0.1:$port$URL_PATH" >"$file" &
    local wpid=$!
    if [[ -n "${SAMPLE_PID:-}" ]]; then
        sleep "$((secs / 2))"
        local r
        r="$(rss_kb "$SAMPLE_PID")"
        if (($(printf '%.0f' "$r") > $(printf '%.0f' "${RSS_LOAD[$SAMPLE_NAME]}"))); then RSS_LOAD[$SAMPLE_NAME]="$r"; fi
    fi
    wait "$wpid" || die "wrk failed: $(cat "$file")"
    W_WRKCPU=$(($(children_cpu) - before))
    W_RPS="$(awk '/^Requests\/sec:/ { print $2 }' "$file")"
    W_REQS="$(awk '/requests in/ { print $1 }' "$file")"
    W_P50="$(to_us "$(awk '$1 == "50%" { print $2 }' "$file")")"
    W_P99="$(to_us "$(awk '$1 == "99%" { print $2 }' "$file")")"
    W_AVG="$(to_us "$(awk '$1 == "Latency" { print $2; exit }' "$file")")"
    W_ERR="$(awk '/Non-2xx|Socket errors/ { printf "%s ", $0 }' "$file")"
    [[ -n "$W_RPS" && -n "$W_REQS" ]] || die "could not parse wrk output: $(cat "$file")"
    [[ -z "$W_ERR" ]] || die "wrk reported errors: $W_ERR"
}

declare -A RPS CPU P99
REPEATED=0
KEPT_DISTURBED=0
declare -A LAT

# Prints a run's result `line` and says whether to keep it: a run in which other processes used
# more than DISTURB_MAX % of a core (`other`) is marked, and refused (to be repeated) while the
# repeat budget MAX_REPEATS lasts. Sets KEPT_LINE to the line printed for a kept run.
keep_run() {
    local line="$1" other="$2"
    if ((other > DISTURB_MAX && REPEATED < MAX_REPEATS)); then
        REPEATED=$((REPEATED + 1))
        echo "$line  DISTURBED (others > ${DISTURB_MAX}%): repeating"
        return 1
    fi
    if ((other > DISTURB_MAX)); then
        KEPT_DISTURBED=$((KEPT_DISTURBED + 1))
        line="$line  DISTURBED (repeat budget spent; kept)"
    fi
    echo "$line"
    KEPT_LINE="$line"
}

# One measured run of contender $1 (run number $2), mode $3: `load` (wrk -c$CONNS on the other
# core) or `c1` (wrk -c1 on the server's core). Idle check, warm-up, run; repeated when another
# process used more than DISTURB_MAX % of a core during the run.
measure() {
    local c="$1" n="$2" mode="$3" pid="${PID[$1]}" core conns secs warm
    if [[ "$mode" == load ]]; then
        core="$LOAD_CPUS" conns="$CONNS" secs="$DURATION" warm="$WARMUP"
    else
        core="$SERVER_CPUS" conns=1 secs="$LAT_DURATION" warm=1
    fi
    while :; do
        wait_idle
        wrk_run "$core" "$conns" "$warm" "${PORT[$c]}"
        local s0 a0 s1 a1
        s0="$(server_cpu "$pid")"
        a0="$(all_busy)"
        if [[ "$mode" == load ]]; then
            SAMPLE_PID="$pid" SAMPLE_NAME="$c" wrk_run "$core" "$conns" "$secs" "${PORT[$c]}"
        else
            wrk_run "$core" "$conns" "$secs" "${PORT[$c]}"
        fi
        a1="$(all_busy)"
        s1="$(server_cpu "$pid")"
        local server=$((s1 - s0)) total=$((a1 - a0))
        # Busy time of the machine not spent by the server or wrk, in % of one core.
        local other=$(((total - server - W_WRKCPU) * 100 / (secs * HZ)))
        ((other >= 0)) || other=0
        local cpu_us line
        cpu_us="$(awk -v j="$server" -v hz="$HZ" -v r="$W_REQS" 'BEGIN { printf "%.2f", j * 1e6 / hz / r }')"
        if [[ "$mode" == load ]]; then
            line="$(printf '%-*s run %d  %7.0f req/s  p99 %7.1f us  server CPU %6.2f us/req (%3d%% of a core)  others %2d%%  idle before %s' \
                "$NAME_WIDTH" "$c" "$n" "$W_RPS" "$W_P99" "$cpu_us" $((server * 100 / (secs * HZ))) "$other" "$IDLE_SEEN")"
        else
            line="$(printf '%-*s -c1  %7.0f req/s  avg %6.1f us  p50 %6.1f us  p99 %7.1f us  server CPU %6.2f us/req  others %2d%%' \
                "$NAME_WIDTH" "$c" "$W_RPS" "$W_AVG" "$W_P50" "$W_P99" "$cpu_us" "$other")"
        fi
        keep_run "$line" "$other" || continue
        if [[ "$mode" == load ]]; then
            RPS[$c]+="$W_RPS "
            CPU[$c]+="$cpu_us "
            P99[$c]+="$W_P99 "
        else
            LAT[$c]="$KEPT_LINE"
        fi
        return 0
    done
}

# "median min max spread%" of a list of numbers.
stats() {
    # shellcheck disable=SC2086 # one number per word
    printf '%s\n' $1 | sort -g | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%s %s %s %.1f\n", m, v[1], v[NR], (m ? (v[NR] - v[1]) * 100 / m : 0) }'
}

# --- summary -------------------------------------------------------------------------------
declare -A MED_RPS MED_CPU
# Prints each contender's medians and spread (req/s, CPU per request, p99); sets MED_RPS, MED_CPU.
# shellcheck disable=SC2034 # MED_RPS and MED_CPU are for the scripts
summarize() {
    local c rm rlo rhi rsp cm clo chi csp pm plo phi
    echo
    echo "summary (median [min..max] spread = (max-min)/median; $REPEATED disturbed run(s) repeated)"
    if ((KEPT_DISTURBED > 0)); then
        echo "WARNING: $KEPT_DISTURBED run(s) kept although another process used the CPU; run again on a quiet machine"
    fi
    for c in "$@"; do
        read -r rm rlo rhi rsp < <(stats "${RPS[$c]}")
        read -r cm clo chi csp < <(stats "${CPU[$c]}")
        read -r pm plo phi _ < <(stats "${P99[$c]}")
        printf '%-*s %9.0f req/s [%.0f..%.0f] %4.1f%%   CPU %6.2f us/req [%.2f..%.2f] %4.1f%%   p99 %7.1f us [%.1f..%.1f]\n' \
            "$NAME_WIDTH" "$c" "$rm" "$rlo" "$rhi" "$rsp" "$cm" "$clo" "$chi" "$csp" "$pm" "$plo" "$phi"
        MED_RPS[$c]="$rm"
        MED_CPU[$c]="$cm"
    done
}

# The -c1 latency line of each contender.
print_latency() {
    local c
    for c in "$@"; do printf '%s\n' "${LAT[$c]}"; done
}

# Resident memory of each contender: idle, sampled under load, and its high-water mark now.
print_memory() {
    local c
    for c in "$@"; do
        printf '%-*s RSS idle %6.1f MB  under load %6.1f MB  VmHWM %6.1f MB\n' "$NAME_WIDTH" "$c" \
            "$(awk -v k="${RSS_IDLE[$c]}" 'BEGIN { print k / 1024 }')" \
            "$(awk -v k="${RSS_LOAD[$c]}" 'BEGIN { print k / 1024 }')" \
            "$(awk -v k="$(hwm_kb "${PID[$c]}")" 'BEGIN { print k / 1024 }')"
    done
}

# "cpu/request a/b: X.XX (Y us extra per request)" from the medians.
print_cpu_ratio() {
    local a="$1" b="$2" label="${3:-$1/$2}"
    awk -v a="${MED_CPU[$a]}" -v b="${MED_CPU[$b]}" -v l="$label" \
        'BEGIN { printf "cpu/request %s: %.2f (%.2f us extra per request)\n", l, a / b, a - b }'
}
