#!/usr/bin/env bash
# bench-net.sh BUILD_DIR: the connectivity figures of issue 4, written as the
# "## Connectivity (issue 4)" section of bench/results.md (scripts/write-bench-section.sh).
#
# A device in QEMU against a real Mosquitto TLS broker on 127.0.0.1 (the fleet's PKI and broker
# configuration from scripts/stack.sh, like tests/net/net.sh). Figures:
#   - boot to MQTT connected, and connect attempt -> CONNACK (TCP + TLS handshake + MQTT CONNECT,
#     all on loopback: the TLS handshake is nearly all of it), from the device's own log line;
#   - ping round trip directly over MQTT (host publishes a Command, device answers a result);
#   - app channel round trip: a message down channel "echo" to the echo app and its answer back up,
#     both timed by one subscriber at the broker; before and after in the same run: the device also
#     run by the keel CLI of BENCH_NET_BASE (default: the tree before issue 20's relay fix; built
#     by scripts/bench-baseline.sh), whose `keel relay` carries its broker connection;
#   - cloud -> device MQTT throughput: 2 KiB messages the device decodes and ignores, timed by the
#     device (boot word net-rx-mark);
#   - the app's compute throughput idle-connected vs networking off (bench app, mode "spin");
#   - footprint of lwIP, Mbed TLS and the agent (net/ + keel_proto + nanopb) from the map file.
# Every process started here is stopped on exit; every wait is bounded.
set -uo pipefail
build=${1:?usage: bench-net.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
keel=$build/host/tools/keel/keel
fw=$build/fw/microvisor/keel-microvisor.elf
app=$build/fw/apps/bench/bench.elf
hello=$build/fw/apps/hello/hello.elf
echo_app=$build/fw/apps/echo/echo.elf
map=$build/fw/microvisor/keel-microvisor.map
out=$root/bench/results.md
RUNS=${BENCH_NET_RUNS:-5}
BASE_REV=${BENCH_NET_BASE:-56e8dc3}
PINGS=${BENCH_NET_PINGS:-100}
RX_MSGS=${BENCH_NET_RX:-300}

for f in "$keel" "$fw" "$app" "$hello" "$echo_app" "$map"; do
    [ -e "$f" ] || { echo "bench-net: $f is missing; run make first" >&2; exit 1; }
done
for p in mosquitto mosquitto_sub mosquitto_pub openssl; do
    command -v "$p" >/dev/null || { echo "bench-net: $p is not installed (make deps)" >&2; exit 1; }
done

W=$(mktemp -d "${TMPDIR:-/tmp}/keel-bench-net.XXXXXX") || exit 1
# shellcheck source=../tests/net/procs.sh
. "$root/tests/net/procs.sh"
cleanup() {
    stop_pids
    rm -rf "$W"
}
trap cleanup EXIT
die() { echo "bench-net: $*" >&2; exit 1; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "n/a"}'; }
pct() { sort -n | awk -v p="$1" '{a[NR]=$1} END {if (!NR) {print "n/a"; exit} i=int(NR*p/100+0.999); if (i<1) i=1; print a[i]}'; }

# ---- broker -------------------------------------------------------------------------------------
# keeld-sub: the subscriber's own identity (a certificate's name is its client id).
bash "$root/scripts/stack.sh" certs "$W" broker keeld keeld-sub >/dev/null || die "scripts/stack.sh certs failed"
PORT=$(free_port)
bash "$root/scripts/stack.sh" broker-conf "$W" "$PORT" || die "scripts/stack.sh broker-conf failed"
broker_start "$W" "$PORT" || die "mosquitto did not start (see $W/mosquitto.log)"
TLS=(-h 127.0.0.1 -p "$PORT" --cafile "$W/ca.pem" --cert "$W/keeld.pem" --key "$W/keeld.key")
SUBTLS=(-h 127.0.0.1 -p "$PORT" --cafile "$W/ca.pem" --cert "$W/keeld-sub.pem" --key "$W/keeld-sub.key")

# run_device NAME SECONDS STDIN [keel flags...]: background device, console in $W/NAME.txt
DEV_PID=""
run_device() {
    local name=$1 s=$2 in=$3; shift 3
    timeout --kill-after=5 $((s + 30)) "$keel" device run --state "$W/st.$name" --firmware "$fw" \
        --id dev-1 --seconds "$s" "$@" <"$in" >"$W/$name.txt" 2>&1 &
    DEV_PID=$!
    PIDS+=("$DEV_PID")
}
has() { grep -qE -- "$2" "$W/$1.txt" 2>/dev/null; }
NET=(--broker "$PORT" --fleet-ca "$W/ca.pem" --fleet-ca-key "$W/ca.key")

# ---- boot to connected, handshake -----------------------------------------------------------
echo "bench-net: boot to MQTT connected, $RUNS runs"
: >"$W/connect.txt"
for i in $(seq "$RUNS"); do
    run_device c$i 4 /dev/null --install "$hello" "${NET[@]}"
    wait "$DEV_PID"
    sed -n 's/.*net: connected to broker .* in \([0-9]*\) ms, \([0-9]*\) ms after boot.*/\1 \2/p' "$W/c$i.txt" >>"$W/connect.txt"
done
[ -s "$W/connect.txt" ] || die "the device never connected: $(tail -n 20 "$W/c1.txt")"
hs=$(awk '{print $1}' "$W/connect.txt" | median)
boot=$(awk '{print $2}' "$W/connect.txt" | median)
stack=$(sed -n 's/.*handler stack used \([0-9]*\) bytes.*/\1/p' "$W/c1.txt" | head -n1)

# ---- ping round trip and cloud -> device throughput --------------------------------------------
echo "bench-net: ping round trip ($PINGS pings) and cloud->device throughput ($RX_MSGS x 2 KiB)"
run_device p 60 /dev/null --install "$hello" "${NET[@]}"
wait_for 30 has p 'net: connected to broker' || die "the device did not connect: $(tail -n 20 "$W/p.txt")"
timeout 60 mosquitto_sub "${SUBTLS[@]}" -t keel/v1/dev-1/result -F '%U %x' >"$W/results.txt" 2>/dev/null &
PIDS+=($!)
sleep 1
# One publisher session for every ping (mosquitto_pub -l: one message per line), so each round
# trip is broker -> device -> broker -> subscriber, without a TLS handshake per ping. Ids are
# 2-byte varints 128..: no byte is a newline.
{
    for i in $(seq "$PINGS"); do
        id=$((1000 + i))
        printf '%s %s\n' "$id" "$(date +%s.%N)" >>"$W/sent.txt"
        printf '\x82\x01\x05\x08%b%b\x10\x01\n' "\\x$(printf %02x $(((id & 0x7f) | 0x80)))" "\\x$(printf %02x $((id >> 7)))"
        sleep 0.05
    done
} | timeout 60 mosquitto_pub "${TLS[@]}" -q 1 -t keel/v1/dev-1/cmd -l 2>/dev/null
wait_for 10 bash -c "[ \$(wc -l <'$W/results.txt') -ge $PINGS ]" || echo "bench-net: only $(wc -l <"$W/results.txt") of $PINGS pings answered" >&2
# result payload: Envelope{... result(15){ command_id(1) varint ...}}: find "7a LL 08 <varint>".
python3 - "$W/sent.txt" "$W/results.txt" >"$W/rtt.txt" <<'PY'
import re, sys
sent = {}
for line in open(sys.argv[1]):
    i, t = line.split()
    sent[int(i)] = float(t)
for line in open(sys.argv[2]):
    parts = line.split()
    if len(parts) != 2:
        continue
    t, hexs = float(parts[0]), parts[1]
    m = re.search(r'7a[0-9a-f]{2}08((?:[89a-f][0-9a-f])*[0-7][0-9a-f])', hexs)
    if not m:
        continue
    b = bytes.fromhex(m.group(1))
    v = 0
    for k, x in enumerate(b):
        v |= (x & 0x7f) << (7 * k)
    if v in sent:
        print("%.3f" % ((t - sent.pop(v)) * 1000.0))
PY
answered=$(wc -l <"$W/rtt.txt")
p50=$(pct 50 <"$W/rtt.txt")
p99=$(pct 99 <"$W/rtt.txt")

kill -TERM "$DEV_PID" 2>/dev/null; wait "$DEV_PID" 2>/dev/null

# ---- app channel round trip ------------------------------------------------------------------
# broker -> microvisor -> echo app (keel_channel_recv, keel_channel_send) -> microvisor -> broker:
# one subscriber sees both the message going down and the answer coming up, so the figure holds
# no publisher start-up or TLS handshake (each message is its own mosquitto_pub: a ChannelData
# envelope starts with a newline byte, which mosquitto_pub -l would split on).
CHANS=${BENCH_NET_CHANS:-$PINGS}
# chan_rtt LABEL KEEL: the echo app run by that keel CLI; round trips (ms) into $W/chan_rtt_LABEL.txt.
chan_rtt() {
    local label=$1 cur_keel=$keel
    keel=$2
    echo "bench-net: app channel round trip ($CHANS messages, echo app, $label)"
    run_device "e$label" 90 /dev/null --install "$echo_app" "${NET[@]}"
    keel=$cur_keel
    wait_for 30 has "e$label" 'echo: broker has 8 sends' || die "the echo app did not come up connected: $(tail -n 20 "$W/e$label.txt")"
    timeout 120 mosquitto_sub "${SUBTLS[@]}" -t keel/v1/dev-1/app/down/echo -t keel/v1/dev-1/app/up/echo \
        -F '%U %t %x' >"$W/chan_$label.txt" 2>/dev/null &
    local sub=$!
    PIDS+=("$sub")
    sleep 1
    for i in $(seq "$CHANS"); do
        # Envelope{channel(18){data(1) = "rt-NNNN"}}
        printf '\x92\x01\x09\x0a\x07rt-%04d' "$i" >"$W/chan.bin"
        timeout 10 mosquitto_pub "${TLS[@]}" -q 1 -t keel/v1/dev-1/app/down/echo -f "$W/chan.bin" 2>/dev/null
        sleep 0.05
    done
    wait_for 10 bash -c "[ \$(grep -c /up/ '$W/chan_$label.txt') -ge $CHANS ]" ||
        echo "bench-net: only $(grep -c /up/ "$W/chan_$label.txt") of $CHANS channel messages answered ($label)" >&2
    python3 - "$W/chan_$label.txt" >"$W/chan_rtt_$label.txt" <<'PY'
import re, sys
down = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) != 3:
        continue
    t, topic, hexs = float(parts[0]), parts[1], parts[2]
    m = re.search(r'72742d((?:3[0-9]){4})', hexs)
    if not m:
        continue
    key = m.group(1)
    if topic.endswith("/down/echo"):
        down[key] = t
    elif key in down:
        print("%.3f" % ((t - down.pop(key)) * 1000.0))
PY
    kill "$sub" 2>/dev/null
    kill -TERM "$DEV_PID" 2>/dev/null; wait "$DEV_PID" 2>/dev/null
}
bash "$root/scripts/bench-baseline.sh" "$build" "$BASE_REV" "$W/base" || die "the baseline $BASE_REV did not build"
chan_rtt before "$W/base/build/host/tools/keel/keel"
chan_rtt after "$keel"
chan_answered=$(wc -l <"$W/chan_rtt_after.txt")
chan_p50=$(pct 50 <"$W/chan_rtt_after.txt")
chan_p99=$(pct 99 <"$W/chan_rtt_after.txt")
chan_before_answered=$(wc -l <"$W/chan_rtt_before.txt")
chan_before_p50=$(pct 50 <"$W/chan_rtt_before.txt")
chan_before_p99=$(pct 99 <"$W/chan_rtt_before.txt")

run_device t 90 /dev/null --install "$hello" "${NET[@]}" --append "net-rx-mark=$RX_MSGS"
wait_for 30 has t 'net: connected to broker' || die "the device did not connect: $(tail -n 20 "$W/t.txt")"
# Padded Acks of another boot: Envelope{ack{boot=1}, field 100 = 2000 bytes}, decoded and ignored
# (mosquitto_pub -l ends a message at a newline or a NUL byte: neither occurs in it).
python3 -c 'import sys; sys.stdout.buffer.write((b"\x8a\x01\x02\x08\x01\xa2\x06\xd0\x0f" + b"x" * 2000 + b"\n") * int(sys.argv[1]))' "$RX_MSGS" |
    timeout 120 mosquitto_pub "${TLS[@]}" -q 1 -t keel/v1/dev-1/ack -l 2>/dev/null
wait_for 60 has t 'net: received [0-9]+ messages' ||
    { echo "bench-net: the device did not receive every message:"; grep 'net:' "$W/t.txt" | tail -n 5; } >&2
read -r rx_bytes rx_ms < <(sed -n 's/.*net: received [0-9]* messages (\([0-9]*\) bytes) in \([0-9]*\) ms.*/\1 \2/p' "$W/t.txt")
kill -TERM "$DEV_PID" 2>/dev/null; wait "$DEV_PID" 2>/dev/null
if [ -n "${rx_ms:-}" ] && [ "$rx_ms" -gt 0 ]; then
    kibs=$(awk -v b="$rx_bytes" -v ms="$rx_ms" 'BEGIN {printf "%.0f", b / 1024 / (ms / 1000)}')
else
    kibs=n/a
fi

# ---- app compute throughput: idle-connected vs networking off --------------------------------
echo "bench-net: app compute throughput, $RUNS runs each with and without the network"
printf 'spin 5000\n' >"$W/spin.in"
: >"$W/on.txt"; : >"$W/off.txt"
spin_rounds() { sed -n 's/^app| bench: spin_rounds=\([0-9]*\).*/\1/p' "$1"; }
for i in $(seq "$RUNS"); do
    run_device off$i 10 "$W/spin.in" --install "$app"
    wait "$DEV_PID"
    spin_rounds "$W/off$i.txt" >>"$W/off.txt"
    run_device on$i 10 "$W/spin.in" --install "$app" "${NET[@]}"
    wait "$DEV_PID"
    has on$i 'net: connected to broker' || echo "bench-net: run $i did not connect" >&2
    spin_rounds "$W/on$i.txt" >>"$W/on.txt"
done
off=$(median <"$W/off.txt")
on=$(median <"$W/on.txt")
ratio=$(awk -v a="$on" -v b="$off" 'BEGIN {if (b > 0) printf "%.3f", a / b; else print "n/a"}')

# ---- footprint -----------------------------------------------------------------------------------
# Bytes of flash and static RAM the linker took from each library or object group
# (scripts/footprint.py reads the map; the build checks the same figures against a budget).
fp() { python3 "$root/scripts/footprint.py" "$map" --kv | sed -n "s/^$1=//p"; }
lwip_t=$(fp lwip_flash); lwip_d=$(fp lwip_ram); mbed_t=$(fp mbedtls_flash); mbed_d=$(fp mbedtls_ram)
agent_t=$(fp agent_flash); agent_d=$(fp agent_ram)
kib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1024}'; }

section="## Connectivity (issue 4)

Measured $(date -u +%Y-%m-%d) on this machine (QEMU $(qemu-system-arm --version | head -n1 | awk '{print $4}'), mps2-an505, no -icount: device time
follows the host clock), by \`scripts/bench-net.sh\`: the device against Mosquitto with TLS 1.2 (ECDHE-ECDSA P-256,
mutual authentication) on 127.0.0.1 through QEMU's restricted user network and \`keel relay\`.

| figure | value |
|---|---|
| boot to MQTT connected (median of $RUNS) | $boot ms |
| connect attempt to CONNACK: TCP + TLS handshake + MQTT CONNECT (median of $RUNS) | $hs ms |
| handler stack used once connected | ${stack:-n/a} bytes of 8192 |
| ping round trip over MQTT, host -> broker -> device -> broker -> host ($answered of $PINGS) | p50 $p50 ms, p99 $p99 ms |
| app channel round trip, broker -> device -> echo app -> device -> broker, seen by one subscriber ($chan_answered of $CHANS) | p50 $chan_p50 ms, p99 $chan_p99 ms (before, $BASE_REV's \`keel relay\`, same run: p50 $chan_before_p50 ms, p99 $chan_before_p99 ms, $chan_before_answered answered) |
| MQTT throughput cloud -> device ($RX_MSGS messages of 2 KiB, QoS 1, timed by the device) | $kibs KiB/s |
| app compute throughput, idle-connected / networking off (5 s spin, median of $RUNS: $on / $off rounds) | $ratio |
| flash (.text + .rodata): lwIP / Mbed TLS / agent (net/, keel_proto, nanopb) | $(kib "$lwip_t") / $(kib "$mbed_t") / $(kib "$agent_t") KiB |
| RAM (.data + .bss + .noinit): lwIP / Mbed TLS / agent | $(kib "$lwip_d") / $(kib "$mbed_d") / $(kib "$agent_d") KiB, plus Mbed TLS's heap at run time (boot word net-stats reports it) |

The app channel round trip was about 40 ms more than a ping (the *before* figure): the app's
answer leaves the device as a second segment right after the PUBACK of the message, and QEMU's user
network joins the guest's connection to \`keel relay\` through a loopback TCP connection whose
QEMU end has Nagle on, so QEMU held the answer until the relay's end acknowledged the PUBACK, which
Linux delays by 40 ms (strace: QEMU's send returns at once, the relay reads it 41 ms later). A
ping's answer shares the PUBACK's segment and never waited. \`keel relay\` now acknowledges at once
(TCP_QUICKACK after every read, TCP_NODELAY for the other direction)."

bash "$root/scripts/write-bench-section.sh" "$out" <<<"$section"
echo "bench-net: wrote $out"
echo "$section"
