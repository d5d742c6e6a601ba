#!/usr/bin/env bash
# Measures what relay links cost: one publisher (audio + video) → SUBS subscribers in one channel, on one edge and
# spread over three edges of one region (--max-sessions caps each edge), and across two regions. For each layout it
# runs `stoa dev` (all edges in one process) and `stoa loadtest --server-pid` against it, and prints the stoa dev
# process's CPU (% of one core, median per second) and memory, the delivery and the latency percentiles.
#
#   bash scripts/relay-bench.sh [SUBS] [DURATION]      e.g. bash scripts/relay-bench.sh 50 20s
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib-bench.sh
source scripts/lib-bench.sh
subs=${1:-50}
duration=${2:-20s}
bench_init

run() { # name, stoa dev flags..., -- loadtest flags...
  local name=$1; shift
  local dev=()
  while [[ $# -gt 0 && $1 != -- ]]; do dev+=("$1"); shift; done
  [[ $# -gt 0 ]] && shift
  dev_start "$name" "${dev[@]}"
  loadtest "$name" --subscribers "$subs" --duration "$duration" "$@"
  dev_stop
  bench_row "$name" "$name"
}

echo "1 publisher (audio+video) → $subs subscribers, $duration measured; CPU of the stoa dev process"
bench_header
run one-edge --regions eu:1 --
# A dispatcher offers an edge up to 90 % of its capacity: size the edges so that three hold everyone, two do not.
run three-edges --regions eu:3 --max-sessions $(( (subs + 1) * 10 / 27 + 2 )) --
run two-regions --regions eu:1,us:1 -- --regions eu,us
