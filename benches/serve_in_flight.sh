#!/usr/bin/env bash
# `edge-ad serve` in free-run with one part in flight against several (`trigger.in_flight`), over
# the same parts, alternated ROUNDS times: parts per second from the first verdict to the last
# (the records' times) and the trigger-to-verdict latency (the records' `latency_ms`), median of
# the rounds, and the ratios (the median of each round's ratio, which cancels the shared machine's
# drift between rounds). Every run must give every part its verdict, and the same verdicts in the
# same order as with one part in flight.
#
#   bash benches/serve_in_flight.sh [PARTS] [ROUNDS] [IN_FLIGHT...]
#
# PARTS parts (default 300), ROUNDS rounds (default 3), the depths to compare (default 1 2).
# SET names a category folder in the MVTec layout (train/good/*.png, test/*/*.png), e.g. one of
# the photo set's (tests/photoset): its test images, repeated as needed, are the replay and 4 of
# its good ones the calibration. Without SET the generated `weave` category is used. EDGE_AD names
# a prebuilt binary; otherwise the release build is made. No [plc], [modbus], [mqtt] or [web]:
# the frame path alone, with the folder's PNG decode in it.
set -euo pipefail
cd "$(dirname "$0")/.."
PARTS=${1:-300}
ROUNDS=${2:-3}
shift $(($# < 2 ? $# : 2))
DEPTHS=("$@")
[ ${#DEPTHS[@]} -gt 0 ] || DEPTHS=(1 2)
if [ -z "${EDGE_AD:-}" ]; then
  cargo build --release -q -p edge-ad
  EDGE_AD="${CARGO_TARGET_DIR:-target}/release/edge-ad"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -n "${SET:-}" ]; then
  cat_dir=$SET
else
  "$EDGE_AD" demo --keep "$work/set" --seed 11 --test-good 40 --per-defect 10 >/dev/null
  cat_dir="$work/set/weave"
fi
ls "$cat_dir"/test/*/*.png >/dev/null
mkdir "$work/replay" "$work/shots"
# The replay: the test images, the kinds interleaved (by file name, then kind) so that a few
# parts hold good and defective ones, repeated until PARTS (links, named so they sort in order).
mapfile -t images < <(ls "$cat_dir"/test/*/*.png | awk -F/ '{print $NF "\t" $0}' | sort | cut -f2)
for k in $(seq 0 $((PARTS - 1))); do
  p=${images[$((k % ${#images[@]}))]}
  ln -s "$p" "$work/replay/$(printf %06d "$k")-$(basename "$(dirname "$p")")-$(basename "$p")"
done
ls "$cat_dir"/train/good/*.png | sort | head -4 | while read -r p; do ln -s "$p" "$work/shots/"; done

config() { # DEPTH ROUND → box.toml
  cat <<TOML
[model]
calibration = "$work/site.calib"
[source]
kind = "folder"
path = "$work/replay"
[trigger]
kind = "free-run"
in_flight = $1
[counters]
path = "$work/counters-$1-$2.json"
[records]
path = "$work/$1-$2.jsonl"
[trust]
box_key = "$work/box.key"
TOML
}

config 1 0 > "$work/calibrate.toml"
"$EDGE_AD" calibrate --config "$work/calibrate.toml" --shots 4 --source "$work/shots" >/dev/null

for round in $(seq "$ROUNDS"); do
  for depth in "${DEPTHS[@]}"; do
    config "$depth" "$round" > "$work/$depth.toml"
    "$EDGE_AD" serve --config "$work/$depth.toml" 2>/dev/null
  done
done

python3 - "$work" "$ROUNDS" "$PARTS" "${DEPTHS[@]}" <<'PY'
import json, statistics, sys
work, rounds, parts, depths = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
p95 = lambda xs: statistics.quantiles(xs, n=20)[18]
rate, lat, first = {}, {}, None
for d in depths:
    for r in range(1, rounds + 1):
        vs = [x for x in map(json.loads, open(f"{work}/{d}-{r}.jsonl")) if x["event"] == "verdict"]
        assert len(vs) == parts, f"in_flight {d} round {r}: {len(vs)} verdicts of {parts}"
        assert all(x["error"] is None for x in vs), f"in_flight {d} round {r}: a part failed"
        seen = [(x["frame"], x["verdict"], x["score"]) for x in vs]
        first = first or seen
        assert seen == first, f"in_flight {d} round {r}: other verdicts, scores or order than the first run"
        span_s = (vs[-1]["time_unix_ms"] - vs[0]["time_unix_ms"]) / 1e3
        rate.setdefault(d, []).append((parts - 1) / span_s)
        lat.setdefault(d, []).append([x["latency_ms"] for x in vs])
ng = sum(v == "NG" for _, v, _ in first)
print(f"{parts} parts ({ng} NG), {rounds} rounds; every run gave the same verdicts and scores in the same order")
for d in depths:
    pooled = [x for xs in lat[d] for x in xs]
    print(f"in_flight {d}: parts/s median {statistics.median(rate[d]):6.1f} (rounds: "
          + ", ".join(f"{x:.1f}" for x in rate[d])
          + f")  latency median {statistics.median(pooled):6.2f} ms  p95 {p95(pooled):6.2f} ms")
base = depths[0]
for d in depths[1:]:
    ratio = lambda f, xs: statistics.median(f(xs[d][r]) / f(xs[base][r]) for r in range(rounds))
    print(f"in_flight {d} / {base}, median of the rounds' ratios: parts/s "
          f"{statistics.median(rate[d][r] / rate[base][r] for r in range(rounds)):.2f}x, latency median "
          f"{ratio(statistics.median, lat):.2f}x, p95 {ratio(p95, lat):.2f}x")
PY
