#!/usr/bin/env bash
# bench-apps.sh BUILD_DIR: the figures of the apps of issue 19, written as the "## Apps (issue 19)"
# section of bench/results.md (scripts/write-bench-section.sh).
#   - size: the Rust example (hello-rust: core + the keel crate + formatting) against the C hello
#     and the C++ hello-cxx it mirrors, and the rtos app, from arm-none-eabi-size of the built ELFs;
#   - the rtos app's context switch, measured by the app itself in QEMU (its "bench" command, three
#     runs of 20000 rounds each, the median kept): a keel_* call (keel_time_get_us: the NSC round
#     trip into the microvisor and back) as the baseline of the same run, a semaphore give+take
#     that switches nothing, and a ping-pong between two threads (two switches a round). Emulated
#     time (QEMU TCG on this host): the ratios are the figure, not the nanoseconds.
set -uo pipefail
build=${1:?usage: bench-apps.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
keel=$build/host/tools/keel/keel
apps=$build/fw/apps
out=$root/bench/results.md
for f in "$keel" "$apps/hello/hello.elf" "$apps/hello-cxx/hello-cxx.elf" "$apps/rtos/rtos.elf"; do
    [ -e "$f" ] || { echo "bench-apps: $f is missing; run make first" >&2; exit 1; }
done
# shellcheck source=../tests/qemu/lib.sh
. "$root/tests/qemu/lib.sh"
kq_setup bench-apps

# ---- sizes ------------------------------------------------------------------------------------
size_row() { # NAME ELF: "| name | text | data | bss | flash |" (flash = text + data)
    local t d b
    read -r t d b _ < <(arm-none-eabi-size "$2" | sed -n 2p)
    printf '| %s | %d | %d | %d | %d |\n' "$1" "$t" "$d" "$b" $((t + d))
    echo $((t + d)) >"$KQ_TMP/flash.$1"
}
rows=$(size_row hello "$apps/hello/hello.elf"; size_row hello-cxx "$apps/hello-cxx/hello-cxx.elf"
    size_row rtos "$apps/rtos/rtos.elf"
    if [ -e "$apps/hello-rust/hello-rust.elf" ]; then size_row hello-rust "$apps/hello-rust/hello-rust.elf"; fi)
if [ -e "$KQ_TMP/flash.hello-rust" ]; then
    # Where hello-rust's bytes go, by symbol: formatting (core::fmt and its str/Unicode helpers),
    # the keel crate, the rest.
    read -r fmt_b keel_b < <(arm-none-eabi-nm -S -C "$apps/hello-rust/hello-rust.elf" | python3 -c '
import re, sys
fmt = keel = 0
for line in sys.stdin:
    p = line.split(None, 3)
    if len(p) < 4:
        continue
    size, name = int(p[1], 16), p[3].strip()
    if name.startswith("keel::") or "<keel::" in name:
        keel += size
    elif re.search(r"fmt|Debug|Display|unicode|printable|pad|count_chars|from_utf8|slice_error|str::", name):
        fmt += size
print(fmt, keel)')
    rust_note="hello-rust is $(awk -v r="$(cat "$KQ_TMP/flash.hello-rust")" -v c="$(cat "$KQ_TMP/flash.hello")" 'BEGIN { printf "%.1f", r / c }')x the flash of the C hello. By symbol, $fmt_b bytes are \`core::fmt\` and its string and Unicode helpers (the app formats its log lines with \`write!\` and \`{:?}\`; an app that logs fixed strings does without), $keel_b bytes the \`keel\` crate (with the derived \`Debug\` of its enums)."
else
    rust_note="hello-rust was not built (no rustc with rust-src: \`make deps\`)."
fi

# ---- context switch -----------------------------------------------------------------------------
printf 'bench\nbench\nbench\n' >"$KQ_TMP/cmds.txt"
kq_run "$keel" "$apps/rtos/rtos.elf" 120 "$KQ_TMP/cmds.txt" '^app\| rtos: bench n=' '^app\| rtos: bench n=' '^app\| rtos: bench n='
[ "$KQ_FAILS" -eq 0 ] || kq_die "the rtos app did not run its benchmark three times"
grep '^app| rtos: bench n=' "$KQ_OUT" >"$KQ_TMP/bench.txt"
[ "$(wc -l <"$KQ_TMP/bench.txt")" -ge 3 ] || kq_die "fewer than three bench lines"
med() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" "$KQ_TMP/bench.txt" | sort -n | sed -n 2p; }
call=$(med keel-call-ns) sem=$(med sem-pair-ns) pp=$(med pingpong-ns) sw=$(med switches)
switch=$(( (pp - sem) / 2 ))
ratio=$(awk -v s="$switch" -v c="$call" 'BEGIN { printf "%.2f", s / c }')

bash "$root/scripts/write-bench-section.sh" "$out" <<EOF2
## Apps (issue 19)

\`scripts/bench-apps.sh\`, $(date -u +%Y-%m-%d). Sizes from \`arm-none-eabi-size\` (bytes; flash = text + data):

| app | text | data | bss | flash |
|---|---|---|---|---|
$rows

$rust_note The bss of each is mostly its 16 KiB main stack (the rtos app's threads have 2 KiB stacks of their own).

The rtos app's scheduler (\`firmware/apps/rtos/kos.c\`), timed by the app in QEMU (median of 3 runs of 20000 rounds; emulated time on this host, compare the ratios):

| what | ns |
|---|---|
| a keel_* call (\`keel_time_get_us\`: NS -> microvisor -> NS), the baseline | $call |
| semaphore give + take, no switch | $sem |
| ping-pong between two threads (2 switches a round; $sw switches in 20000 rounds) | $pp |
| one context switch (PendSV save/pick/restore), (ping-pong - semaphore pair) / 2 | $switch |

A context switch costs ${ratio}x a keel_* call here. QEMU makes exception entry and return dear
(each leaves its translated-code loop); the switch path itself is 18 instructions of PendSV_Handler
plus kos_switch_pick's walk over the threads.
EOF2
echo "bench-apps: keel call ${call} ns, switch ${switch} ns (${ratio}x); section written to $out"
kq_finish
