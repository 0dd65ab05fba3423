# scripts/fleetload_lib.sh: the fleet stack for fleetsim runs, sourced by tests/fleetsim and
# scripts/bench-fleet-load.sh. The caller sets ROOT, WORK, KEELD, KEEL, FLEETSIM, an array PIDS
# (everything started here is appended; the caller stops them on exit) and fail().
#
#   fl_stack [KEELD_ARGS...]   certificates, fleet keys, Mosquitto (scripts/stack.sh, the same
#                              configuration keel up writes), keeld trusting fleet.pub; sets
#                              MQTT_PORT, URL, TOKEN, KEELD_PID, MOSQ_PID
#   fl_broker_start / fl_broker_kill   (re)start Mosquitto on MQTT_PORT / kill -9 it
#   fl_keeld_start [ARGS...] / fl_keeld_kill   (re)start keeld on the same database / kill -9 it
#   fl_apps                    v1.kb (1.0.0) and v2.kb (1.1.0): the OTA fixture app with one
#                              function changed (the header page and one image page differ)
#   fl_sim NAME COUNT FIRST [ARGS...]  fleetsim in the background: devices dev-FIRST.., factory
#                              app v1, its output in WORK/NAME.out, control FIFO WORK/NAME.ctl;
#                              sets SIM_PID
#   fl_stat NAME FIELD         FIELD of NAME's last stats line
#   fl_ctl NAME COMMAND...     a control command (then waits for its echo when it has one)
#   fl_deploy KB               upload and deploy to all devices; sets DEP
#   fl_summary FIELD           FIELD of deployment DEP's summary
FL_STACK="$ROOT/scripts/stack.sh"
FL_FIXTURES="$ROOT/tests/server/fixtures"

fl_wait_for() { # SECONDS CMD...
  local secs="$1" i; shift
  for ((i = 0; i < secs * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}
fl_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
fl_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
fl_alive() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ "$st" != Z ] && [ "$st" != X ]; }

fl_broker_start() {
  mosquitto -c "$WORK/mosquitto.conf" >>"$WORK/mosquitto.out" 2>&1 &
  MOSQ_PID=$!
  PIDS+=("$MOSQ_PID")
  fl_wait_for 20 fl_port_open "$MQTT_PORT" || fail "mosquitto did not start (see $WORK/mosquitto.log)"
}
fl_broker_kill() {
  kill -9 "$MOSQ_PID" 2>/dev/null || true
  wait "$MOSQ_PID" 2>/dev/null || true
}
fl_mqtt_is() { curl -s "$URL/v1/health" | grep -q "\"mqtt\":\"$1\""; }
FL_KEELD_ARGS=()
fl_keeld_start() {
  rm -f "$WORK/port"
  "$KEELD" --db "$WORK/keeld.db" --http-port 0 --port-file "$WORK/port" --mqtt-port "$MQTT_PORT" \
    --mqtt-ca "$WORK/ca.pem" --mqtt-cert "$WORK/keeld.pem" --mqtt-key "$WORK/keeld.key" \
    --update-key "$WORK/keys/fleet.pub" "${FL_KEELD_ARGS[@]}" >>"$WORK/keeld.log" 2>&1 &
  KEELD_PID=$!
  PIDS+=("$KEELD_PID")
  fl_wait_for 30 test -s "$WORK/port" || fail "keeld did not start (see $WORK/keeld.log)"
  URL="http://127.0.0.1:$(cat "$WORK/port")"
  fl_wait_for 30 fl_mqtt_is connected || fail "keeld did not connect to the broker"
}
fl_keeld_kill() {
  kill -9 "$KEELD_PID" 2>/dev/null || true
  wait "$KEELD_PID" 2>/dev/null || true
}

fl_stack() {
  FL_KEELD_ARGS=("$@")
  bash "$FL_STACK" certs "$WORK" broker keeld >/dev/null
  "$KEEL" keys new fleet --dir "$WORK/keys" >/dev/null || fail "keel keys new"
  MQTT_PORT="$(fl_free_port)"
  bash "$FL_STACK" broker-conf "$WORK" "$MQTT_PORT"
  fl_broker_start
  TOKEN="$("$KEELD" token create --db "$WORK/keeld.db" --name fleetload)"
  fl_keeld_start "$@"
}

fl_app() { # DIR SEED CHANGE
  mkdir -p "$WORK/$1"
  python3 -c "import random,sys; open(sys.argv[1],'wb').write(random.Random($2).randbytes(200*1024))" \
    "$WORK/blob$2"
  "${ARM_GCC:-arm-none-eabi-gcc}" -mcpu=cortex-m33 -mthumb -nostdlib -O1 -Wl,-n \
    -Wl,--defsym=CODE_ORIGIN=0x00200000 -DCHANGE="$3" -DBLOB_FILE="\"$WORK/blob$2\"" \
    -T "$FL_FIXTURES/ota_app.ld" -o "$WORK/$1/app.elf" "$FL_FIXTURES/ota_app.c" || fail "cannot build $1"
}
fl_apps() {
  fl_app a1 7 1
  fl_app a2 7 2
  "$KEEL" bundle build "$WORK/a1/app.elf" --version 1.0.0 --key "$WORK/keys/fleet.key" -o "$WORK/v1.kb" \
    >/dev/null || fail "bundle v1"
  "$KEEL" bundle build "$WORK/a2/app.elf" --version 1.1.0 --key "$WORK/keys/fleet.key" -o "$WORK/v2.kb" \
    >/dev/null || fail "bundle v2"
}

fl_sim() { # NAME COUNT FIRST [ARGS...]
  local name="$1" count="$2" first="$3"; shift 3
  rm -f "$WORK/$name.ctl"
  mkfifo "$WORK/$name.ctl"
  "$FLEETSIM" --port "$MQTT_PORT" --ca "$WORK/ca.pem" --ca-key "$WORK/ca.key" --count "$count" \
    --first "$first" --install "$WORK/v1.kb" --update-key "$WORK/keys/fleet.pub" \
    --control "$WORK/$name.ctl" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
}
fl_stat() { # NAME FIELD
  grep '^stats ' "$WORK/$1.out" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}
fl_ctl() { # NAME COMMAND...
  local n
  n=$(grep -c '' "$WORK/$1.out" || true)
  echo "${*:2}" >"$WORK/$1.ctl"
  case "$2" in
  stats) fl_wait_for 20 bash -c "[ \$(grep -c '' '$WORK/$1.out') -gt $n ]" ;;
  dump) fl_wait_for 60 grep -q "^dumped $3" "$WORK/$1.out" ;;
  *) fl_wait_for 20 grep -q "^$2 " "$WORK/$1.out" ;;
  esac
}
fl_api() { # METHOD PATH [JSON]: the body on stdout; fails for non-2xx
  local args=(-s -o "$WORK/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN")
  [ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
  local code
  code="$(curl "${args[@]}" "$URL$2")"
  cat "$WORK/body"
  [[ "$code" == 2* ]]
}
fl_deploy() { # KB
  local code sha
  code="$(curl -s -o "$WORK/body" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
    --data-binary "@$WORK/$1" "$URL/v1/bundles")"
  [[ "$code" == 2* ]] || fail "upload $1: $code $(cat "$WORK/body")"
  sha="$(sha256sum "$WORK/$1" | cut -d' ' -f1)"
  fl_api POST /v1/deployments "{\"bundle\":\"$sha\",\"all\":true}" >/dev/null ||
    fail "deploy $1: $(cat "$WORK/body")"
  DEP="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/body")"
}
fl_summary() { # FIELD
  fl_api GET "/v1/deployments/$DEP?limit=1" >/dev/null &&
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"][sys.argv[2]])' "$WORK/body" "$1"
}
fl_online() { # the number of devices keeld has online (GET /v1/devices pages 1,000 at a time)
  fl_api GET /metrics >/dev/null && sed -n 's/^keeld_devices_connected \([0-9]*\).*/\1/p' "$WORK/body"
}
