#!/usr/bin/env bash
# The aarch64 box build under emulation: a small calibrate + run under qemu-user as a Raspberry
# Pi 5 / Jetson Orin class core (Cortex-A76: NEON, fp16, dot product) and as a Cortex-A53 (Pi 3,
# Jetson Nano class, no f16 arithmetic), each compared with the x86 build on the same images. In
# f32: every score within 1e-5 (relative), the same verdicts, and calibration files
# interchangeable between the two builds. The precision `auto` picks: f16 on the A76, f32 on the
# A53. In f16 on the A76 (tract's native f16 kernels): scores within 3 % of x86's f32, and the same
# verdicts except for parts whose f32 score lies within 3 % of the threshold.
# Under plain qemu-user /proc/cpuinfo is the host's, which tract reads to pick its kernels: its
# kind is forced with TRACT_CPU_AARCH64_KIND (A55 kernels on the A76, which also makes tract's
# f16 kernels legal as on a real A76; A53 kernels on the A53). Prints `N passed, M failed`.
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
compare() { # compare A.jsonl B.jsonl [TOLERANCE]: same files, scores within TOLERANCE
  # (relative, default 1e-5), same verdicts except where B's score is that close to its threshold
  python3 - "$1" "$2" "${3:-1e-5}" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
tol = float(sys.argv[3])
assert len(a) == len(b) > 0, (len(a), len(b))
worst = 0.0
for x, y in zip(a, b):
    assert x["file"] == y["file"], (x, y)
    assert x["score"] is not None and y["score"] is not None, (x, y)
    near = abs(y["score"] - y["threshold"]) <= tol * y["threshold"]
    assert x["verdict"] == y["verdict"] or near, (x, y)
    worst = max(worst, abs(x["score"] - y["score"]) / max(abs(y["score"]), 1e-6))
print(f"     {len(a)} images, largest relative score difference {worst:.1e}")
assert worst <= tol
PY
}

"$EDGE_AD" calibrate --source "$good" --out "$work/x86.calib" >/dev/null || { echo "the x86 build cannot calibrate" >&2; exit 1; }
"$EDGE_AD" run --calibration "$work/x86.calib" "${sources[@]}" --json >"$work/x86.jsonl" || { echo "the x86 build cannot run" >&2; exit 1; }
for cpu in cortex-a76 cortex-a53; do
  kind=a55
  [ "$cpu" = cortex-a53 ] && kind=a53
  # Logs "CPU optimisation: ..." at RUST_LOG=tract_linalg=info.
  arm() { env TRACT_CPU_AARCH64_KIND=$kind "$qemu" -cpu "$cpu" -L "$sysroot" "$EDGE_AD_ARM64" "$@"; }
  start=$(date +%s)
  # What `auto` picks on this core, from the log line of the model's setup.
  expected=f32
  [ "$cpu" = cortex-a76 ] && expected=f16
  arm -v calibrate --source "$good" --out "$work/$cpu-auto.calib" >/dev/null 2>"$work/$cpu-auto.err"
  grep -q "in $expected (auto asked)" "$work/$cpu-auto.err"
  verdict "$cpu: auto precision is $expected" $?
  arm calibrate --precision f32 --source "$good" --out "$work/$cpu.calib" >/dev/null 2>"$work/$cpu.err"
  verdict "$cpu: calibrates" $?
  arm run --precision f32 --calibration "$work/$cpu.calib" "${sources[@]}" --json >"$work/$cpu.jsonl" 2>>"$work/$cpu.err"
  verdict "$cpu: runs" $?
  compare "$work/$cpu.jsonl" "$work/x86.jsonl"
  verdict "$cpu: scores and verdicts match x86" $?
  arm run --precision f32 --calibration "$work/x86.calib" "${sources[@]}" --json >"$work/$cpu-x86calib.jsonl" 2>>"$work/$cpu.err"
  compare "$work/$cpu-x86calib.jsonl" "$work/x86.jsonl"
  verdict "$cpu: scores with the x86 calibration" $?
  "$EDGE_AD" run --calibration "$work/$cpu.calib" "${sources[@]}" --json >"$work/x86-$cpu-calib.jsonl"
  compare "$work/x86-$cpu-calib.jsonl" "$work/x86.jsonl"
  verdict "x86 scores with the $cpu calibration" $?
  if [ "$cpu" = cortex-a76 ]; then
    arm run --calibration "$work/$cpu-auto.calib" "${sources[@]}" --json >"$work/$cpu-f16.jsonl" 2>>"$work/$cpu.err"
    compare "$work/$cpu-f16.jsonl" "$work/x86.jsonl" 0.03
    verdict "$cpu: f16 scores within 3 % of x86's f32" $?
  fi
  echo "     $cpu under qemu: $(($(date +%s) - start)) s"
  # tract's warning under plain qemu-user (/proc/cpuinfo is the host's) is expected; shown once.
  [ -s "$work/$cpu.err" ] && sed 's/\x1b\[[0-9;]*m//g; s/^[^ ]* *//; s/^/     stderr: /' "$work/$cpu.err" | sort -u | head -5
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
