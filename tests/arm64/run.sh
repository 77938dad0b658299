#!/usr/bin/env bash
# The aarch64 box build under emulation: a small calibrate + run under qemu-user as a Raspberry
# Pi 5 / Jetson Orin class core (Cortex-A76: NEON, fp16, dot product) and as a Cortex-A53 (Pi 3,
# Jetson Nano class; tract's A53 kernels, chosen with TRACT_CPU_AARCH64_KIND because under plain
# qemu-user /proc/cpuinfo is the host's), each compared with the x86 build on the same images:
# every score within 1e-5 (relative), the same verdicts, and calibration files interchangeable
# between the two builds. Prints `N passed, M failed`.
#
# Too slow for CI on 2 cores (the cross build alone is about 35 min cold): a documented command.
#   tests/arm64/run.sh             builds both binaries first
#   EDGE_AD_ARM64=path EDGE_AD=path tests/arm64/run.sh   uses built ones
# Needs: qemu-user (qemu-aarch64 or qemu-aarch64-static), the aarch64 glibc for its loader
# (libc6-arm64-cross: /usr/aarch64-linux-gnu), and to build, cargo-zigbuild with zig (pip
# install ziglang) plus the README's cross packages.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
target=${CARGO_TARGET_DIR:-target}
if [ -z "${EDGE_AD_ARM64:-}" ]; then
  bash runtime/deploy/build-debs.sh arm64 || exit 1 # the packages' build: glibc 2.31, box profile
  EDGE_AD_ARM64=$target/aarch64-unknown-linux-gnu/box/edge-ad
fi
if [ -z "${EDGE_AD:-}" ]; then
  cargo build --release -p edge-ad || exit 1
  EDGE_AD=$target/release/edge-ad
fi
qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64) || { echo "no qemu-aarch64" >&2; exit 1; }
sysroot=${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$EDGE_AD" demo --keep "$work/set" --seed 7 --test-good 3 --per-defect 1 >/dev/null || exit 1
texture=$(find "$work/set" -mindepth 1 -maxdepth 1 -type d | sort | head -1)
good=$texture/train/good
mapfile -t tests < <(find "$texture/test" -name '*.png' | sort)
sources=()
for t in "${tests[@]}"; do sources+=(--source "$t"); done
echo "texture $(basename "$texture"): 4 shots, ${#tests[@]} test images"

passed=0
failed=0
verdict() { # verdict NAME OK?
  if [ "$2" = 0 ]; then passed=$((passed + 1)); echo "ok   $1"; else failed=$((failed + 1)); echo "FAIL $1"; fi
}
compare() { # compare A.jsonl B.jsonl: same files and verdicts, scores within 1e-5
  python3 - "$1" "$2" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) > 0, (len(a), len(b))
worst = 0.0
for x, y in zip(a, b):
    assert x["file"] == y["file"] and x["verdict"] == y["verdict"], (x, y)
    assert x["score"] is not None and y["score"] is not None, (x, y)
    worst = max(worst, abs(x["score"] - y["score"]) / max(abs(y["score"]), 1e-6))
print(f"     {len(a)} images, largest relative score difference {worst:.1e}")
assert worst <= 1e-5
PY
}

"$EDGE_AD" calibrate --source "$good" --out "$work/x86.calib" >/dev/null || { echo "the x86 build cannot calibrate" >&2; exit 1; }
"$EDGE_AD" run --calibration "$work/x86.calib" "${sources[@]}" --json >"$work/x86.jsonl" || { echo "the x86 build cannot run" >&2; exit 1; }
for cpu in cortex-a76 cortex-a53; do
  kind=
  [ "$cpu" = cortex-a53 ] && kind=a53
  # Logs "CPU optimisation: CortexA53" (or Generic) at RUST_LOG=tract_linalg=info.
  arm() { env ${kind:+TRACT_CPU_AARCH64_KIND=$kind} "$qemu" -cpu "$cpu" -L "$sysroot" "$EDGE_AD_ARM64" "$@"; }
  start=$(date +%s)
  arm calibrate --source "$good" --out "$work/$cpu.calib" >/dev/null 2>"$work/$cpu.err"
  verdict "$cpu: calibrates" $?
  arm run --calibration "$work/$cpu.calib" "${sources[@]}" --json >"$work/$cpu.jsonl" 2>>"$work/$cpu.err"
  verdict "$cpu: runs" $?
  compare "$work/$cpu.jsonl" "$work/x86.jsonl"
  verdict "$cpu: scores and verdicts match x86" $?
  arm run --calibration "$work/x86.calib" "${sources[@]}" --json >"$work/$cpu-x86calib.jsonl" 2>>"$work/$cpu.err"
  compare "$work/$cpu-x86calib.jsonl" "$work/x86.jsonl"
  verdict "$cpu: scores with the x86 calibration" $?
  "$EDGE_AD" run --calibration "$work/$cpu.calib" "${sources[@]}" --json >"$work/x86-$cpu-calib.jsonl"
  compare "$work/x86-$cpu-calib.jsonl" "$work/x86.jsonl"
  verdict "x86 scores with the $cpu calibration" $?
  echo "     $cpu under qemu: $(($(date +%s) - start)) s"
  # tract's warning under plain qemu-user (/proc/cpuinfo is the host's) is expected; shown once.
  [ -s "$work/$cpu.err" ] && sed 's/\x1b\[[0-9;]*m//g; s/^[^ ]* *//; s/^/     stderr: /' "$work/$cpu.err" | sort -u | head -5
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
