#!/usr/bin/env bash
# Runs every check of the project: vet, formatting, known vulnerabilities (scripts/vulncheck.sh), the whole test
# suite under the race detector, and each fuzz target briefly. Prerequisites (Go modules, Debian packages, the
# PostgreSQL and NATS servers of STOA_TEST_PG and STOA_TEST_NATS) are made ready by .ci/run.
#   FUZZTIME=30s bash scripts/test.sh     fuzz longer
#   SKIP_FUZZ=1 bash scripts/test.sh      skip the fuzzing
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 # the toolchain go.mod names (go1.26.8's standard library has known vulnerabilities)
fuzztime=${FUZZTIME:-5s}

step() { printf '\n== %s\n' "$*"; }

step "go vet"
go vet ./...

step "gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "govulncheck (offline database)"
bash scripts/vulncheck.sh

step "go test -race"
go test -race -count=1 -timeout 20m ./...

if [ -z "${SKIP_FUZZ:-}" ]; then
  step "fuzz targets, $fuzztime each"
  for dir in $(go list -f '{{.Dir}}' ./...); do
    for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
      echo "-- $target ($dir)"
      if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 100x "$dir" >/tmp/stoa-fuzz.log 2>&1; then
        # On a loaded machine the fuzzing engine itself sometimes misses its own deadline ("context deadline
        # exceeded") without any failing input; run such a target once more. A real finding writes its input
        # under testdata/fuzz and fails again.
        if grep -q "context deadline exceeded" /tmp/stoa-fuzz.log && ! grep -q "Failing input written" /tmp/stoa-fuzz.log; then
          echo "   (fuzzing engine timed out without a finding; once more)"
          go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 100x "$dir" >/tmp/stoa-fuzz.log 2>&1 || { cat /tmp/stoa-fuzz.log; exit 1; }
        else
          cat /tmp/stoa-fuzz.log; exit 1
        fi
      fi
    done
  done
fi
step "all checks passed"
