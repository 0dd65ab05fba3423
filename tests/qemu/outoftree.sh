#!/usr/bin/env bash
# outoftree.sh KEEL SDK_DIR TOOLCHAIN_FILE APP_SRC_DIR: copy the minimal app away from the Keel tree,
# build it there with only the SDK (Make fragment, then CMake package, then its Rust twin in
# APP_SRC_DIR/rust with the CMake package), and run the three builds.
. "$(dirname "$0")/lib.sh"
keel=$1 sdk=$2 toolchain=$3 src=$4
kq_need_file "keel CLI" "$keel"
kq_need_file "SDK Make fragment" "$sdk/keel-app.mk"
kq_need_file "SDK CMake package" "$sdk/cmake/KeelSDKConfig.cmake"
kq_need_file "veneer import library" "$sdk/lib/keel_veneers.o"
kq_setup outoftree

mkdir -p "$KQ_TMP/make" "$KQ_TMP/cmake" "$KQ_TMP/rust"
cp "$src/main.c" "$src/Makefile" "$KQ_TMP/make/"
cp "$src/main.c" "$src/CMakeLists.txt" "$KQ_TMP/cmake/"
cp "$src/rust/main.rs" "$src/rust/CMakeLists.txt" "$KQ_TMP/rust/"

if ! timeout 120 make -C "$KQ_TMP/make" KEEL_SDK="$sdk" >"$KQ_TMP/make.log" 2>&1; then
    cat "$KQ_TMP/make.log" >&2
    kq_die "the app did not build with the Make fragment"
fi
if ! timeout 120 cmake -S "$KQ_TMP/cmake" -B "$KQ_TMP/cmake/build" -DCMAKE_TOOLCHAIN_FILE="$toolchain" \
        -DKeelSDK_DIR="$sdk/cmake" >"$KQ_TMP/cmake.log" 2>&1 ||
    ! timeout 120 cmake --build "$KQ_TMP/cmake/build" >>"$KQ_TMP/cmake.log" 2>&1; then
    cat "$KQ_TMP/cmake.log" >&2
    kq_die "the app did not build with the CMake package"
fi

# Rust: Debian's rustc and rust-src (make deps); the first build anywhere compiles core (cached).
if ! timeout 240 cmake -S "$KQ_TMP/rust" -B "$KQ_TMP/rust/build" -DCMAKE_TOOLCHAIN_FILE="$toolchain" \
        -DKeelSDK_DIR="$sdk/cmake" >"$KQ_TMP/rust.log" 2>&1 ||
    ! timeout 240 cmake --build "$KQ_TMP/rust/build" >>"$KQ_TMP/rust.log" 2>&1; then
    cat "$KQ_TMP/rust.log" >&2
    kq_die "the Rust app did not build with the CMake package (rustc and rust-src installed? 'make deps')"
fi

for kind in make cmake rust; do
    case $kind in
    make) elf="$KQ_TMP/make/outoftree.elf" ;;
    cmake) elf="$KQ_TMP/cmake/build/outoftree.elf" ;;
    rust) elf="$KQ_TMP/rust/build/outoftree.elf" ;;
    esac
    kq_need_file "$kind-built app" "$elf"
    rm -rf "$KQ_TMP/state"
    # Until the API call and 10 heartbeats (2 s) after it: time for a stop to show.
    until=('^app\| outoftree: keel api matches$')
    for _ in $(seq 10); do until+=('^\[keel\] heartbeat'); done
    kq_run "$keel" "$elf" "${KQ_SECONDS:-30}" /dev/null "${until[@]}"
    kq_expect started '^\[keel\] app started' "the $kind-built app was never started"
    kq_expect seen "^app\\| outoftree: hello from an app built with $kind\$" "the $kind-built app did not run"
    kq_expect seen '^app\| outoftree: keel api matches$' "the $kind-built app could not call the API"
    kq_expect_none '^\[keel\] app stopped' "the $kind-built app must not be stopped"
    [ "$KQ_FAILS" -eq 0 ] || break
done
kq_finish
