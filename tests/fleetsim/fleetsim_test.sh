#!/usr/bin/env bash
# fleetsim_test.sh KEELD KEEL FLEETSIM: 100 devices in one fleetsim process, Mosquitto and keeld
# (scripts/fleetload_lib.sh). Proves what the load benchmark relies on:
#   - every device connects with its own certificate and says hello (keeld lists 100 online);
#   - a one-page rollout reaches every device through the real update engine: 100 installs,
#     no device installs twice, keeld records 100 successes (every final status delivered);
#   - Mosquitto killed (-9) while devices are downloading: every device reconnects with back-off
#     and resubscribes (keeld lists them online again and a command sent after the restart is
#     answered), the downloads resume and finish;
#   - a link outage of 10 devices: they go offline, come back and are online again;
#   - a slow, lossy link (the link model) for 10 devices: a command still arrives and is answered,
#     and the model counts retransmitted bytes;
#   - the counters the benchmark reads add up (bytes received >= the minimum).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KEELD="$1"
KEEL="$2"
FLEETSIM="$3"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/keel-fleetsim-test.XXXXXX")"
N=100
PIDS=()
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"

cleanup() {
  local rc=$? pid i
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for ((i = 0; i < 100; i++)); do fl_alive "$pid" || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$rc" -ne 0 ]; then
    echo "---- fleetsim"; tail -n 5 "$WORK/sim.out" "$WORK/sim.err" 2>/dev/null || true
    echo "---- keeld log"; tail -n 30 "$WORK/keeld.log" 2>/dev/null || true
    echo "FAIL: fleetsim test (work dir kept: $WORK)"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck source=../../scripts/fleetload_lib.sh
source "$ROOT/scripts/fleetload_lib.sh"

fl_stack --cmd-timeout 60
fl_apps
fl_sim sim "$N" 1
online_is() { [ "$(fl_online)" = "$1" ]; }
stat_is() { [ "$(fl_stat sim "$1")" = "$2" ]; }
stat_ge() { local v; v="$(fl_stat sim "$1")"; [ -n "$v" ] && [ "$v" -ge "$2" ]; }
fl_wait_for 120 grep -q '^all-online' "$WORK/sim.out" || fail "not every device came online"
fl_wait_for 60 online_is "$N" || fail "keeld lists $(fl_online) of $N devices online"

# ---- rollout with a broker restart while devices download ----------------------------------------
fl_deploy v2.kb
fl_wait_for 120 stat_ge updating 1 || fail "no device got the offer"
fl_broker_kill
fl_wait_for 30 stat_is online 0 || fail "devices still online with the broker gone: $(fl_stat sim online)"
before="$(fl_stat sim connects)"
sleep 2 # the broker stays away while devices retry (their attempts fail: counted below)
fl_broker_start
fl_wait_for 120 stat_is online "$N" || fail "$(fl_stat sim online) of $N devices back online"
[ "$(fl_stat sim connects)" -gt "$before" ] || fail "no reconnect attempts were counted"
fl_wait_for 60 fl_mqtt_is connected || fail "keeld did not reconnect to the restarted broker"
fl_wait_for 60 online_is "$N" || fail "keeld lists $(fl_online) of $N devices online after the restart"
# resubscribed: a command sent now is delivered and answered
fl_api POST /v1/commands '{"device":"dev-7","kind":"ping"}' >/dev/null || fail "ping: $(cat "$WORK/body")"
CMD="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/body")"
answered() { fl_api GET "/v1/commands/$CMD" | grep -q '"status":"ok"'; }
fl_wait_for 60 answered || fail "dev-7 did not answer a ping after the restart: $(cat "$WORK/body")"

finished() { [ "$(fl_summary finished)" = True ]; }
fl_wait_for 300 finished || fail "the rollout did not finish: $(fl_api GET "/v1/deployments/$DEP" | head -c 400)"
[ "$(fl_summary succeeded)" = "$N" ] || fail "keeld recorded $(fl_summary succeeded) of $N successes"
fl_wait_for 30 stat_is installs "$N" || fail "$(fl_stat sim installs) installs"
[ "$(fl_stat sim double)" = 0 ] || fail "$(fl_stat sim double) devices installed twice"
min="$(fl_stat sim min)"
data="$(fl_stat sim chunk_data)"
[ "$min" -gt 0 ] && [ "$data" -ge "$min" ] || fail "chunk data $data < the minimum $min"

# ---- a link outage of 10 devices -------------------------------------------------------------------
fl_ctl sim outage 0 10 3000 || fail "outage command not taken"
fl_wait_for 30 stat_is online $((N - 10)) || fail "the outage took $(fl_stat sim online) online"
fl_wait_for 60 stat_is online "$N" || fail "after the outage $(fl_stat sim online) of $N online"
fl_wait_for 60 online_is "$N" || fail "keeld lists $(fl_online) of $N online after the outage"

# ---- a slow, lossy link for 10 devices: commands still arrive, later ---------------------------
r0="$(fl_stat sim retrans)"
fl_ctl sim link 0 10 "rtt=400,loss=0.3,rate=4000" || fail "link command not taken"
fl_api POST /v1/commands '{"device":"dev-1","kind":"ping"}' >/dev/null || fail "ping: $(cat "$WORK/body")"
CMD="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/body")"
fl_wait_for 60 answered || fail "dev-1 did not answer a ping over the lossy link: $(cat "$WORK/body")"
retrans_grew() { fl_ctl sim stats && [ "$(fl_stat sim retrans)" -gt "$r0" ]; }
fl_wait_for 90 retrans_grew || fail "the lossy link retransmitted nothing (retrans $(fl_stat sim retrans))"

# ---- every device's counters ----------------------------------------------------------------------
fl_ctl sim dump "$WORK/devices.csv" || fail "no dump"
python3 - "$WORK/devices.csv" "$N" <<'PY' || fail "per-device counters"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == int(sys.argv[2]), len(rows)
for r in rows:
    assert r["online"] == "1", r
    assert int(r["installs"]) == 1 and int(r["reinstalls"]) == 0, r
    assert int(r["wire_rx"]) > int(r["payload_rx"]) > 0, r
for r in rows[:10]:
    assert int(r["connects"]) >= 3, r   # first connect, after the broker restart, after the outage
PY
echo "PASS: fleetsim ($N devices: rollout across a broker restart, outage, reconnects)"
