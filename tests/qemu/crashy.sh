#!/usr/bin/env bash
# crashy.sh KEEL CRASHY_ELF MODE REASON_ERE BIT_ERE
#   Runs crashy with MODE (then `none` after the restart) and checks the supervisor's answer:
#   REASON_ERE "-" means the app must not be stopped at all (badptr, reentry, none);
#   BIT_ERE "-" means no fault bit to check (hangs, exit, restart, breakpoint).
. "$(dirname "$0")/lib.sh"
keel=$1 elf=$2 mode=$3 reason=$4 bit=$5
secs=${KQ_SECONDS:-40} # a bound: the run ends on evidence (below)
# Heartbeats well inside the shortest restart back-off (100 ms), so one must land between the
# failure and the restart if the secure tick survived it.
KQ_HEARTBEAT_MS=${KQ_HEARTBEAT_MS:-40}

kq_need_file "keel CLI" "$keel"
kq_need_file "crashy app" "$elf"
kq_setup "crashy-$mode"
# The blank line after the mode is slack: a restart by system reset loses the byte waiting in the
# UART's one-byte receive register, and crashy skips blank lines.
printf '%s\n\nnone\n' "$mode" >"$KQ_TMP/modes.txt"
# Until the evidence (app lines only: the two UARTs are ordered only within themselves): a mode
# that must not stop the app has run through three "alive" lines (several 300 ms watchdog periods,
# so "never stopped" below had time to fail); any other has failed, been restarted and is alive.
if [ "$reason" = "-" ]; then
    until=("^app\\| crashy: running $mode\$" '^app\| crashy: alive' '^app\| crashy: alive' '^app\| crashy: alive')
else
    until=('^app\| crashy: mode\?' "^app\\| crashy: running $mode\$" '^app\| crashy: mode\?' '^app\| crashy: alive')
fi
# Then three heartbeats: the microvisor's UART is merged on its own schedule, so its lines up to
# that point (stop, crash report, restart) are in.
until+=('^\[keel\] heartbeat' '^\[keel\] heartbeat' '^\[keel\] heartbeat')
kq_run "$keel" "$elf" "$secs" "$KQ_TMP/modes.txt" "${until[@]}"

# The CLI merges two streams as lines arrive: the microvisor's UART1 ("[keel] ...") and the app's
# UART0 ("app| ..."). Lines are ordered only against lines of their own stream.
kq_expect started '^\[keel\] app started' "the app was never started"
kq_expect prompt '^app\| crashy: mode\?' "crashy never asked for a mode"
kq_expect running "^app\| crashy: running $mode\$" "crashy did not take mode '$mode'" "$prompt"
kq_check_heartbeats

if [ "$reason" = "-" ]; then
    kq_expect_none '^\[keel\] app stopped' "mode $mode must not stop the app"
    kq_expect_none '^app\| .*FAIL' "crashy reported a failure"
    case $mode in
    badptr)
        kq_expect seen '^app\| crashy: badptr ok [0-9]+ calls' "bad pointers were not all rejected as documented" "$running"
        kq_expect seen '^\[keel\] bad pointer from app in [a-z_]+: 0x[0-9a-f]+\+[0-9]+' "the microvisor did not log a rejected pointer" "$started"
        ;;
    reentry)
        kq_expect seen '^app\| crashy: reentry ok [0-9]+ calls' "re-entrant API calls did not all succeed" "$running"
        ;;
    esac
    kq_expect alive '^app\| crashy: alive' "crashy is not alive after mode $mode" "$running"
    kq_expect seen '^app\| crashy: alive' "crashy stopped printing 'alive'" "$alive"
    kq_finish
fi

if [ "$mode" = secure-periph ]; then
    kq_expect seen '^app\| crashy: UART1 STATE via NS alias reads 0x00000000 \(blocked, ok\)' \
        "UART1 through its NS alias must read as zero (PPC RAZ/WI)" "$running"
fi
kq_expect stopped "^\\[keel\\] app stopped: ($reason)( .*)?$" "no stop with reason /$reason/" "$started"
kq_expect restart '^\[keel\] app restart [0-9]+ in [0-9]+ ms' "no restart announced" "$stopped"
kq_expect again '^\[keel\] app started' "the app was not started again" "$restart"
# The crash report: the [keel] lines between the stop line and the restart line.
if [ "$(kq_count_between '^\[keel\]   .*pc[ =]+0x[0-9a-f]+' "$stopped" "$restart")" -eq 0 ]; then
    kq_fail "the crash report has no pc=0x........ line"
fi
if [ "$bit" != "-" ] && [ "$(kq_count_between "^\\[keel\\]   .*($bit)" "$stopped" "$restart")" -eq 0 ]; then
    kq_fail "the crash report does not decode /$bit/"
fi
# keel_app_restart() restarts with no back-off ("in 0 ms"): then the heartbeat must follow it.
delay=$(sed -n "${restart}s/.* in \([0-9]*\) ms.*/\1/p" "$KQ_OUT")
if [ "${delay:-0}" -gt 0 ]; then
    if [ "$(kq_count_between '^\[keel\] heartbeat ' "$stopped" "$again")" -eq 0 ]; then
        kq_fail "no heartbeat between the failure and the restart (secure tick interrupted?)"
    fi
else
    kq_expect seen '^\[keel\] heartbeat ' "no heartbeat after the restart" "$again"
fi
kq_expect prompt2 '^app\| crashy: mode\?' "crashy did not ask for a mode again after the restart" "$running"
kq_expect seen '^app\| crashy: alive' "crashy is not alive after the restart" "$prompt2"
kq_finish
