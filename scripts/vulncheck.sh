#!/usr/bin/env bash
# Fails when a known vulnerability is reachable from Stoa's code, in a dependency or in the standard library of the
# toolchain in use: govulncheck, against an offline database that scripts/vulndb builds from the OSV reports of the
# golang.org/x/vulndb module. Both come from the Go module proxy at pinned versions, so the check needs no other
# network and gives the same answer for the same versions. To take newer reports, set vulndb to the version that
# `go list -m golang.org/x/vulndb@latest` prints.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3 # the toolchain go.mod names (go1.26.8's standard library has known vulnerabilities)
govulncheck=golang.org/x/vuln/cmd/govulncheck@v1.9.0
vulndb=golang.org/x/vulndb@v0.0.0-20261105234957-e22db6528018

src=$(go mod download -json "$vulndb" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ ! -d "$src/data/osv" ]; then
  echo "vulncheck: $vulndb has no data/osv folder (at '$src')" >&2
  exit 1
fi
db=$(mktemp -d)
trap 'rm -rf "$db"' EXIT
go run ./scripts/vulndb -osv "$src/data/osv" -out "$db/db"
# Exit status 3 (through go run: 1) when a vulnerability is reachable; the report names it and its fixed version.
go run "$govulncheck" -db "file://$db/db" ./...
