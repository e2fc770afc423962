#!/usr/bin/env bash
# Index memory per key: etcd 3.4's treeIndex (go.etcd.io/etcd/mvcc from Debian's
# golang-etcd-server-dev, via benches/go/indexmem/index_mem_test.go in a scratch
# copy of the package) against etcdkit's index (benches/src/bin/index-mem.rs),
# on the same keys and revisions. etcd's figure is its live Go heap after a GC
# (HeapAlloc); etcdkit's is the growth of its resident memory, allocator
# overhead included. Prints bytes per key and the ratio (etcdkit ÷ etcd; the
# target is ≤ 0.5); JSON in target/anchors-index-mem.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p target
gopath=$(mktemp -d)
trap 'rm -rf "$gopath"' EXIT
mkdir -p "$gopath/src/go.etcd.io/etcd"
cp -r /usr/share/gocode/src/go.etcd.io/etcd/mvcc "$gopath/src/go.etcd.io/etcd/"
cp benches/go/indexmem/index_mem_test.go "$gopath/src/go.etcd.io/etcd/mvcc/"
go_out="$(GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOFLAGS= GOCACHE="${GOCACHE:-/tmp/mvcc-anchor-gocache}" \
  go test -count=1 -run EtcdkitIndexMemory -v go.etcd.io/etcd/mvcc 2>&1)"
cargo build -q --release -p etcdkit-benches --bin index-mem
rs_out=""
for c in "1000000 64 1" "200000 64 10" "1000000 16 1"; do
  # shellcheck disable=SC2086
  rs_out+="$(target/release/index-mem $c)"$'\n'
done
python3 - "$go_out" "$rs_out" <<'PY'
import json, re, sys
pat = r"INDEXMEM keys=(\d+) key_len=(\d+) revs=(\d+) (\w+)=([\d.]+)"
go = {m[:3]: float(m[4]) for m in re.findall(pat, sys.argv[1])}
rs = {m[:3]: float(m[4]) for m in re.findall(pat, sys.argv[2])}
rows = []
print(f"{'keys':>8} {'key_len':>7} {'revs':>4} {'etcdkit B/key':>14} {'etcd B/key':>11} {'ratio':>6}")
for k, g in go.items():
    if k in rs:
        r = rs[k] / g
        rows.append({"keys": int(k[0]), "key_len": int(k[1]), "revs": int(k[2]),
                     "etcdkit_bytes_per_key": rs[k], "etcd_bytes_per_key": g, "ratio": round(r, 3)})
        print(f"{k[0]:>8} {k[1]:>7} {k[2]:>4} {rs[k]:>14.1f} {g:>11.1f} {r:>6.2f}")
if len(rows) != 3:
    sys.exit("index-mem: missing cases:\n" + sys.argv[1][-2000:] + sys.argv[2])
json.dump(rows, open("target/anchors-index-mem.json", "w"), indent=1)
PY
