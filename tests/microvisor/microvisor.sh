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
    # keel stops QEMU and exits 0 ("device stopped"). The signal goes to keel itself, not through
    # timeout, which would follow it with a SIGCONT (docs/development.md, "Tests on a busy machine").
    local k
    k=$(pgrep -P "$pid" | head -n 1)
    kill -TERM "${k:-$pid}" 2>/dev/null
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
console-input-flood)
    # Console input nobody reads (no app; QEMU stops taking UART0's bytes once the UART holds one)
    # must not stop keel: with endless input on stdin, keel still relays the console, acts on
    # SIGTERM and exits 0. (keel's send to the UART used to block: no console, no stop.)
    : >"$out"
    yes 'console input that nobody reads' | "$keel" device run --state "$state" --firmware "$fw" \
        --seconds 100 --append heartbeat=200 >>"$out" 2>&1 &
    pid=$!
    for _ in $(seq 600); do heartbeats3 && break; sleep 0.1; done
    heartbeats3 || { kill -KILL "$pid"; fail "no heartbeats while stdin floods the console"; }
    kill -TERM "$pid"
    running() { [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" =~ ^[^ZX]$ ]]; } # not a zombie
    for _ in $(seq 150); do running || break; sleep 0.1; done
    running && { kill -KILL "$pid"; fail "keel did not stop within 15 s of SIGTERM"; }
    wait "$pid"
    rc=$?
    [ "$rc" = 0 ] || fail "keel exited with $rc after SIGTERM"
    has "device stopped"
    ;;
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
console-slow-host)
    # The microvisor's console never waits for the host and never cuts a line. keel (the reader)
    # is stopped: QEMU's UART then holds TXFULL and lines queue in secure RAM. A short stop
    # (~50 heartbeat lines, under the 8 KiB buffer) loses nothing; a long one loses whole lines
    # only, and the microvisor counts and reports them. Heartbeats are numbered (n=), so every
    # loss shows as a gap, and the gaps must add up to what the microvisor reported.
    : >"$out"
    # keel itself is the job (it is what gets stopped); --seconds bounds it.
    "$keel" device run --state "$state" --firmware "$fw" --seconds 100 \
        --append heartbeat=10 </dev/null >>"$out" 2>&1 &
    pid=$!
    trap 'kill -CONT "$pid" 2>/dev/null; kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
    last_n() { sed -n 's/^\[keel\] heartbeat .* n=\([0-9]*\)$/\1/p' "$out" | tail -n 1; }
    n_at_least() { local n; n=$(last_n); [ -n "$n" ] && [ "$n" -ge "$1" ]; }
    for _ in $(seq 600); do n_at_least 20 && break; sleep 0.1; done
    n_at_least 20 || fail "no 20 heartbeats"
    short_from=$(last_n)
    kill -STOP "$pid"; sleep 0.5; kill -CONT "$pid"
    for _ in $(seq 600); do n_at_least $((short_from + 100)) && break; sleep 0.1; done
    n_at_least $((short_from + 100)) || fail "heartbeats stopped after the short stop"
    grep -q "console: .* lost" "$out" && fail "lines lost over a short stop of the reader"
    short_to=$(last_n)
    for _ in 1 2 3 4 5; do
        kill -STOP "$pid"; sleep 4; kill -CONT "$pid"
        for _ in $(seq 100); do grep -q "console: .* lost" "$out" && break; sleep 0.1; done
        grep -q "console: .* lost" "$out" && break
    done
    grep -q "console: .* lost" "$out" || fail "five 4 s stops of the reader never overflowed the console buffer"
    after=$(($(last_n) + 20)) # a few whole lines after the report
    for _ in $(seq 300); do n_at_least "$after" && break; sleep 0.1; done
    kill -TERM "$pid"; wait "$pid"
    # Every line whole: heartbeats exactly as printed, nothing spliced into anything. The one line
    # the device was writing when keel stopped QEMU may end early (right before "device stopped").
    stop_line=$(grep -n '^device stopped$' "$out" | head -n1 | cut -d: -f1)
    bad=$(grep -n '' "$out" | grep -vE '^[0-9]+:(\[keel\] [^[]*|provisioned device .*|device stopped)$' |
        grep -vE "^$((${stop_line:-0} - 1)):\[?k?e?e?l?\]? ?[^[]*$" | head -n 3)
    [ -z "$bad" ] || fail "cut or spliced console lines: $bad"
    bad=$(grep '^\[keel\] heartbeat' "$out" | grep -vE '^\[keel\] heartbeat up=[0-9]+ms ticks=[0-9]+ restarts=0 n=[0-9]+$' | head -n 3)
    [ -z "$bad" ] || fail "damaged heartbeat lines: $bad"
    lost=$(sed -n 's/^\[keel\] console: \([0-9]*\) line(s) lost.*/\1/p' "$out" | awk '{ s += $1 } END { print s + 0 }')
    gaps=$(sed -n 's/^\[keel\] heartbeat .* n=\([0-9]*\)$/\1/p' "$out" |
        awk -v a="$short_from" -v b="$short_to" 'NR > 1 && $1 != p + 1 { g += $1 - p - 1; if (p >= a && p < b) s = 1 }
             { p = $1 } END { print g + 0, s + 0 }')
    [ "${gaps#* }" = 0 ] || fail "a heartbeat is missing between n=$short_from and n=$short_to (short stop)"
    [ "${gaps% *}" -gt 0 ] && [ "${gaps% *}" -eq "$lost" ] ||
        fail "heartbeats missing: ${gaps% *}, reported lost: $lost"
    ;;
sandbox)
    # QEMU runs in a bubblewrap sandbox: its own network namespace (no host network), /usr
    # read-only, the state directory the only writable place, nothing else of the host. Seen from
    # outside through /proc/PID of the running QEMU.
    echo "stack secret" >"$tmp/ca.key" # a neighbour of the state dir, as in keel up's tree
    : >"$out"
    "$keel" device run --state "$state" --firmware "$fw" --seconds 100 --append heartbeat=200 \
        </dev/null >>"$out" 2>&1 &
    pid=$!
    trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
    for _ in $(seq 600); do heartbeats3 && break; sleep 0.1; done
    heartbeats3 || fail "the device did not run"
    qemu=""
    for p in $(pgrep -P "$pid"); do # keel -> bwrap -> bwrap (the sandbox's init) -> QEMU
        for c in $(pgrep -P "$p") $(pgrep -P "$(pgrep -P "$p" | head -n 1)" 2>/dev/null); do
            [ "$(cat "/proc/$c/comm" 2>/dev/null)" = qemu-system-arm ] && qemu=$c
        done
    done
    [ -n "$qemu" ] || { kill -TERM "$pid"; wait "$pid"; fail "no QEMU under keel's sandbox ($(pgrep -a -P "$pid"))"; }
    root=/proc/$qemu/root
    [ "$(readlink "/proc/$qemu/ns/net")" != "$(readlink /proc/self/ns/net)" ] || fail "QEMU shares the host's network"
    [ "$(readlink "/proc/$qemu/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] || fail "QEMU shares the host's mounts"
    top=$(ls "$root" | tr '\n' ' ')
    [ -d "$root/usr/bin" ] && [ -e "$root$state/store.bin" ] && [ -e "$root$fw" ] ||
        fail "the sandbox lacks /usr, the state or the firmware (top: $top)"
    [ ! -e "$root/etc/passwd" ] && [ ! -e "$root$tmp/ca.key" ] && [ ! -e "$root/root" ] &&
        [ "$(ls "$root$tmp")" = state ] && [ "$(ls "$root$(dirname "$fw")")" = "$(basename "$fw")" ] ||
        fail "host files visible in the sandbox (top: $top; beside the state: $(ls "$root$tmp"))"
    awk '$5 == "/usr" { print $6 }' "/proc/$qemu/mountinfo" | grep -q '^ro' || fail "/usr is writable in the sandbox"
    awk -v s="$state" '$5 == s { print $6 }' "/proc/$qemu/mountinfo" | grep -q '^rw' || fail "the state dir is not writable"
    # Writable and backed by host storage (not the sandbox's own tmpfs, proc or device nodes):
    # the state dir alone.
    writable=$(awk '{ t = ""; for (i = 7; i <= NF; i++) if ($i == "-") t = $(i + 1) }
        $6 ~ /^rw/ && t !~ /^(tmpfs|proc|devtmpfs|devpts)$/ { print $5 }' "/proc/$qemu/mountinfo")
    [ "$writable" = "$state" ] || fail "writable host mounts in the sandbox: $writable"
    kill -TERM "$pid"; wait "$pid"
    [ "$(count 'heartbeat up=')" -ge 3 ] || fail "no heartbeats"
    ;;
*)
    echo "unknown case $case_"; exit 2 ;;
esac
echo "PASS ($case_)"
