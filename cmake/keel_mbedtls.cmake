# keel_mbedtls: Mbed TLS 3.6 LTS built by our CMake from the Debian source tree scripts/deps.sh
# unpacked into KEEL_THIRD_PARTY (pinned in scripts/third_party.lock), with our configuration
# (firmware/config/keel_mbedtls_config.h). The firmware (cross) and the host tools (keel, keeld,
# simdev, tests) both build it from that one tree, so device and host run the same version:
#
#   firmware/third_party.cmake  cross build, + the TLS client with KEEL_MBEDTLS_TLS=ON
#   CMakeLists.txt (host)       KEEL_MBEDTLS_HOST: OS entropy, key/certificate files and writing
#
# Users link the target and get the include paths and MBEDTLS_CONFIG_FILE with it.
if(NOT KEEL_THIRD_PARTY OR NOT EXISTS "${KEEL_THIRD_PARTY}/mbedtls/.keel-source")
  message(FATAL_ERROR "Mbed TLS sources are missing from '${KEEL_THIRD_PARTY}'. Run `make` (it runs "
    "scripts/deps.sh and passes -DKEEL_THIRD_PARTY=build/third_party), or `bash scripts/deps.sh DIR` "
    "and configure with -DKEEL_THIRD_PARTY=DIR.")
endif()
# deps.sh writes .keel-source last, so its presence means a complete, verified, patched tree.
# Depending on it re-runs CMake (and so the source glob below) after a version bump.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${KEEL_THIRD_PARTY}/mbedtls/.keel-source")
if(EXISTS "${KEEL_THIRD_PARTY}/mbedtls/.keel-version")
  file(READ "${KEEL_THIRD_PARTY}/mbedtls/.keel-version" _keel_mbedtls_version)
  string(STRIP "${_keel_mbedtls_version}" _keel_mbedtls_version)
  message(STATUS "Mbed TLS: ${_keel_mbedtls_version}")
endif()

set(_keel_mbedtls_dir "${KEEL_THIRD_PARTY}/mbedtls")
# Every library/*.c is compiled: files whose module the configuration leaves out compile to empty
# objects, which keeps this list free of per-version file names.
file(GLOB _keel_mbedtls_sources "${_keel_mbedtls_dir}/library/*.c")
# p256-m (the constant-time P-256 PSA driver the device configuration enables) compiles to nothing
# where MBEDTLS_PSA_P256M_DRIVER_ENABLED is off (the host).
file(GLOB _keel_p256m_sources "${_keel_mbedtls_dir}/3rdparty/p256-m/*.c"
  "${_keel_mbedtls_dir}/3rdparty/p256-m/p256-m/*.c")
add_library(keel_mbedtls STATIC ${_keel_mbedtls_sources} ${_keel_p256m_sources})
target_include_directories(keel_mbedtls PUBLIC "${_keel_mbedtls_dir}/include"
  "${CMAKE_CURRENT_LIST_DIR}/../firmware/config")
target_include_directories(keel_mbedtls PRIVATE "${_keel_mbedtls_dir}/library"
  "${_keel_mbedtls_dir}/3rdparty/p256-m" "${_keel_mbedtls_dir}/3rdparty/p256-m/p256-m")
target_compile_definitions(keel_mbedtls PUBLIC MBEDTLS_CONFIG_FILE="keel_mbedtls_config.h")
if(KEEL_MBEDTLS_TLS)
  target_compile_definitions(keel_mbedtls PUBLIC KEEL_MBEDTLS_TLS=1)
endif()
if(CMAKE_CROSSCOMPILING)
  # -Os: flash is the scarce resource and nothing here is on a path -O2 would change.
  target_compile_options(keel_mbedtls PRIVATE -Os -w)
else()
  target_compile_definitions(keel_mbedtls PUBLIC KEEL_MBEDTLS_HOST=1)
  find_package(Threads REQUIRED) # MBEDTLS_THREADING_PTHREAD (keel_mbedtls_config.h)
  target_link_libraries(keel_mbedtls PUBLIC Threads::Threads)
  target_compile_options(keel_mbedtls PRIVATE -O2 -w)
  # Code we do not own is not ours to sanitize; the sanitized callers still check their buffers.
  target_compile_options(keel_mbedtls PRIVATE -fno-sanitize=all)
  set_property(TARGET keel_mbedtls PROPERTY POSITION_INDEPENDENT_CODE ON)
endif()
