#!/usr/bin/env bash
# build-sysroot.sh RUSTC TARGET SYSROOT COMPILER_BUILTINS_SRC [RUSTC FLAGS...]
#
# Builds the Rust sysroot a Keel app needs for TARGET (thumbv8m.main-none-eabi) with rustc alone:
# `core` from the rust-src that matches RUSTC (Debian: rustc + rust-src), and the empty
# compiler_builtins of firmware/sdk/rust (the intrinsics come from libgcc and newlib at link time).
# RUSTC_BOOTSTRAP=1 lets a stable rustc compile the standard library's own unstable code, as the
# Rust build itself does. Built in a temporary directory next to SYSROOT and renamed into place, so
# builds sharing the cache (several clones, parallel makes) never see half a sysroot.
# KeelRust.cmake names SYSROOT after rustc's version, the target and every flag (the cache key).
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: build-sysroot.sh RUSTC TARGET SYSROOT COMPILER_BUILTINS_SRC [FLAGS...]" >&2; exit 2; }
rustc=$1 target=$2 out=$3 cb=$4
shift 4
core="$("$rustc" --print sysroot)/lib/rustlib/src/rust/library/core/src/lib.rs"
if [ ! -f "$core" ]; then
    echo "build-sysroot.sh: no core sources at $core: install the rust-src that matches $("$rustc" --version) (Debian: rust-src)" >&2
    exit 1
fi
lib="lib/rustlib/$target/lib"
complete() { [ -f "$out/$lib/libcore.rlib" ] && [ -f "$out/$lib/libcompiler_builtins.rlib" ]; }
if complete; then
    touch "$out/$lib/libcore.rlib" # another build made it: up to date for this one's make
    exit 0
fi
mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d "$out.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
mkdir -p "$tmp/$lib"
export RUSTC_BOOTSTRAP=1
echo "build-sysroot.sh: compiling core for $target with $("$rustc" --version) (about a minute, once; cached in $out)"
"$rustc" --crate-name core --crate-type rlib --edition 2021 --target "$target" "$@" \
    -Z force-unstable-if-unmarked "$core" -o "$tmp/$lib/libcore.rlib"
"$rustc" --crate-name compiler_builtins --crate-type rlib --edition 2021 --target "$target" "$@" \
    --sysroot "$tmp" "$cb" -o "$tmp/$lib/libcompiler_builtins.rlib"
# Into place. A complete one there already is a concurrent build's (the same bytes): keep it. An
# incomplete one (not made by this script, which only renames whole sysroots) is replaced.
if ! mv -T "$tmp" "$out" 2>/dev/null && ! complete; then
    rm -rf "$out"
    mv -T "$tmp" "$out"
fi
