# Sourced by tests/net/net.sh and scripts/bench-net.sh: the processes a script starts, and
# bounded waits. Append every background pid to PIDS; stop_pids ends them all (SIGTERM, then
# SIGKILL after 5 s), each by its own pid.
PIDS=()
stop_pids() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
}

# wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds; false on timeout. (Callers:
# its local n shadows a global n in CMD, so do not name one so.)
wait_for() {
    local n=$(($1 * 10)); shift
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}
