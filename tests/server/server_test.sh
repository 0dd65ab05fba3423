#!/usr/bin/env bash
# server_test.sh SCENARIO KEELD SIMDEV [KEEL]: one keeld black-box scenario. Starts Mosquitto (TLS,
# require_certificate, identity from the certificate CN, ACL per device) and keeld on free loopback
# ports in a temporary directory, runs SCENARIO, and stops everything it started on any exit.
set -euo pipefail

SCENARIO="$1"
KEELD="$2"
SIMDEV="$3"
KEEL="${4:-}"   # the keel CLI: the OTA scenarios build, sign and deploy bundles with it
WORK="$(mktemp -d "${TMPDIR:-/tmp}/keel-server-test.XXXXXX")"
PIDS=()
# keeld, simdev and keel are built with ASan/UBSan: any report (a leak at keeld's exit too) fails
# the scenario, read from the report files at the end (tests/lib/sanitizers.sh).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
. "$(dirname "${BASH_SOURCE[0]}")/../lib/sanitizers.sh"
san_setup "$WORK"

cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  # Bounded: whatever has not exited 10 s after SIGTERM gets SIGKILL.
  local i
  for ((i = 0; i < 100; i++)); do
    local alive=0
    for pid in "${PIDS[@]}"; do
      kill -0 "$pid" 2>/dev/null && alive=1
    done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  chaos_disk_umount "$WORK/disk"
  if ! san_check "$WORK"; then
    echo "FAIL: a process of server.$SCENARIO reported a sanitizer finding (above)"
    rc=1
  fi
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    echo "---- keeld log"; tail -n 40 "$WORK"/keeld*.log 2>/dev/null || true
    echo "---- mosquitto log"; tail -n 20 "$WORK/mosquitto.log" 2>/dev/null || true
    echo "FAIL: server.$SCENARIO (work dir kept: $WORK)"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# Poll CMD every 0.1 s, at most SECONDS seconds.
wait_for() {
  local secs="$1"; shift
  local i
  for ((i = 0; i < secs * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

# bg_out FILE: empty FILE before a background job writes to it. `cmd >FILE &` truncates FILE in
# the job, some time after the `&`: a wait on FILE's content that follows could still read what
# an earlier run left there (and a value read from it be gone a moment later).
bg_out() { : >"$1"; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# ---- certificates and broker configuration (shared with keel up: scripts/stack.sh) --------------
STACK="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../scripts" && pwd)/stack.sh"
# keeld-b: a second keeld instance has a certificate (and so a client id) of its own.
bash "$STACK" certs "$WORK" broker keeld keeld-b dev-1 dev-2 dev-3 observer
# The observer reads the debug topics: what crosses the broker must be sealed (debug_api).
. "$(dirname "${BASH_SOURCE[0]}")/../lib/debug_wire.sh"
wire_acl "$WORK/acl.extra"

# ---- broker --------------------------------------------------------------------------------------
MQTT_PORT="$(free_port)"
bash "$STACK" broker-conf "$WORK" "$MQTT_PORT" "$WORK/acl.extra"
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# run_broker DIR PORT: Mosquitto with DIR/mosquitto.conf, listening on PORT; its pid in BROKER_PID.
run_broker() {
  mosquitto -c "$1/mosquitto.conf" >>"$1/mosquitto.out" 2>&1 &
  BROKER_PID=$!
  PIDS+=("$BROKER_PID")
  wait_for 10 port_open "$2" || fail "mosquitto did not start (see $1/mosquitto.log)"
}
start_broker() { run_broker "$WORK" "$MQTT_PORT"; MOSQ_PID="$BROKER_PID"; }
start_broker

# ---- faults (tests/chaos/chaos.sh) ------------------------------------------------------------------
source "$(dirname "${BASH_SOURCE[0]}")/../chaos/chaos.sh"

# ---- keeld ---------------------------------------------------------------------------------------
DB="$WORK/keeld.db"
if [ "$SCENARIO" = chaos_disk ]; then
  # keeld's database on a small disk of its own, to be filled in the middle of a rollout.
  rc=0; chaos_disk_mount "$WORK/disk" 8192 || rc=$?
  if [ "$rc" = 2 ]; then echo "SKIP: server.chaos_disk: cannot mount a small filesystem here"; exit 77; fi
  [ "$rc" = 0 ] || fail "cannot mount the database disk"
  DB="$WORK/disk/keeld.db"
fi
TOKEN="$("$KEELD" token create --db "$DB" --name test)"
[[ "$TOKEN" =~ ^keel_[0-9a-f]{64}$ ]] || fail "token create printed '$TOKEN'"
# keeld's broker connection as its health endpoint reports it.
# get_has PATH TEXT: an authenticated GET of PATH answers with a body containing TEXT.
get_has() { curl -s -H "Authorization: Bearer $TOKEN" "$URL$1" | grep -qF "$2"; }
mqtt_is() { curl -s "$URL/v1/health" | grep -q "\"mqtt\":\"$1\""; }
KEELD_N=0
KEELD_PID=
KEELD_ID=keeld # its certificate, hence its MQTT client id (the broker binds the two)
start_keeld() {
  KEELD_N=$((KEELD_N + 1))
  rm -f "$WORK/port"
  "$KEELD" --db "$DB" --http-port 0 --port-file "$WORK/port" --mqtt-port "$MQTT_PORT" \
    --mqtt-ca "$WORK/ca.pem" --mqtt-cert "$WORK/$KEELD_ID.pem" --mqtt-key "$WORK/$KEELD_ID.key" \
    "${KEELD_ARGS[@]}" >"$WORK/keeld$KEELD_N.log" 2>&1 &
  KEELD_PID=$!
  PIDS+=("$KEELD_PID")
  wait_for 10 test -s "$WORK/port" || fail "keeld did not start (see $WORK/keeld$KEELD_N.log)"
  URL="http://127.0.0.1:$(cat "$WORK/port")"
  wait_for 10 mqtt_is connected ||
    fail "keeld did not connect to the broker"
}

# api METHOD PATH [JSON]: prints the body, sets CODE; succeeds for 2xx.
api() {
  local method="$1" path="$2" data="${3:-}"
  local args=(-s -o "$WORK/body" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $TOKEN")
  [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data-binary "$data")
  CODE="$(curl "${args[@]}" "$URL$path")"
  cat "$WORK/body"
  [[ "$CODE" == 2* ]]
}

# jq is not a dependency: tiny JSON checks go through python3 (in the base package list).
json() { # EXPR over the last body as `j`
  python3 -c "import json,sys; j=json.load(open('$WORK/body')); r=($1); print(r if not isinstance(r,bool) else str(r).lower())"
}

expect_json() { # EXPR EXPECTED MESSAGE
  local got
  got="$(json "$1")"
  [ "$got" = "$2" ] || fail "$3: $1 is '$got', expected '$2' (body: $(cat "$WORK/body"))"
}

sim() { # ID ACTION...
  local id="$1"; shift
  timeout 60 "$SIMDEV" --port "$MQTT_PORT" --ca "$WORK/ca.pem" --cert "$WORK/$id.pem" \
    --key "$WORK/$id.key" --id "$id" "$@"
}

KEELD_ARGS=(--cmd-timeout 30)
[ "$SCENARIO" = command_timeout ] && KEELD_ARGS=(--cmd-timeout 1)
# ---- OTA helpers -----------------------------------------------------------------------------------
# Fleet keys: keeld trusts fleet and other; the simulated devices trust only fleet.
if [[ "$SCENARIO" == ota_* || "$SCENARIO" == chaos_* || "$SCENARIO" == listings || "$SCENARIO" == rollout_* || "$SCENARIO" == openapi ]]; then
  [ -x "$KEEL" ] || fail "the OTA scenarios need the keel CLI (4th argument)"
  for k in fleet other rogue; do "$KEEL" keys new "$k" --dir "$WORK/keys" >/dev/null; done
  KEELD_ARGS+=(--update-key "$WORK/keys/fleet.pub,$WORK/keys/other.pub")
  export KEEL_TOKEN="$TOKEN" KEEL_CONFIG=/dev/null
fi
FIXTURES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/fixtures"
# ota_app DIR SEED CHANGE: $WORK/DIR/app.elf, the fixture app with 200 KiB of data from SEED and
# CHANGE in its one function (same SEED, other CHANGE: a one-function change).
ota_app() {
  mkdir -p "$WORK/$1"
  python3 -c "import random,sys; open(sys.argv[1],'wb').write(random.Random($2).randbytes(200*1024))" \
    "$WORK/blob$2"
  "${ARM_GCC:-arm-none-eabi-gcc}" -mcpu=cortex-m33 -mthumb -nostdlib -O1 -Wl,-n \
    -Wl,--defsym=CODE_ORIGIN=0x00200000 -DCHANGE="$3" -DBLOB_FILE="\"$WORK/blob$2\"" \
    -T "$FIXTURES/ota_app.ld" -o "$WORK/$1/app.elf" "$FIXTURES/ota_app.c" || fail "cannot build $1"
}
# bundle NAME DIR VERSION [OPTIONS]: $WORK/NAME.kb from $WORK/DIR/app.elf, signed with fleet.key
# (a later --key wins).
bundle() {
  local name="$1" dir="$2" ver="$3"; shift 3
  "$KEEL" bundle build "$WORK/$dir/app.elf" --version "$ver" --key "$WORK/keys/fleet.key" "$@" \
    -o "$WORK/$name.kb" >/dev/null || fail "cannot build bundle $name"
}
# upload NAME: POST the bundle's bytes; prints the body, sets CODE.
upload() {
  CODE="$(curl -s -o "$WORK/body" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
    --data-binary "@$WORK/$1.kb" "$URL/v1/bundles")"
  cat "$WORK/body"
  [[ "$CODE" == 2* ]]
}
sha_of() { sha256sum "$WORK/$1.kb" | cut -d' ' -f1; }
# deploy NAME TARGET_JSON: a deployment of bundle NAME; sets DEP to its id.
deploy() {
  api POST /v1/deployments "{\"bundle\":\"$(sha_of "$1")\",$2}" >/dev/null ||
    fail "deploy $1 ($2): $CODE $(cat "$WORK/body")"
  DEP="$(json 'j["id"]')"
}
# simu ID ACTION...: a simulated device with an app slot and the update engine.
simu() {
  local id="$1"; shift
  sim "$id" --flash "$WORK/flash-$id" --update-key "$WORK/keys/fleet.pub" "$@"
}
# simu_bg ID ACTION...: simu in the background (up to 300 s), output in $WORK/sim-ID.out; its pid
# is appended to SIMS.
simu_bg() {
  local id="$1"; shift
  bg_out "$WORK/sim-$id.out"
  timeout 300 "$SIMDEV" --port "$MQTT_PORT" --ca "$WORK/ca.pem" --cert "$WORK/$id.pem" --key "$WORK/$id.key" \
    --id "$id" --flash "$WORK/flash-$id" --update-key "$WORK/keys/fleet.pub" "$@" >>"$WORK/sim-$id.out" 2>&1 &
  SIMS+=($!); PIDS+=($!)
}
# keelc ARGS...: the keel CLI against this keeld (its output in $WORK/keel.out/.err).
keelc() {
  local rc=0
  KEEL_URL="$URL" timeout 120 "$KEEL" "$@" >"$WORK/keel.out" 2>"$WORK/keel.err" || rc=$?
  return "$rc"
}
keel_has() { # FILE TEXT: the CLI said TEXT
  grep -qF -- "$2" "$WORK/$1" || fail "'$2' not in keel's output: $(cat "$WORK/keel.out" "$WORK/keel.err")"
}
# figure NAME VALUE: appended to $OTA_FIGURES when set (scripts/bench-ota-net.sh reads them).
figure() { [ -z "${OTA_FIGURES:-}" ] || echo "$1=$2" >>"$OTA_FIGURES"; }
# dev_field DEP DEVICE FIELD: prints the field of the device's row.
dev_field() {
  api GET "/v1/deployments/$1" >/dev/null && json "[d for d in j['devices'] if d['device'] == '$2'][0]['$3']"
}
# dev_ge DEP DEVICE FIELD N: the numeric FIELD of the device's row is >= N.
dev_ge() {
  api GET "/v1/deployments/$1" >/dev/null &&
    [ "$(json "[d for d in j['devices'] if d['device'] == '$2'][0]['$3']")" -ge "$4" ]
}
# dev_is DEP DEVICE FIELD VALUE: the device's row of deployment DEP has FIELD == VALUE.
dev_is() {
  api GET "/v1/deployments/$1" >/dev/null &&
    [ "$(json "[d for d in j['devices'] if d['device'] == '$2'][0]['$3']")" = "$4" ]
}
# expect_dev DEP DEVICE FIELD VALUE: as dev_is, or fail with the row.
expect_dev() {
  dev_is "$@" || fail "deployment $1, $2: $3 is not '$4': $(json "[d for d in j['devices'] if d['device'] == '$2']")"
}

[ "$SCENARIO" = shared ] && KEELD_ARGS=(--cmd-timeout 30 --log-level 3)
# A tiny ingest queue and batch: the flood must push back on the broker, never lose a message.
[ "$SCENARIO" = ingest_pressure ] && KEELD_ARGS=(--cmd-timeout 30 --ingest-queue 16 --ingest-batch 4)
# Two brokers: a second one next to the first (same CA and certificates), keeld on both.
if [ "$SCENARIO" = brokers ]; then
  mkdir -p "$WORK/b2"
  cp "$WORK/ca.pem" "$WORK/broker.pem" "$WORK/broker.key" "$WORK/b2/"
  MQTT_PORT2="$(free_port)"
  bash "$STACK" broker-conf "$WORK/b2" "$MQTT_PORT2"
  start_broker2() { run_broker "$WORK/b2" "$MQTT_PORT2"; MOSQ2_PID="$BROKER_PID"; }
  start_broker2
  KEELD_ARGS+=(--mqtt-brokers "127.0.0.1:$MQTT_PORT,127.0.0.1:$MQTT_PORT2")
fi
# Download admission: one device downloading at a time.
[ "$SCENARIO" = ota_admission ] && KEELD_ARGS+=(--offer-rate 5 --max-downloads 1)
start_keeld

# ---- scenarios -----------------------------------------------------------------------------------
# Rollouts (issue 16) live in their own file: rollout_* scenarios.
. "$(dirname "${BASH_SOURCE[0]}")/rollout_scenarios.sh"
case "$SCENARIO" in
rollout_* | openapi)
  rollout_scenario "$SCENARIO"
  ;;
registry)
  api GET /v1/devices >/dev/null
  expect_json 'len(j["devices"])' 0 "empty registry"
  sim dev-1 >"$WORK/sim.out"
  wait_for 10 api GET /v1/devices/dev-1 || fail "dev-1 never registered ($CODE)"
  api GET /v1/devices/dev-1 >/dev/null
  expect_json 'j["microvisor_version"]' 1.2.3 "hello microvisor version"
  expect_json 'j["app_version"]' 0.4.0 "hello app version"
  expect_json 'j["app_state"]' running "hello app state"
  expect_json 'j["restart_count"]' 2 "hello restart count"
  expect_json 'j["board"]' sim "hello board"
  expect_json 'j["commands"]' "['ping', 'restart', 'reboot']" "hello commands"
  expect_json '[r["name"] for r in j["regions"]]' "['app', 'microvisor']" "manifest regions"
  expect_json 'j["regions"][0]["sha256"]' "$(printf '5a%.0s' {1..32})" "app region hash"
  expect_json 'j["online"]' true "presence online"
  sim dev-1 heartbeat logs:1:after-heartbeat >/dev/null
  api GET /v1/devices/dev-1 >/dev/null
  expect_json 'j["app_state"]' backoff "heartbeat app state"
  expect_json 'j["restart_count"]' 3 "heartbeat restart count"
  expect_json 'j["log_dropped"]' 7 "heartbeat log drop counter"
  # Tags: set, change, remove, all or nothing.
  api PATCH /v1/devices/dev-1 '{"tags":{"site":"lab","rack":"3"}}' >/dev/null || fail "set tags: $CODE"
  expect_json 'j["tags"]' "{'rack': '3', 'site': 'lab'}" "tags set"
  api PATCH /v1/devices/dev-1 '{"tags":{"site":"field","rack":null}}' >/dev/null || fail "change tags: $CODE"
  expect_json 'j["tags"]' "{'site': 'field'}" "tags changed"
  api PATCH /v1/devices/dev-1 '{"tags":{"ok":"1","bad name":"x"}}' >/dev/null && fail "bad tag name accepted"
  [ "$CODE" = 400 ] || fail "bad tag name: expected 400, got $CODE"
  api GET /v1/devices/dev-1 >/dev/null
  expect_json 'j["tags"]' "{'site': 'field'}" "a rejected tag request changed nothing"
  api PATCH /v1/devices/ghost '{"tags":{"a":"b"}}' >/dev/null && fail "tags on an unknown device"
  [ "$CODE" = 404 ] || fail "tags on unknown device: expected 404, got $CODE"
  # A device cannot speak for another one: the ACL drops dev-1's hello on dev-2's topic.
  # The acked log batch published after it proves keeld has processed everything before it.
  sim dev-1 hello-as:dev-2 logs:1:after-acl-test >/dev/null
  api GET /v1/devices/dev-2 >/dev/null && fail "dev-1 registered dev-2 through dev-2's topic"
  [ "$CODE" = 404 ] || fail "expected 404 for dev-2, got $CODE"
  sim dev-2 >/dev/null
  api GET /v1/devices >/dev/null
  expect_json '[d["id"] for d in j["devices"]]' "['dev-1', 'dev-2']" "both devices"
  # Killing a device fires its last will: presence goes offline.
  "$SIMDEV" --port "$MQTT_PORT" --ca "$WORK/ca.pem" --cert "$WORK/dev-1.pem" --key "$WORK/dev-1.key" \
    --id dev-1 serve:30 >"$WORK/sim-will.out" &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  wait_for 10 grep -q connected "$WORK/sim-will.out" || fail "dev-1 did not connect"
  kill -9 "$SIM_PID"
  # The broker notices the dead connection when its socket closes (at once on loopback).
  wait_for 15 get_has /v1/devices/dev-1 '"online":false' ||
    fail "dev-1 not offline after its connection died"
  ;;
logs)
  sim dev-1 >/dev/null
  # Follow first, then log: the stream must deliver what arrives after it started.
  curl -sN --max-time 30 -H "Authorization: Bearer $TOKEN" "$URL/v1/logs/stream?device=dev-1" \
    >"$WORK/stream" 2>/dev/null &
  CURL_PID=$!
  PIDS+=("$CURL_PID")
  wait_for 10 grep -q "keel log stream" "$WORK/stream" || fail "log stream did not open"
  sim dev-1 logs:3:hello-from-dev logs:2:second-batch >"$WORK/sim.out"
  grep -c '^ack ' "$WORK/sim.out" | grep -qx 2 || fail "expected 2 acks: $(cat "$WORK/sim.out")"
  wait_for 10 grep -q "second-batch 1" "$WORK/stream" || fail "stream missed entries: $(cat "$WORK/stream")"
  grep -q '^event: log$' "$WORK/stream" || fail "stream has no log events"
  grep -q '"text":"hello-from-dev 0"' "$WORK/stream" || fail "stream missed the first batch"
  kill "$CURL_PID"
  api GET "/v1/logs?device=dev-1" >/dev/null
  expect_json 'len(j["logs"])' 5 "stored entries"
  expect_json 'j["logs"][0]["source"]' microvisor "entry source"
  expect_json 'j["logs"][1]["text"]' "hello-from-dev 1" "entry text"
  expect_json 'j["logs"][0]["level"]' info "entry level"
  # Time window and cursor queries.
  FIRST="$(json 'j["logs"][0]["id"]')"
  api GET "/v1/logs?device=dev-1&after=$FIRST&limit=2" >/dev/null
  expect_json 'len(j["logs"])' 2 "limit"
  expect_json 'j["logs"][0]["text"]' "hello-from-dev 1" "after cursor"
  api GET "/v1/logs?device=dev-1&until=1" >/dev/null
  expect_json 'len(j["logs"])' 0 "until bound"
  api GET "/v1/logs?since=$(( $(date +%s) * 1000 - 600000 ))" >/dev/null
  expect_json 'len(j["logs"])' 5 "since bound"
  # A reconnecting follower resumes after the last id it saw.
  # Waited for, not given a fixed 3 s: on a loaded machine the replay can come later than that.
  # Entries arrive in id order, so a repeated old one would be in the file before the awaited one.
  curl -sN --max-time 30 -H "Authorization: Bearer $TOKEN" -H "Last-Event-ID: $FIRST" \
    "$URL/v1/logs/stream?device=dev-1" >"$WORK/stream2" 2>/dev/null &
  CURL_PID=$!
  PIDS+=("$CURL_PID")
  wait_for 10 grep -q '"text":"hello-from-dev 1"' "$WORK/stream2" ||
    fail "resume missed the entry after Last-Event-ID: $(cat "$WORK/stream2")"
  kill "$CURL_PID"
  if grep -q '"text":"hello-from-dev 0"' "$WORK/stream2"; then fail "resume repeated an old entry"; fi
  # A redelivered batch (same boot and msg_id) is stored once: run the same boot again.
  sim dev-1 logs:3:hello-from-dev >/dev/null
  api GET "/v1/logs?device=dev-1" >/dev/null
  expect_json 'len(j["logs"])' 5 "duplicate batch stored once"
  # Entries the device had to drop show up as a line where they were lost.
  sim dev-1 --boot 2 dropped:5 logs:1:after-drop >/dev/null
  api GET "/v1/logs?device=dev-1&after=$FIRST&limit=1000" >/dev/null
  expect_json '[e["text"] for e in j["logs"]][-2:]' "['after-drop 0', '5 log entries dropped on the device here (its buffer was full)']" "drop marker"
  ;;
crash)
  sim dev-1 crash >"$WORK/sim.out"
  grep -q '^ack ' "$WORK/sim.out" || fail "crash report not acked"
  api GET "/v1/crashes?device=dev-1" >/dev/null
  expect_json 'len(j["crashes"])' 1 "one crash"
  expect_json 'j["crashes"][0]["reason"]' UsageFault "crash reason"
  expect_json 'j["crashes"][0]["pc"]' $((0x10000abc)) "crash pc"
  ID="$(json 'j["crashes"][0]["id"]')"
  api GET "/v1/crashes/$ID" >/dev/null
  expect_json 'j["registers"]["pc"]' $((0x10000abc)) "crash detail pc"
  expect_json 'j["registers"]["lr"]' $((0x10000a01)) "crash detail lr"
  expect_json 'j["run_ms"]' 1234 "crash run time"
  expect_json '"10000abc" in j["text"].lower()' true "formatted report mentions the pc"
  expect_json 'j["report_hex"][:8]' 4b435231 "raw KCR1 bytes kept"
  # A crash report that does not decode is still kept (as evidence), marked invalid.
  # Envelope{crash (field 14): Crash{report (field 1): de ad be ef}} = 72 06 0a 04 de ad be ef
  sim dev-1 raw:crash:72060a04deadbeef >/dev/null
  wait_for 10 get_has "/v1/crashes?device=dev-1" invalid ||
    fail "undecodable crash report not kept"
  api GET "/v1/crashes?device=dev-1" >/dev/null
  expect_json 'len(j["crashes"])' 2 "both crash reports kept"
  api GET "/v1/crashes/$(json 'j["crashes"][0]["id"]')" >/dev/null
  expect_json 'j["report_hex"]' deadbeef "invalid report bytes kept"
  expect_json '"decode_error" in j' true "decode error reported"
  ;;
command)
  "$SIMDEV" --port "$MQTT_PORT" --ca "$WORK/ca.pem" --cert "$WORK/dev-1.pem" --key "$WORK/dev-1.key" \
    --id dev-1 serve-one:20 serve-one:20 >"$WORK/sim.out" 2>&1 &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  wait_for 10 grep -q connected "$WORK/sim.out" || fail "device did not connect"
  wait_for 10 api GET /v1/devices/dev-1 || fail "device not registered"
  api POST /v1/commands '{"device":"dev-1","kind":"ping"}' >/dev/null || fail "create ping: $CODE $(cat "$WORK/body")"
  [ "$CODE" = 201 ] || fail "create returned $CODE"
  ID="$(json 'j["id"]')"
  wait_for 15 get_has "/v1/commands/$ID" '"status":"ok"' ||
    fail "ping not answered: $(api GET /v1/commands/$ID)"
  api GET "/v1/commands/$ID" >/dev/null
  expect_json 'j["kind"]' ping "command kind"
  expect_json 'j["device_uptime_ms"] is not None' true "device uptime in the result"
  grep -q "^command $ID ping" "$WORK/sim.out" || fail "device did not see the ping"
  api POST /v1/commands '{"device":"dev-1","kind":"restart"}' >/dev/null
  ID2="$(json 'j["id"]')"
  wait_for 15 get_has "/v1/commands/$ID2" '"status":"ok"' ||
    fail "restart not answered"
  wait "$SIM_PID" || fail "simulated device failed: $(cat "$WORK/sim.out")"
  # A device that does not list a kind never gets it: 409, and nothing is stored.
  sim dev-2 --commands ping >/dev/null
  api POST /v1/commands '{"device":"dev-2","kind":"reboot"}' >/dev/null && fail "reboot accepted for dev-2"
  [ "$CODE" = 409 ] || fail "expected 409, got $CODE"
  expect_json '"does not implement" in j["error"]' true "409 message"
  [ "$(sqlite3 "$DB" "SELECT COUNT(*) FROM commands WHERE device_id = 'dev-2'")" = 0 ] ||
    fail "a refused command was stored"
  ;;
command_timeout)
  # A command nobody answers ends as "timeout"; a device that comes back later still gets it
  # only while it is open (pending/sent), never after.
  sim dev-1 >/dev/null
  api POST /v1/commands '{"device":"dev-1","kind":"ping"}' >/dev/null || fail "create: $CODE"
  ID="$(json 'j["id"]')"
  wait_for 15 get_has "/v1/commands/$ID" '"status":"timeout"' ||
    fail "command never timed out: $(api GET /v1/commands/$ID)"
  api GET "/v1/commands/$ID" >/dev/null
  expect_json '"offline" in j["detail"]' true "timeout detail"
  sim dev-1 serve:1 >"$WORK/sim.out"
  if grep -q "^command $ID" "$WORK/sim.out"; then fail "a timed-out command was sent again"; fi
  ;;
old_device)
  # A device of the first protocol-v1 revision (51dbc5d: no update or debug topics, no Region
  # version, commands ping/restart/reboot only) against this keeld: it registers, shows online, its
  # logs are stored and acknowledged, a ping reaches it, and an update command it never announced
  # is refused with a reason. Its messages are encoded with protoc's Python code from keel.proto,
  # setting only the fields that revision had.
  protoc --python_out="$WORK" -I "$(dirname "${BASH_SOURCE[0]}")/../../proto" keel.proto || fail "protoc"
  # Debian's python3 (python3-protobuf, scripts/packages/server.txt), whatever python3 PATH finds.
  PYTHONPATH="$WORK" /usr/bin/python3 - "$WORK" <<'PY' || fail "cannot encode the old device's messages"
import sys
import keel_pb2 as k
w = sys.argv[1]
def env(n, **body):
    e = k.Envelope(version=1, msg_id=n, boot=1, time_ms=1000 * n, **body)
    open("%s/old%d.bin" % (w, n), "wb").write(e.SerializeToString())
env(1, hello=k.Hello(microvisor_version=0x00010000, api_version=1, app_version=0x00010000, board="an505",
                     regions=[k.Region(name="app", size=8192, sha256=bytes(32))], uptime_ms=300,
                     app_state=k.APP_STATE_RUNNING, restart_count=0,
                     commands=[k.COMMAND_KIND_PING, k.COMMAND_KIND_RESTART_APP, k.COMMAND_KIND_REBOOT]))
env(2, presence=k.Presence(online=True))
env(3, logs=k.LogBatch(entries=[k.LogEntry(uptime_ms=5, level=k.LOG_LEVEL_INFO,
                                           source=k.LOG_SOURCE_APP, text="old device says hi")]))
PY
  ODEV=(--cafile "$WORK/ca.pem" --cert "$WORK/dev-2.pem" --key "$WORK/dev-2.key" -h localhost -p "$MQTT_PORT" -i dev-2)
  bg_out "$WORK/old_in.txt"
  # What reaches the device is watched by a service identity of its own (keeld-b): the broker
  # makes a certificate's name the client id, so a second client with dev-2's certificate would cut
  # the publishing one off.
  OWATCH=(--cafile "$WORK/ca.pem" --cert "$WORK/keeld-b.pem" --key "$WORK/keeld-b.key" -h localhost -p "$MQTT_PORT")
  timeout 60 mosquitto_sub "${OWATCH[@]}" -q 1 -t 'keel/v1/dev-2/ack' -t 'keel/v1/dev-2/cmd' \
    -F '%t %x' >>"$WORK/old_in.txt" 2>&1 &
  PIDS+=($!)
  pub_old() { timeout 10 mosquitto_pub "${ODEV[@]}" -q 1 -t "keel/v1/dev-2/$1" -f "$WORK/old$2.bin" ${3:+"$3"} || fail "publish $1"; }
  pub_old hello 1
  pub_old presence 2 -r
  wait_for 10 get_has /v1/devices/dev-2 '"online":true' || fail "the old device is not registered online"
  api GET /v1/devices/dev-2 >/dev/null
  expect_json 'j["board"]' an505 "old device board"
  expect_json 'j["app_state"]' running "old device app state"
  # Its logs: stored, and acknowledged (the device frees them only then). The ack subscriber is
  # connected by now (it started before the hello was even sent and the device is online).
  pub_old logs 3
  wait_for 10 get_has "/v1/logs?device=dev-2" 'old device says hi' || fail "the old device's log was not stored"
  wait_for 10 grep -q '^keel/v1/dev-2/ack ' "$WORK/old_in.txt" || fail "the old device's logs were not acknowledged"
  expect_json 'j["commands"]' "['ping', 'restart', 'reboot']" "old device commands"
  api POST /v1/commands '{"device":"dev-2","kind":"ping"}' >/dev/null || fail "ping to the old device refused: $CODE $(cat "$WORK/body")"
  wait_for 10 grep -q '^keel/v1/dev-2/cmd ' "$WORK/old_in.txt" || fail "the ping did not reach the old device"
  api POST /v1/commands '{"device":"dev-2","kind":"update_apply"}' >/dev/null && fail "an update command sent to a device that never announced it"
  [ "$CODE" = 409 ] && grep -q "does not implement" "$WORK/body" || fail "update_apply to the old device: $CODE $(cat "$WORK/body")"
  kill -0 "$KEELD_PID" || fail "keeld died"
  ;;
hostile_clients)
  # keeld keeps serving while one address holds more idle sockets, slow-loris header drips and
  # never-read event streams than keeld has connection threads (API_CONN_MAX 512 in api.c): each
  # address gets at most 64 (the figures: scripts/bench-http-hostile.sh). The probes come from
  # 127.0.0.1 while the hostile side, from 127.0.0.2-4, still holds its connections.
  HTTP_PORT="${URL##*:}"
  hostile() { # KIND COUNT FROM
    local out
    out="$(timeout 120 python3 "$(dirname "${BASH_SOURCE[0]}")/hostile_http.py" "$HTTP_PORT" "$TOKEN" "$1" "$2" \
      --from "$3" --probes 10 --keeld-pid "$KEELD_PID")" || fail "hostile_http.py $1 failed: $out"
    echo "$out"
    python3 -c 'import json,sys; j=json.loads(sys.argv[1]); sys.exit(0 if j["opened"] > 64 and 0 < j["held"] <= 64 and j["answered"] == j["probes"] else 1)' "$out" ||
      fail "$1 x $2 from $3: $out (want > 64 opened, 1..64 held, every probe answered)"
  }
  hostile idle 600 127.0.0.2
  hostile slowloris 200 127.0.0.3
  hostile sse 200 127.0.0.4
  kill -0 "$KEELD_PID" || fail "keeld died"
  ;;
bad_requests)
  sim dev-1 >/dev/null
  check() { # EXPECTED_CODE MESSAGE_PART CURL_ARGS...
    local want="$1" part="$2"; shift 2
    local code
    code="$(curl -s -o "$WORK/body" -w '%{http_code}' "$@")"
    [ "$code" = "$want" ] || fail "expected $want, got $code for $*: $(cat "$WORK/body")"
    grep -q "\"error\":\"[^\"]*$part" "$WORK/body" || fail "error for $* lacks '$part': $(cat "$WORK/body")"
  }
  AUTH=(-H "Authorization: Bearer $TOKEN")
  check 401 "missing 'Authorization" "$URL/v1/devices"
  check 401 "not valid" -H "Authorization: Bearer keel_0000" "$URL/v1/devices"
  check 404 "unknown device 'nope'" "${AUTH[@]}" "$URL/v1/devices/nope"
  check 404 "unknown device 'nope'" "${AUTH[@]}" "$URL/v1/logs?device=nope"
  check 400 "not a device id" "${AUTH[@]}" "$URL/v1/devices/bad%20id"
  check 400 "malformed JSON" "${AUTH[@]}" -X POST --data-binary '{"device": "dev-1",' "$URL/v1/commands"
  check 400 "must be a JSON object" "${AUTH[@]}" -X POST --data-binary '[1]' "$URL/v1/commands"
  check 400 "unknown field 'colour'" "${AUTH[@]}" -X POST --data-binary '{"device":"dev-1","kind":"ping","colour":1}' "$URL/v1/commands"
  check 400 "unknown command kind 'dance'" "${AUTH[@]}" -X POST --data-binary '{"device":"dev-1","kind":"dance"}' "$URL/v1/commands"
  check 404 "unknown device 'ghost'" "${AUTH[@]}" -X POST --data-binary '{"device":"ghost","kind":"ping"}' "$URL/v1/commands"
  check 400 "whole number" "${AUTH[@]}" "$URL/v1/logs?limit=0"
  check 400 "whole number" "${AUTH[@]}" "$URL/v1/logs?since=yesterday"
  check 400 "is '?'; it must be a whole number" "${AUTH[@]}" "$URL/v1/logs?limit=%FF"  # not UTF-8: still answered
  check 404 "no endpoint" "${AUTH[@]}" "$URL/v1/nothing"
  check 405 "use POST" "${AUTH[@]}" "$URL/v1/commands"
  check 405 "use GET, PATCH" "${AUTH[@]}" -X DELETE "$URL/v1/devices/dev-1"
  check 404 "no crash report" "${AUTH[@]}" "$URL/v1/crashes/999"
  head -c 70000 /dev/zero | tr '\0' 'x' >"$WORK/big"
  check 413 "larger than the limit" "${AUTH[@]}" -X POST --data-binary @"$WORK/big" "$URL/v1/commands"
  check 413 "larger than the limit" "${AUTH[@]}" -X POST -H "Transfer-Encoding: chunked" --data-binary @"$WORK/big" "$URL/v1/commands"
  # Nothing was half-written by any of that: no command exists, health needs no token.
  [ "$(sqlite3 "$DB" 'SELECT COUNT(*) FROM commands')" = 0 ] || fail "a rejected request wrote a command"
  curl -sf "$URL/v1/health" >/dev/null || fail "health needs no token"
  # A token made through the API works; the list never shows token values or hashes.
  api POST /v1/tokens '{"name":"ci"}' >/dev/null || fail "token create via API: $CODE"
  NEW="$(json 'j["token"]')"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $NEW" "$URL/v1/devices")" = 200 ] ||
    fail "the new token is refused"
  api GET /v1/tokens >/dev/null
  expect_json '[t["name"] for t in j["tokens"]]' "['test', 'ci']" "token names"
  if grep -q "${NEW#keel_}" "$WORK/body"; then fail "token list shows the token"; fi
  [ "$(sqlite3 "$DB" "SELECT COUNT(*) FROM tokens WHERE sha256 LIKE '%${NEW#keel_}%'")" = 0 ] ||
    fail "the token is stored in clear"
  # Bad configuration and foreign databases stop keeld with a message naming the problem.
  out="$("$KEELD" --db "$WORK/x.db" --http-port abc 2>&1)" && fail "bad port accepted"
  grep -q "http-port 'abc' is not a whole number in \[0, 65535\]" <<<"$out" || fail "bad port message: $out"
  out="$("$KEELD" --db "$WORK/x.db" --no-such-option 1 2>&1)" && fail "unknown option accepted"
  grep -q "unknown option '--no-such-option'" <<<"$out" || fail "unknown option message: $out"
  out="$("$KEELD" --db "$WORK/x.db" 2>&1)" && fail "keeld started without TLS credentials"
  grep -q -- "--mqtt-ca is required" <<<"$out" || fail "missing TLS message: $out"
  out="$("$KEELD" migrate --db "$WORK/new.db" 2>&1)" || fail "migrate failed: $out"
  # The newest version is the last one keeld said it migrated to (every migration, in order).
  version="$(sed -n 's/.*database migrated to schema version \([0-9]*\)$/\1/p' <<<"$out" | tail -n 1)"
  [ "$(sed -n 's/.*database migrated to schema version \([0-9]*\)$/\1/p' <<<"$out" | tr '\n' ' ')" = \
    "$(seq -s ' ' 1 "$version") " ] || fail "migrate did not apply every migration in order: $out"
  [ "$(sqlite3 "$WORK/new.db" 'SELECT MAX(version) FROM schema_version')" = "$version" ] || fail "migrate did not record the version"
  sqlite3 "$WORK/new.db" 'INSERT INTO schema_version VALUES (99)'
  out="$("$KEELD" migrate --db "$WORK/new.db" 2>&1)" && fail "a newer schema was accepted"
  grep -q "schema version 99 but this keeld knows only up to $version" <<<"$out" || fail "newer schema message: $out"
  printf 'not a database at all, just text\n%.0s' {1..200} >"$WORK/junk.db"
  out="$("$KEELD" token create --db "$WORK/junk.db" 2>&1)" && fail "a junk file was used as a database"
  grep -q "junk.db" <<<"$out" || fail "junk database message: $out"
  # Garbage from a device is dropped with a log line; keeld keeps serving.
  sim dev-1 raw:logs:ffffffff raw:hello:0a >/dev/null
  wait_for 10 grep -q "not a valid protocol v1 envelope" "$WORK/keeld1.log" || fail "garbage not reported"
  api GET /v1/devices/dev-1 >/dev/null || fail "keeld stopped serving after garbage"
  ;;
restart)
  # Everything keeld acknowledged survives kill -9: tokens, device registry, logs, crashes, commands.
  sim dev-1 logs:4:before-kill crash >"$WORK/sim.out"
  [ "$(grep -c '^ack ' "$WORK/sim.out")" = 2 ] || fail "expected 2 acks: $(cat "$WORK/sim.out")"
  api POST /v1/commands '{"device":"dev-1","kind":"ping"}' >/dev/null || fail "create command: $CODE"
  CMD_ID="$(json 'j["id"]')"
  kill -9 "$KEELD_PID"
  wait "$KEELD_PID" 2>/dev/null || true
  # While keeld is down the device logs more; the broker keeps keeld's persistent session's queue.
  "$SIMDEV" --port "$MQTT_PORT" --ca "$WORK/ca.pem" --cert "$WORK/dev-1.pem" --key "$WORK/dev-1.key" \
    --id dev-1 --boot 2 serve-one:30 >"$WORK/sim2.out" 2>&1 &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  wait_for 10 grep -q connected "$WORK/sim2.out" || fail "device did not connect"
  start_keeld
  api GET "/v1/logs?device=dev-1" >/dev/null
  expect_json 'len(j["logs"])' 4 "acknowledged logs after kill -9"
  api GET "/v1/crashes?device=dev-1" >/dev/null
  expect_json 'len(j["crashes"])' 1 "acknowledged crash after kill -9"
  wait_for 10 get_has /v1/devices/dev-1 '"boot":2' ||
    fail "the hello sent while keeld was down did not arrive after the restart"
  # The command created before the kill is sent (or re-sent) and answered now.
  wait_for 20 get_has "/v1/commands/$CMD_ID" '"status":"ok"' ||
    fail "command $CMD_ID not completed after restart: $(api GET /v1/commands/$CMD_ID)"
  wait "$SIM_PID" || fail "device failed: $(cat "$WORK/sim2.out")"
  ;;
shared)
  # Two keeld instances, one database, one shared-subscription group: device traffic is split
  # between them, each message stored once, and either API sees everything.
  URL_A="$URL"
  KEELD_ARGS=(--cmd-timeout 30 --log-level 3 --mqtt-client-id keeld-b)
  KEELD_ID=keeld-b
  start_keeld
  URL_B="$URL"
  sim dev-1 logs:8:a logs:8:b logs:8:c logs:8:d logs:8:e logs:8:f logs:8:g logs:8:h >"$WORK/sim.out"
  for u in "$URL_A" "$URL_B"; do
    URL="$u"
    api GET "/v1/logs?device=dev-1&limit=1000" >/dev/null
    expect_json 'len(j["logs"])' 64 "entries seen through $u"
  done
  grep -q "dev-1.*logs" "$WORK/keeld1.log" || fail "instance A took no log batch"
  grep -q "dev-1.*logs" "$WORK/keeld2.log" || fail "instance B took no log batch"
  "$SIMDEV" --port "$MQTT_PORT" --ca "$WORK/ca.pem" --cert "$WORK/dev-1.pem" --key "$WORK/dev-1.key" \
    --id dev-1 serve-one:20 >"$WORK/sim2.out" 2>&1 &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  wait_for 10 grep -q connected "$WORK/sim2.out" || fail "device did not connect"
  URL="$URL_A"
  api POST /v1/commands '{"device":"dev-1","kind":"ping"}' >/dev/null || fail "create on A: $CODE"
  ID="$(json 'j["id"]')"
  URL="$URL_B"
  wait_for 15 get_has "/v1/commands/$ID" '"status":"ok"' ||
    fail "command made on A not seen answered on B"
  wait "$SIM_PID" || fail "device failed: $(cat "$WORK/sim2.out")"
  ;;
identity_takeover)
  # A device's certificate connecting under another client's id (a device's, then keeld's) is
  # connected under its own name: the broker binds the client id to the certificate, so the
  # owner of the id is never disconnected. dev-1 stays connected throughout and then answers a
  # command; keeld stays connected.
  "$SIMDEV" --port "$MQTT_PORT" --ca "$WORK/ca.pem" --cert "$WORK/dev-1.pem" --key "$WORK/dev-1.key" \
    --id dev-1 serve-one:40 >"$WORK/sim.out" 2>&1 &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  wait_for 10 grep -q connected "$WORK/sim.out" || fail "device did not connect"
  for victim in dev-1 keeld; do
    for _ in 1 2 3; do
      # dev-2 may not write dev-1's topics either (ACL): the message is dropped, the connection made.
      timeout 10 mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" --cafile "$WORK/ca.pem" \
        --cert "$WORK/dev-2.pem" --key "$WORK/dev-2.key" -i "$victim" -q 1 \
        -t keel/v1/dev-1/hello -m takeover || fail "dev-2 could not connect with client id $victim"
    done
  done
  takeovers() { [ "$(grep -c "New client connected from .* as dev-2 .*u'dev-2'" "$WORK/mosquitto.log")" -ge 6 ]; }
  wait_for 10 takeovers || fail "the broker did not log dev-2's 6 connections as dev-2: $(cat "$WORK/mosquitto.log")"
  ! grep -E "already connected|Client (dev-1|keeld) (disconnected|closed)|as (dev-1|keeld) .*u'dev-2'" \
    "$WORK/mosquitto.log" || fail "a client id was taken over (broker log above)"
  mqtt_is connected || fail "keeld is not connected after the attempts"
  api POST /v1/commands '{"device":"dev-1","kind":"ping"}' >/dev/null || fail "create: $CODE"
  ID="$(json 'j["id"]')"
  wait_for 15 get_has "/v1/commands/$ID" '"status":"ok"' || fail "dev-1 did not answer after the attempts"
  wait "$SIM_PID" || fail "device failed: $(cat "$WORK/sim.out")"
  [ "$(grep -c "as dev-1 " "$WORK/mosquitto.log")" -eq 1 ] || fail "dev-1 connected more than once"
  ;;
broker_outage)
  # keeld outlives its broker: the API keeps working, commands wait as "pending", and everything
  # resumes when the broker is back (keeld reconnects and subscribes again by itself).
  sim dev-1 >/dev/null
  kill "$MOSQ_PID"
  wait "$MOSQ_PID" 2>/dev/null || true
  wait_for 15 mqtt_is disconnected ||
    fail "keeld did not notice the broker going away"
  # Health says so: 503 "degraded", how long and why.
  [ "$(chaos_health_code)" = 503 ] || fail "health while the broker is down: $(chaos_health_code), expected 503"
  curl -s -o "$WORK/body" "$URL/v1/health"
  expect_json 'j["status"]' degraded "health status while the broker is down"
  expect_json '"mqtt_error" in j and j["mqtt_down_ms"] >= 0' true "health details while the broker is down"
  api POST /v1/commands '{"device":"dev-1","kind":"ping"}' >/dev/null || fail "create while broker down: $CODE"
  ID="$(json 'j["id"]')"
  expect_json 'j["status"]' pending "command while the broker is down"
  start_broker
  wait_for 30 mqtt_is connected ||
    fail "keeld did not reconnect to the broker"
  [ "$(chaos_health_code)" = 200 ] || fail "health after the broker came back: $(chaos_health_code)"
  sim dev-1 serve-one:20 >"$WORK/sim.out" || fail "device did not get the pending command: $(cat "$WORK/sim.out")"
  wait_for 15 get_has "/v1/commands/$ID" '"status":"ok"' ||
    fail "pending command not answered after the broker came back"
  ;;
debug_api)
  # The relay's REST surface: refusals first, then a stream's life cycle as the device sees it.
  api POST /v1/devices/dev-1/debug '{"debug":"00"}' >/dev/null && fail "debug to an unknown device accepted"
  [ "$CODE" = 404 ] || fail "debug to an unknown device: $CODE"
  sim dev-1 >"$WORK/sim.out" || fail "simdev: $(cat "$WORK/sim.out")"
  wait_for 10 get_has /v1/devices/dev-1 '"online":true' || fail "dev-1 not online"
  # Debug{close{session 258, "x"}} in hex: 2206088202120178.
  api POST /v1/devices/dev-1/debug '{"debug":"zz"}' >/dev/null || true; [ "$CODE" = 400 ] || fail "bad hex: $CODE"
  grep -q "not the hex of a Debug message" "$WORK/body" || fail "bad hex message: $(cat "$WORK/body")"
  api POST /v1/devices/dev-1/debug '{"debug":"220208"}' >/dev/null || true; [ "$CODE" = 400 ] || fail "truncated: $CODE"
  api POST /v1/devices/dev-1/debug '{"frame":"00"}' >/dev/null || true; [ "$CODE" = 400 ] || fail "unknown field: $CODE"
  # Debug{accept{session 1}} = 12 02 08 01: the device's message, refused from a client.
  api POST /v1/devices/dev-1/debug '{"debug":"12020801"}' >/dev/null || true; [ "$CODE" = 400 ] || fail "accept: $CODE"
  api GET /v1/devices/dev-1/debug >/dev/null || true; [ "$CODE" = 400 ] || fail "stream without session: $CODE"
  api GET '/v1/devices/dev-1/debug?session=0' >/dev/null || true; [ "$CODE" = 400 ] || fail "session 0: $CODE"
  api PUT /v1/devices/dev-1/debug >/dev/null || true; [ "$CODE" = 405 ] || fail "PUT: $CODE"
  CODE="$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{"debug":"2206088202120178"}' "$URL/v1/devices/dev-1/debug")"
  [ "$CODE" = 401 ] || fail "debug without a token: $CODE"
  # dev-1 exited cleanly (presence stays online): a close is published and answered 202.
  api POST /v1/devices/dev-1/debug '{"debug":"2206088202120178"}' >/dev/null || fail "close: $CODE"
  expect_json 'j["session"]' 258 "session of the posted close"
  expect_json 'j["kind"]' close "kind of the posted close"
  # A live device: its debug/up messages of session 258 reach the stream; one stream per session;
  # when the client hangs up keeld tells the device (DebugClose "the debugger disconnected").
  bg_out "$WORK/sim.out" # the clean run above left its "connected" there
  "$SIMDEV" --port "$MQTT_PORT" --ca "$WORK/ca.pem" --cert "$WORK/dev-1.pem" --key "$WORK/dev-1.key" \
    --id dev-1 --debug-target 1 serve:30 >>"$WORK/sim.out" 2>&1 &
  SIMPID=$!; PIDS+=("$SIMPID")
  wait_for 10 grep -q "^connected" "$WORK/sim.out" || fail "simdev did not connect"
  curl -sN --max-time 30 -H "Authorization: Bearer $TOKEN" "$URL/v1/devices/dev-1/debug?session=258" >"$WORK/dstream" &
  CURLPID=$!; PIDS+=("$CURLPID")
  wait_for 10 grep -q "keel debug stream" "$WORK/dstream" || fail "debug stream did not open"
  api GET '/v1/devices/dev-1/debug?session=258' >/dev/null || true; [ "$CODE" = 409 ] || fail "second stream: $CODE"
  grep -q "already has a stream" "$WORK/body" || fail "busy message: $(cat "$WORK/body")"
  # Debug{open{session 258}} with an all-zero key and signature: simdev refuses (no debug key), and
  # its refusal (an accept with ok=false) comes back on the stream.
  OPEN="$(python3 -c 'print("0a8801" + "088202" + "1241" + "00" * 65 + "1a40" + "00" * 64)')"
  api POST /v1/devices/dev-1/debug "{\"debug\":\"$OPEN\"}" >/dev/null || fail "open: $CODE $(cat "$WORK/body")"
  wait_for 10 grep -q '^data: {"debug":"12' "$WORK/dstream" || fail "the refusal did not reach the stream: $(cat "$WORK/dstream")"
  grep -q "debug refused no debug key in the installed bundle" "$WORK/sim.out" || fail "simdev: $(cat "$WORK/sim.out")"
  # The device vanishes (its last will): the stream ends with the reason.
  kill -9 "$SIMPID"; wait "$SIMPID" 2>/dev/null || true
  wait_for 15 grep -q '^data: {"end":"the device went offline"}' "$WORK/dstream" ||
    fail "the stream did not end when the device went offline: $(cat "$WORK/dstream")"
  ;;
debug_gdb|debug_refusals)
  # gdb-multiarch -> keel debug -> keeld -> Mosquitto -> simdev's debug channel -> the RSP engine
  # (test_rsp_qemu) -> QEMU running a real program. simdev stands in for the microvisor's stub.
  for v in KEEL_CLI RSP_PROXY RSP_APP_ELF RSP_SESSION_GDB; do
    [ -n "${!v:-}" ] || fail "$v is not set (tests/server/CMakeLists.txt sets it)"
  done
  openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/debug.key" 2>/dev/null
  openssl ec -in "$WORK/debug.key" -pubout -out "$WORK/debug.pub" 2>/dev/null
  openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/other.key" 2>/dev/null
  openssl ec -in "$WORK/other.key" -pubout -out "$WORK/other.pub" 2>/dev/null
  sim_bg() { # ID OUT ARGS...: simdev in the background, its own pid in PIDS (so cleanup stops it)
    local id="$1" out="$2"; shift 2
    bg_out "$WORK/$out"
    "$SIMDEV" --port "$MQTT_PORT" --ca "$WORK/ca.pem" --cert "$WORK/$id.pem" --key "$WORK/$id.key" \
      --id "$id" "$@" >>"$WORK/$out" 2>&1 &
    SIMPID=$!; PIDS+=("$SIMPID")
  }
  kdebug() { # PORT ARGS...: keel debug dev-1 against this stack, in the background
    local port="$1"; shift
    bg_out "$WORK/kdebug.out"
    timeout 90 "$KEEL_CLI" debug dev-1 --port "$port" --state "$WORK" --url "$URL" --token "$TOKEN" \
      --timeout 10 "$@" >>"$WORK/kdebug.out" 2>&1 &
    KPID=$!; PIDS+=("$KPID")
  }
  start_qemu() {
    rm -f "$WORK/qemu-gdb.sock"
    timeout 120 qemu-system-arm -M mps2-an505 -display none -monitor none -serial null \
      -kernel "$RSP_APP_ELF" -chardev socket,id=g,path="$WORK/qemu-gdb.sock",server=on,wait=off \
      -gdb chardev:g -S &
    QPID=$!; PIDS+=("$QPID")
    wait_for 10 test -S "$WORK/qemu-gdb.sock" || fail "QEMU did not start"
  }
  start_engine() { # the RSP engine between QEMU and the next session; sets EPORT
    # (The second engine must not be taken for listening on the first one's "port" line.)
    bg_out "$WORK/engine.out"
    timeout 120 "$RSP_PROXY" "$WORK/qemu-gdb.sock" >>"$WORK/engine.out" 2>&1 &
    EPID=$!; PIDS+=("$EPID")
    wait_for 10 grep -q '^port ' "$WORK/engine.out" || fail "the RSP engine did not listen"
    EPORT="$(sed -n 's/^port //p' "$WORK/engine.out")"
  }
  if [ "$SCENARIO" = debug_refusals ]; then
    # A bundle with no debug key: refused by the device, and keel debug says so.
    sim_bg dev-1 sim.out --debug-target 1 serve:20
    wait_for 10 grep -q "^connected" "$WORK/sim.out" || fail "simdev did not connect"
    kdebug "$(free_port)" --key "$WORK/debug.key"
    rc=0; wait "$KPID" || rc=$?
    [ "$rc" = 1 ] || fail "keel debug with no debug key on the device exited $rc: $(cat "$WORK/kdebug.out")"
    grep -q "dev-1 refused the debug session: no debug key in the installed bundle" "$WORK/kdebug.out" ||
      fail "no-debug-key message: $(cat "$WORK/kdebug.out")"
    # The wrong key: the device checks the signature against its bundle's debug key.
    sim_bg dev-2 sim2.out --debug-pub "$WORK/debug.pub" --debug-target 1 serve:20
    wait_for 10 grep -q "^connected" "$WORK/sim2.out" || fail "simdev dev-2 did not connect"
    timeout 60 "$KEEL_CLI" debug dev-2 --port "$(free_port)" --state "$WORK" --url "$URL" \
      --token "$TOKEN" --timeout 10 --key "$WORK/other.key" >"$WORK/kdebug.out" 2>&1 && fail "wrong key accepted"
    grep -q "dev-2 refused the debug session: not signed by the debug key of the installed bundle" \
      "$WORK/kdebug.out" || fail "wrong-key message: $(cat "$WORK/kdebug.out")"
    # A certificate of another device, or no certificate at all: refused before anything is sent.
    timeout 60 "$KEEL_CLI" debug dev-2 --device-cert "$WORK/dev-1.pem" --fleet-ca "$WORK/ca.pem" \
      --url "$URL" --token "$TOKEN" --key "$WORK/debug.key" >"$WORK/kdebug.out" 2>&1 && fail "foreign certificate accepted"
    grep -q "belongs to 'dev-1', not 'dev-2'" "$WORK/kdebug.out" || fail "cert message: $(cat "$WORK/kdebug.out")"
    timeout 60 "$KEEL_CLI" debug dev-2 --device-cert "$WORK/keeld.key" --fleet-ca "$WORK/ca.pem" \
      --url "$URL" --token "$TOKEN" --key "$WORK/debug.key" >"$WORK/kdebug.out" 2>&1 && fail "a key as certificate accepted"
    grep -q "is not a PEM X.509 certificate" "$WORK/kdebug.out" || fail "not-a-cert message: $(cat "$WORK/kdebug.out")"
    # A debug key file that is not a private key.
    timeout 60 "$KEEL_CLI" debug dev-2 --state "$WORK" --url "$URL" --token "$TOKEN" \
      --key "$WORK/debug.pub" >"$WORK/kdebug.out" 2>&1 && fail "a public key as --key accepted"
    grep -q -- "--key $WORK/debug.pub" "$WORK/kdebug.out" || fail "--key message: $(cat "$WORK/kdebug.out")"
    # A device keeld has never seen, then one that is not online: keel debug says which.
    bash "$STACK" certs "$WORK" dev-3 >/dev/null
    timeout 60 "$KEEL_CLI" debug dev-3 --state "$WORK" --url "$URL" --token "$TOKEN" \
      --key "$WORK/debug.key" >"$WORK/kdebug.out" 2>&1 && fail "unknown dev-3 accepted"
    grep -q "unknown device 'dev-3'" "$WORK/kdebug.out" || fail "unknown device message: $(cat "$WORK/kdebug.out")"
    # A device that no longer answers: its presence goes offline (simdev killed: the will).
    "$SIMDEV" --port "$MQTT_PORT" --ca "$WORK/ca.pem" --cert "$WORK/dev-3.pem" --key "$WORK/dev-3.key" \
      --id dev-3 serve:60 >"$WORK/sim3.out" 2>&1 &
    SIM3=$!; PIDS+=("$SIM3")
    wait_for 10 get_has /v1/devices/dev-3 '"online":true' || fail "dev-3 not online"
    kill -9 "$SIM3"
    wait_for 10 get_has /v1/devices/dev-3 '"online":false' || fail "dev-3 still online"
    timeout 60 "$KEEL_CLI" debug dev-3 --state "$WORK" --url "$URL" --token "$TOKEN" \
      --key "$WORK/debug.key" >"$WORK/kdebug.out" 2>&1 && fail "offline dev-3 accepted"
    grep -q "device 'dev-3' is offline" "$WORK/kdebug.out" || fail "offline message: $(cat "$WORK/kdebug.out")"
    # Session ends the device must hear about: keel debug stopped by Ctrl-C (it says so), and
    # killed outright (keeld notices the stream drop and says so). The target is a TCP sink that
    # reports when its connection ends, as the stub's "connection lost" would.
    SINK_PORT="$(free_port)"
    python3 -c 'import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(4)
for _ in range(3):
    c, _a = s.accept()
    while c.recv(4096): pass
    print("target eof", flush=True)' "$SINK_PORT" >"$WORK/sink.out" 2>&1 &
    PIDS+=($!)
    bg_out "$WORK/sim3.out"
    "$SIMDEV" --port "$MQTT_PORT" --ca "$WORK/ca.pem" --cert "$WORK/dev-3.pem" --key "$WORK/dev-3.key" \
      --id dev-3 --debug-pub "$WORK/debug.pub" --debug-target "$SINK_PORT" debug-sessions:3:60 >>"$WORK/sim3.out" 2>&1 &
    SIM3=$!; PIDS+=("$SIM3")
    wait_for 10 get_has /v1/devices/dev-3 '"online":true' || fail "dev-3 not online again"
    end_session() { # SIGNAL: open a session, signal keel debug, wait for it to end
      "$KEEL_CLI" debug dev-3 --port "$(free_port)" --state "$WORK" --url "$URL" --token "$TOKEN" \
        --key "$WORK/debug.key" >"$WORK/kdebug-$1.out" 2>&1 &
      local k=$!; PIDS+=("$k")
      wait_for 20 grep -q "target remote" "$WORK/kdebug-$1.out" || fail "session to dev-3: $(cat "$WORK/kdebug-$1.out")"
      kill "-$1" "$k"
      wait_for 10 bash -c "! kill -0 $k" || fail "keel debug still running after SIG$1"
      wait "$k" || true
    }
    end_session INT
    wait_for 10 grep -q "debug closed: keel debug interrupted (SIGINT)" "$WORK/sim3.out" ||
      fail "device not told of Ctrl-C: $(cat "$WORK/sim3.out")"
    end_session KILL
    wait_for 10 grep -q "debug closed: the debugger disconnected" "$WORK/sim3.out" ||
      fail "device not told of a vanished client: $(cat "$WORK/sim3.out")"
    # The idle limit: no traffic for --idle seconds ends the session, and keel debug says why.
    timeout 60 "$KEEL_CLI" debug dev-3 --port "$(free_port)" --state "$WORK" --url "$URL" --token "$TOKEN" \
      --key "$WORK/debug.key" --idle 1 >"$WORK/kdebug-idle.out" 2>&1 || fail "idle end: $(cat "$WORK/kdebug-idle.out")"
    grep -q "no traffic for 1 s (--idle): ending the session" "$WORK/kdebug-idle.out" ||
      fail "idle message: $(cat "$WORK/kdebug-idle.out")"
    wait_for 10 grep -q "debug closed: idle timeout" "$WORK/sim3.out" ||
      fail "device not told of the idle end: $(cat "$WORK/sim3.out")"
    sink_eofs() { [ "$(grep -c 'target eof' "$WORK/sink.out")" = 3 ]; }
    wait_for 10 sink_eofs || fail "the target connection did not end three times"
    wait "$SIM3" || fail "simdev dev-3: $(cat "$WORK/sim3.out")"
  else
    start_qemu
    start_engine
    wire_tap "$WORK" "$MQTT_PORT" dev-1 || fail "the debug wire observer did not subscribe: $(cat "$WORK/debug_wire.txt")"
    sim_bg dev-1 sim.out --debug-pub "$WORK/debug.pub" --debug-target "$EPORT" debug-sessions:1:90
    wait_for 10 grep -q "^connected" "$WORK/sim.out" || fail "simdev did not connect"
    GPORT="$(free_port)"
    kdebug "$GPORT" --key "$WORK/debug.key"
    wait_for 20 grep -q "target remote 127.0.0.1:$GPORT" "$WORK/kdebug.out" ||
      fail "keel debug did not open the session: $(cat "$WORK/kdebug.out")"
    sed "s/@PORT@/$GPORT/; s#@ELF@#$RSP_APP_ELF#" "$RSP_SESSION_GDB" >"$WORK/session.gdb"
    timeout 90 gdb-multiarch -q -batch -nx -x "$WORK/session.gdb" >"$WORK/gdb.out" 2>&1 ||
      fail "gdb failed: $(tail -30 "$WORK/gdb.out")"
    rc=0; wait "$KPID" || rc=$?
    [ "$rc" = 0 ] || fail "keel debug exited $rc after gdb detached: $(cat "$WORK/kdebug.out")"
    rc=0; wait "$SIMPID" || rc=$?
    [ "$rc" = 0 ] || fail "simdev did not see the session close: $(cat "$WORK/sim.out")"
    rc=0; wait "$EPID" || rc=$?
    [ "$rc" = 0 ] || fail "the RSP engine failed: $(cat "$WORK/engine.out")"
    cat "$WORK/gdb.out" "$WORK/kdebug.out" "$WORK/engine.out"
    if grep -E "Remote communication error|Remote failure|Cannot access memory|warning: |Ignoring packet error|Invalid register" "$WORK/gdb.out"; then
      fail "gdb reported a problem"
    fi
    # The issue's list, each with its evidence in gdb's output.
    check() { grep -Pzq "$1" "$WORK/gdb.out" || fail "gdb output lacks: $2"; }
    check 'msp +0x38010000[^\n]*\npsp +0x0 ' "info registers with msp/psp"
    check 'Breakpoint 1, level5 \(x=10\)' "break at a function, continue, hit"
    check 'MARK bt\n#0  level5 \(x=10\)[^\n]*\n#1 [^\n]* level4 \(x=6\)[^\n]*\n#2 [^\n]* level3 [^\n]*\n#3 [^\n]* level2 [^\n]*\n#4 [^\n]* level1 [^\n]*\n#5 [^\n]* reset \(\)' "bt with 6 frames"
    check 'MARK locals\n\$1 = -?[0-9]+\n\$2 = 10\n\$3 = 0\n' "locals and globals"
    check 'MARK set-var\n\$5 = 1234\n' "set var"
    check 'Value returned is \$6 = 31' "finish"
    check 'MARK next\n30\t}\n' "next"
    check 'MARK step\n[\s\S]*Breakpoint 2, level1 \(x=0\)' "step setup"
    check 'level2 \(x=1\) at [^\n]*\n40\t' "step into a function"
    check 'MARK stepi\n0x[0-9a-f]+\t40\t[^\n]*\n0x[0-9a-f]+\t40\t' "stepi"
    check 'MARK x\n0x38000004 <table>:\t0x00000023\t' "x/16x"
    check 'Program received signal SIGINT, Interrupt\.' "interrupt a running app"
    check 'MARK after-interrupt\n\$7 = 1\n' "the app ran between continue and the interrupt"
    check '\[Inferior 1 \(Remote target\) detached\]' "detach"
    grep -q "session over: 0 breakpoint references left" "$WORK/engine.out" || fail "breakpoints left behind"
    grep -q "debug closed: the debugger detached" "$WORK/sim.out" || fail "device not told: $(cat "$WORK/sim.out")"
    grep -q "gdb disconnected" "$WORK/kdebug.out" || fail "keel debug: $(cat "$WORK/kdebug.out")"
    # Detach and the app runs on: a direct session to the engine finds the counter moved on.
    BEFORE="$(sed -n '/^MARK detach/{n;s/^\$[0-9]* = //p}' "$WORK/gdb.out")"
    sleep 0.3
    start_engine
    timeout 60 gdb-multiarch -q -batch -nx -ex "file $RSP_APP_ELF" -ex "target remote 127.0.0.1:$EPORT" \
      -ex "print/d counter" -ex "detach" >"$WORK/after.out" 2>&1
    AFTER="$(sed -n 's/^\$1 = //p' "$WORK/after.out")"
    # Moved on, not "grew": the uint32 counter grows by some 10^8 a second on QEMU and wraps
    # within half a minute, so a later value can be smaller. Only a stopped app leaves it as it was.
    [ -n "$BEFORE" ] && [ -n "$AFTER" ] && [ "$AFTER" != "$BEFORE" ] ||
      fail "the app did not run on after detach (counter $BEFORE then $AFTER)"
    # End to end: the session's packets crossed the broker (dozens each way) and none of them in
    # clear: gdb's first packet, a register read, the breakpoint's function, a memory read.
    kill "$WIRE_PID" 2>/dev/null; wait "$WIRE_PID" 2>/dev/null
    wire_sealed 20 'qSupported' '$g#67' 'vCont' 'level5' 'qXfer:features' || fail "debug traffic on the broker is not sealed"
  fi
  ;;
ota_delta)
  # Only what changed crosses the network: the same bundle again costs nothing, a one-function
  # change costs the manifest and the two pages it touches, a new app costs all of it.
  ota_app v1 1 1; ota_app v2 1 2; ota_app v3 2 1
  bundle v1 v1 1.0.0; bundle v2 v2 1.1.0; bundle v3 v3 2.0.0
  upload v1 >/dev/null || fail "upload v1: $CODE $(cat "$WORK/body")"
  [ "$CODE" = 201 ] || fail "first upload: $CODE"
  V1_ID="$(json 'j["id"]')"
  expect_json 'j["version"]' 1.0.0 "bundle version"
  expect_json 'j["sha256"]' "$(sha_of v1)" "bundle identity"
  upload v1 >/dev/null || fail "upload v1 again: $CODE"
  [ "$CODE" = 200 ] || fail "the same bundle again: $CODE, expected 200"
  expect_json 'j["id"]' "$V1_ID" "the same bytes are the same bundle"
  expect_json 'j["created"]' false "created flag of a repeated upload"
  upload v2 >/dev/null && upload v3 >/dev/null || fail "upload: $CODE $(cat "$WORK/body")"
  api GET /v1/bundles >/dev/null
  expect_json 'len(j["bundles"])' 3 "bundles listed"
  keelc bundle list || fail "bundle list: $(cat "$WORK/keel.err")"
  keel_has keel.out "$(sha_of v3 | cut -c1-16)"
  keelc bundle list --json || fail "bundle list --json"
  keel_has keel.out '"version": "2.0.0"' 
  # dev-1 runs v1 (factory install); deploying v1 sends nothing.
  simu dev-1 --install "$WORK/v1.kb" logs:1:installed >/dev/null
  deploy v1 '"device":"dev-1"'
  simu dev-1 logs:1:hello >"$WORK/sim.out"
  wait_for 10 dev_is "$DEP" dev-1 phase done || fail "v1 on v1: not settled"
  expect_dev "$DEP" dev-1 result success
  expect_dev "$DEP" dev-1 bytes_sent 0
  expect_dev "$DEP" dev-1 offers 0
  ! grep -q update-offer "$WORK/sim.out" || fail "an offer for the bundle dev-1 already runs"
  figure same_sent "$(dev_field "$DEP" dev-1 bytes_sent)"
  # A device whose hello names only its app image (size and hash): matched by image and version.
  deploy v1 '"device":"dev-1"'
  simu dev-1 --hello image logs:1:hello >/dev/null
  wait_for 10 dev_is "$DEP" dev-1 phase done || fail "v1 on v1 (image hello): not settled"
  expect_dev "$DEP" dev-1 bytes_sent 0
  # v2: one function changed.
  upload v2 >/dev/null
  SIGNED="$(json 'j["signed_size"]')"
  deploy v2 '"device":"dev-1"'
  simu dev-1 update:90 >"$WORK/sim.out" || fail "v2: $(tail -5 "$WORK/sim.out")"
  grep -q "update-status $DEP idle success" "$WORK/sim.out" || fail "v2 not confirmed: $(cat "$WORK/sim.out")"
  wait_for 10 dev_is "$DEP" dev-1 result success || fail "v2 result not recorded"
  expect_dev "$DEP" dev-1 blocks_needed 2
  expect_dev "$DEP" dev-1 bytes_fetched $((SIGNED + 2 * 8192))
  SENT="$(json "[d for d in j['devices'] if d['device'] == 'dev-1'][0]['bytes_sent']")"
  [ "$SENT" -ge $((SIGNED + 2 * 8192)) ] && [ "$SENT" -le $((SIGNED + 3 * 8192)) ] ||
    fail "v2 sent $SENT bytes; the manifest ($SIGNED) and 2 pages are $((SIGNED + 2 * 8192))"
  expect_dev "$DEP" dev-1 installed_version 1.1.0
  expect_json 'j["summary"]["succeeded"]' 1 "v2 summary"
  figure one_sent "$SENT"
  figure one_blocks "$(dev_field "$DEP" dev-1 blocks_needed)"
  figure blocks_total "$(dev_field "$DEP" dev-1 blocks_total)"
  figure signed "$SIGNED"
  figure bundle_v2 "$(stat -c %s "$WORK/v2.kb")"
  wait_for 10 get_has /v1/devices/dev-1 '"app_version":"1.1.0"' || fail "hello after v2 not 1.1.0"
  # v2 again: nothing.
  deploy v2 '"device":"dev-1"'
  simu dev-1 logs:1:hello >/dev/null
  wait_for 10 dev_is "$DEP" dev-1 phase done || fail "v2 on v2: not settled"
  expect_dev "$DEP" dev-1 bytes_sent 0
  # v3: a whole new app of the same size: every byte of the bundle.
  deploy v3 '"device":"dev-1"'
  simu dev-1 update:120 >"$WORK/sim.out" || fail "v3: $(tail -5 "$WORK/sim.out")"
  wait_for 10 dev_is "$DEP" dev-1 result success || fail "v3 result not recorded"
  expect_dev "$DEP" dev-1 bytes_fetched "$(stat -c %s "$WORK/v3.kb")"
  expect_dev "$DEP" dev-1 installed_version 2.0.0
  figure new_sent "$(dev_field "$DEP" dev-1 bytes_sent)"
  figure new_blocks "$(dev_field "$DEP" dev-1 blocks_needed)"
  figure bundle_v3 "$(stat -c %s "$WORK/v3.kb")"
  # Garbage on the update topics and fetches keeld must not serve: logged, ignored, no crash.
  sim dev-1 raw:update/fetch:deadbeef raw:update/status:0a0b0c fetch:999:0:100 \
    "fetch:$DEP:0:100" "fetch:$DEP:4294967295:2048" logs:1:after-garbage >/dev/null ||
    fail "garbage run failed"
  grep -q "fetch for deployment 999, which is not its current one" "$WORK/keeld1.log" ||
    fail "unknown deployment fetch not logged"
  curl -s "$URL/v1/health" | grep -q '"status":"ok"' || fail "keeld did not survive the garbage"
  # The history keeps each transition (offered states and the final one).
  api GET "/v1/deployments/$DEP" >/dev/null
  expect_json '[e["state"] for e in j["events"]][0]' idle "last event"
  expect_json '"downloading" in [e["state"] for e in j["events"]]' true "downloading recorded"
  ;;
ota_delta_pick)
  # Binary deltas through keeld (docs/delta.md "keeld"): a delta bundle is uploaded beside the
  # full one; keeld chooses per device from the app region its hello reported: the delta for that
  # base (dev-1), pages when it has no delta for it (dev-2), nothing when the device runs the
  # bundle already (dev-3). dev-4's base changes behind keeld's back (a byte of its app slot
  # flipped after its hello): it refuses the delta with the reason, and keeld sends it pages, no
  # operator action, also when the refusal comes twice. The choice and the bytes sent show in
  # deploy status (REST and CLI).
  bash "$STACK" certs "$WORK" dev-4 >/dev/null || fail "no certificate for dev-4"
  ota_app v0 1 1; ota_app v1 1 2; ota_app vx 1 3
  bundle v0 v0 1.0.0; bundle vx vx 1.0.1
  bundle v1 v1 1.1.0 --base "$WORK/v0.kb"
  DELTA="$(cd "$WORK" && ls v1.delta-*.kb)" || fail "keel bundle build --base wrote no delta"
  DELTA="${DELTA%.kb}"
  upload v0 >/dev/null || fail "upload v0: $CODE $(cat "$WORK/body")"
  V0_REGION="$(json 'j["region_sha256"]')"
  expect_json 'j["kind"]' full "a full bundle's kind"
  upload "$DELTA" >/dev/null || fail "upload of the delta: $CODE $(cat "$WORK/body")"
  [ "$CODE" = 201 ] || fail "delta upload: $CODE"
  expect_json 'j["kind"]' delta "the delta's kind"
  expect_json 'j["delta"]["base_region_sha256"]' "$V0_REGION" "the delta's base"
  api POST /v1/deployments "{\"bundle\":\"$(sha_of "$DELTA")\",\"all\":true}" >/dev/null &&
    fail "keeld deployed a delta bundle by itself"
  [ "$CODE" = 422 ] && grep -qF "deploy the full bundle" "$WORK/body" || fail "deploy of a delta: $CODE $(cat "$WORK/body")"
  for d in dev-1:v0 dev-2:vx dev-3:v1 dev-4:v0; do
    simu "${d%%:*}" --install "$WORK/${d#*:}.kb" logs:1:installed >/dev/null || fail "install $d"
  done
  # dev-4 online with its agent (it reports v0's region), then its base changes under it.
  simu_bg dev-4 --repeat-status 2 update:150 update:150
  wait_for 30 grep -q '^connected dev-4' "$WORK/sim-dev-4.out" || fail "dev-4 did not connect"
  wait_for 10 get_has /v1/devices/dev-4 '"online":true' || fail "dev-4 not online"
  get_has /v1/devices/dev-4 "$V0_REGION" || fail "dev-4 does not report v0's region"
  python3 -c "import sys; f=open(sys.argv[1],'r+b'); f.seek(8192+100); b=f.read(1); f.seek(8192+100); f.write(bytes([b[0]^0x40]))" \
    "$WORK/flash-dev-4/store.bin" || fail "cannot change dev-4's app slot"
  # keel deploy APP.kb uploads the deltas beside it too (here: already stored).
  keelc deploy "$WORK/v1.kb" --all || fail "deploy v1: $(cat "$WORK/keel.err")"
  keel_has keel.out "a delta for devices whose app region is ${V0_REGION:0:12}"
  DEP="$(sed -n 's/^deployment \([0-9]*\): .*/\1/p' "$WORK/keel.out" | head -n 1)"
  [ -n "$DEP" ] || fail "no deployment id: $(cat "$WORK/keel.out")"
  # dev-3 runs v1: nothing, at once.
  wait_for 10 dev_is "$DEP" dev-3 phase done || fail "dev-3 (runs v1) not settled"
  expect_dev "$DEP" dev-3 delivery nothing
  expect_dev "$DEP" dev-3 bytes_sent 0
  # dev-4: the delta refused (its base is not v0's any more), then pages, to success.
  wait "${SIMS[-1]}" || fail "dev-4's updates: $(tail -20 "$WORK/sim-dev-4.out")"
  grep -qE "^update-status $DEP idle [a-z_]+ -451 " "$WORK/sim-dev-4.out" ||
    fail "dev-4 did not refuse the delta for its base: $(grep update-status "$WORK/sim-dev-4.out")"
  grep -q "^update-status $DEP idle success" "$WORK/sim-dev-4.out" ||
    fail "dev-4 did not get pages to success: $(grep update-status "$WORK/sim-dev-4.out")"
  wait_for 10 dev_is "$DEP" dev-4 result success || fail "dev-4's success not recorded"
  expect_dev "$DEP" dev-4 delivery pages
  REFUSED="$(dev_field "$DEP" dev-4 delta_refused)"
  grep -qi "base" <<<"$REFUSED" || fail "dev-4's refusal reason: '$REFUSED'"
  dev_ge "$DEP" dev-4 bytes_sent 8192 || fail "dev-4 was sent no pages"
  grep -q "deployment $DEP: the delta was refused" "$WORK/keeld1.log" || fail "keeld did not log the fallback"
  api GET "/v1/deployments/$DEP" >/dev/null
  expect_json "any('delta refused' in e['detail'] and e['device'] == 'dev-4' for e in j['events'])" true "refusal in the history"
  # dev-1 runs v0: the delta, every byte of it and nothing more than a re-ask.
  simu dev-1 update:150 >"$WORK/sim.out" || fail "dev-1: $(tail -5 "$WORK/sim.out")"
  grep -q "^update-status $DEP idle success" "$WORK/sim.out" || fail "dev-1 not updated: $(cat "$WORK/sim.out")"
  wait_for 10 dev_is "$DEP" dev-1 result success || fail "dev-1's success not recorded"
  expect_dev "$DEP" dev-1 delivery delta
  expect_dev "$DEP" dev-1 installed_version 1.1.0
  DSIZE="$(stat -c %s "$WORK/$DELTA.kb")"
  SENT1="$(dev_field "$DEP" dev-1 bytes_sent)"
  [ "$SENT1" -ge "$DSIZE" ] && [ "$SENT1" -le $((2 * DSIZE)) ] || fail "dev-1 was sent $SENT1 bytes for a $DSIZE-byte delta"
  api GET "/v1/bundles/$(sha_of v1)" >/dev/null || fail "bundle v1: $CODE"
  V1_REGION="$(json 'j["region_sha256"]')"
  wait_for 10 get_has /v1/devices/dev-1 "$V1_REGION" || fail "dev-1 does not report v1's region after the delta"
  # dev-2 runs another app: no delta for its base, pages.
  simu dev-2 update:150 >"$WORK/sim.out" || fail "dev-2: $(tail -5 "$WORK/sim.out")"
  wait_for 10 dev_is "$DEP" dev-2 result success || fail "dev-2's success not recorded"
  expect_dev "$DEP" dev-2 delivery pages
  expect_dev "$DEP" dev-2 delta_refused ""
  SENT2="$(dev_field "$DEP" dev-2 bytes_sent)"
  [ "$SENT2" -gt $((4 * SENT1)) ] || fail "pages ($SENT2 B) not far above the delta ($SENT1 B)"
  # deploy status: the choice and bytes per device, the totals per delivery.
  api GET "/v1/deployments/$DEP" >/dev/null
  expect_json 'j["summary"]["delta"]' 1 "devices served a delta"
  expect_json 'j["summary"]["pages"]' 2 "devices served pages"
  expect_json 'j["summary"]["nothing"]' 1 "devices sent nothing"
  expect_json 'j["summary"]["delta_refused"]' 1 "deltas refused"
  expect_json 'j["summary"]["delta_bytes"]' "$SENT1" "bytes sent as deltas"
  expect_json 'j["summary"]["succeeded"]' 4 "every device succeeded"
  keelc deploy status "$DEP" || fail "deploy status: $(cat "$WORK/keel.err")"
  grep -qE "^dev-1 .* success .* delta +$SENT1 B sent" "$WORK/keel.out" || fail "dev-1 row: $(cat "$WORK/keel.out")"
  grep -qE "^dev-2 .* success .* pages +$SENT2 B sent" "$WORK/keel.out" || fail "dev-2 row: $(cat "$WORK/keel.out")"
  grep -qE "^dev-3 .* success .* nothing +0 B sent" "$WORK/keel.out" || fail "dev-3 row: $(cat "$WORK/keel.out")"
  grep -qE "^dev-4 .* success .* pages " "$WORK/keel.out" || fail "dev-4 row: $(cat "$WORK/keel.out")"
  keel_has keel.out "delta refused: $REFUSED; sent pages instead"
  keel_has keel.out "delivery: 1 delta ($SENT1 bytes sent), 2 pages"
  keel_has keel.out "1 deltas refused"
  ;;
ota_refused)
  # Bad bundles: keeld refuses what it can check itself at upload (tampered, unsigned,
  # truncated, garbage); devices refuse what depends on them (other device type, older counter,
  # a key they do not trust), nothing is written, and the reason shows in `keel deploy status`.
  ota_app v0 3 1; ota_app v1 1 1; ota_app v2 1 2
  bundle v0 v0 0.9.0; bundle v1 v1 1.0.0 --counter 5
  bundle old v2 1.1.0 --counter 3
  # keeld refuses a bundle no targeted board can install, so the device's own device-type check
  # is tested with a device that says it is another type than its board (simdev --device-type).
  bundle wrongtype v2 1.1.0 --counter 5
  bundle otherkey v2 1.1.0 --counter 5 --key "$WORK/keys/other.key"
  bundle unsigned v2 1.1.0 --counter 5 --key "$WORK/keys/rogue.key"
  cp "$WORK/v1.kb" "$WORK/tman.kb"
  printf '\x09' | dd of="$WORK/tman.kb" bs=1 seek=12 conv=notrunc status=none
  cp "$WORK/v1.kb" "$WORK/tpay.kb"
  printf '\x5a' | dd of="$WORK/tpay.kb" bs=1 seek=$(($(stat -c %s "$WORK/v1.kb") - 1)) conv=notrunc status=none
  head -c 1000 "$WORK/v1.kb" >"$WORK/trunc.kb"
  head -c 5000 /dev/urandom >"$WORK/garbage.kb"
  bundle v1d v1 1.0.0 --counter 5 --base "$WORK/v0.kb"
  cp "$WORK"/v1d.delta-*.kb "$WORK/tdelta.kb" # a delta whose patch was changed after signing
  python3 -c "import sys; f=open(sys.argv[1],'r+b'); f.seek(-1, 2); b=f.read(1); f.seek(-1, 2); f.write(bytes([b[0] ^ 1]))" "$WORK/tdelta.kb"
  for bad in "tman:the signature does not verify" "tpay:the payload does not match" \
             "unsigned:which is not a fleet signing key" "trunc:truncated" "garbage:malformed" \
             "tdelta:the payload does not match"; do
    name="${bad%%:*}"
    keelc bundle upload "$WORK/$name.kb" && fail "keeld accepted $name.kb"
    keel_has keel.err "${bad#*:}"
  done
  # Seeded single-byte mutations anywhere in a bundle (manifest, signature, payload): every one
  # refused with a 4xx, none stored, keeld unharmed.
  for i in $(seq 1 24); do
    python3 -c "import random,sys; b=bytearray(open(sys.argv[1],'rb').read()); r=random.Random($i);
p=r.randrange(len(b)) if $i % 3 else r.randrange(4496); b[p]^=1<<r.randrange(8); open(sys.argv[2],'wb').write(b)" \
      "$WORK/v1.kb" "$WORK/mut.kb"
    upload mut >/dev/null && fail "mutation $i accepted"
    [[ "$CODE" == 4* ]] || fail "mutation $i: $CODE $(cat "$WORK/body")"
  done
  head -c 5000000 /dev/zero >"$WORK/huge.kb"
  upload huge >/dev/null && fail "a bundle over --max-bundle was accepted"
  [ "$CODE" = 413 ] || fail "oversize bundle: $CODE, expected 413"
  api GET /v1/bundles >/dev/null
  expect_json 'len(j["bundles"])' 0 "a refused upload stored nothing"
  # Deployment requests that make no sense: refused with what to do, nothing created.
  upload v1 >/dev/null || fail "upload v1"
  V1="$(sha_of v1)"
  for bad in '{"device":"dev-1"}|400|the body needs' "{\"bundle\":\"$V1\"}|400|exactly one of" \
             "{\"bundle\":\"$V1\",\"all\":true,\"device\":\"dev-1\"}|400|exactly one of" \
             '{"bundle":"abc","all":true}|404|no bundle' '{"bundle":999,"all":true}|404|no bundle' \
             "{\"bundle\":\"$V1\",\"device\":\"ghost\"}|404|unknown device" \
             "{\"bundle\":\"$V1\",\"tag\":\"nobody\"}|409|no device has tag" \
             "{\"bundle\":\"$V1\",\"all\":true,\"force_after_s\":-1}|400|force_after_s" \
             "{\"bundle\":\"$V1\",\"all\":true,\"colour\":1}|400|unknown field"; do
    body="${bad%%|*}"; rest="${bad#*|}"
    api POST /v1/deployments "$body" >/dev/null && fail "accepted $body"
    [ "$CODE" = "${rest%%|*}" ] || fail "$body: $CODE, expected ${rest%%|*}"
    grep -qF -- "${rest#*|}" "$WORK/body" || fail "$body: $(cat "$WORK/body")"
  done
  api POST /v1/deployments/77/force >/dev/null && fail "force of an unknown deployment"
  [ "$CODE" = 404 ] || fail "force unknown: $CODE"
  api GET /v1/deployments/77 >/dev/null && fail "an unknown deployment"
  [ "$CODE" = 404 ] || fail "unknown deployment: $CODE"
  api GET /v1/deployments >/dev/null
  expect_json 'len(j["deployments"])' 0 "refused deployments created nothing"
  keelc deploy "$WORK/v1.kb" && fail "deploy without a target"
  keel_has keel.err "exactly one of --to DEVICE, --tag T, --all"
  keelc deploy "$WORK/v1.kb" --to dev-1 --all && fail "deploy with two targets"
  keelc deploy nothing-here --all && fail "deploy of nothing"
  keel_has keel.err "is no file, bundle id or SHA-256"
  keelc deploy status abc && fail "status of a non-id"
  keel_has keel.err "give one deployment ID"
  # dev-1 runs v0, then v1 (counter 5) through an update: its installed counter is 5.
  simu dev-1 --install "$WORK/v0.kb" logs:1:installed >/dev/null
  keelc deploy "$WORK/v1.kb" --to dev-1 --json || fail "deploy v1: $(cat "$WORK/keel.err")"
  simu dev-1 update:90 >"$WORK/sim.out" || fail "v1: $(tail -5 "$WORK/sim.out")"
  grep -q "idle success" "$WORK/sim.out" || fail "v1 not installed: $(cat "$WORK/sim.out")"
  keelc bundle upload "$WORK/v1.kb" --json || fail "upload v1"
  V1_REGION="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["region_sha256"])' "$WORK/keel.out")"
  for bad in "old:-406:security counter 3 < installed 5" \
             "wrongtype:-405:built for device type 0x505, this is 0x999" \
             "otherkey:-403:not a key this device trusts"; do
    name="${bad%%:*}"; kerr="${bad#*:}"; kerr="${kerr%%:*}"; bad="$name:${bad#*:*:}"
    keelc deploy "$WORK/$name.kb" --to dev-1 --json || fail "deploy $name: $(cat "$WORK/keel.err")"
    DEP="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/keel.out")"
    simu dev-1 $([ "$name" = wrongtype ] && echo --device-type 0x999) update:60 >"$WORK/sim.out" ||
      fail "$name: $(tail -5 "$WORK/sim.out")"
    wait_for 10 dev_is "$DEP" dev-1 phase done || fail "$name: no final result recorded"
    expect_dev "$DEP" dev-1 result unsupported_package
    expect_dev "$DEP" dev-1 code "$kerr" # the kerr_t, as int32 (it travels as uint32)
    keelc deploy status "$DEP" || fail "deploy status $DEP"
    keel_has keel.out "unsupported_package"
    keel_has keel.out "${bad#*:}"
    keel_has keel.out "1 failed"
    # Nothing was written: the device still reports v1's region.
    wait_for 10 get_has /v1/devices/dev-1 "$V1_REGION" || fail "$name changed the app region"
    if [ "$name" = wrongtype ]; then # keeld learnt 0x999 from that hello: say the real type again
      simu dev-1 heartbeat >/dev/null || fail "hello after wrongtype"
      wait_for 10 get_has /v1/devices/dev-1 '"device_type":1285' || fail "keeld kept device type 0x999"
    fi
  done
  # keel deploy APP.kb uploads the deltas beside it; one keeld refuses is left out, named, and
  # the deployment still goes on (its devices get pages).
  mkdir -p "$WORK/sib" && cp "$WORK/v1.kb" "$WORK/sib/v1.kb" &&
    cp "$WORK/tdelta.kb" "$WORK/sib/v1.delta-000000000000.kb" || fail "cannot set up sib/"
  keelc deploy "$WORK/sib/v1.kb" --to dev-1 || fail "deploy beside a refused delta: $(cat "$WORK/keel.err")"
  keel_has keel.err "v1.delta-000000000000.kb was not uploaded"
  keel_has keel.err "the payload does not match the signed patch hash"
  keel_has keel.out "deployment "
  ;;
ota_force)
  # An app that defers: staged, then nothing until the operator forces; a kill -9 of keeld in
  # the middle of a download; a newer deployment superseding an unfinished one.
  ota_app v1 1 1; ota_app v2 1 2; ota_app v3 2 1
  bundle v1 v1 1.0.0; bundle v2 v2 1.1.0; bundle v3 v3 2.0.0
  simu dev-1 --install "$WORK/v1.kb" logs:1:installed >/dev/null
  keelc deploy "$WORK/v2.kb" --to dev-1 --json || fail "deploy v2: $(cat "$WORK/keel.err")"
  DEP="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/keel.out")"
  simu dev-1 --apply defer update:120 >"$WORK/sim.out" 2>&1 &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  wait_for 60 dev_is "$DEP" dev-1 state downloaded || fail "v2 never staged: $(cat "$WORK/sim.out")"
  keelc deploy status "$DEP" || fail "status"
  keel_has keel.out "staged; the app defers the apply"
  expect_dev "$DEP" dev-1 phase offered
  keelc deploy force "$DEP" || fail "force: $(cat "$WORK/keel.err")"
  keel_has keel.out "dev-1: apply command"
  wait "$SIM_PID" || fail "device after force: $(tail -5 "$WORK/sim.out")"
  # The apply command or the forced offer, whichever came first, made it apply.
  wait_for 10 dev_is "$DEP" dev-1 result success || fail "v2 not confirmed after force"
  api GET "/v1/deployments/$DEP" >/dev/null
  expect_json 'j["forced"]' true "forced flag"
  # v3, a whole app, over a slow link; keeld is killed with -9 after a few blocks and restarted.
  keelc deploy "$WORK/v3.kb" --to dev-1 --json || fail "deploy v3"
  DEP="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/keel.out")"
  simu dev-1 --pace 150 update:180 >"$WORK/sim.out" 2>&1 &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  wait_for 60 dev_ge "$DEP" dev-1 blocks_staged 3 || fail "v3 download did not start"
  kill -9 "$KEELD_PID"
  wait "$KEELD_PID" 2>/dev/null || true
  sleep 1
  start_keeld
  wait "$SIM_PID" || fail "v3 after keeld's kill -9: $(tail -5 "$WORK/sim.out")"
  wait_for 10 dev_is "$DEP" dev-1 result success || fail "v3 not recorded after the restart"
  # Resumed, not restarted: the device fetched every byte exactly once.
  expect_dev "$DEP" dev-1 bytes_fetched "$(stat -c %s "$WORK/v3.kb")"
  expect_dev "$DEP" dev-1 installed_version 2.0.0
  # Two deployments to an offline device: the newer supersedes the older.
  keelc deploy "$WORK/v1.kb" --to dev-1 --json || fail "deploy v1"
  OLD="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/keel.out")"
  keelc deploy "$WORK/v2.kb" --to dev-1 --json || fail "deploy v2 again"
  NEW="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/keel.out")"
  expect_dev "$OLD" dev-1 phase superseded
  simu dev-1 update:90 >"$WORK/sim.out" || fail "v2 after supersede: $(tail -5 "$WORK/sim.out")"
  grep -q "update-offer $NEW" "$WORK/sim.out" || fail "the newer deployment was not offered"
  ! grep -q "update-offer $OLD " "$WORK/sim.out" || fail "the superseded deployment was offered"
  wait_for 10 dev_is "$NEW" dev-1 result success || fail "newer deployment not done"
  keelc deploy list || fail "deploy list"
  keel_has keel.out "SUCCEEDED"
  ;;
ota_fleet)
  # Three devices: a tag reaches two of them, --all all three; one of them gets an app that
  # crashes on start and rolls back by itself; `deploy status --watch` follows to the end.
  ota_app v1 1 1; ota_app v2 1 2; ota_app v3 2 1
  bundle v1 v1 1.0.0; bundle v2 v2 1.1.0; bundle v3 v3 2.0.0
  for d in dev-1 dev-2 dev-3; do simu "$d" --install "$WORK/v1.kb" logs:1:installed >/dev/null; done
  for d in dev-1 dev-2; do
    api PATCH "/v1/devices/$d" '{"tags":{"ring":"beta"}}' >/dev/null || fail "tag $d"
  done
  keelc deploy "$WORK/v2.kb" --tag ring=beta --json || fail "deploy by tag: $(cat "$WORK/keel.err")"
  DEP="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/keel.out")"
  api GET "/v1/deployments/$DEP" >/dev/null
  expect_json '[d["device"] for d in j["devices"]]' "['dev-1', 'dev-2']" "tag target"
  for d in dev-1 dev-2; do simu "$d" update:120 >"$WORK/sim-$d.out" 2>&1 & PIDS+=($!); done
  simu dev-3 logs:1:untouched >"$WORK/sim-dev-3.out"
  KEEL_URL="$URL" timeout 150 "$KEEL" deploy status "$DEP" --watch >"$WORK/watch.out" 2>&1 ||
    fail "watch of the tag deployment: $(cat "$WORK/watch.out")"
  grep -q "2 succeeded, 0 failed" "$WORK/watch.out" || fail "tag summary: $(cat "$WORK/watch.out")"
  ! grep -q update-offer "$WORK/sim-dev-3.out" || fail "dev-3 (not tagged) got an offer"
  keelc deploy "$WORK/v3.kb" --all --json || fail "deploy --all"
  DEP="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/keel.out")"
  simu dev-1 update:120 >"$WORK/sim-dev-1.out" 2>&1 & PIDS+=($!)
  simu dev-2 --trial crash update:120 >"$WORK/sim-dev-2.out" 2>&1 & PIDS+=($!)
  simu dev-3 update:120 >"$WORK/sim-dev-3.out" 2>&1 & PIDS+=($!)
  rc=0
  KEEL_URL="$URL" timeout 150 "$KEEL" deploy status "$DEP" --watch >"$WORK/watch.out" 2>&1 || rc=$?
  [ "$rc" = 1 ] || fail "watch should exit 1 when a device failed, got $rc: $(cat "$WORK/watch.out")"
  grep -q "3 devices: 2 succeeded, 1 failed" "$WORK/watch.out" || fail "summary: $(cat "$WORK/watch.out")"
  grep -q "the new app crashed during its trial: rolled back to 1.1.0" "$WORK/watch.out" ||
    fail "rollback reason not shown: $(cat "$WORK/watch.out")"
  expect_dev "$DEP" dev-2 result update_failed
  expect_dev "$DEP" dev-1 installed_version 2.0.0
  wait_for 10 get_has /v1/devices/dev-2 '"app_version":"1.1.0"' || fail "dev-2 did not come back on 1.1.0"
  wait_for 10 get_has /v1/devices/dev-3 '"app_version":"2.0.0"' || fail "dev-3 not on 2.0.0"
  ;;
ota_reliable)
  # protocol.md P1 and P2: a final status lost on the way is re-sent until keeld acks it; the
  # same status many times is recorded once and acked each time; a device whose final status
  # never arrived (it "rebooted") is closed out from its hello and never offered the bundle again.
  ota_app v1 1 1; ota_app v2 1 2; ota_app v3 2 1
  bundle v1 v1 1.0.0; bundle v2 v2 1.1.0; bundle v3 v3 2.0.0
  for b in v1 v2 v3; do upload "$b" >/dev/null || fail "upload $b: $CODE"; done
  for d in dev-1 dev-2; do simu "$d" --install "$WORK/v1.kb" logs:1:installed >/dev/null; done
  # finals DEP DEVICE: how many final events the deployment's history holds for the device.
  finals() {
    api GET "/v1/deployments/$1" >/dev/null &&
      json "len([e for e in j['events'] if e['device'] == '$2' and e['state'] == 'idle' and e['result'] != 'initial'])"
  }
  # 1. Lost: the final status (a refusal: no hello can settle it) never reaches the broker; the
  # device re-sends it until acked.
  # (dev-1 says it is another device type than its board: keeld would refuse a bundle of a type
  # no targeted board has, so the device's own refusal needs a device that disagrees.)
  bundle wrongtype v2 1.1.0 --counter 1
  upload wrongtype >/dev/null || fail "upload wrongtype: $CODE"
  deploy wrongtype '"device":"dev-1"'
  simu dev-1 --device-type 0x999 --lose-final 1 update:90 update-acked:30 >"$WORK/sim.out" ||
    fail "lost status: $(tail -5 "$WORK/sim.out")"
  grep -q "update-status-lost $DEP" "$WORK/sim.out" || fail "the final status was not lost: $(cat "$WORK/sim.out")"
  grep -q "update-status-resend" "$WORK/sim.out" || fail "the lost status was not re-sent"
  ACKED="$(sed -n 's/^update-status-acked //p' "$WORK/sim.out" | tail -1)"
  [ -n "$ACKED" ] && grep -q "^update-status-sent $ACKED$" "$WORK/sim.out" || fail "no ack of a sent status"
  expect_dev "$DEP" dev-1 phase done
  expect_dev "$DEP" dev-1 result unsupported_package
  expect_dev "$DEP" dev-1 detail "built for device type 0x505, this is 0x999"
  [ "$(finals "$DEP" dev-1)" = 1 ] || fail "lost status: $(finals "$DEP" dev-1) final events"
  # keeld learnt type 0x999 from that hello (it would refuse v3 for dev-1): the real type again.
  simu dev-1 heartbeat >/dev/null || fail "hello after the wrong type"
  wait_for 10 get_has /v1/devices/dev-1 '"device_type":1285' || fail "keeld kept device type 0x999"
  # 2. Repeated: every status three times; one final event, every copy acked.
  deploy v3 '"device":"dev-1"'
  simu dev-1 --repeat-status 3 update:120 update-acked:30 >"$WORK/sim.out" ||
    fail "repeated status: $(tail -5 "$WORK/sim.out")"
  LAST3="$(sed -n '/^update-status [0-9]* idle success/,$p' "$WORK/sim.out" | sed -n 's/^update-status-sent //p')"
  [ "$(echo "$LAST3" | wc -w)" = 3 ] || fail "the final status was not sent 3 times: $(cat "$WORK/sim.out")"
  for id in $LAST3; do
    wait_for 10 grep -q "^ack $id$" "$WORK/sim.out" || grep -q "^ack $id$" "$WORK/sim.out" ||
      fail "copy $id of the final status was not acked: $(cat "$WORK/sim.out")"
  done
  expect_dev "$DEP" dev-1 result success
  expect_dev "$DEP" dev-1 installed_version 2.0.0
  [ "$(finals "$DEP" dev-1)" = 1 ] || fail "repeated status: $(finals "$DEP" dev-1) final events"
  api GET "/v1/deployments/$DEP" >/dev/null
  expect_json 'j["summary"]["succeeded"]' 1 "one success for three copies"
  # 3. Reconciled: dev-2 installs v2 and its final status is lost; the hello it sends from the
  # new app (as after the reboot into it) shows v2's region: done. It goes away before any
  # resend, comes back, and is never offered v2 again.
  deploy v2 '"device":"dev-2"'
  simu dev-2 --lose-final 1 update:90 >"$WORK/sim.out" || fail "dev-2 v2: $(tail -5 "$WORK/sim.out")"
  grep -q "update-status-lost $DEP" "$WORK/sim.out" || fail "dev-2's final was not lost"
  wait_for 10 dev_is "$DEP" dev-2 phase done || fail "dev-2 not reconciled from its hello"
  expect_dev "$DEP" dev-2 result success
  expect_dev "$DEP" dev-2 detail "reconciled from hello"
  OFFERS="$(dev_field "$DEP" dev-2 offers)"
  simu dev-2 logs:1:rebooted >"$WORK/sim2.out" || fail "dev-2 after the reboot: $(cat "$WORK/sim2.out")"
  expect_dev "$DEP" dev-2 offers "$OFFERS"
  ! grep -q "update-offer" "$WORK/sim2.out" || fail "dev-2 was offered the bundle it runs: $(cat "$WORK/sim2.out")"
  [ "$(finals "$DEP" dev-2)" = 0 ] || fail "reconciled row got a status event"
  ;;
ingest_pressure)
  # 1,000 log batches (8,000 entries) back to back into a 16-message ingest queue: keeld stops
  # reading from the broker while its queue is full (the broker queues for its session), and in
  # the end every entry is stored once and the last batch acked (simdev waits for that ack).
  sim dev-1 flood:1000 >"$WORK/sim.out" || fail "flood: $(tail -3 "$WORK/sim.out")"
  grep -q "ingest queue full" "$WORK/keeld1.log" || fail "the ingest queue never filled: no back-pressure tested"
  count_logs() { api GET "/v1/logs?device=dev-1&limit=1000&after=$1" >/dev/null && json 'len(j["logs"])'; }
  total=0; after=0
  for _ in $(seq 1 12); do
    n="$(count_logs "$after")"; [ "$n" = 0 ] && break
    total=$((total + n)); after="$(json 'j["logs"][-1]["id"]')"
  done
  [ "$total" = 8000 ] || fail "stored $total log entries of 8000"
  ;;
ota_admission)
  # A deployment to three online devices is created at once (nothing offered inside the POST);
  # admission then lets one device download at a time (--max-downloads 1); all three finish.
  # GET /metrics shows it, in the Prometheus text format.
  ota_app v1 1 1; ota_app v3 2 1
  bundle v1 v1 1.0.0; bundle v3 v3 2.0.0
  upload v3 >/dev/null || fail "upload v3: $CODE"
  SIMS=()
  for d in dev-1 dev-2 dev-3; do
    simu "$d" --install "$WORK/v1.kb" logs:1:installed >/dev/null
    simu_bg "$d" --pace 300 update:240 update-acked:60
  done
  for d in dev-1 dev-2 dev-3; do
    wait_for 30 grep -q "^connected" "$WORK/sim-$d.out" || fail "$d did not connect"
  done
  deploy v3 '"all":true'
  grep -q "deployment $DEP created; 0 devices already run its bundle; offers follow at the admission rate" "$WORK/keeld1.log" ||
    fail "the POST did not leave the offers to admission"
  # metric NAME: its value in a fresh scrape (the sample without labels, or NAME{...} exactly).
  metric() {
    curl -s -H "Authorization: Bearer $TOKEN" "$URL/metrics" >"$WORK/metrics" &&
      python3 -c 'import sys
for l in open(sys.argv[1]):
    if l.startswith(sys.argv[2] + " "): print(l.split()[1])' "$WORK/metrics" "$1"
  }
  # Sample the admission gauges (one scrape each round) until all three succeeded.
  downloading_max=0; SEEN_WAITING=0; finished=0
  for _ in $(seq 1 600); do
    curl -s -H "Authorization: Bearer $TOKEN" "$URL/metrics" >"$WORK/metrics"
    read -r pending downloading < <(python3 -c 'import sys
v = {l.split()[0]: l.split()[1] for l in open(sys.argv[1]) if l.startswith("keeld_admission_")}
print(int(float(v.get("keeld_admission_pending", "0"))), int(float(v.get("keeld_admission_downloading", "0"))))' "$WORK/metrics")
    [ "$downloading" -gt "$downloading_max" ] && downloading_max="$downloading"
    [ "$pending" -ge 1 ] && SEEN_WAITING=1
    api GET "/v1/deployments/$DEP" >/dev/null && [ "$(json 'j["summary"]["succeeded"]')" = 3 ] && { finished=1; break; }
    sleep 0.1
  done
  [ "$finished" = 1 ] || fail "the rollout did not finish: $(cat "$WORK/body")"
  [ "$downloading_max" -le 1 ] || fail "$downloading_max devices downloaded at once with --max-downloads 1"
  [ "$SEEN_WAITING" = 1 ] || fail "no device was ever seen waiting for its turn"
  # One at a time, from keeld's own history: each device's download (its first "downloading"
  # status to its "downloaded") ends before the next one's begins.
  api GET "/v1/deployments/$DEP" >/dev/null
  python3 - "$WORK/body" <<'PY' || fail "downloads overlapped: $(cat "$WORK/body")"
import json, sys
ev = json.load(open(sys.argv[1]))["events"]
span = {}
for e in ev:
    d = span.setdefault(e["device"], [None, None])
    if e["state"] == "downloading":
        d[0] = e["received_ms"] if d[0] is None else min(d[0], e["received_ms"])
    if e["state"] == "downloaded":
        d[1] = e["received_ms"] if d[1] is None else max(d[1], e["received_ms"])
s = sorted(span.values())
assert len(s) == 3 and all(a is not None and b is not None for a, b in s), span
assert all(s[i][1] <= s[i + 1][0] for i in range(2)), span
PY
  i=0
  for pid in "${SIMS[@]}"; do i=$((i + 1)); wait "$pid" || fail "dev-$i: $(tail -5 "$WORK/sim-dev-$i.out")"; done
  # The scrape: well-formed, and the figures of this rollout.
  metric keeld_mqtt_connected >/dev/null
  python3 - "$WORK/metrics" <<'PY' || fail "malformed /metrics: $(head -20 "$WORK/metrics")"
import re, sys
names = set()
for l in open(sys.argv[1]):
    l = l.rstrip("\n")
    if l.startswith("# HELP ") or l.startswith("# TYPE "):
        assert re.match(r"# (HELP|TYPE) keeld_[a-z_]+ \S", l), l
        continue
    m = re.match(r'(keeld_[a-z_]+)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (\S+)$', l)
    assert m, l
    float(m.group(4))
    names.add(m.group(1))
for n in ["keeld_mqtt_messages_received_total", "keeld_ingest_queue_depth", "keeld_store_commits_total",
          "keeld_ota_chunks_served_total", "keeld_devices_connected", "keeld_deployment_bytes_sent",
          "keeld_ingest_queue_oldest_seconds", "keeld_store_read_seconds"]:
    assert n in names, n
PY
  [ "$(metric keeld_mqtt_connected)" = 1 ] || fail "keeld_mqtt_connected"
  [ "$(metric keeld_devices)" = 3 ] || fail "keeld_devices: $(metric keeld_devices)"
  [ "$(metric keeld_admission_offers_total)" = 3 ] || fail "admission offers: $(metric keeld_admission_offers_total)"
  SENT="$(metric "keeld_deployment_bytes_sent{deployment=\"$DEP\"}")"
  [ "$SENT" -ge $((3 * $(stat -c %s "$WORK/v3.kb"))) ] || fail "bytes sent for the deployment: '$SENT'"
  [ "$(metric keeld_ota_chunk_bytes_total)" = "$SENT" ] || fail "chunk bytes $(metric keeld_ota_chunk_bytes_total) vs deployment $SENT"
  python3 -c 'import sys; assert float(sys.argv[1]) > 0' "$(metric keeld_store_commits_total)" || fail "no commits counted"
  CODE="$(curl -s -o /dev/null -w '%{http_code}' "$URL/metrics")"
  [ "$CODE" = 401 ] || fail "/metrics without a token: $CODE"
  ;;
brokers)
  # keeld on two brokers: each device connects to the broker its id maps to (FNV-1a of the id,
  # modulo 2, as kproto_broker_index), and keeld reaches every device there; health lists both
  # and turns 503 naming the one that is down.
  broker_of() { python3 -c 'import sys
h = 2166136261
for c in sys.argv[1].encode(): h = ((h ^ c) * 16777619) & 0xffffffff
print(h % 2)' "$1"; }
  PORTS=("$MQTT_PORT" "$MQTT_PORT2")
  for d in dev-1 dev-2 dev-3; do
    p="${PORTS[$(broker_of "$d")]}"
    sim "$d" --port "$p" logs:1:hello-from-$d >/dev/null || fail "$d on broker port $p"
  done
  [ "$(broker_of dev-1)$(broker_of dev-2)$(broker_of dev-3)" != 000 ] &&
    [ "$(broker_of dev-1)$(broker_of dev-2)$(broker_of dev-3)" != 111 ] || fail "all devices on one broker: no test"
  for d in dev-1 dev-2 dev-3; do
    get_has "/v1/devices/$d" '"online":true' || fail "$d not registered through its broker"
    p="${PORTS[$(broker_of "$d")]}"
    bg_out "$WORK/sim-$d.out"
    sim "$d" --port "$p" serve-one:30 >>"$WORK/sim-$d.out" 2>&1 &
    SP=$!; PIDS+=("$SP")
    wait_for 10 grep -q "^connected" "$WORK/sim-$d.out" || fail "$d did not connect"
    api POST /v1/commands "{\"device\":\"$d\",\"kind\":\"ping\"}" >/dev/null || fail "ping $d: $CODE"
    wait "$SP" || fail "$d never got its ping (published on the wrong broker?): $(cat "$WORK/sim-$d.out")"
  done
  curl -s -o "$WORK/body" "$URL/v1/health"
  expect_json '[b["mqtt"] for b in j["brokers"]]' "['connected', 'connected']" "both brokers in health"
  kill "$MOSQ2_PID"; wait "$MOSQ2_PID" 2>/dev/null || true
  wait_for 15 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$URL/v1/health')\" = 503 ]" ||
    fail "health not 503 with the second broker down"
  curl -s -o "$WORK/body" "$URL/v1/health"
  expect_json 'j["mqtt_error"].startswith("127.0.0.1:'"$MQTT_PORT2"'")' true "the error names the broker that is down"
  start_broker2
  wait_for 30 mqtt_is connected || fail "keeld did not reconnect to the second broker"
  ;;
listings)
  # Pages and filters: devices (cursor, online, tag), crashes (before), a deployment's rows
  # (phase, limit/cursor) and its watch of changes; the CLI reads every page.
  bash "$STACK" certs "$WORK" dev-4 dev-5 >/dev/null
  for d in dev-1 dev-2 dev-3 dev-4; do sim "$d" crash >/dev/null || fail "sim $d"; done
  # dev-5 goes away without a clean disconnect: its last will says offline.
  bg_out "$WORK/sim5.out"
  "$SIMDEV" --port "$MQTT_PORT" --ca "$WORK/ca.pem" --cert "$WORK/dev-5.pem" --key "$WORK/dev-5.key" \
    --id dev-5 serve:60 >>"$WORK/sim5.out" 2>&1 &
  SIM5=$!; PIDS+=("$SIM5")
  wait_for 10 get_has /v1/devices/dev-5 '"online":true' || fail "dev-5 not online"
  kill -9 "$SIM5"
  wait_for 10 get_has /v1/devices/dev-5 '"online":false' || fail "dev-5 still online"
  api PATCH /v1/devices/dev-2 '{"tags":{"ring":"beta"}}' >/dev/null || fail "tag dev-2"
  api PATCH /v1/devices/dev-4 '{"tags":{"ring":"beta site"}}' >/dev/null || fail "tag dev-4"
  ids() { json '",".join(d["id"] for d in j["devices"])'; }
  api GET "/v1/devices?limit=2" >/dev/null || fail "page 1: $CODE"
  [ "$(ids)" = dev-1,dev-2 ] && [ "$(json 'j["next"]')" = dev-2 ] || fail "page 1: $(cat "$WORK/body")"
  api GET "/v1/devices?limit=2&after=dev-2" >/dev/null
  [ "$(ids)" = dev-3,dev-4 ] && [ "$(json 'j["next"]')" = dev-4 ] || fail "page 2: $(cat "$WORK/body")"
  api GET "/v1/devices?limit=2&after=dev-4" >/dev/null
  [ "$(ids)" = dev-5 ] && [ "$(json 'j["next"]')" = None ] || fail "last page: $(cat "$WORK/body")"
  api GET "/v1/devices?online=false" >/dev/null; [ "$(ids)" = dev-5 ] || fail "offline filter: $(ids)"
  api GET "/v1/devices?online=true&limit=3" >/dev/null; [ "$(ids)" = dev-1,dev-2,dev-3 ] || fail "online filter: $(ids)"
  api GET "/v1/devices?tag=ring" >/dev/null; [ "$(ids)" = dev-2,dev-4 ] || fail "tag filter: $(ids)"
  api GET "/v1/devices?tag=ring%3Dbeta%20site" >/dev/null; [ "$(ids)" = dev-4 ] || fail "tag=value filter: $(ids)"
  for bad in "limit=0" "limit=1001" "after=no%20id" "online=maybe" "tag=%3Dx"; do
    api GET "/v1/devices?$bad" >/dev/null && fail "accepted ?$bad"
    [ "$CODE" = 400 ] || fail "?$bad: $CODE"
  done
  KEEL_URL="$URL" timeout 60 "$KEEL" devices --tag "ring=beta site" >"$WORK/keel.out" 2>&1 || fail "keel devices --tag: $(cat "$WORK/keel.out")"
  grep -q "^dev-4 " "$WORK/keel.out" && ! grep -q "^dev-2 " "$WORK/keel.out" || fail "keel devices --tag: $(cat "$WORK/keel.out")"
  KEEL_URL="$URL" timeout 60 "$KEEL" devices --offline --json >"$WORK/keel.out" 2>&1 || fail "keel devices --offline"
  python3 -c 'import json,sys; assert [d["id"] for d in json.load(open(sys.argv[1]))["devices"]] == ["dev-5"]' \
    "$WORK/keel.out" || fail "keel devices --offline: $(cat "$WORK/keel.out")"
  # Crashes, newest first, a page of 3 then the rest.
  api GET "/v1/crashes?limit=3" >/dev/null
  crash_ids() { json '",".join(str(c["id"]) for c in j["crashes"])'; }
  [ "$(crash_ids)" = 4,3,2 ] && [ "$(json 'j["next"]')" = 2 ] || fail "crash page 1: $(cat "$WORK/body")"
  api GET "/v1/crashes?limit=3&before=2" >/dev/null
  [ "$(crash_ids)" = 1 ] && [ "$(json 'j["next"]')" = None ] || fail "crash page 2: $(cat "$WORK/body")"
  # A deployment's rows: phase filter, pages, and the watch of changes.
  ota_app v1 1 1; bundle v1 v1 1.0.0
  upload v1 >/dev/null || fail "upload v1: $CODE"
  deploy v1 '"all":true'
  api GET "/v1/deployments/$DEP?limit=2" >/dev/null
  [ "$(json '",".join(d["device"] for d in j["devices"])')" = dev-1,dev-2 ] && [ "$(json 'j["next"]')" = dev-2 ] ||
    fail "rows page 1: $(cat "$WORK/body")"
  expect_json 'j["summary"]["devices"]' 5 "the summary counts every row, whatever the page"
  api GET "/v1/deployments/$DEP?limit=2&cursor=dev-4" >/dev/null
  [ "$(json '",".join(d["device"] for d in j["devices"])')" = dev-5 ] || fail "rows page 3: $(cat "$WORK/body")"
  REV="$(json 'j["rev"]')"
  api GET "/v1/deployments/$DEP?after=$REV&wait=0&changes=1" >/dev/null
  expect_json 'len(j["devices"])' 0 "no changes since the rev just read"
  expect_json '"events" in j' false "a changes answer has no history"
  # dev-3 says hello: admission offers it (its row changes); only that row comes back.
  bg_out "$WORK/sim3.out"
  "$SIMDEV" --port "$MQTT_PORT" --ca "$WORK/ca.pem" --cert "$WORK/dev-3.pem" --key "$WORK/dev-3.key" \
    --id dev-3 --flash "$WORK/flash-dev-3" --update-key "$WORK/keys/fleet.pub" serve:20 >>"$WORK/sim3.out" 2>&1 &
  PIDS+=($!)
  api GET "/v1/deployments/$DEP?after=$REV&wait=20&changes=1" >/dev/null
  expect_json '[d["device"] for d in j["devices"]]' "['dev-3']" "only the changed row"
  api GET "/v1/deployments/$DEP?phase=pending" >/dev/null
  expect_json '"dev-3" in [d["device"] for d in j["devices"]]' false "phase filter"
  api GET "/v1/deployments/$DEP?phase=bogus" >/dev/null && fail "a bogus phase accepted"
  [ "$CODE" = 400 ] || fail "bogus phase: $CODE"
  ;;
chaos_rollout)
  # A rollout to six devices over a slow link, with the broker restarted and then keeld killed
  # with -9 in the middle: every device ends with one final result recorded, installed once, and
  # fetched every byte of the bundle once (resumed, never restarted).
  bash "$STACK" certs "$WORK" dev-4 dev-5 dev-6 >/dev/null
  DEVS="dev-1 dev-2 dev-3 dev-4 dev-5 dev-6"
  ota_app v1 1 1; ota_app v3 2 1
  bundle v1 v1 1.0.0; bundle v3 v3 2.0.0
  upload v3 >/dev/null || fail "upload v3: $CODE"
  for d in $DEVS; do simu "$d" --install "$WORK/v1.kb" logs:1:installed >/dev/null; done
  deploy v3 '"all":true'
  SIMS=()
  for d in $DEVS; do simu_bg "$d" --pace 500 update:240 update-acked:60; done
  all_ge() { for d in $DEVS; do dev_ge "$DEP" "$d" blocks_staged "$1" || return 1; done; }
  wait_for 120 all_ge 2 || fail "the rollout did not start on every device"
  chaos_broker_restart || fail "broker restart"
  for d in $DEVS; do
    wait_for 30 grep -q "^reconnected" "$WORK/sim-$d.out" || fail "$d did not reconnect: $(tail -5 "$WORK/sim-$d.out")"
  done
  api GET "/v1/deployments/$DEP" >/dev/null
  [ "$(json 'j["summary"]["succeeded"]')" -lt 6 ] || fail "the rollout ended before keeld was killed"
  chaos_keeld_kill9 || fail "keeld kill -9"
  i=0
  for pid in "${SIMS[@]}"; do
    i=$((i + 1))
    wait "$pid" || fail "device $i did not finish: $(tail -8 "$WORK/sim-dev-$i.out")"
  done
  SIZE="$(stat -c %s "$WORK/v3.kb")"
  for d in $DEVS; do
    wait_for 10 dev_is "$DEP" "$d" phase done || fail "$d: no final result recorded"
    expect_dev "$DEP" "$d" result success
    expect_dev "$DEP" "$d" bytes_fetched "$SIZE"
    api GET "/v1/deployments/$DEP" >/dev/null
    n="$(json "len([e for e in j['events'] if e['device'] == '$d' and e['state'] == 'idle' and e['result'] != 'initial'])")"
    [ "$n" -le 1 ] || fail "$d: $n final results recorded"
    n="$(grep -c "update-status $DEP updating initial 0 applying" "$WORK/sim-$d.out")"
    [ "$n" = 1 ] || fail "$d installed the bundle $n times"
  done
  api GET "/v1/deployments/$DEP" >/dev/null
  expect_json 'j["summary"]["succeeded"]' 6 "all six succeeded"
  ;;
ota_stall)
  # keeld stalls mid-download (SIGSTOP): the device's fetches go unanswered, and it asks again
  # (P3) while its first asks wait at the broker. keeld, running again, finds the first ask and
  # its re-asks queued together: it sends every chunk once (protocol.md P3, chunkmemo.h), and the
  # device gets every byte it needs.
  ota_app v1 1 1; ota_app v3 2 1
  bundle v1 v1 1.0.0; bundle v3 v3 2.0.0
  upload v3 >/dev/null || fail "upload v3: $CODE"
  simu dev-1 --install "$WORK/v1.kb" logs:1:installed >/dev/null
  deploy v3 '"device":"dev-1"'
  SIMS=()
  simu_bg dev-1 --pace 300 update:240 update-acked:60
  SIM="${SIMS[0]}"
  wait_for 60 grep -q "^update-status $DEP downloading" "$WORK/sim-dev-1.out" || fail "the download did not start"
  re_asks() { grep -c '^update-fetch-again' "$WORK/sim-dev-1.out" || true; }
  re_asked() { [ "$(re_asks)" -ge "$1" ]; }
  # Two rounds of re-asks while stalled (2 s, then 4 s later): the broker holds three asks of
  # each chunk in flight.
  chaos_keeld_stall re_asked $(($(re_asks) + 2)) || fail "the device did not ask again while keeld was stalled"
  wait "$SIM" || fail "the device did not finish: $(tail -5 "$WORK/sim-dev-1.out")"
  SIZE="$(stat -c %s "$WORK/v3.kb")"
  wait_for 10 dev_is "$DEP" dev-1 phase done || fail "no final result recorded"
  expect_dev "$DEP" dev-1 result success
  expect_dev "$DEP" dev-1 bytes_fetched "$SIZE"
  # Evidence the re-asks reached keeld, then the promise: nothing was sent twice.
  curl -s -H "Authorization: Bearer $TOKEN" "$URL/metrics" >"$WORK/metrics"
  dups="$(sed -n 's/^keeld_ota_fetch_duplicates_total //p' "$WORK/metrics")"
  [ "${dups%%.*}" -ge 1 ] 2>/dev/null || fail "keeld saw no repeated fetch ($dups): the stall proved nothing"
  expect_dev "$DEP" dev-1 bytes_sent "$SIZE"
  ;;
chaos_disk)
  # keeld's database disk fills up while a device downloads and installs: keeld cannot record
  # the final status, so it does not ack it; the device keeps it and re-sends; once the disk has
  # room again it is recorded, once.
  ota_app v1 1 1; ota_app v2 1 2
  bundle v1 v1 1.0.0; bundle v2 v2 1.1.0
  upload v2 >/dev/null || fail "upload v2: $CODE"
  simu dev-1 --install "$WORK/v1.kb" logs:1:installed >/dev/null
  deploy v2 '"device":"dev-1"'
  SIMS=()
  simu_bg dev-1 --pace 300 update:240 update-acked:120
  SIM="${SIMS[0]}"
  ln -s sim-dev-1.out "$WORK/sim.out"
  wait_for 60 grep -q "^update-status $DEP downloading" "$WORK/sim.out" || fail "the download did not start"
  chaos_disk_fill "$WORK/disk" || fail "cannot fill the database disk"
  wait_for 120 grep -q "^update-status $DEP idle success" "$WORK/sim.out" ||
    fail "the device did not install with keeld's disk full: $(tail -5 "$WORK/sim.out")"
  wait_for 30 grep -q "^update-status-resend" "$WORK/sim.out" ||
    fail "the final status was acked with the disk full: $(tail -5 "$WORK/sim.out")"
  grep -q "full" "$WORK/keeld$KEELD_N.log" || fail "keeld did not log the full disk"
  dev_is "$DEP" dev-1 phase done && fail "recorded with the disk full?"
  chaos_disk_free "$WORK/disk"
  wait "$SIM" || fail "the device's status was not acked after the disk had room: $(tail -5 "$WORK/sim.out")"
  wait_for 10 dev_is "$DEP" dev-1 phase done || fail "not recorded after the disk had room"
  expect_dev "$DEP" dev-1 result success
  ;;
*)
  fail "unknown scenario '$SCENARIO'"
  ;;
esac
# keeld stops cleanly and promptly on SIGTERM (even with a live log stream open), with no
# sanitizer finding (leaks included) in its log.
curl -sN --max-time 30 -H "Authorization: Bearer $TOKEN" "$URL/v1/logs/stream" >"$WORK/stream-end" 2>/dev/null &
PIDS+=($!)
wait_for 10 grep -q "keel log stream" "$WORK/stream-end" || fail "log stream did not open"
kill -TERM "$KEELD_PID"
wait_for 15 bash -c "! kill -0 $KEELD_PID" || fail "keeld still running 15 s after SIGTERM"
rc=0
wait "$KEELD_PID" || rc=$?
[ "$rc" = 0 ] || fail "keeld exited with $rc on SIGTERM"
if grep -q "Sanitizer" "$WORK"/keeld*.log; then fail "sanitizer report in keeld's log"; fi
echo "PASS: server.$SCENARIO"
