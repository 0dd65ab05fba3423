# Sourced by the test scripts that start host processes built with ASan/UBSan (keeld, simdev, keel,
# the RSP proxy): a sanitizer report from any process the script started fails the test, also from
# a background process whose stderr nobody reads or whose exit code a kill hides. Leak checks run
# when such a process exits normally (keeld and simdev do on SIGTERM).
#
#   san_setup DIR   ASan/LSan reports of every process started from now on go to
#                   DIR/sanitizers/report.<pid>
#   san_check DIR   print every report, and every UBSan report in the files under DIR (UBSan
#                   built into ASan's runtime writes to stderr whatever log_path says: background
#                   processes' stderr must go to files under DIR); false when there is one
san_setup() {
    SAN_DIR="$1/sanitizers"
    mkdir -p "$SAN_DIR"
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$SAN_DIR/report"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1"
}
SAN_PATTERN='runtime error: |ERROR: (AddressSanitizer|LeakSanitizer)|SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer'
san_check() {
    local f found=0
    for f in "${SAN_DIR:-/nonexistent}"/report.*; do
        [ -e "$f" ] || continue
        found=1
        echo "---- sanitizer report ($(basename "$f")) ----"
        head -c 20000 "$f"
    done
    if [ -n "${1:-}" ] && [ -d "$1" ]; then
        while IFS= read -r f; do
            case $f in "${SAN_DIR:-/nonexistent}"/*) continue ;; esac
            found=1
            echo "---- sanitizer report in $f ----"
            grep -E -B2 -A20 "$SAN_PATTERN" "$f" | head -c 20000
        done < <(grep -rlIE "$SAN_PATTERN" "$1" 2>/dev/null)
    fi
    [ "$found" = 0 ]
}
