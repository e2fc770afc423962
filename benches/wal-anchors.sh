#!/usr/bin/env bash
# WAL anchors: etcd 3.4's own Go benchmarks (`go test -bench Write go.etcd.io/etcd/wal`,
# Debian's golang-etcd-server-dev, GOPATH mode) and etcdkit's criterion bench with
# the same parameters, in the same run. Prints ns/op per case and the ratio
# (etcd ns/op ÷ etcdkit ns/op; > 1 = etcdkit faster); JSON in target/anchors-wal.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p target
go_out="$(GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOCACHE="${GOCACHE:-/tmp/wal-anchor-gocache}" \
  go test -run X -bench Write go.etcd.io/etcd/wal 2>&1)"
rs_out="$(cargo bench -q -p etcdkit-benches --bench wal -- --output-format bencher 2>/dev/null)"
python3 - "$go_out" "$rs_out" <<'PY'
import json, re, sys
go = {m[0]: float(m[1]) for m in re.findall(r"Benchmark(\w+?)-\d+\s+\d+\s+([\d.]+) ns/op", sys.argv[1])}
rs = {m[0]: float(m[1].replace(",", "")) for m in re.findall(r"test wal/(\w+)\s+\.\.\. bench:\s+([\d,.]+) ns/iter", sys.argv[2])}
rows = []
print(f"{'case':<32} {'etcdkit ns/op':>14} {'etcd ns/op':>12} {'ratio':>7}")
for case in go:
    if case in rs:
        r = go[case] / rs[case]
        rows.append({"case": case, "etcdkit_ns": rs[case], "etcd_ns": go[case], "ratio": round(r, 2)})
        print(f"{case:<32} {rs[case]:>14.0f} {go[case]:>12.0f} {r:>7.2f}")
json.dump(rows, open("target/anchors-wal.json", "w"), indent=1)
PY
