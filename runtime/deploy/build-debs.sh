#!/usr/bin/env bash
# Builds the box binaries against glibc 2.31 and packs them as Debian packages:
#   runtime/deploy/build-debs.sh [amd64] [arm64]      (default: both)
# The packages land in $CARGO_TARGET_DIR (or target)/debs/ (not cargo-deb's own target/debian,
# which it clears each time it packs). glibc 2.31 is the oldest
# the boxes run (JetPack 5 = Ubuntu 20.04, Raspberry Pi OS Bullseye, Debian 11); cargo-zigbuild
# links against that version's symbols with zig as the linker, so one binary runs there and on
# everything newer. Needs: cargo install cargo-zigbuild cargo-deb; pip install ziglang; for
# arm64 the README's cross packages (the camera crate's bindgen reads the aarch64 kernel headers).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${CARGO_TARGET_DIR:-target}/debs/
[ $# -gt 0 ] || set -- amd64 arm64
for arch in "$@"; do
  case $arch in
    amd64) triple=x86_64-unknown-linux-gnu ;;
    arm64)
      triple=aarch64-unknown-linux-gnu
      export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu=--sysroot=/usr/aarch64-linux-gnu
      ;;
    *) echo "unknown architecture $arch (amd64, arm64)" >&2; exit 2 ;;
  esac
  cargo zigbuild --profile box --target "$triple.2.31" -p edge-ad
  # cargo-deb strips nothing more (the box profile already strips) and takes the built binary.
  cargo deb -p edge-ad --target "$triple" --profile box --no-build --no-strip --output "$out"
done
