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

W=$KQ_TMP
PIDS=()
DEV=""
stop_device() {
    [ -n "$DEV" ] || return 0
    kill -TERM "$DEV" 2>/dev/null
    wait "$DEV" 2>/dev/null
    DEV=""
    tr -d '\r' <"$W/raw.txt" >>"$KQ_OUT"
}
stop_all() {
    local rc=$?
    [ "$rc" -eq 0 ] || KQ_FAILS=$((KQ_FAILS + 1)) # a kq_die: show the logs too
    stop_device
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [ "$KQ_FAILS" -ne 0 ]; then
        for f in kdebug.out keeld.log mosquitto.log; do
            echo "---- $f ----" >&2; tail -n 30 "$W/$f" >&2 2>/dev/null
        done
    fi
    kq_cleanup
}
trap stop_all EXIT
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
# wait_until SECONDS CMD...: poll every 0.1 s.
wait_until() {
    local n=$(($1 * 10)); shift
    for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}

# ---- the fleet: PKI, broker, keeld (scripts/stack.sh, as keel up makes them) --------------------
STACK_SH="$src/../../scripts/stack.sh"
bash "$STACK_SH" certs "$W" broker keeld >/dev/null || kq_die "scripts/stack.sh certs failed"
MPORT=$(free_port)
bash "$STACK_SH" broker-conf "$W" "$MPORT" || kq_die "scripts/stack.sh broker-conf failed"
mosquitto -c "$W/mosquitto.conf" >>"$W/mosquitto.out" 2>&1 &
PIDS+=($!)
wait_until 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$MPORT" || kq_die "mosquitto did not start"
TOKEN=$("$keeld" token create --db "$W/keeld.db" --name test) || kq_die "keeld token create failed"
"$keeld" --db "$W/keeld.db" --http-port 0 --port-file "$W/http.port" --mqtt-port "$MPORT" \
    --mqtt-ca "$W/ca.pem" --mqtt-cert "$W/keeld.pem" --mqtt-key "$W/keeld.key" >"$W/keeld.log" 2>&1 &
PIDS+=($!)
wait_until 10 test -s "$W/http.port" || kq_die "keeld did not start"
URL="http://127.0.0.1:$(cat "$W/http.port")"
wait_until 10 bash -c "curl -s $URL/v1/health | grep -q '\"mqtt\":\"connected\"'" || kq_die "keeld did not reach the broker"
API=(--url "$URL" --token "$TOKEN")

# ---- keys, bundles, the device -------------------------------------------------------------------
"$keel" keys new fleet --dir "$W/keys" >/dev/null || kq_die "keel keys new failed"
openssl ecparam -name prime256v1 -genkey -noout -out "$W/debug.key" 2>/dev/null &&
    openssl ec -in "$W/debug.key" -pubout -out "$W/debug.pub" 2>/dev/null || kq_die "openssl (debug key)"
openssl ecparam -name prime256v1 -genkey -noout -out "$W/other.key" 2>/dev/null || kq_die "openssl (other key)"
"$keel" bundle build "$elf" --version 1.0.0 --counter 1 --key "$W/keys/fleet.key" \
    --debug-key "$W/debug.pub" -o "$W/dbg.kb" >/dev/null || kq_die "keel bundle build --debug-key failed"
"$keel" bundle build "$elf" --version 1.0.1 --counter 1 --key "$W/keys/fleet.key" \
    -o "$W/nodbg.kb" >/dev/null || kq_die "keel bundle build (no debug key) failed"
STATE=$W/state
"$keel" device provision --state "$STATE" --id dev-1 --fleet-ca "$W/ca.pem" --fleet-ca-key "$W/ca.key" \
    --update-key "$W/keys/fleet.pub" >/dev/null || kq_die "keel device provision failed"

online() { curl -s -H "Authorization: Bearer $TOKEN" "$URL/v1/devices/dev-1" | grep -q '"online":true'; }
alive_lines() { tr -d '\r' <"$W/raw.txt" | grep -c '^app| dbgtarget: alive'; }
alive_at_least() { [ "$(alive_lines)" -ge "$1" ]; }
start_device() { # BUNDLE: install it (a factory install), run the device until it is online
    stop_device
    "$keel" device install --state "$STATE" "$W/$1" >/dev/null 2>"$W/install.err" ||
        kq_die "keel device install $1 failed: $(cat "$W/install.err")"
    timeout --kill-after=5 200 "$keel" device run --state "$STATE" --firmware "$fw" --seconds 170 \
        --broker "$MPORT" --append heartbeat=200 </dev/null >"$W/raw.txt" 2>&1 &
    DEV=$!
    wait_until 60 online || kq_die "dev-1 did not come online with $1"
    wait_until 15 alive_at_least 1 || kq_die "dbgtarget did not start"
}
# kdebug OUT ARGS...: keel debug dev-1 in the background (KPID), the certificate from the device's state.
kdebug() {
    local out=$1; shift
    timeout 150 "$keel" debug dev-1 --device-state "$STATE" --fleet-ca "$W/ca.pem" "${API[@]}" \
        --timeout 20 "$@" >"$W/$out" 2>&1 &
    KPID=$!
}

start_device dbg.kb

# ---- a wrong key: refused by the device, explained by keel debug ---------------------------------
kdebug wrongkey.out --key "$W/other.key" --port "$(free_port)"
wait "$KPID"; rc=$?
[ "$rc" -eq 1 ] || kq_fail "keel debug with the wrong key exited with $rc (expected 1): $(cat "$W/wrongkey.out")"
grep -q "dev-1 refused the debug session: not signed by the installed bundle's debug key" "$W/wrongkey.out" ||
    kq_fail "the wrong key's refusal is not explained: $(cat "$W/wrongkey.out")"

# ---- the session ---------------------------------------------------------------------------------
PORT=$(free_port)
kdebug kdebug.out --key "$W/debug.key" --port "$PORT"
wait_until 30 grep -q "target remote 127.0.0.1:$PORT" "$W/kdebug.out" ||
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
wait_until 10 alive_at_least $((before + 2)) || kq_fail "the app did not run on after the detach"
# keeld relayed what it cannot read: no RSP text in its log.
! grep -qE 'qSupported|level5|\$[gm]' "$W/keeld.log" || kq_fail "RSP text in keeld's log"

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
