#!/usr/bin/env bash
# The long fuzz run: each target given on the command line (default:
# all of them, one after the other) runs FUZZ_RUNS (default 10,000,000)
# executions on its corpus. Built without a sanitizer by default
# (FUZZ_SANITIZER=none): the code under test is safe Rust (the only `unsafe` is
# RealFs's mmap and lock, and the file targets run on SimFs), so a bug shows
# as a panic, a hang or an allocation blow-up, which libFuzzer catches on its
# own; without ASan the runs are 5-10x faster. FUZZ_SANITIZER=address for ASan.
# Prints one line per target; stops at the first crash (artifacts/<target>/).
# FUZZ_MAX_LEN (default 65536) caps an input; the served-API targets run at
# 4096: their requests are small, and at 64 KiB the instrumented decoding of
# large inputs cut their speed twentyfold.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
runs=${FUZZ_RUNS:-10000000}
san=${FUZZ_SANITIZER:-none}
[ -d corpus/bolt_page ] || ./seed.sh > /dev/null
RUSTC_BOOTSTRAP=1 cargo fuzz build -O -s "$san"
targets=${*:-$(cargo fuzz list)}
bin=target/x86_64-unknown-linux-gnu/release
for t in $targets; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log="artifacts/long-$t.log"
  start=$(date +%s)
  max_len=${FUZZ_MAX_LEN:-65536}
  case "$t" in grpc_handlers|gateway) max_len=${FUZZ_MAX_LEN:-4096} ;; esac
  if ! "$bin/$t" "corpus/$t" -runs="$runs" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="artifacts/$t/" -print_final_stats=1 > "$log" 2>&1; then
    echo "fuzz/long.sh: $t FAILED (artifacts/$t/, log $log)" >&2
    tail -30 "$log" >&2
    exit 1
  fi
  secs=$(( $(date +%s) - start ))
  done_runs=$(grep -oE 'number_of_executed_units: [0-9]+' "$log" | grep -oE '[0-9]+$')
  echo "fuzz $t: $done_runs runs in ${secs}s (sanitizer: $san), no crash"
done
