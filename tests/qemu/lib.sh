# lib.sh: helpers for the QEMU test drivers (sourced). A driver runs one device with
# `keel device run`, captures its console and asserts on it; every failure says what was missing
# and where the console log is.
set -u

KQ_TMP=""
KQ_OUT=""
KQ_RUN_FLAGS=() # more `keel device run` flags for kq_run (e.g. --backoff-min)
KQ_FAILS=0

kq_fail() {
    echo "FAIL: $*" >&2
    KQ_FAILS=$((KQ_FAILS + 1))
}

kq_die() {
    echo "FAIL: $*" >&2
    exit 1
}

# kq_setup NAME: a private temp dir, removed on exit (the console is printed first if anything failed).
kq_setup() {
    KQ_TMP=$(mktemp -d "${TMPDIR:-/tmp}/keel-$1.XXXXXX") || kq_die "cannot create a temp dir"
    KQ_OUT="$KQ_TMP/console.txt"
    # keel (and what it starts) is built with ASan/UBSan: a report fails the test.
    . "$(dirname "${BASH_SOURCE[0]}")/../lib/sanitizers.sh"
    san_setup "$KQ_TMP"
    trap 'kq_cleanup' EXIT
}

kq_cleanup() {
    local san=0
    if ! san_check "$KQ_TMP" >&2; then
        echo "FAIL: a host process of this test reported a sanitizer finding (above)" >&2
        KQ_FAILS=$((KQ_FAILS + 1))
        san=1
    fi
    if [ "$KQ_FAILS" -ne 0 ] && [ -f "$KQ_OUT" ]; then
        echo "---- device console ($KQ_OUT) ----" >&2
        head -c 60000 "$KQ_OUT" >&2
        echo "---- end of console ----" >&2
    fi
    [ -n "$KQ_TMP" ] && rm -rf "$KQ_TMP"
    [ "$san" = 0 ] || exit 1
}

# kq_need_file WHAT PATH: a clear failure (not a skip) when an input is missing.
kq_need_file() {
    [ -f "$2" ] || kq_die "$1 not found at '$2' (build it first: 'make'; the QEMU tests need the microvisor, the apps and the keel CLI)"
}

# kq_run KEEL ELF SECONDS [STDIN [UNTIL_ERE...]]: run one device, console into $KQ_OUT (CR
# stripped). With UNTIL_EREs the run ends as soon as the console has a line matching each of them,
# in that order (the evidence the test waits for; SECONDS is then only the bound); without, it
# runs SECONDS. KQ_RUN_FLAGS: more flags for keel device run. The microvisor prints a heartbeat every KQ_HEARTBEAT_MS (default 200).
kq_run() {
    local keel=$1 elf=$2 secs=$3 input=${4:-/dev/null} rc pid i
    shift 4 2>/dev/null || shift $#
    mkdir -p "$KQ_TMP/state"
    : >"$KQ_TMP/raw.txt"
    timeout --kill-after=5 $((secs + 30)) "$keel" device run --state "$KQ_TMP/state" --install "$elf" \
        --seconds "$secs" --append "heartbeat=${KQ_HEARTBEAT_MS:-200}" "${KQ_RUN_FLAGS[@]}" \
        <"$input" >>"$KQ_TMP/raw.txt" 2>&1 &
    pid=$!
    if [ $# -gt 0 ]; then
        for ((i = 0; i < (secs + 10) * 10; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            if kq_seq_seen "$KQ_TMP/raw.txt" "$@"; then
                # To keel itself, which stops QEMU and exits 0 ("device stopped"): a signal to
                # timeout would go to its whole process group, QEMU included, and reach keel twice.
                pkill -TERM -P "$pid" 2>/dev/null
                break
            fi
            sleep 0.1
        done
    fi
    wait "$pid"
    rc=$?
    tr -d '\r' <"$KQ_TMP/raw.txt" >"$KQ_OUT"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        kq_fail "keel device run did not stop by itself after --seconds $secs (killed by timeout)"
    elif [ "$rc" -ne 0 ]; then
        kq_fail "keel device run exited with status $rc"
    fi
}

# kq_seq_seen FILE ERE...: FILE has lines matching each ERE, in that order.
kq_seq_seen() {
    local f=$1; shift
    tr -d '\r' <"$f" | awk 'BEGIN { for (i = 1; i < ARGC; i++) re[i] = ARGV[i]; n = ARGC - 1; ARGC = 1; k = 1 }
        k <= n && $0 ~ re[k] { k++ } END { exit !(k > n) }' "$@"
}

# kq_line_after ERE AFTER: number of the first console line after line AFTER that matches ERE.
kq_line_after() {
    KQ_RE="$1" awk -v after="$2" 'BEGIN { re = ENVIRON["KQ_RE"] } NR > after && $0 ~ re { print NR; exit }' "$KQ_OUT"
}

# kq_count_between ERE FROM TO: matching lines strictly between two line numbers.
kq_count_between() {
    KQ_RE="$1" awk -v from="$2" -v to="$3" 'BEGIN { re = ENVIRON["KQ_RE"]; n = 0 }
        NR > from && NR < to && $0 ~ re { n++ } END { print n }' "$KQ_OUT"
}

# kq_expect VAR ERE DESCRIPTION [AFTER]: the line must appear (after line AFTER); VAR gets its
# number (0 when missing, so later searches still run and report their own failures).
kq_expect() {
    local n
    n=$(kq_line_after "$2" "${4:-0}")
    if [ -z "$n" ]; then
        kq_fail "$3: no console line matching /$2/${4:+ after line $4}"
        n=0
    fi
    printf -v "$1" '%s' "$n"
}

# kq_expect_none ERE DESCRIPTION: no line may match.
kq_expect_none() {
    local n
    n=$(kq_line_after "$1" 0)
    [ -z "$n" ] || kq_fail "$2: unexpected line $n: $(sed -n "${n}p" "$KQ_OUT")"
}

# kq_check_heartbeats: heartbeats present and their uptime strictly increasing (the secure tick
# never stopped, whatever the app did).
kq_check_heartbeats() {
    local bad
    [ -n "$(kq_line_after '^\[keel\] heartbeat up=[0-9]+ms' 0)" ] || { kq_fail "no [keel] heartbeat line"; return; }
    bad=$(awk 'match($0, /^\[keel\] heartbeat up=[0-9]+ms/) {
            up = substr($0, 21, RLENGTH - 22) + 0
            if (seen && up <= last) { print NR; exit }
            last = up; seen = 1 }' "$KQ_OUT")
    [ -z "$bad" ] || kq_fail "heartbeat uptime did not increase at line $bad"
}

kq_finish() {
    if [ "$KQ_FAILS" -ne 0 ]; then
        exit 1
    fi
    echo "PASS"
    exit 0
}
