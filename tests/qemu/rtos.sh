#!/usr/bin/env bash
# rtos.sh KEEL RTOS_ELF: the app with its own scheduler (firmware/apps/rtos). Its threads call the
# API concurrently without an error, the scheduler switches contexts (and puts off the switches
# that would have cut a thread out of a keel_* call), a thread blocked on the notification
# semaphore handles STARTED, a mutex is contended and handed over; then a SecureFault in one
# thread and a stack overflow (PSPLIM) in another run are each reported by the supervisor and the
# app comes back with all its threads; in the third run its benchmark ping-pongs two threads, its
# priority-inheritance check passes, then its SysTick handler faults, and the fourth run schedules.
. "$(dirname "$0")/lib.sh"
keel=$1 elf=$2
kq_need_file "keel CLI" "$keel"
kq_need_file "rtos app" "$elf"
kq_setup rtos
# The blank line is slack between the two commands (each read by a new run of the app).
printf 'fault\n\noverflow\n\nbench\npi\ntickfault\n\n' >"$KQ_TMP/cmds.txt"
st='^app\| rtos: notify: STARTED \(thread notify\), previous run ended by'
kq_run "$keel" "$elf" "${KQ_SECONDS:-150}" "$KQ_TMP/cmds.txt" \
    "$st power-on, restarts 0\$" '^app\| rtos: cmd: faulting in thread cmd' \
    "$st fault, restarts 1\$" '^app\| rtos: cmd: overflowing the stack of thread cmd' \
    "$st fault, restarts 2\$" '^app\| rtos: bench n=' '^app\| rtos: pi: ' '^app\| rtos: cmd: the next SysTick faults' \
    "$st fault, restarts 3\$" '^app\| rtos: stats 2 s' \
    '^\[keel\] heartbeat' '^\[keel\] heartbeat' '^\[keel\] heartbeat'

kq_expect started '^\[keel\] app started' "the app was never started"
kq_expect seen '^app\| rtos: scheduler starting, 12 threads$' "the scheduler did not start"
kq_expect n1 "$st power-on, restarts 0\$" "the notify thread did not handle STARTED"
kq_expect seen '^\[app\] I rtos: threads up, calling the API from each$' "the monitor thread's keel_log_write did not reach the microvisor log"
kq_expect s1 '^app\| rtos: stats 1 s: calls a=[1-9][0-9]* b=[1-9][0-9]* errors=0 switches=[1-9]' \
    "both workers must call the API, without an error, with contexts switched" "$n1"
kq_expect seen '^app\| rtos: stats [0-9]+ s: .* mutex-waits=[1-9]' "the work mutex was never contended (a worker yields while holding it)"
kq_expect seen '^app\| rtos: stats [0-9]+ s: .* deferred=[1-9]' "no switch was ever put off inside a keel_* call (the ticks never landed in one?)"
kq_expect_none '^app\| rtos: stats .* errors=[1-9]' "an API answer was wrong or the mutex let both workers in"
kq_expect_none '^app\| rtos: .*failed' "an API call failed"

# A SecureFault in thread cmd: reported with the thread's stack pointer, restarted.
kq_expect fault '^app\| rtos: cmd: faulting in thread cmd, stack 0x[0-9a-f]+\.\.0x[0-9a-f]+$' "cmd did not fault"
kq_expect stop1 '^\[keel\] app stopped: (SecureFault|HardFault)' "the fault did not stop the app" "$started"
kq_expect seen '^\[keel\]   SFSR: .*AUVIOL' "the crash report does not decode the SecureFault" "$stop1"
psp=$(sed -n 's/^\[keel\]   msp_ns 0x[0-9a-f]* *psp_ns 0x\([0-9a-f]*\)$/\1/p' "$KQ_OUT" | head -n 1)
lo=$(sed -n "${fault}s/.*stack 0x\([0-9a-f]*\)\.\..*/\1/p" "$KQ_OUT")
hi=$(sed -n "${fault}s/.*\.\.0x\([0-9a-f]*\)$/\1/p" "$KQ_OUT")
if [ -z "$psp" ] || [ -z "$lo" ] || [ $((16#$psp)) -lt $((16#$lo)) ] || [ $((16#$psp)) -ge $((16#$hi)) ]; then
    kq_fail "the crash report's psp_ns (0x$psp) is not in thread cmd's stack 0x$lo..0x$hi"
fi
kq_expect r1 '^\[keel\] app restart 1 in [0-9]+ ms' "no restart after the fault" "$stop1"
kq_expect n2 "$st fault, restarts 1\$" "the restarted app's notify thread did not see the fault" "$n1"
kq_expect seen '^app\| rtos: stats 1 s: calls a=[1-9][0-9]* b=[1-9][0-9]* errors=0' "the workers did not run again" "$n2"

# A stack overflow in thread cmd: its PSPLIM catches it.
kq_expect stop2 '^\[keel\] app stopped: (UsageFault|HardFault)' "the overflow did not stop the app" "$r1"
kq_expect seen '^\[keel\]   CFSR: .*STKOF' "the crash report does not decode the stack overflow" "$stop2"
kq_expect r2 '^\[keel\] app restart 2 in [0-9]+ ms' "no restart after the overflow" "$stop2"
kq_expect n3 "$st fault, restarts 2\$" "the app did not come back after the overflow" "$n2"
kq_expect seen '^app\| rtos: stats 2 s: calls a=[1-9][0-9]* b=[1-9][0-9]* errors=0' "the third run did not run on" "$n3"
# "bench" in the third run: the ping-pong switched twice per round (n = 20000).
kq_expect seen '^app\| rtos: bench n=20000 keel-call-ns=[0-9]+ sem-pair-ns=[0-9]+ pingpong-ns=[0-9]+ switches=(4[0-9][0-9][0-9][0-9]|[5-9][0-9][0-9][0-9][0-9])$' \
    "the benchmark did not run or switched fewer than 40000 times" "$n3"
# "pi": the low thread holding the mutex ran at the waiting high thread's priority, so the high
# one got it before the CPU-bound middle one ran (no priority inversion).
kq_expect seen '^app\| rtos: pi: low ran at prio 7 while high waited; high got the mutex before mid ran: ok$' \
    "priority inheritance: the mutex owner was not boosted, or the middle thread ran first" "$n3"
# A fault in the scheduler's own SysTick handler: stopped in NS exception 15, restarted in place
# (the microvisor clears the app's active system handlers; no system reset is needed).
kq_expect stop3 '^\[keel\] app stopped: (SecureFault|HardFault)' "the SysTick fault did not stop the app" "$r2"
kq_expect seen '^\[keel\]   in NS exception 15$' "the crash report does not say it was in SysTick" "$stop3"
kq_expect r3 '^\[keel\] app restart 3 in [0-9]+ ms' "no restart after the SysTick fault" "$stop3"
kq_expect n4 "$st fault, restarts 3\$" "the app did not come back after the SysTick fault" "$n3"
kq_expect seen '^app\| rtos: stats 2 s: calls a=[1-9][0-9]* b=[1-9][0-9]* errors=0 switches=[1-9]' "the fourth run did not schedule" "$n4"
kq_expect_none 'system reset' "a fault in a system handler needs no system reset"
[ "$(grep -c '^\[keel\] app stopped' "$KQ_OUT")" -eq 3 ] || kq_fail "the app must stop exactly three times (the watchdog, kicked by thread wdog, never)"
kq_check_heartbeats
kq_finish
