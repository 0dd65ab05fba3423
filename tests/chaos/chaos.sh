# tests/chaos/chaos.sh: faults to inject in the middle of a test, as shell functions. Source it
# from a test script (bash) that has started its own broker and keeld; every function waits for
# evidence that the fault took effect (never a fixed time) and is bounded.
#
# What the sourcing script provides (tests/server/server_test.sh has all of them):
#   start_broker   starts Mosquitto with the stack's configuration, sets MOSQ_PID, waits for the port
#   start_keeld    starts keeld on the same database, sets KEELD_PID and URL, waits until
#                  GET /v1/health says the broker connection is up
#   MOSQ_PID, KEELD_PID, URL
#
#   chaos_keeld_kill9        kill -9 keeld (no clean shutdown: whatever it had not committed is
#                            gone), then start it again on the same database
#   chaos_keeld_stall CMD... freeze keeld (SIGSTOP: a stalled disk or a long pause) until CMD
#                            succeeds (polled, bounded), then let it run again (SIGCONT)
#   chaos_broker_restart     stop the broker (SIGTERM: it saves its persistence file), wait until
#                            keeld reports the broker connection down (health 503 "degraded"),
#                            start it again, wait until keeld is connected again
#   chaos_broker_kill9       the same with kill -9 (nothing saved since the last autosave)
#   chaos_disk_mount DIR KB  mount a KB-kilobyte tmpfs on DIR (a small database disk); returns 2
#                            when this environment cannot mount (not root / no CAP_SYS_ADMIN)
#   chaos_disk_fill DIR      fill DIR's filesystem to the last byte (writes then fail: ENOSPC)
#   chaos_disk_free DIR      remove the filler again
#   chaos_disk_umount DIR    unmount (lazy: a still-running process keeps its open files)
#   chaos_health_code        the HTTP status of GET /v1/health (200 ok, 503 degraded)

CHAOS_WAIT_S="${CHAOS_WAIT_S:-60}"

# _chaos_wait SECONDS CMD...: poll CMD every 0.1 s.
_chaos_wait() {
  local secs="$1" i
  shift
  for ((i = 0; i < secs * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

_chaos_fail() { echo "chaos: $*" >&2; return 1; }

chaos_health_code() { curl -s -o /dev/null -w '%{http_code}' "$URL/v1/health"; }
_chaos_health_is() { [ "$(chaos_health_code)" = "$1" ]; }

chaos_keeld_kill9() {
  local pid="$KEELD_PID"
  kill -9 "$pid" 2>/dev/null || _chaos_fail "keeld ($pid) was not running" || return 1
  wait "$pid" 2>/dev/null || true
  _chaos_wait "$CHAOS_WAIT_S" bash -c "! kill -0 $pid" || _chaos_fail "keeld $pid survived kill -9" || return 1
  echo "chaos: keeld $pid killed with -9"
  start_keeld
}

chaos_keeld_stall() { # CMD...: the evidence to wait for while keeld is frozen
  local pid="$KEELD_PID" rc=0
  kill -STOP "$pid" 2>/dev/null || _chaos_fail "keeld ($pid) was not running" || return 1
  echo "chaos: keeld $pid stopped (SIGSTOP)"
  _chaos_wait "$CHAOS_WAIT_S" "$@" || rc=1
  kill -CONT "$pid"
  [ "$rc" = 0 ] || _chaos_fail "keeld stalled ${CHAOS_WAIT_S} s without: $*" || return 1
  echo "chaos: keeld $pid running again (SIGCONT)"
}

_chaos_broker_stop() { # SIGNAL
  local pid="$MOSQ_PID"
  kill "-$1" "$pid" 2>/dev/null || _chaos_fail "the broker ($pid) was not running" || return 1
  wait "$pid" 2>/dev/null || true
  _chaos_wait "$CHAOS_WAIT_S" bash -c "! kill -0 $pid" || _chaos_fail "broker $pid did not stop" || return 1
  # Evidence keeld saw it: its health is 503 "degraded".
  _chaos_wait "$CHAOS_WAIT_S" _chaos_health_is 503 ||
    _chaos_fail "keeld's health did not turn 503 with the broker down" || return 1
  echo "chaos: broker $pid stopped with SIG$1; keeld reports degraded"
}

_chaos_broker_start() {
  start_broker
  _chaos_wait "$CHAOS_WAIT_S" _chaos_health_is 200 ||
    _chaos_fail "keeld did not reconnect to the restarted broker (health $(chaos_health_code))" || return 1
  echo "chaos: broker back (pid $MOSQ_PID); keeld connected"
}

chaos_broker_restart() { _chaos_broker_stop TERM && _chaos_broker_start; }
chaos_broker_kill9() { _chaos_broker_stop KILL && _chaos_broker_start; }

chaos_disk_mount() { # DIR KB
  mkdir -p "$1" || return 1
  mount -t tmpfs -o "size=${2}k,mode=0700" tmpfs "$1" 2>/dev/null || {
    echo "chaos: cannot mount a tmpfs on $1 here (needs root with CAP_SYS_ADMIN)" >&2
    return 2
  }
}

chaos_disk_fill() { # DIR: until the filesystem refuses (dd ends with ENOSPC)
  dd if=/dev/zero of="$1/.chaos-filler" bs=4k 2>/dev/null || true
  local avail
  avail="$(df --output=avail -k "$1" | tail -1 | tr -d ' ')"
  [ "$avail" = 0 ] || _chaos_fail "$1 still has ${avail} KiB free after filling" || return 1
  echo "chaos: $1 is full"
}

chaos_disk_free() { rm -f "$1/.chaos-filler"; echo "chaos: $1 has room again"; }

chaos_disk_umount() { umount -l "$1" 2>/dev/null || true; }
