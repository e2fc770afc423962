#!/usr/bin/env bash
# Page-store anchors: the same cases (benches/src/pagestore.rs, tools/boltbench
# cases.go) on real Go bbolt 1.3.6, etcdkit and its Rust peers (bbolt-rs, heed
# = LMDB, redb; built with --features peers), plus the physical floors (a
# 4 KiB write + fdatasync loop, sequential bandwidth: 1 MiB overwrites, each fdatasync'd). Every commit is
# durable; bbolt's defaults (freelist synced) on both bbolt-format engines.
# Each round runs every engine back to back, rotating the order; the table
# shows medians over the rounds and etcdkit ÷ each other engine (> 1 = etcdkit
# faster). JSON in target/anchors-pagestore.json.
#   usage: benches/pagestore-anchors.sh [ROUNDS]      (default 3)
#   env:   WORK (scratch directory on disk, default /var/tmp), ENGINES
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds="${1:-3}"
engines=(${ENGINES:-bbolt-go etcdkit bbolt-rs heed redb})
cargo build --release -q -p etcdkit-benches --features peers --bin pagestore-bench
mkdir -p target
tmp="$(mktemp -d "${WORK:-/var/tmp}/pagestore-anchors.XXXXXX")"; trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src/boltbench"; cp tools/boltbench/*.go "$tmp/src/boltbench/"
( cd "$tmp/src/boltbench" && GO111MODULE=off GOPATH="$tmp:/usr/share/gocode" GOPROXY=off GOFLAGS= \
    GOCACHE="${GOCACHE:-/tmp/boltbench-gocache}" go build -o "$tmp/boltbench" . )
run() { # engine case count batch mode -> one JSON line
  if [ "$1" = bbolt-go ]; then
    "$tmp/boltbench" -case "$2" -count "$3" -batch-size "$4" -write-mode "$5" -writers 16 -dir "$tmp"
  else
    BENCH_DIR="$tmp" target/release/pagestore-bench "$1" "$2" "$3" "$4" "$5" 16
  fi
}
cases=(
  "put 1000 1 seq" "put 1000 1 rnd" "put 20000 100 seq" "put 20000 100 rnd"
  "put 100000 1000 seq" "put 100000 1000 rnd" "put 200000 10000 seq" "put 200000 10000 rnd"
  "get 200000 1 rnd" "scan 200000 1 seq" "range 200000 1 seq"
  "commit 1000 1 rnd" "group 4000 1 rnd"
)
out="$tmp/results.jsonl"
n=${#engines[@]}
for r in $(seq "$rounds"); do
  for c in "${cases[@]}"; do
    for i in $(seq 0 $((n - 1))); do
      e=${engines[$(( (i + r) % n ))]}
      # shellcheck disable=SC2086
      echo "{\"round\":$r,\"r\":$(run "$e" $c)}" >> "$out"
    done
  done
  echo "{\"round\":$r,\"r\":$(BENCH_DIR="$tmp" target/release/pagestore-bench floor fsync 1000)}" >> "$out"
  echo "{\"round\":$r,\"r\":$(BENCH_DIR="$tmp" target/release/pagestore-bench floor bandwidth 256)}" >> "$out"
  echo "  page store: round $r of $rounds done" >&2
done
python3 - "$out" "$rounds" "${engines[@]}" <<'PY'
import json, statistics, sys, os
rows = [json.loads(l)["r"] for l in open(sys.argv[1])]
engines = sys.argv[3:]
med = lambda xs: statistics.median(xs) if xs else None
def name(r):
    c = r["case"]
    if c == "put":
        return f"put {r['mode']} batch={r['batch_size']}"
    return {"get": "random get", "scan": "full scan", "range": "prefix range",
            "commit": "durable single commit", "group": "group commit, 16 writers"}[c]
table, order = {}, []
for r in rows:
    if r["engine"] == "floor":
        continue
    k = name(r)
    if k not in table:
        order.append(k); table[k] = {}
    table[k].setdefault(r["engine"], []).append(r)
fs = [r for r in rows if r["engine"] == "floor" and r["case"] == "fsync"]
bw = [r for r in rows if r["engine"] == "floor" and r["case"] == "bandwidth"]
floor = {"fsync_ops_per_sec": med([r["ops_per_sec"] for r in fs]), "fsync_p50_us": med([r["p50_us"] for r in fs]),
         "fsync_p99_us": med([r["p99_us"] for r in fs]), "bandwidth_bytes_per_sec": med([r["bytes_per_sec"] for r in bw])}
out = []
others = [e for e in engines if e != "etcdkit"]
print(f"{'case':<28} " + " ".join(f"{e:>12}" for e in engines) + "  " + " ".join(f"{'÷' + e:>10}" for e in others))
for k in order:
    v = {e: med([r["ops_per_sec"] for r in table[k].get(e, [])]) for e in engines}
    row = {"case": k, "ops_per_sec": {e: round(x, 1) for e, x in v.items() if x},
           "etcdkit_over": {e: round(v["etcdkit"] / v[e], 2) for e in others if v.get(e) and v.get("etcdkit")}}
    if k.startswith("durable") or k.startswith("group"):
        row["p50_us"] = {e: med([r["p50_us"] for r in table[k].get(e, [])]) for e in engines}
        row["p99_us"] = {e: med([r["p99_us"] for r in table[k].get(e, [])]) for e in engines}
    out.append(row)
    print(f"{k:<28} " + " ".join(f"{(v[e] or 0):>12.0f}" for e in engines) + "  " +
          " ".join(f"{row['etcdkit_over'].get(e, 0):>10.2f}" for e in others))
for k in ("durable single commit", "group commit, 16 writers"):
    r = next(x for x in out if x["case"] == k)
    print(f"{k} p50/p99 us: " + ", ".join(f"{e} {r['p50_us'][e]:.0f}/{r['p99_us'][e]:.0f}" for e in engines if r['p50_us'].get(e)))
print(f"floors: write 4 KiB + fdatasync {floor['fsync_ops_per_sec']:.0f}/s (p50 {floor['fsync_p50_us']:.0f} us, p99 {floor['fsync_p99_us']:.0f} us); "
      f"sequential 1 MiB write + fdatasync {floor['bandwidth_bytes_per_sec'] / 1e6:.0f} MB/s")
json.dump({"cases": out, "floors": floor, "rounds": int(sys.argv[2]), "cores": os.cpu_count()},
          open("target/anchors-pagestore.json", "w"), indent=1)
PY
