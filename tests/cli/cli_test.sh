#!/usr/bin/env bash
# Black-box tests of the keel CLI. Usage: cli_test.sh CASE KEEL_BINARY WORKDIR
# Each case runs the real binary and checks exit codes, messages and the device's flash files.
# Needs arm-none-eabi-gcc/objcopy ($ARM_GCC, $ARM_OBJCOPY) to build the test apps.
set -euo pipefail

case_name=$1
keel=$2
work=$3
here=$(cd "$(dirname "$0")" && pwd)
ARM_GCC=${ARM_GCC:-arm-none-eabi-gcc}
ARM_OBJCOPY=${ARM_OBJCOPY:-arm-none-eabi-objcopy}
unset KEEL_FIRMWARE

rm -rf "$work"
mkdir -p "$work"
cd "$work"

fail() { echo "FAIL [$case_name]: $*" >&2; exit 1; }

# run_keel EXPECTED_RC ARGS...: runs keel (bounded), output in out.txt/err.txt.
run_keel() {
    local want=$1 rc=0
    shift
    timeout 30 "$keel" "$@" >out.txt 2>err.txt </dev/null || rc=$?
    if [ "$rc" -ne "$want" ]; then
        echo "--- stdout"; cat out.txt; echo "--- stderr"; cat err.txt
        fail "keel $* exited $rc, expected $want"
    fi
}

expect_in() { # FILE TEXT
    grep -qF -- "$2" "$1" || { echo "--- $1"; cat "$1"; fail "'$2' not in $1"; }
}

# build_app NAME [CODE_ORIGIN] [INITIAL_SP]: a tiny app ELF from fixtures/. -n (no page
# alignment) keeps ld from loading the ELF headers in front of a segment that starts late.
build_app() {
    local name=$1 origin=${2:-0x00200000} sp=${3:-0x28280000}
    "$ARM_GCC" -mcpu=cortex-m33 -mthumb -nostdlib -O1 -DINITIAL_SP="$sp" -Wl,-n \
        -Wl,--defsym=CODE_ORIGIN="$origin" -T "$here/fixtures/app.ld" \
        -o "$name" "$here/fixtures/app.c"
}

# A device with a valid app installed, to check that a bad install leaves it alone.
provisioned() {
    build_app good.elf
    run_keel 0 device install --state st --id test-dev good.elf
    sha256sum st/store.bin >flash.sum
}

# A malformed ELF must fail with "FILE: reason", exit 1, and leave the flash byte-identical;
# into a new directory it must not create the device at all.
bad_install() { # FILE EXPECTED_REASON
    provisioned
    run_keel 1 device install --state st "$1"
    expect_in err.txt "keel device install: $1: "
    expect_in err.txt "$2"
    sha256sum -c --quiet flash.sum || fail "store.bin changed by a failed install"
    run_keel 1 device run --state st --install "$1" --firmware "$keel"
    expect_in err.txt "keel device run: $1: "
    expect_in err.txt "$2"
    sha256sum -c --quiet flash.sum || fail "store.bin changed by a failed run --install"
    run_keel 1 device install --state fresh "$1"
    [ ! -e fresh ] || fail "a failed install created the state directory"
}

case "$case_name" in
usage)
    run_keel 2
    expect_in err.txt "usage: keel"
    run_keel 2 frobnicate
    expect_in err.txt "keel: unknown command 'frobnicate'"
    run_keel 2 device
    run_keel 2 device frob
    expect_in err.txt "keel device: unknown subcommand 'frob'"
    run_keel 2 device run
    expect_in err.txt "--state DIR is required"
    run_keel 2 device run --state st --bogus
    expect_in err.txt "unknown or ambiguous option '--bogus'"
    run_keel 2 device run --state
    expect_in err.txt "option '--state' needs a value"
    run_keel 2 device run --state st --seconds 0
    expect_in err.txt "--seconds wants a whole number"
    run_keel 2 device run --state st --seconds 12x
    run_keel 2 device run --state st --backoff-min 5
    expect_in err.txt "need --install"
    run_keel 2 device install --state st
    expect_in err.txt "give APP.elf"
    run_keel 2 device install --state st a.elf b.elf
    run_keel 2 device info --state st extra
    run_keel 2 device install --state st --id 'bad id!' a.elf
    expect_in err.txt "is not a device id"
    [ ! -e st ] || fail "a usage error created the state directory"
    # Fleet commands check names before asking keeld (none runs here: no connection is tried).
    run_keel 2 channel send dev-1 'bad name!' hi
    expect_in err.txt "'bad name!' is not a channel name"
    run_keel 2 channel read 'dev 1' telemetry
    expect_in err.txt "'dev 1' is not a device id"
    ;;
board)
    # --board names the board (anywhere on the line); an unknown one is a usage error that lists
    # the known ones and touches nothing.
    run_keel 0 --help
    expect_in out.txt "boards (--board NAME"
    expect_in out.txt "an505    *"
    run_keel 2 --board nosuch device install --state st a.elf
    expect_in err.txt "keel: unknown board 'nosuch' (known: "
    run_keel 2 device install --board=nosuch --state st a.elf
    [ ! -e st ] || fail "an unknown board created the state directory"
    build_app blinky.elf
    run_keel 0 device install --board an505 --state dev/one blinky.elf
    expect_in out.txt "installed blinky 0.0.0"
    run_keel 0 --board=an505 device info --state dev/one
    expect_in out.txt "size: "
    expect_in out.txt "at 0x00200000"
    # The state remembers its board: another one is refused, before anything is read or written.
    [ "$(cat dev/one/board)" = an505 ] || fail "dev/one/board does not name the board"
    echo other-board >dev/one/board
    sha256sum dev/one/store.bin >store.sum
    run_keel 1 device install --state dev/one blinky.elf
    expect_in err.txt "holds a device of board 'other-board', not 'an505': give --board other-board"
    run_keel 1 device info --state dev/one
    sha256sum -c --quiet store.sum || fail "store.bin changed although the board was refused"
    ;;
help)
    run_keel 0 --help
    expect_in out.txt "device"
    run_keel 0 device --help
    expect_in out.txt "install"
    for verb in run install info; do
        run_keel 0 device "$verb" --help
        expect_in out.txt "usage: keel device $verb"
    done
    run_keel 0 deploy status --help
    expect_in out.txt "usage: keel deploy BUNDLE"
    grep -q "deploy status status" out.txt && fail "deploy status --help names the verb twice"
    run_keel 0 device run --help
    [ "$(grep -c -- '^  --fleet-ca ' out.txt)" -eq 1 ] || fail "device run --help lists --fleet-ca $(grep -c -- '^  --fleet-ca ' out.txt) times"
    ;;
not_elf)
    echo "this is not an ELF" >notes.elf
    bad_install notes.elf "not an ELF file"
    ;;
truncated)
    build_app whole.elf
    head -c 40 whole.elf >hdr.elf
    bad_install hdr.elf "truncated ELF header"
    # ELF header intact, program header table cut.
    head -c 60 whole.elf >phdr.elf
    bad_install phdr.elf "truncated: the program header table"
    # Headers intact, the first segment's bytes cut off.
    seg_off=$("${ARM_OBJCOPY%objcopy}readelf" -lW whole.elf | awk '$1 == "LOAD" { print $2; exit }')
    head -c $((seg_off + 4)) whole.elf >cut.elf
    bad_install cut.elf "truncated: segment 0"
    ;;
wrong_machine)
    build_app x86.elf
    printf '\x03\x00' | dd of=x86.elf bs=1 seek=18 conv=notrunc status=none # e_machine = EM_386
    bad_install x86.elf "ELF machine is 3, not ARM"
    ;;
outside_region)
    build_app high.elf 0x00380000
    bad_install high.elf "outside the app code region"
    ;;
not_at_base)
    build_app late.elf 0x00200100
    bad_install late.elf "not at the app code region base"
    ;;
bad_vectors)
    build_app sp.elf 0x00200000 0x38100000
    bad_install sp.elf "initial SP 0x38100000 is not"
    expect_in err.txt "Keel SDK linker script"
    ;;
install_info)
    build_app blinky.elf
    # The image must be exactly what the ELF loads at its LMAs, gaps 0xFF (objcopy agrees).
    "$ARM_OBJCOPY" -O binary --gap-fill=0xff blinky.elf blinky.bin
    size=$(stat -c %s blinky.bin)
    sha=$(sha256sum blinky.bin | cut -c1-16)
    run_keel 0 device install --state dev/one --id bench-7 --app-version 1.2.3 \
        --backoff-min 50 --backoff-max 4000 --stack-dump 64 blinky.elf
    expect_in out.txt "provisioned device bench-7 in dev/one"
    expect_in out.txt "installed blinky 1.2.3 ($size bytes, sha256 $sha) into dev/one"
    # One store file (the board's PSRAM on QEMU), internal flash at offset 0 (store.h).
    [ "$(stat -c %s dev/one/store.bin)" -eq $((0x1000000)) ] || fail "store.bin size"
    [ ! -e dev/one/flash_int.bin ] && [ ! -e dev/one/qspi.bin ] || fail "flash files besides the store"
    cmp -n "$size" -i 0:$((0x2000)) blinky.bin dev/one/store.bin ||
        fail "the image in flash (offset 0x2000) differs from the ELF's load image"
    [ "$(head -c 4 dev/one/store.bin)" = "KAPP" ] || fail "no KAPP header at offset 0"
    run_keel 0 device info --state dev/one
    expect_in out.txt "device:    bench-7"
    expect_in out.txt "app:       blinky 1.2.3"
    expect_in out.txt "image:     verified"
    expect_in out.txt "size:      $size bytes at 0x00200000"
    expect_in out.txt "sha256:    $sha"
    expect_in out.txt "backoff 50..4000 ms, stack dump 64 bytes"
    # Reinstall with defaults: the id stays, the policy is the default one.
    run_keel 0 device install --state dev/one blinky.elf
    expect_in out.txt "installed blinky 0.0.0"
    run_keel 0 device info --state dev/one
    expect_in out.txt "device:    bench-7"
    expect_in out.txt "backoff 100..30000 ms, stack dump 128 bytes"
    # A different --id on an existing device is refused and changes nothing.
    sha256sum dev/one/store.bin >flash.sum
    run_keel 1 device install --state dev/one --id other blinky.elf
    expect_in err.txt "already provisioned as bench-7"
    sha256sum -c --quiet flash.sum || fail "flash changed by a refused install"
    # A device id is random when not given; info on a missing device fails cleanly.
    run_keel 0 device install --state dev/two blinky.elf
    grep -Eq '^provisioned device dev-[0-9a-f]{8} in dev/two$' out.txt || fail "random id"
    run_keel 1 device info --state dev/none
    expect_in err.txt "no device state here"
    [ ! -e dev/none ] || fail "info created a state directory"
    run_keel 0 device info --state dev/two
    expect_in out.txt "image:     verified"
    # A damaged image (a bit cleared in flash) and a damaged header are reported, not trusted.
    printf '\x00' | dd of=dev/two/store.bin bs=1 seek=$((0x2000 + 9)) conv=notrunc status=none
    run_keel 0 device info --state dev/two
    expect_in out.txt "image:     DAMAGED"
    printf '\x00' | dd of=dev/two/store.bin bs=1 seek=64 conv=notrunc status=none # name
    run_keel 0 device info --state dev/two
    expect_in out.txt "unreadable header"
    # While another keel holds the device (a running device), nothing else may touch it.
    sha256sum dev/one/store.bin >flash.sum
    rc=0
    flock dev/one/keel.lock timeout 30 "$keel" device install --state dev/one blinky.elf \
        >out.txt 2>err.txt </dev/null || rc=$?
    [ "$rc" -eq 1 ] || fail "install into a locked device exited $rc, expected 1"
    expect_in err.txt "dev/one is in use by another keel command"
    sha256sum -c --quiet flash.sum || fail "flash changed while locked"
    rc=0
    flock dev/one/keel.lock timeout 30 "$keel" device info --state dev/one >out.txt 2>err.txt ||
        rc=$?
    [ "$rc" -eq 1 ] || fail "info on a locked device exited $rc, expected 1"
    ;;
bad_policy)
    build_app p.elf
    run_keel 2 device install --state st --app-version 1.2 p.elf
    expect_in err.txt "--app-version wants MAJOR.MINOR.PATCH"
    run_keel 2 device install --state st --stack-dump 257 p.elf
    run_keel 2 device install --state st --backoff-min 500 --backoff-max 100 p.elf
    expect_in err.txt "larger than --backoff-max"
    [ ! -e st ] || fail "a usage error created the state directory"
    ;;
missing_firmware)
    # A copy of keel with no firmware built beside it, and no $KEEL_FIRMWARE.
    mkdir -p bin
    cp "$keel" bin/keel
    keel=$PWD/bin/keel
    run_keel 1 device run --state st --seconds 1
    expect_in err.txt "no secure firmware found: run 'make'"
    [ ! -e st ] || fail "a run without firmware created the state directory"
    run_keel 1 device run --state st --firmware nowhere.elf
    expect_in err.txt "firmware nowhere.elf (from --firmware): No such file"
    KEEL_FIRMWARE=$PWD/gone.elf run_keel 1 device run --state st
    expect_in err.txt "(from \$KEEL_FIRMWARE)"
    ;;
run_firmware)
    # The real microvisor in QEMU: a bounded run ends with exit 0 and no sockets left; SIGINT
    # stops the device ("device stopped", exit 0) and QEMU with it.
    fw=${KEEL_TEST_FIRMWARE:-}
    if [ -z "$fw" ] || [ ! -f "$fw" ]; then
        echo "SKIP [$case_name]: no firmware at '$fw' (run make)"
        exit 77
    fi
    build_app app.elf
    # Boot words beyond the store's record (255 bytes) are a usage error, before anything runs.
    run_keel 2 device run --state st --firmware "$fw" --append "$(printf 'x%.0s' $(seq 300))"
    expect_in err.txt "the boot words are longer than 255 bytes"
    run_keel 0 device run --state st --firmware "$fw" --install app.elf --seconds 3 --icount
    expect_in out.txt "installed app 0.0.0"
    [ "$(wc -l <out.txt)" -gt 1 ] || fail "no console output from the device"
    [ ! -e st/run/uart0.sock ] && [ ! -e st/run/uart1.sock ] || fail "sockets left in st/run"
    timeout 30 "$keel" device run --state st --firmware "$fw" >run.txt 2>run.err </dev/null &
    pid=$!
    for _ in $(seq 100); do
        [ -s run.txt ] && break
        sleep 0.1
    done
    [ -s run.txt ] || fail "no console output within 10 s"
    sha256sum st/store.bin >flash.sum
    run_keel 1 device install --state st app.elf
    expect_in err.txt "is in use by another keel command"
    sha256sum -c --quiet flash.sum || fail "install changed the flash of a running device"
    kill -INT "$pid"
    rc=0
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || { cat run.txt run.err; fail "SIGINT: exit $rc, expected 0"; }
    expect_in run.txt "device stopped"
    for q in $(pgrep -x qemu-system-arm || true); do
        [ "$(readlink "/proc/$q/cwd" 2>/dev/null)" != "$PWD/st" ] || fail "QEMU $q still runs"
    done
    [ ! -e st/run/uart0.sock ] || fail "sockets left after SIGINT"
    ;;
keys_new)
    # A P-256 pair in PEM: the private key 0600, the public key what openssl derives from it;
    # an existing key is never overwritten; bad names and keys are refused with a reason.
    run_keel 0 keys new fleet --dir keys
    expect_in out.txt "key id:"
    [ "$(stat -c %a keys/fleet.key)" = 600 ] || fail "fleet.key mode $(stat -c %a keys/fleet.key)"
    expect_in keys/fleet.key "-----BEGIN EC PRIVATE KEY-----"
    expect_in keys/fleet.pub "-----BEGIN PUBLIC KEY-----"
    openssl ec -in keys/fleet.key -pubout 2>/dev/null | cmp -s - keys/fleet.pub ||
        fail "fleet.pub is not the public key of fleet.key"
    sha256sum keys/fleet.key >key.sum
    run_keel 1 keys new fleet --dir keys
    expect_in err.txt "already exists: a signing key is never overwritten"
    sha256sum -c --quiet key.sum || fail "an existing key was overwritten"
    run_keel 1 keys new ../evil --dir keys
    expect_in err.txt "is not a key name"
    run_keel 2 keys new
    expect_in err.txt "name the key"
    run_keel 1 keys new k --dir no/such/dir
    expect_in err.txt "cannot create directory no/such/dir"
    ;;
bundle_build)
    # The bundle's region is exactly the app slot 'keel device install' writes (same ELF, same
    # version): what keeld compares a device's hello against. The build is deterministic.
    build_app app.elf
    run_keel 0 keys new fleet --dir keys
    run_keel 0 bundle build app.elf --version 1.2.3 --key keys/fleet.key --counter 7 \
        --min-uv 0.1.0 --politeness 30 --trial 20 --backoff-min 50 --backoff-max 900 \
        --debug-key keys/fleet.pub -o app.kb
    expect_in out.txt "built app.kb: app 1.2.3, counter 7"
    run_keel 0 bundle build app.elf --version 1.2.3 --key keys/fleet.key --counter 7 \
        --min-uv 0.1.0 --politeness 30 --trial 20 --backoff-min 50 --backoff-max 900 \
        --debug-key keys/fleet.pub -o again.kb
    cmp -s app.kb again.kb || fail "two builds of the same input differ"
    run_keel 0 bundle inspect app.kb --key keys/fleet.pub
    for want in "version:      1.2.3" "counter:      7" "min uv:       0.1.0" \
                "device type:  0x505" "signature:    verified with keys/fleet.pub" \
                "crash back-off 50..900 ms, politeness 30 s, trial 20 s" "debug key:    key id" \
                "layer 0:      app region, 1056768 bytes (129 blocks)" "payload matches"; do
        expect_in out.txt "$want"
    done
    run_keel 0 bundle inspect app.kb --json
    cp out.txt insp.json
    region_sha=$(python3 -c 'import json,sys; print(json.load(open("out.txt"))["layers"][0]["region_sha256"])')
    [ "$(python3 -c 'import json; print(json.load(open("out.txt"))["signature"])')" = unchecked ] ||
        fail "--json without --key should say the signature is unchecked"
    run_keel 0 device install --state st --app-version 1.2.3 --backoff-min 50 --backoff-max 900 app.elf
    slot_sha=$(head -c 1056768 st/store.bin | sha256sum | cut -d' ' -f1)
    [ "$region_sha" = "$slot_sha" ] ||
        fail "bundle region sha $region_sha != installed app slot $slot_sha"
    [ "$(sha256sum <app.kb | cut -d' ' -f1)" = \
      "$(python3 -c 'import json; print(json.load(open("insp.json"))["sha256"])')" ] ||
        fail "inspect's sha256 is not the file's"
    ;;
bundle_diff)
    # A version bump: one page differs (the app header); the delta is checked by keel itself
    # (decoded back), and here independently: it is small, written whole, and its header names
    # both app slots' sizes. Bad inputs are refused with a sentence.
    build_app app.elf
    run_keel 0 keys new fleet --dir keys
    run_keel 0 bundle build app.elf --version 1.0.0 --key keys/fleet.key -o v1.kb
    run_keel 0 bundle build app.elf --version 1.0.1 --key keys/fleet.key -o v2.kb
    run_keel 0 bundle diff v1.kb v2.kb -o p.kdlt
    expect_in out.txt "v1.kb (1.0.0) -> v2.kb (1.0.1)"
    expect_in out.txt "pages: 1 changed"
    run_keel 0 bundle diff v1.kb v2.kb --json --decode-runs 2
    python3 - <<'PY' || fail "bundle diff --json is not what the patch file says"
import json, os, struct
j = json.load(open("out.txt"))
p = open("p.kdlt", "rb").read()
assert p[:4] == b"KDLT" and len(p) == j["patch_bytes"], (p[:4], len(p), j)
old_len, new_len = struct.unpack_from("<II", p, 8)
assert new_len == j["content_bytes"] and old_len == new_len, (old_len, new_len, j)
assert j["blocks_changed"] == 1 and j["patch_bytes"] < 200, j
assert j["pages_bytes"] == j["manifest_bytes"] + 8192, j
assert j["delta_manifest_bytes"] == 392, j
assert j["delta_wire_bytes"] == 392 + j["patch_bytes"], j
PY
    head -c 100 v1.kb >trunc.kb
    run_keel 1 bundle diff trunc.kb v2.kb
    expect_in err.txt "trunc.kb: not a bundle"
    run_keel 2 bundle diff v1.kb
    expect_in err.txt "give OLD.kb and NEW.kb"
    run_keel 2 bundle diff v1.kb v2.kb --decode-runs 0
    expect_in err.txt "--decode-runs: give 1..1000"
    ;;
bundle_delta)
    # keel bundle build --base: a delta bundle beside the page bundle, named after the base's
    # region hash; installed by the real update engine over a device that runs the base, it
    # leaves exactly the page bundle's region. A device that runs something else refuses it.
    build_app app.elf
    run_keel 0 keys new fleet --dir keys
    run_keel 0 bundle build app.elf --version 1.0.0 --key keys/fleet.key -o v1.kb
    run_keel 0 bundle build app.elf --version 1.0.1 --key keys/fleet.key -o v2.kb --base v1.kb
    base=$(python3 -c 'import json; print(json.load(open("/dev/stdin"))["layers"][0]["region_sha256"][:12])' \
           < <(timeout 30 "$keel" bundle inspect v1.kb --json))
    [ -f "v2.delta-$base.kb" ] || fail "no v2.delta-$base.kb"
    expect_in out.txt "built v2.delta-$base.kb: delta from v1.kb"
    run_keel 0 bundle inspect "v2.delta-$base.kb" --key keys/fleet.pub
    expect_in out.txt "manifest:     320 bytes + 72 bytes signature"
    expect_in out.txt "signature:    verified"
    expect_in out.txt "payload matches"
    run_keel 0 device provision --state st --update-key keys/fleet.pub
    run_keel 0 device install --state st v1.kb
    run_keel 0 device install --state st "v2.delta-$base.kb"
    want=$(python3 -c 'import json; print(json.load(open("/dev/stdin"))["layers"][0]["region_sha256"])' \
           < <(timeout 30 "$keel" bundle inspect v2.kb --json))
    [ "$(head -c 1056768 st/store.bin | sha256sum | cut -d' ' -f1)" = "$want" ] ||
        fail "the delta did not leave v2's region"
    run_keel 0 device provision --state other --update-key keys/fleet.pub
    run_keel 0 bundle build app.elf --version 0.9.0 --key keys/fleet.key -o v0.kb
    run_keel 0 device install --state other v0.kb
    run_keel 1 device install --state other "v2.delta-$base.kb"
    expect_in err.txt "another base"
    # An ELF base: the slot 'keel device install --app-version 1.0.0 app.elf' writes.
    run_keel 0 device provision --state fromelf --update-key keys/fleet.pub
    run_keel 0 device install --state fromelf --app-version 1.0.0 app.elf
    run_keel 0 bundle build app.elf --version 1.0.3 --key keys/fleet.key -o v4.kb --base app.elf@1.0.0
    elfbase=$(head -c 1056768 fromelf/store.bin | sha256sum | cut -c1-12)
    [ -f "v4.delta-$elfbase.kb" ] || fail "no v4.delta-$elfbase.kb (the ELF base's region hash)"
    run_keel 0 device install --state fromelf "v4.delta-$elfbase.kb"
    want=$(python3 -c 'import json; print(json.load(open("/dev/stdin"))["layers"][0]["region_sha256"])' \
           < <(timeout 30 "$keel" bundle inspect v4.kb --json))
    [ "$(head -c 1056768 fromelf/store.bin | sha256sum | cut -d' ' -f1)" = "$want" ] ||
        fail "the delta from the ELF base did not leave v4's region"
    run_keel 1 bundle build app.elf --version 1.0.3 --key keys/fleet.key -o v5.kb --base app.elf@1.0
    expect_in err.txt "the version after '@' wants MAJOR.MINOR.PATCH"
    [ ! -e v5.kb ] || fail "a build with a bad --base version wrote its bundle"
    run_keel 1 bundle build app.elf --version 1.0.2 --key keys/fleet.key -o v3.kb --base nope.kb
    expect_in err.txt "nope.kb: cannot open"
    [ ! -e v3.kb ] || fail "a build with a bad --base wrote its bundle"
    ;;
bundle_refused)
    # Every kind of bad input: a sentence saying what is wrong, exit 1 (2 for usage), no output
    # file left behind by a failed build.
    build_app app.elf
    run_keel 0 keys new fleet --dir keys
    run_keel 0 keys new other --dir keys
    run_keel 0 bundle build app.elf --version 1.0.0 --key keys/fleet.key -o app.kb
    run_keel 2 bundle build app.elf --key keys/fleet.key -o x.kb
    expect_in err.txt "--version X.Y.Z is required"
    run_keel 2 bundle build app.elf --version 1.0 --key keys/fleet.key -o x.kb
    expect_in err.txt "--version wants MAJOR.MINOR.PATCH"
    run_keel 2 bundle build app.elf --version 1.0.0 -o x.kb
    expect_in err.txt "--key K.key is required"
    run_keel 2 bundle build app.elf --version 1.0.0 --key keys/fleet.key
    expect_in err.txt "-o APP.kb is required"
    run_keel 2 bundle build app.elf --version 1.0.0 --key keys/fleet.key -o x.kb --device-type x
    expect_in err.txt "--device-type wants a number"
    run_keel 1 bundle build app.elf --version 1.0.0 --key keys/fleet.pub -o x.kb
    expect_in err.txt "a public key, not a private key"
    echo "not a key" >junk.key
    run_keel 1 bundle build app.elf --version 1.0.0 --key junk.key -o x.kb
    expect_in err.txt "--key junk.key: not a PEM key"
    openssl ecparam -name secp384r1 -genkey -noout -out p384.key 2>/dev/null
    run_keel 1 bundle build app.elf --version 1.0.0 --key p384.key -o x.kb
    expect_in err.txt "another curve (Keel needs P-256"
    echo "garbage" >bad.elf
    run_keel 1 bundle build bad.elf --version 1.0.0 --key keys/fleet.key -o x.kb
    expect_in err.txt "bad.elf: "
    [ ! -e x.kb ] && [ ! -e x.kb.tmp ] || fail "a failed build left an output file"
    size=$(stat -c %s app.kb)
    head -c 100 app.kb >trunc.kb
    run_keel 1 bundle inspect trunc.kb
    expect_in err.txt "trunc.kb: not a valid bundle: the file ends before the manifest"
    head -c $((size - 1)) app.kb >short.kb
    run_keel 1 bundle inspect short.kb
    expect_in err.txt "the payload does not match the manifest"
    expect_in out.txt "WRONG SIZE"
    head -c 4096 /dev/urandom >random.kb
    run_keel 1 bundle inspect random.kb
    expect_in err.txt "random.kb: not a valid bundle: the manifest is malformed"
    # A manifest field changed after signing (the version, offset 12).
    cp app.kb tampered.kb
    printf '\x09' | dd of=tampered.kb bs=1 seek=12 conv=notrunc status=none
    run_keel 1 bundle inspect tampered.kb --key keys/fleet.pub
    expect_in err.txt "the signature does not verify"
    run_keel 1 bundle inspect app.kb --key keys/other.pub
    expect_in err.txt "signed by another key than keys/other.pub"
    # The last payload byte changed: the content hash catches it.
    cp app.kb payload.kb
    printf '\x5a' | dd of=payload.kb bs=1 seek=$((size - 1)) conv=notrunc status=none
    run_keel 1 bundle inspect payload.kb --key keys/fleet.pub
    expect_in out.txt "PAYLOAD DOES NOT MATCH"
    run_keel 1 bundle inspect nowhere.kb
    expect_in err.txt "nowhere.kb: cannot open"
    ;;
*)
    fail "unknown case"
    ;;
esac
echo "PASS [$case_name]"
