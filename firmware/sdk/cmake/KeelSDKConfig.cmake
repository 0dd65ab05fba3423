# KeelSDKConfig.cmake: CMake package for building Keel non-secure apps.
#
# Out of tree (your CMakeLists.txt):
#
#   cmake_minimum_required(VERSION 3.20)
#   project(myapp C)                    # add CXX for C++ sources
#   find_package(KeelSDK REQUIRED)
#   keel_add_app(myapp main.c)          # -> myapp.elf, ready for `keel device run --install`
#
# configured with the Keel toolchain file and the SDK location:
#
#   cmake -S . -B build -DCMAKE_TOOLCHAIN_FILE=<keel>/cmake/arm-none-eabi.cmake \
#         -DKeelSDK_DIR=<keel>/firmware/sdk/cmake
#
# The Keel tree builds its own example apps through this same file (firmware/sdk/CMakeLists.txt).
#
# Cache variables:
#   KEEL_VENEERS      the veneer import library (default: <sdk>/lib/keel_veneers.o, the stable copy
#                     the microvisor is built against with --in-implib, so app binaries never need
#                     relinking when the microvisor is rebuilt)
#   KEEL_STACK_SIZE   main stack bytes (default 16384), per app: keel_add_app(... STACK_SIZE n)
#   KEEL_RUSTC, KEEL_RUST_CACHE: apps in Rust, see KeelRust.cmake
get_filename_component(KEEL_SDK_DIR "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set(KeelSDK_FOUND TRUE)

# KEEL_BOARD: the board the apps are for (default: the tree's default board); its app regions
# come from firmware/platform/<board>/app/keel_app_memory.ld.
if(NOT KEEL_BOARD)
  include("${KEEL_SDK_DIR}/../platform/boards.cmake")
  set(KEEL_BOARD ${KEEL_BOARD_DEFAULT} CACHE STRING "Board the Keel apps are built for")
endif()
get_filename_component(KEEL_APP_BOARD_DIR "${KEEL_SDK_DIR}/../platform/${KEEL_BOARD}/app" ABSOLUTE)
if(NOT EXISTS "${KEEL_APP_BOARD_DIR}/keel_app_memory.ld")
  message(FATAL_ERROR "KeelSDK: board '${KEEL_BOARD}' has no ${KEEL_APP_BOARD_DIR}/keel_app_memory.ld")
endif()
# keel_app.ld INCLUDEs the board's keel_app_memory.ld from the linker's search path: every app
# target of this project links with the board's app folder on it. (A change to that file
# reconfigures the project; the apps relink when keel_app.ld or their sources change.)
add_link_options("-L${KEEL_APP_BOARD_DIR}")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${KEEL_APP_BOARD_DIR}/keel_app_memory.ld")

set(KEEL_VENEERS "${KEEL_SDK_DIR}/lib/keel_veneers.o" CACHE FILEPATH
    "Keel veneer import library (the microvisor's --out-implib object)")
set(KEEL_STACK_SIZE 16384 CACHE STRING "Default main stack size of Keel apps, bytes")

if(NOT CMAKE_C_COMPILER MATCHES "arm-none-eabi-gcc")
  message(FATAL_ERROR
    "KeelSDK: apps must be cross-compiled for the Cortex-M33, but the C compiler is "
    "'${CMAKE_C_COMPILER}'. Configure with "
    "-DCMAKE_TOOLCHAIN_FILE=<keel>/cmake/arm-none-eabi.cmake in a fresh build directory.")
endif()
if(NOT EXISTS "${KEEL_VENEERS}")
  message(FATAL_ERROR
    "KeelSDK: the veneer import library '${KEEL_VENEERS}' does not exist. It is the "
    "microvisor's --out-implib output, shipped as <sdk>/lib/keel_veneers.o; pass "
    "-DKEEL_VENEERS=<path to keel_veneers.o> if yours is elsewhere.")
endif()

# keel_add_app(<target> [STACK_SIZE <bytes>] <sources...>)
#   Builds <target>.elf: the sources + the SDK startup, linked with the SDK linker script and the
#   veneer import library. C++ sources need CXX enabled in the project; the C++ runtime (or the
#   lack of one) is the app's own business.
function(keel_add_app target)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "STACK_SIZE" "")
  if(NOT ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "keel_add_app(${target}): give at least one source file")
  endif()
  add_executable(${target} ${ARG_UNPARSED_ARGUMENTS})
  _keel_app_setup(${target} "${ARG_STACK_SIZE}")
endfunction()

# The SDK part of every app target (C, C++ or Rust): startup, linker script, veneers.
function(_keel_app_setup target stack_size)
  if(NOT stack_size)
    set(stack_size ${KEEL_STACK_SIZE})
  endif()
  get_filename_component(sdk "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/.." ABSOLUTE)
  set(ld_script "${sdk}/ld/keel_app.ld")
  target_sources(${target} PRIVATE "${sdk}/src/startup.c")
  set_target_properties(${target} PROPERTIES SUFFIX ".elf" LINK_DEPENDS "${ld_script}")
  target_include_directories(${target} PRIVATE "${sdk}/include")
  target_compile_options(${target} PRIVATE -Wall -Wextra
    $<$<COMPILE_LANGUAGE:C>:-std=c11>
    $<$<COMPILE_LANGUAGE:CXX>:-fno-exceptions -fno-rtti -fno-threadsafe-statics>)
  target_link_options(${target} PRIVATE
    -T "${ld_script}" -nostartfiles --specs=nano.specs -Wl,--gc-sections
    "-Wl,--defsym=KEEL_STACK_SIZE=${stack_size}" "-Wl,-Map=$<TARGET_FILE:${target}>.map")
  target_link_libraries(${target} PRIVATE "${KEEL_VENEERS}")
endfunction()

# Apps in Rust (keel_add_rust_app), when a rustc with its core sources is installed.
include("${CMAKE_CURRENT_LIST_DIR}/KeelRust.cmake")
