#!/usr/bin/env bash
# The app debugger through the cloud, end to end and encrypted:
#   gdb-multiarch (batch) -> keel debug (127.0.0.1:PORT) -> keeld -> Mosquitto (TLS) -> QEMU device
#   (the microvisor's debug session over MQTT, net_dbg.c) -> the stub -> the dbgtarget app.
# The app is installed as a signed bundle whose policy carries the debug key (keel bundle build
# --debug-key). Checked: the same session as over the serial line (lib_gdb.sh check_session), a
# `keel ping` answered while the app is halted, the detach, a wrong key and a bundle without one.
# usage: debug_mqtt.sh KEEL KEELD FIRMWARE DBGTARGET_ELF SRCDIR
set -uo pipefail
keel=$1 keeld=$2 fw=$3 elf=$4 src=$5
# shellcheck source=../qemu/lib.sh
. "$src/../qemu/lib.sh"
kq_setup debug-mqtt
kq_need_file "the keel CLI" "$keel"
kq_need_file "keeld" "$keeld"
kq_need_file "the microvisor" "$fw"
kq_need_file "the dbgtarget app" "$elf"
for p in gdb-multiarch mosquitto openssl curl; do
    command -v "$p" >/dev/null || kq_die "$p is not installed ('make deps' installs it)"
done
# shellcheck source=lib_gdb.sh
. "$src/lib_gdb.sh"

# shellcheck source=fleet_lib.sh
. "$src/fleet_lib.sh"
fleet_up

start_device dbg.kb

# ---- a wrong key: refused by the device, explained by keel debug ---------------------------------
kdebug wrongkey.out --key "$W/other.key" --port "$(free_port)"
wait "$KPID"; rc=$?
[ "$rc" -eq 1 ] || kq_fail "keel debug with the wrong key exited with $rc (expected 1): $(cat "$W/wrongkey.out")"
grep -q "dev-1 refused the debug session: not signed by the installed bundle's debug key" "$W/wrongkey.out" ||
    kq_fail "the wrong key's refusal is not explained: $(cat "$W/wrongkey.out")"

# ---- the session ---------------------------------------------------------------------------------
wire_tap "$W" "$MPORT" dev-1 || kq_die "the debug wire observer did not subscribe: $(cat "$W/debug_wire.txt")"
PORT=$(free_port)
kdebug kdebug.out --key "$W/debug.key" --port "$PORT"
wait_for 30 grep -q "target remote 127.0.0.1:$PORT" "$W/kdebug.out" ||
    kq_die "keel debug did not open the session: $(cat "$W/kdebug.out")"
# session.gdb, plus a `keel ping` while the app is halted (the microvisor must keep serving).
mkdir -p "$W/gdb"
sed "/^echo MARK watchdog-paused/a shell $keel ping dev-1 --url $URL --token $TOKEN --timeout 10 >$W/ping.out 2>&1; echo ping-exit \$? >>$W/ping.out" \
    "$src/session.gdb" >"$W/gdb/session.gdb"
GDB_SCRIPT_DIR=$W/gdb run_gdb session.gdb session.out
check_session
grep -q "^ping-exit 0" "$W/ping.out" && grep -q "dev-1: ping ok" "$W/ping.out" ||
    kq_fail "keel ping during a halt did not succeed: $(cat "$W/ping.out")"
wait "$KPID"; rc=$?
[ "$rc" -eq 0 ] || kq_fail "keel debug exited with $rc after the detach: $(cat "$W/kdebug.out")"
grep -q "gdb disconnected" "$W/kdebug.out" || kq_fail "keel debug did not see gdb leave: $(cat "$W/kdebug.out")"
before=$(alive_lines)
wait_for 10 alive_at_least $((before + 2)) || kq_fail "the app did not run on after the detach"
# End to end: the session crossed the broker (dozens of messages each way), none in clear: gdb's
# first packet, a register read, the breakpoint's function name, the target description.
kill "$WIRE_PID" 2>/dev/null; wait "$WIRE_PID" 2>/dev/null
why=$(wire_sealed 20 'qSupported' '$g#67' 'vCont' 'level5' 'qXfer:features') || kq_fail "debug traffic on the broker: $why"

# ---- a bundle with no debug key: refused ---------------------------------------------------------
start_device nodbg.kb
kdebug nokey.out --key "$W/debug.key" --port "$(free_port)"
wait "$KPID"; rc=$?
[ "$rc" -eq 1 ] || kq_fail "keel debug against a bundle with no debug key exited with $rc: $(cat "$W/nokey.out")"
grep -q "dev-1 refused the debug session: no debug key in the installed bundle" "$W/nokey.out" ||
    kq_fail "the no-debug-key refusal is not explained: $(cat "$W/nokey.out")"
stop_device

kq_expect open '^\[keel\] debugger: session opened \(mqtt\)' "the session is opened over MQTT"
kq_expect end '^\[keel\] debugger: session ended \(detach\), app resumed' "the session ends with the detach" "$open"
kq_expect_none 'app stopped' "no app stop (watchdog, storm, forgotten breakpoint) during or after the session"
kq_finish
