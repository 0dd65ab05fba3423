#!/usr/bin/env bash
# rust_keel.sh LIB_RS: the keel crate's own unit tests (status mapping, notification decoding, the
# ring as the microvisor fills it, two consumers, log-line truncation, name refusals), compiled
# for the host with `rustc --test` and run. The rustc is Debian's (/usr/bin/rustc) or the first on
# PATH, as for the firmware; a missing one fails the test saying what to install.
set -uo pipefail
src=${1:?usage: rust_keel.sh LIB_RS}
rustc=/usr/bin/rustc
[ -x "$rustc" ] || rustc=$(command -v rustc) || { echo "FAIL: no rustc: install rustc and rust-src ('make deps': scripts/packages/rust.txt)"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/keel-rust-test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
"$rustc" --edition 2021 --test -D warnings -o "$tmp/keel-test" "$src" || { echo "FAIL: the keel crate's tests did not build"; exit 1; }
"$tmp/keel-test" --test-threads 2 || { echo "FAIL: the keel crate's tests failed"; exit 1; }
echo PASS
