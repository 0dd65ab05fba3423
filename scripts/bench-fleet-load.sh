#!/usr/bin/env bash
# scripts/bench-fleet-load.sh BUILD_DIR: the fleet path under load (issue 11), written as the
# "## Fleet load (issue 11)" section of bench/results.md (other sections are kept).
#
# For each N (KEEL_BENCH_FLEET_N, default "1000 10000"): Mosquitto (the configuration keel up
# writes), keeld (SQLite) and fleetsim processes (KEEL_BENCH_FLEET_PER_PROC devices each, default
# 5000; every device its own TLS connection and certificate, the real update engine) on 127.0.0.1:
#   - time until every device is online (SUBACK: fleetsim) and listed online by keeld;
#   - idle: 30 s with nothing to do: CPU of every process, wire bytes per device per day
#     (keepalive 20 s, like the microvisor), RSS of every process and fleetsim's per device;
#   - a one-page rollout to all (the header page and one image page change): time until keeld
#     has every final result, statuses lost (devices that installed but keeld has no success),
#     double installs, CPU-seconds per component against the machine's budget (2 cores x wall),
#     MQTT payload bytes per device against the minimum (signed manifest + the content the device
#     lacked) with wire bytes beside them;
#   - one reconnect of every device (a 5 s link outage): wire bytes per reconnect;
#   - first, keeld restarted (kill -9) with KEEL_BENCH_FLEET_RESTART_N (default 100,000; 0: skip)
#     devices registered and a deployment to all of them in flight: time back to serving;
#   - for the first N only: the same rollout (a third version) with keeld killed (-9) and
#     restarted after a quarter of the devices finished, and Mosquitto killed and restarted after
#     half; and the rollout on the issue's baseline keeld (KEEL_BENCH_FLEET_BASELINE, default
#     56e8dc3: the tree before issue 11, with its broker configuration).
# Release builds without sanitizers in BUILD_DIR/bench-fleet-load. Bounded waits everywhere;
# everything started is stopped on exit. Not in CTest: minutes of both cores.
set -euo pipefail

build=${1:?usage: bench-fleet-load.sh BUILD_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
out=$ROOT/bench/results.md
rel=$build/bench-fleet-load
sizes=${KEEL_BENCH_FLEET_N:-1000 10000}
per_proc=${KEEL_BENCH_FLEET_PER_PROC:-5000}
baseline=${KEEL_BENCH_FLEET_BASELINE:-56e8dc3}
idle_s=30
top=$(mktemp -d "${TMPDIR:-/tmp}/keel-bench-fleet-load.XXXXXX")
PIDS=()

# Stop this run's processes: SIGTERM, up to 10 s each, then SIGKILL.
stop_run() {
  local pid i
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for ((i = 0; i < 100; i++)); do fl_alive "$pid" || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}
cleanup() {
  stop_run
  rm -rf "$top"
}
trap cleanup EXIT
fail() { echo "bench-fleet-load: $*" >&2; exit 1; }
# shellcheck source=fleetload_lib.sh
source "$ROOT/scripts/fleetload_lib.sh"
for tool in mosquitto openssl curl python3 sqlite3 arm-none-eabi-gcc; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || fail "$tool is missing: make deps"
done

echo "bench-fleet-load: building keeld, keel and fleetsim without sanitizers ($rel)"
cmake -S "$ROOT" -B "$rel" -DKEEL_SANITIZE=OFF -DCMAKE_BUILD_TYPE=Release \
  -DKEEL_FW_DIR="$build/fw" -DKEEL_THIRD_PARTY="$build/third_party" >/dev/null
cmake --build "$rel" -j 2 --target keeld keel fleetsim >/dev/null
KEELD=$rel/server/keeld
KEEL=$rel/tools/keel/keel
FLEETSIM=$rel/tools/fleetsim/fleetsim
CUR_KEELD=$KEELD
CUR_STACK=$FL_STACK

# ---- measuring -------------------------------------------------------------------------------------
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
now_ms() { date +%s%3N; }
SIMS=()   # fleetsim names of this run
SIM_PIDS=()
sum_stat() { # FIELD: summed over this run's fleetsim processes (their last stats lines)
  local f=$1 s=0 v n
  for n in "${SIMS[@]}"; do v=$(fl_stat "$n" "$f"); s=$((s + ${v:-0})); done
  echo "$s"
}
fresh_stats() { local n; for n in "${SIMS[@]}"; do fl_ctl "$n" stats || fail "$n: no stats"; done; }
sims_all_online() {
  local n
  for n in "${SIMS[@]}"; do grep -q '^all-online' "$WORK/$n.out" || return 1; done
}
sims_online_is() { fresh_stats; [ "$(sum_stat online)" = "$1" ]; }
online_is() { [ "$(fl_online)" = "$1" ]; }
# cpu_snapshot: "keeld mosquitto fleetsim" ticks now
cpu_snapshot() {
  local f=0 p
  for p in "${SIM_PIDS[@]}"; do f=$((f + $(cpu_ticks "$p"))); done
  echo "$(cpu_ticks "$KEELD_PID") $(cpu_ticks "$MOSQ_PID") $f"
}
secs() { python3 -c "print(f'{$1 / $hz:.1f}')"; }
finished() { [ "$(fl_summary finished 2>/dev/null)" = True ]; }
finals_ge() { fresh_stats; [ "$(sum_stat finals)" -ge "$1" ]; }

start_sims() { # N
  local n=$1 first=1 k=0 c
  SIMS=(); SIM_PIDS=()
  while [ "$first" -le "$n" ]; do
    k=$((k + 1))
    c=$((n - first + 1)); [ "$c" -gt "$per_proc" ] && c=$per_proc
    fl_sim "sim$k" "$c" "$first" --max-connecting 64 --stats-every 1000
    SIMS+=("sim$k"); SIM_PIDS+=("$SIM_PID")
    first=$((first + c))
  done
}

# One stack: N devices, the measurements above; results as shell variables into $top/rN.env.
run_size() { # N CHAOS(0/1)
  local n=$1 chaos=$2 t0 t1 c0 c1
  WORK="$top/n$n"; mkdir -p "$WORK"; PIDS=()
  echo "bench-fleet-load: $n devices"
  fl_stack --cmd-timeout 60
  fl_apps
  fl_app a3 7 3
  "$KEEL" bundle build "$WORK/a3/app.elf" --version 1.2.0 --key "$WORK/keys/fleet.key" -o "$WORK/v3.kb" >/dev/null
  t0=$(now_ms)
  start_sims "$n"
  fl_wait_for $((60 + n / 20)) sims_all_online || fail "$n: not every device came online: $(sum_stat online)"
  local online_ms=0 k
  for k in "${SIMS[@]}"; do
    local v; v=$(awk '/^all-online/ {print $2}' "$WORK/$k.out"); [ "$v" -gt "$online_ms" ] && online_ms=$v
  done
  fl_wait_for $((60 + n / 20)) online_is "$n" || fail "$n: keeld lists $(fl_online) online"
  local listed_ms=$(( $(now_ms) - t0 ))
  # ---- idle
  sleep 5
  fresh_stats
  local w0 r0 rx0 idle_cpu0 idle_cpu1
  w0=$(sum_stat wire_tx); r0=$(sum_stat wire_rx)
  idle_cpu0=$(cpu_snapshot)
  sleep "$idle_s"
  idle_cpu1=$(cpu_snapshot)
  fresh_stats
  local idle_bytes=$(( $(sum_stat wire_tx) + $(sum_stat wire_rx) - w0 - r0 ))
  local rss_sims=0 p
  for p in "${SIM_PIDS[@]}"; do rss_sims=$((rss_sims + $(rss_kb "$p"))); done
  local rss_keeld rss_mosq; rss_keeld=$(rss_kb "$KEELD_PID"); rss_mosq=$(rss_kb "$MOSQ_PID")
  # ---- rollout
  local p0 d0 m0 wt0 wr0 f0
  p0=$(sum_stat upd_payload); d0=$(sum_stat chunk_data); m0=$(sum_stat min)
  wt0=$(sum_stat wire_tx); wr0=$(sum_stat wire_rx); f0=$(sum_stat finals)
  c0=$(cpu_snapshot); t1=$(now_ms)
  fl_deploy v2.kb
  local limit=$((300 + n / 10)) done_=yes
  [ "$limit" -gt 600 ] && limit=600
  fl_wait_for "$limit" finished || done_=no
  local roll_ms=$(( $(now_ms) - t1 ))
  c1=$(cpu_snapshot)
  sleep 2; fresh_stats
  local succ failed inprog
  succ=$(fl_summary succeeded); failed=$(fl_summary failed); inprog=$(fl_summary in_progress)
  local inst dbl
  inst=$(sum_stat installs); dbl=$(sum_stat double)
  local upd=$(( $(sum_stat upd_payload) - p0 )) data=$(( $(sum_stat chunk_data) - d0 ))
  local min=$(( $(sum_stat min) - m0 ))
  local wire=$(( $(sum_stat wire_tx) + $(sum_stat wire_rx) - wt0 - wr0 ))
  # ---- one reconnect each
  local rc0 rw0 rc1
  rc0=$(sum_stat sessions); rw0=$(( $(sum_stat wire_tx) + $(sum_stat wire_rx) ))
  for k in "${SIMS[@]}"; do fl_ctl "$k" outage 0 "$per_proc" 5000 || fail "outage"; done
  fl_wait_for $((90 + n / 20)) sims_online_is "$n" || fail "$n: not every device reconnected"
  sleep 3; fresh_stats
  rc1=$(sum_stat sessions)
  local rbytes=$(( $(sum_stat wire_tx) + $(sum_stat wire_rx) - rw0 ))
  # ---- chaos
  local c_ms=- c_succ=- c_failed=- c_dbl=- c_lost=- c_done=-
  if [ "$chaos" = 1 ]; then
    fl_wait_for 60 online_is "$n" || true
    local cf0; cf0=$(sum_stat finals); local ci0; ci0=$(sum_stat installs)
    t1=$(now_ms)
    fl_deploy v3.kb
    fl_wait_for "$limit" finals_ge $((cf0 + n / 4)) || true
    fl_keeld_kill; fl_keeld_start --cmd-timeout 60
    fl_wait_for "$limit" finals_ge $((cf0 + n / 2)) || true
    fl_broker_kill; sleep 1; fl_broker_start
    c_done=yes
    fl_wait_for "$limit" finished || c_done=no
    c_ms=$(( $(now_ms) - t1 ))
    sleep 2; fresh_stats
    c_succ=$(fl_summary succeeded); c_failed=$(fl_summary failed)
    c_dbl=$(( $(sum_stat double) ))
    local c_inst=$(( $(sum_stat installs) - ci0 ))
    c_lost=$(( c_inst - c_succ )); [ "$c_lost" -lt 0 ] && c_lost=0
  fi
  read -r ik im if_ <<<"$idle_cpu0"; read -r jk jm jf <<<"$idle_cpu1"
  read -r ak am af <<<"$c0"; read -r bk bm bf <<<"$c1"
  cat >"$top/r$n.env" <<ENV
n=$n procs=${#SIMS[@]} online_ms=$online_ms listed_ms=$listed_ms
idle_keeld=$(secs $((jk - ik))) idle_mosq=$(secs $((jm - im))) idle_sim=$(secs $((jf - if_)))
idle_day=$((idle_bytes * 86400 / idle_s / n))
rss_keeld=$rss_keeld rss_mosq=$rss_mosq rss_sims=$rss_sims rss_dev=$((rss_sims * 1024 / n))
roll_ms=$roll_ms done=$done_ succ=$succ failed=$failed inprog=$inprog installs=$inst double=$dbl
lost=$(( inst - succ < 0 ? 0 : inst - succ ))
cpu_keeld=$(secs $((bk - ak))) cpu_mosq=$(secs $((bm - am))) cpu_sim=$(secs $((bf - af)))
keeld_ms_dev=$(python3 -c "print(f'{($bk - $ak) * 1000 / $hz / $n:.2f}')")
budget=$(python3 -c "print(f'{2 * $roll_ms / 1000:.0f}')")
upd_dev=$((upd / n)) data_dev=$((data / n)) min_dev=$((min / n)) wire_dev=$((wire / n))
ratio=$(python3 -c "print(f'{$upd / max($min, 1):.2f}')")
reconnects=$((rc1 - rc0)) per_reconnect=$(( rbytes / (rc1 - rc0 > 0 ? rc1 - rc0 : 1) ))
c_ms=$c_ms c_done=$c_done c_succ=$c_succ c_failed=$c_failed c_dbl=$c_dbl c_lost=$c_lost
ENV
  cat "$top/r$n.env"
  stop_run
}

# The issue's baseline: keeld and the broker configuration of $baseline, same devices, same rollout.
run_baseline() { # N
  local n=$1 src="$top/baseline-src" bbuild="$top/baseline-build"
  mkdir -p "$src"
  if ! git -C "$ROOT" archive "$baseline" | tar -x -C "$src" 2>/dev/null; then
    echo "bench-fleet-load: no baseline $baseline in this repository: skipped"; return 0
  fi
  echo "bench-fleet-load: building the baseline keeld ($baseline)"
  cmake -S "$src" -B "$bbuild" -DKEEL_SANITIZE=OFF -DCMAKE_BUILD_TYPE=Release \
    -DKEEL_FW_DIR="$build/fw" -DKEEL_THIRD_PARTY="$build/third_party" >/dev/null &&
    cmake --build "$bbuild" -j 2 --target keeld >/dev/null || { echo "baseline build failed: skipped"; return 0; }
  KEELD=$bbuild/server/keeld FL_STACK=$src/scripts/stack.sh
  WORK="$top/base$n"; mkdir -p "$WORK"; PIDS=()
  fl_stack --cmd-timeout 60
  fl_apps
  start_sims "$n"
  fl_wait_for $((60 + n / 20)) sims_all_online || fail "baseline: devices not online"
  fl_wait_for $((60 + n / 20)) online_is "$n" || true
  local t1 done_=yes; t1=$(now_ms)
  fl_deploy v2.kb
  fl_wait_for 300 finished || done_=no
  local ms=$(( $(now_ms) - t1 ))
  sleep 2; fresh_stats
  local succ inst
  succ=$(fl_summary succeeded); inst=$(sum_stat installs)
  cat >"$top/base.env" <<ENV
b_n=$n b_done=$done_ b_ms=$ms b_succ=$succ b_inprog=$(fl_summary in_progress) b_installs=$inst b_double=$(sum_stat double)
b_upd_dev=$(( $(sum_stat upd_payload) / n )) b_min_dev=$(( $(sum_stat min) / n ))
ENV
  cat "$top/base.env"
  stop_run
  KEELD=$CUR_KEELD FL_STACK=$CUR_STACK
}

# keeld restarted (kill -9) with $restart_n registered devices and a deployment in flight over all
# of them (2,000 offered, the rest pending): time until it serves again. The devices are rows
# written straight into the store (no fleetsim): the figure is keeld's start, not the fleet's.
run_restart() { # N
  local n=$1 t r worst=0 lines=""
  WORK="$top/restart"; mkdir -p "$WORK"; PIDS=()
  echo "bench-fleet-load: keeld restart with $n registered devices"
  fl_stack --cmd-timeout 60
  fl_apps
  fl_keeld_kill
  t=$(now_ms)
  sqlite3 "$WORK/keeld.db" "BEGIN;
    WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $n)
    INSERT INTO devices (id, online, first_seen_ms, last_seen_ms, hello_ms)
      SELECT 'dev-' || i, 1, $t, $t, $t FROM k;
    INSERT INTO device_regions (device_id, name, size, sha256, version)
      SELECT id, 'app', 1048576, '00', 65536 FROM devices;
    COMMIT;" || fail "cannot register $n devices in the store"
  fl_keeld_start --cmd-timeout 60
  t=$(now_ms)
  fl_deploy v2.kb
  local post_ms=$(( $(now_ms) - t ))
  fl_wait_for 60 bash -c "[ \$(sqlite3 '$WORK/keeld.db' \"SELECT COUNT(*) FROM deployment_devices WHERE phase = 'offered'\") -ge 2000 ]" ||
    fail "restart: admission did not offer to 2,000 devices"
  for r in 1 2 3; do
    fl_keeld_kill
    t=$(now_ms)
    fl_keeld_start --cmd-timeout 60
    local up=$(( $(now_ms) - t ))
    fl_api GET "/v1/deployments/$DEP?limit=1" >/dev/null || fail "restart: no deployment summary"
    fl_api GET "/v1/devices?limit=10" >/dev/null || fail "restart: no device page"
    local serving=$(( $(now_ms) - t ))
    [ "$serving" -gt "$worst" ] && worst=$serving
    lines="$lines $up/$serving"
    sleep 2
  done
  cat >"$top/restart.env" <<ENV
rs_n=$n rs_post_ms=$post_ms rs_worst_ms=$worst rs_runs="${lines# }"
ENV
  cat "$top/restart.env"
  stop_run
}

# ---- the section (written after each size: a long run that is stopped keeps what it measured) --
write_section() {
  local done_sizes="" n
  for n in $sizes; do [ -f "$top/r$n.env" ] && done_sizes="$done_sizes $n"; done
  sizes_done=${done_sizes# }
  section | bash "$ROOT/scripts/write-bench-section.sh" "$out"
  echo "bench-fleet-load: wrote the section ($sizes_done devices) to $out"
}
section() {
  echo "## Fleet load (issue 11)"
  echo
  echo "Measured $(date -u +%Y-%m-%d) by \`scripts/bench-fleet-load.sh\` on $(nproc) cores (shared), Release builds:"
  echo "fleetsim processes of up to $per_proc devices (each device its own TLS connection and certificate,"
  echo "the real update engine over copy-on-write flash), one Mosquitto with the configuration \`keel up\`"
  echo "writes, keeld with SQLite, everything on 127.0.0.1. Rollout: a one-page update (the app header"
  echo "page and one image page change). Wire bytes are TLS records on the device sockets."
  echo
  echo "| devices | fleetsim procs | all online (SUBACK) | keeld lists all | idle CPU s in ${idle_s} s (keeld / broker / sims) | idle wire bytes per device per day | RSS MB keeld / broker / sims | sims KB per device |"
  echo "|---|---|---|---|---|---|---|---|"
  for n in $sizes_done; do
    # shellcheck disable=SC1090
    source "$top/r$n.env"
    echo "| $n | $procs | $((online_ms / 1000)).$(( online_ms % 1000 / 100 )) s | $((listed_ms / 1000)) s | $idle_keeld / $idle_mosq / $idle_sim | $idle_day | $((rss_keeld / 1024)) / $((rss_mosq / 1024)) / $((rss_sims / 1024)) | $((rss_dev / 1024)) |"
  done
  echo
  echo "| devices | rollout finished | time | keeld successes | failed / in progress | installs | double installs | statuses lost | CPU s keeld / broker / sims (budget 2 x wall) | keeld ms CPU per device | payload per device (min) | ratio | chunk data per device | wire per device |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for n in $sizes_done; do
    source "$top/r$n.env"
    echo "| $n | $done | $((roll_ms / 1000)) s | $succ | $failed / $inprog | $installs | $double | $lost | $cpu_keeld / $cpu_mosq / $cpu_sim ($budget) | $keeld_ms_dev | $upd_dev ($min_dev) | ${ratio}x | $data_dev | $wire_dev |"
  done
  echo
  echo "Reconnects (a 5 s link outage of every device):"
  for n in $sizes_done; do
    source "$top/r$n.env"
    echo "- $n devices: $reconnects sessions re-established, $per_reconnect wire bytes each (a full TLS 1.2 handshake with client certificate, CONNECT, SUBSCRIBE, presence, hello, the answers)."
  done
  echo
  source "$top/r$first_n.env"
  echo "With faults ($first_n devices; a second rollout, keeld kill -9 + restart after a quarter of the devices finished, Mosquitto kill -9 + restart after half): finished $c_done in $((c_ms / 1000)) s, keeld successes $c_succ, failed $c_failed, statuses lost $c_lost, devices that installed twice $c_dbl."
  echo
  if [ -f "$top/base.env" ]; then
    source "$top/base.env"
    echo "Baseline (keeld and broker configuration of $baseline, before issue 11; same $b_n devices, same rollout, 300 s at most): finished $b_done after $((b_ms / 1000)) s, keeld successes $b_succ, still in progress $b_inprog, installs $b_installs, double installs $b_double, payload per device $b_upd_dev bytes (min $b_min_dev)."
  fi
  echo
  local n2
  for n2 in $sizes; do
    case " $sizes_done " in *" $n2 "*) ;; *) echo "$n2 devices: not measured in this run (it was stopped before that size finished)."; echo ;; esac
  done
  if [ -f "$top/restart.env" ]; then
    source "$top/restart.env"
    echo "keeld restart (kill -9, then started again) with $rs_n registered devices and a deployment to all of them in flight (2,000 offered, the rest pending; devices written straight into the store): **back to serving in $((rs_worst_ms / 100 / 10)).$((rs_worst_ms / 100 % 10)) s** at worst of three (health ok with every broker subscription acknowledged / then the deployment's summary and a device page answered, ms: $rs_runs). Creating that deployment (POST /v1/deployments, all $rs_n devices) took $((rs_post_ms / 100 / 10)).$((rs_post_ms / 100 % 10)) s."
    echo
  fi
  echo "100,000 devices: not run. It needs several Mosquitto instances (one holds at most ~20,000"
  echo "connections here: the open-file limit) with keeld on all of them (--mqtt-brokers) and fleetsim"
  echo "given the same ports in the same order (both assign a device by kproto_broker_index of its id);"
  echo "this script starts one broker so far."
}

first_n=${sizes%% *}
restart_n=${KEEL_BENCH_FLEET_RESTART_N:-100000}
if [ "$restart_n" -gt 0 ]; then
  run_restart "$restart_n"
fi
for n in $sizes; do
  run_size "$n" $([ "$n" = "$first_n" ] && echo 1 || echo 0)
  [ "$n" = "$first_n" ] && run_baseline "$first_n"
  write_section
done
