#!/usr/bin/env bash
# bench-delta.sh BUILD_DIR: the delta update figures of issue 15, written as the
# "## Binary delta updates (issue 15)" section of bench/results.md.
#
# For each change of the reference app (firmware/apps/refapp: ~120 KiB of code, Mbed TLS and lwIP
# linked after the app's own functions) and a version bump of the small `ota` app, the bytes an
# update sends: Keel's delta (`keel bundle diff`, which also decodes the patch back and checks it),
# Keel's page diff (manifest + changed 8 KiB pages), bsdiff, xdelta3 -9 and zstd --patch-from -19
# on the same app-slot contents (Debian packages: scripts/packages/delta.txt). Plus the decoder's
# Thumb-2 code and RAM (arm-none-eabi-gcc -Os -mcpu=cortex-m33), and the staging of the early
# insertion on an emulated device (scripts/bench-delta-device.sh, QEMU -icount).
set -euo pipefail
build=${1:?usage: bench-delta.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
keel=$build/host/tools/keel/keel
apps=$build/fw/apps
for f in "$keel" "$apps/refapp/refapp.elf" "$apps/ota/ota.elf"; do
    [ -e "$f" ] || { echo "bench-delta: $f is missing; run make first" >&2; exit 1; }
done
for t in bsdiff xdelta3 zstd arm-none-eabi-gcc arm-none-eabi-nm jq mosquitto; do
    command -v "$t" >/dev/null || { echo "bench-delta: $t is missing: run make deps" >&2; exit 1; }
done
W=$(mktemp -d "${TMPDIR:-/tmp}/keel-bench-delta.XXXXXX")
trap 'rm -rf "$W"' EXIT
"$keel" keys new fleet --dir "$W" >/dev/null

bundle() { "$keel" bundle build "$1" --version "$2" --key "$W/fleet.key" -o "$3" >/dev/null; }
# The app-slot content of a bundle: its payload (one layer at offset 0), after the signed part.
content() { tail -c "$("$keel" bundle inspect "$1" --json | jq '.layers[0].size')" "$1" >"$2"; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f %%", b ? 100 * a / b : 0 }'; }
fmt() { printf "%s B (%s)" "$1" "$(pct "$1" "$2")"; }
# tool PATCH IMAGE: an off-the-shelf patch, and on the wire with the same 392-byte signed manifest
# a Keel delta carries (a device needs the patch signed and its base and result named either way).
tool() { printf "%s / %s B (%s)" "$1" "$(($1 + 392))" "$(pct "$(($1 + 392))" "$2")"; }
# bsdiff+xz: Debian's bsdiff compresses its three streams with bzip2; the same streams, raw,
# compressed with xz -9e instead (the "bsdiff+xz" most firmware updaters ship).
bsdiff_xz() {
    python3 - "$1" <<'PY'
import bz2, lzma, struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"BSDIFF40", "not a BSDIFF40 patch"
c, d, n = struct.unpack("<qqq", b[8:32])
ctrl, diff, extra = b[32:32 + c], b[32 + c:32 + c + d], b[32 + c + d:]
raw = b[:32] + bz2.decompress(ctrl) + bz2.decompress(diff) + bz2.decompress(extra)
print(len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)))
PY
}

rows=""
measure() { # NAME OLD.elf OLD_VERSION NEW.elf NEW_VERSION
    local name=$1 o=$W/$1.old.kb n=$W/$1.new.kb
    bundle "$2" "$3" "$o"
    bundle "$4" "$5" "$n"
    content "$o" "$W/old.bin"
    content "$n" "$W/new.bin"
    local j
    j=$("$keel" bundle diff "$o" "$n" --json --decode-runs 5)
    local image patch wire pages dec
    image=$(jq .image_bytes <<<"$j"); patch=$(jq .patch_bytes <<<"$j")
    wire=$(jq .delta_wire_bytes <<<"$j"); pages=$(jq .pages_bytes <<<"$j")
    dec=$(jq '.decode_us_host | floor' <<<"$j")
    bsdiff "$W/old.bin" "$W/new.bin" "$W/p.bsdiff"
    xdelta3 -9 -e -f -s "$W/old.bin" "$W/new.bin" "$W/p.xd3"
    zstd -q -19 -f --patch-from="$W/old.bin" "$W/new.bin" -o "$W/p.zst" 2>/dev/null
    local bsx dev="-"
    bsx=$(bsdiff_xz "$W/p.bsdiff")
    # On an emulated device: staging this delta (M instructions, turns, the longest turn).
    rm -f "$W"/dev-row.delta-*.kb
    "$keel" bundle build "$4" --version "$5" --key "$W/fleet.key" -o "$W/dev-row.kb" --base "$o" >/dev/null
    if bash "$root/scripts/bench-delta-device.sh" "$build" "$o" "$(ls "$W"/dev-row.delta-*.kb)" "$W/drow"; then
        local ms st turns longest
        read -r ms st turns longest <"$W/drow"
        dev="$ms M ($turns turns, longest $(awk -v u="$longest" 'BEGIN { printf "%.1f", u / 1000 }') M)"
    fi
    rows+="| $name | $image | $(fmt "$patch" "$image") | **$(fmt "$wire" "$image")** | $(fmt "$pages" "$image") | $(tool "$bsx" "$image") | $(tool "$(stat -c %s "$W/p.bsdiff")" "$image") | $(tool "$(stat -c %s "$W/p.xd3")" "$image") | $(tool "$(stat -c %s "$W/p.zst")" "$image") | $dec | $dev |"$'\n'
    echo "bench-delta: $name: patch $patch, wire $wire, pages $pages" >&2
}
r=$apps/refapp
measure "refapp: one constant" "$r/refapp.elf" 1.4.2 "$r/refapp-const.elf" 1.4.3
measure "refapp: version string" "$r/refapp.elf" 1.4.2 "$r/refapp-version.elf" 1.4.3
measure "refapp: lines inserted early in .text" "$r/refapp.elf" 1.4.2 "$r/refapp-insert.elf" 1.4.3
measure "refapp: a new function" "$r/refapp.elf" 1.4.2 "$r/refapp-newfn.elf" 1.4.3
measure "refapp: -O2 instead of -O3" "$r/refapp.elf" 1.4.2 "$r/refapp-opt.elf" 1.4.3
measure "ota: version bump only" "$apps/ota/ota.elf" 1.0.0 "$apps/ota/ota.elf" 1.0.1

# On the device: the insertion staged by an emulated device (QEMU -icount: 1 ms = 1 million
# instructions), as a delta and as pages: the microvisor's stage_finish figure and stack mark.
"$keel" bundle build "$r/refapp.elf" --version 1.4.2 --key "$W/fleet.key" -o "$W/dev-old.kb" >/dev/null
"$keel" bundle build "$r/refapp-insert.elf" --version 1.4.3 --key "$W/fleet.key" -o "$W/dev-new.kb" \
    --base "$W/dev-old.kb" >/dev/null
bash "$root/scripts/bench-delta-device.sh" "$build" "$W/dev-old.kb" "$(ls "$W"/dev-new.delta-*.kb)" "$W/dd" ||
    { echo "bench-delta: the device run (delta) failed" >&2; exit 1; }
bash "$root/scripts/bench-delta-device.sh" "$build" "$W/dev-old.kb" "$W/dev-new.kb" "$W/dp" ||
    { echo "bench-delta: the device run (pages) failed" >&2; exit 1; }
read -r dev_delta_ms dev_delta_stack dev_delta_turns dev_delta_longest <"$W/dd"
read -r dev_pages_ms dev_pages_stack dev_pages_turns dev_pages_longest <"$W/dp"

# Decoder footprint: the two objects a device links, and its whole state.
for f in delta delta_dec; do
    arm-none-eabi-gcc -mcpu=cortex-m33 -mthumb -Os -ffunction-sections -I"$root/core/include" \
        -c "$root/core/src/$f.c" -o "$W/$f.o"
done
printf '#include "keel/delta.h"\nkdlt_dec_t kdlt_bench_state;\n' >"$W/state.c"
arm-none-eabi-gcc -mcpu=cortex-m33 -mthumb -Os -fno-common -I"$root/core/include" -c "$W/state.c" -o "$W/state.o"
code=$(arm-none-eabi-size -t "$W/delta.o" "$W/delta_dec.o" | awk 'END {print $1}')
ram=$(( 16#$(arm-none-eabi-nm -S "$W/state.o" | awk '/kdlt_bench_state/ {print $2}') ))

section=$(cat <<EOT
## Binary delta updates (issue 15)

Measured $(date -u +%Y-%m-%d) by \`scripts/bench-delta.sh\`. The reference app \`refapp\` links
Mbed TLS (X.509, TLS 1.2 client, ECDSA/ECDH, AES-GCM) and lwIP (TCP, UDP, DHCP, MQTT) after its
own functions, so an insertion early in \`.text\` moves every library function. Each update is
from version 1.4.2 of \`refapp\` to 1.4.3 of the variant (so the app header page changes too:
version and image SHA-256). Sizes are of the app slot's content (header page + image), the same
bytes for every tool; % are of the new image.

- **Keel delta**: the patch (\`keel bundle diff\`, core/src/delta_enc.c); **on the wire**: the
  patch and its signed delta manifest (392 B: base, patch and result hashes, policies; no
  per-page hashes, docs/bundle.md "Delta bundles"): what \`keel bundle build --base\` writes and
  the update engine stages. **Pages**: what Keel sends without a
  delta (signed manifest with a hash per page + every changed 8 KiB page).
- Off-the-shelf tools on the same bytes, each cell "patch / on the wire (%)", the wire adding the
  same 392-byte signed manifest: **bsdiff+xz** (Debian's bsdiff streams, recompressed with
  \`xz -9e\` instead of bzip2), bsdiff as Debian ships it (bzip2), \`xdelta3 -9\`,
  \`zstd -19 --patch-from\`.
- Decode: host, best of 5, the ASan/UBSan build of \`keel\` (an upper bound); **on the device**:
  the microvisor staging the delta bundle on an emulated AN505 (QEMU \`-icount shift=0\`, so
  1 M instructions = 1 ms of guest time; ~6 ms at 160 MHz): authenticate and hash the patch,
  decode it twice, hash result and region, seal the changed pages, in turns of the service
  (\`upd_stage_finish_step\`; the longest turn is how long the network waits at most).

| change | new image B | Keel delta patch | Keel delta on the wire | Keel pages on the wire | bsdiff+xz | bsdiff (bzip2) | xdelta3 -9 | zstd -19 --patch-from | decode us (host) | staging on the device (instructions) |
|---|---|---|---|---|---|---|---|---|---|---|
${rows%$'\n'}

On the device (the insertion, staged by an emulated AN505 under QEMU \`-icount shift=0\`; the
microvisor's own "verified in N ms" of stage finish, 1 ms = 1 million instructions): as a delta
**${dev_delta_ms} M instructions** (authenticate and hash the stored patch, decode it twice
against the old image, hash the result and the region, seal the changed pages) against
**${dev_pages_ms} M** to verify the same update staged as pages; service stack high-water mark
${dev_delta_stack} B (delta) / ${dev_pages_stack} B (pages). At 160 MHz and about one
instruction per cycle that is about $(awk -v m="$dev_delta_ms" 'BEGIN { printf "%.1f", m / 160 }') s, while the app keeps running. The delta is
decoded in **${dev_delta_turns} turns** of the microvisor's service (a patch block checked, a
result page decoded, or 8 erased pages hashed per turn; \`upd_stage_finish_step\`), the longest
**$(awk -v u="$dev_delta_longest" 'BEGIN { printf "%.1f", u / 1000 }') M instructions**
(~$(awk -v u="$dev_delta_longest" 'BEGIN { printf "%.0f", u / 160 }') ms at 160 MHz): the
network is served between turns. The page bundle's check still runs in ${dev_pages_turns} turn
($(awk -v u="$dev_pages_longest" 'BEGIN { printf "%.0f", u / 1000 }') M instructions).

Decoder on the device (core/src/delta.c + delta_dec.c, arm-none-eabi-gcc -Os, cortex-m33):
**$code B** of code and **$ram B** of state (\`kdlt_dec_t\`: model, address map, input and
read-ahead buffers), no heap, under 200 B of stack, beyond the page buffer staging already has.
EOT
)
bash "$root/scripts/write-bench-section.sh" "$root/bench/results.md" <<<"$section"
echo "$section"
