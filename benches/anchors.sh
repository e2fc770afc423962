#!/usr/bin/env bash
# Page-store anchors: the same workloads on etcdkit (`etcdkit bolt bench`) and on
# real Go bbolt 1.3.6 (tools/boltbench), in the same run, alternating engines,
# best of N runs each; prints one table with ratios (etcdkit / bbolt; > 1 = faster)
# and writes it as JSON to target/anchors-pagestore.json.
#   usage: benches/anchors.sh [RUNS]      (default 3)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${1:-3}"
cargo build --release -q -p etcdkit-cli
tmp="$(mktemp -d /tmp/anchors.XXXXXX)"; trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src/boltbench"; cp tools/boltbench/main.go "$tmp/src/boltbench/"
( cd "$tmp/src/boltbench" && GO111MODULE=off GOPATH="$tmp:/usr/share/gocode" GOPROXY=off GOFLAGS= \
    GOCACHE="${GOCACHE:-/tmp/boltbench-gocache}" go build -o "$tmp/boltbench" . )
ours=target/release/etcdkit
best() { # engine args... -> best write and read ops/sec over $runs runs
  local w=0 r=0
  for _ in $(seq "$runs"); do
    local j
    if [ "$1" = go ]; then j="$("$tmp/boltbench" "${@:2}" --dir "$tmp")"; else j="$("$ours" bolt bench "${@:2}" --dir "$tmp" -w json)"; fi
    w="$(python3 -c "import json,sys;print(max($w,json.loads(sys.argv[1])['write_ops_per_sec']))" "$j")"
    r="$(python3 -c "import json,sys;print(max($r,json.loads(sys.argv[1])['read_ops_per_sec']))" "$j")"
  done
  echo "$w $r"
}
printf '%-44s %14s %14s %7s\n' "case" "etcdkit ops/s" "bbolt ops/s" "ratio"
json="["
for sync in --no-sync ""; do
  for mode in seq rnd; do
    args=(--count 100000 --batch-size 1000 --write-mode "$mode" --read-mode "$mode" $sync)
    read -r gw gr <<<"$(best go "${args[@]}")"
    read -r ow or <<<"$(best ours "${args[@]}")"
    label="${sync:-fsync}"
    for kind in write read; do
      if [ $kind = write ]; then o=$ow; g=$gw; name="put $mode batch=1000 ($label)"; else o=$or; g=$gr; name="$( [ $mode = seq ] && echo 'full scan' || echo 'random get' ) ($label)"; fi
      ratio="$(python3 -c "print(f'{$o/$g:.2f}')")"
      printf '%-44s %14.0f %14.0f %7s\n' "$name" "$o" "$g" "$ratio"
      json+="{\"case\":\"$name\",\"etcdkit\":$o,\"bbolt_go\":$g,\"ratio\":$ratio},"
    done
  done
done
echo "${json%,}]" > target/anchors-pagestore.json
echo "(written to target/anchors-pagestore.json; $(nproc) cores, best of $runs runs)"
