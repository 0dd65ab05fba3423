# Sourced by the tests of live debugging through the cloud (tests/debug/debug_mqtt.sh,
# tests/server/server_test.sh debug_api): what crosses the broker on a device's debug topics, seen
# by an observer with its own certificate (CN "observer": make it with scripts/stack.sh certs, give
# it the read-only ACL lines of wire_acl), to prove end-to-end encryption on the wire itself: keeld
# and the broker relay sealed frames, never RSP text.
#
#   wire_acl FILE                    write the observer's ACL lines (stack.sh broker-conf's ACL_EXTRA)
#   wire_tap DIR PORT DEVICE         record DEVICE's debug/up and debug/down messages, one
#                                    "topic hex-payload" line each, into DIR/debug_wire.txt, from
#                                    the broker on 127.0.0.1:PORT (TLS, DIR/ca.pem, observer.pem/key);
#                                    returns once subscribed (false if not within 10 s). Its pid:
#                                    WIRE_PID, also appended to the harness's PIDS.
#   wire_sealed MIN TEXT...          at least MIN messages each way were seen (the positive control:
#                                    the debugger's traffic did cross here), and no payload holds any
#                                    TEXT (RSP packets the debugger sent or got) in clear; prints why
#                                    not and returns false otherwise.
wire_acl() {
    printf '\n# The test observer of tests/lib/debug_wire.sh: reads debug traffic only.\nuser observer\ntopic read keel/v1/+/debug/#\n' >"$1"
}
wire_tap() {
    local dir=$1 port=$2 dev=$3 i
    WIRE_FILE="$dir/debug_wire.txt"
    : >"$WIRE_FILE"
    stdbuf -oL mosquitto_sub -d -h localhost -p "$port" --cafile "$dir/ca.pem" --cert "$dir/observer.pem" \
        --key "$dir/observer.key" -i "observer-$$" -q 1 -t "keel/v1/$dev/debug/#" -F '%t %x' \
        >"$WIRE_FILE" 2>&1 &
    WIRE_PID=$!
    PIDS+=("$WIRE_PID") # stopped with the harness's other processes, also when this fails
    for ((i = 0; i < 100; i++)); do
        grep -q "received SUBACK" "$WIRE_FILE" && return 0
        sleep 0.1
    done
    return 1
}
wire_sealed() {
    local min=$1; shift
    python3 - "$WIRE_FILE" "$min" "$@" <<'PY'
import sys
path, need, texts = sys.argv[1], int(sys.argv[2]), [t.encode() for t in sys.argv[3:]]
count = {"up": 0, "down": 0}
bad = []
for line in open(path, encoding="utf-8", errors="replace"):
    parts = line.split()
    if len(parts) != 2 or not parts[0].startswith("keel/v1/"):
        continue  # mosquitto_sub -d's own lines
    way = parts[0].rsplit("/", 1)[1]
    payload = bytes.fromhex(parts[1])
    count[way] = count.get(way, 0) + 1
    bad += [(parts[0], t) for t in texts if t in payload]
if count["up"] < need or count["down"] < need:
    print(f"only {count['down']} debug/down and {count['up']} debug/up messages seen on the broker (want >= {need} each way)")
    sys.exit(1)
if bad:
    print("RSP text in clear on the broker: " + ", ".join(f"{t.decode()!r} on {top}" for top, t in bad[:5]))
    sys.exit(1)
print(f"debug wire: {count['down']} messages down, {count['up']} up, all sealed")
PY
}
