#!/usr/bin/env bash
# Builds tools/boltref (the project's reference bbolt tool) against Debian's real
# bbolt 1.3.6 source, offline, in GOPATH mode.
#   usage: scripts/build-boltref.sh [OUT]     (default: target/boltref)
# Needs golang-go and golang-github-coreos-bbolt-dev (scripts/test.sh installs them).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/target/boltref}"
src=/usr/share/gocode/src/go.etcd.io/bbolt
[ -f "$src/db.go" ] || { echo "build-boltref: $src missing (apt-get install golang-github-coreos-bbolt-dev)" >&2; exit 1; }
gopath="$(mktemp -d /tmp/boltref-gopath.XXXXXX)"
trap 'rm -rf "$gopath"' EXIT
mkdir -p "$gopath/src/boltref" "$(dirname "$out")"
cp "$root/tools/boltref/main.go" "$gopath/src/boltref/"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
( cd "$gopath/src/boltref" &&
  env GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOPROXY=off GOFLAGS= CGO_ENABLED=0 \
      GOCACHE="${GOCACHE:-/tmp/boltref-gocache}" go build -trimpath -o "$out" . )
echo "built $out"
