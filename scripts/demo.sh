#!/usr/bin/env bash
# make demo: the update story a newcomer watches, on a local fleet made in one command.
#   1. a fleet signing key; the ota app built into a signed bundle v1
#   2. `keel up`: Mosquitto (TLS), keeld and three emulated devices (QEMU + microvisor), each
#      factory-installed with v1.kb
#   3. v2 built, signed, uploaded and deployed to all with live progress (`keel deploy --watch`):
#      each app defers (it finishes its work), then applies; v2 runs on trial and confirms
#   4. v3, which crashes on start, deployed to one device: it rolls back to v2 by itself and the
#      failure is reported with its reason
#   5. a tampered bundle, refused by keeld; where to look next; `keel down`
# Every step is bounded (timeout); the demo fails loudly when a step does not do what it says.
set -euo pipefail

build=${1:?usage: demo.sh BUILD_DIR}
keel=$build/host/tools/keel/keel
apps=$build/fw/apps/ota
demo=$build/demo
state=$demo/stack
bold=$(tput bold 2>/dev/null || true); plain=$(tput sgr0 2>/dev/null || true)

say() { # LINE...: a step's title, then its explanation
    printf '\n%s==> %s%s\n' "$bold" "$1" "$plain"
    shift
    [ $# -eq 0 ] || printf '    %s\n' "$@"
}
show() { # SECONDS ARGS...: print the command as a user would type it, then run it, bounded
    local t=$1; shift
    printf '%s$ keel %s%s\n' "$bold" "${*//$demo\//}" "$plain"
    timeout "$t" "$keel" "$@"
}
die() {
    echo "demo: $*" >&2
    exit 1
}
console() { # DEVICE REGEX...: the lines of DEVICE's console matching any REGEX, labelled
    local d=$1 re; shift
    re=$(IFS='|'; echo "$*")
    grep -E -- "$re" "$state/devices/$d/console.log" | sed "s|^|  $d: |"
}
wait_console() { # SECONDS DEVICE REGEX: until the device's console shows REGEX
    local end=$((SECONDS + $1))
    until grep -qE -- "$3" "$state/devices/$2/console.log" 2>/dev/null; do
        [ "$SECONDS" -lt "$end" ] || die "$2 never showed '$3' within $1 s; see $state/devices/$2/console.log"
        sleep 0.5
    done
}

stop() { timeout 60 "$keel" down --state "$state" >/dev/null 2>&1 || true; }
trap stop EXIT

# Every demo starts from nothing: a stack left running by an interrupted demo is stopped, and its
# state (certificates, keys, database, devices) removed.
stop
rm -rf "$demo"
mkdir -p "$state"
export KEEL_CONFIG=$state/secrets/config
cd "$demo"

say "A fleet signing key" \
    "Devices accept only bundles signed with a key they were provisioned with. keel up would make" \
    "one; we make it first to sign the version the devices start with."
show 30 keys new fleet --dir "$state/secrets"

say "v1: the app as a signed bundle" \
    "The 'ota' app (firmware/apps/ota) defers updates until its work is done and confirms a new" \
    "version once it runs healthily. keel bundle build turns its ELF into a signed bundle."
show 30 bundle build "$apps/ota.elf" --version 1.0.0 --counter 1 --key "$state/secrets/fleet.key" \
    --trial 20 -o "$demo/v1.kb"

say "A local fleet on v1, in one command" \
    "Mosquitto with TLS, keeld with SQLite, three emulated devices (QEMU + microvisor), each" \
    "provisioned from the fleet CA and factory-installed with v1.kb by the real update engine." \
    "Returns once keeld lists all three online (longer on a busy machine)."
show 300 up --devices 3 --state "$state" --app "$demo/v1.kb" --elf "$apps/ota.elf"
show 30 devices

say "v2: built and signed" \
    "A higher security counter: devices refuse anything older than what they run (anti-rollback)."
show 30 bundle build "$apps/ota.elf" --version 1.1.0 --counter 2 --key "$state/secrets/fleet.key" \
    --trial 20 -o "$demo/v2.kb"

say "v2 uploaded and deployed to all, with live progress" \
    "keeld checks the signature, then tells each device; each fetches only the blocks that differ" \
    "from what it runs, stages them encrypted in QSPI while its app keeps running, verifies them," \
    "and tells its app. --watch follows until every device is done (exit 0: all succeeded)."
show 240 deploy "$demo/v2.kb" --all --watch || die "the v2 deployment did not succeed on every device"

say "The app deferred, then applied" \
    "dev-1's console: the app heard 'staged', finished its work, called keel_update_apply();" \
    "the microvisor wrote only the changed pages, started v2 on trial, and v2 confirmed."
console dev-1 'update: deployment [0-9]+: ' 'staged and verified' 'ota: update .* staged' 'ota: work done' \
    'update: applied in' 'ota: running app version 1.1.0' 'ota: healthy' 'confirmed by the app'

say "v3 crashes on start: deployed to dev-2 only" \
    "The microvisor catches the crash on trial and rolls back to v2 from the pages it saved, by" \
    "itself; keeld hears why. --watch exits 1 here: a device failed, as it should."
show 30 bundle build "$apps/ota-crash.elf" --version 3.0.0 --counter 3 --key "$state/secrets/fleet.key" \
    --trial 20 -o "$demo/v3.kb"
rc=0
show 240 deploy "$demo/v3.kb" --to dev-2 --watch || rc=$?
[ "$rc" -eq 1 ] || die "the v3 deployment ended with $rc, not 1 (one device failed)"
wait_console 30 dev-2 'ota: running app version 1.1.0$'
# keeld hears the app's state from the device's next hello: wait until it says running again.
for _ in $(seq 60); do
    timeout 10 "$keel" devices 2>/dev/null | grep -qE '^dev-2 +yes +1\.1\.0 +running ' && break
    sleep 0.5
done
console dev-2 'update: 3.0.0 staged' 'ota: this build crashes' 'app stopped: ' 'crashed on trial' 'rolled back in' \
    'previous run ended by rollback' | tail -n 7
show 30 devices

say "Bundles that are not the fleet's are refused" \
    "One byte of v2's signed manifest changed: keeld refuses it before any device sees it. Devices" \
    "check again themselves (wrong device type, older counter, unknown key: see tests/ota)."
cp "$demo/v2.kb" "$demo/tampered.kb"
printf '\x09' | dd of="$demo/tampered.kb" bs=1 seek=13 conv=notrunc status=none
if show 30 bundle upload "$demo/tampered.kb"; then die "keeld took a tampered bundle"; fi

say "One command to stop" "The devices (QEMU and all), keeld and Mosquitto."
show 60 down --state "$state"
trap - EXIT

say "Where to look next:"
top=$(cd "$build/.." && pwd)
k=${keel#"$top"/}; s=${state#"$top"/}; d=${demo#"$top"/}
printf '  (keel is %s; export KEEL_CONFIG=%s/secrets/config)\n' "$k" "$s"
printf '  %-50s  %s\n' \
    "keel up --state $s --app $d/v1.kb" "the same fleet again (devices keep their version)" \
    "keel deploy list; keel deploy status ID" "deployments; each device's state and reason" \
    "keel logs --since 10m; keel crashes" "what the devices reported: events, crash reports" \
    "$s/devices/dev-2/console.log" "a device's console: microvisor and app" \
    "$s/keeld.log" "the server's log" \
    "keel device run --state /tmp/d --install build/fw/apps/crashy/crashy.elf" "an app that crashes; the microvisor stays up (README)" \
    "keel channel --help; keel debug --help" "talk to an app; debug it with gdb, encrypted" \
    "docs/cli.md, docs/update-engine.md, docs/bundle.md" "every command; how updates work" \
    "README.md" "the tour"
