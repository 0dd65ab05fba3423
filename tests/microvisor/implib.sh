#!/usr/bin/env bash
# The SDK's veneer import library is the app ABI: every entry point it lists must sit at the same
# address in the import library the microvisor build just produced (--in-implib keeps them).
# usage: implib.sh SDK_IMPLIB BUILD_IMPLIB
set -euo pipefail
sdk=$1 built=$2
list() { arm-none-eabi-nm "$1" | awk '$2 == "A" || $2 == "T" {print $3, $1}' | sort; }
sdk_syms=$(list "$sdk")
[ -n "$sdk_syms" ] || { echo "FAIL: no entry points in $sdk"; exit 1; }
missing=$(join -v1 <(echo "$sdk_syms") <(list "$built") || true)
moved=$(join <(echo "$sdk_syms") <(list "$built") | awk '$2 != $3' || true)
[ -z "$missing" ] || { echo "FAIL: entry points gone from the microvisor: $missing"; exit 1; }
[ -z "$moved" ] || { echo "FAIL: entry points moved (name sdk built): $moved"; exit 1; }
new=$(join -v2 <(echo "$sdk_syms") <(list "$built") | awk '{print $1}' || true)
[ -z "$new" ] || echo "note: new entry points not in the SDK yet (copy the build's keel_veneers.o into firmware/sdk/lib/): $new"
echo "PASS: $(echo "$sdk_syms" | wc -l) entry points at their SDK addresses"
