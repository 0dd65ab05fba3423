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
    sha256sum st/flash_int.bin >flash.sum
}

# A malformed ELF must fail with "FILE: reason", exit 1, and leave the flash byte-identical;
# into a new directory it must not create the device at all.
bad_install() { # FILE EXPECTED_REASON
    provisioned
    run_keel 1 device install --state st "$1"
    expect_in err.txt "keel device install: $1: "
    expect_in err.txt "$2"
    sha256sum -c --quiet flash.sum || fail "flash_int.bin changed by a failed install"
    run_keel 1 device run --state st --install "$1" --firmware "$keel"
    expect_in err.txt "keel device run: $1: "
    expect_in err.txt "$2"
    sha256sum -c --quiet flash.sum || fail "flash_int.bin changed by a failed run --install"
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
    [ "$(stat -c %s dev/one/flash_int.bin)" -eq $((0x200000)) ] || fail "flash_int.bin size"
    [ "$(stat -c %s dev/one/qspi.bin)" -eq $((0x800000)) ] || fail "qspi.bin size"
    cmp -n "$size" -i 0:$((0x2000)) blinky.bin dev/one/flash_int.bin ||
        fail "the image in flash (offset 0x2000) differs from the ELF's load image"
    [ "$(head -c 4 dev/one/flash_int.bin)" = "KAPP" ] || fail "no KAPP header at offset 0"
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
    sha256sum dev/one/flash_int.bin >flash.sum
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
    printf '\x00' | dd of=dev/two/flash_int.bin bs=1 seek=$((0x2000 + 9)) conv=notrunc status=none
    run_keel 0 device info --state dev/two
    expect_in out.txt "image:     DAMAGED"
    printf '\x00' | dd of=dev/two/flash_int.bin bs=1 seek=64 conv=notrunc status=none # name
    run_keel 0 device info --state dev/two
    expect_in out.txt "unreadable header"
    # While another keel holds the device (a running device), nothing else may touch it.
    sha256sum dev/one/flash_int.bin >flash.sum
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
    sha256sum st/flash_int.bin >flash.sum
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
*)
    fail "unknown case"
    ;;
esac
echo "PASS [$case_name]"
