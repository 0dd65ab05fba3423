#!/usr/bin/env bash
# fleet_test.sh SCENARIO KEEL KEELD SIMDEV [FIRMWARE HELLO]: one black-box scenario of the keel
# CLI's fleet commands. The stack is the real one `keel up` starts (Mosquitto with TLS and the
# per-device ACL, keeld with SQLite) in a private state directory, with fleetsim devices speaking
# protocol v1 (--simulated) or, in the "emulated" scenario, real emulated devices (QEMU +
# microvisor + hello, FIRMWARE and HELLO). Assertions are on what keel prints, its exit status and
# the processes it leaves. Everything started is stopped on any exit.
set -euo pipefail

SCENARIO="$1"
KEEL="$2"
export KEEL_KEELD="$3"
export KEEL_SIMDEV="$4"
FIRMWARE="${5:-}"
HELLO="${6:-}"
ECHO="${7:-}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/keel-fleet-test.XXXXXX")"
STATE="$WORK/state"
# Nothing from the user's own configuration may leak in: a private HOME, no KEEL_* settings.
export HOME="$WORK/home"
mkdir -p "$HOME"
unset KEEL_URL KEEL_TOKEN KEEL_CONFIG KEEL_STATE
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
# Sanitizer reports of keel and of what keel up starts (keeld) fail the scenario.
. "$ROOT/tests/lib/sanitizers.sh"
san_setup "$WORK"
export TZ=UTC
PIDS=()

# Every process recorded in the state's pids file (also after keel down removed it: kept copy).
recorded_pids() { cat "$STATE/pids" "$WORK/pids.seen" 2>/dev/null | awk '{print $2}' | sort -u; }
alive() { # PID: running and not a zombie
  local st
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

cleanup() {
  local rc=$?
  "$KEEL" down --state "$STATE" >/dev/null 2>&1 || true
  "$KEEL" down >/dev/null 2>&1 || true # the default state directory (under the private HOME)
  local pid
  # What keel up started must be gone after keel down; what the test started itself is killed.
  for pid in $(recorded_pids); do
    if alive "$pid"; then
      kill -9 "$pid" 2>/dev/null || true
      [ "$rc" -ne 0 ] || { echo "FAIL: process $pid was still running after keel down"; rc=1; }
    fi
  done
  # Some are `timeout --kill-after=N ...`: SIGTERM reaches the command through timeout, which
  # SIGKILLs it N s later if need be (a SIGKILL to timeout itself would orphan the command).
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if ! san_check "$WORK"; then
    echo "FAIL: a process of fleet.$SCENARIO reported a sanitizer finding (above)"
    rc=1
  fi
  if [ "$rc" -ne 0 ]; then
    echo "---- keeld log"; tail -n 30 "$STATE"/keeld.log 2>/dev/null || true
    echo "---- last keel output"; tail -n 30 "$WORK/out" "$WORK/err" 2>/dev/null || true
    echo "FAIL: fleet.$SCENARIO (work dir kept: $WORK)"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

wait_for() { # SECONDS CMD...: poll every 0.1 s
  local secs="$1" i; shift
  for ((i = 0; i < secs * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

# k ARGS...: run keel (bounded), stdout in $WORK/out, stderr in $WORK/err, status in RC.
k() {
  RC=0
  timeout 60 "$KEEL" "$@" >"$WORK/out" 2>"$WORK/err" || RC=$?
}
expect_rc() { # WANT DESCRIPTION
  [ "$RC" = "$1" ] || fail "$2: exit status $RC, expected $1 (stdout: $(cat "$WORK/out"); stderr: $(cat "$WORK/err"))"
}
out_has() { grep -qF -- "$1" "$WORK/out" || fail "$2: stdout lacks '$1': $(cat "$WORK/out")"; }
err_has() { grep -qF -- "$1" "$WORK/err" || fail "$2: stderr lacks '$1': $(cat "$WORK/err")"; }
json() { # EXPR over keel's stdout as `j`
  python3 -c "import json,sys; j=json.load(open('$WORK/out')); r=($1); print(r if not isinstance(r,bool) else str(r).lower())"
}
expect_json() { # EXPR EXPECTED MESSAGE
  local got
  got="$(json "$1")" || fail "$3: stdout is not JSON: $(cat "$WORK/out")"
  [ "$got" = "$2" ] || fail "$3: $1 is '$got', expected '$2'"
}

up() { # ARGS...: keel up into $STATE
  k up --state "$STATE" "$@"
  cp "$STATE/pids" "$WORK/pids.seen" 2>/dev/null || true
  expect_rc 0 "keel up $*"
  export KEEL_CONFIG="$STATE/secrets/config"
  MQTT_PORT="$(awk '/^listener/ {print $2}' "$STATE/mosquitto.conf")"
  URL="$(sed -n 's/^url=//p' "$STATE/secrets/config")"
  TOKEN="$(sed -n 's/^token=//p' "$STATE/secrets/config")"
}

# A device that is not one of keel up's (own certificate from the shared script), for traffic.
# Each run is a new boot: keeld stores a batch with a (boot, msg_id) it has seen only once.
SIM_BOOT=1
sim() { # ID ACTION...
  local id="$1"; shift
  SIM_BOOT=$((SIM_BOOT + 1))
  bash "$ROOT/scripts/stack.sh" certs --keys "$STATE/secrets" "$STATE" "$id"
  timeout 60 "$KEEL_SIMDEV" --port "$MQTT_PORT" --ca "$STATE/ca.pem" --cert "$STATE/$id.pem" \
    --key "$STATE/secrets/$id.key" --id "$id" --boot "$SIM_BOOT" "$@" >>"$WORK/sim.out" 2>&1 || fail "simdev $id $*: $(tail -5 "$WORK/sim.out")"
}

case "$SCENARIO" in
listing)
  up --devices 2 --simulated
  out_has "2 SIMULATED" "keel up labels simulated devices"
  # keel devices: text and JSON.
  k devices
  expect_rc 0 "keel devices"
  out_has "DEVICE" "devices header"
  # fleetsim devices leave the factory with an empty app slot (0.0.0) and have not restarted.
  grep -qE '^dev-1 +yes +0\.0\.0 +running +1\.2\.3 +sim +0 ' "$WORK/out" || fail "devices row: $(cat "$WORK/out")"
  grep -q '^dev-2 ' "$WORK/out" || fail "dev-2 missing: $(cat "$WORK/out")"
  k devices --json
  expect_rc 0 "keel devices --json"
  expect_json '[d["id"] for d in j["devices"]]' "['dev-1', 'dev-2']" "devices --json ids"
  expect_json 'j["devices"][0]["online"]' true "devices --json online"
  # keel device show: text and JSON.
  k device show dev-1
  expect_rc 0 "device show"
  out_has "device       dev-1" "device show id"
  out_has "app          0.0.0, running, 0 restarts" "device show app line"
  out_has "commands     ping restart reboot update_apply update_cancel" "device show commands"
  # the whole app slot (header page + 1 MiB), erased: its SHA-256 from the real update engine
  ERASED="$(python3 -c 'import hashlib; print(hashlib.sha256(b"\xff" * (8192 + 1048576)).hexdigest()[:16])')"
  grep -qE "^  app +1056768 bytes +version 0\.0\.0 +sha256 $ERASED\.\.\." "$WORK/out" ||
    fail "device show app region: $(cat "$WORK/out")"
  k device show dev-1 --json
  expect_json 'j["board"]' sim "device show --json board"
  expect_json '[r["name"] for r in j["regions"]]' "['app', 'microvisor']" "device show --json regions"
  # keel logs: everything, by device, --limit, --since, --json; paging beyond one page is keeld's.
  k logs
  expect_rc 0 "logs on an empty store"
  err_has "no log entries" "empty logs message"
  sim dev-3 logs:3:first-batch logs:2:second-batch
  k logs
  expect_rc 0 "keel logs"
  [ "$(wc -l <"$WORK/out")" = 5 ] || fail "expected 5 log lines: $(cat "$WORK/out")"
  grep -qE '^20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9:.]+ dev-3 info  microvisor: first-batch 0$' "$WORK/out" ||
    fail "log line format: $(head -1 "$WORK/out")"
  sed -n 2p "$WORK/out" | grep -q 'dev-3 info  app: first-batch 1$' || fail "second line: $(cat "$WORK/out")"
  k logs dev-3 --limit 2
  [ "$(wc -l <"$WORK/out")" = 2 ] || fail "--limit 2 printed $(wc -l <"$WORK/out") lines"
  k logs dev-1
  expect_rc 0 "logs of a quiet device"
  [ ! -s "$WORK/out" ] || fail "dev-1 has no logs but got: $(cat "$WORK/out")"
  k logs --since 10m --json
  expect_rc 0 "logs --json"
  expect_json '[e["text"] for e in j["logs"]]' "['first-batch 0', 'first-batch 1', 'first-batch 2', 'second-batch 0', 'second-batch 1']" "logs --json"
  FIRST="$(json 'j["logs"][0]["id"]')"
  k logs --after "$FIRST" --limit 1 --json
  expect_json 'j["logs"][0]["text"]' "first-batch 1" "logs --after"
  # keel crashes / crash show: formatted by the core formatter, symbolicated with --elf.
  k crashes
  out_has "no crash reports" "empty crash list"
  sim dev-3 crash
  k crashes
  expect_rc 0 "keel crashes"
  grep -qE '^ +[0-9]+  dev-3 +20[0-9-]+ [0-9:.]+  0x10000abc  0x10000a01  0\.4\.0 +UsageFault$' "$WORK/out" ||
    fail "crash row: $(cat "$WORK/out")"
  k crashes dev-3 --json
  expect_json 'j["crashes"][0]["reason"]' UsageFault "crashes --json"
  CRASH="$(json 'j["crashes"][0]["id"]')"
  k crashes dev-1
  out_has "no crash reports" "dev-1 has no crashes"
  k crash show "$CRASH"
  expect_rc 0 "crash show"
  out_has "crash $CRASH from dev-3" "crash show header"
  out_has "app stopped: UsageFault" "crash show uses kcrash_format"
  out_has "pc 0x10000abc  lr 0x10000a01" "crash show registers"
  out_has "CFSR: UNDEFINSTR" "crash show fault bits"
  out_has "give --elf" "crash show hint"
  # An app ELF with known symbols at the report's pc and lr.
  cat >"$WORK/app.c" <<'C'
void crashy(void);
void caller(void) { __asm volatile(".rept 64\n nop\n .endr"); crashy(); }
void crashy(void) { __asm volatile(".rept 128\n nop\n .endr"); }
C
  arm-none-eabi-gcc -mcpu=cortex-m33 -mthumb -g -O0 -fno-toplevel-reorder -nostdlib \
    -Wl,-Ttext=0x10000a00 -Wl,-e,caller -o "$WORK/app.elf" "$WORK/app.c"
  k crash show "$CRASH" --elf "$WORK/app.elf"
  expect_rc 0 "crash show --elf"
  grep -q "pc 0x10000abc  crashy at .*app.c:3" "$WORK/out" || fail "pc not symbolicated: $(cat "$WORK/out")"
  grep -q "lr 0x10000a01  caller at .*app.c:2" "$WORK/out" || fail "lr not symbolicated: $(cat "$WORK/out")"
  k crash show "$CRASH" --elf "$WORK/app.elf" --json
  expect_json 'j["symbols"]["pc"].startswith("crashy at")' true "crash show --json symbols"
  expect_json 'j["registers"]["pc"]' $((0x10000abc)) "crash show --json registers"
  k crashes --elf "$WORK/app.elf"
  expect_rc 0 "crashes --elf"
  grep -qE 'UsageFault  \(pc in crashy at .*app\.c:3\)$' "$WORK/out" || fail "crashes --elf: $(cat "$WORK/out")"
  k crashes --elf "$WORK/app.elf" --json
  expect_json 'j["crashes"][0]["pc_symbol"].startswith("crashy at")' true "crashes --elf --json"
  k crash show "$CRASH" --elf "$WORK/missing.elf"
  expect_rc 1 "crash show with a missing ELF"
  err_has "cannot read the ELF" "missing ELF message"
  # An undecodable report is shown as such, with its bytes.
  sim dev-3 raw:crash:72060a04deadbeef
  wait_for 10 bash -c "'$KEEL' crashes dev-3 | grep -q invalid" || fail "invalid crash not listed"
  k crashes dev-3 --json
  k crash show "$(json 'j["crashes"][0]["id"]')"
  expect_rc 0 "crash show of an invalid report"
  out_has "does not decode" "invalid report message"
  out_has "deadbeef" "invalid report bytes"
  # keel token create: into the stack's database, and through the API; both tokens work.
  k token create --state "$STATE" --name extra
  expect_rc 0 "token create --state"
  T1="$(cat "$WORK/out")"
  [[ "$T1" =~ ^keel_[0-9a-f]{64}$ ]] || fail "token create printed '$T1'"
  k token create --name via-api --json
  expect_rc 0 "token create through the API"
  T2="$(json 'j["token"]')"
  expect_json 'j["name"]' via-api "token create --json name"
  for t in "$T1" "$T2"; do
    KEEL_TOKEN="$t" k devices
    expect_rc 0 "a created token is accepted"
  done
  ;;
follow)
  up --devices 0
  sim dev-3
  # Follow, then log: the live line must arrive; -f --json prints one entry per line.
  # (timeout is the hang guard only: the Ctrl-C check below sends SIGINT to keel directly.)
  timeout --kill-after=2 60 "$KEEL" logs -f dev-3 >"$WORK/follow.out" 2>"$WORK/follow.err" &
  FPID=$!
  PIDS+=("$FPID")
  timeout --kill-after=2 60 "$KEEL" logs -f --json >"$WORK/followj.out" 2>"$WORK/followj.err" &
  JPID=$!
  PIDS+=("$JPID")
  wait_for 10 grep -q "following the logs of dev-3" "$WORK/follow.err" || fail "follow did not open: $(cat "$WORK/follow.err")"
  wait_for 10 grep -q "following the logs of every device" "$WORK/followj.err" || fail "follow --json did not open"
  sim dev-3 logs:2:live-line
  wait_for 10 grep -q "dev-3 info  app: live-line 1$" "$WORK/follow.out" || fail "live line not followed: $(cat "$WORK/follow.out")"
  wait_for 10 grep -q '"text": *"live-line 1"' "$WORK/followj.out" || fail "live line not in -f --json: $(cat "$WORK/followj.out")"
  python3 -c "import json; [json.loads(l) for l in open('$WORK/followj.out')]" || fail "-f --json lines are not JSON each"
  # keeld goes away and comes back on the same port: the follower reconnects and resumes after
  # the last entry it saw (Last-Event-ID), so what was logged meanwhile arrives, exactly once.
  KEELD_PID="$(awk '$1 == "keeld" {print $2}' "$STATE/pids")"
  HTTP_PORT="${URL##*:}"
  kill -9 "$KEELD_PID"
  wait_for 10 grep -q "reconnecting\|retrying" "$WORK/follow.err" || fail "follower did not notice: $(cat "$WORK/follow.err")"
  sim dev-3 logs:1:while-keeld-down &
  SIMPID=$!
  SIM_BOOT=$((SIM_BOOT + 1)) # the background call counted in its own subshell
  "$KEEL_KEELD" --db "$STATE/keeld.db" --http-port "$HTTP_PORT" --mqtt-port "$MQTT_PORT" \
    --mqtt-ca "$STATE/ca.pem" --mqtt-cert "$STATE/keeld.pem" --mqtt-key "$STATE/secrets/keeld.key" \
    >"$WORK/keeld2.log" 2>&1 &
  PIDS+=($!)
  wait "$SIMPID" || fail "device could not log while keeld restarted"
  sim dev-3 logs:1:after-restart
  wait_for 20 grep -q "after-restart 0$" "$WORK/follow.out" || fail "follower did not resume: $(cat "$WORK/follow.out" "$WORK/follow.err")"
  grep -q "while-keeld-down 0$" "$WORK/follow.out" || fail "entry logged while keeld was down missed"
  [ "$(grep -c 'live-line 1$' "$WORK/follow.out")" = 1 ] || fail "an entry was repeated after the reconnect"
  # Ctrl-C stops a follower cleanly: exit 0, promptly. SIGINT goes to keel itself, as a
  # terminal's Ctrl-C does, not through `timeout`: timeout follows the signal with a SIGCONT,
  # and a SIGCONT that lands while the exiting keel (an ASan build) is in LeakSanitizer's
  # stop-the-world cancels the SIGSTOP its PTRACE_ATTACH queued; the tracer then waits for a
  # stop that never comes and keel spins forever (seen under load: "follower ignored Ctrl-C").
  FKEEL="$(pgrep -P "$FPID")" && JKEEL="$(pgrep -P "$JPID")" || fail "no keel process under the followers' timeout"
  kill -INT "$FKEEL" "$JKEEL"
  # (alive, not kill -0: an exited child stays a zombie until this shell reaps it)
  followers_gone() { ! alive "$FPID" && ! alive "$JPID"; }
  wait_for 10 followers_gone || fail "follower ignored Ctrl-C"
  rc=0; wait "$FPID" || rc=$?
  [ "$rc" = 0 ] || fail "follower exited $rc on Ctrl-C"
  rc=0; wait "$JPID" || rc=$?
  [ "$rc" = 0 ] || fail "follower --json exited $rc on Ctrl-C"
  grep -qi "sanitizer" "$WORK/follow.err" "$WORK/followj.err" && fail "sanitizer report from a follower"
  ;;
commands)
  up --devices 2 --simulated
  for kind in ping restart reboot; do
    k "$kind" dev-1
    expect_rc 0 "keel $kind"
    grep -qE "^dev-1: $kind ok in [0-9]+ ms \(device up [0-9.]+ s\)$" "$WORK/out" || fail "$kind output: $(cat "$WORK/out")"
  done
  grep -q "^dev-1 command [0-9]* ping" "$STATE/fleetsim-1.log" || fail "the device did not see the ping"
  k ping dev-2 --json
  expect_rc 0 "ping --json"
  expect_json 'j["status"]' ok "ping --json status"
  expect_json 'j["kind"]' ping "ping --json kind"
  k ping dev-2 --no-wait
  expect_rc 0 "ping --no-wait"
  grep -qE "^dev-2: ping sent as command [0-9]+" "$WORK/out" || fail "--no-wait output: $(cat "$WORK/out")"
  # A device that is registered but offline never answers: bounded wait, exit 1, clear message.
  sim dev-3
  k ping dev-3 --timeout 1
  expect_rc 1 "ping of an offline device"
  err_has "no answer from dev-3 within 1 s" "offline device message"
  # A device that does not implement a kind: keeld refuses (409), keel says so.
  sim dev-4 --commands ping
  k reboot dev-4
  expect_rc 1 "reboot of a device without reboot"
  err_has "keeld answered 409" "409 shown"
  err_has "does not implement" "409 message shown"
  ;;
errors)
  # Server down: connection refused says how to start the stack. No token at all: says where from.
  PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  k devices --url "http://127.0.0.1:$PORT" --token keel_x
  expect_rc 1 "server down"
  err_has "cannot connect to keeld at http://127.0.0.1:$PORT" "server down message"
  err_has "keel up" "server down hint"
  k devices
  expect_rc 1 "no token"
  err_has "no API token" "no token message"
  KEEL_URL="http://127.0.0.1:$PORT" KEEL_TOKEN=keel_x k ping dev-1
  expect_rc 1 "env url: server down"
  err_has "cannot connect to keeld at http://127.0.0.1:$PORT" "KEEL_URL used"
  # Config files: ~/.config/keel/config is read; a bad line is named.
  mkdir -p "$HOME/.config/keel"
  printf 'url = http://127.0.0.1:%s/\ntoken = keel_cfg\n' "$PORT" >"$HOME/.config/keel/config"
  k logs
  expect_rc 1 "config file: server down"
  err_has "cannot connect to keeld at http://127.0.0.1:$PORT" "config file url used (trailing / dropped)"
  printf 'colour=blue\n' >"$WORK/bad.conf"
  KEEL_CONFIG="$WORK/bad.conf" k devices
  expect_rc 1 "bad config"
  err_has "bad.conf:1: unknown key 'colour'" "bad config message"
  KEEL_CONFIG="$WORK/none.conf" k devices
  expect_rc 1 "missing KEEL_CONFIG"
  err_has "cannot read the config file" "missing config message"
  rm -rf "$HOME/.config"
  up --devices 1 --simulated
  # Bad token: keeld's 401 message plus where the token came from.
  KEEL_TOKEN=keel_0000 k devices
  expect_rc 1 "bad token"
  err_has "keeld answered 401" "401 shown"
  err_has "from KEEL_TOKEN was refused" "401 hint names the source"
  k devices --token keel_0000 --json
  expect_rc 1 "bad token with --json"
  err_has "from --token was refused" "401 hint names --token"
  # The flag beats the environment, the environment beats the config file.
  KEEL_URL="http://127.0.0.1:$PORT" k devices --url "$URL"
  expect_rc 0 "--url beats KEEL_URL"
  KEEL_URL="http://127.0.0.1:$PORT" k devices
  expect_rc 1 "KEEL_URL beats the config file"
  # Unknown device / crash: keeld's 404 text.
  k device show ghost
  expect_rc 1 "unknown device"
  err_has "keeld answered 404: unknown device 'ghost'" "unknown device message"
  k ping ghost
  expect_rc 1 "ping unknown device"
  err_has "unknown device 'ghost'" "ping unknown device message"
  k logs ghost
  expect_rc 1 "logs of unknown device"
  err_has "unknown device 'ghost'" "logs unknown device message"
  k crash show 999
  expect_rc 1 "unknown crash"
  err_has "no crash report 999" "unknown crash message"
  k device show 'bad id'
  expect_rc 1 "bad device id"
  err_has "not a device id" "bad id message"
  # Not a keeld at all.
  k devices --url "http://127.0.0.1:$MQTT_PORT"
  expect_rc 1 "not an HTTP server"
  # Command-line mistakes: exit 2 with a hint to --help.
  for args in "devices --bogus" "logs a b" "crash show" "crash show abc" "ping" "ping a b" \
      "logs --limit 0" "logs --since yesterday" "logs -f --since 1m" "up --devices 999" \
      "down extra" "token create --db x --state y" "device show" "nosuch"; do
    # shellcheck disable=SC2086
    k $args
    expect_rc 2 "keel $args"
    grep -q "Try 'keel" "$WORK/err" || fail "keel $args: no --help hint: $(cat "$WORK/err")"
  done
  # --help everywhere: exit 0, usage on stdout.
  for cmd in "" "devices" "device" "device show" "logs" "crashes" "crash" "crash show" "ping" \
      "restart" "reboot" "token" "token create" "up" "down"; do
    # shellcheck disable=SC2086
    k $cmd --help
    expect_rc 0 "keel $cmd --help"
    grep -q "^usage: keel" "$WORK/out" || fail "keel $cmd --help: $(cat "$WORK/out")"
  done
  ;;
updown)
  # Bad option mixes are refused before anything starts.
  k up --state "$STATE" --devices 1 --simulated --app "$KEEL"
  expect_rc 2 "keel up --simulated --app"
  err_has "simulated ones run neither" "--simulated --app message"
  [ ! -e "$STATE/pids" ] || fail "a refused keel up recorded processes"
  up --devices 2 --simulated
  # mosquitto, keeld and one fleetsim for both devices
  [ "$(wc -l <"$STATE/pids")" = 3 ] || fail "expected 3 processes: $(cat "$STATE/pids")"
  for pid in $(recorded_pids); do alive "$pid" || fail "process $pid from keel up is not running"; done
  CA_SUM="$(sha256sum <"$STATE/ca.pem")"
  FIRST_TOKEN="$TOKEN"
  # The fleet signing key: made on the first run (private key 0600), given to keeld.
  [ "$(stat -c %a "$STATE/secrets/fleet.key")" = 600 ] || fail "fleet.key missing or not 0600"
  grep -q "BEGIN PUBLIC KEY" "$STATE/fleet.pub" || fail "fleet.pub missing"
  KEY_SUM="$(sha256sum <"$STATE/secrets/fleet.key")"
  grep -q "fleet signing key" "$STATE/keeld.log" || fail "keeld was not given the fleet key"
  k devices
  expect_rc 0 "devices through the config keel up wrote"
  # A second keel up on the same state is refused while the first runs.
  k up --state "$STATE"
  expect_rc 1 "second keel up"
  err_has "already running" "second keel up message"
  k down --state "$STATE"
  expect_rc 0 "keel down"
  out_has "stopped (3 processes)" "keel down summary"
  for pid in $(recorded_pids); do ! alive "$pid" || fail "process $pid survived keel down"; done
  k down --state "$STATE"
  expect_rc 0 "keel down again"
  out_has "nothing running" "idempotent keel down"
  k devices
  expect_rc 1 "devices after keel down"
  err_has "keel up" "hint after keel down"
  # Up again: same CA and token (first run only), new processes, then down.
  up --devices 1 --simulated
  [ "$(sha256sum <"$STATE/ca.pem")" = "$CA_SUM" ] || fail "keel up remade the CA"
  [ "$(sha256sum <"$STATE/secrets/fleet.key")" = "$KEY_SUM" ] || fail "keel up remade the fleet key"
  [ "$TOKEN" = "$FIRST_TOKEN" ] || fail "keel up made a new token though the old one is valid"
  k ping dev-1
  expect_rc 0 "ping after the second keel up"
  # A process that ignores SIGTERM is killed after the bounded wait (a stopped one cannot act).
  DEV_PID="$(awk '$1 == "fleetsim-1" {print $2}' "$STATE/pids")"
  kill -STOP "$DEV_PID"
  k down --state "$STATE"
  expect_rc 0 "keel down with a stuck device"
  out_has "SIGKILL" "keel down says it had to kill"
  for pid in $(recorded_pids); do ! alive "$pid" || fail "process $pid survived keel down"; done
  # The default state directory: keel up and the commands after it need no --state or config.
  unset KEEL_CONFIG
  k up --devices 1 --simulated
  expect_rc 0 "keel up in the default state directory"
  DEFAULT="$HOME/.local/state/keel"
  cat "$DEFAULT/pids" >>"$WORK/pids.seen"
  out_has "state in $DEFAULT" "default state directory"
  k ping dev-1
  expect_rc 0 "ping through the default state's config"
  k down
  expect_rc 0 "keel down of the default state"
  out_has "stopped (3 processes)" "keel down of the default state"
  for pid in $(recorded_pids); do ! alive "$pid" || fail "process $pid survived keel down"; done
  ;;
ota_emulated)
  # keeld and the real microvisor: keel up with the ota app (provisioned with the stack's fleet
  # key), a v1.1.0 bundle signed with DIR/secrets/fleet.key deployed with --watch: offered, only the
  # changed block fetched, staged, applied by the app, confirmed on trial; the same bundle again
  # sends nothing (the device's hello already names it).
  OTA_APP="$(dirname "$HELLO")/../ota/ota.elf"
  [ -f "$FIRMWARE" ] && [ -f "$OTA_APP" ] || fail "firmware or ota app not built: '$FIRMWARE' '$OTA_APP'"
  export KEEL_FIRMWARE="$FIRMWARE"
  up --devices 1 --app "$OTA_APP"
  export KEEL_CONFIG="$STATE/secrets/config"
  k bundle build "$OTA_APP" --version 1.1.0 --key "$STATE/secrets/fleet.key" -o "$WORK/v2.kb"
  expect_rc 0 "bundle build"
  RC=0
  timeout 150 "$KEEL" deploy "$WORK/v2.kb" --to dev-1 --watch >"$WORK/out" 2>"$WORK/err" || RC=$?
  expect_rc 0 "deploy --watch to an emulated device"
  out_has "1 devices: 1 succeeded, 0 failed" "deploy summary"
  grep -q 'update: 1.1.0 confirmed by the app' "$STATE/devices/dev-1/console.log" ||
    fail "the device did not confirm 1.1.0: $(tail -20 "$STATE/devices/dev-1/console.log")"
  k deploy status 1 --json
  expect_json '[d["result"] for d in j["devices"]]' "['success']" "emulated device result"
  expect_json 'j["devices"][0]["blocks_needed"] < j["devices"][0]["blocks_total"]' true \
    "only the blocks that differ were fetched"
  wait_for 20 bash -c "'$KEEL' devices | grep -qE '^dev-1 +yes +1\.1\.0 '" ||
    fail "dev-1 does not say 1.1.0 in its hello: $("$KEEL" devices)"
  k deploy "$WORK/v2.kb" --to dev-1 --json
  expect_rc 0 "deploy the same bundle again"
  expect_json 'j["devices"][0]["bytes_sent"]' 0 "the same bundle again sends nothing"
  expect_json 'j["devices"][0]["result"]' success "the same bundle again is done at once"
  k down --state "$STATE"
  expect_rc 0 "keel down"
  ;;
secrets)
  # The stack's secrets (CA key, fleet signing key, the broker's and keeld's keys, the API token)
  # are where no device process can see them (docs/security.md, "What each process can read").
  [ -f "$FIRMWARE" ] && [ -f "$HELLO" ] || fail "firmware or hello app not built: '$FIRMWARE' '$HELLO'"
  export KEEL_FIRMWARE="$FIRMWARE"
  # A state dir of the older layout (every key at its top, as scripts/stack.sh makes them without
  # --keys, and the fleet key made by hand before the first keel up) is moved into DIR/secrets.
  bash "$ROOT/scripts/stack.sh" certs "$STATE" broker keeld >/dev/null
  k keys new fleet --dir "$STATE"
  expect_rc 0 "keel keys new fleet"
  CA_SUM="$(sha256sum <"$STATE/ca.key")"
  up --devices 2 --simulated
  out_has "moved the stack's secrets of an older layout into $STATE/secrets" "migration message"
  for f in ca.key broker.key keeld.key fleet.key config; do
    [ ! -e "$STATE/$f" ] || fail "$f is still at the top of the state dir"
    [ "$(stat -c %a "$STATE/secrets/$f")" = 600 ] || fail "secrets/$f missing or not 0600"
  done
  [ "$(stat -c %a "$STATE/secrets")" = 700 ] || fail "secrets dir is not 0700"
  [ "$(sha256sum <"$STATE/secrets/ca.key")" = "$CA_SUM" ] || fail "the CA key changed in the move"
  [ -n "$TOKEN" ] || fail "no token in secrets/config"
  k devices
  expect_rc 0 "keel devices through secrets/config"
  # no_stack_secret ROOT: ROOT (a device process's view of / through /proc/PID/root) has none of
  # the stack's secret files, nor anything else of the state dir but what is named after ROOT.
  no_stack_secret() { # ROOT WHO
    local f
    for f in secrets secrets/ca.key secrets/fleet.key secrets/keeld.key secrets/broker.key \
      secrets/config keeld.db mosquitto.conf pids; do
      [ ! -e "$1$STATE/$f" ] || fail "$2 can see $STATE/$f"
    done
    [ ! -e "$1/etc/passwd" ] && [ ! -e "$1$HOME" ] || fail "$2 sees host files: $(ls "$1")"
  }
  # Simulated devices: the fleetsim process (pid 1 of its sandbox) sees its identities file, the
  # public CA certificate and fleet key, and nothing of the secrets.
  SIM="$(awk '$1 == "fleetsim-1" {print $2}' "$STATE/pids")"
  alive "$SIM" && [ "$(cat "/proc/$SIM/comm")" = fleetsim ] || fail "no fleetsim at pid '$SIM'"
  ROOTV="/proc/$SIM/root"
  [ -s "$ROOTV$STATE/devices/sim-1/identities" ] && [ -s "$ROOTV$STATE/ca.pem" ] &&
    [ -s "$ROOTV$STATE/fleet.pub" ] || fail "fleetsim's view lacks its own files: $(ls -R "$ROOTV$STATE" | head -20)"
  no_stack_secret "$ROOTV" fleetsim
  [ "$(readlink "/proc/$SIM/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] || fail "fleetsim shares the host's mounts"
  [ "$(readlink "/proc/$SIM/ns/pid")" != "$(readlink /proc/self/ns/pid)" ] || fail "fleetsim sees the host's processes"
  ! tr '\0' ' ' <"/proc/$SIM/cmdline" | grep -qF "$STATE/secrets" || fail "fleetsim was given a secret path"
  k ping dev-2
  expect_rc 0 "ping a simulated device in its sandbox"
  k down --state "$STATE"
  expect_rc 0 "keel down (simulated)"
  # Emulated: QEMU sees only the device's state dir; its `keel device run` (a host process, the
  # device's side of the sandbox wall) is given no path to the secrets and holds none open.
  up --devices 1 --app "$HELLO"
  grep -q "issued a P-256 key and a certificate (CN=dev-1) from the fleet CA" \
    "$STATE/devices/dev-1/console.log" || fail "dev-1 was not provisioned by keel up"
  DEV="$(awk '$1 == "dev-1" {print $2}' "$STATE/pids")"
  QEMU=""
  for p in $(pgrep -P "$DEV") $(pgrep -P "$(pgrep -d, -P "$DEV")") $(pgrep -P "$(pgrep -d, -P "$(pgrep -d, -P "$DEV")")"); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = qemu-system-arm ] && QEMU=$p
  done
  [ -n "$QEMU" ] || fail "no QEMU below dev-1's keel ($(pstree -p "$DEV" 2>&1))"
  ROOTV="/proc/$QEMU/root"
  [ -s "$ROOTV$STATE/devices/dev-1/store.bin" ] || fail "QEMU's view lacks the device's store"
  no_stack_secret "$ROOTV" QEMU
  [ ! -e "$ROOTV$STATE/devices/sim-1" ] || fail "QEMU sees another device's files"
  ! tr '\0' ' ' <"/proc/$DEV/cmdline" | grep -qF "$STATE/secrets" || fail "keel device run was given a secret path"
  ! ls -l "/proc/$DEV/fd" | grep -qF "$STATE/secrets" || fail "keel device run holds a secret open"
  # Nothing secret in the devices' tree, in any form: the secret keys (PEM body and DER), the
  # token, in no file under DIR/devices (the devices' own keys are there, which is as it must be).
  python3 - "$STATE" <<'PY' || fail "a stack secret is in the devices' tree"
import os, subprocess, sys
st = sys.argv[1]
needles = []
for k in ("ca", "fleet", "keeld", "broker"):
    pem = open(f"{st}/secrets/{k}.key").read()
    needles += [l.encode() for l in pem.splitlines() if l and not l.startswith("-----") and len(l) >= 32]
    needles.append(subprocess.run(["openssl", "pkey", "-in", f"{st}/secrets/{k}.key", "-outform", "DER"],
                                  capture_output=True, check=True).stdout)
token = [l[6:] for l in open(f"{st}/secrets/config").read().splitlines() if l.startswith("token=")][0]
needles.append(token.encode())
files = 0
for d, _, names in os.walk(f"{st}/devices"):
    for n in names:
        p = os.path.join(d, n)
        if not os.path.isfile(p):
            continue
        data = open(p, "rb").read()
        files += 1
        for x in needles:
            if x in data:
                sys.exit(f"{p} holds a stack secret")
sys.exit(0 if files >= 3 else f"only {files} files under devices/: the check looked at nothing")
PY
  k down --state "$STATE"
  expect_rc 0 "keel down (emulated)"
  # Two different copies of a secret (old place and new) are the operator's to settle: refused.
  echo "another key" >"$STATE/ca.key"
  k up --state "$STATE" --devices 0
  expect_rc 1 "keel up with two different CA keys"
  err_has "differ" "conflicting secrets message"
  [ "$(sha256sum <"$STATE/secrets/ca.key")" = "$CA_SUM" ] || fail "the CA key was overwritten"
  ;;
emulated)
  # keel up --devices 2: real emulated devices (QEMU + microvisor + hello) provisioned from the
  # stack's CA, online in keeld with their hello data, answering pings; keel down leaves nothing.
  [ -f "$FIRMWARE" ] && [ -f "$HELLO" ] || fail "firmware or hello app not built: '$FIRMWARE' '$HELLO'"
  export KEEL_FIRMWARE="$FIRMWARE"
  # A device that cannot come up is named with its console log, and nothing is left running.
  printf 'not an app\n' >"$WORK/junk.elf"
  k up --state "$STATE" --devices 1 --app "$WORK/junk.elf"
  cp "$STATE/pids" "$WORK/pids.seen" 2>/dev/null || true
  expect_rc 1 "keel up with an app that is not one"
  err_has "device dev-1 stopped before it came online; the end of $STATE/devices/dev-1/console.log:" \
    "failed device message"
  err_has "not an ELF file" "the console's end is shown"
  [ ! -e "$STATE/pids" ] || fail "a failed keel up left its pids file"
  for pid in $(recorded_pids); do ! alive "$pid" || fail "process $pid survived a failed keel up"; done
  up --devices 2 --app "$HELLO"
  out_has "2 emulated (QEMU + microvisor + hello.elf), online: dev-1 dev-2" "keel up device line"
  [ "$(wc -l <"$STATE/pids")" = 4 ] || fail "expected 4 processes: $(cat "$STATE/pids")"
  k devices
  expect_rc 0 "keel devices"
  for id in dev-1 dev-2; do
    grep -qE "^$id +yes +0\.0\.0 +running +0\.1\.0 +an505 " "$WORK/out" ||
      fail "$id is not listed online with its hello data: $(cat "$WORK/out")"
    grep -q 'net: connected to broker localhost (TLS 1.3, server verified, device certificate)' \
      "$STATE/devices/$id/console.log" || fail "$id console: $(tail -20 "$STATE/devices/$id/console.log")"
    # keel up provisions each device before it runs (the failed run above already did dev-1:
    # then this run finds it provisioned); the broker takes only the stack CA's certificates.
    grep -qE "issued a P-256 key and a certificate \(CN=$id\) from the fleet CA|^device $id is provisioned for the fleet" \
      "$STATE/devices/$id/console.log" || fail "$id was not provisioned by keel up"
  done
  k devices --json
  expect_json 'sorted((d["id"], d["online"], d["app_version"], d["microvisor_version"], d["board"]) for d in j["devices"])' \
    "[('dev-1', True, '0.0.0', '0.1.0', 'an505'), ('dev-2', True, '0.0.0', '0.1.0', 'an505')]" "devices --json"
  for id in dev-1 dev-2; do
    k ping "$id"
    expect_rc 0 "ping $id"
    grep -qE "^$id: ping ok in [0-9]+ ms" "$WORK/out" || fail "ping $id: $(cat "$WORK/out")"
    grep -qE 'net: ping \(command [0-9]+\)' "$STATE/devices/$id/console.log" ||
      fail "the ping did not reach $id's microvisor: $(tail -20 "$STATE/devices/$id/console.log")"
  done
  # What the devices run beside the recorded processes: a QEMU each (in its sandbox, below its
  # `keel device run`) and the relays QEMU starts for their broker connections.
  below() { ps -eo pid=,ppid=,args= | awk -v roots=" $* " '{ up[$1] = $2; a[$1] = $0 }
    END { for (p in up) { q = up[p]; while ((q in up) && index(roots, " " q " ") == 0 && q > 1) q = up[q];
          if (index(roots, " " q " ")) print a[p] } }'; }
  devruns() { awk '$1 ~ /^dev-/ {print $2}' "$STATE/pids"; }
  qemus() { below $(devruns) | awk '$3 ~ /qemu-system-arm$/ {print $1}'; }
  relays() { below $(devruns) | awk '$4 == "relay" && $5 ~ /^unix:/ {print $1}'; }
  QEMUS="$(qemus)"; RELAYS="$(relays)"
  PIDS+=($QEMUS $RELAYS)
  [ "$(wc -w <<<"$QEMUS")" = 2 ] || fail "expected a QEMU per device, found: $QEMUS"
  [ "$(wc -w <<<"$RELAYS")" -ge 2 ] || fail "expected a relay per device connection, found: $RELAYS"
  k down --state "$STATE"
  expect_rc 0 "keel down"
  out_has "stopped (4 processes)" "keel down summary"
  for pid in $(recorded_pids) $QEMUS $RELAYS; do ! alive "$pid" || fail "process $pid survived keel down"; done
  ! (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") 2>/dev/null || fail "the broker port is still open"
  # Up again: the devices keep their state (no second certificate). A `keel device run` killed
  # outright takes its QEMU with it (and QEMU its relays): nothing is left after keel down.
  up --devices 1 --app "$HELLO"
  cat "$STATE/pids" >>"$WORK/pids.seen"
  ! grep -q 'issued a P-256 key' "$STATE/devices/dev-1/console.log" || fail "dev-1 was issued a second certificate"
  k ping dev-1
  expect_rc 0 "ping after the second keel up"
  # keel down stopped the devices before keeld, so keeld recorded them offline: dev-2, not started
  # this time, is not listed online from the last run.
  k devices
  grep -qE '^dev-1 +yes ' "$WORK/out" && grep -qE '^dev-2 +no ' "$WORK/out" ||
    fail "after keel down and keel up --devices 1: $(cat "$WORK/out")"
  QEMUS="$(qemus)"
  PIDS+=($QEMUS)
  [ -n "$QEMUS" ] || fail "no QEMU for dev-1"
  kill -9 "$(awk '$1 == "dev-1" {print $2}' "$STATE/pids")"
  k down --state "$STATE"
  expect_rc 0 "keel down after its device runner was killed"
  for pid in $(recorded_pids) $QEMUS $(relays); do ! alive "$pid" || fail "process $pid survived keel down"; done
  ;;
channels-rust)
  # The Rust example (hello-rust, on the keel crate) through the real stack: its queued message
  # reaches keeld and the broker's acknowledgement comes back as a ChannelSent notification
  # decoded from the ring; a message sent down channel "rust" arrives as ChannelData and is
  # echoed with Channel::recv/send.
  RUST_APP="$(dirname "$ECHO")/../hello-rust/hello-rust.elf"
  [ -f "$FIRMWARE" ] && [ -f "$RUST_APP" ] || fail "firmware or hello-rust not built (needs rustc and rust-src: make deps): '$FIRMWARE' '$RUST_APP'"
  export KEEL_FIRMWARE="$FIRMWARE"
  up --devices 1 --app "$RUST_APP"
  CON="$STATE/devices/dev-1/console.log"
  # The app restarts itself once (keel::app_restart); the second run is the one that answers.
  wait_for 60 grep -q 'hello-rust: notification Started, previous run ended by restart' "$CON" ||
    fail "hello-rust did not restart into its second run: $(tail -20 "$CON")"
  wait_for 30 grep -qE 'hello-rust: channel [0-9]+ sent seq [0-9]+' "$CON" ||
    fail "no ChannelSent notification for the queued message: $(tail -20 "$CON")"
  rmsgs() { "$KEEL" channel read dev-1 rust --direction "${1:-up}" --json |
    python3 -c 'import json,sys; [print(m.get("text", "hex:" + m["data"])) for m in json.load(sys.stdin)["messages"]]'; }
  has_hello() { rmsgs | grep -qx 'hello from rust'; }
  wait_for 30 has_hello || fail "the app's message did not reach keeld: $(rmsgs)"
  k channel send dev-1 rust "ping from the cloud to rust"
  expect_rc 0 "channel send"
  has_echo() { rmsgs | grep -qx 'ping from the cloud to rust'; }
  wait_for 30 has_echo || fail "no echo on channel rust: $(rmsgs) / $(tail -20 "$CON")"
  grep -qE 'hello-rust: channel [0-9]+ has 1 message\(s\)' "$CON" || fail "no ChannelData notification logged"
  grep -qE 'hello-rust: echoed 27 bytes as seq [0-9]+' "$CON" || fail "the app did not log its echo of 27 bytes"
  grep -qE 'hello-rust: .*(failed|panic)' "$CON" && fail "an API call failed: $(grep -E 'hello-rust: .*(failed|panic)' "$CON")"
  k down --state "$STATE"
  expect_rc 0 "keel down"
  ;;
channels)
  # App channels end to end: the echo app in QEMU answers on its channel through the microvisor,
  # Mosquitto and keeld; its checks of the channel API's refusals (bad pointers, handles, names,
  # sizes, too many channels, a full send queue) all pass.
  [ -f "$FIRMWARE" ] && [ -f "$ECHO" ] || fail "firmware or echo app not built: '$FIRMWARE' '$ECHO'"
  export KEEL_FIRMWARE="$FIRMWARE"
  up --devices 1 --app "$ECHO"
  out_has "gave keeld echo.elf for crash symbolication" "keel up uploads its app's ELF"
  CON="$STATE/devices/dev-1/console.log"
  k elf list --json
  expect_json '[e["name"] for e in j["elfs"]]' "['echo.elf']" "keel up's ELF on keeld"
  wait_for 30 grep -q 'echo: listening' "$CON" || fail "echo did not start: $(tail -20 "$CON")"
  grep -q 'echo: checks passed 30/30' "$CON" ||
    fail "channel API checks: $(grep -E 'echo: check.*FAILED|checks passed' "$CON")"
  # The send queue filled (KEEL_EBUSY) before the broker had any of it; every queued send
  # arrives, in order, once it does (queued sends survive the wait for a connection).
  msgs() { # DEVICE CHANNEL [DIRECTION]: the texts, one per line
    "$KEEL" channel read "$1" "$2" --direction "${3:-up}" --json |
      python3 -c 'import json,sys; [print(m.get("text", "hex:" + m["data"])) for m in json.load(sys.stdin)["messages"]]'
  }
  nmsgs() { [ "$(msgs "$@" | wc -l)" -ge "$N" ]; }
  FLOOD="$(sed -n 's/.*echo: flood queued \([0-9]*\).*/\1/p' "$CON" | head -1)"
  [ "$FLOOD" = 8 ] || fail "the flood queued $FLOOD messages before KEEL_EBUSY, expected 8 (NET_CHAN_SENDQ)"
  N=8; wait_for 30 nmsgs dev-1 flood || fail "flood messages did not all arrive: $(msgs dev-1 flood)"
  [ "$(msgs dev-1 flood | tr '\n' ' ')" = "flood-00 flood-01 flood-02 flood-03 flood-04 flood-05 flood-06 flood-07 " ] ||
    fail "flood messages out of order or duplicated: $(msgs dev-1 flood | tr '\n' ' ')"
  wait_for 30 grep -q 'echo: broker has 8 sends' "$CON" || fail "no KEEL_NOTIFY_CHANNEL_SENT for the flood"
  # Round trip: CLI -> keeld -> broker -> microvisor -> app -> microvisor -> broker -> keeld.
  # A follower started first sees the answer live.
  timeout 60 "$KEEL" channel read dev-1 echo -f --json >"$WORK/follow" 2>"$WORK/follow.err" &
  PIDS+=($!)
  wait_for 10 grep -q 'following channel echo of dev-1' "$WORK/follow.err" || fail "channel follow did not open"
  k channel send dev-1 echo "ping through the cloud"
  expect_rc 0 "channel send"
  out_has "sent 22 bytes to dev-1 channel echo" "channel send summary"
  N=1; wait_for 30 nmsgs dev-1 echo || fail "no answer on channel echo: $(tail -20 "$CON")"
  [ "$(msgs dev-1 echo)" = "ping through the cloud" ] || fail "echo answered: $(msgs dev-1 echo)"
  wait_for 10 grep -q '"text": *"ping through the cloud"' "$WORK/follow" || fail "follow missed it: $(cat "$WORK/follow")"
  grep -q 'echo: received 22 bytes' "$CON" || fail "the app did not get 22 bytes"
  k channel read dev-1 echo --direction all
  expect_rc 0 "channel read --direction all"
  grep -qE ' down ping through the cloud$' "$WORK/out" && grep -qE ' up   ping through the cloud$' "$WORK/out" ||
    fail "channel read --direction all: $(cat "$WORK/out")"
  # Binary data from a file; shown as hex.
  printf '\000\001\376\377' >"$WORK/bin"
  k channel send dev-1 echo --file "$WORK/bin"
  expect_rc 0 "channel send --file"
  N=2; wait_for 30 nmsgs dev-1 echo || fail "no answer to the binary message"
  [ "$(msgs dev-1 echo | tail -1)" = "hex:0001feff" ] || fail "binary echo: $(msgs dev-1 echo)"
  # A channel the app opened but does not read holds NET_CHAN_RECVQ (4) messages; more are dropped
  # and logged. A channel it never opened drops everything, logged.
  for i in 1 2 3 4 5; do k channel send dev-1 flood "down $i"; expect_rc 0 "send $i to flood"; done
  wait_for 20 grep -q 'net: channel flood has 4 messages unread: new message dropped (1 so far)' "$CON" ||
    fail "full receive queue not reported: $(tail -20 "$CON")"
  k channel send dev-1 nobody-listens "x"
  expect_rc 0 "send to a channel the app has not opened"
  wait_for 20 grep -q 'net: data for channel nobody-listens, which the app has not opened: dropped' "$CON" ||
    fail "unknown channel not reported: $(tail -20 "$CON")"
  # Bad requests get a message that says what to fix.
  k channel send dev-1 'bad/name' x
  expect_rc 2 "a channel name with a slash"
  err_has "A-Z a-z 0-9 . _ -" "bad channel name message"
  k channel send dev-1 "$(printf 'x%.0s' $(seq 33))" x
  expect_rc 2 "a 33-character channel name"
  err_has "A-Z a-z 0-9 . _ -" "long channel name message"
  k channel send dev-1 echo "$(printf 'x%.0s' $(seq 513))"
  expect_rc 2 "a 513-byte message"
  err_has "a channel message is 1 to 512 bytes" "oversize message"
  k channel send nosuch echo x
  expect_rc 1 "an unknown device"
  err_has "unknown device 'nosuch'" "unknown device message"
  code() { curl -s -o "$WORK/body" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$@"; }
  [ "$(code -X POST -d "{\"hex\": \"$(printf '00%.0s' $(seq 513))\"}" "$URL/v1/devices/dev-1/channels/echo")" = 400 ] ||
    fail "oversize hex: $(cat "$WORK/body")"
  [ "$(code -X POST -d '{"text": "a", "hex": "00"}' "$URL/v1/devices/dev-1/channels/echo")" = 400 ] ||
    fail "text and hex together: $(cat "$WORK/body")"
  [ "$(code -X POST -d '{"hex": "0g"}' "$URL/v1/devices/dev-1/channels/echo")" = 400 ] || fail "bad hex accepted"
  # keel checks names itself (above); keeld refuses them too.
  [ "$(code -X POST -d '{"text": "x"}' "$URL/v1/devices/dev-1/channels/$(printf 'x%.0s' $(seq 33))")" = 404 ] &&
    grep -qF "A-Z a-z 0-9 . _ -" "$WORK/body" || fail "33-character channel name: $(cat "$WORK/body")"
  [ "$(code "$URL/v1/devices/dev-1/channels/echo?direction=sideways")" = 400 ] || fail "bad direction accepted"
  [ "$(code -X DELETE "$URL/v1/devices/dev-1/channels/echo")" = 405 ] || fail "DELETE on a channel: $(cat "$WORK/body")"
  # A restart closes the app's channels: the new run gets a new handle for "echo" (the old one is
  # dead), passes its checks again, and still answers.
  HANDLE1="$(sed -n 's/.*echo: channel echo handle \(0x[0-9a-f]*\).*/\1/p' "$CON" | head -1)"
  k restart dev-1
  expect_rc 0 "restart dev-1"
  wait_for 30 bash -c "[ \$(grep -c 'echo: listening' '$CON') -ge 2 ]" || fail "echo did not start again"
  HANDLE2="$(sed -n 's/.*echo: channel echo handle \(0x[0-9a-f]*\).*/\1/p' "$CON" | tail -1)"
  [ -n "$HANDLE1" ] && [ "$HANDLE1" != "$HANDLE2" ] || fail "echo's handle after a restart: $HANDLE1 then $HANDLE2"
  [ "$(grep -c 'echo: checks passed 30/30' "$CON")" = 2 ] || fail "checks after the restart: $(grep 'checks passed' "$CON")"
  k channel send dev-1 echo "after restart"
  N=3; wait_for 30 nmsgs dev-1 echo || fail "no answer after the restart"
  [ "$(msgs dev-1 echo | tail -1)" = "after restart" ] || fail "echo after restart: $(msgs dev-1 echo)"
  ;;
elfs)
  # App ELFs in keeld, keyed by the SHA-256 of the app image they build, and crash reports
  # symbolicated with them by themselves.
  [ -f "$HELLO" ] && [ -f "$ECHO" ] || fail "apps not built: '$HELLO' '$ECHO'"
  up --devices 1 --simulated
  code() { curl -s -o "$WORK/body" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$@"; }
  k elf list
  out_has "no ELFs" "empty ELF list"
  k elf upload "$HELLO"
  expect_rc 0 "elf upload"
  SHA="$(sed -n 's/^uploaded .*hello.elf: app image sha256 \([0-9a-f]\{64\}\) .*/\1/p' "$WORK/out")"
  [ -n "$SHA" ] || fail "elf upload output: $(cat "$WORK/out")"
  # The hash is the one `keel device install` gives the image (and devices report); with no
  # server configured, install uploads nothing and says nothing of it.
  KEEL_CONFIG= k device install --state "$WORK/dev" "$HELLO"
  expect_rc 0 "device install without a server configured"
  ! grep -q "keeld" "$WORK/out" "$WORK/err" || fail "install without a server mentions keeld: $(cat "$WORK/out" "$WORK/err")"
  grep -q "sha256 ${SHA:0:16}" "$WORK/out" || fail "install shows another image than $SHA: $(cat "$WORK/out")"
  k elf upload "$HELLO"
  expect_rc 0 "second upload"
  out_has "keeld already has the ELF of" "second upload is idempotent"
  k elf list --json
  expect_json '[(e["sha256"], e["name"]) for e in j["elfs"]]' "[('$SHA', 'hello.elf')]" "elf list"
  # keeld checks what it is given: the ELF must build an image, and the image the claimed one.
  printf 'not an elf' >"$WORK/junk.elf"
  k elf upload "$WORK/junk.elf"
  expect_rc 1 "junk upload"
  err_has "not a Keel app ELF for this board" "junk ELF message"
  [ "$(code -X PUT --data-binary @"$ECHO" "$URL/v1/elfs/$SHA")" = 422 ] || fail "echo.elf filed under hello's hash: $(cat "$WORK/body")"
  grep -q "it is not the ELF of that image" "$WORK/body" || fail "mismatch message: $(cat "$WORK/body")"
  [ "$(code -X PUT --data-binary @"$HELLO" "$URL/v1/elfs/$SHA")" = 200 ] || fail "PUT with the right hash: $(cat "$WORK/body")"
  [ "$(code -X PUT --data-binary @"$HELLO" "$URL/v1/elfs/XYZ")" = 400 ] || fail "PUT with a bad hash"
  [ "$(code "$URL/v1/elfs/$(printf '0%.0s' $(seq 64))")" = 404 ] || fail "GET of an unknown ELF"
  grep -q "keel elf upload" "$WORK/body" || fail "unknown ELF message: $(cat "$WORK/body")"
  curl -sf -o "$WORK/got.elf" -H "Authorization: Bearer $TOKEN" "$URL/v1/elfs/$SHA" && cmp -s "$WORK/got.elf" "$HELLO" ||
    fail "GET /v1/elfs/SHA did not return the ELF"
  # A device running hello (version 0.4.0 = 262144) crashes in main: the report is filed under
  # hello's image and symbolicated by keel crashes / crash show with no --elf.
  MAIN="$(arm-none-eabi-nm "$HELLO" | awk '$3 == "main" {print $1}')"
  [ -n "$MAIN" ] || fail "no main in $HELLO"
  PC="$(printf '%08x' $((0x$MAIN & ~1)))"
  sim dev-5 --app-sha "$SHA" --app-version 262144 "crash:$PC:$PC:262144"
  k crashes dev-5
  expect_rc 0 "crashes dev-5"
  grep -qE "UsageFault  \(pc in main at [^ ]+\)$" "$WORK/out" || fail "not symbolicated: $(cat "$WORK/out")"
  k crashes dev-5 --json
  expect_json 'j["crashes"][0]["app_sha256"]' "$SHA" "crash filed under the image"
  expect_json 'j["crashes"][0]["elf_known"]' true "elf_known"
  expect_json 'j["crashes"][0]["pc_symbol"].startswith("main at")' true "pc_symbol"
  CRASH="$(json 'j["crashes"][0]["id"]')"
  # Without a working addr2line the reports are still listed and shown, with the reason.
  KEEL_ADDR2LINE=false k crashes dev-5
  expect_rc 0 "crashes when addr2line fails"
  err_has "false failed" "addr2line failure message"
  grep -qE "UsageFault$" "$WORK/out" || fail "crashes without symbols: $(cat "$WORK/out")"
  KEEL_ADDR2LINE=false k crash show "$CRASH"
  expect_rc 0 "crash show when addr2line fails"
  out_has "app image: $SHA" "crash show without symbols"
  k crash show "$CRASH"
  expect_rc 0 "crash show"
  out_has "app image: $SHA" "crash show names the image"
  out_has "symbols (the ELF keeld has for this app image)" "crash show symbolicated by itself"
  grep -qE "pc 0x$PC  main at " "$WORK/out" || fail "crash show symbols: $(cat "$WORK/out")"
  # A crash reported after an update: the device now runs another image (0.5.0), the report
  # says 0.4.0: it is filed under the 0.4.0 image the device reported before.
  sim dev-5 --app-sha "$(printf 'c%.0s' $(seq 64))" --app-version 327680 "crash:$PC:$PC:262144"
  k crashes dev-5 --json
  expect_json 'j["crashes"][0]["app_sha256"]' "$SHA" "a crash after an update: the image of its version"
  # A version the device never reported: image unknown, said so.
  sim dev-5 --app-sha "$(printf 'c%.0s' $(seq 64))" --app-version 327680 "crash:$PC:$PC:999"
  k crashes dev-5 --json
  expect_json 'j["crashes"][0]["app_sha256"]' "" "a version never reported"
  k crash show "$(json 'j["crashes"][0]["id"]')"
  out_has "app image: unknown (the device never reported it)" "unknown image message"
  # The 0.5.0 image has no ELF on keeld: keel crashes says how to fix that.
  sim dev-5 --app-sha "$(printf 'c%.0s' $(seq 64))" --app-version 327680 "crash:$PC:$PC:327680"
  k crashes dev-5
  out_has "2 reports without symbols: keeld has no ELF of the app image they came from;" "missing ELF hint"
  out_has "keel elf upload APP.elf" "missing ELF hint names the command"
  # keel device install uploads the ELF it installs when a server is configured.
  k device install --state "$WORK/dev" "$ECHO"
  expect_rc 0 "device install with a server configured"
  out_has "gave keeld at $URL the ELF for crash symbolication" "install uploads"
  k elf list --json
  expect_json 'sorted(e["name"] for e in j["elfs"])' "['echo.elf', 'hello.elf']" "echo.elf uploaded by install"
  ;;
*)
  fail "unknown scenario '$SCENARIO'"
  ;;
esac
echo "PASS: fleet.$SCENARIO"
