#!/usr/bin/env bash
# bench-delta-device.sh BUILD_DIR OLD.kb NEW.kb OUT: stage NEW.kb on an emulated device that runs
# OLD.kb and write "<ms> <stack bytes> <turns> <longest turn us>" to OUT: the microvisor's own
# figures for its stage finish ("verified in N ms; handler stack used N bytes; T turns, the
# longest U us", firmware/microvisor/net/net_upd.c: the time of every turn added up), which for
# a delta bundle is where the patch is checked and decoded twice (docs/update-engine.md). Run
# under QEMU -icount shift=0, so 1 ms of guest time is 1 million instructions. A real Mosquitto
# (TLS) on a free loopback port and ota_srv (tests/ota) offer the bundle. Used by bench-delta.sh.
set -uo pipefail
build=${1:?usage: bench-delta-device.sh BUILD_DIR OLD.kb NEW.kb OUT}
old=$2 new=$3 out=$4
root=$(cd "$(dirname "$0")/.." && pwd)
keel=$build/host/tools/keel/keel srv=$build/host/tests/ota/ota_srv
fw=$build/fw/microvisor/keel-microvisor.elf
for f in "$keel" "$srv" "$fw"; do
    [ -e "$f" ] || { echo "bench-delta-device: $f is missing; run make first" >&2; exit 1; }
done
W=$(mktemp -d "${TMPDIR:-/tmp}/keel-bench-dd.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$W"; }
trap cleanup EXIT
trap 'exit 1' TERM INT
bash "$root/scripts/stack.sh" certs "$W" broker keeld >/dev/null || exit 1
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
bash "$root/scripts/stack.sh" broker-conf "$W" "$PORT" || exit 1
mosquitto -c "$W/mosquitto.conf" >>"$W/mosquitto.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.2; done
key=$(dirname "$old")/fleet.pub
"$keel" device provision --state "$W/dev" --id dev-1 --fleet-ca "$W/ca.pem" --fleet-ca-key "$W/ca.key" \
    --update-key "$key" >/dev/null || exit 1
"$keel" device install --state "$W/dev" "$old" >/dev/null || exit 1
timeout 400 "$srv" --port "$PORT" --ca "$W/ca.pem" --cert "$W/keeld.pem" --key "$W/keeld.key" \
    --device dev-1 --bundle "$new" --deployment 5 --seconds 380 >"$W/srv.txt" 2>&1 &
PIDS+=($!)
timeout 420 "$keel" device run --state "$W/dev" --firmware "$fw" --seconds 380 --icount \
    --broker "$PORT" --append "net-heartbeat=60000" </dev/null >"$W/console.txt" 2>&1 &
PIDS+=($!)
for _ in $(seq 1800); do
    line=$(grep -m1 -E 'update: deployment 5: .* verified in [0-9]+ ms' "$W/console.txt")
    [ -n "$line" ] && break
    grep -qE 'staging stopped|does not verify|refused' "$W/console.txt" && break
    sleep 0.2
done
if [ -z "${line:-}" ]; then
    echo "bench-delta-device: the device never finished staging $new" >&2
    tail -n 20 "$W/console.txt" >&2
    exit 1
fi
ms=$(sed -n 's/.*verified in \([0-9]*\) ms.*/\1/p' <<<"$line")
stack=$(sed -n 's/.*handler stack used \([0-9]*\) bytes.*/\1/p' <<<"$line")
turns=$(sed -n 's/.* \([0-9]*\) turns, the longest \([0-9]*\) us.*/\1 \2/p' <<<"$line")
echo "$ms $stack ${turns:-? ?}" >"$out"
