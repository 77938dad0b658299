#!/usr/bin/env bash
# The host tool's GPU check, for a machine with an NVIDIA GPU (driver and NVRTC installed; no
# CUDA toolkit or LLVM needed to build). It
#   1. builds edge-ad-host with --features cuda,
#   2. runs the CPU-vs-GPU test (firmware-host/tests/device.rs: same start, same steps, losses
#      and weights within 1e-3), failing if no GPU is found,
#   3. pretrains the same recipe on the GPU and on the CPU from one feature cache, and prints
#      both training times, their ratio and how far the loss curves are apart,
#   4. evaluates both exported projectors on a generated set with edge-ad eval.
# Usage: firmware-host/gpu-check.sh [EPOCHS [IMAGES]]   (defaults 3 and 16: a few minutes)
# EDGE_AD_HOST naming a built binary skips steps 1 and 2 (for a machine without a toolchain).
# PRETRAIN_ARGS adds pretrain options, e.g. "--data DIR --layout mvtec --side 336" for the
# shipped photographic recipe (README, *Host tool*).
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-3}
images=${2:-16}
target=${CARGO_TARGET_DIR:-target}

if [ -z "${EDGE_AD_HOST:-}" ]; then
  cargo build --release -p edge-ad-host --features cuda
  cargo build --release -p edge-ad
  EDGE_AD_GPU_TEST=required cargo test --release -p edge-ad-host --features cuda --test device -- --nocapture
  EDGE_AD_HOST=$target/release/edge-ad-host
fi
edge_ad=${EDGE_AD:-$target/release/edge-ad}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for dev in cuda cpu; do # the first run fills the feature cache, so both time training alone
  # shellcheck disable=SC2086
  "$EDGE_AD_HOST" pretrain --device "$dev" --epochs "$epochs" --images "$images" \
    --cache "$work/cache" --out "$work/$dev" ${PRETRAIN_ARGS:-} | tee "$work/$dev.txt"
done

python3 - "$work/cuda.txt" "$work/cpu.txt" <<'PY'
import re, sys
def read(path):
    text = open(path).read()
    secs = float(re.search(r"([0-9.]+) s training", text).group(1))
    losses = [float(x) for x in re.search(r"loss per epoch \[([^\]]*)\]", text).group(1).split(",")]
    return secs, losses
(g, gl), (c, cl) = read(sys.argv[1]), read(sys.argv[2])
worst = max(abs(a - b) / max(abs(b), 1e-6) for a, b in zip(gl, cl))
print(f"training: GPU {g:.1f} s, CPU {c:.1f} s, CPU/GPU {c / g:.1f}x")
print(f"loss per epoch: GPU {gl}\n                CPU {cl}\nlargest relative difference {worst:.2e}")
PY

if [ ! -x "$edge_ad" ]; then
  echo "no edge-ad at $edge_ad (set EDGE_AD): the detection comparison is left out" >&2
else
  "$edge_ad" demo --keep "$work/set" --seed 1234 --test-good 20 --per-defect 6 >/dev/null
  for dev in cuda cpu; do
    echo "== edge-ad eval, projector trained on $dev"
    "$edge_ad" eval --dataset "$work/set" --shots 4 --projector "$work/$dev" | tail -3
  done
fi
