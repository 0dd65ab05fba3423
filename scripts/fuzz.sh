#!/usr/bin/env bash
# The fuzz campaign (`make fuzz`, issue 17): every target of tests/fuzz/targets.cmake in turn, each
# until it has run at least FUZZ_MIN_EXECS inputs AND its coverage (edges) did not grow over the
# last quarter of its executions, or until FUZZ_MAX_SECONDS (then the row says the rule was not met).
# The corpus grows in build/fuzz-campaign/<target>/corpus (kept between campaigns, so a second
# campaign starts where the first stopped); findings (crash-*, timeout-*, leak-*) land next to it.
# Writes the "## Fuzzing (issue 17)" section of bench/results.md.
#
# Usage: scripts/fuzz.sh [BUILD_DIR]
#   FUZZ_MIN_EXECS    executions per target before the flat-coverage rule may stop it (10000000)
#   FUZZ_MAX_SECONDS  time cap per target (43200 = 12 h)
#   FUZZ_SLICE        seconds per libFuzzer run; coverage is sampled after each (60)
#   FUZZ_TARGETS      space-separated subset (default: all; " " runs none and rewrites the section)
#   FUZZ_NOTE         a sentence for the section (e.g. why the campaign was shortened)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd)
bin_dir="$build/host/fuzz"
work="$build/fuzz-campaign"
min_execs=${FUZZ_MIN_EXECS:-10000000}
max_secs=${FUZZ_MAX_SECONDS:-43200}
slice=${FUZZ_SLICE:-60}
targets=${FUZZ_TARGETS:-$(sed -n '/^set(KEEL_FUZZ_TARGETS/,/^)/p' "$root/tests/fuzz/targets.cmake" | sed '1d;$d' | awk '{print $1}')}
mkdir -p "$work"

rows=""
failed=0
for t in $targets; do
    bin="$bin_dir/fuzz_$t"
    [ -x "$bin" ] || { echo "fuzz: $bin not built (make host)" >&2; exit 1; }
    dir="$work/$t"
    mkdir -p "$dir/corpus" "$dir/findings"
    dict=()
    [ -f "$root/tests/fuzz/dict/$t.dict" ] && dict=(-dict="$root/tests/fuzz/dict/$t.dict")
    execs=0 secs=0 cov=0 findings=0 verdict=""
    hist_e=() hist_c=()  # cumulative executions and coverage after each slice
    while :; do
        start=$(date +%s.%N)
        timeout $((slice * 3 + 60)) "$bin" -max_total_time="$slice" -timeout=30 -rss_limit_mb=4096 \
            -print_final_stats=1 -artifact_prefix="$dir/findings/" "${dict[@]}" \
            "$dir/corpus" "$bin_dir/seeds/$t" >"$dir/last.log" 2>&1
        rc=$?
        end=$(date +%s.%N)
        n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/last.log")
        c=$(grep -o 'cov: [0-9]*' "$dir/last.log" | tail -1 | cut -d' ' -f2)
        execs=$((execs + ${n:-0}))
        secs=$(awk -v a="$secs" -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", a + e - s }')
        [ -n "$c" ] && [ "$c" -gt "$cov" ] && cov=$c
        hist_e+=("$execs") hist_c+=("$cov")
        if [ $rc -ne 0 ]; then
            cp "$dir/last.log" "$dir/findings/log-$(date +%s)"
            findings=$(ls "$dir/findings" | grep -cE '^(crash|timeout|leak|oom|slow-unit)-')
            echo "fuzz: $t: finding (exit $rc), see $dir/findings" >&2
        fi
        # The rule: enough executions, and the coverage at 3/4 of them equals the coverage now.
        if [ "$execs" -ge "$min_execs" ]; then
            q=$((execs * 3 / 4)) at_q=0
            for i in "${!hist_e[@]}"; do
                [ "${hist_e[$i]}" -le "$q" ] && at_q=${hist_c[$i]}
            done
            if [ "$at_q" -eq "$cov" ]; then verdict="flat over the last quarter"; break; fi
        fi
        if awk -v s="$secs" -v m="$max_secs" 'BEGIN { exit !(s >= m) }'; then
            verdict="time cap (${max_secs} s): rule not met"; break
        fi
    done
    rate=$(awk -v e="$execs" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? e / s : 0) }')
    corpus=$(ls "$dir/corpus" | wc -l)
    echo "fuzz: $t: $execs executions in $secs s ($rate/s), $cov edges, corpus $corpus, findings $findings: $verdict"
    # Each target's row is kept with its corpus: a campaign of some targets updates theirs, and
    # the section lists every target's latest.
    echo "| \`$t\` | $execs | $rate | $cov | $corpus | $findings | $verdict | $(date -u +%Y-%m-%d) |" >"$dir/row"
    [ "$findings" -gt 0 ] && failed=1
done
for t in $(sed -n '/^set(KEEL_FUZZ_TARGETS/,/^)/p' "$root/tests/fuzz/targets.cmake" | sed '1d;$d' | awk '{print $1}'); do
    [ -f "$work/$t/row" ] && rows+="$(cat "$work/$t/row")"$'\n'
done

regs=$(cd "$root/tests/fuzz/regressions" 2>/dev/null && for d in */; do
    printf '%s: %s; ' "\`${d%/}\`" "$(ls "$d" | sed 's/^/`/; s/$/`/' | paste -sd, -)"; done | sed 's/; $//')
regs=${regs:-none}
section=$(cat <<EOF2
## Fuzzing (issue 17)

Measured $(date -u +%Y-%m-%d) by \`make fuzz\` (\`scripts/fuzz.sh\`): each libFuzzer target (ASan + UBSan,
\`tests/fuzz/\`) until at least $min_execs executions and no new coverage over the last quarter of
them (cap $max_secs s per target), one process at a time. Edges: libFuzzer's \`cov:\` (instrumented
edges reached by the corpus). Findings: inputs that crashed, leaked or hung, in
\`build/fuzz-campaign/<target>/findings\`; each one found so far is a regression input under
\`tests/fuzz/regressions/\` with its fix.${FUZZ_NOTE:+

$FUZZ_NOTE}

| target | executions | exec/s | edges | corpus | findings | stopped by | run |
|---|---|---|---|---|---|---|---|
$rows
Regression inputs (crashes found and fixed, replayed by every \`fuzz.<target>\` CTest case): $regs.
EOF2
)
bash "$root/scripts/write-bench-section.sh" "$root/bench/results.md" <<<"$section"
echo "$section"
exit $failed
