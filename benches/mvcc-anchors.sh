#!/usr/bin/env bash
# MVCC anchors: etcd 3.4's own Go benchmarks (`go test -bench` on go.etcd.io/etcd/mvcc,
# Debian's golang-etcd-server-dev, GOPATH mode) and etcdkit's criterion bench with
# the same parameters, in the same run. Prints ns/op per case and the ratio
# (etcd ns/op ÷ etcdkit ns/op; > 1 = etcdkit faster); JSON in target/anchors-mvcc.json.
# StoreRestoreRevs*: Go's ns/op is per restored key; etcdkit's bench restores
# 100,000 keys per iteration, so its time is divided by 100,000.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p target
go_out="$(GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOCACHE="${GOCACHE:-/tmp/mvcc-anchor-gocache}" \
  go test -run X -bench 'Store(Put|PutUpdate|TxnPut|RangeKey1|RangeKey100|RestoreRevs1|RestoreRevs10|RestoreRevs20)$|IndexCompact(1|100|10000|100000)$|WatchableStorePut$' \
  go.etcd.io/etcd/mvcc 2>&1)"
rs_out="$(cargo bench -q -p etcdkit-benches --bench mvcc -- --output-format bencher 2>/dev/null)"
python3 - "$go_out" "$rs_out" <<'PY'
import json, re, sys
go = {m[0]: float(m[1]) for m in re.findall(r"Benchmark(\w+?)-\d+\s+\d+\s+([\d.]+) ns/op", sys.argv[1])}
rs = {m[0]: float(m[1].replace(",", "")) for m in re.findall(r"test mvcc/(\w+)\s+\.\.\. bench:\s+([\d,.]+) ns/iter", sys.argv[2])}
for k in list(rs):
    if k.startswith("StoreRestoreRevs"):
        rs[k] /= 100_000
# etcd's watchable store with no watchers does a plain put.
if "StorePut" in rs:
    rs["WatchableStorePut"] = rs["StorePut"]
rows = []
print(f"{'case':<24} {'etcdkit ns/op':>14} {'etcd ns/op':>12} {'ratio':>7}")
for case in go:
    if case in rs:
        r = go[case] / rs[case]
        rows.append({"case": case, "etcdkit_ns": round(rs[case], 1), "etcd_ns": go[case], "ratio": round(r, 2)})
        print(f"{case:<24} {rs[case]:>14.1f} {go[case]:>12.1f} {r:>7.2f}")
json.dump(rows, open("target/anchors-mvcc.json", "w"), indent=1)
PY
