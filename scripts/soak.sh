#!/usr/bin/env bash
# The power-cut soak (`make soak`, issue 17): the host sweep of the update engine
# (tests/unit/test_upd_sweep.c, the real engine on the strict NOR model of internal flash and
# QSPI) with every second cut (KEEL_SWEEP_DEEP=1: a cut at every operation of the recovery from
# every first cut, with every seed) and SOAK_RANDOM random double cuts per scenario. A brick (a
# device that does not end with exactly the old or the new image, or cannot finish the scenario)
# fails the run at once. Writes the "## Power-cut soak (issue 17)" section of bench/results.md.
# Usage: scripts/soak.sh [BUILD_DIR]   (SOAK_RANDOM: default 1000, SOAK_SEED: default 1,
# SOAK_DEEP=0: second cuts of a sample of first cuts only, as in CI: a shortened soak)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="${1:-build}/host/tests/unit/test_upd_sweep"
[ -x "$bin" ] || { echo "soak: $bin not found: run 'make host' first" >&2; exit 1; }
random=${SOAK_RANDOM:-1000} seed=${SOAK_SEED:-1} deep=${SOAK_DEEP:-1}
start=$(date +%s)
rc=0
out=$(KEEL_SWEEP_DEEP=$deep KEEL_SWEEP_RANDOM=$random KEEL_SWEEP_SEED=$seed timeout 7200 "$bin" 2>&1) || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "$out" >&2
    case $rc in
    124|137|143) echo "soak: the sweep was stopped (exit $rc) before it finished" >&2 ;;
    *) echo "soak: the sweep FAILED: a power cut left a device that did not recover (a brick); see above" >&2 ;;
    esac
    exit 1
fi
secs=$(($(date +%s) - start))
rows=$(awk '/^SOAK / {
    for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "| %s | %d + %d | %d | %d | %d | %d | %d |\n", $2, v["ops_internal"], v["ops_qspi"],
        v["first_cuts"], v["second_cuts"], v["random_double_cuts"], v["recoveries"], v["bricks"]
    tf += v["first_cuts"]; ts += v["second_cuts"]; tr += v["random_double_cuts"]; tc += v["recoveries"]; tb += v["bricks"] }
    END { printf "| **all** | | %d | %d | %d | %d | %d |\n", tf, ts, tr, tc, tb }' <<<"$out")
[ "$(grep -c '^SOAK ' <<<"$out")" -ge 4 ] || { echo "$out" >&2; echo "soak: scenarios missing from the output" >&2; exit 1; }
section=$(cat <<EOF2
## Power-cut soak (issue 17)

Measured $(date -u +%Y-%m-%d) by \`make soak\` (\`scripts/soak.sh\`, ${secs} s): the real update engine on the strict
NOR model (internal flash pages of 8 KiB, QSPI sectors of 4 KiB; a cut is global: the other part
dies with it, each cut leaves a seeded torn pattern). Operations: flash operations of the scenario
run clean, each of which is cut in turn on its part with 4 seeds (first cuts); $([ "$deep" = 1 ] &&
echo "after every first cut," || echo "after a sample of first cuts (SOAK_DEEP=0: a shortened soak; make soak cuts after every one),")
the recovery is cut at each of its operations (second cuts); then $random random double cuts
per scenario (seed $seed). A recovery is checked: the region is exactly the old or the new image as
the journal says, the journal re-mounts to the same state, and the scenario then completes.
Bricks: devices that failed any of that (the run stops at the first, so a written table has 0).

| scenario | operations (internal + QSPI) | first cuts | second cuts | random double cuts | recoveries checked | bricks |
|---|---|---|---|---|---|---|
$rows

update = staging, apply, trial, confirm; rollback = the trial app fails, the old image comes back;
apply-fails-rollback = a staged block decays, the apply rolls back by itself. CI (\`unit.upd_sweep\`)
cuts every operation once and the recoveries of a sample of first cuts.
EOF2
)
bash "$root/scripts/write-bench-section.sh" "$root/bench/results.md" <<<"$section"
echo "$section"
