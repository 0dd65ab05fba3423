#!/usr/bin/env bash
# bench-ota-net.sh BUILD_DIR: the OTA transfer figures of issue 6 (bytes sent for the same bundle
# again, a one-function change in a ~200 KiB app, a whole new app, each against the full bundle),
# written as the "## OTA over the network (issue 6)" section of bench/results.md.
#
# Measured end to end by the server test scenario ota_delta (tests/server/server_test.sh): a real
# Mosquitto (TLS) and keeld, `keel bundle build` bundles of the test app (200 KiB of data plus one
# function; the "one-function change" changes that function's constant), and a simulated device
# running the real update engine over AN505 flash files. keeld counts the bytes it sends per
# device (UpdateChunk payloads, the manifest included); the device decides what it fetches.
set -euo pipefail
build=${1:?usage: bench-ota-net.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
host=$build/host
for f in "$host/server/keeld" "$host/tests/server/simdev" "$host/tools/keel/keel"; do
    [ -x "$f" ] || { echo "bench-ota-net: $f is missing; run make first" >&2; exit 1; }
done
W=$(mktemp -d "${TMPDIR:-/tmp}/keel-bench-ota-net.XXXXXX")
trap 'rm -rf "$W"' EXIT
export OTA_FIGURES=$W/figures
if ! timeout 600 bash "$root/tests/server/server_test.sh" ota_delta "$host/server/keeld" \
        "$host/tests/server/simdev" "$host/tools/keel/keel" >"$W/run.log" 2>&1; then
    tail -n 30 "$W/run.log" >&2
    echo "bench-ota-net: the ota_delta scenario failed" >&2
    exit 1
fi
fig() { sed -n "s/^$1=//p" "$OTA_FIGURES" | tail -n1; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", b ? 100 * a / b : 0 }'; }
signed=$(fig signed); total=$(fig blocks_total); v2=$(fig bundle_v2); v3=$(fig bundle_v3)
same=$(fig same_sent); one=$(fig one_sent); one_b=$(fig one_blocks)
new=$(fig new_sent); new_b=$(fig new_blocks)
content_blocks=$(( (v3 - signed + 8191) / 8192 ))
image=$(( v2 - signed - 8192 ))
section=$(cat <<EOT
## OTA over the network (issue 6)

Measured $(date -u +%Y-%m-%d) by \`scripts/bench-ota-net.sh\`: keeld and a simulated device running the
real update engine (AN505 geometry: 8 KiB blocks, a $total-block app region) over Mosquitto/TLS on
127.0.0.1. The app image is $image bytes (200 KiB of data and one small function); a bundle of
it is $v2 bytes (manifest and signature $signed, payload = the 8 KiB app header page + the image).
Bytes sent: what keeld sent the device (manifest included), against the full image and the full
bundle (what a whole-image update sends).

| update | bytes sent | of the full image | of the full bundle | blocks fetched |
|---|---|---|---|---|
| the same bundle again | $same | $(pct "$same" "$image") | $(pct "$same" "$v2") | 0 (nothing offered: the hello's app region already matches) |
| a one-function change | $one | $(pct "$one" "$image") | $(pct "$one" "$v2") | $one_b of $content_blocks with content (app header page + the page of the function) |
| a whole new app (same size) | $new | $(pct "$new" "$image") | $(pct "$new" "$v3") | $new_b of $content_blocks |
EOT
)
bash "$root/scripts/write-bench-section.sh" "$root/bench/results.md" <<<"$section"
echo "$section"
