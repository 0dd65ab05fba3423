#!/usr/bin/env bash
# make demo: a local fleet in one command. `keel up` starts Mosquitto (TLS), keeld and three
# emulated devices (QEMU + Keel microvisor + the hello app); the keel CLI lists, pings and reads
# their logs; a fourth device runs the crashy fault zoo, and the microvisor keeps answering pings
# while its app crashes over and over; `keel down` stops everything. Every step is bounded.
set -euo pipefail

build=${1:?usage: demo.sh BUILD_DIR}
keel=$build/host/tools/keel/keel
crashy=$build/fw/apps/crashy/crashy.elf
state=$build/demo/stack
bold=$(tput bold 2>/dev/null || true); plain=$(tput sgr0 2>/dev/null || true)
crashy_pid=""

say() { # LINE...: a step's title, then its explanation
    printf '\n%s==> %s%s\n' "$bold" "$1" "$plain"
    shift
    [ $# -eq 0 ] || printf '    %s\n' "$@"
}
run() { printf '%s$ keel %s%s\n' "$bold" "$*" "$plain"; timeout 60 "$keel" "$@"; }

stop() {
    if [ -n "$crashy_pid" ]; then
        kill -TERM "$crashy_pid" 2>/dev/null || true
        wait "$crashy_pid" 2>/dev/null || true
    fi
    timeout 60 "$keel" down --state "$state" >/dev/null 2>&1 || true
}
trap stop EXIT

# Every demo starts from nothing: a stack left running by an interrupted demo is stopped, and its
# state (certificates, database, devices) removed.
timeout 60 "$keel" down --state "$state" >/dev/null 2>&1 || true
rm -rf "$state"
export KEEL_CONFIG=$state/config

say "A local fleet in one command" \
    "A CA and certificates (first run), Mosquitto with TLS, keeld with SQLite, and three emulated" \
    "devices (QEMU + microvisor + hello), each provisioned from the fleet CA. Returns once all are online."
run up --devices 3 --state "$state"

say "The registry" "Filled from each device's hello: versions, app state, restarts."
run devices

say "Commands" "A ping goes keel -> keeld -> broker -> the device's microvisor, and the answer comes back."
for d in dev-1 dev-2 dev-3; do run ping "$d"; done

say "Logs" \
    "keel logs -f follows what keeld stores, live (3 s here). Emulated devices do not upload their" \
    "logs yet (the device side of log and crash upload is still to come): their consoles have them."
printf '%s$ keel logs -f%s\n' "$bold" "$plain"
timeout 3 "$keel" logs -f || true
grep -m 3 '^\[app\]' "$state/devices/dev-1/console.log" | sed "s|^|devices/dev-1/console.log: |" || true

say "A crashing app" \
    "A fourth device joins, running the 'crashy' app told to read a null pointer at every start:" \
    "the microvisor catches each fault, reports it and restarts the app with growing back-off."
port=$(awk '/^listener/ {print $2}' "$state/mosquitto.conf")
for _ in $(seq 30); do echo null; done >"$state/crashy-modes.txt"
printf '%s$ keel device run --state %s --id dev-4 --install crashy.elf --broker %s --fleet-ca ... &%s\n' \
    "$bold" "$state/devices/dev-4" "$port" "$plain"
timeout --kill-after=5 120 "$keel" device run --state "$state/devices/dev-4" --id dev-4 \
    --install "$crashy" --broker "$port" --fleet-ca "$state/ca.pem" --fleet-ca-key "$state/ca.key" \
    --backoff-min 500 --backoff-max 2000 <"$state/crashy-modes.txt" >"$state/crashy-console.log" 2>&1 &
crashy_pid=$!
crashes() { [ "$(grep -c '^\[keel\] app stopped: ' "$state/crashy-console.log")" -ge "$1" ]; }
for _ in $(seq 300); do crashes 3 && break; sleep 0.1; done
crashes 3 || { echo "demo: crashy did not crash as expected; its console:"; tail -20 "$state/crashy-console.log"; exit 1; }
# The first crash report on its console: the fault, where it happened, the registers.
awk '/^\[keel\]   app stopped:/ {p = 1} p {print} p && /SFSR/ {exit}' "$state/crashy-console.log"
grep -m 2 '^\[keel\] app restart' "$state/crashy-console.log" || true

say "Still reachable" "Its app is down more than up, yet the device answers: the microvisor owns the network."
run ping dev-4
run devices

say "One command to stop" \
    "dev-4 was started by hand, so it is stopped by hand; keel down stops the rest: the devices" \
    "it started (QEMU and all), keeld and Mosquitto."
kill -TERM "$crashy_pid" 2>/dev/null || true
wait "$crashy_pid" 2>/dev/null || true
crashy_pid=""
run down --state "$state"
trap - EXIT

say "Where to look next:"
keel=${keel#"$PWD"/}; state=${state#"$PWD"/}
printf '  %-46s  %s\n' \
    "$keel up --state $state" "your own local fleet (2 devices; keel down to stop)" \
    "$state/devices/dev-1/console.log" "a device's console: microvisor and app" \
    "$state/crashy-console.log" "dev-4's crash reports, in full" \
    "$keel --help" "every command (docs/cli.md)" \
    "README.md, 'Run a local fleet'" "the tour" \
    "docs/device-api.md" "write your own app against keel.h"
