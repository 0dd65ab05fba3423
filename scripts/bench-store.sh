#!/usr/bin/env bash
# The emulated device's persistent store and sandbox (issue 12): the memory-mapped store (a host
# file QEMU maps as the board's PSRAM, semihosting off) against the semihosting flash files it
# replaced, and QEMU in its bubblewrap sandbox against QEMU without one, measured in the same run.
# The baselines are trees exported from git and built in a temp dir against the same third-party
# sources: KEEL_BENCH_BASE (default: the parent of the commit that removed
# firmware/platform/an505/flash_semihost.c) and KEEL_BENCH_NOSANDBOX (default: the parent of the
# commit that added scripts/packages/sandbox.txt).
# Usage: scripts/bench-store.sh [BUILD_DIR]   (default: build)
# Writes the "## Persistent store and sandbox (issue 12)" section of bench/results.md and prints it.
#
# Figures, each the median of BENCH_STORE_RUNS boots (default 5, old and new interleaved):
#   app main    keel started -> the app's first console line ("app| ota: main", host clock), and
#               the device's own "app started (device uptime ...)"
#   connected   keel started -> "net: connected" (host clock), and its "... ms after boot"
#   OTA apply   scripts/bench-ota-device.sh run against each build (BENCH_OTA_FIGURES)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
runs=${BENCH_STORE_RUNS:-5}
W=$(mktemp -d "${TMPDIR:-/tmp}/keel-bench-store.XXXXXX") || exit 1
. "$root/tests/net/procs.sh"
trap 'stop_pids; rm -rf "$W"' EXIT
die() { echo "bench-store: $*" >&2; exit 1; }

new_keel=$build/host/tools/keel/keel new_fw=$build/fw/microvisor/keel-microvisor.elf
for f in "$new_keel" "$new_fw" "$build/fw/apps/ota/ota.elf"; do
    [ -f "$f" ] || die "$f not found: run 'make' first"
done

# ---- the baseline builds ----
# parent_of PATH: the parent of the last commit that touched PATH (added or removed it).
parent_of() {
    local c
    c=$(git -C "$root" rev-list -1 HEAD -- "$1") && [ -n "$c" ] ||
        die "no git history to find a baseline in (set KEEL_BENCH_BASE and KEEL_BENCH_NOSANDBOX)"
    echo "$c^"
}
# build_tree REV NAME: the tree of REV built in $W/NAME (firmware, keel, ota_srv).
build_tree() {
    mkdir -p "$W/$2"
    git -C "$root" archive "$1" | tar -x -C "$W/$2" || die "git archive $1 failed"
    {
        cmake -S "$W/$2/firmware" -B "$W/$2/build/fw" -DCMAKE_BUILD_TYPE=Release \
            -DCMAKE_TOOLCHAIN_FILE="$W/$2/cmake/arm-none-eabi.cmake" -DKEEL_THIRD_PARTY="$tp" &&
            cmake --build "$W/$2/build/fw" -j 2 &&
            cmake -S "$W/$2" -B "$W/$2/build/host" -DKEEL_FW_DIR="$W/$2/build/fw" \
                -DKEEL_THIRD_PARTY="$tp" -DCMAKE_BUILD_TYPE=Debug &&
            cmake --build "$W/$2/build/host" -j 2 --target keel ota_srv
    } >"$W/$2-build.log" 2>&1 || { tail -n 30 "$W/$2-build.log" >&2; die "building $1 failed"; }
}
tp=$build/third_party
base_rev=$(git -C "$root" rev-parse --short "${KEEL_BENCH_BASE:-$(parent_of firmware/platform/an505/flash_semihost.c)}") ||
    die "no baseline commit"
nosb_rev=$(git -C "$root" rev-parse --short "${KEEL_BENCH_NOSANDBOX:-$(parent_of scripts/packages/sandbox.txt)}") ||
    die "no baseline commit without the sandbox"
build_tree "$base_rev" base
build_tree "$nosb_rev" nosb
old_keel=$W/base/build/host/tools/keel/keel old_fw=$W/base/build/fw/microvisor/keel-microvisor.elf
nosb_keel=$W/nosb/build/host/tools/keel/keel nosb_fw=$W/nosb/build/fw/microvisor/keel-microvisor.elf

# ---- boot figures ----
bash "$root/scripts/stack.sh" certs "$W" broker keeld >/dev/null || die "certificates failed"
PORT=$(free_port)
bash "$root/scripts/stack.sh" broker-conf "$W" "$PORT" || die "broker configuration failed"
broker_start "$W" "$PORT" || die "mosquitto did not start"

# boot_once KEEL FW STATE: one boot until connected; prints "main_ms uptime_s connected_ms after_ms".
boot_once() {
    timeout 120 python3 - "$@" "$PORT" <<'EOF'
import re, signal, subprocess, sys, time
keel, fw, state, port = sys.argv[1:5]
t0 = time.monotonic()
p = subprocess.Popen([keel, "device", "run", "--state", state, "--firmware", fw, "--seconds", "90",
                      "--broker", port, "--append", "net-heartbeat=60000"],
                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
main = up = conn = after = None
for line in p.stdout:
    now = (time.monotonic() - t0) * 1000
    if main is None and line.startswith("app| ota: main"):
        main = now
    m = re.search(r"app started \(device uptime ([0-9.]+) s\)", line)
    if m and up is None:
        up = float(m.group(1))
    m = re.search(r"net: connected .* ([0-9]+) ms after boot", line)
    if m:
        conn, after = now, int(m.group(1))
        break
p.send_signal(signal.SIGTERM)
p.wait()
if None in (main, up, conn):
    sys.exit("no figures in the console")
print(f"{main:.0f} {up * 1000:.0f} {conn:.0f} {after}")
EOF
}

for which in old nosb new; do
    k=${which}_keel
    "${!k}" device provision --state "$W/$which" --id "bench-$which" --fleet-ca "$W/ca.pem" \
        --fleet-ca-key "$W/ca.key" >/dev/null || die "provisioning ($which) failed"
    "${!k}" device install --state "$W/$which" "$build/fw/apps/ota/ota.elf" >/dev/null ||
        die "installing ota ($which) failed"
done
for _ in $(seq "$runs"); do
    boot_once "$old_keel" "$old_fw" "$W/old" >>"$W/old.boot" || die "a baseline boot failed"
    boot_once "$nosb_keel" "$nosb_fw" "$W/nosb" >>"$W/nosb.boot" || die "a boot without sandbox failed"
    boot_once "$new_keel" "$new_fw" "$W/new" >>"$W/new.boot" || die "a boot failed"
done
stop_pids
PIDS=()

median() { # FILE COLUMN
    awk -v c="$2" '{ print $c }' "$1" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# ---- OTA apply figures ----
BENCH_OTA_FIGURES=$W/old.ota bash "$root/scripts/bench-ota-device.sh" "$W/base/build" >"$W/old.ota.log" 2>&1 ||
    { tail -n 20 "$W/old.ota.log" >&2; die "the OTA bench failed on the baseline"; }
BENCH_OTA_FIGURES=$W/new.ota bash "$root/scripts/bench-ota-device.sh" "$build" >"$W/new.ota.log" 2>&1 ||
    { tail -n 20 "$W/new.ota.log" >&2; die "the OTA bench failed"; }
fig() { sed -n "s/^$2=//p" "$W/$1.ota"; }

row() { # LABEL OLD NEW UNIT
    printf '| %s | %s %s | %s %s | %s |\n' "$1" "$2" "$4" "$3" "$4" "$(ratio "$3" "$2")"
}
rows=$(
    row "keel start -> app \`main\` (host clock)" "$(median "$W/old.boot" 1)" "$(median "$W/new.boot" 1)" ms
    row "boot -> app started (device clock)" "$(median "$W/old.boot" 2)" "$(median "$W/new.boot" 2)" ms
    row "keel start -> MQTT connected (host clock)" "$(median "$W/old.boot" 3)" "$(median "$W/new.boot" 3)" ms
    row "boot -> MQTT connected (device clock)" "$(median "$W/old.boot" 4)" "$(median "$W/new.boot" 4)" ms
    row "OTA apply, whole new app ($(fig new v2,pages) pages)" "$(fig old v2,apply)" "$(fig new v2,apply)" ms
    row "OTA app downtime, whole new app" "$(fig old v2,down)" "$(fig new v2,down)" ms
    row "OTA apply, one-function change ($(fig new v3,pages) pages)" "$(fig old v3,apply)" "$(fig new v3,apply)" ms
    row "OTA app downtime, one-function change" "$(fig old v3,down)" "$(fig new v3,down)" ms
    row "raw copy of 26 pages QSPI -> internal flash" "$(fig old raw_v2)" "$(fig new raw_v2)" ms
)

sbrows=$(
    row "keel start -> app \`main\` (host clock)" "$(median "$W/nosb.boot" 1)" "$(median "$W/new.boot" 1)" ms
    row "boot -> app started (device clock)" "$(median "$W/nosb.boot" 2)" "$(median "$W/new.boot" 2)" ms
    row "keel start -> MQTT connected (host clock)" "$(median "$W/nosb.boot" 3)" "$(median "$W/new.boot" 3)" ms
    row "boot -> MQTT connected (device clock)" "$(median "$W/nosb.boot" 4)" "$(median "$W/new.boot" 4)" ms
)

section=$(cat <<EOF
## Persistent store and sandbox (issue 12)

Measured $(date -u +%Y-%m-%d) by \`scripts/bench-store.sh\`: the same device (microvisor + the
\`ota\` app, a real Mosquitto TLS broker) with its flash as regions of a host file QEMU maps as the
board's PSRAM (semihosting off), against the semihosting flash files of the baseline
($base_rev, built from git in the same run). Boot figures are medians of $runs boots each,
interleaved; OTA figures are one run of \`scripts/bench-ota-device.sh\` against each build.
Ratio = store / semihosting (below 1: the store is faster).

| figure | semihosting files | memory-mapped store | ratio |
|---|---|---|---|
$rows

The host clock includes QEMU's start; the device clock starts at the microvisor's reset. The
store's reads and writes are \`memcpy\` in the guest (TCG, ~150 MB/s); semihosting paid a trap to
QEMU and a host system call per operation but copied on the host. Pure flash traffic (the raw
page copy) is 5x faster with the store, in every run so far. The apply and boot figures moved
either way between runs on the shared build machine (load average 7-16 during these runs; an
earlier run had the whole-app apply at 0.65x): an apply is dominated by two 1 MiB SHA-256 passes
computed in TCG plus reads through kflash, and the time to MQTT connected by DHCP and a TLS
handshake computed in TCG, which the store does not touch. Rerun on a quiet machine before
reading a trend into them.

The sandbox: the same boots of the store build without it ($nosb_rev) and with it (QEMU under
bubblewrap, no network of its own, the broker reached through a Unix socket joined to its port
by keel). Ratio = sandbox / no sandbox.

| figure | no sandbox | sandbox | ratio |
|---|---|---|---|
$sbrows
EOF
)
bash "$root/scripts/write-bench-section.sh" "$root/bench/results.md" <<<"$section"
echo "$section"
