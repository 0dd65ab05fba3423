# keel-app.mk: Make fragment for building a Keel non-secure app outside the Keel tree.
#
# Usage, in your Makefile:
#
#   include /path/to/keel/firmware/sdk/keel-app.mk
#   app.elf: main.c
#   	$(KEEL_CC) $(KEEL_CFLAGS) -o $@ $^ $(KEEL_STARTUP_SRC) $(KEEL_LDFLAGS) $(KEEL_LIBS)
#
# For C++ use $(KEEL_CXX) and $(KEEL_CXXFLAGS) for the link and C++ sources (the startup is C:
# compile it with $(KEEL_CC) $(KEEL_CFLAGS) -c, or just list it: g++ compiles .c as C).
# Override KEEL_SDK (this directory), KEEL_VENEERS (the veneer import library), KEEL_BOARD (the
# board the app is for; default: the tree's default board, whose app regions are in
# firmware/platform/<board>/app/keel_app_memory.ld) or KEEL_STACK_SIZE before the include if
# needed. The compiler is Debian's gcc-arm-none-eabi.
KEEL_SDK ?= $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
KEEL_VENEERS ?= $(KEEL_SDK)/lib/keel_veneers.o
KEEL_BOARD ?= $(notdir $(patsubst %/board.cmake,%,$(firstword $(shell grep -l 'KEEL_BOARD_IS_DEFAULT ON' $(KEEL_SDK)/../platform/*/board.cmake))))
KEEL_APP_BOARD_DIR = $(KEEL_SDK)/../platform/$(KEEL_BOARD)/app
KEEL_STACK_SIZE ?= 16384

KEEL_CC  = arm-none-eabi-gcc
KEEL_CXX = arm-none-eabi-g++
KEEL_CPU_FLAGS = -mcpu=cortex-m33 -mthumb -mfloat-abi=soft
KEEL_CFLAGS = $(KEEL_CPU_FLAGS) -std=c11 -O2 -g -Wall -Wextra -ffunction-sections -fdata-sections \
  -I$(KEEL_SDK)/include
KEEL_CXXFLAGS = $(KEEL_CPU_FLAGS) -O2 -g -Wall -Wextra -ffunction-sections -fdata-sections \
  -fno-exceptions -fno-rtti -fno-threadsafe-statics -I$(KEEL_SDK)/include
KEEL_LDFLAGS = -T $(KEEL_SDK)/ld/keel_app.ld -L $(KEEL_APP_BOARD_DIR) -nostartfiles --specs=nano.specs -Wl,--gc-sections \
  -Wl,--defsym=KEEL_STACK_SIZE=$(KEEL_STACK_SIZE)
KEEL_STARTUP_SRC = $(KEEL_SDK)/src/startup.c
KEEL_LIBS = $(KEEL_VENEERS)

ifeq ($(wildcard $(KEEL_VENEERS)),)
$(error keel-app.mk: veneer import library $(KEEL_VENEERS) not found; set KEEL_VENEERS=<path to keel_veneers.o>)
endif
