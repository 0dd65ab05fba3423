#!/usr/bin/env bash
# keeld under hostile HTTP clients (issue 17): thousands of idle connections, slow-loris header
# drips, oversized headers, SSE streams that never read, each held from 127.0.0.2 while a normal
# client on 127.0.0.1 makes 20 requests (GET /v1/devices). Measured: how many hostile connections
# keeld held, how many normal requests were answered and how fast, keeld's peak RSS and threads.
# Writes the "## keeld under hostile HTTP clients (issue 17)" section of bench/results.md.
# Usage: scripts/bench-http-hostile.sh [BUILD_DIR]   (HOSTILE_IDLE, HOSTILE_SLOW, HOSTILE_BIG,
# HOSTILE_SSE: connection counts, defaults 2000, 500, 100, 300)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd)
keeld="$build/host/server/keeld"
[ -x "$keeld" ] || { echo "bench-http-hostile: $keeld not built" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/keel-bench-hostile.XXXXXX")
KPID=""
cleanup() { [ -n "$KPID" ] && kill "$KPID" 2>/dev/null && wait "$KPID" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
# Thousands of sockets on both ends.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
bash "$root/scripts/stack.sh" certs "$work" broker keeld >/dev/null
token=$("$keeld" token create --db "$work/keeld.db" --name bench)
# No broker: the REST API serves without one (keeld keeps retrying the connection).
"$keeld" --db "$work/keeld.db" --http-port 0 --port-file "$work/port" --mqtt-port 1 \
    --mqtt-ca "$work/ca.pem" --mqtt-cert "$work/keeld.pem" --mqtt-key "$work/keeld.key" --log-level 0 \
    >"$work/keeld.log" 2>&1 &
KPID=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
tool="$root/tests/server/hostile_http.py"
rows=""
base=$(python3 "$tool" "$port" "$token" idle 0 --keeld-pid "$KPID")
for spec in "idle ${HOSTILE_IDLE:-2000}" "slowloris ${HOSTILE_SLOW:-500}" "bigheader ${HOSTILE_BIG:-100}" "sse ${HOSTILE_SSE:-300}"; do
    set -- $spec
    out=$(timeout 600 python3 "$tool" "$port" "$token" "$1" "$2" --keeld-pid "$KPID")
    echo "bench-http-hostile: $out"
    rows+=$(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print("| %s | %d | %d | %d / %d | %s | %s | %d | %d |" % (j["kind"], j["opened"], j["held"], j["answered"], j["probes"], j["p50_ms"], j["max_ms"], j["rss_mb"], j["threads"]))' "$out")$'\n'
    kill -0 "$KPID" || { echo "bench-http-hostile: keeld died" >&2; exit 1; }
done
b=$(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print("%d / %d answered, p50 %s ms, RSS %d MB, %d threads" % (j["answered"], j["probes"], j["p50_ms"], j["rss_mb"], j["threads"]))' "$base")
section=$(cat <<EOF2
## keeld under hostile HTTP clients (issue 17)

Measured $(date -u +%Y-%m-%d) by \`scripts/bench-http-hostile.sh\` (\`tests/server/hostile_http.py\`): one keeld,
each kind of hostile client opened from 127.0.0.2 and held while a normal client on 127.0.0.1
makes 20 sequential requests (GET /v1/devices, 5 s timeout each). Baseline, no hostile client:
$b. RSS and threads: keeld's peak while the hostile connections were held (keeld as
\`make\` builds it: Debug with ASan and UBSan, whose shadow memory is in the RSS). keeld allows one
address 64 connections (api.c API_CONN_PER_IP) and closes a connection silent for 30 s.

| hostile clients | opened | still held by keeld | normal requests answered | p50 ms | max ms | keeld RSS MB | keeld threads |
|---|---|---|---|---|---|---|---|
$rows
EOF2
)
bash "$root/scripts/write-bench-section.sh" "$root/bench/results.md" <<<"$section"
echo "$section"
