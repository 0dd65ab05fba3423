#!/usr/bin/env bash
# bench-tls.sh BUILD_DIR: the figures of issue 14 (the connectivity stack on Mbed TLS 3.6 LTS,
# lwIP 2.2, TLS 1.3), written as the "## Connectivity stack: Mbed TLS 3.6, TLS 1.3 (issue 14)"
# section of bench/results.md, before and after in one run:
#
#   - the baseline is the tree before the move (git commit BENCH_TLS_BASE, default the last commit
#     on Mbed TLS 2.28.3 / lwIP 2.1.3) built in a temporary directory with its own deps.sh: its
#     firmware, and its own `keel` to run it (today's keel runs devices differently: sandbox, boot
#     words), which links the system's libmbedtls-dev 2.28 as that tree did (its own deps.sh
#     installs that package: today's tree does not list it, so nothing of Keel can link it);
#   - flash and static RAM by library, from both link maps (scripts/footprint.py);
#   - TLS heap peak (newlib's arena after the connection, boot word net-stats);
#   - connect attempt -> CONNACK (TCP + TLS handshake + MQTT CONNECT, the device's own log line)
#     and boot -> MQTT connected, for TLS 1.3 (default), TLS 1.2 (--allow-tls12 against a broker
#     capped at 1.2) and the baseline's TLS 1.2;
#   - round trips and bytes of the handshake, seen by a counting TCP proxy between the device's
#     relay and Mosquitto: flights alternate direction, and a TLS 1.3 handshake is done after 3
#     flights (ClientHello; server's flight; client's certificate, Finished and MQTT CONNECT),
#     a TLS 1.2 one after 4, so the handshake bytes are those of the first 3 or 4 flights;
#   - resumed handshakes against the fleet broker (stateful tickets, scripts/stack.sh's
#     openssl.cnf) and against the same broker with OpenSSL's default stateless tickets.
# Every process started here is stopped on exit; every wait is bounded.
set -uo pipefail
build=${1:?usage: bench-tls.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
keel=$build/host/tools/keel/keel
fw=$build/fw/microvisor/keel-microvisor.elf
hello=$build/fw/apps/hello/hello.elf
map=$build/fw/microvisor/keel-microvisor.map
out=$root/bench/results.md
RUNS=${BENCH_TLS_RUNS:-5}
BASE=${BENCH_TLS_BASE:-56e8dc3}

for f in "$keel" "$fw" "$hello" "$map"; do
    [ -e "$f" ] || { echo "bench-tls: $f is missing; run make first" >&2; exit 1; }
done
W=$(mktemp -d "${TMPDIR:-/tmp}/keel-bench-tls.XXXXXX") || exit 1
load0=$(cut -d' ' -f1 /proc/loadavg)
# shellcheck source=../tests/net/procs.sh
. "$root/tests/net/procs.sh"
cleanup() {
    stop_pids
    rm -rf "$W"
}
trap cleanup EXIT
die() { echo "bench-tls: $*" >&2; exit 1; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "n/a"}'; }
kib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1024}'; }

# ---- the baseline tree --------------------------------------------------------------------------
echo "bench-tls: building the baseline $BASE (firmware and keel) in $W/base"
mkdir -p "$W/base"
git -C "$root" archive "$BASE" | tar -x -C "$W/base" || die "cannot export $BASE"
bash "$W/base/scripts/deps.sh" "$W/base/tp" >"$W/base-deps.log" 2>&1 || die "baseline deps failed: $(tail -n 5 "$W/base-deps.log")"
{ cmake -S "$W/base/firmware" -B "$W/base/fw" -DCMAKE_TOOLCHAIN_FILE="$W/base/cmake/arm-none-eabi.cmake" \
    -DKEEL_THIRD_PARTY="$W/base/tp" -DCMAKE_BUILD_TYPE=Release &&
  cmake --build "$W/base/fw" -j 2 --target keel-microvisor hello &&
  cmake -S "$W/base" -B "$W/base/host" -DKEEL_FW_DIR="$W/base/fw" -DKEEL_THIRD_PARTY="$W/base/tp" \
    -DCMAKE_BUILD_TYPE=Release &&
  cmake --build "$W/base/host" -j 2 --target keel; } >"$W/base-build.log" 2>&1 ||
    die "baseline build failed: $(tail -n 10 "$W/base-build.log")"
base_keel=$W/base/host/tools/keel/keel
base_fw=$W/base/fw/microvisor/keel-microvisor.elf
base_hello=$W/base/fw/apps/hello/hello.elf
base_mbed=$(awk '{print $2}' "$W/base/tp/mbedtls/.keel-source" 2>/dev/null)

# ---- footprint ----------------------------------------------------------------------------------
fp() { python3 "$root/scripts/footprint.py" "$1" --kv | sed -n "s/^$2=//p"; }
row() { # LABEL KEY: "| label | before | after | delta |" in KiB
    local b a
    b=$(fp "$W/base/fw/microvisor/keel-microvisor.map" "$2"); a=$(fp "$map" "$2")
    printf '| %s | %s | %s | %+.1f |\n' "$1" "$(kib "$b")" "$(kib "$a")" "$(awk -v a="$a" -v b="$b" 'BEGIN {print (a - b) / 1024}')"
}
footprint=$(
    row "flash, whole microvisor" flash
    row "flash, Mbed TLS" mbedtls_flash
    row "flash, lwIP" lwip_flash
    row "flash, agent (net/, protocol)" agent_flash
    row "flash, core" core_flash
    row "static RAM, whole microvisor" ram
    row "static RAM, lwIP" lwip_ram
    row "static RAM, agent" agent_ram
)

# ---- brokers: the fleet's, and the same one capped at TLS 1.2 -----------------------------------
bash "$root/scripts/stack.sh" certs "$W" broker keeld >/dev/null || die "scripts/stack.sh certs failed"
tls12_openssl_conf "$W/tls12.cnf"
mkdir -p "$W/b13" "$W/b12" "$W/b13s"
for b in b13 b12 b13s; do cp "$W"/*.pem "$W"/*.key "$W/$b/" 2>/dev/null; done
P13=$(free_port); P12=$(free_port); P13S=$(free_port)
bash "$root/scripts/stack.sh" broker-conf "$W/b13" "$P13" || die "broker-conf failed"
bash "$root/scripts/stack.sh" broker-conf "$W/b12" "$P12" || die "broker-conf failed"
bash "$root/scripts/stack.sh" broker-conf "$W/b13s" "$P13S" || die "broker-conf failed"
rm -f "$W/b13s/openssl.cnf" # OpenSSL's defaults: stateless tickets
broker_start "$W/b13" "$P13" || die "mosquitto did not start"
OPENSSL_CONF=$W/tls12.cnf broker_start "$W/b12" "$P12" || die "mosquitto (TLS 1.2) did not start"
broker_start "$W/b13s" "$P13S" || die "mosquitto (stateless tickets) did not start"

# The counting proxy: LISTEN -> 127.0.0.1:TARGET, one log line per connection with its flights
# ("c" client->server, "s" server->client, and the bytes of each). With CUT seconds it resets
# every connection that old (a dropped link: neither end sees a TLS close), so the device
# reconnects (and resumes its TLS session).
cat >"$W/proxy.py" <<'PY'
import selectors, socket, struct, sys, time
listen, target, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
cut = float(sys.argv[4]) if len(sys.argv) > 4 else 0
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", listen)); ls.listen(8)
sel = selectors.DefaultSelector(); sel.register(ls, selectors.EVENT_READ)
conns = {}
def flush(c, reset=False):
    st = conns.pop(c, None)
    if st is None: return
    for s in (st["c"], st["s"]):
        sel.unregister(s)
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    if st["flights"]:  # QEMU's guestfwd opens and closes one connection at start: not a flight
        with open(log, "a") as f:
            f.write(" ".join(f"{d}{n}" for d, n in st["flights"]) + "\n")
while True:
    if cut:
        for c in [c for c, st in conns.items() if time.monotonic() - st["t"] > cut]:
            flush(c, reset=True)
    for key, _ in sel.select(timeout=0.1):
        s = key.fileobj
        if s is ls:
            c, _ = ls.accept()
            t = socket.create_connection(("127.0.0.1", target))
            st = {"c": c, "s": t, "flights": [], "t": time.monotonic()}
            conns[c] = st
            sel.register(c, selectors.EVENT_READ, (c, "c")); sel.register(t, selectors.EVENT_READ, (c, "s"))
            continue
        c, d = key.data
        st = conns.get(c)
        if st is None: continue
        data = s.recv(65536)
        if not data:
            flush(c); continue
        (st["s"] if d == "c" else st["c"]).sendall(data)
        fl = st["flights"]
        if fl and fl[-1][0] == d: fl[-1][1] += len(data)
        else: fl.append([d, len(data)])
PY
X13=$(free_port); X12=$(free_port); XB=$(free_port); XR=$(free_port); XS=$(free_port)
for pair in "$X13:$P13:p13:0" "$X12:$P12:p12:0" "$XB:$P13:pbase:0" "$XR:$P13:pres:2.5" \
    "$XS:$P13S:pstl:2.5"; do
    IFS=: read -r l t n cut <<<"$pair"
    python3 "$W/proxy.py" "$l" "$t" "$W/$n.flights" "$cut" &
    PIDS+=($!)
    wait_for 10 tcp_listening "$l" || die "the counting proxy did not start"
done

# run NAME FW APP PROXY_PORT [keel flags...]: one device (run by $KEEL, default this tree's keel)
# until it has connected and reported its heap; its console in $W/NAME.txt.
run() {
    local name=$1 f=$2 a=$3 port=$4; shift 4
    timeout --kill-after=5 40 "${KEEL:-$keel}" device run --state "$W/st.$name" --firmware "$f" --id dev-1 \
        --seconds 8 --install "$a" --broker "$port" --fleet-ca "$W/ca.pem" --fleet-ca-key "$W/ca.key" \
        --append net-stats=3000 "$@" </dev/null >"$W/$name.txt" 2>&1
}
# measure LABEL NAME FW APP PROXY_PORT FLIGHTS_FILE HS_FLIGHTS [flags]: RUNS devices; one table row
# (MATCH: which "connected" line of a run counts, FLINE: which proxy line is shown; defaults: the
# first of each)
measure() {
    local label=$1 name=$2 f=$3 a=$4 port=$5 flights=$6 nf=$7; shift 7
    : >"$W/$name.connect"; : >"$W/$name.heap"
    for i in $(seq "$RUNS"); do
        run "$name$i" "$f" "$a" "$port" "$@"
        grep -E "net: connected to broker .*${MATCH:-}" "$W/$name$i.txt" |
            sed -n 's/.*net: connected to broker .* in \([0-9]*\) ms, \([0-9]*\) ms after boot.*/\1 \2/p' | head -n1 >>"$W/$name.connect"
        sed -n 's/.*TLS heap \([0-9]*\) bytes.*/\1/p' "$W/$name$i.txt" | tail -n1 >>"$W/$name.heap"
    done
    [ -s "$W/$name.connect" ] || die "$label: the device never connected: $(grep -v '^app|' "$W/${name}1.txt" | tail -n 8)"
    wait_for 10 test -s "$flights" || die "$label: the proxy saw no connection"
    local hs boot heap rt up down
    hs=$(awk '{print $1}' "$W/$name.connect" | median)
    boot=$(awk '{print $2}' "$W/$name.connect" | median)
    heap=$(median <"$W/$name.heap")
    # Handshake bytes and round trips from the first connection of each run.
    read -r up down < <(sed -n "${FLINE:-1}p" "$flights" | awk -v n="$nf" '{u = 0; d = 0; for (i = 1; i <= n && i <= NF; i++) { v = substr($i, 2); if (substr($i, 1, 1) == "c") u += v; else d += v } print u, d; exit}')
    rt=$((nf / 2))
    printf '| %s | %s ms | %s ms | %s (+1 for MQTT CONNECT) | %s / %s B | %s B |\n' \
        "$label" "$hs" "$boot" "$rt" "$up" "$down" "$heap"
    sed -n "${FLINE:-1}p" "$flights" >"$W/$name.first"
}

echo "bench-tls: $RUNS devices each: baseline TLS 1.2, TLS 1.3 full and resumed (fleet and stateless tickets), TLS 1.2 (--allow-tls12 against a 1.2 broker)"
# (a measure that dies exits its command substitution only: || exit stops the bench there)
rb=$(KEEL=$base_keel measure "baseline: Mbed TLS ${base_mbed:-2.28}, TLS 1.2" nb "$base_fw" "$base_hello" "$XB" "$W/pbase.flights" 4) || exit 1
r13=$(measure "Mbed TLS 3.6.7, TLS 1.3 (default), full" n13 "$fw" "$hello" "$X13" "$W/p13.flights" 3) || exit 1
# Resumed: the proxy cuts every connection after 2.5 s; the reconnect offers the ticket. A resumed
# TLS 1.3 handshake is 3 flights too (ClientHello with the ticket; server flight without
# certificate; client Finished + CONNECT).
rres=$(MATCH="TLS 1\.3 resumed" FLINE=2 measure "Mbed TLS 3.6.7, TLS 1.3 resumed (reconnect)" nres "$fw" "$hello" "$XR" "$W/pres.flights" 3) || exit 1
rstl=$(MATCH="TLS 1\.3 resumed" FLINE=2 measure "Mbed TLS 3.6.7, TLS 1.3 resumed, broker with OpenSSL's default (stateless) tickets" nstl "$fw" "$hello" "$XS" "$W/pstl.flights" 3) || exit 1
r12=$(measure "Mbed TLS 3.6.7, TLS 1.2 (--allow-tls12)" n12 "$fw" "$hello" "$X12" "$W/p12.flights" 4 --allow-tls12) || exit 1

# Handshake bytes (up + down) of a resumed handshake against a full one, in %.
hs_bytes() { sed -n 's/.*| \([0-9]*\) \/ \([0-9]*\) B |.*/\1 \2/p' <<<"$1" | awk '{print $1 + $2}'; }
ratio() { awk -v a="$(hs_bytes "$1")" -v b="$(hs_bytes "$2")" 'BEGIN {if (b) printf "%.0f %%", 100 * a / b; else print "n/a"}'; }
section="## Connectivity stack: Mbed TLS 3.6, TLS 1.3 (issue 14)

Measured $(date -u +%Y-%m-%d) on this machine (QEMU $(qemu-system-arm --version | head -n1 | awk '{print $4}'), mps2-an505, no -icount: device
time follows the host clock), by \`scripts/bench-tls.sh\`: before (commit $BASE, Mbed TLS ${base_mbed:-2.28} + lwIP
2.1.3, built in a temporary directory in the same run) and after (this tree: Mbed TLS 3.6.7 with TLS 1.3 and PSA,
lwIP 2.2.1). Devices against Mosquitto 2.0 + OpenSSL 3 on 127.0.0.1 with mutual authentication (P-256), $RUNS runs each.

| footprint (KiB) | before | after | change |
|---|---|---|---|
$footprint

| connection | connect -> CONNACK (median) | boot -> MQTT connected (median) | TLS round trips | handshake bytes up / down | TLS heap peak |
|---|---|---|---|---|---|
$r13
$rres
$rstl
$r12
$rb

Resumed against full TLS 1.3, handshake bytes (up + down): $(ratio "$rres" "$r13") with the fleet broker's stateful tickets
(\`scripts/stack.sh\` openssl.cnf), $(ratio "$rstl" "$r13") with OpenSSL's default stateless tickets.

Flights of the first connection (c = device -> broker, s = broker -> device, bytes; the handshake is
the first 3 flights for TLS 1.3 and 4 for TLS 1.2, the last of them carries the MQTT CONNECT for 1.3):
TLS 1.3: \`$(cat "$W/n13.first")\`; TLS 1.3 resumed: \`$(cat "$W/nres.first")\`; resumed, stateless tickets: \`$(cat "$W/nstl.first")\`;
TLS 1.2: \`$(cat "$W/n12.first")\`; baseline: \`$(cat "$W/nb.first")\`.

Resumed: the proxy resets each connection after 2.5 s (a dropped link) and the reconnect offers the last
session ticket the broker sent (PSK with ephemeral ECDHE: forward secrecy kept); the broker skips its
certificate chain and signature, the device its chain verification. With OpenSSL's default stateless tickets the
ticket is the encrypted session, device certificate included (~590 B in the resumed ClientHello); the fleet
broker's stateful tickets are a 32-byte id (docs/security.md, section on the broker's configuration).
The device's P-256 operations (ECDHE, signature checks, its CertificateVerify) run in Mbed TLS's constant-time
p256-m driver through PSA, without \`MBEDTLS_ECP_NIST_OPTIM\` (docs/security.md).
Connection times are medians of $RUNS devices per row; heap and bytes from the runs' first connections. Times are
host-paced and swing with the machine's load (load average $load0 at the start of this run, $(cut -d' ' -f1 /proc/loadavg) at
the end): compare rows of one run, not runs."
bash "$root/scripts/write-bench-section.sh" "$out" <<<"$section"
echo "$section"
echo "bench-tls: wrote $out"
