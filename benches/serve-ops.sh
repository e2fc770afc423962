#!/usr/bin/env bash
# What an operator feels besides throughput (issue 23), per system: etcdkit
# as `etcd`, real etcd 3.4.23 and real etcd 3.5.1, each one member on
# loopback, the same clients (benches/go/load and Debian's etcdctl 3.4):
#
#   big db (DB_MB, default 1024, of 4,000-byte values):
#     snapshot  `etcdctl snapshot save` of the whole db over the network
#     defrag    a writer putting every 2 ms while the member defragments:
#               its p99 and longest put before and during (etcd#9222)
#     catch-up  `member add`, then a second member started empty: seconds
#               until it reports the leader's revision (the db reaches it
#               as a raft snapshot), and the leader's peak RSS meanwhile
#   many keys (KEYS, default 1,000,000, of 256-byte values):
#     rss       the member's RSS after the load, and after a restart
#     restart   SIGTERM, start again: time until a linearizable get answers
#
#   env: SYSTEMS="…" (a subset of etcdkit etcd-3.4 etcd-3.5), DB_MB, KEYS,
#        PARTS="big keys" (either or both)
# Writes target/serve-ops/results.jsonl and target/anchors-serve-ops.md.
# Ports 24000-24003. Servers are stopped by pid on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
work="$root/target/serve-ops"
rm -rf "$work" && mkdir -p "$work/bin"
db_mb=${DB_MB:-1024}
keys=${KEYS:-1000000}
parts=" ${PARTS:-big keys} "

source benches/serve-lib.sh
ep=127.0.0.1:24000
pid=""
joiner=""
# stop_pid PID: SIGTERM, up to 60 s, then SIGKILL.
stop_pid() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq 600); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}
stop() {
  [ -z "$joiner" ] || stop_pid "$joiner"
  [ -z "$pid" ] || stop_pid "$pid"
  pid="" joiner=""
}
trap stop EXIT

ctl() { ETCDCTL_API=3 etcdctl --endpoints "$ep" --command-timeout=60s "$@"; }

# launch SYSTEM DIR: one member on $ep with its data in DIR (kept if there).
launch() {
  "${server[$1]}" --name m0 --data-dir "$2" --quota-backend-bytes 8589934592 \
    --listen-client-urls "http://$ep" --advertise-client-urls "http://$ep" \
    --listen-peer-urls http://127.0.0.1:24001 --initial-advertise-peer-urls http://127.0.0.1:24001 \
    --initial-cluster m0=http://127.0.0.1:24001 --initial-cluster-state new >>"$work/$1.log" 2>&1 &
  pid=$!
}

# serving: seconds from now until a linearizable get answers (the load
# tool's serving mode, bounded at 600 s).
serving() {
  "$work/load" -endpoints "$ep" -mode serving -serving-within 600s 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["secs"])' || {
    echo "the member did not serve; log in $work" >&2
    exit 1
  }
}

secs_since() { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.3f", t1 - t0 }'; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$pid/status"; }
revision() {
  ETCDCTL_API=3 etcdctl --endpoints "$1" --command-timeout=1s endpoint status -w json 2>/dev/null |
    sed -n 's/.*"revision":\([0-9]*\).*/\1/p'
}

# catch_up SYSTEM DATA: adds a member, starts it empty on 24002/24003 and
# prints the seconds until it reports the leader's revision (bounded at
# 600 s; no writes meanwhile), with the leader's peak RSS before and after.
catch_up() {
  local rev hwm0 t0 secs=""
  rev=$(revision "$ep")
  hwm0=$(hwm_kib)
  ctl member add m1 --peer-urls http://127.0.0.1:24003 >/dev/null
  t0=$(date +%s.%N)
  "${server[$1]}" --name m1 --data-dir "$2-m1" --quota-backend-bytes 8589934592 \
    --listen-client-urls http://127.0.0.1:24002 --advertise-client-urls http://127.0.0.1:24002 \
    --listen-peer-urls http://127.0.0.1:24003 --initial-advertise-peer-urls http://127.0.0.1:24003 \
    --initial-cluster m0=http://127.0.0.1:24001,m1=http://127.0.0.1:24003 \
    --initial-cluster-state existing >>"$work/$1-m1.log" 2>&1 &
  joiner=$!
  for _ in $(seq 6000); do
    if [ "$(revision 127.0.0.1:24002)" = "$rev" ]; then
      secs=$(secs_since "$t0")
      break
    fi
    sleep 0.1
  done
  [ -n "$secs" ] || { echo "m1 of $1 did not catch up in 600 s; log in $work" >&2; exit 1; }
  echo "{\"secs\":$secs,\"revision\":$rev,\"leader_hwm_kib_before\":$hwm0,\"leader_hwm_kib_after\":$(hwm_kib)}"
}
db_size() { ctl endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["dbSize"])'; }
load() { "$work/load" -endpoints "$ep" "$@"; }

out="$work/results.jsonl"
for sys in "${systems[@]}"; do
  if [[ "$parts" == *" big "* ]]; then
    echo "== $sys: ${db_mb} MiB db" >&2
    data="$work/data-$sys-big"
    launch "$sys" "$data"
    serving >/dev/null
    n=$((db_mb * 1024 * 1024 / 4096))
    fill=$(load -mode put -total "$n" -conns 16 -clients 16 -val-size 4000 -key-space-size "$n" -sequential-keys)
    size=$(db_size)
    t0=$(date +%s.%N)
    ctl --command-timeout=600s snapshot save "$work/snap.db" >"$work/snapshot-$sys.log" 2>&1 || {
      echo "snapshot save failed on $sys:" >&2
      tail -5 "$work/snapshot-$sys.log" >&2
      exit 1
    }
    snap=$(secs_since "$t0")
    snap_bytes=$(stat -c %s "$work/snap.db")
    rm -f "$work/snap.db"
    defrag=$(load -mode defrag -val-size 256 -key-space-size 100000)
    # Not in $(…): the joiner's pid must reach `stop` in this shell.
    catch_up "$sys" "$data" >"$work/catch-up.json"
    catchup=$(cat "$work/catch-up.json")
    echo "{\"system\":\"$sys\",\"part\":\"big\",\"db_size\":$size,\"fill\":$fill,\"snapshot_secs\":$snap,\"snapshot_bytes\":$snap_bytes,\"defrag\":$defrag,\"catch_up\":$catchup}" >>"$out"
    echo "   db $size B; snapshot save ${snap}s; defrag $defrag; catch-up $catchup" >&2
    stop
    rm -rf "$data" "$data-m1"
  fi
  if [[ "$parts" == *" keys "* ]]; then
    echo "== $sys: $keys keys" >&2
    data="$work/data-$sys-keys"
    launch "$sys" "$data"
    serving >/dev/null
    fill=$(load -mode put -total "$keys" -conns 16 -clients 16 -val-size 256 -key-space-size "$keys" -sequential-keys)
    ctl put probe ok >/dev/null
    sleep 2
    rss_loaded=$(rss_kib)
    size=$(db_size)
    stop
    launch "$sys" "$data"
    restart=$(serving)
    sleep 2
    rss_restarted=$(rss_kib)
    echo "{\"system\":\"$sys\",\"part\":\"keys\",\"keys\":$keys,\"db_size\":$size,\"fill\":$fill,\"rss_kib_loaded\":$rss_loaded,\"restart_secs\":$restart,\"rss_kib_restarted\":$rss_restarted}" >>"$out"
    echo "   db $size B; RSS ${rss_loaded} KiB loaded, ${rss_restarted} KiB restarted; restart ${restart}s" >&2
    stop
    rm -rf "$data"
  fi
done
python3 benches/serve-ops-summary.py "$out" target/anchors-serve-ops.md
cat target/anchors-serve-ops.md
