#!/usr/bin/env bash
# The app debugger on QEMU: gdb-multiarch (batch) -> 127.0.0.1:PORT -> QEMU UART2 -> the
# microvisor's stub -> the parked dbgtarget app. One device per case, started by
# `keel device run --gdb-serial PORT`; gdb's output and the device console are both checked.
# usage: debug.sh CASE KEEL FIRMWARE DBGTARGET_ELF SRCDIR      (CASE: session | fault)
set -uo pipefail
case_=$1 keel=$2 fw=$3 elf=$4 src=$5
# shellcheck source=../qemu/lib.sh
. "$src/../qemu/lib.sh"
kq_setup "debug-$case_"
kq_need_file "the keel CLI" "$keel"
kq_need_file "the microvisor" "$fw"
kq_need_file "the dbgtarget app" "$elf"
command -v gdb-multiarch >/dev/null || kq_die "gdb-multiarch is not installed ('make deps' installs it)"

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
RAW=$KQ_TMP/raw.txt
mkdir -p "$KQ_TMP/state"
timeout --kill-after=5 130 "$keel" device run --state "$KQ_TMP/state" --install "$elf" --seconds 120 \
    --firmware "$fw" --gdb-serial "$PORT" --append heartbeat=200 </dev/null >"$RAW" 2>&1 &
DEV=$!
stop_device() {
    kill "$DEV" 2>/dev/null
    wait "$DEV" 2>/dev/null
    tr -d '\r' <"$RAW" >"$KQ_OUT"
}
trap 'stop_device; kq_cleanup' EXIT

# wait_console ERE N: until the console has N lines matching ERE (bounded: 15 s).
wait_console() {
    for _ in $(seq 150); do
        [ "$(tr -d '\r' <"$RAW" | grep -cE -- "$1")" -ge "$2" ] && return 0
        kill -0 "$DEV" 2>/dev/null || break
        sleep 0.1
    done
    kq_fail "the console never had $2 line(s) matching /$1/"
    return 1
}

# shellcheck source=lib_gdb.sh
. "$src/lib_gdb.sh"

wait_console '^app\| dbgtarget: alive' 1 || kq_die "dbgtarget did not start"

case $case_ in
session)
    run_gdb session.gdb session.out
    check_session
    run_gdb steps.gdb steps.out
    no_protocol_errors steps.out
    expect steps.out stepi-exc-return '^Breakpoint [0-9]+, 0x[0-9a-f]+ in IRQ4_Handler \(\)' "the breakpoint on the handler's return is hit"
    expect steps.out stepi-exc-return '^#0  (0x[0-9a-f]+ in )?(main|level[1-5]|misbehave) \(' "stepi over the exception return lands in the interrupted code"
    expect steps.out next-over-keel-call '^[0-9]+	 +if \(counter % DBG_ALIVE_EVERY' "next steps over a keel_* call (a BL into the microvisor)"
    expect steps.out stepi-veneer '^Breakpoint [0-9]+, 0x[0-9a-f]+ in __keel_watchdog_kick_veneer' "a breakpoint on the keel_* veneer is hit"
    expect steps.out stepi-veneer '^pc +0x[0-9a-f]+ +0x[0-9a-f]+ <main\+[0-9]+>' "stepi from the veneer's jump into the microvisor ends back in main"
    expect steps.out steps-detach '^\[Inferior 1 \(Remote target\) detached\]' "gdb detaches after the steps"
    # Until the app has logged on twice after the detach (the evidence checked below), bounded.
    alive_after_end() {
        tr -d '\r' <"$RAW" | awk '/debugger: session ended \(detach\)/ { on = 1 } on && /^app\| dbgtarget: alive/ { n++ }
            END { exit !(n >= 2) }'
    }
    for _ in $(seq 150); do alive_after_end && break; sleep 0.1; done
    stop_device
    kq_expect open '^\[keel\] debugger: session opened \(serial\)' "the session is opened on the console"
    kq_expect end '^\[keel\] debugger: session ended \(detach\), app resumed' "the session ends with the detach" "$open"
    kq_expect_none 'app stopped' "halts paused the app watchdog and the storm detector; no breakpoint was left behind"
    hb=$(kq_count_between '^\[keel\] heartbeat up=' "$open" "$end")
    [ "$hb" -ge 10 ] || kq_fail "only $hb microvisor heartbeats during the session (halted for over 3 s): the microvisor must keep running"
    alive=$(kq_count_between '^app\| dbgtarget: alive' "$end" 1000000)
    [ "$alive" -ge 2 ] || kq_fail "the app logged $alive line(s) after the detach: it must run on"
    ;;
fault)
    run_gdb fault.gdb fault.out
    no_protocol_errors fault.out
    expect fault.out sigbus '^Program received signal SIGBUS' "reading secure RAM stops with SIGBUS"
    expect fault.out sigbus '^#0 .*misbehave \(mode=1\)' "the stop is at the faulting line"
    expect fault.out detach '^\[Inferior 1 \(Remote target\) detached\]' "gdb detaches"
    wait_console '^\[keel\] app started' 2
    wait_console '^app\| dbgtarget: alive' 2
    run_gdb fault2.gdb fault2.out
    no_protocol_errors fault2.out
    expect fault2.out sigill '^\$1 = 0$' "the restarted app starts afresh (fault_mode 0)"
    expect fault2.out sigill '^Program received signal SIGILL' "an undefined instruction stops with SIGILL"
    expect fault2.out kill '^\[Inferior 1 \(Remote target\) killed\]' "gdb kills"
    wait_console '^\[keel\] app started' 3
    wait_console '^app\| dbgtarget: alive' 3
    run_gdb fault3.gdb fault3.out
    no_protocol_errors fault3.out
    expect fault3.out sigkill '^Program terminated with signal SIGKILL' "the app stopped by its watchdog while gdb waits: the process ended, for gdb"
    wait_console '^\[keel\] app started' 4
    wait_console '^app\| dbgtarget: alive' 4
    stop_device
    kq_expect s1 '^\[keel\] app stopped: .* \(halted for the debugger\)' "the SIGBUS fault is recorded as a crash"
    kq_expect r1 '^\[keel\]   .*(AUVIOL|SecureFault|SFSR)' "the crash report of the SIGBUS fault is printed" "$s1"
    kq_expect e1 '^\[keel\] debugger: session ended \(detach\), app restarted' "detaching from a faulted app restarts it" "$s1"
    kq_expect s2 '^\[keel\] app stopped: .* \(halted for the debugger\)' "the SIGILL fault is recorded as a crash" "$e1"
    kq_expect r2 '^\[keel\]   .*UNDEFINSTR' "the crash report of the SIGILL fault is printed" "$s2"
    kq_expect e2 '^\[keel\] debugger: session ended \(kill\), app restarted' "kill restarts the app" "$s2"
    kq_expect w3 '^\[keel\] app stopped: watchdog' "the hang is stopped by the app watchdog" "$e2"
    kq_expect g3 '^\[keel\] debugger: the app stopped for good: session ended, breakpoints removed' "the session ends with the app" "$w3"
    [ "$(grep -c '^\[keel\] app stopped' "$KQ_OUT")" -eq 3 ] || kq_fail "each stop must be recorded exactly once"
    ;;
*)
    kq_die "unknown case $case_" ;;
esac
kq_finish
