#!/usr/bin/env bash
# Microvisor integration tests on QEMU: what the microvisor does on its own, whatever the app.
# usage: microvisor.sh CASE KEEL FIRMWARE HELLO_ELF
set -uo pipefail
case_=$1 keel=$2 fw=$3 hello=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
state=$tmp/state
out=$tmp/console.txt

fail() {
    echo "FAIL ($case_): $*"
    echo "---- console ----"; cat "$out" 2>/dev/null
    exit 1
}
# run SECONDS [keel flags...]: run the device, console in $out, exit status in $rc.
run() {
    local s=$1; shift
    timeout $((s + 30)) "$keel" device run --state "$state" --firmware "$fw" --seconds "$s" "$@" \
        </dev/null >"$out" 2>&1
    rc=$?
}
has() { grep -q -- "$1" "$out" || fail "no line matching '$1'"; }
count() { grep -c -- "$1" "$out"; }
# flip BYTE_OFFSET: corrupt one byte of the internal flash file.
flip() {
    local b
    b=$(od -An -tu1 -j "$1" -N1 "$state/flash_int.bin" | tr -d ' ')
    printf "$(printf '\\%03o' $(( (b ^ 0x5A) & 0xFF )))" |
        dd of="$state/flash_int.bin" bs=1 seek="$1" conv=notrunc status=none
}

case $case_ in
no-app)
    run 2 --append heartbeat=200
    has "no app installed"
    [ "$(count 'heartbeat up=')" -ge 3 ] || fail "the microvisor stopped running without an app"
    ;;
corrupt-image)
    "$keel" device install --state "$state" "$hello" >/dev/null 2>&1 || fail "install failed"
    flip $((0x2000 + 200))
    run 2 --append heartbeat=200
    has "does not verify"
    grep -q "^app| hello" "$out" && fail "a corrupt image was started"
    [ "$(count 'heartbeat up=')" -ge 3 ] || fail "the microvisor stopped running"
    ;;
corrupt-header)
    "$keel" device install --state "$state" "$hello" >/dev/null 2>&1 || fail "install failed"
    flip 20
    run 2 --append heartbeat=200
    has "installed app header is invalid"
    [ "$(count 'heartbeat up=')" -ge 3 ] || fail "the microvisor stopped running"
    ;;
secure-watchdog)
    "$keel" device install --state "$state" "$hello" >/dev/null 2>&1 || fail "install failed"
    run 5 --append "uv-hang heartbeat=500"
    has "microvisor hangs now"
    has "reset: watchdog (microvisor stalled)"
    has "the watchdog found the microvisor stalled at pc=0x1"
    [ "$(count 'app started')" -ge 2 ] || fail "the app was not started again after the reset"
    grep -A100 "reset: watchdog" "$out" | grep -q "^app| hello: tick" || fail "hello does not run after the reset"
    ;;
flash-selftest)
    run 1 --append flash-selftest
    has "flash self-test: ok"
    ;;
powercut)
    run 2 --powercut 2 --append flash-selftest
    [ "$rc" -eq 86 ] || fail "expected exit status 86 (power cut), got $rc"
    has "power cut (fault injection)"
    grep -q "app started" "$out" && fail "the device went on after the power cut"
    run 1 --append flash-selftest
    has "flash self-test: ok"
    ;;
*)
    echo "unknown case $case_"; exit 2 ;;
esac
echo "PASS ($case_)"
