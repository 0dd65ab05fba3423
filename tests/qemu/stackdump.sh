#!/usr/bin/env bash
# stackdump.sh KEEL CRASHY_ELF: the stack-dump size policy of crash reports: the app header's
# stack_dump (`--stack-dump BYTES`) bytes of the app's stack are kept (halved while they would
# reach past the app's RAM), 0 keeps none. crashy faults at once (null) with 16, then 0.
. "$(dirname "$0")/lib.sh"
keel=$1 elf=$2
kq_need_file "keel CLI" "$keel"
kq_need_file "crashy app" "$elf"
kq_setup stackdump
printf 'null\n\nnone\n' >"$KQ_TMP/modes.txt"
for size in 16 0; do
    rm -rf "$KQ_TMP/state"
    KQ_RUN_FLAGS=(--stack-dump "$size")
    kq_run "$keel" "$elf" 40 "$KQ_TMP/modes.txt" '^app\| crashy: running null$' '^app\| crashy: alive' \
        '^\[keel\] heartbeat' '^\[keel\] heartbeat'
    # The positive control: the crash report was printed (its pc line), then the stack part.
    kq_expect stopped '^\[keel\] app stopped: ' "stack-dump $size: crashy was not stopped"
    kq_expect pc '^\[keel\]   pc 0x[0-9a-f]+' "stack-dump $size: no crash report" "$stopped"
    kq_expect restart '^\[keel\] app restart ' "stack-dump $size: no restart" "$pc"
    lines=$(kq_count_between '^\[keel\]     0x[0-9a-f]+:( [0-9a-f][0-9a-f])+$' "$pc" "$restart")
    if [ "$size" = 0 ]; then
        [ "$(kq_count_between '^\[keel\]   stack at ' "$pc" "$restart")" -eq 0 ] ||
            kq_fail "--stack-dump 0 still kept stack bytes"
    else
        kq_expect seen "^\\[keel\\]   stack at 0x[0-9a-f]+ \\($size bytes\\):" "--stack-dump $size not honoured" "$pc"
        [ "$lines" -eq $((size / 16)) ] || kq_fail "--stack-dump $size: $lines dump lines, want $((size / 16))"
    fi
    [ "$KQ_FAILS" -eq 0 ] || break
done
kq_finish
