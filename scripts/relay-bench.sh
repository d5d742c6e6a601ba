#!/usr/bin/env bash
# Measures what relay links cost: one publisher (audio + video) → SUBS subscribers in one channel, on one edge and
# spread over three edges of one region (--max-sessions caps each edge), and across two regions. For each layout it
# runs `stoa dev` (all edges in one process) and `stoa loadtest` against it, and prints the stoa dev process's CPU
# (user+system, % of one core) over the load test, the delivery and the latency percentiles.
#
#   bash scripts/relay-bench.sh [SUBS] [DURATION]      e.g. bash scripts/relay-bench.sh 50 20s
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3
subs=${1:-50}
duration=${2:-20s}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/stoa" ./cmd/stoa
tick=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # name, stoa dev flags..., -- loadtest flags...
  local name=$1; shift
  local dev=() lt=()
  while [[ $# -gt 0 && $1 != -- ]]; do dev+=("$1"); shift; done
  [[ $# -gt 0 ]] && shift
  lt=("$@")
  local data="$work/$name"
  "$work/stoa" dev --listen 127.0.0.1:0 --data "$data" "${dev[@]}" >"$work/$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do [[ -s $data/dev.json ]] && break; sleep 0.1; done
  [[ -s $data/dev.json ]] || { echo "$name: stoa dev did not start"; cat "$work/$name.log"; exit 1; }
  # shellcheck disable=SC1091
  source "$data/dev.env"
  local start t0 t1 w0 w1
  t0=$(cpu_ticks $pid); w0=$(date +%s.%N)
  "$work/stoa" loadtest --url "$STOA_URL" --app-id "$STOA_APP_ID" --app-cert-file <(printf %s "$STOA_APP_CERT") \
    --subscribers "$subs" --audio --video --duration "$duration" --json "${lt[@]}" >"$work/$name.json" 2>"$work/$name.err" ||
    { echo "$name: loadtest failed:"; tail -5 "$work/$name.err"; kill -INT $pid; wait $pid || true; return 0; }
  t1=$(cpu_ticks $pid); w1=$(date +%s.%N)
  kill -INT $pid; wait $pid || true
  python3 - "$name" "$work/$name.json" "$t0" "$t1" "$w0" "$w1" "$tick" <<'PY'
import json, sys
name, path, t0, t1, w0, w1, tick = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
r = json.load(open(path))
cpu = (t1 - t0) / tick / (w1 - w0) * 100
exp, got = r["frames_expected"], r["frames_received"]
lat = r.get("latency_ms", {})
print(f"{name:<22} edges={r.get('edges')} cpu={cpu:5.1f}% of a core  delivered={got}/{exp} ({100*got/max(exp,1):.2f}%)"
      f"  latency p50={lat.get('p50')} p99={lat.get('p99')} ms")
PY
}

echo "1 publisher (audio+video) → $subs subscribers, $duration measured; CPU of the stoa dev process"
run one-edge --regions eu:1 --
# A dispatcher offers an edge up to 90 % of its capacity: size the edges so that three hold everyone, two do not.
run three-edges --regions eu:3 --max-sessions $(( (subs + 1) * 10 / 27 + 2 )) --
run two-regions --regions eu:1,us:1 -- --regions eu,us
