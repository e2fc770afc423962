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

# The served-API targets: one request per method, as a client sends it.
# grpc_handlers: method index (fuzz_targets/grpc_handlers.rs), 0 (framed),
# then the protobuf message.
mkdir -p corpus/grpc_handlers corpus/gateway
g() { printf "$2" > "corpus/grpc_handlers/seed-$1"; }
g range '\x00\x00\x0a\x01a\x12\x01z'
g put '\x01\x00\x0a\x01a\x12\x01v'
g put-lease '\x01\x00\x0a\x01b\x12\x01v\x18\x07'
g delete '\x02\x00\x0a\x01a\x12\x01z\x20\x01'
g txn '\x03\x00\x0a\x07\x10\x02\x1a\x01a\x30\x00\x12\x08\x12\x06\x0a\x01a\x12\x01v\x1a\x05\x0a\x03\x0a\x01a'
g compact '\x04\x00\x08\x01'
g watch '\x05\x00\x0a\x0c\x0a\x01a\x12\x01z\x18\x01\x20\x01\x30\x01'
g watch-progress '\x05\x00\x1a\x00'
g lease-grant '\x06\x00\x08\x3c\x10\x07'
g lease-revoke '\x07\x00\x08\x07'
g keepalive '\x08\x00\x08\x07'
g ttl '\x09\x00\x08\x07\x10\x01'
g leases '\x0a\x00'
g member-add '\x0b\x00\x0a\x12http://127.0.0.1:1\x10\x01'
g member-list '\x0e\x00'
g alarm-nospace '\x10\x00\x08\x01\x18\x01'
g alarm-disarm '\x10\x00\x08\x02\x18\x01'
g status '\x11\x00'
g defrag '\x12\x00'
g hashkv '\x14\x00\x08\x00'
g snapshot '\x15\x00'
g auth-enable '\x17\x00'
g authenticate '\x19\x00\x0a\x04root\x12\x02pw'
g user-add '\x1a\x00\x0a\x04root\x12\x02pw'
g user-grant '\x1f\x00\x0a\x04root\x12\x04root'
g role-add '\x21\x00\x0a\x01r'
g role-grant '\x25\x00\x0a\x01r\x12\x08\x08\x02\x12\x01a\x1a\x01z'
g lock '\x27\x00\x0a\x01l\x10\x07'
g unlock '\x28\x00\x0a\x01l'
g campaign '\x29\x00\x0a\x01e\x10\x07\x1a\x01v'
g leader '\x2b\x00\x0a\x01e'
g raw-two-frames '\x00\x01\x00\x00\x00\x00\x03\x0a\x01a\x00\x00\x00\x00\x03\x0a\x01b'
# gateway: endpoint index (fuzz_targets/gateway.rs), then the JSON body.
j() { printf '%b%s' "$2" "$3" > "corpus/gateway/seed-$1"; }
j range '\x00' '{"key":"YQ==","range_end":"eg==","limit":"2"}'
j put '\x01' '{"key":"YQ==","value":"dg==","prev_kv":true}'
j delete '\x02' '{"key":"YQ==","range_end":"eg=="}'
j txn '\x03' '{"compare":[{"result":"EQUAL","target":"MOD","key":"YQ==","mod_revision":"0"}],"success":[{"request_put":{"key":"YQ==","value":"dg=="}}],"failure":[{"request_range":{"key":"YQ=="}}]}'
j compact '\x04' '{"revision":"1","physical":true}'
j lease-grant '\x05' '{"TTL":"60","ID":"7"}'
j lease-revoke '\x06' '{"ID":"7"}'
j ttl '\x08' '{"ID":"7","keys":true}'
j member-list '\x0f' '{}'
j alarm '\x11' '{"action":"GET"}'
j status '\x12' '{}'
j authenticate '\x1c' '{"name":"root","password":"pw"}'
j user-add '\x1d' '{"name":"root","password":"pw"}'
j watch '\x2a' '{"create_request":{"key":"YQ==","range_end":"eg==","prev_kv":true}}'
j keepalive '\x2b' '{"ID":"7"}'
j beta-range '\x2d' '{"key":"YQ=="}'
echo "seeded: $(ls corpus | wc -l) corpora"
