#!/usr/bin/env bash
# bench-board-seam.sh [BUILD_DIR]: how much of the microvisor is board code (issue 13).
#
# For each board (a folder firmware/platform/<board>/ with a board.cmake): the lines of code (no
# blank lines, no comments) of the board's folder against those of the whole microvisor as it is
# built for that board: firmware/microvisor/ + the board's folder + what boards share (the
# contracts in firmware/platform/include/, the core's registers in firmware/platform/armv8m/, the
# chip drivers in firmware/platform/drivers/). Goal: board code <= 15 % of the
# microvisor. With a firmware build in BUILD_DIR/fw, also the board's share of the microvisor's
# flash (text + rodata + data of the board's objects, from the link map). Writes the
# "## Board seam (issue 13)" section of bench/results.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
goal=15

# Code lines of the given files: C/C++ comments and blank lines do not count (linker scripts
# and CMake files count their non-blank, non-comment lines the same way).
code_lines() {
    python3 - "$@" <<'EOF'
import re, sys
total = 0
for path in sys.argv[1:]:
    text = open(path, encoding="utf-8", errors="replace").read()
    if path.endswith(".cmake"):
        text = re.sub(r"#[^\n]*", "", text)
    else:
        text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
        text = re.sub(r"//[^\n]*", "", text)
    total += sum(1 for line in text.splitlines() if line.strip())
print(total)
EOF
}

# A board folder's app/ subfolder is the apps' (app_hw.h), not the microvisor's.
files_in() {
    find "$@" -maxdepth 2 -type f -not -path '*/app/*' \
        \( -name '*.c' -o -name '*.h' -o -name '*.ld' -o -name '*.cmake' \) | sort
}

mapfile -t uv_files < <(files_in "$root/firmware/microvisor")
mapfile -t shared_files < <(files_in "$root/firmware/platform/include" "$root/firmware/platform/armv8m" \
    "$root/firmware/platform/drivers")
mapfile -t driver_files < <(files_in "$root/firmware/platform/drivers")
uv=$(code_lines "${uv_files[@]}")
shared=$(code_lines "${shared_files[@]}")
drivers=$(code_lines "${driver_files[@]}")

# The board's objects' share of the microvisor's flash, from the link map of the firmware build
# (only for the board it was built for).
map=$build/fw/microvisor/keel-microvisor.map
fw_board=$(sed -n 's/^KEEL_BOARD:[A-Z]*=//p' "$build/fw/CMakeCache.txt" 2>/dev/null || true)
if [ -z "$fw_board" ]; then # configured without -DKEEL_BOARD: the default board
    fw_board=$(basename "$(dirname "$(grep -l 'KEEL_BOARD_IS_DEFAULT ON' "$root"/firmware/platform/*/board.cmake | head -n1)")")
fi
flash_share() {
    python3 - "$map" "$1" <<'EOF'
import re, sys
mapfile, board = sys.argv[1], sys.argv[2]
total = board_bytes = 0
section = None
pending = None
for line in open(mapfile, encoding="utf-8", errors="replace"):
    if line.startswith("Linker script and memory map"):
        section = ""
        continue
    if section is None:
        continue
    m = re.match(r"^ (\.(?:text|rodata|data)[^\s]*)\s*$", line)
    if m:
        pending = m.group(1)
        continue
    m = re.match(r"^ (\.(?:text|rodata|data)[^\s]*)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+\.o(?:bj)?\)?)\s*$", line)
    if m and (m.group(1) or pending):
        size = int(m.group(3), 16)
        if int(m.group(2), 16) == 0:
            pending = None
            continue
        total += size
        if "/platform/" + board + "/" in m.group(4):
            board_bytes += size
        pending = None
    else:
        pending = None
print(board_bytes, total)
EOF
}

rows=""
worst=0
for cm in "$root"/firmware/platform/*/board.cmake; do
    dir=$(dirname "$cm")
    board=$(basename "$dir")
    mapfile -t board_files < <(files_in "$dir")
    b=$(code_lines "${board_files[@]}")
    all=$((uv + shared + b))
    pct10=$((b * 1000 / all))
    share=$(printf '%d.%d %%' $((pct10 / 10)) $((pct10 % 10)))
    d10=$(((b + drivers) * 1000 / all)) # the shared drivers counted as this board's too
    with_drivers=$(printf '%d.%d %%' $((d10 / 10)) $((d10 % 10)))
    [ "$pct10" -gt "$worst" ] && worst=$pct10
    flash="n/a (firmware not built for it)"
    if [ "$board" = "$fw_board" ] && [ -f "$map" ]; then
        read -r fb ft < <(flash_share "$board")
        if [ "${ft:-0}" -gt 0 ]; then
            f10=$((fb * 1000 / ft))
            flash=$(printf '%d of %d bytes (%d.%d %%)' "$fb" "$ft" $((f10 / 10)) $((f10 % 10)))
        fi
    fi
    rows+="| $board | $b | $uv | $shared | $all | **$share** | $with_drivers | $flash |"$'\n'
done
verdict="within"
[ "$worst" -gt $((goal * 10)) ] && verdict="above"

{
    echo "## Board seam (issue 13)"
    echo
    echo "Board-specific code as a share of the microvisor, per board: lines of code (comments and"
    echo "blank lines excluded) of \`firmware/platform/<board>/\` against the microvisor built for it"
    echo "(\`firmware/microvisor/\` + the board's folder + what boards share: the contracts in"
    echo "\`firmware/platform/include/\`, the core's registers in \`firmware/platform/armv8m/\`, chip drivers"
    echo "in \`firmware/platform/drivers/\`; \`core/\` and third-party code not counted). The flash column"
    echo "is the board folder's objects' text + rodata + data against the whole image (link map)."
    echo "Goal: <= $goal %. Measured $(date -u +%Y-%m-%d) by \`scripts/bench-board-seam.sh\`."
    echo
    echo "| board | board lines | microvisor lines | shared (contracts, core, drivers) | total | board share | share with the shared drivers | board flash (of the whole image) |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s' "$rows"
    echo
    echo "Every board is $verdict the goal."
} | bash "$root/scripts/write-bench-section.sh" "$root/bench/results.md"
echo "bench-board-seam: bench/results.md section written (worst board share $((worst / 10)).$((worst % 10)) %)"
