#!/usr/bin/env bash
# The whole frame path (decode -> verdict) of `edge-ad run` and of the same graphs and steps
# through onnxruntime (benches/ort_pipeline.py), side by side in one run, on the same 4 shots and
# the same parts; prints medians and the ratios edge-ad / onnxruntime (below 1: edge-ad is faster).
#
#   bash benches/vs_onnxruntime.sh [PARTS] [REPEAT]
#
# PARTS test parts of the generated `weave` category (default 60, good and defective), each scored
# REPEAT times (default 3). One frame at a time: `edge-ad run --workers 1` against one onnxruntime
# process with one thread (latency). Every core busy: `--workers <cores>` against as many
# onnxruntime processes, one thread each (throughput; onnxruntime's intra-op threads were slower
# than one thread per process on this net). Latency is the frame path from the decoded image to
# the verdict (edge-ad's records' `latency_ms`); frames/s include the decode for both. Where the
# stage_times example is built beside the binary, a table of both pipelines' stages follows
# (edge-ad's from the example on the same parts, onnxruntime's from the one-process run). Needs
# python3 with numpy, pillow, scipy and onnxruntime (benches/requirements.txt). EDGE_AD names a
# prebuilt binary; otherwise the release build is made (and the example with it).
set -euo pipefail
cd "$(dirname "$0")/.."
PARTS=${1:-60}
REPEAT=${2:-3}
if [ -z "${EDGE_AD:-}" ]; then
  cargo build --release -q -p edge-ad
  cargo build --release -q -p edge-ad-core --example stage_times
  EDGE_AD="${CARGO_TARGET_DIR:-target}/release/edge-ad"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$EDGE_AD" demo --keep "$work/set" --seed 11 --test-good "$PARTS" --per-defect 2 >/dev/null
cat_dir="$work/set/weave"
mapfile -t shots < <(ls "$cat_dir"/train/good/*.png | sort | head -4)
mapfile -t parts < <(ls "$cat_dir"/test/*/*.png | sort | head -"$PARTS")
# `run` takes folders or files; the same list REPEAT times over.
images=()
for _ in $(seq "$REPEAT"); do images+=("${parts[@]}"); done
sources=()
for p in "${images[@]}"; do sources+=(--source "$p"); done

"$EDGE_AD" calibrate --shots 4 --source "$cat_dir/train/good" --out "$work/site.calib" >/dev/null
threshold=$("$EDGE_AD" run --calibration "$work/site.calib" --json --source "${parts[0]}" |
  python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["threshold"])')

run_edge() { # workers → JSON summary of `edge-ad run` (its own frames/s line, -v)
  "$EDGE_AD" -v run --calibration "$work/site.calib" --json --workers "$1" "${sources[@]}" \
    >"$work/edge-$1.jsonl" 2>"$work/edge-$1.log"
  python3 - "$work/edge-$1.jsonl" "$work/edge-$1.log" <<'EOF'
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
fps = float(re.search(r"([0-9.]+) frames/s", open(sys.argv[2]).read()).group(1))
print(json.dumps({"latency_ms": [r["latency_ms"] for r in rows], "scores": [r["score"] for r in rows],
                  "fps": fps, "verdicts": [r["verdict"] for r in rows]}))
EOF
}
run_ort() { # processes → JSON summary of that many onnxruntime pipelines at once, one thread each
  local n=$1 i j
  for i in $(seq 0 $((n - 1))); do
    # Process i takes every n-th part; numpy is held to one thread too.
    local share=()
    for j in "${!parts[@]}"; do [ $((j % n)) -eq "$i" ] && share+=("${parts[$j]}"); done
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
      python3 benches/ort_pipeline.py --model models/effnet_lite0_feat.onnx --projector models/projector \
      --shots "${shots[@]}" --images "${share[@]}" --repeat "$REPEAT" --threshold "$threshold" \
      >"$work/ort-$n-$i.json" &
  done
  wait
  python3 - "$work" "$n" <<'EOF'
import json, sys
parts = [json.load(open(f"{sys.argv[1]}/ort-{sys.argv[2]}-{i}.json")) for i in range(int(sys.argv[2]))]
frames = sum(len(p["latency_ms"]) for p in parts)
# Throughput over the scoring loops (model loading excluded), the slowest process deciding.
print(json.dumps({"latency_ms": [v for p in parts for v in p["latency_ms"]], "scores": parts[0]["scores"],
                  "fps": frames / max(p["wall_s"] for p in parts), "verdicts": parts[0]["verdicts"],
                  "stage_ms": parts[0].get("stage_ms", {})}))
EOF
}

# Interleaved, so that both see the same machine load.
cores=$(nproc)
run_edge 1 >"$work/e1.json"
run_ort 1 >"$work/o1.json"
run_edge "$cores" >"$work/eN.json"
run_ort "$cores" >"$work/oN.json"
# edge-ad's stages, when the stage_times example is built beside the binary (cargo test and
# cargo build --examples build it): the same shots (the first 4 good parts), every test part.
stage_times="$(dirname "$EDGE_AD")/examples/stage_times"
if [ -x "$stage_times" ]; then
  "$stage_times" "$cat_dir" 224 | tail -1 >"$work/stages.txt"
fi

python3 - "$work" "$cores" "${#images[@]}" <<'EOF'
import json, statistics, sys
work, cores, frames = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
load = lambda n: json.load(open(f"{work}/{n}.json"))
e1, o1, eN, oN = load("e1"), load("o1"), load("eN"), load("oN")
def p95(v):
    v = sorted(v); return v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))]
rows = [
    ("edge-ad run --workers 1", e1),
    ("onnxruntime, 1 process", o1),
    (f"edge-ad run --workers {cores}", eN),
    (f"onnxruntime, {cores} processes", oN),
]
print(f"{frames} frames (256² PNG parts → 224², decode to verdict), 4 shots, default projector, one run\n")
print("| pipeline | median ms | p95 ms | frames/s |\n|---|---:|---:|---:|")
for name, r in rows:
    print(f"| {name} | {statistics.median(r['latency_ms']):.1f} | {p95(r['latency_ms']):.1f} | {r['fps']:.1f} |")
print(f"\nratio edge-ad / onnxruntime, median latency, one frame at a time: "
      f"{statistics.median(e1['latency_ms']) / statistics.median(o1['latency_ms']):.2f}")
print(f"ratio edge-ad / onnxruntime, time per frame with every core busy: {oN['fps'] / eN['fps']:.2f}")
try:  # side, then stage medians: preprocess, backbone, search, projector, map and score, frame
    ours = [float(v) for v in open(f"{work}/stages.txt").read().split()[1:]]
except (OSError, ValueError):
    ours = None
theirs = o1.get("stage_ms", {})
if ours and len(ours) == 6 and theirs:
    print("\n| stage (median ms, one thread) | edge-ad | onnxruntime |\n|---|---:|---:|")
    for name, mine in zip(["preprocess", "backbone", "search", "projector", "map and score"], ours):
        print(f"| {name} | {mine:.2f} | {theirs.get(name, float('nan')):.2f} |")
    print(f"| frame | {ours[5]:.2f} | {sum(theirs.values()):.2f} |")
n = len(o1["scores"])
diff = max(abs(a - b) for a, b in zip(e1["scores"][:n], o1["scores"]))
same = sum(a == b for a, b in zip(e1["verdicts"][:n], o1["verdicts"]))
print(f"largest score difference: {diff:.2e} (median score {statistics.median(o1['scores']):.3f}); "
      f"verdicts agree on {same} of {n}")
# Both must have computed the same thing for the times to compare (the resizes differ slightly).
if diff > 0.05:
    sys.exit("the two pipelines disagree: the comparison is void")
EOF
