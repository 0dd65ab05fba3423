# Sourced by the scripts that run devices against a broker (tests/net/net.sh, tests/ota/ota.sh,
# tests/debug/fleet_lib.sh, scripts/bench-net.sh, scripts/bench-ota-device.sh): the processes a
# script starts, bounded waits, and a broker of its own. Append every background pid to PIDS; stop_pids ends them all (SIGTERM, then
# SIGKILL after 5 s), each by its own pid.
PIDS=()
# sigterm PID: SIGTERM to PID, or, when PID is a timeout(1) in front of a command, to that command
# itself. timeout follows a SIGTERM it relays with SIGCONT to the command and its process group;
# in a sanitizer build a SIGCONT that lands while LeakSanitizer's exit-time check attaches to the
# process (PTRACE_ATTACH queues a SIGSTOP, and a SIGCONT discards a pending stop) leaves the check
# waiting for a stop that never comes: the process spins after its clean stop until timeout's
# SIGKILL (137; seen with `keel device run`: "device stopped", then sched_yield, traced by
# LeakSanitizer's tracer in wait4). A direct SIGTERM has no SIGCONT after it.
sigterm() {
    local c=""
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = timeout ] && c=$(pgrep -P "$1" | head -n 1)
    kill -TERM "${c:-$1}" 2>/dev/null
}
stop_pids() {
    local p
    for p in "${PIDS[@]}"; do sigterm "$p"; done
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

# descendants PID: every process below PID (its children, theirs, ...), one pid a line. QEMU runs
# in a sandbox of its own session, so "the processes of a device" are found by ancestry.
descendants() {
    ps -eo pid=,ppid= | awk -v root="$1" '{ up[$1] = $2 }
        END { for (p in up) { q = p; while ((q in up) && q != root && q > 1) q = up[q]; if (q == root && p != root) print p } }'
}

# free_port: a TCP port of 127.0.0.1 that is free now (the kernel picks it, so scripts running in
# parallel do not collide).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# tcp_listening PORT: something accepts connections on 127.0.0.1:PORT.
tcp_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# broker_start DIR PORT: mosquitto with DIR/mosquitto.conf and DIR/openssl.cnf (scripts/stack.sh
# broker-conf DIR PORT; an OPENSSL_CONF of the caller's wins), output appended to
# DIR/mosquitto.out, its pid in MOSQ and PIDS; false if it does not listen on PORT within 10 s (its
# log: DIR/mosquitto.log).
MOSQ=""
broker_start() {
    local ossl=${OPENSSL_CONF:-}
    [ -n "$ossl" ] || [ ! -e "$1/openssl.cnf" ] || ossl=$1/openssl.cnf
    OPENSSL_CONF=$ossl mosquitto -c "$1/mosquitto.conf" >>"$1/mosquitto.out" 2>&1 &
    MOSQ=$!
    PIDS+=("$MOSQ")
    wait_for 10 tcp_listening "$2"
}

# tls12_openssl_conf FILE: an OpenSSL configuration that caps every TLS context at TLS 1.2; run a
# program with OPENSSL_CONF=FILE to get a broker that does not speak TLS 1.3.
tls12_openssl_conf() {
    cat >"$1" <<'CNF'
openssl_conf = keel_conf
[keel_conf]
ssl_conf = keel_ssl
[keel_ssl]
system_default = keel_tls12
[keel_tls12]
MaxProtocol = TLSv1.2
CNF
}
