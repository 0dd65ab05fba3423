#!/usr/bin/env bash
# bench-debug.sh BUILD_DIR: the live-debugging figures (issues 7 and 20), written as the
# "## Live debugging (issues 7, 20)" section of bench/results.md (scripts/write-bench-section.sh).
#
# Before and after in one run: the baseline is the tree at BENCH_DEBUG_BASE (default: the commit
# before issue 20's round-trip work), unpacked with `git archive` into the work directory and
# built there (microvisor and keel CLI only, against this build's third-party sources). Both
# trees' stubs (firmware) and relays (keel debug) are measured with the same app, broker, keeld
# and gdb script.
#
# The dbgtarget app on a QEMU device, debugged by the real gdb-multiarch. Two paths, measured in
# the same run with the same gdb script:
#   - through the cloud: gdb -> keel debug (127.0.0.1) -> keeld -> Mosquitto (TLS) -> the device's
#     encrypted debug session over MQTT (the local fleet of tests/debug/fleet_lib.sh, all loopback);
#   - direct (the baseline): gdb -> QEMU's UART2 on a TCP socket -> the same stub
#     (`keel device run --gdb-serial`), no crypto, no relays.
# Figures, each timed inside gdb (python, perf_counter) over many repetitions, p50 and p99:
#   RSP packet round trip (`maint packet m` of 4 bytes), `stepi`, `next` over one source line,
#   `bt` of 5 frames with gdb's register and memory caches flushed first (every frame is fetched).
# Every process started here is stopped on exit; every wait is bounded.
set -uo pipefail
build=${1:?usage: bench-debug.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
keel=$build/host/tools/keel/keel
keeld=$build/host/server/keeld
fw=$build/fw/microvisor/keel-microvisor.elf
elf=$build/fw/apps/dbgtarget/dbgtarget.elf
src=$root/tests/debug
out=$root/bench/results.md
N_RT=${BENCH_DEBUG_RT:-300}
N_STEP=${BENCH_DEBUG_STEPS:-100}
N_BT=${BENCH_DEBUG_BT:-50}
BASE_REV=${BENCH_DEBUG_BASE:-56e8dc3}
# A loaded machine makes the baseline slow: the device and keel debug live as long as needed.
export DEVICE_SECONDS=900 KDEBUG_TIMEOUT=900

for f in "$keel" "$keeld" "$fw" "$elf"; do
    [ -e "$f" ] || { echo "bench-debug: $f is missing; run make first" >&2; exit 1; }
done
for p in gdb-multiarch mosquitto openssl curl; do
    command -v "$p" >/dev/null || { echo "bench-debug: $p is not installed (make deps)" >&2; exit 1; }
done
# shellcheck source=../tests/qemu/lib.sh
. "$root/tests/qemu/lib.sh"
kq_setup bench-debug
# shellcheck source=../tests/debug/fleet_lib.sh
. "$src/fleet_lib.sh"
# ---- the baseline tree -------------------------------------------------------------------------
base=$W/base
bash "$root/scripts/bench-baseline.sh" "$build" "$BASE_REV" "$base" fw || kq_die "the baseline $BASE_REV did not build"
base_fw=$base/build/fw/microvisor/keel-microvisor.elf
base_keel=$base/build/host/tools/keel/keel

fleet_up

# The measuring session. Prints "BENCH name p50 p99 n" lines (milliseconds).
cat >"$W/bench.gdb" <<EOF
set pagination off
set confirm off
file $elf
target remote 127.0.0.1:@PORT@
python
import time
def timed(cmd):
    t0 = time.perf_counter()
    gdb.execute(cmd, to_string=True)
    return (time.perf_counter() - t0) * 1000.0
def flush():
    for c in ("maintenance flush register-cache", "maintenance flush dcache"):
        gdb.execute(c, to_string=True)
def report(name, xs):
    xs = sorted(xs)
    p = lambda q: xs[min(len(xs) - 1, max(0, int(len(xs) * q + 0.999) - 1))]
    print("BENCH %s %.2f %.2f %d" % (name, p(0.50), p(0.99), len(xs)))
addr = int(gdb.parse_and_eval("&counter"))
report("rtt", [timed("maintenance packet m%x,4" % addr) for _ in range($N_RT)])
gdb.execute("break level4", to_string=True)
gdb.execute("continue", to_string=True)
bt = []
for _ in range($N_BT):
    flush()
    t0 = time.perf_counter()
    frames = gdb.execute("bt", to_string=True).count("\n#") + 1
    bt.append((time.perf_counter() - t0) * 1000.0)
    assert frames == 5, "bt printed %d frames, expected 5 (level4 .. main)" % frames
report("bt5", bt)
gdb.execute("delete", to_string=True)
report("stepi", [timed("stepi") for _ in range($N_STEP)])
gdb.execute("break level2", to_string=True)
nx = []
for _ in range($N_STEP // 2):
    gdb.execute("continue", to_string=True)
    nx.append(timed("next"))
report("next", nx)
gdb.execute("delete", to_string=True)
end
detach
EOF

# measure PORT LABEL: one gdb session on 127.0.0.1:PORT; its BENCH lines go to $W/LABEL.txt.
measure() {
    sed "s/@PORT@/$1/" "$W/bench.gdb" >"$W/bench-$2.gdb"
    timeout 900 gdb-multiarch -q -batch -nx -x "$W/bench-$2.gdb" >"$W/gdb-$2.out" 2>&1 ||
        kq_die "gdb ($2) failed: $(tail -20 "$W/gdb-$2.out"); keel debug said: $(cat "$W"/kdebug*.out 2>/dev/null)"
    grep '^BENCH ' "$W/gdb-$2.out" >"$W/$2.txt"
    [ "$(wc -l <"$W/$2.txt")" -eq 4 ] || kq_die "gdb ($2) did not report every figure: $(tail -20 "$W/gdb-$2.out")"
}

# measure_tree SUFFIX FIRMWARE KEEL: that tree's stub and keel CLI (keel debug, and keel device
# run with its relays: the device's broker link and the --gdb-serial line) on the cloud path and
# the serial line, into cloudSUFFIX.txt and serialSUFFIX.txt.
measure_tree() {
    local cur_fw=$fw cur_keel=$keel
    fw=$2 keel=$3
    start_device dbg.kb
    PORT=$(free_port)
    kdebug "kdebug$1.out" --key "$W/debug.key" --port "$PORT"
    wait_for 30 grep -q "target remote 127.0.0.1:$PORT" "$W/kdebug$1.out" ||
        kq_die "keel debug did not open the session: $(cat "$W/kdebug$1.out")"
    measure "$PORT" "cloud$1"
    wait "$KPID" || kq_die "keel debug failed: $(cat "$W/kdebug$1.out")"
    SPORT=$(free_port)
    start_device dbg.kb --gdb-serial "$SPORT"
    measure "$SPORT" "serial$1"
    stop_device
    fw=$cur_fw keel=$cur_keel
}
measure_tree -base "$base_fw" "$base_keel"
measure_tree "" "$fw" "$keel"

load=$(cut -d' ' -f1-3 /proc/loadavg)
fig() { awk -v n="$2" -v c="$3" '$2 == n { print $c }' "$W/$1.txt"; }
row() { # LABEL NAME: p50 (p99), before -> after, per path
    printf '| %s | %s (%s) | **%s** (%s) | %s (%s) | **%s** (%s) |\n' "$1" \
        "$(fig cloud-base "$2" 3)" "$(fig cloud-base "$2" 4)" "$(fig cloud "$2" 3)" "$(fig cloud "$2" 4)" \
        "$(fig serial-base "$2" 3)" "$(fig serial-base "$2" 4)" "$(fig serial "$2" 3)" "$(fig serial "$2" 4)"
}
{
    echo "## Live debugging (issues 7 and 20)"
    echo
    echo "Measured by \`scripts/bench-debug.sh\` on $(date -u +%Y-%m-%d) ($(nproc) CPUs, loopback): gdb-multiarch"
    echo "against the dbgtarget app on a QEMU device, timed inside gdb. *Cloud*: gdb -> \`keel debug\` ->"
    echo "keeld -> Mosquitto (TLS) -> the device's AES-GCM debug session over MQTT -> the stub."
    echo "*Serial*: gdb -> QEMU's UART2 socket -> the same stub (\`keel device run --gdb-serial\`)."
    echo "*Before*: the tree at $BASE_REV (its stub and its \`keel debug\`), built and measured in the same"
    echo "run; *after*: this tree. Same app, broker, keeld and gdb commands."
    echo
    echo "| ms, p50 (p99) | cloud before | cloud after | serial before | serial after |"
    echo "|---|---|---|---|---|"
    row "RSP packet round trip (\`maint packet m\`, $N_RT×)" rtt
    row "\`stepi\` ($N_STEP×)" stepi
    row "\`next\` over one line ($((N_STEP / 2))×)" next
    row "\`bt\` of 5 frames, caches flushed ($N_BT×)" bt5
    echo
    echo "Every command is a chain of RSP round trips; gdb 13 sends about 40 per \`stepi\` (the stop, \`g\`,"
    echo "some 30 small reads of the same instructions for its frame analysis, the stack, a thread query)."
    echo "After: the stop reply carries every register and the thread (no \`g\`); the relay in front of"
    echo "the stub (\`keel debug\` on the cloud path, \`keel device run --gdb-serial\` on the serial line)"
    echo "answers reads of memory it fetched since the last resume (64-byte lines) and the stub's fixed"
    echo "query answers itself, and asks for the lines at pc and sp as soon as a stop reply passes"
    echo "(keel/rspcache.h); \`next\` is one range step (\`vCont;r\`) per line. The RSP"
    echo "round trip row is a repeated read of one word: after, the relay answers it without a round trip."
    echo "Load average at the end of the run: $load (this machine is shared; compare the columns, which"
    echo "saw the same load, rather than absolute figures across runs)."
} | bash "$root/scripts/write-bench-section.sh" "$out"
sed -n '/^## Live debugging/,/^## /p' "$out" | head -20
kq_finish
