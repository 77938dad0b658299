#!/usr/bin/env bash
# The frame path's latency in `edge-ad serve` with the plant network attached and without, over
# the same parts, alternated ROUNDS times; prints the median trigger-to-verdict latency of each
# (the records' `latency_ms`), the parts per second, and the ratios.
#
#   bash benches/plant_latency.sh [PARTS] [ROUNDS]
#
# Attached: [modbus] with a pymodbus client reading every register and discrete input 100 times a
# second, [mqtt] to a Mosquitto broker (started here) with mosquitto_sub watching every topic, and
# [web] with the operator's page open in headless Chromium (runtime/line/tests/plant/browser.py
# watch: the page polls its state every second and the live view, and the script reads the
# verdict table twice a second). Without: none of the three. Free-run over PARTS parts (default 200) of the generated `weave`
# category, ROUNDS rounds (default 3). Needs mosquitto, mosquitto_sub, pymodbus
# (runtime/line/tests/plant/requirements.txt), chromium, chromium-driver and selenium. EDGE_AD names a prebuilt binary; otherwise the
# release build is made.
set -euo pipefail
cd "$(dirname "$0")/.."
PARTS=${1:-200}
ROUNDS=${2:-3}
if [ -z "${EDGE_AD:-}" ]; then
  cargo build --release -q -p edge-ad
  EDGE_AD="${CARGO_TARGET_DIR:-target}/release/edge-ad"
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -KILL -f "$work/chromium" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$EDGE_AD" demo --keep "$work/set" --seed 11 --test-good "$PARTS" --per-defect 2 >/dev/null
cat_dir="$work/set/weave"
mkdir "$work/replay"
ls "$cat_dir"/test/*/*.png | sort | head -"$PARTS" | while read -r p; do
  ln -s "$p" "$work/replay/$(basename "$(dirname "$p")")-$(basename "$p")"
done
read -r broker_port modbus_port web_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')

printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$broker_port" > "$work/mosquitto.conf"
"$MOSQUITTO" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)
sleep 0.5
mosquitto_sub -h 127.0.0.1 -p "$broker_port" -t 'edge-ad/bench/#' -q 1 >/dev/null 2>&1 &
pids+=($!)

config() { # VARIANT ROUND → box.toml
  cat <<TOML
[model]
calibration = "$work/site.calib"
threads = 1
[source]
kind = "folder"
path = "$work/replay"
[trigger]
kind = "free-run"
[counters]
path = "$work/counters-$1-$2.json"
[records]
path = "$work/$1-$2.jsonl"
[trust]
box_key = "$work/box.key"
TOML
  if [ "$1" = attached ]; then
    printf '[modbus]\nlisten = "127.0.0.1:%s"\n[mqtt]\nhost = "127.0.0.1"\nport = %s\nprefix = "edge-ad/bench"\n' \
      "$modbus_port" "$broker_port"
    printf '[web]\nlisten = "127.0.0.1:%s"\n' "$web_port"
  fi
}

config plain 0 > "$work/calibrate.toml"
"$EDGE_AD" calibrate --config "$work/calibrate.toml" --shots 4 --source "$cat_dir/train/good" >/dev/null

poll() { # a Modbus client reading everything at 100 Hz until killed
  python3 - "$modbus_port" <<'PY'
import sys, time
from pymodbus.client import ModbusTcpClient
c = ModbusTcpClient("127.0.0.1", port=int(sys.argv[1]), timeout=2)
while not c.connect():
    time.sleep(0.05)
try:
    while True:
        c.read_input_registers(0, count=27)
        c.read_discrete_inputs(0, count=7)
        time.sleep(0.01)
except Exception:
    pass  # the service ended
PY
}

for round in $(seq "$ROUNDS"); do
  for variant in plain attached; do
    config "$variant" "$round" > "$work/$variant.toml"
    poller=
    browser=
    if [ "$variant" = attached ]; then
      poll &
      poller=$!
      # The browser up first; it opens the page as soon as the box listens.
      setsid python3 runtime/line/tests/plant/browser.py watch "http://127.0.0.1:$web_port/" \
        "$work/page-$round.jsonl" "$work/chromium-$round" 2>/dev/null &
      browser=$!
      for _ in $(seq 600); do grep -q browser "$work/page-$round.jsonl" 2>/dev/null && break; sleep 0.1; done
    fi
    start=$(date +%s.%N)
    "$EDGE_AD" serve --config "$work/$variant.toml" 2>/dev/null
    end=$(date +%s.%N)
    echo "$variant $round $start $end" >> "$work/times"
    [ -n "$poller" ] && { kill "$poller" 2>/dev/null || true; wait "$poller" 2>/dev/null || true; }
    if [ -n "$browser" ]; then # the script, its driver and the browser: one process group
      kill -KILL -- "-$browser" 2>/dev/null || true
      pkill -KILL -f "$work/chromium-$round" 2>/dev/null || true
      wait "$browser" 2>/dev/null || true
      rows=$(grep -c '"part"' "$work/page-$round.jsonl" || true)
      echo "round $round: the page showed $rows verdicts" >&2
    fi
  done
done

python3 - "$work" "$ROUNDS" "$PARTS" <<'PY'
import json, statistics, sys
work, rounds, parts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
times = {}
for line in open(f"{work}/times"):
    v, r, s, e = line.split()
    times.setdefault(v, []).append(float(e) - float(s))
lat = {}
for v in ("plain", "attached"):
    for r in range(1, rounds + 1):
        recs = [json.loads(l) for l in open(f"{work}/{v}-{r}.jsonl")]
        vs = [x for x in recs if x["event"] == "verdict"]
        assert len(vs) == parts, f"{v} round {r}: {len(vs)} verdicts of {parts}"
        lat.setdefault(v, []).extend(x["latency_ms"] for x in vs)
    c = json.load(open(f"{work}/counters-{v}-{rounds}.json"))
    print(f"{v:9s} latency median {statistics.median(lat[v]):6.2f} ms  p95 "
          f"{statistics.quantiles(lat[v], n=20)[18]:6.2f} ms  parts/s {parts / statistics.median(times[v]):6.1f}"
          f"  (service run incl. start, median of {rounds}; mqtt dropped {c.get('mqtt_dropped', 0)})")
median = statistics.median(lat["attached"]) / statistics.median(lat["plain"])
p95 = statistics.quantiles(lat["attached"], n=20)[18] / statistics.quantiles(lat["plain"], n=20)[18]
print(f"attached / plain: latency median {median:.3f}, p95 {p95:.3f}")
PY
