#!/usr/bin/env bash
# The backbone's own executor (runtime/core/src/conv_net.rs) built for aarch64 and run under
# qemu-user: its tests against tract on every path, and the default backbone on both engines
# against onnxruntime's reference outputs. On aarch64 the executor runs the gemm crate's NEON
# kernels and the NEON build of its depthwise loop. A correctness check; qemu's times say
# nothing about a board. Each emulated CPU in turn: a Cortex-A76 (Raspberry Pi 5, Jetson Orin
# class) and a Cortex-A53 (Pi 3, Jetson Nano class).
#   bash tests/arm64/conv-net.sh
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
done
