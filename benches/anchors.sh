#!/usr/bin/env bash
# The whole performance comparison in one run: etcdkit beside the systems its
# users would otherwise pick, on the same workloads, on this machine, now.
#
#   page store  Go bbolt 1.3.6 (tools/boltbench), bbolt-rs, heed (LMDB), redb;
#               floors: 4 KiB write + fdatasync, sequential write bandwidth
#   WAL         etcd 3.4's own `go test -bench Write` (go.etcd.io/etcd/wal)
#   MVCC        etcd 3.4's own `go test -bench` (go.etcd.io/etcd/mvcc); index
#               memory against etcd's treeIndex
#   snapshot    etcdctl 3.4 snapshot status / restore / save, cp, cp + sync
#   raft-node   the real etcd 3.4 binary on loopback (clientv3 load)
#
# Each section is a script of its own (benches/*-anchors.sh, index-mem.sh)
# that writes target/anchors-<section>.json; this one runs them all, then
# prints one table (case, etcdkit, anchor, ratio, target) and writes it to
# target/anchors.json. Needs the README's set-up (cargo, and the Debian
# packages below, which it installs when missing and it is root).
#   usage: benches/anchors.sh            env: QUICK=1 for a smaller, faster run
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$(date +%s)
need=()
command -v go >/dev/null || need+=(golang-go)
[ -d /usr/share/gocode/src/go.etcd.io/bbolt ] || need+=(golang-github-coreos-bbolt-dev)
[ -d /usr/share/gocode/src/go.etcd.io/etcd/mvcc ] || need+=(golang-etcd-server-dev)
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2
fi
echo "building (release, with the Rust peers)" >&2
cargo build --release -q -p etcdkit-cli -p etcdkit-benches --features etcdkit-benches/peers
cargo bench -q -p etcdkit-benches --no-run 2>/dev/null
mkdir -p target
rm -f target/anchors-*.json target/anchors.json
section() { echo "== $1 ($(( $(date +%s) - start )) s so far)" >&2; }
if [ -n "${QUICK:-}" ]; then rounds=1; sizes=(100); else rounds=3; sizes=(100 1000); fi
section "page store";  benches/pagestore-anchors.sh "$rounds"
section "WAL";         benches/wal-anchors.sh
section "MVCC";        benches/mvcc-anchors.sh
section "index memory"; benches/index-mem.sh
section "snapshot";    ROUNDS=$((rounds + 2)) benches/snapshot-anchors.sh "${sizes[@]}"
section "raft-node";   benches/node-anchors.sh
section "summary"
python3 benches/summary.py "$(( $(date +%s) - start ))"
