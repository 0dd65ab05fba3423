#!/usr/bin/env bash
# Connectivity tests: a device in QEMU against a real Mosquitto TLS broker on 127.0.0.1.
# usage: net.sh CASE KEEL FIRMWARE HELLO_ELF [CRASHY_ELF [ECHO_ELF [ESCAPE_ELF]]]
#
# Every case makes its own PKI (openssl: a P-256 fleet CA, a broker certificate for "localhost"
# from it, and a second CA with the same name), its own broker on a free port and its own device
# state. Every process started here is stopped on exit (SIGTERM, then SIGKILL), every wait is
# bounded, and the checks are on what the broker and the device did, never on timings.
set -uo pipefail
case_=$1 keel=$2 fw=$3 hello=$4 crashy=${5:-$4} echo_app=${6:-} escape_app=${7:-}
for f in "$keel" "$fw" "$hello"; do
    [ -f "$f" ] || { echo "FAIL ($case_): $f not found (run 'make' first)"; exit 1; }
done
for p in mosquitto mosquitto_sub mosquitto_pub openssl; do
    command -v "$p" >/dev/null || { echo "FAIL ($case_): $p not installed (scripts/packages/net.txt; run 'make deps')"; exit 1; }
done

W=$(mktemp -d "${TMPDIR:-/tmp}/keel-net.XXXXXX") || exit 1
# shellcheck source=procs.sh
. "$(dirname "${BASH_SOURCE[0]}")/procs.sh"
# keel and what it starts are built with ASan/UBSan: a report of any of them fails the case.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/sanitizers.sh"
san_setup "$W"
FAILED=0
cleanup() {
    stop_pids
    if ! san_check "$W"; then
        echo "FAIL ($case_): a host process reported a sanitizer finding (above)"
        FAILED=1
    fi
    if [ "$FAILED" -ne 0 ]; then
        echo "---- device console ----"; cat "$W/console.txt" 2>/dev/null | head -c 40000
        echo "---- broker log ----"; tail -n 40 "$W/mosquitto.log" 2>/dev/null
    fi
    rm -rf "$W"
    [ "$FAILED" -eq 0 ] || exit 1
}
trap cleanup EXIT
fail() {
    echo "FAIL ($case_): $*"
    FAILED=1
    exit 1
}


# ---- PKI and broker: the fleet's own (scripts/stack.sh, as keel up makes them) -----------------
STACK_SH="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/stack.sh"
# keeld-sub: the watching subscriber's own identity (the broker makes a certificate's name its
# client id: a publisher and a subscriber sharing one would cut each other off); dev-1: net.resume
# connects a second client with the device's certificate, which the broker lets take its session.
bash "$STACK_SH" certs "$W" broker keeld keeld-sub dev-1 >/dev/null || fail "scripts/stack.sh certs failed"
# A second CA with the same name as the fleet's, for the wrong-CA case.
bash "$STACK_SH" certs "$W/other" >/dev/null || fail "scripts/stack.sh certs (other CA) failed"
cp "$W/other/ca.pem" "$W/otherca.pem" && cp "$W/other/ca.key" "$W/otherca.key"
PORT=$(free_port)
bash "$STACK_SH" broker-conf "$W" "$PORT" || fail "scripts/stack.sh broker-conf failed"
# The server-authentication cases run against a broker that asks nothing of the client, so the
# device's own verification is the only thing that can stop the connection.
case $case_ in
wrong-ca|wrong-name)
    sed -i -e '/^require_certificate/d' -e '/^use_identity_as_username/d' -e '/^acl_file/d' \
        -e 's/^allow_anonymous false/allow_anonymous true/' "$W/mosquitto.conf" ;;
esac
# tls12: the same Mosquitto, but OpenSSL capped at TLS 1.2 (the broker of a fleet that has not moved
# to TLS 1.3 yet, or a man in the middle that strips it).
[ "$case_" = tls12 ] && tls12_openssl_conf "$W/openssl-tls12.cnf"
start_broker() {
    if [ "$case_" = tls12 ]; then
        OPENSSL_CONF=$W/openssl-tls12.cnf broker_start "$W" "$PORT" || fail "mosquitto did not start (see its log below)"
    else
        broker_start "$W" "$PORT" || fail "mosquitto did not start (see its log below)"
    fi
}
stop_broker() {
    kill -TERM "$MOSQ" 2>/dev/null
    wait_for 10 bash -c "! kill -0 $MOSQ 2>/dev/null" || kill -KILL "$MOSQ" 2>/dev/null
    wait "$MOSQ" 2>/dev/null
}
TLS=(-h 127.0.0.1 -p "$PORT" --cafile "$W/ca.pem")
SUB=(mosquitto_sub "${TLS[@]}" --cert "$W/keeld-sub.pem" --key "$W/keeld-sub.key")
PUB=(mosquitto_pub "${TLS[@]}" --cert "$W/keeld.pem" --key "$W/keeld.key")

# ---- device --------------------------------------------------------------------------------------
# Pings for the reach-*/escape-* cases: command ping id 0x10+I; its result arrives in results.txt
# (a subscriber the case starts).
answered() { grep -qE "08$(printf '%02x' $((0x10 + $1)))1001" "$W/results.txt"; }
stops_at_least() { [ "$(grep -c '^\[keel\] app stopped: ' "$W/console.txt")" -ge "$1" ]; }
# ping_answered I: send ping I until answered (10 tries). Like keeld: a command sent while the
# device is offline is lost (clean session), so it is sent again.
ping_answered() {
    printf '\x82\x01\x04\x08%b\x10\x01' "\\x$(printf %02x $((0x10 + $1)))" >"$W/ping$1.bin"
    for _ in $(seq 10); do
        timeout 10 "${PUB[@]}" -q 1 -t keel/v1/dev-1/cmd -f "$W/ping$1.bin" || fail "mosquitto_pub failed"
        wait_for 2 answered "$1" && return 0
    done
    return 1
}
STATE=$W/state
KEEL_PID=""
# start_device SECONDS [keel flags...]: run the device in the background, console in console.txt,
# UART input from $DEV_IN (default none).
start_device() {
    local s=$1; shift
    timeout --kill-after=5 $((s + 30)) "$keel" device run --state "$STATE" --firmware "$fw" \
        --id dev-1 --seconds "$s" --broker "$PORT" "$@" <"${DEV_IN:-/dev/null}" >"$W/console.txt" 2>&1 &
    KEEL_PID=$!
    PIDS+=("$KEEL_PID")
}
wait_device() { wait "$KEEL_PID" 2>/dev/null; }
console_has() { grep -qE -- "$1" "$W/console.txt" 2>/dev/null; }
console_count() { grep -cE -- "$1" "$W/console.txt"; }
expect_console() { # SECONDS ERE: wait until the console shows ERE
    wait_for "$1" console_has "$2" || fail "the device console never showed '$2' within $1 s"
}

# fleet*: the whole stack of `keel up` (its own broker and keeld); every other case: our broker.
STACK=$W/stack
stack_up() {
    export KEEL_CONFIG=$STACK/secrets/config
    # keeld-tool: this script's own service identity on the stack's broker (keeld's would be
    # keeld's client id and cut keeld off); keel up keeps the CA it finds and lists it in the ACL.
    bash "$STACK_SH" certs --keys "$STACK/secrets" "$STACK" keeld-tool >/dev/null || fail "scripts/stack.sh certs failed"
    # --devices 0: these tests start their own devices (keel up's default starts 2)
    timeout 60 "$keel" up --state "$STACK" --devices 0 >"$W/up.txt" 2>&1 || { cat "$W/up.txt"; fail "keel up failed"; }
    stack_down() { timeout 30 "$keel" down --state "$STACK" >/dev/null 2>&1; }
    trap 'stack_down; cleanup' EXIT
    local mport
    mport=$(sed -n 's/.*mosquitto on 127.0.0.1:\([0-9]*\).*/\1/p' "$W/up.txt")
    [ -n "$mport" ] || fail "keel up did not say its broker port: $(cat "$W/up.txt")"
    PORT=$mport
}
# The stack's broker, stopped and started again with the same command line (a broker outage).
STACK_MOSQ=""
stack_broker_stop() {
    local pid
    pid=$(awk '$1 == "mosquitto" { print $2 }' "$STACK/pids" 2>/dev/null | tail -n 1)
    [ -n "$STACK_MOSQ" ] && pid=$STACK_MOSQ
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || fail "cannot find the stack's mosquitto (pids: $(cat "$STACK/pids" 2>&1))"
    tr '\0' '\n' <"/proc/$pid/cmdline" >"$W/mosq.cmd"
    kill -TERM "$pid"
    wait_for 10 bash -c "! kill -0 $pid 2>/dev/null" || fail "the stack's mosquitto did not stop"
}
stack_broker_start() {
    mapfile -t cmd <"$W/mosq.cmd"
    "${cmd[@]}" >>"$W/mosquitto.out" 2>&1 &
    STACK_MOSQ=$!
    PIDS+=("$STACK_MOSQ")
    wait_for 10 tcp_listening "$PORT" || fail "the stack's mosquitto did not start again"
}
keel_has() { # ERE COMMAND...: the keel command's output matches ERE
    local re=$1; shift
    timeout 20 "$keel" "$@" >"$W/keel.out" 2>&1 && grep -qE -- "$re" "$W/keel.out"
}
case $case_ in fleet*) ;; *) start_broker ;; esac
case $case_ in
fleet)
    # End to end: keel up (Mosquitto + keeld), a real emulated device provisioned from the
    # stack's CA, then the fleet commands through keeld: devices, ping, restart, reboot (the
    # device answers, resets with cause "reboot requested" and comes back online).
    stack_up
    start_device 40 --install "$hello" --fleet-ca "$STACK/ca.pem" --fleet-ca-key "$STACK/secrets/ca.key"
    expect_console 20 'net: connected to broker'
    devices_online() { timeout 20 "$keel" devices 2>/dev/null | grep -qE '^dev-1 +yes +0\.0\.0 +running +0\.1\.0 +an505'; }
    wait_for 20 devices_online || fail "keeld does not list dev-1 online and running: $(timeout 20 "$keel" devices 2>&1)"
    out=$(timeout 30 "$keel" ping dev-1 2>&1) || fail "keel ping dev-1 failed: $out"
    grep -q 'dev-1: ping ok' <<<"$out" || fail "unexpected ping answer: $out"
    out=$(timeout 30 "$keel" restart dev-1 2>&1) || fail "keel restart dev-1 failed: $out"
    expect_console 10 'app stopped: restart'
    out=$(timeout 30 "$keel" reboot dev-1 2>&1) || fail "keel reboot dev-1 failed: $out"
    grep -q 'dev-1: reboot ok' <<<"$out" || fail "unexpected reboot answer: $out"
    expect_console 15 'reset: reboot requested'
    reconnected() { [ "$(console_count 'net: connected to broker')" -ge 2 ]; }
    wait_for 20 reconnected || fail "the device did not connect again after its reboot"
    wait_for 30 devices_online || fail "dev-1 did not come back online after its reboot"
    out=$(timeout 30 "$keel" ping dev-1 2>&1) || fail "keel ping dev-1 after the reboot failed: $out"
    sigterm "$KEEL_PID"; wait_device
    offline() { timeout 20 "$keel" devices 2>/dev/null | grep -qE '^dev-1 +no '; }
    wait_for 20 offline || fail "keeld still shows dev-1 online after it vanished (last will)"
    ;;
fleet-channels)
    # App channel sends survive a lost connection: the device's connection is frozen (its relay
    # stopped) while the echo app sends 8 messages, then cut (the relay killed). The one in flight
    # never got its PUBACK; after the reconnect it is sent again with the rest, and keeld has
    # every message once, in order. The broker and keeld stay up throughout (channel data has no
    # keeld ack: what the broker acknowledged while keeld was away from it would be lost).
    [ -f "$echo_app" ] || fail "the echo app is not built: '$echo_app'"
    stack_up
    start_device 60 --install "$echo_app" --fleet-ca "$STACK/ca.pem" --fleet-ca-key "$STACK/secrets/ca.key"
    expect_console 20 'net: connected to broker'
    expect_console 20 'echo: broker has 8 sends'
    flood_texts() { timeout 20 "$keel" channel read dev-1 flood --limit 1000 --json 2>/dev/null |
        python3 -c 'import json,sys; print(" ".join(m.get("text", "?") for m in json.load(sys.stdin)["messages"]))'; }
    # The relay QEMU started for the connection (inside the sandbox, a descendant of this keel).
    relays() { for p in $(descendants "$KEEL_PID"); do
        ps -o args= -p "$p" | awk '$2 == "relay" && $3 ~ /^unix:/ { f = 1 } END { exit !f }' && echo "$p"; done; }
    RELAY=$(relays)
    [ "$(wc -w <<<"$RELAY")" = 1 ] || fail "expected one relay for the device's connection, found: '$RELAY'"
    out=$(timeout 20 "$keel" channel send dev-1 echo burst 2>&1) || fail "keel channel send failed: $out"
    expect_console 10 'echo: burst in 1 s'
    expect_console 5 'echo: broker has 9 sends' # the echo of "burst" itself: the queue is empty again
    kill -STOP "$RELAY"
    expect_console 10 'echo: burst queued 8'
    sleep 0.5
    kill -KILL "$RELAY"
    expect_console 30 'net: broker connection lost'
    reconnected() { [ "$(console_count 'net: connected to broker')" -ge 2 ]; }
    wait_for 30 reconnected || fail "the device did not reconnect"
    want="flood-00 flood-01 flood-02 flood-03 flood-04 flood-05 flood-06 flood-07 burst-00 burst-01 burst-02 burst-03 burst-04 burst-05 burst-06 burst-07"
    all_in() { [ "$(flood_texts)" = "$want" ]; }
    wait_for 30 all_in || fail "channel flood at keeld after the reconnect: '$(flood_texts)', expected '$want'"
    expect_console 10 'echo: broker has 17 sends'
    sigterm "$KEEL_PID"; wait_device
    ;;
fleet-logs)
    # Logs and crash reports reach keeld and are acked: the app's keel_log_write lines and the
    # microvisor's events from a first run; then, with the broker down, crashy crashes twice
    # (events, logs and reports queue on the device) and everything arrives once it is back.
    stack_up
    start_device 40 --install "$hello" --fleet-ca "$STACK/ca.pem" --fleet-ca-key "$STACK/secrets/ca.key"
    expect_console 20 'net: connected to broker'
    wait_for 20 keel_has 'dev-1 +info +app: hello: up and logging' logs dev-1 ||
        fail "the app's log line did not reach keeld: $(cat "$W/keel.out")"
    wait_for 20 keel_has 'dev-1 +info +microvisor: microvisor 0\.1\.0, boot 1 since power-on, reset: power-on' logs dev-1 ||
        fail "the microvisor's boot event did not reach keeld: $(cat "$W/keel.out")"
    # Garbage and a truncated envelope on the command topic, through the fleet's broker: logged,
    # ignored, and the device still answers keeld.
    head -c 40 /dev/urandom >"$W/garbage.bin"
    printf '\x82\x01\x7f\x08' >"$W/truncated.bin"
    for f in garbage truncated; do
        timeout 10 mosquitto_pub -h 127.0.0.1 -p "$PORT" --cafile "$STACK/ca.pem" --cert "$STACK/keeld-tool.pem" \
            --key "$STACK/secrets/keeld-tool.key" -q 1 -t keel/v1/dev-1/cmd -f "$W/$f.bin" || fail "mosquitto_pub ($f) failed"
    done
    wait_for 10 bash -c "[ \$(grep -c 'net: malformed command' '$W/console.txt') -ge 2 ]" ||
        fail "garbage on the command topic was not logged as malformed"
    out=$(timeout 30 "$keel" ping dev-1 2>&1) || fail "keel ping dev-1 failed after garbage: $out"
    sigterm "$KEEL_PID"; wait_device
    stack_broker_stop
    printf 'null\nnull\nnone\n' >"$W/modes.txt"
    timeout --kill-after=5 100 "$keel" device run --state "$STATE" --firmware "$fw" --id dev-1 \
        --seconds 70 --broker "$PORT" --install "$crashy" --backoff-min 100 --backoff-max 400 \
        --fleet-ca "$STACK/ca.pem" --fleet-ca-key "$STACK/secrets/ca.key" <"$W/modes.txt" >"$W/console.txt" 2>&1 &
    KEEL_PID=$!
    PIDS+=("$KEEL_PID")
    expect_console 30 'crashy: running none'
    reason=$(sed -n 's/^\[keel\] app stopped: //p' "$W/console.txt" | head -n 1)
    [ -n "$reason" ] || fail "crashy did not crash"
    [ "$(console_count '^\[keel\] app stopped: ')" -eq 2 ] || fail "crashy did not crash exactly twice"
    console_has 'net: connected to broker' && fail "the device connected while the broker was down"
    stack_broker_start
    expect_console 40 'net: connected to broker'
    crashes_in() { keel_has "dev-1 .*$reason" crashes dev-1 && [ "$(grep -c "dev-1 .*$reason" "$W/keel.out")" -eq 2 ]; }
    wait_for 45 crashes_in || fail "keeld does not list both crash reports ($reason): $(cat "$W/keel.out")"
    logs_in() { keel_has "dev-1 +error +microvisor: app stopped: $reason" logs dev-1 &&
                [ "$(grep -c "microvisor: app stopped: $reason" "$W/keel.out")" -eq 2 ] &&
                grep -q 'microvisor: app restart 2 in' "$W/keel.out"; }
    wait_for 45 logs_in || fail "the events logged while the broker was down did not all arrive once: $(cat "$W/keel.out")"
    sigterm "$KEEL_PID"; wait_device
    ;;
fleet-crash-reset)
    # A crash report survives a system reset: with the broker down, crashy hangs in an interrupt
    # handler (isr-hang: stopped by its watchdog, then restarted through a system reset, since
    # only a reset clears the interrupt), then faults once more in the next boot. Both reports,
    # the first from before the reset, reach keeld once the broker is back.
    stack_up
    start_device 30 --install "$hello" --fleet-ca "$STACK/ca.pem" --fleet-ca-key "$STACK/secrets/ca.key"
    expect_console 20 'net: connected to broker'
    sigterm "$KEEL_PID"; wait_device
    stack_broker_stop
    # The blank line is slack: the reset loses the byte waiting in the UART.
    printf 'isr-hang\n\nnull\nnone\n' >"$W/modes.txt"
    timeout --kill-after=5 100 "$keel" device run --state "$STATE" --firmware "$fw" --id dev-1 \
        --seconds 70 --broker "$PORT" --install "$crashy" --backoff-min 100 --backoff-max 400 \
        --fleet-ca "$STACK/ca.pem" --fleet-ca-key "$STACK/secrets/ca.key" <"$W/modes.txt" >"$W/console.txt" 2>&1 &
    KEEL_PID=$!
    PIDS+=("$KEEL_PID")
    expect_console 30 'crashy: running none'
    console_has 'restarting through a system reset' || fail "isr-hang did not end in a system reset"
    [ "$(console_count 'Keel microvisor .*, boot 2, ')" -ge 1 ] || fail "no second boot"
    [ "$(console_count '^\[keel\] app stopped: watchdog')" -eq 1 ] || fail "no watchdog stop before the reset"
    second=$(sed -n 's/^\[keel\] app stopped: //p' "$W/console.txt" | sed -n 2p)
    [ -n "$second" ] && [ "$second" != watchdog ] || fail "crashy did not fault after the reset ($second)"
    console_has 'net: connected to broker' && fail "the device connected while the broker was down"
    stack_broker_start
    expect_console 40 'net: connected to broker'
    both_in() { keel_has "dev-1 .*watchdog" crashes dev-1 && grep -q "dev-1 .*$second" "$W/keel.out"; }
    wait_for 45 both_in || fail "keeld lacks the crash report from before the reset or the one after: $(cat "$W/keel.out")"
    sigterm "$KEEL_PID"; wait_device
    ;;
fleet-drops)
    # A full offline log buffer drops its oldest entries and counts them: the app hears it
    # (KEEL_NOTIFY_LOG_DROPPED), keeld gets the count in the next batch and in heartbeats, and
    # the newest entries arrive once the broker is back.
    stack_up
    stack_broker_stop
    printf 'logs 100\n' >"$W/modes.txt"
    DEV_IN=$W/modes.txt
    bench=$(dirname "$hello")/../bench/bench.elf
    start_device 70 --install "$bench" --fleet-ca "$STACK/ca.pem" --fleet-ca-key "$STACK/secrets/ca.key" \
        --append net-heartbeat=300
    expect_console 30 'bench: log_dropped_notified='
    dropped=$(sed -n 's/^app| bench: log_dropped_notified=\([0-9]*\).*/\1/p' "$W/console.txt")
    [ -n "$dropped" ] && [ "$dropped" -gt 0 ] || fail "the app was not told of dropped log entries (got '$dropped')"
    stack_broker_start
    expect_console 40 'net: connected to broker'
    drops_in() { keel_has "$dropped log entries dropped on the device here" logs dev-1 && grep -q 'app: bench: log 99$' "$W/keel.out"; }
    # keeld reconnects to the broker on its own back-off (up to 10 s) and misses what was published
    # before; the device resends unacked batches every 10 s, so allow both.
    wait_for 45 drops_in || fail "keeld does not show the $dropped dropped entries and the newest line: $(cat "$W/keel.out")"
    grep -q 'app: bench: log 0$' "$W/keel.out" && fail "the oldest entry was kept although the buffer overflowed"
    wait_for 20 keel_has "log dropped +$dropped\$" device show dev-1 || fail "the heartbeat's drop count is not $dropped: $(cat "$W/keel.out")"
    sigterm "$KEEL_PID"; wait_device
    ;;
connect)
    # Presence, hello and heartbeats arrive; a ping is answered, and a re-sent one answered but not
    # executed again; garbage on the command topic is logged and ignored; the last will marks the
    # device offline when it vanishes.
    timeout 40 "${SUB[@]}" -t 'keel/v1/dev-1/#' -F '%t %r %x' >"$W/sub.txt" 2>&1 &
    PIDS+=($!)
    start_device 30 --install "$hello" --fleet-ca "$W/ca.pem" --fleet-ca-key "$W/ca.key" --append net-heartbeat=300
    expect_console 20 'net: connected to broker localhost \(TLS 1\.3, server verified, device certificate\)'
    grep -q 'New client connected from .* as dev-1 .*u.dev-1' "$W/mosquitto.log" ||
        fail "the broker did not see the device's certificate identity (username dev-1)"
    wait_for 10 grep -q 'keel/v1/dev-1/heartbeat' "$W/sub.txt" || fail "no heartbeat reached the broker"
    grep -qE '^keel/v1/dev-1/presence [01] .*5a020801$' "$W/sub.txt" || fail "no presence online=true"
    grep -qE '^keel/v1/dev-1/hello 0 .*616e353035' "$W/sub.txt" || fail "no hello naming the board an505"
    # Envelope{command{id=7, kind=PING}} and then garbage; the result answers id 7 with status OK.
    printf '\x82\x01\x04\x08\x07\x10\x01' >"$W/ping.bin"
    head -c 40 /dev/urandom >"$W/garbage.bin"
    printf '\x82\x01\x7f\x08' >"$W/truncated.bin"
    timeout 10 "${PUB[@]}" -q 1 -t keel/v1/dev-1/cmd -f "$W/garbage.bin" || fail "mosquitto_pub failed"
    timeout 10 "${PUB[@]}" -q 1 -t keel/v1/dev-1/cmd -f "$W/truncated.bin" || fail "mosquitto_pub failed"
    timeout 10 "${PUB[@]}" -q 1 -t keel/v1/dev-1/cmd -f "$W/ping.bin" || fail "mosquitto_pub failed"
    wait_for 10 grep -qE '^keel/v1/dev-1/result 0 .*7a..08071001' "$W/sub.txt" || fail "no result for ping 7"
    expect_console 5 'net: ping \(command 7\)'
    # The same command again (keeld re-sends when an answer was lost): answered again, "already
    # done", never executed twice: the second answer is the evidence it was handled, then the
    # console must still show one execution.
    timeout 10 "${PUB[@]}" -q 1 -t keel/v1/dev-1/cmd -f "$W/ping.bin" || fail "mosquitto_pub failed"
    wait_for 10 grep -qE '^keel/v1/dev-1/result 0 .*7a..0807.*616c726561647920646f6e65' "$W/sub.txt" ||
        fail "no 'already done' answer to the re-sent command 7"
    expect_console 5 'net: command 7 already executed this boot: answered again'
    [ "$(console_count 'net: ping \(command 7\)')" -eq 1 ] || fail "the re-sent command 7 was executed again"
    [ "$(console_count 'net: malformed command')" -ge 2 ] || fail "garbage and truncated commands were not reported as malformed"
    grep -q '^app| hello' "$W/console.txt" || fail "the app did not run next to the network"
    sigterm "$KEEL_PID"; wait_device
    wait_for 10 grep -qE '^keel/v1/dev-1/presence [01] 08015a00$' "$W/sub.txt" ||
        fail "the broker did not publish the last will (presence offline) when the device vanished"
    timeout 10 "${SUB[@]}" -t keel/v1/dev-1/presence -C 1 -W 5 -F '%x' >"$W/retained.txt" 2>&1
    grep -qE '5a00$' "$W/retained.txt" || fail "the retained presence is not offline after the device left"
    ;;
wrong-ca)
    # The device trusts another CA with the same name: the broker's certificate must be refused.
    start_device 8 --fleet-ca "$W/otherca.pem"
    expect_console 20 'net: broker localhost refused: its certificate failed verification \(flags 0x08: The certificate is not correctly signed by the trusted CA'
    wait_device
    console_has 'net: connected to broker' && fail "the device accepted a broker certificate from another CA"
    grep -q 'New client connected' "$W/mosquitto.log" && fail "the broker saw an MQTT session from the device"
    [ "$(console_count 'net: broker localhost refused')" -ge 2 ] || fail "the device did not retry"
    grep -q 'New connection from 127.0.0.1' "$W/mosquitto.log" || fail "the device never reached the broker"
    ;;
tls12)
    # A broker that speaks only TLS 1.2. With the fleet setting --allow-tls12 the device connects
    # over TLS 1.2 (so the broker is reachable and does speak TLS); without it (the default, TLS
    # 1.3 required) the same broker is refused: no downgrade.
    STATE=$W/state12
    start_device 30 --install "$hello" --fleet-ca "$W/ca.pem" --fleet-ca-key "$W/ca.key" --allow-tls12
    expect_console 20 'net: connected to broker localhost \(TLS 1\.2, server verified, device certificate\)'
    console_has 'net: TLS 1.2 allowed by the fleet setting' || fail "the device did not say TLS 1.2 is allowed"
    sigterm "$KEEL_PID"; wait_device
    mv "$W/console.txt" "$W/console12.txt"
    clients=$(grep -c 'New client connected' "$W/mosquitto.log")
    # Mosquitto logs a connection whose TLS handshake fails inside accept() as 'Client connection
    # from ... failed' and one that fails later as 'New connection from ...': either is a reach.
    reached() { grep -cE 'New connection from 127\.0\.0\.1|Client connection from 127\.0\.0\.1 failed' "$W/mosquitto.log"; }
    conns=$(reached)
    STATE=$W/state13
    start_device 10 --install "$hello" --fleet-ca "$W/ca.pem" --fleet-ca-key "$W/ca.key"
    expect_console 20 'net: broker localhost refused: it does not speak TLS 1\.3, which this fleet requires'
    wait_device
    console_has 'net: connected to broker' && fail "the device accepted a TLS 1.2 broker although TLS 1.3 is required"
    [ "$(reached)" -gt "$conns" ] ||
        fail "the TLS-1.3-only device never reached the broker"
    [ "$(grep -c 'New client connected' "$W/mosquitto.log")" -eq "$clients" ] ||
        fail "the broker saw an MQTT session from the TLS-1.3-only device"
    [ "$(console_count 'net: broker localhost refused: it does not speak TLS 1.3')" -ge 2 ] ||
        fail "the device did not retry (and refuse again)"
    ;;
resume)
    # A reconnect resumes the TLS 1.3 session: another client takes the device's client id, the
    # broker drops the device, and the device reconnects offering the ticket the broker sent on
    # the first connection (no certificate chain this time). The first connection is a full one.
    start_device 40 --install "$hello" --fleet-ca "$W/ca.pem" --fleet-ca-key "$W/ca.key"
    expect_console 20 'net: connected to broker localhost \(TLS 1\.3, server verified, device certificate\)'
    timeout 10 mosquitto_sub -h 127.0.0.1 -p "$PORT" --cafile "$W/ca.pem" --cert "$W/dev-1.pem" \
        --key "$W/dev-1.key" -i dev-1 -t keel/v1/dev-1/cmd -W 2 >/dev/null 2>&1
    expect_console 30 'net: connected to broker localhost \(TLS 1\.3 resumed, server verified, device certificate\)'
    [ "$(console_count 'net: connected to broker')" -ge 2 ] || fail "the device did not reconnect"
    sigterm "$KEEL_PID"; wait_device
    ;;
unprovisioned)
    # No device certificate: the fleet broker (require_certificate) refuses the device.
    start_device 6 --fleet-ca "$W/ca.pem"
    expect_console 20 'net: connection to broker localhost failed: TLS handshake error'
    wait_device
    console_has 'net: connected to broker' && fail "a device without a certificate got in"
    grep -q 'peer did not return a certificate' "$W/mosquitto.log" ||
        fail "the broker did not refuse for want of a client certificate"
    ;;
wrong-name)
    # Right CA, but the device expects another broker name: refused by the name check.
    start_device 8 --fleet-ca "$W/ca.pem" --broker-name broker.example
    expect_console 20 'net: broker broker.example refused: its certificate failed verification \(flags 0x04: The certificate Common Name \(CN\) does not match'
    wait_device
    console_has 'net: connected to broker' && fail "the device accepted a broker certificate for another name"
    grep -q 'New client connected' "$W/mosquitto.log" && fail "the broker saw an MQTT session from the device"
    ;;
reconnect)
    # Broker restart: the device notices, backs off and reconnects on its own.
    start_device 40 --fleet-ca "$W/ca.pem" --fleet-ca-key "$W/ca.key" --append net-heartbeat=300
    expect_console 20 'net: connected to broker'
    stop_broker
    expect_console 20 'net: broker connection lost'
    sleep 1
    start_broker
    wait_for 30 bash -c "[ \$(grep -c 'net: connected to broker' '$W/console.txt') -ge 2 ]" ||
        fail "the device did not reconnect after the broker came back"
    timeout 10 "${SUB[@]}" -t keel/v1/dev-1/heartbeat -C 1 -W 8 >/dev/null 2>&1 ||
        fail "no heartbeat after the reconnect"
    sigterm "$KEEL_PID"; wait_device
    ;;
reach-*)
    # Reachability: the app crash-loops in one fault mode (crashy, fed the mode at every restart)
    # and every ping sent while it does is answered by the microvisor.
    mode=${case_#reach-}
    for _ in $(seq 40); do echo "$mode"; done >"$W/modes.txt"
    timeout 90 "${SUB[@]}" -t keel/v1/dev-1/result -F '%x' >"$W/results.txt" 2>&1 &
    PIDS+=($!)
    # isr-hang (always) and storm (sometimes) end in a system reset once the restart back-off
    # has passed: a back-off of 2 s keeps the stopped-but-not-yet-reset window open long enough
    # for a ping to be answered in it, which is what these cases must show.
    backoff=(--backoff-min 100 --backoff-max 400)
    case $mode in isr-hang|storm) backoff=(--backoff-min 2000 --backoff-max 2000) ;; esac
    timeout --kill-after=5 60 "$keel" device run --state "$STATE" --firmware "$fw" --id dev-1 \
        --seconds 45 --broker "$PORT" --install "$crashy" "${backoff[@]}" \
        --fleet-ca "$W/ca.pem" --fleet-ca-key "$W/ca.key" <"$W/modes.txt" >"$W/console.txt" 2>&1 &
    KEEL_PID=$!
    PIDS+=("$KEEL_PID")
    expect_console 20 'net: connected to broker'
    # isr-hang (always) and storm (sometimes) leave an app interrupt active, which only a system
    # reset clears: the whole device restarts and reconnects, and the UART byte in flight at the
    # reset is lost, so crashy reads a broken mode after it and stops failing ("running none").
    # The first ping is always sent while the app fails; later ones only while it still does.
    # in_fault I: the device handled ping I while the app was failing: its "net: ping" line
    # comes after a stop of the app (or, for the modes that do not stop, after "running MODE")
    # in the same boot, with no healthy run ("running none") in between. An answer after a system
    # reset or from a recovered app is not evidence of reachability during the fault.
    in_fault() {
        awk -v id=$((0x10 + $1)) -v mode="$mode" -v stopping="$stopping" '
            /\[keel\] Keel microvisor .*, boot / { boot++; failing = 0 }
            stopping == "true" && /^\[keel\] app stopped: / { failing = 1 }
            stopping != "true" && $0 ~ ("crashy: running " mode "$") { failing = 1 }
            /crashy: running / && $0 !~ ("crashy: running " mode "$") { failing = 0 }
            $0 ~ ("^\\[keel\\] net: ping \\(command " id "\\)") { found = 1; exit !failing }
            END { if (!found) exit 1 }' "$W/console.txt"
    }
    stops_at_least() { [ "$(grep -c '^\[keel\] app stopped: ' "$W/console.txt")" -ge "$1" ]; }
    stopped_failing() { grep -q 'crashy: running none' "$W/console.txt"; }
    stop_or_done() { stops_at_least "$1" || stopped_failing; }
    # badptr, reentry and none misbehave (or not) without stopping: pinged while they run.
    case $mode in badptr|reentry|none) stopping=false ;; *) stopping=true ;; esac
    $stopping || expect_console 20 "crashy: running $mode"
    for i in 1 2 3; do
        if $stopping; then
            wait_for 20 stop_or_done "$i" ||
                fail "the app did not keep failing in mode $mode (fewer than $i stops)"
            if ! stops_at_least "$i"; then
                [ "$i" -gt 1 ] || fail "crashy never failed in mode $mode"
                break
            fi
        fi
        ping_answered "$i" || fail "ping $i was not answered while the app was failing in mode $mode"
        # The answer is in results.txt; the console line that places it may trail it a little.
        wait_for 5 grep -q "net: ping (command $((0x10 + i)))" "$W/console.txt" ||
            fail "ping $i answered, but the device did not log it"
        in_fault "$i" || fail "ping $i was answered, but not while the app was failing in mode $mode (after a reset or a recovery)"
    done
    grep -q "crashy: running $mode" "$W/console.txt" || fail "crashy never ran mode $mode"
    sigterm "$KEEL_PID"; wait_device
    ;;
escape-*)
    # The escape app tries to leave the emulated chip in one way (semihosting calls from its SVC
    # handler, the store through its addresses, a DMA pointed at the store), restarted and fed
    # the same mode each time. Each attempt must stop the app and be reported, the device stays
    # up and answers pings, no host file is created, and the store's flash is unchanged.
    mode=${case_#escape-}
    [ -f "$escape_app" ] || fail "the escape app is not built ($escape_app)"
    probes=("$STATE/escape-created" "$STATE/escape-system" /tmp/keel-escape-created /tmp/keel-escape-system)
    rm -f "${probes[@]}"
    "$keel" device provision --state "$STATE" --id dev-1 --fleet-ca "$W/ca.pem" --fleet-ca-key "$W/ca.key" \
        >/dev/null || fail "provisioning failed"
    "$keel" device install --state "$STATE" --backoff-min 100 --backoff-max 400 "$escape_app" \
        >/dev/null || fail "installing escape failed"
    # The store's flash as installed: app slot, identity page, QSPI (the seed pages move at every
    # boot, by design).
    flash_sums() {
        for r in 0:$((0x102000)) $((0x1FE000)):$((0x2000)) $((0x200000)):$((0x800000)); do
            tail -c +$((${r%%:*} + 1)) "$STATE/store.bin" | head -c "${r##*:}" | sha256sum
        done
    }
    flash_sums >"$W/flash.before"
    for _ in $(seq 40); do echo "$mode"; done >"$W/modes.txt"
    timeout 90 "${SUB[@]}" -t keel/v1/dev-1/result -F '%x' >"$W/results.txt" 2>&1 &
    PIDS+=($!)
    timeout --kill-after=5 60 "$keel" device run --state "$STATE" --firmware "$fw" --seconds 45 \
        --broker "$PORT" <"$W/modes.txt" >"$W/console.txt" 2>&1 &
    KEEL_PID=$!
    PIDS+=("$KEEL_PID")
    expect_console 20 'net: connected to broker'
    expect_console 20 "escape: trying $mode"
    for i in 1 2 3; do
        wait_for 20 stops_at_least "$i" || fail "the app was not stopped $i times in mode $mode"
        ping_answered "$i" || fail "ping $i was not answered while the app tried $mode"
    done
    kill -0 "$KEEL_PID" 2>/dev/null || fail "the device ended (QEMU exited) in mode $mode"
    sigterm "$KEEL_PID"
    rc=0; wait "$KEEL_PID" || rc=$?
    # A clean stop is exit 0 (a hang ends in timeout's SIGKILL: 137).
    [ "$rc" = 0 ] || fail "keel device run ended with exit status $rc after SIGTERM (0 is a clean stop)"
    [ "$(console_count "escape: trying $mode")" -ge 3 ] || fail "fewer than 3 attempts"
    if [ "$mode" = dma ]; then
        [ "$(console_count 'escape: dma: the controller ignores the app')" -ge 3 ] ||
            fail "the DMA's NS alias did not read as zero after programming"
    fi
    console_has '\(FAIL\)' && fail "an attempt returned to the app: $(grep -F '(FAIL)' "$W/console.txt" | head -n 3)"
    for f in "${probes[@]}"; do [ ! -e "$f" ] || fail "$f was created"; done
    flash_sums >"$W/flash.after"
    cmp -s "$W/flash.after" "$W/flash.before" ||
        fail "the store's flash changed (app slot, identity, QSPI): $(diff "$W/flash.before" "$W/flash.after" | tr '\n' ' ')"
    ;;
provisioning)
    # CLI checks: the fleet record is set once; bad inputs are clear errors, not a broken device.
    mkdir -p "$W/st"
    out=$("$keel" device run --state "$STATE" --firmware "$fw" --fleet-ca "$W/ca.pem" --seconds 1 2>&1) &&
        fail "--fleet-ca without --broker was accepted"
    grep -q -- '--broker PORT' <<<"$out" || fail "unclear error for --fleet-ca without --broker: $out"
    out=$("$keel" device run --state "$STATE" --firmware "$fw" --broker "$PORT" --seconds 1 2>&1) &&
        fail "a device without a fleet CA was started with --broker"
    grep -q 'has no fleet CA yet' <<<"$out" || fail "unclear error without a fleet CA: $out"
    printf 'not a certificate\n' >"$W/junk.pem"
    out=$("$keel" device run --state "$STATE" --firmware "$fw" --broker "$PORT" --fleet-ca "$W/junk.pem" --seconds 1 2>&1) &&
        fail "a junk CA file was accepted"
    grep -q 'not a PEM X.509 certificate' <<<"$out" || fail "unclear error for a junk CA: $out"
    timeout 30 "$keel" device run --state "$STATE" --firmware "$fw" --broker "$PORT" --fleet-ca "$W/ca.pem" \
        --seconds 1 </dev/null >"$W/console.txt" 2>&1 || fail "provisioning with a good CA failed"
    out=$("$keel" device run --state "$STATE" --firmware "$fw" --broker "$PORT" --fleet-ca "$W/otherca.pem" --seconds 1 2>&1) &&
        fail "the fleet CA was replaced"
    grep -q 'already provisioned with another fleet CA' <<<"$out" || fail "unclear error for a second CA: $out"
    out=$("$keel" device provision --state "$STATE" --fleet-ca "$W/ca.pem" --fleet-ca-key "$W/otherca.key" 2>&1) &&
        fail "a CA key that does not belong to the CA was accepted"
    grep -q 'is not the key of --fleet-ca' <<<"$out" || fail "unclear error for a mismatched CA key: $out"
    "$keel" device provision --state "$STATE" --fleet-ca "$W/ca.pem" --fleet-ca-key "$W/ca.key" >"$W/prov.txt" 2>&1 ||
        fail "keel device provision failed: $(cat "$W/prov.txt")"
    grep -q 'issued a P-256 key and a certificate (CN=dev-' "$W/prov.txt" || fail "no device certificate issued"
    "$keel" device provision --state "$STATE" --fleet-ca "$W/ca.pem" --fleet-ca-key "$W/ca.key" >"$W/prov.txt" 2>&1 ||
        fail "provisioning again with the same values failed"
    grep -q 'issued' "$W/prov.txt" && fail "the device identity was issued twice"
    out=$("$keel" relay 2>&1) && fail "keel relay without a port was accepted"
    out=$("$keel" relay 1 </dev/null 2>&1) && fail "keel relay to a closed port succeeded"
    grep -q 'cannot connect to 127.0.0.1:1' <<<"$out" || fail "unclear relay error: $out"
    ;;
no-network)
    # Without --broker the device has no network at all (QEMU -nic none) and says nothing of it.
    timeout 40 "$keel" device run --state "$STATE" --firmware "$fw" --install "$hello" --seconds 2 \
        </dev/null >"$W/console.txt" 2>&1 || fail "keel device run failed"
    console_has 'net:' && fail "the network started without --broker"
    console_has '^app\| hello' || fail "hello did not run"
    ;;
*)
    echo "unknown case $case_"; exit 2 ;;
esac
echo "PASS ($case_)"
