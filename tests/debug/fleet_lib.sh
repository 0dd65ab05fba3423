# fleet_lib.sh: a local fleet for the debugger over MQTT (sourced by tests/debug/debug_mqtt.sh and
# scripts/bench-debug.sh): the PKI, Mosquitto and keeld as `keel up` makes them (scripts/stack.sh),
# a fleet signing key, a debug key, the dbgtarget app as signed bundles with and without that
# debug key, and device dev-1 provisioned to trust the fleet key.
# The caller sets keel, keeld, fw, elf, src, KQ_TMP and KQ_OUT (tests/qemu/lib.sh) and calls
# fleet_up; it gets URL, TOKEN, API (the keel flags for keeld), STATE, start_device BUNDLE,
# stop_device, kdebug OUT ARGS..., alive_lines; wait_for, free_port and PIDS (tests/net/procs.sh);
# and stop_all (the EXIT trap it installs).

# shellcheck source=../net/procs.sh
. "$src/../net/procs.sh"
W=$KQ_TMP
DEV=""
stop_device() {
    [ -n "$DEV" ] || return 0
    kill -TERM "$DEV" 2>/dev/null
    wait "$DEV" 2>/dev/null
    DEV=""
    tr -d '\r' <"$W/raw.txt" >>"$KQ_OUT"
    # Until keeld has seen the will, it still shows dev-1 online: the next start_device's
    # "online" must be the new run's. (Returns at once when keeld is gone, as in stop_all.)
    wait_for 15 offline
}
stop_all() {
    local rc=$?
    [ "$rc" -eq 0 ] || KQ_FAILS=$((KQ_FAILS + 1)) # a kq_die: show the logs too
    stop_device
    stop_pids
    if [ "$KQ_FAILS" -ne 0 ]; then
        for f in kdebug.out keeld.log mosquitto.log; do
            echo "---- $f ----" >&2; tail -n 30 "$W/$f" >&2 2>/dev/null
        done
    fi
    kq_cleanup
}
trap stop_all EXIT
fleet_up() {
    # ---- the fleet: PKI, broker, keeld (scripts/stack.sh, as keel up makes them) ----------------
    STACK_SH="$src/../../scripts/stack.sh"
    bash "$STACK_SH" certs "$W" broker keeld observer >/dev/null || kq_die "scripts/stack.sh certs failed"
    # The observer of tests/lib/debug_wire.sh: what crosses the broker on the debug topics.
    . "$src/../lib/debug_wire.sh"
    wire_acl "$W/acl.extra"
    MPORT=$(free_port)
    bash "$STACK_SH" broker-conf "$W" "$MPORT" "$W/acl.extra" || kq_die "scripts/stack.sh broker-conf failed"
    broker_start "$W" "$MPORT" || kq_die "mosquitto did not start"
    TOKEN=$("$keeld" token create --db "$W/keeld.db" --name test) || kq_die "keeld token create failed"
    "$keeld" --db "$W/keeld.db" --http-port 0 --port-file "$W/http.port" --mqtt-port "$MPORT" \
        --mqtt-ca "$W/ca.pem" --mqtt-cert "$W/keeld.pem" --mqtt-key "$W/keeld.key" >"$W/keeld.log" 2>&1 &
    PIDS+=($!)
    wait_for 10 test -s "$W/http.port" || kq_die "keeld did not start"
    URL="http://127.0.0.1:$(cat "$W/http.port")"
    wait_for 10 bash -c "curl -s $URL/v1/health | grep -q '\"mqtt\":\"connected\"'" || kq_die "keeld did not reach the broker"
    API=(--url "$URL" --token "$TOKEN")

    # ---- keys, bundles, the device -----------------------------------------------------------
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
}

online() { curl -s -H "Authorization: Bearer $TOKEN" "$URL/v1/devices/dev-1" | grep -q '"online":true'; }
offline() { ! online; }
alive_lines() { tr -d '\r' <"$W/raw.txt" | grep -c '^app| dbgtarget: alive'; }
alive_at_least() { [ "$(alive_lines)" -ge "$1" ]; }
start_device() { # BUNDLE [keel device run flags...]: install it (a factory install), run until online
    local bundle=$1; shift
    stop_device
    "$keel" device install --state "$STATE" "$W/$bundle" >/dev/null 2>"$W/install.err" ||
        kq_die "keel device install $bundle failed: $(cat "$W/install.err")"
    # Emptied here, not by the background job: the waits below must not read the last run's.
    : >"$W/raw.txt"
    timeout --kill-after=5 $((${DEVICE_SECONDS:-170} + 30)) "$keel" device run --state "$STATE" --firmware "$fw" --seconds "${DEVICE_SECONDS:-170}" \
        --broker "$MPORT" --append heartbeat=200 "$@" </dev/null >>"$W/raw.txt" 2>&1 &
    DEV=$!
    wait_for 60 online || kq_die "dev-1 did not come online with $bundle"
    wait_for 15 alive_at_least 1 || kq_die "dbgtarget did not start"
}
# kdebug OUT ARGS...: keel debug dev-1 in the background (KPID), the certificate from the device's state.
kdebug() {
    local out=$1; shift
    timeout "${KDEBUG_TIMEOUT:-150}" "$keel" debug dev-1 --device-state "$STATE" --fleet-ca "$W/ca.pem" "${API[@]}" \
        --timeout 20 "$@" >"$W/$out" 2>&1 &
    KPID=$!
}

