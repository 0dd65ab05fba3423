#!/usr/bin/env bash
# OTA figures for bench/results.md (issue 6): internal-flash page writes per changed page (write
# amplification) and QSPI sector erases per update, measured by running the real update engine
# on the strict NOR model with AN505's geometry (tests/unit/test_upd_bench.c).
# Usage: scripts/bench-ota.sh [HOST_BUILD_DIR]   (default: build/host; build it with `make host`)
# Prints a Markdown section on stdout; exits non-zero if the program is missing or fails.
set -euo pipefail
host_dir="${1:-build/host}"
bin="$host_dir/tests/unit/test_upd_bench"
if [[ ! -x "$bin" ]]; then
  echo "bench-ota: $bin not found: run 'make host' first (or pass the host build directory)" >&2
  exit 1
fi
out="$(timeout 60 "$bin" 2>&1)" || { echo "$out" >&2; echo "bench-ota: $bin failed" >&2; exit 1; }
echo "### OTA flash writes per update (update engine on the strict NOR model)"
# Keep the figures, drop cmocka's own lines.
grep -v '^\[' <<<"$out" | cat -s
