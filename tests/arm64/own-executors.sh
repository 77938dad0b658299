#!/usr/bin/env bash
# The crate's own executors and the kept resample built for aarch64 and run under qemu-user: the
# backbone's executor (runtime/core/src/conv_net.rs) against tract on every path and the default
# backbone on both engines against onnxruntime's reference outputs; the projector's executor
# (projector_net.rs) against tract on both shipped projectors; the products (matmul.rs) and the
# resample (resample.rs) against their references; and a whole frame allocating nothing. On
# aarch64 they run the gemm crate's NEON kernels, tract-linalg's NEON softmax and erf, and the
# NEON builds of the depthwise loop and the resample. A correctness check; qemu's times say
# nothing about a board. Each emulated CPU in turn: a Cortex-A76 (Raspberry Pi 5, Jetson Orin
# class) and a Cortex-A53 (Pi 3, Jetson Nano class).
#   bash tests/arm64/own-executors.sh
# Builds edge-ad-core with tract for aarch64: about 15 min cold on 2 cores, so a documented
# command, not a CI step. Needs what tests/arm64/search-kernel.sh needs: the aarch64 Rust target
# (rustup target add aarch64-unknown-linux-gnu), gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and
# qemu-user-static.
set -euo pipefail
cd "$(dirname "$0")/../.."
qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64) || { echo "no qemu-aarch64" >&2; exit 1; }
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
for cpu in cortex-a76 cortex-a53; do
  echo "== emulated $cpu"
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$qemu -cpu $cpu -L ${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}"
  cargo test --release --target aarch64-unknown-linux-gnu -p edge-ad-core --test conv_net
  cargo test --release --target aarch64-unknown-linux-gnu -p edge-ad-core --test backbone -- both_engines
  cargo test --release --target aarch64-unknown-linux-gnu -p edge-ad-core --test projector_net
  cargo test --release --target aarch64-unknown-linux-gnu -p edge-ad-core --lib -- matmul resample
  cargo test --release --target aarch64-unknown-linux-gnu -p edge-ad-core --test allocations -- a_frame_allocates_nothing
done
