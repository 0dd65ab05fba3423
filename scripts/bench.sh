#!/usr/bin/env bash
# make bench: measure the figures the issues ask for and write bench/results.md.
#
# Microvisor core (issue 3):
#   - flash/RAM footprint of the microvisor (and how much of it is Mbed TLS);
#   - boot to the app's main, in-guest time (device clock) and instructions (QEMU -icount);
#   - crash -> main of the restarted app, in-guest time (back-off 1 ms: --backoff-min 1);
#   - cost of one NSC call in instructions (QEMU -icount shift=0: 1 instruction = 1 ns of
#     virtual time), against a plain function call measured in the same run.
# Every QEMU run is bounded (keel device run --seconds, plus timeout).
set -euo pipefail

build=${1:?usage: bench.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
keel=$build/host/tools/keel/keel
fw=$build/fw/microvisor/keel-microvisor.elf
app=$build/fw/apps/bench/bench.elf
out=$root/bench/results.md
runs=${KEEL_BENCH_RUNS:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for f in "$keel" "$fw" "$app"; do
    [ -e "$f" ] || { echo "bench: $f is missing; run make first" >&2; exit 1; }
done

# One device run of the bench app; prints its console. $1: extra keel flags. Under -icount the
# guest runs slower than the host clock (much slower on a loaded host): it gets more seconds.
run_bench() {
    local dir=$work/dev.$RANDOM secs=3
    [ "${1:-}" = --icount ] && secs=20
    timeout 60 "$keel" device run --state "$dir" --install "$app" --backoff-min 1 \
        --seconds "$secs" --firmware "$fw" "$@" </dev/null 2>/dev/null
    rm -rf "$dir"
}
# value NAME FILE: the number after "bench: NAME=".
value() { sed -n "s/^app| bench: $1=\([0-9]*\).*/\1/p" "$2" | head -n1; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "n/a"}'; }

echo "bench: microvisor footprint"
read -r text data bss _ < <(arm-none-eabi-size "$fw" | awk 'NR==2 {print $1, $2, $3}')
noinit=$(arm-none-eabi-size -A "$fw" | awk '$1==".noinit" {print $2}')
stacks=$(arm-none-eabi-size -A "$fw" | awk '$1==".stacks" {print $2}')
map=$build/fw/microvisor/keel-microvisor.map
# Bytes of flash the linker took from Mbed TLS (scripts/footprint.py reads the map).
mbed=$(python3 "$root/scripts/footprint.py" "$map" --kv | sed -n 's/^mbedtls_flash=//p')

echo "bench: NSC call cost and boot to main under -icount (instructions)"
run_bench --icount >"$work/icount.txt"
calls=$(value calls "$work/icount.txt")
plain=$(value plain_loop_ns "$work/icount.txt")
nsc=$(value nsc_loop_ns "$work/icount.txt")
main_insn=$(( $(value main_us "$work/icount.txt") * 1000 ))
[ -n "$calls" ] && [ -n "$nsc" ] || { echo "bench: the bench app printed no figures:" >&2; cat "$work/icount.txt" >&2; exit 1; }
per_plain=$(awk -v t="$plain" -v n="$calls" 'BEGIN {printf "%.1f", t / n}')
per_nsc=$(awk -v t="$nsc" -v n="$calls" 'BEGIN {printf "%.1f", t / n}')
ratio=$(awk -v a="$nsc" -v b="$plain" 'BEGIN {printf "%.1f", (b > 0) ? a / b : 0}')

echo "bench: boot to main and crash to restarted main, $runs runs (device clock)"
: >"$work/boot"; : >"$work/restart"
for _ in $(seq "$runs"); do
    run_bench >"$work/run.txt"
    b=$(value main_us "$work/run.txt"); c=$(value crash_at_us "$work/run.txt"); r=$(value restart_main_us "$work/run.txt")
    [ -n "$b" ] && echo "$b" >>"$work/boot"
    [ -n "$c" ] && [ -n "$r" ] && echo $((r - c)) >>"$work/restart"
done
boot_med=$(median <"$work/boot"); restart_med=$(median <"$work/restart")
boot_all=$(paste -sd' ' "$work/boot"); restart_all=$(paste -sd' ' "$work/restart")

mkdir -p "$(dirname "$out")"
section=$(cat <<EOF
## Microvisor core (issue 3)

Measured $(date -u +%Y-%m-%d) on this machine (QEMU $(qemu-system-arm --version | head -n1 | awk '{print $4}'), mps2-an505), by \`make bench\`.

| figure | value | baseline / note |
|---|---|---|
| microvisor flash (text + data) | $((text + data)) B | of which Mbed TLS (crypto, X.509, TLS client): ${mbed} B; the network stack's shares: Connectivity (issue 4) |
| microvisor RAM (data + bss) | $((data + bss)) B | + .noinit state ${noinit:-0} B (crash reports, counters) + stacks ${stacks:-0} B |
| boot to app \`main\` (device clock, median of $runs) | ${boot_med} us | runs: ${boot_all} |
| boot to app \`main\` (instructions, -icount) | ${main_insn} | partition, flash scan, image copy + SHA-256, launch |
| app crash to \`main\` of the restarted app (median of $runs) | ${restart_med} us | runs: ${restart_all}; back-off 1 ms; report, NS reset, image reload + verify |
| one NSC call (\`keel_watchdog_kick\`, -icount) | ${per_nsc} instructions | plain function call: ${per_plain} instructions (x${ratio}) |

In-guest times are the device clock (TIMER0, host-paced without -icount), not real M33 timings.
EOF
)
bash "$(dirname "$0")/write-bench-section.sh" "$out" <<<"$section"
echo "$section"
echo "bench: wrote $out"
