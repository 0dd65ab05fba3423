#!/usr/bin/env bash
# scripts/stack.sh: the certificates and broker configuration of a Keel fleet stack, in one place
# for everyone who starts one: `keel up`, tests/server/server_test.sh, tests/fleet and
# scripts/bench-fleet.sh.
#
#   stack.sh certs [--keys KEYDIR] DIR NAME...
#                                       CA (DIR/ca.pem, KEYDIR/ca.key) if missing, then NAME.pem
#                                       (in DIR) and NAME.key (in KEYDIR) for each NAME that has
#                                       none: CN=NAME, except "broker" (CN localhost, SAN localhost
#                                       + 127.0.0.1). P-256 keys, like the devices'. Existing files
#                                       are kept (first run only). KEYDIR (default DIR) is made
#                                       0700: `keel up` keeps its keys in DIR/secrets, apart from
#                                       the devices' tree (docs/security.md).
#   stack.sh broker-conf [--keys KEYDIR] DIR PORT [ACL_EXTRA]
#                                       DIR/mosquitto.conf + DIR/acl: TLS on 127.0.0.1:PORT,
#                                       require_certificate, identity = certificate CN, which is
#                                       also the MQTT client id (a client cannot take over another's
#                                       session), the ACL of docs/protocol.md; service identities
#                                       (all device topics) are keeld and every keeld-NAME with a
#                                       certificate in DIR (one per keeld instance or tool); lines
#                                       of the file ACL_EXTRA are appended to the ACL (e.g. a
#                                       benchmark identity). The broker's key is KEYDIR/broker.key.
#                                       Also DIR/openssl.cnf: the broker's OpenSSL settings; start
#                                       mosquitto with OPENSSL_CONF=DIR/openssl.cnf
#                                       (docs/fleet-service.md).
set -euo pipefail

die() { echo "stack.sh: $*" >&2; exit 1; }

# Certificates live for a year: `keel up` keeps its state directory across runs.
DAYS=365

cert() { # DIR KEYDIR NAME
  local dir="$1" keys="$2" name="$3" cn san=""
  [ -s "$dir/$name.pem" ] && [ -s "$keys/$name.key" ] && return 0
  cn="$name"
  if [ "$name" = broker ]; then
    cn=localhost
    san="DNS:localhost,IP:127.0.0.1"
  fi
  (umask 077 && openssl ecparam -name prime256v1 -genkey -noout -out "$keys/$name.key" 2>/dev/null) ||
    die "openssl could not make a key for $name"
  openssl req -new -key "$keys/$name.key" -subj "/CN=$cn" -out "$dir/$name.csr" 2>/dev/null ||
    die "openssl could not make a request for $name"
  local ext=()
  if [ -n "$san" ]; then
    printf 'subjectAltName=%s\n' "$san" >"$dir/$name.ext"
    ext=(-extfile "$dir/$name.ext")
  fi
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$keys/ca.key" -CAcreateserial \
    -days "$DAYS" -sha256 -out "$dir/$name.pem" "${ext[@]}" 2>/dev/null ||
    die "openssl could not sign the certificate of $name"
  rm -f "$dir/$name.csr" "$dir/$name.ext"
  chmod 600 "$keys/$name.key"
}

# KEYDIR from "--keys KEYDIR" (default: DIR, the flat layout of the tests' own stacks). A `keel up`
# state directory keeps its keys in DIR/secrets: without --keys, the CA would seem to be missing and
# be made again over the fleet's, so that is refused.
KEYS=""
keys_opt() { # DIR
  if [ -z "$KEYS" ]; then
    [ -e "$1/secrets/ca.key" ] &&
      die "$1 keeps its keys in $1/secrets ('keel up' layout): give --keys $1/secrets"
    KEYS="$1"
  fi
  mkdir -p "$KEYS" && chmod 700 "$KEYS" || die "cannot create $KEYS"
}

certs() {
  local dir="$1"; shift
  mkdir -p "$dir" || die "cannot create $dir"
  keys_opt "$dir"
  if ! [ -s "$dir/ca.pem" ] || ! [ -s "$KEYS/ca.key" ]; then
    (umask 077 && openssl ecparam -name prime256v1 -genkey -noout -out "$KEYS/ca.key" 2>/dev/null) ||
      die "openssl could not make the CA key (is openssl installed? make deps)"
    chmod 600 "$KEYS/ca.key"
    openssl req -x509 -new -key "$KEYS/ca.key" -subj "/CN=keel local fleet CA" -days "$DAYS" \
      -sha256 -out "$dir/ca.pem" 2>/dev/null || die "openssl could not make the CA certificate"
  fi
  local name
  for name in "$@"; do
    [[ "$name" =~ ^[A-Za-z0-9._-]{1,63}$ ]] || die "'$name' is not a valid identity name"
    cert "$dir" "$KEYS" "$name"
  done
}

broker_conf() {
  local dir="$1" port="$2" extra="${3:-}"
  [[ "$port" =~ ^[0-9]+$ ]] || die "port '$port' is not a number"
  keys_opt "$dir"
  local svc svcs="keeld" f
  for f in "$dir"/keeld-*.pem; do
    [ -e "$f" ] || continue
    svc=$(basename "$f" .pem)
    [[ "$svc" =~ ^keeld-[A-Za-z0-9._-]{1,57}$ ]] && svcs="$svcs $svc"
  done
  {
    echo "# Service identities (keeld instances, tools): every device's topics."
    for svc in $svcs; do printf 'user %s\ntopic readwrite keel/v1/#\n' "$svc"; done
  } >"$dir/acl"
  cat >>"$dir/acl" <<ACL

# Devices (username = certificate CN): only their own topics, each in its direction.
pattern write keel/v1/%u/hello
pattern write keel/v1/%u/presence
pattern write keel/v1/%u/heartbeat
pattern write keel/v1/%u/logs
pattern write keel/v1/%u/crash
pattern write keel/v1/%u/result
pattern write keel/v1/%u/app/up/+
pattern write keel/v1/%u/update/status
pattern write keel/v1/%u/update/fetch
pattern write keel/v1/%u/debug/up
pattern read keel/v1/%u/cmd
pattern read keel/v1/%u/ack
pattern read keel/v1/%u/app/down/+
pattern read keel/v1/%u/update
pattern read keel/v1/%u/update/data
pattern read keel/v1/%u/debug/down
ACL
  if [ -n "$extra" ]; then
    cat "$extra" >>"$dir/acl" || die "cannot read $extra"
  fi
  cat >"$dir/mosquitto.conf" <<CONF
per_listener_settings false
# Run as whoever starts the stack (as root, mosquitto would otherwise switch to user "mosquitto",
# which cannot read this private directory).
user $(id -un)
allow_anonymous false
# ---- the fleet path (docs/fleet-service.md "Broker configuration") ----
# Persistence: keeld's persistent session (its subscriptions and the messages queued for it while
# it restarts) and the devices' retained presence survive a broker restart; saved on a clean
# shutdown and every autosave_interval seconds. Nothing acknowledged depends on it (statuses,
# logs and crashes are acked end to end by keeld), it only spares the fleet a re-send storm.
persistence true
persistence_location $dir/
autosave_interval 60
# keeld's session is the only one with a queue (devices connect with a clean session): sized to
# hold a burst from every device on this broker while keeld restarts or catches up (hello,
# presence, statuses, fetches: a few messages per device; 200,000 covers ~20,000 devices, the most
# one broker carries in the load bench), instead of Mosquitto's 1,000, past which the broker drops
# messages it has already acknowledged to the devices. Bounded in bytes too (~200 MB at most).
max_queued_messages 200000
max_queued_bytes 200000000
# ---- end of the fleet path settings ----
# Small messages (commands, debug packets) go out at once: with Nagle on, each relay hop of a
# request/answer exchange waits for the peer's delayed ACK (40 ms on Linux).
set_tcp_nodelay true
log_dest file $dir/mosquitto.log
log_type error
log_type warning
log_type notice
listener $port 127.0.0.1
cafile $dir/ca.pem
certfile $dir/broker.pem
keyfile $KEYS/broker.key
require_certificate true
use_identity_as_username true
# The client id is the certificate's name: connecting under another's id cannot cut it off.
use_username_as_clientid true
tls_version tlsv1.2
acl_file $dir/acl
CONF
  # Stateful TLS 1.3 session tickets (SSL_OP_NO_TICKET): the ticket a device keeps and offers on
  # reconnect is a 32-byte id into the broker's session cache instead of OpenSSL's encrypted
  # session, which carries the device certificate (~590 bytes in every resumed ClientHello). A
  # resumed handshake then costs under a third of a full one in bytes (bench/results.md).
  cat >"$dir/openssl.cnf" <<'CNF'
openssl_conf = keel_openssl
[keel_openssl]
ssl_conf = keel_ssl
[keel_ssl]
system_default = keel_tls
[keel_tls]
Options = -SessionTicket
CNF
}

[ $# -ge 1 ] || die "usage: stack.sh certs [--keys KEYDIR] DIR NAME... | broker-conf [--keys KEYDIR] DIR PORT [ACL_EXTRA]"
cmd=$1
shift
if [ "${1:-}" = --keys ]; then
  [ -n "${2:-}" ] || die "--keys wants a directory"
  KEYS=$2
  shift 2
fi
case "$cmd" in
certs)
  [ $# -ge 1 ] || die "usage: stack.sh certs [--keys KEYDIR] DIR NAME..."
  certs "$@"
  ;;
broker-conf)
  [ $# -ge 2 ] && [ $# -le 3 ] || die "usage: stack.sh broker-conf [--keys KEYDIR] DIR PORT [ACL_EXTRA]"
  broker_conf "$@"
  ;;
*)
  die "unknown command '$cmd' (certs, broker-conf)"
  ;;
esac
