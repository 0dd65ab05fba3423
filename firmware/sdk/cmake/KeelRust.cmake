# KeelRust.cmake: Keel apps in Rust, built with rustc and arm-none-eabi-gcc alone (no cargo: the
# route works from Debian packages, with crates.io out of reach). Included by KeelSDKConfig.cmake.
#
#   keel_add_rust_app(<target> <main.rs> [STACK_SIZE <bytes>] [SOURCES <more .rs files>...]
#                     [RUSTFLAGS <more rustc flags>...])
#     -> <target>.elf: the crate rooted at main.rs (#![no_std] #![no_main], a `#[no_mangle] extern
#        "C" fn main() -> i32`), with the `keel` crate (firmware/sdk/rust/keel) as `keel`, linked
#        with the SDK startup, linker script and veneers like a C app.
#
# The steps (docs/device-api.md "Apps in Rust"):
#   1. a sysroot with `core` compiled for thumbv8m.main-none-eabi from the rust-src that matches
#      the rustc (build-sysroot.sh, ~1 min once), cached outside the build tree in
#      KEEL_RUST_CACHE/<rustc version>-<target>-<hash of rustc -vV, target, flags, and the
#      contents of build-sysroot.sh and compiler_builtins/*.rs>;
#   2. the keel crate (rlib) against it;
#   3. the app as a staticlib (it carries core and keel);
#   4. arm-none-eabi-gcc links it: libgcc and newlib provide the intrinsics (compiler_builtins is
#      an empty crate here), --gc-sections keeps what is used.
#
# Cache variables:
#   KEEL_RUSTC        the rustc to use; empty: /usr/bin/rustc (Debian's), then rustc on PATH,
#                     the first whose sysroot has the core sources and knows the target
#   KEEL_RUST_CACHE   where built sysroots are kept (default $XDG_CACHE_HOME/keel/rust-sysroot or
#                     ~/.cache/keel/rust-sysroot)
# Sets KEEL_RUST_FOUND (TRUE when Rust apps can be built) and KEEL_RUST_WHY (why not).
set(KEEL_RUST_TARGET thumbv8m.main-none-eabi)
set(KEEL_RUSTC "" CACHE FILEPATH "rustc for Keel apps in Rust (needs its rust-src); empty: find one")
if(DEFINED ENV{XDG_CACHE_HOME} AND NOT "$ENV{XDG_CACHE_HOME}" STREQUAL "")
  set(_keel_rust_cache_default "$ENV{XDG_CACHE_HOME}/keel/rust-sysroot")
elseif(DEFINED ENV{HOME} AND NOT "$ENV{HOME}" STREQUAL "")
  set(_keel_rust_cache_default "$ENV{HOME}/.cache/keel/rust-sysroot")
else()
  set(_keel_rust_cache_default "${CMAKE_BINARY_DIR}/rust-sysroot")
endif()
set(KEEL_RUST_CACHE "${_keel_rust_cache_default}" CACHE PATH "Where Keel keeps Rust sysroots (core) it built")
# core: size-optimised, no debug info, one codegen unit; the crates and apps: the same plus -g.
set(KEEL_RUST_CORE_FLAGS -C panic=abort -C opt-level=s -C codegen-units=1 -C debuginfo=0)
set(KEEL_RUST_FLAGS -C panic=abort -C opt-level=s -g --edition 2021 --target ${KEEL_RUST_TARGET})

get_filename_component(_keel_rust_sdk "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set(KEEL_RUST_FOUND FALSE)
set(KEEL_RUST_WHY "no rustc found (Debian: apt-get install rustc rust-src, or `make deps`)")
if(KEEL_RUSTC)
  set(_keel_rustc_candidates "${KEEL_RUSTC}")
else()
  find_program(_keel_path_rustc rustc NO_CACHE)
  set(_keel_rustc_candidates /usr/bin/rustc ${_keel_path_rustc})
endif()
foreach(_c IN LISTS _keel_rustc_candidates)
  if(NOT EXISTS "${_c}")
    continue()
  endif()
  execute_process(COMMAND "${_c}" --print sysroot OUTPUT_VARIABLE _sr RESULT_VARIABLE _rc
    OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(NOT _rc EQUAL 0)
    continue()
  endif()
  if(NOT EXISTS "${_sr}/lib/rustlib/src/rust/library/core/src/lib.rs")
    set(KEEL_RUST_WHY "${_c} has no core sources in ${_sr}/lib/rustlib/src (Debian: rust-src)")
    continue()
  endif()
  execute_process(COMMAND "${_c}" --print target-list OUTPUT_VARIABLE _tl ERROR_QUIET)
  if(NOT _tl MATCHES "(^|\n)${KEEL_RUST_TARGET}(\n|$)")
    set(KEEL_RUST_WHY "${_c} does not know the target ${KEEL_RUST_TARGET}")
    continue()
  endif()
  set(KEEL_RUST_RUSTC "${_c}")
  set(KEEL_RUST_FOUND TRUE)
  set(KEEL_RUST_WHY "")
  break()
endforeach()

if(KEEL_RUST_FOUND)
  execute_process(COMMAND "${KEEL_RUST_RUSTC}" -vV OUTPUT_VARIABLE _vv)
  execute_process(COMMAND "${KEEL_RUST_RUSTC}" --version OUTPUT_VARIABLE _ver OUTPUT_STRIP_TRAILING_WHITESPACE)
  string(REGEX MATCH "[0-9]+\\.[0-9]+\\.[0-9]+" _vshort "${_ver}")
  # The key covers every input of the sysroot; editing one re-runs this configure step.
  file(GLOB _keel_rust_sysroot_inputs "${_keel_rust_sdk}/rust/build-sysroot.sh"
    "${_keel_rust_sdk}/rust/compiler_builtins/*.rs")
  list(SORT _keel_rust_sysroot_inputs)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_keel_rust_sysroot_inputs})
  set(_inputs "")
  foreach(_f IN LISTS _keel_rust_sysroot_inputs)
    file(SHA256 "${_f}" _h)
    string(APPEND _inputs "${_f}=${_h};")
  endforeach()
  string(REPLACE "${_keel_rust_sdk}/" "" _inputs "${_inputs}")
  string(SHA256 _key "${_vv}|${KEEL_RUST_TARGET}|${KEEL_RUST_CORE_FLAGS}|${_inputs}")
  string(SUBSTRING "${_key}" 0 16 _key)
  set(KEEL_RUST_SYSROOT "${KEEL_RUST_CACHE}/${_vshort}-${KEEL_RUST_TARGET}-${_key}")
  set(_keel_rust_report "${KEEL_RUST_RUSTC} (${_ver}), core cached in ${KEEL_RUST_SYSROOT}")
else()
  set(_keel_rust_report "not built: ${KEEL_RUST_WHY}")
endif()
# Once per configure, however many directories include the SDK package.
get_property(_keel_rust_reported GLOBAL PROPERTY KEEL_RUST_REPORTED)
if(NOT _keel_rust_reported)
  message(STATUS "Keel apps in Rust: ${_keel_rust_report}")
  set_property(GLOBAL PROPERTY KEEL_RUST_REPORTED TRUE)
endif()

# The sysroot and the keel crate: one custom target each, made by the first Rust app.
function(_keel_rust_common)
  if(TARGET keel_rust_crate)
    return()
  endif()
  set(libdir "${KEEL_RUST_SYSROOT}/lib/rustlib/${KEEL_RUST_TARGET}/lib")
  add_custom_command(OUTPUT "${libdir}/libcore.rlib"
    COMMAND bash "${_keel_rust_sdk}/rust/build-sysroot.sh" "${KEEL_RUST_RUSTC}" ${KEEL_RUST_TARGET}
      "${KEEL_RUST_SYSROOT}" "${_keel_rust_sdk}/rust/compiler_builtins/lib.rs" ${KEEL_RUST_CORE_FLAGS}
    COMMENT "Rust sysroot (core) for ${KEEL_RUST_TARGET}: ${KEEL_RUST_SYSROOT}" VERBATIM)
  set(rlib "${CMAKE_BINARY_DIR}/keel-rust/libkeel.rlib")
  set(src "${_keel_rust_sdk}/rust/keel/src/lib.rs")
  add_custom_command(OUTPUT "${rlib}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${CMAKE_BINARY_DIR}/keel-rust"
    COMMAND "${KEEL_RUST_RUSTC}" ${KEEL_RUST_FLAGS} --sysroot "${KEEL_RUST_SYSROOT}" -D warnings
      --crate-type rlib --crate-name keel "${src}" -o "${rlib}"
    DEPENDS "${src}" "${libdir}/libcore.rlib"
    COMMENT "Rust crate keel (firmware/sdk/rust/keel)" VERBATIM)
  add_custom_target(keel_rust_crate DEPENDS "${rlib}")
  set_property(GLOBAL PROPERTY KEEL_RUST_CRATE "${rlib}")
endfunction()

function(keel_add_rust_app target main_rs)
  cmake_parse_arguments(PARSE_ARGV 2 ARG "" "STACK_SIZE" "SOURCES;RUSTFLAGS")
  if(NOT KEEL_RUST_FOUND)
    message(FATAL_ERROR "keel_add_rust_app(${target}): ${KEEL_RUST_WHY}")
  endif()
  _keel_rust_common()
  get_property(rlib GLOBAL PROPERTY KEEL_RUST_CRATE)
  get_filename_component(main_rs "${main_rs}" ABSOLUTE)
  string(MAKE_C_IDENTIFIER "${target}" crate)
  set(lib "${CMAKE_CURRENT_BINARY_DIR}/lib${crate}.a")
  add_custom_command(OUTPUT "${lib}"
    COMMAND "${KEEL_RUST_RUSTC}" ${KEEL_RUST_FLAGS} --sysroot "${KEEL_RUST_SYSROOT}" ${ARG_RUSTFLAGS}
      --crate-type staticlib --crate-name ${crate} --extern keel=${rlib} "${main_rs}" -o "${lib}"
    DEPENDS "${main_rs}" ${ARG_SOURCES} "${rlib}" keel_rust_crate
    COMMENT "Rust app ${target}" VERBATIM)
  add_custom_target(${target}_rust DEPENDS "${lib}")
  add_executable(${target})
  _keel_app_setup(${target} "${ARG_STACK_SIZE}")
  add_dependencies(${target} ${target}_rust)
  target_link_libraries(${target} PRIVATE "${lib}")
endfunction()
