# Rollout scenarios of server_test.sh (sourced by it: its broker, keeld, simdev and keel helpers).
# Each waits for evidence (the rollout's state and transitions through the REST API), never fixed
# times; devices are simdev processes running the real update engine.

# ro_create JSON: POST /v1/rollouts; RO is its id.
ro_create() {
  api POST /v1/rollouts "$1" >/dev/null || fail "create rollout: $CODE $(cat "$WORK/body")"
  RO="$(json 'j["id"]')"
}
# ro_is ID EXPR VALUE: the rollout's EXPR (python over j) is VALUE.
ro_is() { api GET "/v1/rollouts/$1" >/dev/null && [ "$(json "$2")" = "$3" ]; }
ro_state() { ro_is "$1" 'j["state"]' "$2"; }
# ro_has ID TEXT: the rollout's current reason contains TEXT (or fail with the rollout).
ro_reason_has() {
  api GET "/v1/rollouts/$1" >/dev/null
  local reason; reason="$(json 'j["reason"]')" # no pipe into grep -q: pipefail fails a writer it cut off
  grep -qF -- "$2" <<<"$reason" || fail "rollout $1: reason lacks '$2': $reason"
}
# ro_devices ID PHASE: the devices of phase PHASE (0-based), space separated.
ro_devices() {
  local dep
  api GET "/v1/rollouts/$1" >/dev/null
  dep="$(json "j['phases'][$2]['deployment_id']")"
  [ "$dep" != None ] || return 0
  api GET "/v1/deployments/$dep" >/dev/null && json '" ".join(d["device"] for d in j["devices"])'
}
# ro_transitions ID: the reasons of its transitions, oldest first, one a line.
ro_transitions() { api GET "/v1/rollouts/$1" >/dev/null && json '"\n".join(t["to_state"] + ": " + t["reason"] for t in reversed(j["transitions"]))'; }
# fleet N: devices dev-1..dev-N registered with app v1 installed; bundles v1 and v2 built, v2 uploaded.
fleet() {
  local i
  DEVS=""
  for ((i = 1; i <= $1; i++)); do DEVS="$DEVS dev-$i"; done
  bash "$STACK" certs "$WORK" $DEVS >/dev/null
  ota_app v1 1 1; ota_app v2 1 2
  bundle v1 v1 1.0.0; bundle v2 v2 1.1.0
  upload v2 >/dev/null || fail "upload v2: $CODE"
  for d in $DEVS; do simu "$d" --install "$WORK/v1.kb" logs:1:installed >/dev/null || fail "install $d"; done
}
# sim_pid ID: the pid simu_bg started for device ID (SIMS follows DEV_OF).
declare -A SIM_OF
simu_dev() { simu_bg "$@"; SIM_OF[$1]="${SIMS[-1]}"; }
wait_sim() { wait "${SIM_OF[$1]}" || fail "$1 did not finish: $(tail -8 "$WORK/sim-$1.out")"; }

rollout_scenario() {
  SIMS=()
  case "$1" in
  rollout_phases)
    # Three phases (1 device, 50 %, the rest) that each wait for the one before to succeed.
    fleet 6
    for d in $DEVS; do simu_dev "$d" update:240 update-acked:30; done
    ro_create "{\"bundle\":\"$(sha_of v2)\",\"all\":true,\"success_pct\":100,\"error_pct\":0,
      \"phases\":[{\"count\":1},{\"percent\":50},{\"percent\":100}]}"
    wait_for 240 ro_state "$RO" completed || fail "rollout not complete: $(ro_transitions "$RO")"
    api GET "/v1/rollouts/$RO" >/dev/null
    expect_json '[p["devices"] for p in j["phases"]]' '[1, 3, 2]' "phase sizes"
    expect_json '[p["succeeded"] for p in j["phases"]]' '[1, 3, 2]' "every device succeeded"
    expect_json '[t["to_state"] for t in reversed(j["transitions"])]' \
      "['running', 'running', 'running', 'running', 'completed']" "transitions"
    grep -qF "phase 2: 3 of 3 succeeded (100% needed); phase 3 started" <<<"$(ro_transitions "$RO")" ||
      fail "transitions: $(ro_transitions "$RO")"
    # A phase starts only once the one before met its gate: its start follows their last result.
    for p in 0 1; do
      api GET "/v1/rollouts/$RO" >/dev/null || fail "GET rollout $RO: $CODE"
      next="$(json "j['phases'][$((p + 1))]['started_ms']")"
      dep="$(json "j['phases'][$p]['deployment_id']")"
      api GET "/v1/deployments/$dep" >/dev/null || fail "GET deployment $dep: $CODE $(cat "$WORK/body")"
      last="$(json 'max(d["status_ms"] for d in j["devices"])')"
      [ -n "$next" ] && [ -n "$last" ] || fail "phase $((p + 2)) start '$next' or phase $((p + 1))'s last result '$last' unknown"
      [ "$next" -ge "$last" ] || fail "phase $((p + 2)) started at $next, before phase $((p + 1))'s last result at $last"
    done
    # Every device in exactly one phase.
    all="$(for p in 0 1 2; do ro_devices "$RO" $p; echo; done | tr ' ' '\n' | grep . | sort | tr '\n' ' ')"
    [ "$all" = "dev-1 dev-2 dev-3 dev-4 dev-5 dev-6 " ] || fail "phases hold '$all'"
    for d in $DEVS; do wait_sim "$d"; done
    # The CLI shows it (and its JSON is the API's).
    keelc rollout status "$RO" || fail "keel rollout status: $(cat "$WORK/keel.err")"
    keel_has keel.out "completed"
    keel_has keel.out "phase 3"
    keelc rollout status "$RO" --watch || fail "keel rollout status --watch of a completed rollout: $(cat "$WORK/keel.err")"
    keel_has keel.out "the last phase: rollout complete"
    keelc rollout list --json || fail "keel rollout list --json: $(cat "$WORK/keel.err")"
    python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['rollouts']; assert r[0]['id']==$RO and r[0]['state']=='completed', r" \
      "$WORK/keel.out" || fail "keel rollout list --json: $(cat "$WORK/keel.out")"
    ;;
  rollout_trial)
    # The canaries (phase 1) succeed; phase 2's devices crash on trial and roll back: the error
    # threshold pauses the rollout, and (on_error rollback) the canaries get the previous bundle.
    fleet 4
    upload v1 >/dev/null || fail "upload v1: $CODE"
    for d in dev-1 dev-2; do api PATCH "/v1/devices/$d" '{"tags":{"ring":"canary"}}' >/dev/null || fail "tag $d"; done
    for d in dev-1 dev-2; do simu_dev "$d" update:240 update-acked:30; done
    for d in dev-3 dev-4; do simu_dev "$d" --trial crash update:240 update-acked:30; done
    ro_create "{\"bundle\":\"$(sha_of v2)\",\"all\":true,\"error_pct\":40,\"min_results\":2,
      \"on_error\":\"rollback\",\"rollback_bundle\":\"$(sha_of v1)\",
      \"phases\":[{\"tag\":\"ring=canary\"},{\"percent\":100}]}"
    wait_for 180 ro_state "$RO" paused || fail "rollout not paused: $(ro_transitions "$RO")"
    ro_reason_has "$RO" "phase 2: 2 of 2 results are errors (100% > 40%): 2 update_failed"
    ro_reason_has "$RO" "rolled back 2 devices (deployment"
    api GET "/v1/rollouts/$RO" >/dev/null
    expect_json 'j["transitions"][0]["actor"]' keeld "keeld paused it"
    expect_json '[p["succeeded"] for p in j["phases"]]' '[2, 0]' "canaries succeeded"
    back="$(json 'j["rollback_deployments"]')"
    [ "$(ro_devices "$RO" 1)" = "dev-3 dev-4" ] || fail "phase 2: $(ro_devices "$RO" 1)"
    # --watch ends with 1 on a paused rollout: someone must act.
    rc=0; keelc rollout status "$RO" --watch --json || rc=$?
    [ "$rc" = 1 ] || fail "keel rollout status --watch of a paused rollout exited $rc"
    python3 -c "import json,sys; r=json.loads(open(sys.argv[1]).read().splitlines()[-1]); assert r['state']=='paused', r" \
      "$WORK/keel.out" || fail "--watch --json: $(cat "$WORK/keel.out")"
    for d in $DEVS; do wait_sim "$d"; done
    for d in dev-3 dev-4; do grep -q "update-status .* idle update_failed" "$WORK/sim-$d.out" ||
      fail "$d did not roll back on trial: $(tail -5 "$WORK/sim-$d.out")"; done
    api GET "/v1/deployments/$back" >/dev/null || fail "rollback deployment $back: $CODE"
    expect_json 'j["target_kind"]' rollback "the rollback deployment"
    expect_json 'j["bundle_sha256"]' "$(sha_of v1)" "the rollback bundle"
    expect_json '" ".join(d["device"] for d in j["devices"])' "dev-1 dev-2" "rolled back devices"
    # The canaries come back and install the previous bundle.
    for d in dev-1 dev-2; do simu_dev "$d" update:240 update-acked:30; done
    for d in dev-1 dev-2; do
      wait_sim "$d"
      wait_for 20 dev_is "$back" "$d" result success || fail "$d not rolled back: $(json "j['devices']")"
    done
    api GET "/v1/devices/dev-1" >/dev/null
    expect_json 'j["app_version"]' 1.0.0 "dev-1 runs v1 again"
    ;;
  rollout_timeout)
    # Devices that take the offer and never report a final result: after device_timeout_s they
    # count as errors, and the rollout pauses.
    fleet 3
    for d in $DEVS; do
      bg_out "$WORK/sim-$d.out"
      "$SIMDEV" --port "$MQTT_PORT" --ca "$WORK/ca.pem" --cert "$WORK/$d.pem" --key "$WORK/$d.key" \
        --id "$d" serve:200 >>"$WORK/sim-$d.out" 2>&1 &
      PIDS+=($!)
    done
    for d in $DEVS; do wait_for 20 get_has "/v1/devices/$d" '"online":true' || fail "$d not online"; done
    ro_create "{\"bundle\":\"$(sha_of v2)\",\"all\":true,\"device_timeout_s\":3,\"error_pct\":50,
      \"min_results\":2,\"phases\":[{\"count\":2},{\"percent\":100}]}"
    wait_for 60 ro_state "$RO" paused || fail "rollout not paused: $(ro_transitions "$RO")"
    ro_reason_has "$RO" "phase 1: 2 of 2 results are errors (100% > 50%): 2 timed out"
    api GET "/v1/rollouts/$RO" >/dev/null
    started="$(json 'j["phases"][0]["started_ms"]')"
    paused="$(json 'j["transitions"][0]["at_ms"]')"
    [ $((paused - started)) -ge 3000 ] || fail "paused $((paused - started)) ms after the phase started (timeout 3 s)"
    expect_json 'j["phases"][0]["timed_out"]' 2 "timed out"
    expect_json 'j["phases"][1]["started_ms"]' None "phase 2 never started"
    dep="$(json 'j["phases"][0]["deployment_id"]')"
    api GET "/v1/deployments/$dep" >/dev/null
    expect_json '[d["phase"] for d in j["devices"]]' "['offered', 'offered']" "offered, no result"
    ;;
  rollout_ops)
    # Bad input first: a bundle no targeted board can install is refused with the reason.
    fleet 4
    bundle alien v2 1.1.0 --device-type 0x999
    upload alien >/dev/null || fail "upload alien: $CODE"
    api POST /v1/deployments "{\"bundle\":\"$(sha_of alien)\",\"all\":true}" >/dev/null && fail "alien deployment accepted"
    [ "$CODE" = 422 ] || fail "alien deployment: $CODE"
    grep -qF "built for device type 0x999, which none of the 4 targeted devices can install: they are 4 sim (0x505)" "$WORK/body" ||
      fail "alien deployment: $(cat "$WORK/body")"
    api POST /v1/rollouts "{\"bundle\":\"$(sha_of alien)\",\"all\":true,\"phases\":[{\"percent\":100}]}" >/dev/null &&
      fail "alien rollout accepted"
    [ "$CODE" = 422 ] || fail "alien rollout: $CODE"
    for bad in '"phases":[]' '"phases":[{"count":1,"percent":5}]' '"phases":[{"percent":101}]' \
      '"phases":[{"count":1}],"colour":1' '"phases":[{"count":1}],"on_error":"panic"'; do
      api POST /v1/rollouts "{\"bundle\":\"$(sha_of v2)\",\"all\":true,$bad}" >/dev/null && fail "accepted $bad"
      [ "$CODE" = 400 ] || fail "$bad: $CODE $(cat "$WORK/body")"
    done
    api GET /v1/deployments >/dev/null; expect_json 'len(j["deployments"])' 0 "nothing deployed"
    api GET /v1/rollouts >/dev/null; expect_json 'len(j["rollouts"])' 0 "no rollout"
    # Tag phases; phase 2 needs an approval.
    api PATCH /v1/devices/dev-1 '{"tags":{"ring":"canary"}}' >/dev/null || fail "tag dev-1"
    api PATCH /v1/devices/dev-2 '{"tags":{"ring":"beta"}}' >/dev/null || fail "tag dev-2"
    # dev-4 goes away without a clean disconnect: its last will says offline.
    bg_out "$WORK/sim4.out"
    "$SIMDEV" --port "$MQTT_PORT" --ca "$WORK/ca.pem" --cert "$WORK/dev-4.pem" --key "$WORK/dev-4.key" \
      --id dev-4 serve:60 >>"$WORK/sim4.out" 2>&1 &
    SIM4=$!; PIDS+=("$SIM4")
    wait_for 10 grep -q "^connected" "$WORK/sim4.out" || fail "dev-4 did not connect: $(cat "$WORK/sim4.out")"
    wait_for 10 get_has /v1/devices/dev-4 '"online":true' || fail "dev-4 not online"
    kill -9 "$SIM4"
    wait_for 10 get_has /v1/devices/dev-4 '"online":false' || fail "dev-4 still online"
    for d in dev-1 dev-2 dev-3; do simu_dev "$d" update:240 update-acked:30; done
    ro_create "{\"bundle\":\"$(sha_of v2)\",\"all\":true,\"success_pct\":100,\"error_pct\":0,
      \"phases\":[{\"tag\":\"ring=canary\"},{\"tag\":\"ring=beta\",\"approve\":true},{\"percent\":100}]}"
    wait_for 120 ro_state "$RO" awaiting_approval || fail "not awaiting approval: $(ro_transitions "$RO")"
    ro_reason_has "$RO" "phase 2 waits for approval"
    [ "$(ro_devices "$RO" 0)" = dev-1 ] || fail "phase 1 is not the canary: $(ro_devices "$RO" 0)"
    api POST "/v1/rollouts/$RO/resume" >/dev/null && fail "resume while awaiting approval accepted"
    [ "$CODE" = 409 ] || fail "resume while awaiting: $CODE"
    api POST "/v1/rollouts/$RO/pause" '{"reason":"lunch"}' >/dev/null || fail "pause: $CODE $(cat "$WORK/body")"
    expect_json 'j["state"]' paused "paused"
    expect_json 'j["reason"]' "paused by an operator (lunch)" "pause reason"
    expect_json 'j["transitions"][0]["actor"]' "operator test" "the token's name is the actor"
    api POST "/v1/rollouts/$RO/approve" >/dev/null && fail "approve while paused accepted"
    api POST "/v1/rollouts/$RO/resume" >/dev/null || fail "resume: $CODE $(cat "$WORK/body")"
    wait_for 30 ro_state "$RO" awaiting_approval || fail "not awaiting approval after resume: $(ro_transitions "$RO")"
    keelc rollout approve "$RO" || fail "keel rollout approve: $(cat "$WORK/keel.err")"
    [ "$(ro_devices "$RO" 1)" = dev-2 ] || fail "phase 2 is not beta: $(ro_devices "$RO" 1)"
    # Phase 3 (dev-3 online, dev-4 offline): paused at once, dev-4's row is held.
    wait_for 120 ro_is "$RO" 'j["phase"]' 2 || fail "phase 3 did not start: $(ro_transitions "$RO")"
    api POST "/v1/rollouts/$RO/pause" >/dev/null || fail "pause 2: $CODE"
    dep="$(json 'j["phases"][2]["deployment_id"]')"
    expect_dev "$dep" dev-4 phase held
    simu_dev dev-4 update:240 update-acked:30
    wait_for 30 get_has /v1/devices/dev-4 '"online":true' || fail "dev-4 not online"
    api GET "/v1/rollouts/$RO" >/dev/null; paused_at="$(json 'j["updated_ms"]')"
    api GET /v1/devices/dev-4 >/dev/null
    [ "$(json 'j["hello_ms"]')" -ge "$paused_at" ] || fail "dev-4's hello is older than the pause"
    expect_dev "$dep" dev-4 phase held
    expect_dev "$dep" dev-4 offers 0
    keelc rollout resume "$RO" || fail "keel rollout resume: $(cat "$WORK/keel.err")"
    wait_for 120 ro_state "$RO" completed || fail "not completed: $(ro_transitions "$RO")"
    expect_dev "$dep" dev-4 result success
    for d in dev-1 dev-2 dev-3 dev-4; do wait_sim "$d"; done
    api POST "/v1/rollouts/$RO/abort" >/dev/null && fail "abort of a completed rollout accepted"
    [ "$CODE" = 409 ] || fail "abort completed: $CODE"
    grep -qF "is completed; abort needs it running, awaiting approval or paused" "$WORK/body" || fail "abort: $(cat "$WORK/body")"
    # Abort: dev-1's simulator is gone, so its row of the new rollout stays unfinished until the
    # abort ends it.
    ota_app v3 2 1; bundle v3 v3 2.0.0; upload v3 >/dev/null || fail "upload v3"
    ro_create "{\"bundle\":\"$(sha_of v3)\",\"tag\":\"ring=canary\",\"phases\":[{\"percent\":100}]}"
    dep="$(json 'j["phases"][0]["deployment_id"]')"
    dev_is "$dep" dev-1 phase done && fail "dev-1 finished a rollout it cannot have received"
    keelc rollout abort "$RO" --reason "wrong build" || fail "keel rollout abort: $(cat "$WORK/keel.err")"
    ro_state "$RO" aborted || fail "not aborted"
    ro_reason_has "$RO" "aborted by an operator (wrong build)"
    expect_dev "$dep" dev-1 phase superseded
    expect_dev "$dep" dev-1 detail "rollout $RO aborted"
    ;;
  rollout_chaos)
    # The broker restarted and keeld killed with -9 in the middle of phase 2: the rollout carries
    # on from where it was (no phase started twice), every device succeeds once.
    # v3 differs in every block: each device downloads for ~8 s (--pace), so phase 2 lasts.
    fleet 6
    ota_app v3 2 1; bundle v3 v3 2.0.0; upload v3 >/dev/null || fail "upload v3"
    for d in $DEVS; do simu_dev "$d" --pace 300 update:240 update-acked:60; done
    ro_create "{\"bundle\":\"$(sha_of v3)\",\"all\":true,\"success_pct\":100,\"error_pct\":0,
      \"phases\":[{\"count\":2},{\"count\":2},{\"percent\":100}]}"
    wait_for 180 ro_is "$RO" 'j["phase"] >= 1' true || fail "phase 2 did not start: $(ro_transitions "$RO")"
    ro_is "$RO" '[j["phase"], j["state"]]' "[1, 'running']" || fail "rollout moved on too early for the test: $(ro_transitions "$RO")"
    chaos_broker_restart || fail "broker restart"
    chaos_keeld_kill9 || fail "keeld kill -9"
    wait_for 240 ro_state "$RO" completed || fail "rollout not complete after the faults: $(ro_transitions "$RO")"
    n="$(ro_transitions "$RO" | grep -c "phase 2 started")"; [ "$n" = 1 ] || fail "phase 2 started $n times"
    n="$(ro_transitions "$RO" | grep -c "phase 3 started")"; [ "$n" = 1 ] || fail "phase 3 started $n times"
    api GET "/v1/rollouts/$RO" >/dev/null
    expect_json '[p["succeeded"] for p in j["phases"]]' '[2, 2, 2]' "every device succeeded"
    api GET /v1/deployments >/dev/null; expect_json 'len(j["deployments"])' 3 "one deployment a phase"
    for d in $DEVS; do wait_sim "$d"; done
    ;;
  rollout_window)
    # A daily download window in each device's local time (UTC + its utc_offset tag): dev-1 is
    # outside it and held, dev-2 (offset +90 min) inside and updated; moving dev-1's clock into
    # the window releases it.
    fleet 2
    api PATCH /v1/devices/dev-2 '{"tags":{"utc_offset":"90"}}' >/dev/null || fail "tag dev-2"
    for d in dev-1 dev-2; do simu_dev "$d" update:240 update-acked:30; done
    for d in dev-1 dev-2; do wait_for 30 grep -q "^connected" "$WORK/sim-$d.out" || fail "$d did not connect"; done
    win="$(python3 -c 'import time; m = int(time.time() // 60) % 1440; f = lambda x: "%02d:%02d" % divmod(x % 1440, 60); print("{\"from\":\"%s\",\"to\":\"%s\"}" % (f(m + 60), f(m + 120)))')"
    api POST /v1/rollouts "{\"bundle\":\"$(sha_of v2)\",\"all\":true,\"window\":{\"from\":\"25:00\",\"to\":\"01:00\"},\"phases\":[{\"percent\":100}]}" >/dev/null &&
      fail "a bad window was accepted"
    [ "$CODE" = 400 ] || fail "bad window: $CODE"
    keelc rollout create "$(sha_of v2)" --all --phase 100% --window 25:00-01:00 && fail "keel: a bad window was accepted"
    keel_has keel.err '"window" is {"from": "HH:MM", "to": "HH:MM"}'
    ro_create "{\"bundle\":\"$(sha_of v2)\",\"all\":true,\"window\":$win,\"phases\":[{\"percent\":100}]}"
    dep="$(json 'j["phases"][0]["deployment_id"]')"
    wait_for 120 dev_is "$dep" dev-2 result success || fail "dev-2 (inside its window) not updated: $(json "j['devices']")"
    expect_dev "$dep" dev-1 phase held
    expect_dev "$dep" dev-1 offers 0
    ro_state "$RO" running || fail "rollout not running: $(ro_transitions "$RO")"
    api PATCH /v1/devices/dev-1 '{"tags":{"utc_offset":"+90"}}' >/dev/null || fail "tag dev-1"
    wait_for 120 dev_is "$dep" dev-1 result success || fail "dev-1 not released into its window: $(json "j['devices']")"
    wait_for 30 ro_state "$RO" completed || fail "not completed: $(ro_transitions "$RO")"
    for d in dev-1 dev-2; do wait_sim "$d"; done
    ;;
  openapi)
    # docs/openapi.yaml: valid, served by keeld, and true to it both ways (tests/api).
    command -v node >/dev/null && command -v npm >/dev/null || { echo "SKIP: server.openapi needs node and npm (scripts/packages/server.txt)"; exit 77; }
    local api_dir root nm
    api_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../api" && pwd)"
    root="$(cd "$api_dir/../.." && pwd)"
    nm="${KEEL_API_NODE:-$WORK/node}"
    if [ ! -d "$nm/node_modules/@apidevtools/swagger-parser" ] || ! cmp -s "$nm/package-lock.json" "$api_dir/package-lock.json"; then
      mkdir -p "$nm"
      cp "$api_dir/package.json" "$api_dir/package-lock.json" "$nm/"
      if ! (cd "$nm" && timeout 300 npm ci --no-audit --no-fund >"$WORK/npm.log" 2>&1); then
        if grep -qE "ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ENETUNREACH" "$WORK/npm.log"; then
          echo "SKIP: server.openapi: the npm registry is out of reach ($(grep -m1 -oE "ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ENETUNREACH" "$WORK/npm.log"))"
          exit 77
        fi
        fail "npm ci: $(tail -5 "$WORK/npm.log")"
      fi
    fi
    cp "$api_dir/openapi_check.mjs" "$nm/" # ES modules resolve packages from their own directory
    # Fixtures: a device with logs and a crash, a bundle, an ELF, a command, a rollout.
    fleet 1
    sim dev-2 crash >/dev/null || fail "crash"
    api GET /v1/crashes >/dev/null; crash="$(json 'j["crashes"][0]["id"]')"
    api POST /v1/commands '{"device":"dev-1","kind":"ping"}' >/dev/null || fail "command: $CODE"
    cmd="$(json 'j["id"]')"
    ro_create "{\"bundle\":\"$(sha_of v2)\",\"all\":true,\"phases\":[{\"count\":1},{\"percent\":100}]}"
    dep="$(json 'j["phases"][0]["deployment_id"]')"
    elf=0000000000000000000000000000000000000000000000000000000000000000
    CODE="$(curl -s -o "$WORK/body" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
      --data-binary "@$WORK/v1/app.elf" "$URL/v1/elfs?name=app.elf")"
    [[ "$CODE" == 20* ]] && elf="$(json 'j["sha256"]')"
    fx="$(python3 -c 'import json,sys; a=sys.argv[1:]; print(json.dumps({"id": "dev-1", "name": "echo", "sha256": a[0],
      "ref": a[1], "op": "resume", "rollout": int(a[2]), "/v1/crashes/{id}:id": int(a[3]),
      "/v1/commands/{id}:id": int(a[4]), "/v1/deployments/{id}:id": int(a[5]),
      "/v1/deployments/{id}/force:id": int(a[5]), "/v1/rollouts/{id}:id": int(a[2]),
      "/v1/rollouts/{id}/{op}:id": int(a[2])}))' "$elf" "$(sha_of v2)" "$RO" "$crash" "$cmd" "$dep")"
    timeout 240 node "$nm/openapi_check.mjs" "$root/docs/openapi.yaml" "$URL" "$TOKEN" "$fx" \
      "$root/server/keeld/api.c" "$root/server/keeld/rollout_api.c" >"$WORK/openapi.out" 2>&1 ||
      fail "openapi check: $(cat "$WORK/openapi.out")"
    cat "$WORK/openapi.out"
    grep -q "^openapi: valid;" "$WORK/openapi.out" || fail "openapi check said: $(cat "$WORK/openapi.out")"
    ;;
  *)
    fail "unknown rollout scenario '$1'"
    ;;
  esac
}
