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

# run_gdb SCRIPT OUT: one batch session; the transcript goes to OUT (and is shown on failure).
run_gdb() {
    sed "s/@PORT@/$PORT/; s#@ELF@#$elf#" "$src/$1" >"$KQ_TMP/$1"
    timeout 90 gdb-multiarch -q -batch -nx -x "$KQ_TMP/$1" >"$KQ_TMP/$2" 2>&1
    local rc=$?
    [ "$rc" -eq 0 ] || kq_fail "gdb-multiarch -x $1 exited with status $rc"
    echo "---- gdb $1 ----"; cat "$KQ_TMP/$2"; echo "---- end of gdb $1 ----"
}

# section FILE NAME: the gdb output between "MARK NAME" and the next MARK.
section() {
    awk -v m="MARK $2" '$0 == m { on = 1; next } /^MARK / { on = 0 } on' "$KQ_TMP/$1"
}

# expect FILE NAME ERE DESCRIPTION: a line of section NAME matches ERE.
expect() {
    section "$1" "$2" | grep -qE -- "$3" || kq_fail "$4 (no line matching /$3/ after MARK $2 in $1)"
}

# value FILE NAME N: the value of the N-th "$k = v" line of a section.
value() {
    section "$1" "$2" | sed -n 's/^\$[0-9]* = //p' | sed -n "${3}p"
}

no_protocol_errors() {
    local bad
    bad=$(grep -nE 'Remote communication error|Remote failure|Remote connection closed|internal-error|Ignoring packet error|Invalid register|Error in sourced' "$KQ_TMP/$1")
    [ -z "$bad" ] || kq_fail "gdb reported protocol trouble in $1: $bad"
}

wait_console '^app\| dbgtarget: alive' 1 || kq_die "dbgtarget did not start"

case $case_ in
session)
    run_gdb session.gdb session.out
    no_protocol_errors session.out
    for r in r0 r7 r12 sp lr pc xpsr msp psp; do
        expect session.out info-registers "^$r +0x[0-9a-f]+" "info registers shows $r"
    done
    expect session.out break '^Breakpoint 1, level5 \(x=[0-9]+\)' "the breakpoint at level5 is hit"
    expect session.out bt '^#0  level5 \(x=[0-9]+\)' "bt frame 0 is level5"
    expect session.out bt '^#1 +0x[0-9a-f]+ in level4 \(x=[0-9]+\)' "bt frame 1 is level4"
    expect session.out bt '^#2 +0x[0-9a-f]+ in level3 ' "bt frame 2 is level3"
    expect session.out bt '^#3 +0x[0-9a-f]+ in level2 ' "bt frame 3 is level2"
    expect session.out bt '^#4 +0x[0-9a-f]+ in level1 ' "bt frame 4 is level1"
    expect session.out bt '^#5 +0x[0-9a-f]+ in main \(\)' "bt frame 5 is main"
    x=$(value session.out locals 2)
    [ -n "$x" ] && [ "$x" -ge 4 ] 2>/dev/null || kq_fail "print x in level5 gave '$x'"
    [ "$(value session.out locals 3)" = 69 ] || kq_fail "print table[1] (a global) is not 69 (0x45)"
    [ "$(value session.out locals 4)" = "$x" ] || kq_fail "print local4 after 'up' is not level5's x ($x)"
    expect session.out set-var '^\$5 = 1234$' "set var counter = 1234 reads back"
    expect session.out finish '^0x[0-9a-f]+ in level4 \(x=[0-9]+\)' "finish returns to level4"
    ret=$(section session.out finish | sed -n 's/^Value returned is \$[0-9]* = //p')
    [ -n "$x" ] && [ "$ret" = "$((3 * x + 1))" ] || kq_fail "finish: level5($x) returned '$ret', expected $((3 * x + 1))"
    expect session.out next '^52	 +return r \+ local4;' "next steps to the next line of level4"
    expect session.out step '^Breakpoint 2, level1 \(x=[0-9]+\)' "the breakpoint at level1 is hit"
    expect session.out step '^70	 +int32_t r = level2\(local1\);' "next in level1"
    expect session.out step '^level2 \(x=[0-9]+\) at ' "step enters level2"
    expect session.out stepi '^0x[0-9a-f]+	63	' "stepi moves by one instruction"
    expect session.out stepi '^pc +0x[0-9a-f]+ +0x[0-9a-f]+ <level2\+[0-9]+>' "pc after stepi is inside level2"
    expect session.out x '<table>:	0x[0-9a-f]{8}	0x00000045	0x[0-9a-f]{8}	0x00000089' "x/16x table shows the global array"
    [ "$(section session.out x | grep -c '^0x')" -eq 4 ] || kq_fail "x/16x did not print 4 rows"
    for a in 0x38000000 0x10000000 0x40200000 0x281ffffc 0x28280000; do
        expect session.out refused "^READ-REFUSED $a" "memory at $a (outside the app) is refused"
    done
    expect session.out refused '^WRITE-REFUSED' "a write to secure RAM is refused"
    expect session.out isr '^Breakpoint [0-9]+, isr_work \(\)' "a breakpoint in the interrupt handler's callee is hit"
    expect session.out isr '^#1 +0x[0-9a-f]+ in IRQ4_Handler \(\)' "bt inside the handler shows IRQ4_Handler"
    expect session.out isr '<signal handler called>' "bt unwinds through the app's exception frame"
    expect session.out isr '^IRQ4_Handler \(\) at ' "finish out of isr_work (the app resumed in handler mode)"
    expect session.out stepi-exc-return '^Breakpoint [0-9]+, 0x[0-9a-f]+ in IRQ4_Handler \(\)' "the breakpoint on the handler's return is hit"
    expect session.out stepi-exc-return '^#0  (0x[0-9a-f]+ in )?(main|level[1-5]|misbehave) \(' "stepi over the exception return lands in the interrupted code"
    expect session.out interrupt '^Program received signal SIGINT, Interrupt\.' "Ctrl-C halts the running app"
    expect session.out after-interrupt '^\$[0-9]+ = 1$' "the app ran on after set var (counter > 1234)"
    expect session.out next-over-keel-call '^94	 +if \(counter % DBG_ALIVE_EVERY' "next steps over a keel_* call (a BL into the microvisor)"
    expect session.out stepi-veneer '^Breakpoint [0-9]+, 0x[0-9a-f]+ in __keel_watchdog_kick_veneer' "a breakpoint on the keel_* veneer is hit"
    expect session.out stepi-veneer '^pc +0x[0-9a-f]+ +0x[0-9a-f]+ <main\+[0-9]+>' "stepi from the veneer's jump into the microvisor ends back in main"
    expect session.out detach '^\[Inferior 1 \(Remote target\) detached\]' "gdb detaches"
    sleep 2 # let the app log on after the detach
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
    stop_device
    kq_expect s1 '^\[keel\] app stopped: .* \(halted for the debugger\)' "the SIGBUS fault is recorded as a crash"
    kq_expect r1 '^\[keel\]   .*(AUVIOL|SecureFault|SFSR)' "the crash report of the SIGBUS fault is printed" "$s1"
    kq_expect e1 '^\[keel\] debugger: session ended \(detach\), app restarted' "detaching from a faulted app restarts it" "$s1"
    kq_expect s2 '^\[keel\] app stopped: .* \(halted for the debugger\)' "the SIGILL fault is recorded as a crash" "$e1"
    kq_expect r2 '^\[keel\]   .*UNDEFINSTR' "the crash report of the SIGILL fault is printed" "$s2"
    kq_expect e2 '^\[keel\] debugger: session ended \(kill\), app restarted' "kill restarts the app" "$s2"
    [ "$(grep -c '^\[keel\] app stopped' "$KQ_OUT")" -eq 2 ] || kq_fail "each fault must be recorded exactly once"
    ;;
*)
    kq_die "unknown case $case_" ;;
esac
kq_finish
