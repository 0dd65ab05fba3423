#!/usr/bin/env bash
# make demo: one emulated Keel device, first running the `hello` app, then the `crashy` fault zoo
# whose failures the microvisor catches, reports and recovers from while it keeps running.
set -euo pipefail

build=${1:?usage: demo.sh BUILD_DIR}
keel=$build/host/tools/keel/keel
apps=$build/fw/apps
state=$build/demo/device
bold=$(tput bold 2>/dev/null || true); plain=$(tput sgr0 2>/dev/null || true)

say() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }

rm -rf "$state"
say "A device boots the Keel microvisor, which verifies and starts the 'hello' app (5 s)."
say "Microvisor lines start with [keel], the app's own UART with app|, its keel_log_write() with [app]."
timeout 60 "$keel" device run --state "$state" --install "$apps/hello/hello.elf" --app-version 1.0.0 \
    --seconds 5 </dev/null

say "Same device, now the 'crashy' app. Through its UART we make it: read a null pointer, write"
say "secure RAM, hang with interrupts masked, then behave. Watch the microvisor catch each failure,"
say "print a crash report, and restart the app with growing back-off, its own heartbeat unaffected."
printf 'null\nsecure-ram\nirqoff\nnone\n' |
    timeout 60 "$keel" device run --state "$state" --install "$apps/crashy/crashy.elf" --app-version 1.0.0 \
        --seconds 6 --append heartbeat=2000

say "Done. Try it yourself:"
keel=${keel#"$PWD"/}; apps=${apps#"$PWD"/}; state=${state#"$PWD"/}
cat <<EOF
  # boot the same device again (Ctrl-C stops it):
  $keel device run --state $state
  # install crashy, then type a mode: null, undef, divzero, storm, isr-hang, handler-fault, ...
  $keel device run --state $state --install $apps/crashy/crashy.elf
  # what is installed on it:
  $keel device info --state $state
  # write your own app against keel.h: docs/device-api.md
EOF
