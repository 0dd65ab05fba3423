# Shared by the debugger tests (debug.sh: the serial line, debug_mqtt.sh: through keel debug,
# keeld and the broker): one gdb-multiarch batch session and the checks of its transcript.
# The caller sets PORT, elf, src and KQ_TMP and has sourced ../qemu/lib.sh.

# run_gdb SCRIPT OUT: one batch session; the transcript goes to OUT (and is shown on failure).
# In SCRIPT, @PORT@, @ELF@, @RLOG@ (GDB_RLOG) and @TMP@ (the test's temp dir) are filled in.
run_gdb() {
    sed "s/@PORT@/$PORT/; s#@ELF@#$elf#; s#@RLOG@#${GDB_RLOG:-/dev/null}#; s#@TMP@#$KQ_TMP#" "${GDB_SCRIPT_DIR:-$src}/$1" >"$KQ_TMP/$1"
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

# check_session: the list in session.gdb's transcript (session.out), whatever carried it.
check_session() {
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
    expect session.out next '^55	 +return r \+ local4;' "next steps to the next line of level4"
    expect session.out step '^Breakpoint 2, level1 \(x=[0-9]+\)' "the breakpoint at level1 is hit"
    expect session.out step '^73	 +int32_t r = level2\(local1\);' "next in level1"
    expect session.out step '^level2 \(x=[0-9]+\) at ' "step enters level2"
    expect session.out stepi '^0x[0-9a-f]+	66	' "stepi moves by one instruction"
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
    expect session.out interrupt '^Program received signal SIGINT, Interrupt\.' "Ctrl-C halts the running app"
    expect session.out after-interrupt '^\$[0-9]+ = 1$' "the app ran on after set var (counter > 1234)"
    expect session.out detach '^\[Inferior 1 \(Remote target\) detached\]' "gdb detaches"
}
