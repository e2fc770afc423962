#!/usr/bin/env bash
# The robustness harness's long mode (about an hour on 2 cores): by default
# 1,000 faulted histories on etcdkit clusters (3 and 5 members, every fault
# kind), each of at least 1,000 operations (a history a fault held up runs
# on until it has them), plus 60 histories on real etcd 3.4 and 40 on mixed
# clusters; the totals are printed at the end of each test and kept in
# target/robustness-long.txt. Built with the `test` profile (opt-level 2),
# the build CI's tests use, with the disk faults (the `disk-faults` feature).
#
#   HISTORIES=N     etcdkit histories (1000)
#   CONTROL=N       real-etcd histories (60; mixed: two thirds of it)
#   DURATION_MS=N   traffic per history before the operation floor (1200)
#   MIN_OPS=N       operations every history reaches (1000)
#   SEED=N          first seed (0): a new one explores new schedules
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --profile test -p etcdkit-cli --features disk-faults --quiet
export ROBUST_HISTORIES="${HISTORIES:-1000}" ROBUST_CONTROL_HISTORIES="${CONTROL:-60}"
export ROBUST_DURATION_MS="${DURATION_MS:-1200}" ROBUST_MIN_OPS="${MIN_OPS:-1000}" ROBUST_SEED="${SEED:-0}"
mkdir -p target
cargo test --profile test -p etcdkit-tests --test robustness -- --nocapture --test-threads 1 2>&1 |
  tee target/robustness-long.txt | grep -E '^(etcdkit|real etcd|test |seed .*(Violation|[1-9][0-9]* watch anomalies|[1-9][0-9]* errors))'
