#!/usr/bin/env bash
# bench-baseline.sh BUILD_DIR REV DIR [fw]: the tree at REV, unpacked with `git archive` into DIR
# and built there against BUILD_DIR's third-party sources: the keel CLI (DIR/build/host/tools/
# keel/keel) and, with "fw", the microvisor (DIR/build/fw/microvisor/keel-microvisor.elf). For the
# benchmarks that measure a baseline in the same run (bench-debug.sh, bench-net.sh). The log is
# DIR/build.log; the exit status says whether it built.
set -uo pipefail
build=${1:?usage: bench-baseline.sh BUILD_DIR REV DIR [fw]}
rev=${2:?usage: bench-baseline.sh BUILD_DIR REV DIR [fw]}
dir=${3:?usage: bench-baseline.sh BUILD_DIR REV DIR [fw]}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$dir"
git -C "$root" archive "$rev" | tar -x -C "$dir" || { echo "bench-baseline: git archive $rev failed" >&2; exit 1; }
{
    if [ "${4:-}" = fw ]; then
        cmake -S "$dir/firmware" -B "$dir/build/fw" -DCMAKE_TOOLCHAIN_FILE="$dir/cmake/arm-none-eabi.cmake" \
            -DKEEL_THIRD_PARTY="$build/third_party" -DCMAKE_BUILD_TYPE=Release &&
            cmake --build "$dir/build/fw" -j 2 --target keel-microvisor || exit 1
    fi
    cmake -S "$dir" -B "$dir/build/host" -DKEEL_FW_DIR="$dir/build/fw" \
        -DKEEL_THIRD_PARTY="$build/third_party" -DCMAKE_BUILD_TYPE=Debug &&
        cmake --build "$dir/build/host" -j 2 --target keel
} >"$dir/build.log" 2>&1 || { echo "bench-baseline: $rev did not build: $(tail -20 "$dir/build.log")" >&2; exit 1; }
