# Thin wrapper around Meson so the README's commands stay short.
#   make        build everything into build/, and the guest kernel (once per
#               machine, cached in /var/cache/sealpod/kernel; scripts/build-kernel)
#   make check  install what is missing, build, run every test
#   make demo   install what is missing, build, run examples/hello.yaml
#   make fuzz   build the libFuzzer targets with clang into build-fuzz/
#   make fuzz-campaign  run every fuzz target FUZZ_SECONDS (60) each, merging new inputs
#   make bench  run the benchmarks in bench/
BUILD ?= build

.PHONY: all deps kernel check demo fuzz fuzz-campaign bench clean

all: deps kernel
	@test -f $(BUILD)/build.ninja || meson setup $(BUILD)
	ninja -C $(BUILD)

kernel: deps
	@./scripts/build-kernel >/dev/null

deps:
	@./scripts/install-deps

check: deps kernel
	/usr/bin/python3 tests/run

demo: all
	./scripts/demo

fuzz: deps
	@test -f build-fuzz/build.ninja || CC=clang meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C build-fuzz

fuzz-campaign: fuzz
	./scripts/fuzz-campaign

bench: all
	./bench/run

clean:
	rm -rf build build-asan build-fuzz
