#!/usr/bin/env bash
# rust_keel.sh LIB_RS: the keel crate's own unit tests (status mapping, notification decoding, the
# ring as the microvisor fills it, two consumers, log-line truncation, name refusals) and those of
# the 128-bit division in the SDK's compiler_builtins (against the native operators), compiled
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
# The 128-bit division of the SDK's compiler_builtins, against the host's native operators.
int128="$(dirname "$src")/../../compiler_builtins/int128.rs"
"$rustc" --edition 2021 --test -D warnings -O -o "$tmp/int128-test" "$int128" || { echo "FAIL: the int128 tests did not build"; exit 1; }
"$tmp/int128-test" --test-threads 2 || { echo "FAIL: the int128 tests failed"; exit 1; }
echo PASS
