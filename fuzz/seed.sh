#!/usr/bin/env bash
# Seeds the fuzz corpora from the test fixtures: small snapshot dbs for the bbolt
# targets, the used part of each fixture WAL segment for wal_decode.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
fx=../tests/fixtures/etcd-3.4
mkdir -p corpus/bolt_open_walk corpus/bolt_page corpus/wal_decode corpus/snapshot_verify corpus/snap_decode
for d in "$fx"/*/; do
  s=$(basename "$d")
  if [ -f "$d/snapshot.db" ] && [ "$(stat -c %s "$d/snapshot.db")" -lt 300000 ]; then
    cp "$d/snapshot.db" "corpus/bolt_open_walk/$s.db"
    cp "$d/snapshot.db" "corpus/snapshot_verify/$s.db"
  fi
  if [ -f "$d/snapshot.db" ]; then
    for p in 2 3 4; do dd if="$d/snapshot.db" of="corpus/bolt_page/$s-$p" bs=4096 skip=$p count=1 status=none; done
  fi
  tmp=$(mktemp -d); tar -xzf "$d/datadir.tar.gz" -C "$tmp"
  for w in "$tmp"/datadir/member/wal/*.wal; do
    # the used part: up to the first 8 zero bytes at a frame boundary is enough for a seed
    head -c 200000 "$w" > "corpus/wal_decode/$s-$(basename "$w")"
  done
  for f in "$tmp"/datadir/member/snap/*.snap; do
    [ -f "$f" ] && cp "$f" "corpus/snap_decode/$s-$(basename "$f")"
  done
  rm -rf "$tmp"
done
echo "seeded: $(ls corpus | wc -l) corpora"
