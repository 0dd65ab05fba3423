#!/usr/bin/env bash
# The app debugger on QEMU: gdb-multiarch (batch) -> 127.0.0.1:PORT -> QEMU UART2 -> the
# microvisor's stub -> the parked dbgtarget app. One device per case, started by
# `keel device run --gdb-serial PORT`; gdb's output and the device console are both checked.
# usage: debug.sh CASE KEEL FIRMWARE DBGTARGET_ELF SRCDIR      (CASE: session | fault | watch)
#        debug.sh rtos KEEL FIRMWARE RTOS_ELF SRCDIR          (the app with its own scheduler)
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

if [ "$case_" = rtos ]; then
    wait_console '^app\| rtos: stats 1 s' 1 || kq_die "rtos did not start"
else
    wait_console '^app\| dbgtarget: alive' 1 || kq_die "dbgtarget did not start"
fi

case $case_ in
session)
    GDB_RLOG=$KQ_TMP/session.rlog run_gdb session.gdb session.out
    check_session
    # next and step ran as range steps (vCont;r): one round trip per line, checked above by where
    # they ended
    grep -q '^w .*vCont;r[0-9a-f]*,[0-9a-f]*' "$KQ_TMP/session.rlog" ||
        kq_fail "gdb never range-stepped (no vCont;r in its packet log): the stub must offer it"
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
watch)
    RLOG=$KQ_TMP/watch.rlog
    GDB_RLOG=$RLOG run_gdb watch.gdb watch.out
    no_protocol_errors watch.out
    addr() { sed -n "s/^ADDR $1 //p" "$KQ_TMP/watch.out"; }
    stops() { grep -o "T05[a-z]*watch:[0-9a-f]*" "$RLOG" | grep -c "^T05$1:0*$2\$"; }
    c=$(addr counter) t=$(addr isr_ticks) t6=$(addr table6)
    [ -n "$c" ] && [ -n "$t" ] && [ -n "$t6" ] || kq_fail "gdb printed no addresses"
    # watch: two consecutive writes of counter, nothing else reported (gdb would hide a stop
    # that changed nothing, so the stop replies are counted in the packet log)
    expect watch.out watch '^Hardware watchpoint [0-9]+: counter' "the write watchpoint stops gdb"
    old1=$(section watch.out watch | sed -n 's/^Old value = //p' | sed -n 1p)
    new1=$(section watch.out watch | sed -n 's/^New value = //p' | sed -n 1p)
    new2=$(section watch.out watch | sed -n 's/^New value = //p' | sed -n 2p)
    [ -n "$old1" ] && [ "$new1" = "$((old1 + 1))" ] && [ "$new2" = "$((old1 + 2))" ] ||
        kq_fail "watch counter: old $old1, new $new1 then $new2 (want +1 each stop)"
    expect watch.out watch '^0x[0-9a-f]+ in main \(\) at .*main.c:[0-9]+' "the write stop is in main, after the store"
    [ "$(stops watch "$c")" -eq 2 ] || kq_fail "the stub reported $(stops watch "$c") write stops at counter (0x$c), want 2 (the neighbour's writes must not stop)"
    [ "$(value watch.out watch 1)" = 5 ] || kq_fail "the app saw MPU_CTRL $(value watch.out watch 1) while watched (want 5: ENABLE|PRIVDEFENA)"
    # rwatch: the read of isr_ticks in the interrupt handler's callee
    expect watch.out rwatch '^Hardware read watchpoint [0-9]+: isr_ticks' "the read watchpoint stops gdb"
    expect watch.out rwatch '^Value = [0-9]+' "gdb shows the value read"
    expect watch.out rwatch '^#0 +(0x[0-9a-f]+ in )?isr_work \(\)' "the read stop is in isr_work"
    [ "$(stops rwatch "$t")" -ge 1 ] || kq_fail "no rwatch stop reply for isr_ticks (0x$t)"
    # awatch: the read, then the write of table[6] in level5
    expect watch.out awatch '^Hardware access \(read/write\) watchpoint [0-9]+: table\[6\]' "the access watchpoint stops gdb"
    expect watch.out awatch '^Value = [0-9]+' "the access watchpoint stops on the read"
    expect watch.out awatch '^Old value = [0-9]+' "... and then on the write"
    expect watch.out awatch 'in level5 \(x=6\)' "the access stops are in level5(6)"
    [ "$(stops awatch "$t6")" -eq 2 ] || kq_fail "the stub reported $(stops awatch "$t6") access stops at table[6] (0x$t6), want 2"
    # refusals: gdb cannot insert them, the console says why
    for s in refused-outside refused-stack refused-full; do
        expect watch.out $s '^INSERT-REFUSED' "$s: the watchpoint is refused"
    done
    # undisturbed: with none left the app's MPU_CTRL is its own (0) and breakpoints work
    expect watch.out none '^Breakpoint [0-9]+, level1 ' "a breakpoint after the watchpoints"
    [ "$(value watch.out none 1)" = 0 ] || kq_fail "the app saw MPU_CTRL $(value watch.out none 1) with no watchpoint set (want 0)"
    expect watch.out none '^\[Inferior 1 \(Remote target\) detached\]' "gdb detaches"
    sleep 1.5 # let the app log on after the detach
    stop_device
    kq_expect r1 '^\[keel\] debugger: watch 0x38000000 \(4 bytes\) refused: outside the app.s memory' "the console says why the secure address is refused"
    kq_expect r2 '^\[keel\] debugger: watch 0x2827[0-9a-f]+ \(4 bytes\) refused: on the app.s stack' "the console says why the local is refused"
    kq_expect r3 '^\[keel\] debugger: [ra]?watch 0x[0-9a-f]+ \(4 bytes\) refused: all watchpoint comparators are in use' "the console says why the fifth is refused"
    kq_expect end '^\[keel\] debugger: session ended \(detach\), app resumed' "the session ends with the detach"
    kq_expect_none 'app stopped' "no app stop: watched accesses are stepped, not crashes"
    alive=$(kq_count_between '^app\| dbgtarget: alive' "$end" 1000000)
    [ "$alive" -ge 1 ] || kq_fail "the app logged $alive line(s) after the detach: it must run on"
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
rtos)
    # A breakpoint in a thread of the app's own scheduler; its threads listed by rtos.gdb.
    cp "$src/../../firmware/apps/rtos/rtos.gdb" "$KQ_TMP/rtos.gdb"
    run_gdb rtos_session.gdb rtos.out
    no_protocol_errors rtos.out
    expect rtos.out break '^Breakpoint 1, (0x[0-9a-f]+ in )?pair_update \(' "the breakpoint in the workers' function is hit"
    expect rtos.out bt '^#1 +0x[0-9a-f]+ in worker_thread \(' "bt shows the thread's function below it"
    expect rtos.out thread '^\$1 = 0x[0-9a-f]+ "worker-[ab]"$' "the running thread is a worker"
    first=$(section rtos.out thread | sed -n 's/^\$1 = 0x[0-9a-f]* "\(.*\)"$/\1/p')
    expect rtos.out threads "^\* [0-9]+ +$first +prio 2 +ready +pc 0x[0-9a-f]+ in pair_update " "the list marks the halted thread, in pair_update"
    # The others where they were switched out: mostly asleep (each sleeps most of the time) or
    # blocked (notify on its semaphore, the rest of its 100 ms); one may be waiting on a mutex.
    for t in wdog notify monitor cmd idle worker-a worker-b pong bench pi-low pi-mid pi-high; do
        expect rtos.out threads "^[* ] [0-9]+ +$t +prio [0-9]+ +(ready|sleeping|blocked) +pc 0x[0-9a-f]+ in [a-z_]+ +sp 0x[0-9a-f]+$" "thread $t is listed with its state and place"
    done
    [ "$(section rtos.out threads | grep -cE ' sleeping +pc 0x[0-9a-f]+ in kos_sleep_ms ')" -ge 2 ] ||
        kq_fail "fewer than 2 threads listed asleep in kos_sleep_ms (a switched-out thread's pc is read from its stack)"
    [ "$(section rtos.out threads | grep -cE '^[* ] [0-9]+ ')" -eq 12 ] || kq_fail "kos-threads must list 12 threads"
    expect rtos.out other "^OTHER worker-[ab] AFTER $first\$" "continuing stops in the other worker"
    expect rtos.out detach '^\[Inferior 1 \(Remote target\) detached\]' "gdb detaches"
    wait_console 'debugger: session ended \(detach\)' 1
    n=$(tr -d '\r' <"$RAW" | grep -c '^app| rtos: stats')
    wait_console '^app\| rtos: stats' $((n + 2))
    stop_device
    kq_expect end '^\[keel\] debugger: session ended \(detach\), app resumed' "the session ends with the detach"
    kq_expect seen '^app\| rtos: stats [0-9]+ s: .* errors=0 ' "the threads run on after the detach" "$end"
    kq_expect_none 'app stopped' "halts must not stop the app (its watchdog is paused meanwhile)"
    kq_expect_none '^app\| rtos: stats .* errors=[1-9]' "an API answer was wrong"
    ;;
*)
    kq_die "unknown case $case_" ;;
esac
kq_finish
