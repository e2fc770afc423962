#!/usr/bin/env bash
# e2e-etcdctl.sh: etcd 3.4.23's e2e tests of etcdctl (scripts/e2e-etcdctl.list)
# with the real etcd 3.4.23 as `etcd`, first with the real etcdctl 3.4.23, then
# with etcdkit as `etcdctl`; prints both counts. With ETCD=BIN another server
# (e.g. etcdkit itself, for etcdkit as both).
#
# usage: e2e-etcdctl.sh [ETCDKIT_BIN]   (default target/debug/etcdkit)
# env:   ETCD=BIN (default: the etcd on PATH), E2E_CACHE, E2E_TEST_TIMEOUT
#        as scripts/e2e.sh takes them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
kit="${1:-target/debug/etcdkit}"
etcd="${ETCD:-$(command -v etcd)}"
ctl="$(command -v etcdctl)"
export E2E_CACHE="${E2E_CACHE:-$PWD/target/e2e-cache}"
real_out="$(mktemp)"; kit_out="$(mktemp)"
trap 'rm -f "$real_out" "$kit_out"' EXIT
scripts/e2e.sh "$etcd" "$ctl" @scripts/e2e-etcdctl.list > "$real_out" 2>&1 || true
scripts/e2e.sh "$etcd" "$kit" @scripts/e2e-etcdctl.list > "$kit_out" 2>&1 || true
grep -E '^FAIL' "$real_out" | sed 's/^/etcdctl 3.4.23: /' || true
grep -E '^FAIL' "$kit_out" | sed 's/^/etcdkit:        /' || true
echo "etcdctl 3.4.23: $(tail -1 "$real_out")"
echo "etcdkit:        $(tail -1 "$kit_out")"
tail -1 "$kit_out" | grep -q ' 0 failed'
