#!/usr/bin/env bash
# raft-node anchor: etcd's `benchmark put` workload (8-byte keys, 256-byte
# values, key space 1 as etcd's default) on a single-member etcdkit node
# (in-process, `node-put`) and on real etcd 3.4 (the `etcd` binary on loopback,
# driven by benches/go/load -mode put with clientv3), in the same run, for 1, 16 and
# 256 concurrent writers. Every put is acknowledged after its WAL fsync and
# apply on both sides. Prints ops/s and p50/p99 per side and the throughput
# ratio (etcdkit ÷ etcd); JSON in target/anchors-node.json.
# Needs etcd (etcd-server), golang-go and golang-etcd-server-dev.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p target/node-anchor
work="$(realpath target/node-anchor)"
cargo build -q --release -p etcdkit-benches --bin node-put
(cd benches/go/load && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= \
  GOCACHE="${GOCACHE:-/tmp/load-gocache}" go build -o "$work/load" .)
port=$((23000 + RANDOM % 500))
results=()
for c in 1 16 256; do
  n=$(( c == 1 ? ${ONE:-6000} : ${MANY:-30000} ))
  rm -rf "$work/node" "$work/etcd"
  ours="$(./target/release/node-put "$work/node" "$n" "$c")"
  etcd --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$port" \
    --advertise-client-urls "http://127.0.0.1:$port" --listen-peer-urls "http://127.0.0.1:$((port + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
    --initial-cluster "default=http://127.0.0.1:$((port + 1))" >"$work/etcd.log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do etcdctl --endpoints "127.0.0.1:$port" endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
  theirs="$("$work/load" -mode put -endpoints "127.0.0.1:$port" -total "$n" -clients "$c" -conns $(( c < 100 ? c : 100 )))"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  results+=("$c|$ours|$theirs")
done
python3 - "${results[@]}" <<'PY'
import json, sys
rows = []
print(f"{'writers':>7} {'etcdkit ops/s':>14} {'p50 us':>7} {'p99 us':>7} {'etcd ops/s':>11} {'p50 us':>7} {'p99 us':>7} {'ratio':>6}")
for arg in sys.argv[1:]:
    c, ours, theirs = arg.split("|")
    a, b = json.loads(ours), json.loads(theirs)
    r = a["ops_per_sec"] / b["ops_per_sec"]
    rows.append({"writers": int(c), "etcdkit": a, "etcd": b, "ratio": round(r, 2)})
    print(f"{c:>7} {a['ops_per_sec']:>14.0f} {a['p50_us']:>7} {a['p99_us']:>7} {b['ops_per_sec']:>11.0f} {b['p50_us']:>7.0f} {b['p99_us']:>7.0f} {r:>6.2f}")
json.dump(rows, open("target/anchors-node.json", "w"), indent=1)
PY
