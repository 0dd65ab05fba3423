# Keel top-level entry points. Everything installs what it needs first (make deps).
#   make        build firmware (cross) and host tools
#   make test   build, then run every test (CTest summary)
#   make demo   build, then run the demo
#   make bench  build, then measure and write bench/results.md
#   make fuzz   build, then run the fuzz campaign (hours; writes its bench/results.md section)
#   make soak   build, then the power-cut soak of the update engine (writes its section)
#   make deps   install Debian packages and fetch third-party sources (idempotent)
BUILD   ?= build
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
FW_DIR   = $(abspath $(BUILD)/fw)
HOST_DIR = $(abspath $(BUILD)/host)
TP_DIR   = $(abspath $(BUILD)/third_party)

.PHONY: all deps fw host test demo bench fuzz soak clean sdk-implib

all: fw host

deps:
	@bash scripts/deps.sh "$(TP_DIR)"

fw: deps
	@cmake -S firmware -B $(FW_DIR) -DCMAKE_TOOLCHAIN_FILE=$(abspath cmake/arm-none-eabi.cmake) \
	  -DKEEL_THIRD_PARTY=$(TP_DIR) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(FW_DIR) -j $(JOBS)

host: deps
	@cmake -S . -B $(HOST_DIR) -DKEEL_FW_DIR=$(FW_DIR) -DKEEL_THIRD_PARTY=$(TP_DIR) -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(HOST_DIR) -j $(JOBS)

test: all
	@cd $(HOST_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

demo: all
	@bash scripts/demo.sh "$(abspath $(BUILD))"

# After adding a keel_* entry point: the SDK's import library gets the new veneers (existing ones
# keep their addresses: the build feeds the committed library back with --in-implib).
sdk-implib:
	@cmake --build $(FW_DIR) --target keel-microvisor -j $(JOBS)
	@cp $(FW_DIR)/microvisor/keel_veneers.o firmware/sdk/lib/keel_veneers.o
	@echo "firmware/sdk/lib/keel_veneers.o updated: commit it with the new API"

bench: all
	@bash scripts/bench.sh "$(abspath $(BUILD))"
	@set -e; for b in scripts/bench-*.sh; do [ -e "$$b" ] || continue; bash "$$b" "$(abspath $(BUILD))"; done

# Every fuzz target until >= 10 million executions and flat coverage (scripts/fuzz.sh for the knobs).
fuzz: all
	@bash scripts/fuzz.sh "$(abspath $(BUILD))"

# Every power cut and double cut of the update engine's sweep, plus random double cuts.
soak: all
	@bash scripts/soak.sh "$(abspath $(BUILD))"

clean:
	rm -rf $(FW_DIR) $(HOST_DIR)
