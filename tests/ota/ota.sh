#!/usr/bin/env bash
# OTA on the device: an emulated device (QEMU + microvisor + the ota app) against a real
# Mosquitto TLS broker and ota_srv (test-only update server, protocol v1), with bundles built and
# signed by the real `keel bundle build`. usage: ota.sh CASE KEEL OTA_SRV FIRMWARE APPS_DIR
#
# Cases:
#   download            v1 (factory-installed bundle) -> v2 offered: fetched over MQTT (only the
#                       blocks that differ), staged, the app defers then applies, v2 on trial,
#                       confirmed; the same offer again is a no-op; hello reports v2
#   delta               v2 as a delta bundle against v1 (`keel bundle build --base`): only the
#                       patch is fetched (manifest 392 B + the patch), decoded at staging time,
#                       applied, confirmed; the device then reports v2's region hash
#   refused             tampered, unknown key, wrong device type, older counter: each refused
#                       with its reason in UpdateStatus, nothing staged, v1 keeps running
#   resume              the device is stopped in the middle of the download; on its next boot
#                       it fetches only the missing blocks and completes (lost fetches re-asked)
#   trial-confirm       forced apply (Command UPDATE_APPLY) without the app; trial, confirm
#   crash-rollback      v3 crashes on start: rolled back by itself to v2, reported (CRASH)
#   noconfirm-rollback  a build that never confirms: rolled back at the end of its trial
#   fleet               the same story through keeld (`keel up`, `keel bundle upload`,
#                       `keel deploy`, `keel deploy status`): v2 deferred by the app then applied
#                       and confirmed; v3 crashes on start and rolls back; wrong-type and
#                       older-counter bundles refused by the device, reasons in deploy status
#   keeld-delta         a delta through keeld (`keel up`, `keel deploy v2.kb` uploading the delta
#                       beside it): keeld maps the device's image-only hello to v1's region and
#                       offers the delta for that base; only the delta bundle crosses the network
#                       (deploy status: delta, bytes sent), staged, applied, confirmed
#   e2e                 the issue's end-to-end test with three emulated devices through `keel up
#                       --app v1.kb`: v2 to all (--watch), the apps defer then apply and confirm;
#                       v3 crashes on one device and rolls back; wrong-type and older-counter
#                       bundles refused by the devices, tampered and unknown-key ones by keeld
#   rtos                the app with its own scheduler (firmware/apps/rtos) updated v1 -> v2:
#                       deferred and applied from its notify thread, confirmed on trial
#   powercut-apply      power cut at KEEL_OTA_KILLS (default 50) seeded random flash operations
#                       of the apply (KEEL_OTA_SEED): after each, the device boots a verified
#                       app, reconnects and converges to the deployed version (see below)
# Every process started here is stopped on exit; every wait is bounded; checks are on what the
# device and the server did, never on timings.
set -uo pipefail
case_=$1 keel=$2 srv=$3 fw=$4 apps=$5
for f in "$keel" "$srv" "$fw" "$apps/ota.elf"; do
    [ -f "$f" ] || { echo "FAIL ($case_): $f not found (run 'make' first)"; exit 1; }
done
for p in mosquitto openssl; do
    command -v "$p" >/dev/null || { echo "FAIL ($case_): $p not installed (scripts/packages/net.txt; run 'make deps')"; exit 1; }
done
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
W=$(mktemp -d "${TMPDIR:-/tmp}/keel-ota.XXXXXX") || exit 1
# shellcheck source=../net/procs.sh
. "$HERE/../net/procs.sh"
# keel, the relay and ota_srv are built with ASan/UBSan: a report of any of them fails the case.
. "$HERE/../lib/sanitizers.sh"
san_setup "$W"
FAILED=0
cleanup() {
    stop_pids
    if ! san_check "$W"; then
        echo "FAIL ($case_): a host process reported a sanitizer finding (above)"
        FAILED=1
    fi
    if [ "$FAILED" -ne 0 ]; then
        echo "---- device console ----"; tail -c 30000 "$W/console.txt" 2>/dev/null
        echo "---- ota_srv ----"; tail -n 60 "$W/srv.txt" 2>/dev/null
        echo "---- broker log ----"; tail -n 20 "$W/mosquitto.log" 2>/dev/null
    fi
    rm -rf "$W"
    [ "$FAILED" -eq 0 ] || exit 1
}
trap cleanup EXIT
# Stopped from outside (a timeout): still run the EXIT trap, so nothing started here survives.
trap 'FAILED=1; exit 1' TERM INT
fail() {
    echo "FAIL ($case_): $*"
    FAILED=1
    exit 1
}

# ---- PKI, broker, keys, bundles ------------------------------------------------------------------
STACK_SH="$HERE/../../scripts/stack.sh"
bash "$STACK_SH" certs "$W" broker keeld >/dev/null || fail "scripts/stack.sh certs failed"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
bash "$STACK_SH" broker-conf "$W" "$PORT" || fail "scripts/stack.sh broker-conf failed"
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
mosquitto -c "$W/mosquitto.conf" >>"$W/mosquitto.out" 2>&1 &
PIDS+=($!)
wait_for 10 port_open || fail "mosquitto did not start"

"$keel" keys new fleet --dir "$W/keys" >/dev/null || fail "keel keys new fleet failed"
"$keel" keys new rogue --dir "$W/keys" >/dev/null || fail "keel keys new rogue failed"
# bundle NAME ELF VERSION COUNTER [keel bundle build options...]
bundle() {
    local name=$1 elf=$2 ver=$3 ctr=$4; shift 4
    "$keel" bundle build "$apps/$elf.elf" --version "$ver" --counter "$ctr" --key "$W/keys/fleet.key" \
        --trial 20 --politeness 600 -o "$W/$name.kb" "$@" >/dev/null || fail "keel bundle build $name failed"
}
# The factory app: ota, or for case rtos the app with its own scheduler (firmware/apps/rtos).
v1_app=ota
if [ "$case_" = rtos ]; then
    v1_app=../rtos/rtos
    [ -f "$apps/$v1_app.elf" ] || { echo "FAIL ($case_): $apps/$v1_app.elf not found (run 'make' first)"; exit 1; }
fi
bundle v1 "$v1_app" 1.0.0 1

STATE=$W/state
"$keel" device provision --state "$STATE" --id dev-1 --fleet-ca "$W/ca.pem" --fleet-ca-key "$W/ca.key" \
    --update-key "$W/keys/fleet.pub" >/dev/null || fail "keel device provision failed"
out=$("$keel" device install --state "$STATE" "$W/v1.kb" 2>&1) || fail "keel device install v1.kb failed: $out"
grep -q 'installed bundle 1.0.0' <<<"$out" || fail "unexpected install output: $out"

# ---- device and server ---------------------------------------------------------------------------
KEEL_PID="" SRV_PID="" SRV_SECONDS=190
start_device() { # SECONDS [words for --append]
    timeout --kill-after=5 $(($1 + 30)) "$keel" device run --state "$STATE" --firmware "$fw" \
        --seconds "$1" --broker "$PORT" --append "net-heartbeat=60000 ${2:-}" </dev/null >>"$W/console.txt" 2>&1 &
    KEEL_PID=$!
    PIDS+=("$KEEL_PID")
}
stop_device() { sigterm "$KEEL_PID"; wait "$KEEL_PID" 2>/dev/null; }
start_srv() { # BUNDLE DEPLOYMENT [ota_srv options...]
    local b=$1 d=$2; shift 2
    : >"$W/srv.txt"
    timeout --kill-after=5 $((SRV_SECONDS + 10)) "$srv" --port "$PORT" --ca "$W/ca.pem" --cert "$W/keeld.pem" \
        --key "$W/keeld.key" --device dev-1 --bundle "$W/$b.kb" --deployment "$d" --seconds "$SRV_SECONDS" \
        "$@" >>"$W/srv.txt" 2>&1 &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
}
stop_srv() { kill -TERM "$SRV_PID" 2>/dev/null; wait "$SRV_PID" 2>/dev/null; }
console_has() { grep -qE -- "$1" "$W/console.txt" 2>/dev/null; }
console_count() { grep -cE -- "$1" "$W/console.txt" 2>/dev/null; }
srv_has() { grep -qE -- "$1" "$W/srv.txt" 2>/dev/null; }
expect_console() { wait_for "$1" console_has "$2" || fail "the device console never showed '$2' within $1 s"; }
expect_srv() { wait_for "$1" srv_has "$2" || fail "the server never saw '$2' within $1 s"; }

# Download, defer, apply, trial, confirm of bundle NAME (version VER) under deployment DEP.
update_to() { # NAME VER DEP
    start_srv "$1" "$3"
    expect_srv 60 "status dep=$3 state=1 "
    expect_console 120 "update: $2 staged and verified"
    expect_srv 10 "status dep=$3 state=2 "
    expect_console 20 'ota: work done: keel_update_apply\(\)'
    expect_console 60 "update: applied in .* $2 runs on trial"
    expect_console 20 "ota: running app version $2"
    expect_console 10 'ota: started, previous run ended by update'
    expect_console 20 'ota: healthy: keel_update_confirm\(\) ok'
    expect_console 10 "update: $2 confirmed by the app: installed"
    expect_srv 20 "status dep=$3 state=0 result=1 .*installed=$2 "
}

# keeld_stack: keeld and its broker through `keel up` (no devices; stopped on exit), and dev-1
# provisioned for them with v1.kb installed (STATE; PORT is the stack's broker).
keeld_stack() {
    STACK=$W/stack
    export KEEL_CONFIG=$STACK/secrets/config KEELD_UPDATE_KEYS=$W/keys/fleet.pub
    timeout 60 "$keel" up --state "$STACK" --devices 0 >"$W/up.txt" 2>&1 || { cat "$W/up.txt"; fail "keel up failed"; }
    trap 'timeout 30 "$keel" down --state "$STACK" >/dev/null 2>&1; cleanup' EXIT
    PORT=$(sed -n 's/.*mosquitto on 127.0.0.1:\([0-9]*\).*/\1/p' "$W/up.txt")
    [ -n "$PORT" ] || fail "keel up did not say its broker port: $(cat "$W/up.txt")"
    STATE=$W/fleet-dev
    "$keel" device provision --state "$STATE" --id dev-1 --fleet-ca "$STACK/ca.pem" \
        --fleet-ca-key "$STACK/secrets/ca.key" --update-key "$W/keys/fleet.pub" >/dev/null || fail "provisioning failed"
    "$keel" device install --state "$STATE" "$W/v1.kb" >/dev/null || fail "install v1.kb failed"
}

case $case_ in
download)
    # v2 carries a debug key in its policy: once installed, the microvisor holds it for the
    # debug stub (uv_upd_debug_key) and says so.
    bundle v2 ota 1.1.0 2 --debug-key "$W/keys/rogue.pub"
    start_device 200
    console_has 'allows debug sessions' && fail "v1 has no debug key, yet one was reported"
    expect_console 30 'net: connected to broker'
    expect_console 5 'app started'
    update_to v2 1.1.0 7
    expect_console 5 'update: the installed bundle allows debug sessions signed by key [0-9a-f]{16}'
    expect_srv 10 'hello app=1.1.0' # a new hello says what is installed now, without a reboot
    # Only what differs was fetched: the manifest and 2 of 129 blocks (header page + image).
    line=$(grep -m1 'update: deployment 7: .* of 129 blocks to fetch' "$W/console.txt")
    n=$(sed -n 's/.*: \([0-9]*\) of 129 blocks.*/\1/p' <<<"$line")
    [ -n "$n" ] && [ "$n" -le 3 ] && [ "$n" -ge 1 ] || fail "expected 1..3 blocks to fetch, got: $line"
    size=$(stat -c %s "$W/v2.kb")
    served=$(grep -o 'served=[0-9]*' "$W/srv.txt" | tail -n 1 | cut -d= -f2)
    [ "$served" -le "$size" ] || fail "served $served bytes of a $size-byte bundle"
    # Hello reports the new version; the same offer again is a no-op with the status re-sent.
    stop_srv
    start_srv v2 7
    # The status is the device's answer to this offer: handled (and logged) before it was sent.
    expect_srv 20 'status dep=7 state=0 result=1 '
    console_has 'update: offer of deployment 7: .*' && [ "$(console_count 'update: offer of deployment 7')" -gt 1 ] &&
        fail "the same offer again started a second download"
    # After a reboot the device knows it is installed: nothing to do.
    stop_srv; stop_device
    start_srv v2 7
    start_device 60
    expect_srv 60 'hello app=1.1.0'
    expect_console 60 'update: deployment 7 is already installed'
    expect_srv 20 'status dep=7 state=0 result=1 .*detail=already installed'
    ;;
delta)
    bundle v2 ota 1.1.0 2 --base "$W/v1.kb"
    d=$(cd "$W" && ls v2.delta-*.kb) || fail "no delta bundle was written"
    start_device 200
    expect_console 30 'net: connected to broker'
    update_to "${d%.kb}" 1.1.0 9
    expect_srv 10 'hello app=1.1.0'
    line=$(grep -m1 'update: deployment 9: .* of 129 blocks to fetch' "$W/console.txt")
    [ "$(sed -n 's/.*: \([0-9]*\) of 129 blocks.*/\1/p' <<<"$line")" = 1 ] ||
        fail "expected the patch in 1 block, got: $line"
    size=$(stat -c %s "$W/$d")
    served=$(grep -o 'served=[0-9]*' "$W/srv.txt" | tail -n 1 | cut -d= -f2)
    [ -n "$served" ] && [ "$served" -le "$size" ] || fail "served ${served:-?} bytes of a $size-byte delta"
    echo "delta: $size-byte delta bundle, $served bytes served" >&2
    ;;
refused)
    bundle older ota 1.2.0 0
    bundle wrongtype ota 1.2.0 5 --device-type 0x999
    "$keel" bundle build "$apps/ota.elf" --version 1.2.0 --counter 5 --key "$W/keys/rogue.key" \
        -o "$W/unknownkey.kb" >/dev/null || fail "bundle build (rogue key) failed"
    bundle good ota 1.2.0 5
    # Tampered: one byte of the signed manifest (the version field) changed after signing.
    cp "$W/good.kb" "$W/tampered.kb"
    printf '\x09' | dd of="$W/tampered.kb" bs=1 seek=13 conv=notrunc status=none
    # The CLI's factory install and key provisioning refuse bad input, saying why, writing nothing.
    out=$("$keel" device install --state "$STATE" "$W/tampered.kb" 2>&1) && fail "a tampered bundle was installed: $out"
    grep -q 'refused: .*signature.*(nothing was written)' <<<"$out" || fail "unclear refusal: $out"
    out=$("$keel" device info --state "$STATE" 2>&1)
    grep -q 'app: *ota 1.0.0' <<<"$out" || fail "the tampered install changed the app: $out"
    out=$("$keel" device provision --state "$W/k1" --update-key "$W/keys/fleet.key" 2>&1) && fail "a private key was taken as a public key"
    grep -q 'not a PEM public key' <<<"$out" || fail "unclear error for a private key: $out"
    out=$("$keel" device provision --state "$W/k1" --update-key "$W/nope.pub" 2>&1) && fail "a missing key file was accepted"
    grep -q 'cannot read the file' <<<"$out" || fail "unclear error for a missing key: $out"
    out=$("$keel" device provision --state "$STATE" --update-key "$W/keys/rogue.pub" 2>&1) && fail "the update keys were changed"
    grep -q 'already trusts other update keys' <<<"$out" || fail "unclear error for other keys: $out"
    "$keel" device install --state "$W/k2" --id k2 "$apps/ota.elf" >/dev/null || fail "installing an ELF failed"
    out=$("$keel" device install --state "$W/k2" "$W/good.kb" 2>&1) && fail "a device without update keys installed a bundle"
    grep -q 'trusts no bundle signing key' <<<"$out" || fail "unclear error without keys: $out"
    # `keel device run --install APP.kb`: the same factory install, then the device runs.
    out=$(timeout 60 "$keel" device run --state "$W/r2" --id r2 --update-key "$W/keys/fleet.pub" \
        --install "$W/tampered.kb" --firmware "$fw" --seconds 5 2>&1) && fail "device run installed a tampered bundle: $out"
    grep -q 'refused: .*signature.*(nothing was written)' <<<"$out" || fail "device run: unclear refusal: $out"
    grep -q 'Keel microvisor' <<<"$out" && fail "the device ran after a refused install: $out"
    out=$(timeout 60 "$keel" device run --state "$W/r3" --install "$W/good.kb" --app-version 1.0.0 2>&1)
    [ $? -eq 2 ] && grep -q 'do not go with a bundle' <<<"$out" || fail "device run: bundle with --app-version: $out"
    out=$(timeout 60 "$keel" device run --state "$W/r1" --id r1 --update-key "$W/keys/fleet.pub" \
        --install "$W/v1.kb" --firmware "$fw" --seconds 6 2>&1) || fail "device run --install v1.kb failed: $out"
    grep -q 'installed bundle 1.0.0 (security counter 1' <<<"$out" || fail "device run: no factory install: $out"
    grep -q 'ota: running app version 1.0.0' <<<"$out" || fail "device run: v1 did not run: $out"
    start_device 200
    expect_console 30 'net: connected to broker'
    d=10
    for b in tampered unknownkey wrongtype older; do
        d=$((d + 1))
        case $b in
        tampered) want='result=5 code=-404 .*detail=refused: the signature does not verify' ;;
        unknownkey) want='result=6 code=-403 .*detail=refused: signed by a key this device does not trust' ;;
        wrongtype) want='result=6 code=-405 .*detail=refused: built for device type 0x999' ;;
        older) want='result=6 code=-406 .*detail=refused: security counter 0 < installed 1' ;;
        esac
        start_srv "$b" "$d"
        expect_srv 60 "status dep=$d state=0 $want"
        stop_srv
    done
    console_has 'staged and verified' && fail "a refused bundle was staged"
    console_has 'update: deployment .*accepted' && fail "a refused bundle was accepted"
    [ "$(console_count 'app started')" -eq 1 ] || fail "the app was restarted by a refused update"
    console_has 'ota: running app version 1.0.0' || fail "v1 is not running"
    ;;
resume)
    bundle v2 ota-big 2.0.0 2
    start_device 200 'heartbeat=100000'
    expect_console 30 'net: connected to broker'
    # Every 7th fetch goes unanswered: the device asks again after its timeout.
    start_srv v2 21 --drop-every 7
    expect_console 60 'update: deployment 21: [0-9]+ of 129 blocks to fetch'
    total=$(sed -n 's/.*deployment 21: \([0-9]*\) of 129 blocks to fetch.*/\1/p' "$W/console.txt" | head -n 1)
    [ "$total" -ge 20 ] || fail "expected a whole new app (>= 20 blocks), got $total"
    some_staged() { grep -qE 'status dep=21 state=1 .*staged=([5-9]|[1-9][0-9])' "$W/srv.txt"; }
    wait_for 120 some_staged || fail "no progress of the download"
    stop_device
    stop_srv
    grep -q 'dropped fetch' "$W/srv.txt" || fail "the server dropped no fetch"
    console_has 'staged and verified' && fail "the download completed before the device was stopped"
    before=$(grep -oE 'staged=[0-9]+' "$W/srv.txt" | tail -n 1 | cut -d= -f2)
    echo "--- reboot ---" >>"$W/console.txt"
    start_srv v2 21
    start_device 200
    second_scan() { [ "$(console_count 'update: deployment 21: [0-9]+ of 129 blocks to fetch')" -ge 2 ]; }
    wait_for 60 second_scan || fail "the device did not resume the download after its reboot"
    left=$(sed -n 's/.*deployment 21: \([0-9]*\) of 129 blocks to fetch.*/\1/p' "$W/console.txt" | tail -n 1)
    [ "$left" -le $((total - before)) ] || fail "after the reboot $left blocks were asked for; $before of $total were staged before"
    expect_console 120 'update: 2.0.0 staged and verified'
    expect_console 60 'update: applied in'
    expect_console 30 'ota: healthy: keel_update_confirm\(\) ok'
    expect_srv 30 'status dep=21 state=0 result=1 .*installed=2.0.0 '
    ;;
trial-confirm)
    bundle v2 ota 1.1.0 2
    start_device 200
    expect_console 30 'net: connected to broker'
    start_srv v2 31 --apply-when-staged
    expect_srv 120 'command apply id=4242'
    expect_srv 20 'result id=4242 status=1'
    expect_console 20 'update: the cloud forces the apply'
    expect_console 20 'update: applying 1.1.0 without the app: forced by the cloud'
    expect_console 60 'update: 1.1.0 runs on trial: it must call keel_update_confirm\(\) within 20 s'
    expect_srv 30 'status dep=31 state=3 .*trial=1 '
    expect_console 20 'ota: on trial: confirming'
    expect_console 20 'update: 1.1.0 confirmed by the app'
    expect_srv 30 'status dep=31 state=0 result=1 code=0 trial=0 .*installed=1.1.0 '
    console_has 'ota: work done' && fail "the app applied although the cloud forced it first"
    ;;
crash-rollback|noconfirm-rollback)
    bundle v2 ota 2.0.0 2
    if [ "$case_" = crash-rollback ]; then
        bundle v3 ota-crash 3.0.0 3
        reason='crash on trial' code=1
    else
        bundle v3 ota-noconfirm 3.0.0 3
        reason='no confirmation in the trial period' code=2
    fi
    start_device 220
    expect_console 30 'net: connected to broker'
    update_to v2 2.0.0 41
    stop_srv
    start_srv v3 42
    expect_console 120 'update: 3.0.0 staged and verified'
    expect_console 60 'update: applied in .* 3.0.0 runs on trial'
    if [ "$case_" = crash-rollback ]; then
        expect_console 30 'update: 3.0.0 crashed on trial'
    else
        expect_console 20 'ota: on trial: confirming'
        expect_console 40 'update: 3.0.0 did not confirm within 20 s: rolling back'
    fi
    expect_console 60 "update: rolled back in .* \($reason\): the previous app runs again"
    expect_console 20 'ota: started, previous run ended by rollback'
    expect_console 10 'ota: running app version 2.0.0'
    expect_srv 30 "status dep=42 state=0 result=8 code=$code "
    # Offered again: not applied again (the journal remembers the bundle that failed).
    stop_srv
    start_srv v3 42
    # The device's answer to the new offer is the evidence it was handled; only then may the
    # count of applies say it was not applied again.
    expect_srv 60 "status dep=42 state=0 result=8 "
    [ "$(console_count 'update: applied in .* 3.0.0 runs on trial')" -eq 1 ] || fail "the failed bundle was applied again"
    ;;
fleet)
    keeld_stack
    bundle v2 ota 1.1.0 2
    bundle v3 ota-crash 3.0.0 3
    bundle older ota 1.2.0 1
    bundle wrongtype ota 1.2.0 5 --device-type 0x999
    start_device 240
    expect_console 30 'net: connected to broker'
    keelc() { timeout 30 "$keel" "$@" >"$W/keel.out" 2>&1; }
    deploy() { # NAME: sets DEP
        keelc deploy "$W/$1.kb" --to dev-1 --json || fail "keel deploy $1: $(cat "$W/keel.out")"
        DEP=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$W/keel.out") ||
            fail "keel deploy $1 printed no id: $(cat "$W/keel.out")"
    }
    status_has() { keelc deploy status "$DEP" && grep -qE -- "$1" "$W/keel.out"; }
    expect_status() { wait_for "$1" status_has "$2" || fail "deploy status $DEP never showed '$2': $(cat "$W/keel.out")"; }
    deploy v2
    expect_status 120 'dev-1 .*(downloading|downloaded|updating|on trial|success)'
    expect_console 120 'update: 1.1.0 staged and verified'
    expect_console 20 'ota: work done: keel_update_apply\(\)'
    expect_console 60 'update: 1.1.0 confirmed by the app'
    expect_status 60 'dev-1 .*success'
    expect_status 5 '1 succeeded'
    deploy v3
    expect_console 120 'update: 3.0.0 crashed on trial'
    expect_console 60 'update: rolled back in .* \(crash on trial\)'
    expect_console 20 'ota: running app version 1.1.0'
    expect_status 60 'dev-1 .*update_failed'
    expect_status 5 '1 failed'
    # A bundle for another device type: keeld refuses it, naming the board it found (the
    # microvisor's own device-type check is case `refused`).
    keelc deploy "$W/wrongtype.kb" --to dev-1 && fail "keeld deployed the wrongtype bundle: $(cat "$W/keel.out")"
    grep -q 'built for device type 0x999, which none of the 1 targeted devices can install: they are 1 an505 (0x505)' \
        "$W/keel.out" || fail "deploy wrongtype: unclear refusal: $(cat "$W/keel.out")"
    for b in older; do
        deploy "$b"
        want='security counter 1 < installed 2'
        expect_status 60 'dev-1 .*unsupported_package'
        expect_status 5 "$want"
    done
    console_has 'update: 1.2.0 staged' && fail "a refused bundle was staged"
    ;;
keeld-delta)
    keeld_stack
    bundle v2 ota 1.1.0 2 --base "$W/v1.kb"
    d=$(cd "$W" && ls v2.delta-*.kb) || fail "no delta bundle was written"
    keelc() { timeout 60 "$keel" "$@" >"$W/keel.out" 2>&1; }
    # keeld knows v1 (the factory image): the microvisor's hello names its image, keeld finds the
    # region of the bundle with that image, the base of the delta.
    keelc bundle upload "$W/v1.kb" || fail "upload v1.kb: $(cat "$W/keel.out")"
    start_device 240
    expect_console 30 'net: connected to broker'
    keelc deploy "$W/v2.kb" --to dev-1 || fail "keel deploy v2: $(cat "$W/keel.out")"
    grep -q 'a delta for devices whose app region is' "$W/keel.out" || fail "keel deploy did not upload the delta: $(cat "$W/keel.out")"
    DEP=$(sed -n 's/^deployment \([0-9]*\): .*/\1/p' "$W/keel.out" | head -n 1)
    [ -n "$DEP" ] || fail "no deployment id: $(cat "$W/keel.out")"
    status_has() { keelc deploy status "$DEP" && grep -qE -- "$1" "$W/keel.out"; }
    expect_console 120 'update: 1.1.0 staged and verified'
    expect_console 20 'ota: work done: keel_update_apply\(\)'
    expect_console 60 'update: 1.1.0 confirmed by the app'
    wait_for 60 status_has 'dev-1 .*success .* delta ' || fail "deploy status: $(cat "$W/keel.out")"
    grep -q 'delivery: 1 delta' "$W/keel.out" || fail "deploy status summary: $(cat "$W/keel.out")"
    line=$(grep -m1 "update: deployment $DEP: .* of 129 blocks to fetch" "$W/console.txt")
    [ "$(sed -n 's/.*: \([0-9]*\) of 129 blocks.*/\1/p' <<<"$line")" = 1 ] ||
        fail "expected the patch in 1 block, got: $line"
    keelc deploy status "$DEP" --json || fail "deploy status --json"
    sent=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["devices"][0]["bytes_sent"])' "$W/keel.out")
    size=$(stat -c %s "$W/$d")
    [ "$sent" -ge "$size" ] && [ "$sent" -le $((2 * size)) ] || fail "keeld sent $sent bytes for a $size-byte delta"
    echo "keeld-delta: $size-byte delta bundle, $sent bytes sent" >&2
    ;;
e2e)
    # The issue's end-to-end story with real emulated devices through `keel up`: three devices
    # factory-installed with a signed v1 (`keel up --app v1.kb`); v2 deployed to all with
    # --watch: each app defers, then applies, confirms; v3 (crashes on start) to one device rolls
    # back by itself, reported failed with its reason; an older-counter bundle is refused by the
    # devices (reasons in deploy status), a wrong-type bundle by keeld at deploy (no device's
    # board takes it); tampered and unknown-key bundles are refused by keeld at upload (the
    # devices' own refusal of those is case `refused`).
    STACK=$W/stack
    mkdir -p "$STACK/secrets" && cp "$W/keys/fleet.key" "$STACK/secrets/" && cp "$W/keys/fleet.pub" "$STACK/" || fail "cannot set up $STACK"
    export KEEL_CONFIG=$STACK/secrets/config KEEL_FIRMWARE=$fw
    trap 'timeout 60 "$keel" down --state "$STACK" >/dev/null 2>&1; cleanup' EXIT
    keelc() { timeout 60 "$keel" "$@" >"$W/keel.out" 2>&1; }
    out() { cat "$W/keel.out"; }
    # A bundle the devices do not trust: keel up fails naming the device's reason.
    mkdir -p "$W/bad" && cp "$W/keys/fleet.key" "$W/keys/fleet.pub" "$W/bad/" || fail "cannot set up $W/bad"
    "$keel" bundle build "$apps/ota.elf" --version 1.0.0 --counter 1 --key "$W/keys/rogue.key" \
        -o "$W/rogue-v1.kb" >/dev/null || fail "bundle build (rogue key) failed"
    timeout 120 "$keel" up --state "$W/bad" --devices 1 --app "$W/rogue-v1.kb" >"$W/up.txt" 2>&1 &&
        fail "keel up with an untrusted bundle succeeded"
    grep -q 'refused: bundle is signed by a key this device does not trust' "$W/up.txt" ||
        fail "keel up with an untrusted bundle: unclear error: $(cat "$W/up.txt")"
    grep -q 'no ELF for rogue-v1.kb (--elf ELF)' "$W/up.txt" || fail "keel up did not say the ELF is missing: $(cat "$W/up.txt")"
    [ -e "$W/bad/pids" ] && fail "a failed keel up left processes: $(cat "$W/bad/pids")"
    timeout 300 "$keel" up --state "$STACK" --devices 3 --app "$W/v1.kb" --elf "$apps/ota.elf" \
        >"$W/up.txt" 2>&1 || { cat "$W/up.txt"; fail "keel up --app v1.kb failed"; }
    grep -q 'made the fleet signing key' "$W/up.txt" && fail "keel up replaced the fleet key it was given"
    grep -q 'gave keeld ota.elf for crash symbolication' "$W/up.txt" || fail "--elf not uploaded: $(cat "$W/up.txt")"
    for d in dev-1 dev-2 dev-3; do
        grep -q "installed bundle 1.0.0 (security counter 1" "$STACK/devices/$d/console.log" ||
            fail "$d was not factory-installed with v1.kb: $(head -20 "$STACK/devices/$d/console.log")"
    done
    keelc devices || fail "keel devices: $(out)"
    for d in dev-1 dev-2 dev-3; do
        grep -qE "^$d +yes +1\.0\.0 " "$W/keel.out" || fail "$d is not online with 1.0.0: $(out)"
    done
    bundle v2 ota 1.1.0 2
    bundle v3 ota-crash 3.0.0 3
    bundle older ota 1.2.0 1
    bundle wrongtype ota 1.2.0 5 --device-type 0x999
    # v2 to all, watched to the end: exit 0 only when every device succeeded.
    timeout 240 "$keel" deploy "$W/v2.kb" --all --watch >"$W/watch.txt" 2>&1 ||
        fail "keel deploy v2 --all --watch did not end with 0: $(tail -30 "$W/watch.txt")"
    grep -q '3 devices: 3 succeeded, 0 failed' "$W/watch.txt" || fail "watch summary: $(tail -10 "$W/watch.txt")"
    DEP=$(sed -n 's/^deployment \([0-9]*\): .*/\1/p' "$W/watch.txt" | head -n 1)
    [ -n "$DEP" ] || fail "no deployment id in the watch output: $(head "$W/watch.txt")"
    for d in dev-1 dev-2 dev-3; do
        c=$STACK/devices/$d/console.log
        for l in 'ota: update 1.1.0 staged; applying it after my work is done' \
            'ota: work done: keel_update_apply\(\)' 'update: applied in .* 1.1.0 runs on trial' \
            'ota: healthy: keel_update_confirm\(\) ok' 'update: 1.1.0 confirmed by the app'; do
            # waited for: keeld can record the success (from the device's status, or from its
            # hello once the trial ended) before the app's own line after the confirm is printed
            wait_for 10 grep -qE -- "$l" "$c" || fail "$d console lacks '$l': $(tail -30 "$c")"
        done
    done
    keelc deploy status "$DEP" || fail "deploy status: $(out)"
    for d in dev-1 dev-2 dev-3; do
        grep -qE "^$d .* success .*1\.1\.0 -> 1\.1\.0" "$W/keel.out" || fail "$d not success: $(out)"
    done
    grep -q '3 devices: 3 succeeded, 0 failed' "$W/keel.out" || fail "status summary: $(out)"
    # v3 crashes on start on dev-2: rolled back to v2 by itself, reported failed with the reason;
    # --watch ends with 1 (a device failed).
    keelc deploy "$W/v3.kb" --to dev-2 || fail "deploy v3: $(out)"
    DEP3=$(sed -n 's/^deployment \([0-9]*\)[: ].*/\1/p' "$W/keel.out" | head -n 1)
    [ -n "$DEP3" ] || fail "no deployment id: $(out)"
    rc=0
    timeout 200 "$keel" deploy status "$DEP3" --watch >"$W/watch3.txt" 2>&1 || rc=$?
    [ "$rc" -eq 1 ] || fail "watch of the crashing v3 ended with $rc, not 1: $(tail -20 "$W/watch3.txt")"
    keelc deploy status "$DEP3" || fail "deploy status: $(out)"
    grep -qE '^dev-2 .* update_failed ' "$W/keel.out" || fail "dev-2 not update_failed: $(out)"
    grep -qE 'update_failed \(code [0-9]+\): rolled back: the new app crashed on trial' "$W/keel.out" || fail "no rollback reason: $(out)"
    grep -q '1 devices: 0 succeeded, 1 failed' "$W/keel.out" || fail "v3 summary: $(out)"
    c=$STACK/devices/dev-2/console.log
    for l in 'ota: this build crashes at start' 'update: 3.0.0 crashed on trial' \
        'update: rolled back in .* \(crash on trial\): the previous app runs again' \
        'ota: started, previous run ended by rollback'; do
        grep -qE -- "$l" "$c" || fail "dev-2 console lacks '$l': $(tail -30 "$c")"
    done
    grep -q 'update: 3.0.0' "$STACK/devices/dev-1/console.log" && fail "dev-1 got v3"
    # Refused by keeld: a bundle for another device type than the devices' board (the
    # microvisor's own device-type check is case `refused`).
    keelc deploy "$W/wrongtype.kb" --all && fail "keeld deployed the wrongtype bundle: $(out)"
    grep -q 'built for device type 0x999, which none of the 3 targeted devices can install: they are 3 an505 (0x505)' \
        "$W/keel.out" || fail "deploy wrongtype: unclear refusal: $(out)"
    # Refused by the devices: an older security counter, the reason per device.
    for b in older; do
        want='security counter 1 < installed 2'
        keelc deploy "$W/$b.kb" --all || fail "deploy $b: $(out)"
        D=$(sed -n 's/^deployment \([0-9]*\)[: ].*/\1/p' "$W/keel.out" | head -n 1)
        rc=0
        timeout 120 "$keel" deploy status "$D" --watch >"$W/watch-$b.txt" 2>&1 || rc=$?
        [ "$rc" -eq 1 ] || fail "watch of $b ended with $rc, not 1: $(tail -20 "$W/watch-$b.txt")"
        keelc deploy status "$D" || fail "deploy status: $(out)"
        grep -q '3 devices: 0 succeeded, 3 failed' "$W/keel.out" || fail "$b summary: $(out)"
        [ "$(grep -cE '^dev-[123] .* unsupported_package ' "$W/keel.out")" -eq 3 ] || fail "$b: $(out)"
        [ "$(grep -c "$want" "$W/keel.out")" -eq 3 ] || fail "$b: reason '$want' not shown per device: $(out)"
    done
    # Refused by keeld before any device sees them, with the reason printed.
    "$keel" bundle build "$apps/ota.elf" --version 1.3.0 --counter 6 --key "$W/keys/rogue.key" \
        -o "$W/unknownkey.kb" >/dev/null || fail "bundle build (rogue key) failed"
    bundle good ota 1.3.0 6
    cp "$W/good.kb" "$W/tampered.kb"
    printf '\x09' | dd of="$W/tampered.kb" bs=1 seek=13 conv=notrunc status=none
    for b in tampered unknownkey; do
        case $b in
        tampered) want='the signature does not verify with fleet key .*tampered' ;;
        unknownkey) want='which is not a fleet signing key of this keeld' ;;
        esac
        keelc bundle upload "$W/$b.kb" && fail "keeld took the $b bundle: $(out)"
        grep -qE "$want" "$W/keel.out" || fail "bundle upload $b: unclear refusal: $(out)"
        keelc deploy "$W/$b.kb" --all && fail "keeld deployed the $b bundle: $(out)"
        grep -qE "$want" "$W/keel.out" || fail "deploy $b: unclear refusal: $(out)"
    done
    for d in dev-1 dev-2 dev-3; do
        grep -q 'update: 1.2.0 staged\|update: 1.3.0' "$STACK/devices/$d/console.log" && fail "$d staged a refused bundle"
    done
    keelc devices || fail "keel devices: $(out)"
    for d in dev-1 dev-2 dev-3; do
        grep -qE "^$d +yes +1\.1\.0 " "$W/keel.out" || fail "$d does not run 1.1.0 at the end: $(out)"
    done
    timeout 60 "$keel" down --state "$STACK" >"$W/down.txt" 2>&1 || fail "keel down: $(cat "$W/down.txt")"
    grep -q 'stopped (5 processes)' "$W/down.txt" || fail "keel down: $(cat "$W/down.txt")"
    # keel up again with v1.kb: the devices keep v2 (a bundle is the factory install only).
    timeout 300 "$keel" up --state "$STACK" --devices 3 --app "$W/v1.kb" >"$W/up.txt" 2>&1 ||
        { cat "$W/up.txt"; fail "the second keel up failed"; }
    [ "$(grep -c 'keeps the app it runs' "$W/up.txt")" -eq 3 ] || fail "second keel up: $(cat "$W/up.txt")"
    keelc devices || fail "keel devices: $(out)"
    for d in dev-1 dev-2 dev-3; do
        grep -qE "^$d +yes +1\.1\.0 " "$W/keel.out" || fail "$d does not run 1.1.0 after keel up again: $(out)"
        grep -q '^installed bundle' "$STACK/devices/$d/console.log" && fail "$d was installed again"
    done
    timeout 60 "$keel" down --state "$STACK" >"$W/down.txt" 2>&1 || fail "keel down: $(cat "$W/down.txt")"
    ;;
deadlines)
    # The microvisor applies a staged update without the app once the bundle's politeness
    # deadline passes, sooner when the offer says --force-after, at once with --force; each time
    # before the running app (which defers 3 s) gets to apply it, and not before the deadline:
    # heartbeats (200 ms) between "staged" and the apply span at least the deadline minus two
    # periods.
    start_device 300 heartbeat=200
    expect_console 30 'net: connected to broker'
    ctr=2 dep=61
    for spec in "1.1.0|--politeness 1||its politeness deadline passed|1000" \
                "1.2.0|--politeness 600|--force-after 2|its politeness deadline passed|2000" \
                "1.3.0|--politeness 600|--force|forced by the cloud|0"; do
        IFS='|' read -r ver bopt sopt why min_ms <<<"$spec"
        # shellcheck disable=SC2086
        bundle "d$ctr" ota "$ver" "$ctr" $bopt
        : >"$W/console.txt"
        # shellcheck disable=SC2086
        start_srv "d$ctr" "$dep" $sopt
        expect_console 120 "update: $ver staged and verified"
        expect_console 20 "update: applying $ver without the app: $why"
        expect_console 60 "update: applied in .* $ver runs on trial"
        expect_console 20 'ota: healthy: keel_update_confirm\(\) ok'
        expect_srv 20 "status dep=$dep state=0 result=1 .*installed=$ver "
        console_has 'ota: work done: keel_update_apply' && fail "$ver: the app applied it, not the deadline ($why)"
        span=$(awk -v v="$ver" '
            index($0, "update: " v " staged and verified") { on = 1; next }
            on && index($0, "update: applying " v " without the app") { print last - first; exit }
            on && match($0, /^\[keel\] heartbeat up=[0-9]+ms/) {
                up = substr($0, 21, RLENGTH - 22) + 0; if (!seen) { first = up; seen = 1 } last = up }' "$W/console.txt")
        [ "${span:-0}" -ge $((min_ms - 400)) ] || fail "$ver applied after ${span:-?} ms of heartbeats, before its ${min_ms} ms deadline"
        echo "deadlines: $ver ($why) applied after $span ms of heartbeats"
        stop_srv
        ctr=$((ctr + 1)) dep=$((dep + 1))
    done
    stop_device
    ;;
powercut-apply)
    # One download to STAGED (the apply waits for the 1 s politeness deadline of the bundle),
    # snapshot of the flash files; a calibration boot without network logs the internal flash
    # operations of the apply [S, E]. Then per round: restore the snapshot, boot with power cut
    # at a seeded random operation N in (S, E] (QEMU exits as the supply fails: the torn
    # operation is in the files), boot again with the network: the apply resumes (or rolls
    # back), a verified app starts, the device reconnects and reports 2.0.0 installed.
    kills=${KEEL_OTA_KILLS:-50} seed=${KEEL_OTA_SEED:-1234}
    SRV_SECONDS=$((60 + kills * 15)) # one server for every round
    bundle v2 ota-big 2.0.0 2 --politeness 1
    start_srv v2 51
    start_device 200
    expect_console 120 'update: 2.0.0 staged and verified'
    stop_device
    console_has 'update: app stopped for the update' && fail "the apply began before the snapshot"
    cp -a "$STATE" "$W/staged" || fail "snapshot failed"
    restore() { rm -rf "$STATE" && cp -a "$W/staged" "$STATE"; }
    timeout 60 "$keel" device run --state "$STATE" --firmware "$fw" --seconds 8 >"$W/cal.txt" 2>&1
    s_op=$(sed -n 's/.*applying 2.0.0 over 1.0.0 (internal flash op \([0-9]*\)).*/\1/p' "$W/cal.txt")
    e_op=$(sed -n 's/.*(up to internal flash op \([0-9]*\)); 2.0.0 runs on trial.*/\1/p' "$W/cal.txt")
    [ -n "$s_op" ] && [ -n "$e_op" ] && [ "$e_op" -gt $((s_op + 20)) ] ||
        { cat "$W/cal.txt"; fail "calibration: no apply span in the console (got '$s_op'..'$e_op')"; }
    echo "apply spans internal flash operations $((s_op + 1))..$e_op; $kills cuts, seed $seed"
    RANDOM=$seed
    t0=$(date +%s)
    for round in $(seq "$kills"); do
        n=$((s_op + 1 + (RANDOM * 32768 + RANDOM) % (e_op - s_op)))
        restore || fail "restoring the snapshot failed"
        timeout 60 "$keel" device run --state "$STATE" --firmware "$fw" --seconds 20 --powercut "$n" \
            >"$W/cut.txt" 2>&1
        rc=$?
        grep -q 'power cut (fault injection)' "$W/cut.txt" && [ "$rc" -eq 86 ] ||
            { cat "$W/cut.txt"; fail "round $round: no power cut at operation $n (exit $rc)"; }
        : >"$W/console.txt"
        : >"$W/srv.txt"
        start_device 60
        expect_console 30 'update: (boot check done|2.0.0 runs on trial|applied in)'
        expect_console 30 'app started'
        expect_console 10 'ota: running app version 2.0.0'
        expect_console 30 'net: connected to broker'
        expect_srv 30 'status dep=51 state=0 result=1 .*installed=2.0.0 '
        how=$(grep -oE 'a power cut interrupted the [a-z]+|journal: [a-z]+' "$W/console.txt" | head -n 2 | tr '\n' ' ')
        console_has 'app image in flash does not verify' && fail "round $round: an unverified app image"
        echo "round $round: cut at operation $n: $how-> 2.0.0 verified, reconnected, confirmed"
        stop_device
    done
    echo "$kills power cuts during the apply, each recovered and converged, in $(($(date +%s) - t0)) s"
    ;;
rtos)
    # The app with its own scheduler is updated like any app: its notify thread (blocked on the
    # notification semaphore) defers, takes the work mutex so the workers stop at a safe point,
    # applies; v2 confirms from the same thread once healthy.
    bundle v2 ../rtos/rtos 1.1.0 2
    start_device 200
    expect_console 30 'net: connected to broker'
    expect_console 20 'rtos: notify: STARTED \(thread notify\), previous run ended by power-on'
    start_srv v2 61
    expect_srv 60 "status dep=61 state=1 "
    expect_console 120 "update: 1.1.0 staged and verified"
    expect_console 20 'rtos: update 1.1.0 staged; applying it once the workers are at a safe point'
    expect_console 20 'rtos: work done: keel_update_apply\(\) from thread notify'
    expect_console 60 "update: applied in .* 1.1.0 runs on trial"
    expect_console 20 'rtos: running app version 1.1.0'
    expect_console 10 'rtos: notify: STARTED \(thread notify\), previous run ended by update'
    expect_console 20 'rtos: healthy: keel_update_confirm\(\) ok from thread notify'
    expect_console 10 "update: 1.1.0 confirmed by the app: installed"
    expect_srv 20 "status dep=61 state=0 result=1 .*installed=1.1.0 "
    console_has 'app stopped: (SecureFault|HardFault|UsageFault|watchdog)' && fail "the rtos app was stopped by a fault or its watchdog"
    ;;
*)
    fail "unknown case"
    ;;
esac
stop_srv
stop_device
echo "PASS ($case_)"
