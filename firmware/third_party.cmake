# Third-party libraries of the secure firmware, cross-built by our CMake from the Debian source trees
# that scripts/deps.sh unpacks into KEEL_THIRD_PARTY (make passes build/third_party):
#
#   keel_mbedtls  Mbed TLS 3.6 crypto and PSA (+ the TLS 1.3/1.2 client with KEEL_MBEDTLS_TLS=ON)
#   keel_lwip     lwIP 2.2 NO_SYS: core, IPv4, Ethernet, MQTT client, altcp_tls glue
#
# Their configuration is ours, in firmware/config/ (keel_mbedtls_config.h, lwipopts.h, arch/cc.h).
# Users link the target and get the include paths and definitions with it. keel_lwip needs the
# network port to provide sys_now(), lwip_port_rand() and lwip_port_assert() (see arch/cc.h).
#
# Use from firmware/CMakeLists.txt:  include(${CMAKE_CURRENT_LIST_DIR}/third_party.cmake)

set(KEEL_THIRD_PARTY "" CACHE PATH "Directory scripts/deps.sh unpacked the third-party sources into")
option(KEEL_MBEDTLS_TLS "Compile the TLS client into Mbed TLS and lwIP's altcp_tls" OFF)

if(NOT KEEL_THIRD_PARTY)
  message(FATAL_ERROR "KEEL_THIRD_PARTY is not set. Run `make` (it fetches the sources and passes "
    "-DKEEL_THIRD_PARTY=build/third_party), or `bash scripts/deps.sh DIR` and configure with "
    "-DKEEL_THIRD_PARTY=DIR.")
endif()
# deps.sh writes .keel-source last, so its presence means a complete, verified, patched tree.
# Depending on it re-runs CMake (and so the source globs below) after a version bump.
set(_keel_tp_marker "${KEEL_THIRD_PARTY}/lwip/.keel-source")
if(NOT EXISTS "${_keel_tp_marker}")
  message(FATAL_ERROR "lwip sources are missing from ${KEEL_THIRD_PARTY}. "
    "Run `make deps` (or `bash scripts/deps.sh ${KEEL_THIRD_PARTY}`) first.")
endif()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_keel_tp_marker}")

set(_keel_config_dir "${CMAKE_CURRENT_LIST_DIR}/config")
set(_keel_lwip_dir "${KEEL_THIRD_PARTY}/lwip/src")

# Warnings in code we do not own are noise we cannot act on; -Os because flash is the scarce
# resource and lwIP is not on a hot path that -O2 would change.
set(_keel_tp_options -Os -w)

# ---- Mbed TLS (shared with the host build) ---------------------------------------------------------
include(${CMAKE_CURRENT_LIST_DIR}/../cmake/keel_mbedtls.cmake)

# ---- lwIP ------------------------------------------------------------------------------------------
file(GLOB _keel_lwip_sources
  "${_keel_lwip_dir}/core/*.c"
  "${_keel_lwip_dir}/core/ipv4/*.c"
  "${_keel_lwip_dir}/apps/altcp_tls/*.c")
list(APPEND _keel_lwip_sources
  "${_keel_lwip_dir}/netif/ethernet.c"
  "${_keel_lwip_dir}/apps/mqtt/mqtt.c")
add_library(keel_lwip STATIC ${_keel_lwip_sources})
# Our config directory comes first: the Debian tree ships a Unix port with its own lwipopts.h and
# arch/cc.h under lwip/port/include, which must never be picked up.
target_include_directories(keel_lwip PUBLIC "${_keel_config_dir}" "${_keel_lwip_dir}/include")
if(KEEL_MBEDTLS_TLS)
  target_link_libraries(keel_lwip PUBLIC keel_mbedtls)
endif()
target_compile_options(keel_lwip PRIVATE ${_keel_tp_options})
