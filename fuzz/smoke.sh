#!/usr/bin/env bash
# CI's short fuzz run: every target for FUZZ_SECONDS (default 10) seconds on
# the seed corpus from the fixtures. Fails if any target finds a crash, a
# timeout or a leak. Installs cargo-fuzz when missing; outside CI a missing
# cargo-fuzz that cannot be installed skips the run with a loud message.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
secs=${FUZZ_SECONDS:-10}
ci=false
case "${CI:-}" in true|1) ci=true ;; esac

if ! command -v cargo-fuzz >/dev/null; then
  echo "fuzz/smoke.sh: installing cargo-fuzz"
  if ! cargo install cargo-fuzz --locked --quiet; then
    if $ci; then echo "fuzz/smoke.sh: cannot install cargo-fuzz (required with CI=true)" >&2; exit 1; fi
    echo "!!!!! fuzz/smoke.sh: cargo-fuzz is missing: the fuzz smoke run is SKIPPED !!!!!" >&2
    exit 0
  fi
fi
./seed.sh > /dev/null
mkdir -p corpus/proto_decode corpus/txn_parse corpus/peer_stream
# One seed each for the targets seed.sh does not cover: a WAL record body and a txn.
head -c 64 corpus/wal_decode/"$(ls corpus/wal_decode | head -1)" > corpus/proto_decode/seed-wal-head
printf 'mod("k") = "5"\n\nput k v\n\ndel k\n' > corpus/txn_parse/seed-txn
# A peer stream: chunk size 7, then etcd's link heartbeat frame twice.
hb='\x00\x00\x00\x00\x00\x00\x00\x1e\x08\x08\x10\x00\x18\x00\x20\x00\x28\x00\x30\x00\x40\x00\x4a\x0a\x12\x08\x0a\x02\x28\x00\x10\x00\x18\x00\x50\x00\x58\x00'
printf "\x07$hb$hb" > corpus/peer_stream/seed-heartbeats
# No sanitizer, as in long.sh (README): the targets reach only safe Rust, and
# the uninstrumented build is quicker to make and to run.
RUSTC_BOOTSTRAP=1 cargo fuzz build -O -s "${FUZZ_SANITIZER:-none}"
targets=$(cargo fuzz list)
bin=target/x86_64-unknown-linux-gnu/release
mkdir -p artifacts
for t in $targets; do
  mkdir -p "corpus/$t" "artifacts/$t"
  # A scratch copy of the corpus: the run's new inputs stay out of the seeds.
  work=$(mktemp -d)
  cp -r "corpus/$t/." "$work/" 2>/dev/null || true
  if ! "$bin/$t" "$work" -max_total_time="$secs" -max_len=32768 -timeout=20 -rss_limit_mb=2048 \
      -artifact_prefix="artifacts/$t/" -print_final_stats=1 > "artifacts/$t.log" 2>&1; then
    echo "fuzz/smoke.sh: $t FAILED (artifacts/$t/, log artifacts/$t.log)" >&2
    tail -30 "artifacts/$t.log" >&2
    rm -rf "$work"
    exit 1
  fi
  runs=$(grep -oE 'number_of_executed_units: [0-9]+' "artifacts/$t.log" | grep -oE '[0-9]+$')
  echo "fuzz $t: $runs runs in ${secs}s, no crash"
  rm -rf "$work"
done
