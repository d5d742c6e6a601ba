#!/usr/bin/env bash
# The edge's efficiency sweep (issue 13): one publisher (audio 50 fps × 120 B and VP8-like video 30 fps × 1.8 kB with
# a 9 kB key frame every 2 s, stoa loadtest's default workload) → N subscribers for N = 10, 25, 50, 100, 200, then
# 100 channels × 4 participants (1 publisher and 3 subscribers each). Each case runs on a fresh `stoa dev`; the table
# shows the delivery, the stoa dev process's CPU (median of per-second samples, % of one core), its CPU seconds per
# 1000 frames delivered, its peak RSS, and the end-to-end latency. The load test's clients run on the same machine.
#
#   bash scripts/bench.sh [DURATION] [N...]        e.g. bash scripts/bench.sh 25s 50      (default: 25s, the sweep)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib-bench.sh
source scripts/lib-bench.sh
duration=${1:-25s}
shift || true
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(10 25 50 100 200 100x4)
bench_init

echo "stoa $(git describe --always --dirty 2>/dev/null || echo '?'), $(nproc) cores, $duration measured per case"
bench_header
for n in "${sizes[@]}"; do
  dev_start "n$n"
  if [[ $n == *x* ]]; then
    loadtest "n$n" --channels "${n%x*}" --publishers 1 --subscribers $(( ${n#*x} - 1 )) --duration "$duration"
  else
    loadtest "n$n" --subscribers "$n" --duration "$duration"
  fi
  dev_stop
  bench_row "n$n" "$n"
done
