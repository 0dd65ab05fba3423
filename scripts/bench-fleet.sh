#!/usr/bin/env bash
# scripts/bench-fleet.sh BUILD_DIR: the figures of issue 5 (keeld and the keel CLI), written as the
# "## keeld and CLI (issue 5)" section of bench/results.md (other sections are kept).
#
#   - keeld resident memory per 1,000 registered devices: VmRSS of keeld from /proc before and after
#     1,000 devices say hello (one simdev identity "bench" that the benchmark broker's ACL lets
#     publish hellos for other device ids: 1,000 TLS clients would measure the broker instead);
#   - REST latency p50/p99 under load from a second process: wrk (2 threads, 16 connections, a
#     few seconds each) against GET /v1/devices with a token (the 1,000-device registry), GET
#     /v1/devices/{id} (one device), and GET /v1/health (no token, no database: the floor);
#   - log entries ingested per second: 4 simulated devices in parallel, each publishing 250 batches
#     of 8 entries back to back (simdev flood:N), timed until keeld has acked the last batch of
#     each (an ack means committed to SQLite); the stored count is checked.
#
# keeld, simdev and keel are built without sanitizers (BUILD_DIR/bench-fleet, Release) so the
# figures are the daemon's, not ASan's. Everything runs on 127.0.0.1, every run is bounded, and
# every process started here is stopped on exit.
set -euo pipefail

build=${1:?usage: bench-fleet.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/bench/results.md
rel=$build/bench-fleet
devices=1000
wrk_secs=${KEEL_BENCH_WRK_SECONDS:-5}
flooders=4
# Below Mosquitto's default queue of 1,000 messages per client, which keeld's session could reach.
batches=250
work=$(mktemp -d "${TMPDIR:-/tmp}/keel-bench-fleet.XXXXXX")
pids=()

# Running and not a zombie (an exited child stays one until this shell reaps it).
alive() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ "$st" != Z ] && [ "$st" != X ]; }
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
die() { echo "bench-fleet: $*" >&2; exit 1; }
wait_for() { # SECONDS CMD...
    local secs=$1 i; shift
    for ((i = 0; i < secs * 10; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}
for tool in wrk mosquitto openssl curl sqlite3; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || die "$tool is missing: make deps"
done

echo "bench-fleet: building keeld and simdev without sanitizers ($rel)"
cmake -S "$root" -B "$rel" -DKEEL_SANITIZE=OFF -DCMAKE_BUILD_TYPE=Release \
    -DKEEL_FW_DIR="$build/fw" -DKEEL_THIRD_PARTY="$build/third_party" >/dev/null
cmake --build "$rel" -j 2 --target keeld simdev >/dev/null
keeld=$rel/server/keeld
simdev=$rel/tests/server/simdev

# ---- the stack: shared certificates and broker config, plus the benchmark identity -------------
flood_ids=()
for i in $(seq "$flooders"); do flood_ids+=("flood-$i"); done
bash "$root/scripts/stack.sh" certs "$work" broker keeld bench "${flood_ids[@]}"
cat >"$work/acl.extra" <<'ACL'

# Benchmark only: "bench" registers many device ids with one connection.
user bench
topic write keel/v1/+/hello
ACL
mqtt_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bash "$root/scripts/stack.sh" broker-conf "$work" "$mqtt_port" "$work/acl.extra"
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.out" 2>&1 &
pids+=($!)
wait_for 10 port_open "$mqtt_port" || die "mosquitto did not start"
db=$work/keeld.db
token=$("$keeld" token create --db "$db" --name bench 2>/dev/null)
"$keeld" --db "$db" --http-port 0 --port-file "$work/port" --mqtt-port "$mqtt_port" \
    --mqtt-ca "$work/ca.pem" --mqtt-cert "$work/keeld.pem" --mqtt-key "$work/keeld.key" \
    --log-level 1 >"$work/keeld.log" 2>&1 &
keeld_pid=$!
pids+=("$keeld_pid")
wait_for 10 test -s "$work/port" || die "keeld did not start: $(cat "$work/keeld.log")"
url="http://127.0.0.1:$(cat "$work/port")"
wait_for 10 bash -c "curl -s '$url/v1/health' | grep -q '\"mqtt\":\"connected\"'" || die "keeld did not connect"
auth=(-H "Authorization: Bearer $token")
count_devices() {
    curl -s "${auth[@]}" "$url/v1/devices" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["devices"]))'
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$keeld_pid/status"; }
sim() { # ID ACTION...
    local id=$1; shift
    timeout 300 "$simdev" --port "$mqtt_port" --ca "$work/ca.pem" --cert "$work/$id.pem" \
        --key "$work/$id.key" --id "$id" "$@" >"$work/sim-$id.out" 2>&1
}

# ---- memory per 1,000 devices ------------------------------------------------------------------
echo "bench-fleet: registering $devices devices"
curl -s "${auth[@]}" "$url/v1/devices" >/dev/null # one warm request: the API's own first allocations
rss0=$(rss_kb)
hellos=()
for i in $(seq -f "dev-%04g" 1 "$devices"); do hellos+=("hello-as:$i"); done
sim bench "${hellos[@]}" || die "the registering device failed: $(tail -3 "$work/sim-bench.out")"
want=$((devices + 1)) # + the "bench" identity itself
devices_are() { [ "$(count_devices)" = "$1" ]; }
wait_for 120 devices_are "$want" || die "only $(count_devices) of $want devices registered"
rss1=$(rss_kb)
per_1000=$(( (rss1 - rss0) * 1000 / devices ))

# ---- REST latency under load (wrk) -------------------------------------------------------------
# wrk_run NAME PATH [auth]: p50 p99 (ms) and requests/s into $work/wrk-NAME.
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.2f", v}'; }
wrk_run() {
    local name=$1 path=$2 hdr=()
    [ "${3:-}" = auth ] && hdr=(-H "Authorization: Bearer $token")
    echo "bench-fleet: wrk GET $path (${wrk_secs} s)"
    timeout $((wrk_secs + 30)) wrk -t 2 -c 16 -d "${wrk_secs}s" --latency "${hdr[@]}" "$url$path" >"$work/wrk-$name.txt"
    local p50 p99 rps non2xx
    p50=$(awk '$1 == "50%" {print $2}' "$work/wrk-$name.txt" | to_ms)
    p99=$(awk '$1 == "99%" {print $2}' "$work/wrk-$name.txt" | to_ms)
    rps=$(awk '/^Requests\/sec:/ {printf "%d", $2}' "$work/wrk-$name.txt")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/wrk-$name.txt")
    [ -z "$non2xx" ] || die "wrk GET $path got $non2xx non-2xx answers"
    echo "$p50 $p99 $rps" >"$work/wrk-$name"
}
wrk_run health /v1/health
wrk_run one /v1/devices/dev-0500 auth
wrk_run list /v1/devices auth
read -r h50 h99 hrps <"$work/wrk-health"
read -r o50 o99 orps <"$work/wrk-one"
read -r l50 l99 lrps <"$work/wrk-list"
curl -s "${auth[@]}" "$url/v1/devices" >"$work/devices.json"
list_bytes=$(wc -c <"$work/devices.json")
list_count=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["devices"]))' "$work/devices.json")

# ---- log ingestion -----------------------------------------------------------------------------
# Three rounds, each a new boot of every device (keeld stores a (boot, msg_id) once), median taken.
entries=$((flooders * batches * 8))
: >"$work/rates"
for round in 1 2 3; do
    echo "bench-fleet: log flood round $round, $flooders devices x $batches batches x 8 entries"
    before=$(sqlite3 "$db" 'SELECT COUNT(*) FROM logs')
    # Timed from the devices' start (TLS connect included) to the last ack of each.
    t0=$(date +%s%N)
    fpids=()
    for id in "${flood_ids[@]}"; do
        sim "$id" --boot $((round + 1)) "flood:$batches" &
        fpids+=($!)
    done
    for p in "${fpids[@]}"; do wait "$p" || die "a flooding device failed: $(tail -3 "$work"/sim-flood-*.out)"; done
    t1=$(date +%s%N)
    stored=$(( $(sqlite3 "$db" 'SELECT COUNT(*) FROM logs') - before ))
    [ "$stored" = "$entries" ] || die "round $round stored $stored log entries, expected $entries"
    ms=$(( (t1 - t0) / 1000000 ))
    echo "$(( entries * 1000 / (ms > 0 ? ms : 1) )) $ms" >>"$work/rates"
done
read -r per_s ms < <(sort -n "$work/rates" | sed -n 2p)
rates_all=$(awk '{print $1}' "$work/rates" | paste -sd' ')
batches_s=$(( flooders * batches * 1000 / (ms > 0 ? ms : 1) ))
fs=$(stat -f -c %T "$work")
rss2=$(rss_kb)

section=$(cat <<EOF
## keeld and CLI (issue 5)

Measured $(date -u +%Y-%m-%d) on this machine ($(nproc) cores, shared), by \`scripts/bench-fleet.sh\`: keeld built
without sanitizers (Release), Mosquitto $(mosquitto -h 2>/dev/null | awk 'NR==1 {print $3}') with TLS on 127.0.0.1, SQLite in WAL mode with \`synchronous=FULL\`.

| figure | value | baseline / note |
|---|---|---|
| keeld resident memory per 1,000 registered devices | $((per_1000)) KiB | VmRSS ${rss0} KiB before, ${rss1} KiB with ${devices} devices registered by hello |
| REST \`GET /v1/devices\` (${list_count} devices, ${list_bytes} B of JSON) p50 / p99 | ${l50} / ${l99} ms | ${lrps} requests/s; wrk 2 threads, 16 connections, ${wrk_secs} s, with a token |
| REST \`GET /v1/devices/{id}\` (one device) p50 / p99 | ${o50} / ${o99} ms | ${orps} requests/s; same load |
| REST \`GET /v1/health\` (floor: no token, no database) p50 / p99 | ${h50} / ${h99} ms | ${hrps} requests/s; same load |
| log entries ingested per second (median of 3) | ${per_s} | rounds: ${rates_all}; ${entries} entries in ${ms} ms (${batches_s} batches/s of 8, one SQLite transaction and one ack each), ${flooders} devices flooding in parallel, from their connect to the last ack; database on ${fs} |

keeld's resident memory at the end of the run: ${rss2} KiB. Load generator and server share the
machine's cores, so the latencies include that contention.
EOF
)
bash "$(dirname "$0")/write-bench-section.sh" "$out" <<<"$section"
echo "$section"
echo "bench-fleet: wrote $out"
