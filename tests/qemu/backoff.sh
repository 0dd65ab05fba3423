#!/usr/bin/env bash
# backoff.sh KEEL CRASHY_ELF: the restart back-off of a crash-looping app doubles from the
# minimum, stops at the maximum, and starts again from the minimum after a run that lasted at
# least the maximum (uv_sup.c handle_stop). crashy is fed: null x5 (immediate faults), irqoff (a
# watchdog stop after its 300 ms watchdog period, longer than the 250 ms maximum), null, none.
. "$(dirname "$0")/lib.sh"
keel=$1 elf=$2
kq_need_file "keel CLI" "$keel"
kq_need_file "crashy app" "$elf"
kq_setup backoff
printf 'null\nnull\nnull\nnull\nnull\nirqoff\nnull\nnone\n' >"$KQ_TMP/modes.txt"
KQ_RUN_FLAGS=(--backoff-min 50 --backoff-max 250)
kq_run "$keel" "$elf" 60 "$KQ_TMP/modes.txt" '^app\| crashy: running none$' '^app\| crashy: alive' \
    '^\[keel\] heartbeat' '^\[keel\] heartbeat'

delays=$(sed -n 's/^\[keel\] app restart [0-9]* in \([0-9]*\) ms$/\1/p' "$KQ_OUT" | tr '\n' ' ')
want="50 100 200 250 250 50 100 "
[ "$delays" = "$want" ] || kq_fail "restart delays were '$delays', want '$want' (double, cap at 250, back to 50 after a run of >= 250 ms)"
kq_expect seen '^\[keel\] app stopped: watchdog' "irqoff was not stopped by the watchdog"
kq_finish
