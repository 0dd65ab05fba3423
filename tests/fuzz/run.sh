#!/usr/bin/env bash
# A short run of one fuzz target (a CTest case): replay the committed crash inputs, then fuzz for
# a few seconds from the seed corpus.
# Usage: run.sh <fuzz_binary> <seed dir> <tests/fuzz dir> <work dir> <seconds>
set -u
bin=$1 seeds=$2 src=$3 work=$4 secs=$5
name=$(basename "$bin"); name=${name#fuzz_}
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }
[ -n "$(ls -A "$seeds" 2>/dev/null)" ] || { echo "FAIL: no seeds in $seeds"; exit 1; }
rm -rf "$work"; mkdir -p "$work/corpus"
dict=()
[ -f "$src/dict/$name.dict" ] && dict=(-dict="$src/dict/$name.dict")

# 1. Every input that once crashed this target must now pass.
reg="$src/regressions/$name"
if [ -d "$reg" ] && [ -n "$(ls -A "$reg")" ]; then
    if ! "$bin" -runs=1 "$reg"/* >"$work/regressions.log" 2>&1; then
        cat "$work/regressions.log"; echo "FAIL: a committed crash input of $name crashes again"; exit 1
    fi
    echo "regressions: $(ls "$reg" | wc -l) inputs pass"
fi

# 2. Fuzz. libFuzzer exits non-zero on a crash, a leak, a timeout or a sanitizer report.
"$bin" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/" "${dict[@]}" "$work/corpus" "$seeds" >"$work/fuzz.log" 2>&1
rc=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log")
cov=$(grep -o 'cov: [0-9]*' "$work/fuzz.log" | tail -1)
if [ $rc -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$work/fuzz.log"; then
    tail -60 "$work/fuzz.log"
    echo "FAIL: $name found a crash (exit $rc); the input is in $work/ (crash-*, timeout-*, leak-*)"
    exit 1
fi
# It ran: every seed was executed (INITED) and mutations after them (a slow target on a loaded
# machine may manage only a few dozen in the time).
nseeds=$(ls "$seeds" | wc -l)
if ! grep -q 'INITED' "$work/fuzz.log" || [ -z "$runs" ] || [ "$runs" -le "$nseeds" ]; then
    tail -20 "$work/fuzz.log"; echo "FAIL: $name executed ${runs:-no} inputs ($nseeds seeds)"; exit 1
fi
echo "PASS: $name: $runs executions in ${secs}s, $cov"
