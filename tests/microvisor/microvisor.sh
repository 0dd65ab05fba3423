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
# run_until SECONDS CHECK [keel flags...]: run the device (console in $out) until CHECK holds
# (polled every 0.1 s), QEMU ends by itself (a power cut) or SECONDS pass, then stop it; its exit
# status in $rc. The device runs for as long as it takes to show the evidence, never for a fixed
# window: on a loaded machine QEMU gets a fraction of a core and boots late, so "N heartbeats in
# 2 s" would be a statement about the machine, not about the microvisor.
run_until() {
    local s=$1 check=$2 i pid; shift 2
    : >"$out" # truncated here, not by the background job (CHECK must never see the last run's)
    timeout $((s + 30)) "$keel" device run --state "$state" --firmware "$fw" --seconds "$s" "$@" \
        </dev/null >>"$out" 2>&1 &
    pid=$!
    for ((i = 0; i < s * 10; i++)); do
        # (not kill -0: an exited child stays a zombie until `wait`)
        [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" =~ ^[^ZX]$ ]] || break
        $check && break
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null # keel stops QEMU and exits 0 ("device stopped")
    wait "$pid"
    rc=$?
}
has() { grep -q -- "$1" "$out" || fail "no line matching '$1'"; }
count() { grep -c -- "$1" "$out"; }
# Conditions for run_until.
heartbeats3() { [ "$(count 'heartbeat up=')" -ge 3 ]; }
selftest_done() { grep -q "flash self-test:" "$out"; }
tick_after_reset() { grep -A100 "reset: watchdog" "$out" | grep -q "^app| hello: tick"; }
never() { false; }
# flip BYTE_OFFSET: corrupt one byte of the internal flash (offset 0 of the store file, store.h).
flip() {
    local b
    b=$(od -An -tu1 -j "$1" -N1 "$state/store.bin" | tr -d ' ')
    printf "$(printf '\\%03o' $(( (b ^ 0x5A) & 0xFF )))" |
        dd of="$state/store.bin" bs=1 seek="$1" conv=notrunc status=none
}

case $case_ in
no-app)
    run_until 60 heartbeats3 --append heartbeat=200
    has "no app installed"
    [ "$(count 'heartbeat up=')" -ge 3 ] || fail "the microvisor stopped running without an app"
    ;;
corrupt-image)
    "$keel" device install --state "$state" "$hello" >/dev/null 2>&1 || fail "install failed"
    flip $((0x2000 + 200))
    run_until 60 heartbeats3 --append heartbeat=200
    has "does not verify"
    grep -q "^app| hello" "$out" && fail "a corrupt image was started"
    [ "$(count 'heartbeat up=')" -ge 3 ] || fail "the microvisor stopped running"
    ;;
corrupt-header)
    "$keel" device install --state "$state" "$hello" >/dev/null 2>&1 || fail "install failed"
    flip 20
    run_until 60 heartbeats3 --append heartbeat=200
    has "installed app header is invalid"
    [ "$(count 'heartbeat up=')" -ge 3 ] || fail "the microvisor stopped running"
    ;;
secure-watchdog)
    "$keel" device install --state "$state" "$hello" >/dev/null 2>&1 || fail "install failed"
    run_until 60 tick_after_reset --append "uv-hang heartbeat=500"
    has "microvisor hangs now"
    has "reset: watchdog (microvisor stalled)"
    has "the watchdog found the microvisor stalled at pc=0x1"
    [ "$(count 'app started')" -ge 2 ] || fail "the app was not started again after the reset"
    grep -A100 "reset: watchdog" "$out" | grep -q "^app| hello: tick" || fail "hello does not run after the reset"
    ;;
flash-selftest)
    run_until 60 selftest_done --append flash-selftest
    has "flash self-test: ok"
    ;;
powercut)
    # QEMU ends by itself when the supply fails (exit 86); 60 s bound.
    run_until 60 never --powercut 2 --append flash-selftest
    [ "$rc" -eq 86 ] || fail "expected exit status 86 (power cut), got $rc"
    has "power cut (fault injection)"
    grep -q "app started" "$out" && fail "the device went on after the power cut"
    run_until 60 selftest_done --append flash-selftest
    has "flash self-test: ok"
    ;;
*)
    echo "unknown case $case_"; exit 2 ;;
esac
echo "PASS ($case_)"
