#!/usr/bin/env bash
# OTA figures for bench/results.md (issue 6): internal-flash page writes per changed page (write
# amplification) and QSPI sector erases per update, measured by running the real update engine
# on the strict NOR model with AN505's geometry (tests/unit/test_upd_bench.c).
# Usage: scripts/bench-ota.sh [BUILD_DIR]   (default: build; `make bench` runs it)
# Writes the "## OTA (issue 6)" section of bench/results.md and prints it; exits non-zero if the
# program is missing or fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
host_dir="${1:-build}/host"
bin="$host_dir/tests/unit/test_upd_bench"
if [[ ! -x "$bin" ]]; then
  echo "bench-ota: $bin not found: run 'make host' first (or pass the host build directory)" >&2
  exit 1
fi
out="$(timeout 60 "$bin" 2>&1)" || { echo "$out" >&2; echo "bench-ota: $bin failed" >&2; exit 1; }
# Keep the figures, drop cmocka's own lines.
section=$(printf '## OTA (issue 6)\n\nMeasured %s by `scripts/bench-ota.sh`: the real update engine on the strict NOR model with\nAN505 geometry (core only; the device and network path come with the device integration).\n\n%s\n' \
    "$(date -u +%Y-%m-%d)" "$(grep -v '^\[' <<<"$out" | cat -s)")
bash "$root/scripts/write-bench-section.sh" "$root/bench/results.md" <<<"$section"
echo "$section"
