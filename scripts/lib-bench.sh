# Shared by the benchmark scripts (source it from the repository root): builds stoa once, starts `stoa dev` runs
# and measures them with `stoa loadtest --server-pid`, which samples the stoa dev process's CPU and memory.
#
#   bench_init                     build stoa into $work (a temporary directory removed on exit)
#   dev_start NAME [FLAGS...]      start stoa dev with its data in $work/NAME; sets dev_pid and the STOA_* variables
#   dev_stop                       stop it (SIGINT, then wait)
#   loadtest NAME [FLAGS...]       run stoa loadtest --json --server-pid against it into $work/NAME.json
#   bench_row NAME LABEL           print one table row from $work/NAME.json (bench_header prints the header)
export GOTOOLCHAIN=go1.27.3

bench_init() {
  work=$(mktemp -d)
  trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
  go build -o "$work/stoa" ./cmd/stoa
}

dev_start() {
  local name=$1; shift
  local data="$work/$name"
  rm -rf "$data" # a dev.env left by an earlier run of the same name would pass for this one
  "$work/stoa" dev --listen 127.0.0.1:0 --data "$data" --log-level warn "$@" >"$work/$name.log" 2>&1 &
  dev_pid=$!
  for _ in $(seq 600); do [[ -s $data/dev.env ]] && break; sleep 0.1; done
  [[ -s $data/dev.env ]] || { echo "$name: stoa dev did not start" >&2; cat "$work/$name.log" >&2; exit 1; }
  # shellcheck disable=SC1091
  source "$data/dev.env"
}

dev_stop() {
  kill -INT "$dev_pid"
  wait "$dev_pid" || true
}

loadtest() {
  local name=$1; shift
  "$work/stoa" loadtest --url "$STOA_URL" --app-id "$STOA_APP_ID" --app-cert-file <(printf %s "$STOA_APP_CERT") \
    --server-pid "$dev_pid" --json "$@" >"$work/$name.json" 2>"$work/$name.err" ||
    { echo "$name: stoa loadtest failed" >&2; cat "$work/$name.err" >&2; exit 1; }
}

bench_header() {
  printf '%-14s %6s %11s %10s %12s %8s %8s %8s\n' load edges delivery% "server CPU%" "CPU s/1k fr" "RSS MB" "p50 ms" "p99 ms"
}

bench_row() {
  python3 - "$work/$1.json" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
lat = r.get("latency_ms", {})
print(f"{sys.argv[2]:<14} {r.get('edges', 0):>6} {100 * r['delivery']:>11.3f} {r.get('server_cpu_percent', 0):>10.1f}"
      f" {r.get('server_cpu_s_per_1k_frames', 0):>12.4f} {r.get('server_rss_mb', 0):>8.0f} {lat.get('p50', 0):>8.2f}"
      f" {lat.get('p99', 0):>8.2f}")
PY
}
