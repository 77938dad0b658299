#!/usr/bin/env bash
# The nearest-neighbour search's NEON kernel (runtime/core/src/residual.rs) against the portable
# kernel, built for aarch64 and run under qemu-user: the module's unit tests, without tract, in
# seconds (the whole arm64 build is tests/arm64/run.sh, about 35 min cold). A correctness check;
# qemu's times say nothing about a board.
#   bash tests/arm64/search-kernel.sh
# Needs: the aarch64 Rust target (rustup target add aarch64-unknown-linux-gnu), an aarch64 linker
# and glibc (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross) and qemu-user (qemu-user-static).
set -euo pipefail
cd "$(dirname "$0")/search-kernel"
qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64) || { echo "no qemu-aarch64" >&2; exit 1; }
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$qemu -L ${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}"
cargo test --release --target aarch64-unknown-linux-gnu
