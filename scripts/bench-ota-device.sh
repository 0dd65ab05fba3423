#!/usr/bin/env bash
# OTA figures measured on the emulated device (issue 6): bytes the device fetched, app downtime
# (the old app's last instruction -> the new app's main) and apply time, against the time to copy
# the same pages raw on the same device. A real device in QEMU, a real Mosquitto TLS broker, the
# test update server tests/ota/ota_srv (protocol v1) and bundles from `keel bundle build`.
# Usage: scripts/bench-ota-device.sh [BUILD_DIR]   (default: build)
# Writes the "## OTA on the device (issue 6)" section of bench/results.md and prints it; with
# BENCH_OTA_FIGURES=FILE it writes the raw figures (key=value lines) to FILE instead (another
# bench compares builds with them: scripts/bench-store.sh).
#
# Where the times come from (all the device's own uptime clock, µs):
#   downtime  "update: app stopped for the update at T0" (the supervisor has just abandoned the
#             old app: its last instruction ran within microseconds before) -> "ota: main at T1"
#             (the new app's first statement reads keel_time_get_us)
#   apply     "update: applied in X ms" (upd_apply: saves, journal records, writes, verification)
#   raw copy  boot word upd-bench-raw=N: N pages read from QSPI, erased and programmed into a
#             scratch area of the same internal flash, without journal, saves or checks
# QEMU's file-backed store makes absolute times those of this host, not of silicon; the ratios
# are the point.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
keel=$build/host/tools/keel/keel srv=$build/host/tests/ota/ota_srv
fw=$build/fw/microvisor/keel-microvisor.elf apps=$build/fw/apps/ota
for f in "$keel" "$srv" "$fw" "$apps/ota.elf" "$apps/ota-big.elf" "$apps/ota-big2.elf"; do
    [ -f "$f" ] || { echo "bench-ota-device: $f not found: run 'make' first" >&2; exit 1; }
done
W=$(mktemp -d "${TMPDIR:-/tmp}/keel-bench-ota.XXXXXX") || exit 1
. "$root/tests/net/procs.sh"
trap 'stop_pids; rm -rf "$W"' EXIT
die() { echo "bench-ota-device: $*" >&2; tail -n 40 "$W/console.txt" >&2 2>/dev/null; exit 1; }

bash "$root/scripts/stack.sh" certs "$W" broker keeld >/dev/null || die "certificates failed"
PORT=$(free_port)
bash "$root/scripts/stack.sh" broker-conf "$W" "$PORT" || die "broker configuration failed"
broker_start "$W" "$PORT" || die "mosquitto did not start"

"$keel" keys new fleet --dir "$W/keys" >/dev/null || die "keel keys new failed"
bundle() { "$keel" bundle build "$apps/$2.elf" --version "$3" --counter 1 --key "$W/keys/fleet.key" \
    -o "$W/$1.kb" >/dev/null || die "keel bundle build $1 failed"; }
bundle v1 ota 1.0.0
bundle v2 ota-big 2.0.0
bundle v3 ota-big2 2.0.1
STATE=$W/state
"$keel" device provision --state "$STATE" --id bench-1 --fleet-ca "$W/ca.pem" --fleet-ca-key "$W/ca.key" \
    --update-key "$W/keys/fleet.pub" >/dev/null || die "provisioning failed"
"$keel" device install --state "$STATE" "$W/v1.kb" >/dev/null || die "installing v1 failed"

console_has() { grep -qE -- "$1" "$W/console.txt"; }
srv_has() { grep -qE -- "$1" "$W/srv.txt"; }
# run_update NAME DEP: the device runs until the server hears NAME installed (forced apply).
run_update() {
    : >"$W/console.txt"; : >"$W/srv.txt"
    timeout 200 "$srv" --port "$PORT" --ca "$W/ca.pem" --cert "$W/keeld.pem" --key "$W/keeld.key" \
        --device bench-1 --bundle "$W/$1.kb" --deployment "$2" --force --seconds 180 >>"$W/srv.txt" 2>&1 &
    local sp=$!
    PIDS+=("$sp")
    timeout 200 "$keel" device run --state "$STATE" --firmware "$fw" --seconds 180 --broker "$PORT" \
        --append net-heartbeat=60000 </dev/null >>"$W/console.txt" 2>&1 &
    local dp=$!
    PIDS+=("$dp")
    wait_for 150 srv_has "status dep=$2 state=0 result=1 " || die "$1 did not install"
    kill -TERM "$dp" "$sp"; wait "$dp" "$sp" 2>/dev/null
}
us_of() { awk -v s="$1" 'BEGIN { split(s, a, "."); printf "%d", a[1] * 1000000 + a[2] }'; }
declare -A R
# measure KEY NAME DEP: one update and its figures, in R[KEY,...]
measure() {
    local k=$1; shift
    run_update "$1" "$2"
    local size served blocks stop main applied pages
    size=$(stat -c %s "$W/$1.kb")
    served=$(grep -oE 'served=[0-9]+' "$W/srv.txt" | tail -n 1 | cut -d= -f2)
    blocks=$(sed -n 's/.*: \([0-9]*\) of 129 blocks to fetch.*/\1/p' "$W/console.txt" | tail -n 1)
    R[$k,size]=$size R[$k,served]=${served:-0} R[$k,blocks]=${blocks:-0}
    if console_has 'already installed'; then
        R[$k,blocks]=0
        return
    fi
    stop=$(sed -n 's/.*app stopped for the update at \([0-9.]*\) s.*/\1/p' "$W/console.txt" | tail -n 1)
    main=$(sed -n 's/^app| ota: main at \([0-9]*\) us.*/\1/p' "$W/console.txt" | tail -n 1)
    applied=$(sed -n 's/.*update: applied in \([0-9.]*\) ms.*/\1/p' "$W/console.txt" | tail -n 1)
    pages=$(sed -n 's/.*update: applied in .* ms: \([0-9]*\) page(s) erased, \([0-9]*\) programmed.*/\1 \2/p' "$W/console.txt" | tail -n 1)
    [ -n "$stop" ] && [ -n "$main" ] && [ -n "$applied" ] || die "$1: no apply figures in the console"
    R[$k,down]=$(awk -v a="$(us_of "$stop")" -v b="$main" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
    started=$(sed -n 's/.*app started (device uptime \([0-9.]*\) s).*/\1/p' "$W/console.txt" | tail -n 1)
    R[$k,load]=$(awk -v a="$(us_of "$stop")" -v b="$(us_of "$started")" -v p="$applied" \
        'BEGIN { printf "%.1f", (b - a) / 1000 - p }')
    R[$k,apply]=$applied
    R[$k,pages]=${pages%% *}
    R[$k,progs]=${pages##* }
}
raw_copy() { # PAGES -> ms
    : >"$W/console.txt"
    timeout 60 "$keel" device run --state "$STATE" --firmware "$fw" --seconds 3 \
        --append "upd-bench-raw=$1" </dev/null >"$W/console.txt" 2>&1
    sed -n 's/.*raw copy of [0-9]* page(s) .* took \([0-9.]*\) ms, ok.*/\1/p' "$W/console.txt" | head -n 1
}

measure v2 v2 1     # a whole new app: 3 KiB app -> ~200 KiB app
measure same v2 2   # the same bundle again (a new deployment of what is installed)
measure v3 v3 3     # a one-function change in the ~200 KiB app
image=$(( $(stat -c %s "$W/v2.kb") ))
raw_v2=$(raw_copy "${R[v2,pages]}") raw_v3=$(raw_copy "${R[v3,pages]}")
[ -n "$raw_v2" ] && [ -n "$raw_v3" ] || die "no raw copy figure"

if [ -n "${BENCH_OTA_FIGURES:-}" ]; then
    for k in "${!R[@]}"; do echo "$k=${R[$k]}"; done >"$BENCH_OTA_FIGURES"
    echo "raw_v2=$raw_v2" >>"$BENCH_OTA_FIGURES"
    echo "raw_v3=$raw_v3" >>"$BENCH_OTA_FIGURES"
    exit 0
fi

section=$(cat <<EOF
## OTA on the device (issue 6)

Measured $(date -u +%Y-%m-%d) by \`scripts/bench-ota-device.sh\`: a device in QEMU (microvisor + the
\`ota\` app) updated over a real Mosquitto TLS broker by \`tests/ota/ota_srv\` (protocol v1 pull:
manifest, then only the blocks whose hash differs from the device's page), bundles from
\`keel bundle build\`, applied by the cloud's force as soon as staged. Times are the device's
uptime clock; flash is a file-backed RAM, so absolute times are this host's, the ratios are the
point. Raw copy = the same number of pages read from QSPI, erased and programmed on the same
internal flash with no journal, no saved old pages, no sealing or verification.

| update | bundle bytes | device fetched (bytes / blocks of 129) | app pages erased / programmed | apply | raw copy of those pages | app downtime (last instruction -> new \`main\`) | of which: load + verify image, start |
|---|---|---|---|---|---|---|---|
| whole new app (3 KiB -> 200 KiB) | $image | ${R[v2,served]} / ${R[v2,blocks]} | ${R[v2,pages]} / ${R[v2,progs]} | ${R[v2,apply]} ms | $raw_v2 ms (${R[v2,pages]} pages) | ${R[v2,down]} ms | ${R[v2,load]} ms |
| one-function change in the 200 KiB app | $(stat -c %s "$W/v3.kb") | ${R[v3,served]} / ${R[v3,blocks]} | ${R[v3,pages]} / ${R[v3,progs]} | ${R[v3,apply]} ms | $raw_v3 ms (${R[v3,pages]} pages) | ${R[v3,down]} ms | ${R[v3,load]} ms |
| the same bundle again | $image | ${R[same,served]} (manifest only) / ${R[same,blocks]} | 0 / 0 | - | - | none (not applied) | - |

Downtime = apply + re-reading the header + copying and hashing the new image into the app's code
RAM + the app's reset path. Most of an apply that writes few pages is its two whole-region
SHA-256 measurements (the old region before, $((R[v2,blocks] * 8)) KiB, the new one after), which the raw copy
does not do; that is the price of "old image or new image, verified, nothing in between". The whole-new-app bundle carries the full
image as payload (the device fetched only the blocks that differ from its current pages; the
header page and every page of the new image).
EOF
)
bash "$root/scripts/write-bench-section.sh" "$root/bench/results.md" <<<"$section"
echo "$section"
