#!/usr/bin/env bash
# Page-store anchors: the same workloads on etcdkit (`etcdkit bolt bench`) and on
# real Go bbolt 1.3.6 (tools/boltbench), in the same run. Each round runs both
# engines back to back (alternating which goes first); the table shows the
# median over the rounds and the ratio of medians (etcdkit / bbolt; > 1 = faster).
# Writes the table as JSON to target/anchors-pagestore.json.
#   usage: benches/anchors.sh [ROUNDS]      (default 5)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds="${1:-5}"
cargo build --release -q -p etcdkit-cli
tmp="$(mktemp -d /tmp/anchors.XXXXXX)"; trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src/boltbench"; cp tools/boltbench/main.go "$tmp/src/boltbench/"
( cd "$tmp/src/boltbench" && GO111MODULE=off GOPATH="$tmp:/usr/share/gocode" GOPROXY=off GOFLAGS= \
    GOCACHE="${GOCACHE:-/tmp/boltbench-gocache}" go build -o "$tmp/boltbench" . )
run() { # engine args...  -> one JSON line
  if [ "$1" = go ]; then "$tmp/boltbench" "${@:2}" --dir "$tmp"; else target/release/etcdkit bolt bench "${@:2}" --dir "$tmp" -w json; fi
}
out="$tmp/results.jsonl"
for sync in --no-sync ""; do
  for mode in seq rnd; do
    args=(--count 100000 --batch-size 1000 --write-mode "$mode" --read-mode "$mode" $sync)
    for r in $(seq "$rounds"); do
      if [ $((r % 2)) = 1 ]; then order="go ours"; else order="ours go"; fi
      for e in $order; do
        echo "{\"engine\":\"$e\",\"sync\":\"${sync:-fsync}\",\"mode\":\"$mode\",\"r\":$(run "$e" "${args[@]}")}" >> "$out"
      done
    done
  done
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys, os
rows = [json.loads(l) for l in open(sys.argv[1])]
cases, table = [], []
for sync in ("--no-sync", "fsync"):
    for mode in ("seq", "rnd"):
        for kind in ("write", "read"):
            name = (f"put {mode} batch=1000" if kind == "write" else ("full scan" if mode == "seq" else "random get")) + f" ({sync})"
            med = {e: statistics.median(x["r"][f"{kind}_ops_per_sec"] for x in rows
                                        if x["engine"] == e and x["sync"] == sync and x["mode"] == mode)
                   for e in ("ours", "go")}
            table.append({"case": name, "etcdkit": round(med["ours"]), "bbolt_go": round(med["go"]),
                          "ratio": round(med["ours"] / med["go"], 2)})
print(f"{'case':<40} {'etcdkit ops/s':>14} {'bbolt ops/s':>14} {'ratio':>7}")
for t in table:
    print(f"{t['case']:<40} {t['etcdkit']:>14} {t['bbolt_go']:>14} {t['ratio']:>7}")
json.dump(table, open("target/anchors-pagestore.json", "w"), indent=1)
print(f"(medians of {sys.argv[2]} rounds; {os.cpu_count()} cores; written to target/anchors-pagestore.json)")
PY
