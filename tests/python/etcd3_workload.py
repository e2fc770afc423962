"""etcd3_workload: one workload against an etcd endpoint with the Python
client `etcd3` (PyPI), printing what it saw, one line per step, leaving out
what differs between two servers of the same data (cluster and member IDs,
lease IDs, raft terms). etcdkit's tests run it against real etcd and
against etcdkit and compare the two outputs (tests/tests/serve.rs).

Usage: python3 etcd3_workload.py HOST:PORT SNAPSHOT-FILE
(etcd3 0.12's generated code needs PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python
with a current protobuf.)
"""

import hashlib
import sys
import threading
import time

import etcd3
from etcd3.etcdrpc import rpc_pb2


def kvs(kv_list):
    return "".join(
        " %s=%s@%d/%d/%d"
        % (k.key.decode(), k.value.decode(), k.create_revision, k.mod_revision, k.version)
        for k in kv_list
    )


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    snap = sys.argv[2]
    c = etcd3.client(host=host, port=int(port), timeout=30)

    # Puts and prefix gets.
    for i in range(10):
        r = c.put("/app/k%02d" % i, "v%d" % i)
        print("put", i, r.header.revision)
    g = c.get_prefix_response("/app/", limit=4, sort_order="descend", sort_target="key")
    print("get prefix", g.count, g.more, kvs(g.kvs))

    # A compare-and-swap txn: once on the right value, once on a stale one.
    for want in ("v3", "v3"):
        ok, _ = c.transaction(
            compare=[c.transactions.value("/app/k03") == want],
            success=[c.transactions.put("/app/k03", "swapped")],
            failure=[c.transactions.get("/app/k03")],
        )
        _, meta = c.get("/app/k03")
        print("cas", ok, meta.response_header.revision, meta.mod_revision)

    # A watch from a past revision: the history, then a live event.
    events, cancel = c.watch_prefix("/app/k0", start_revision=5, prev_kv=True)
    threading.Timer(0.3, lambda: c.delete("/app/k09")).start()
    seen = 0
    for e in events:
        kind = "PUT" if isinstance(e, etcd3.events.PutEvent) else "DELETE"
        prev = e.prev_value.decode() if e._event.HasField("prev_kv") else ""
        print("watch", kind, e.key.decode(), e.value.decode(), e.mod_revision, prev)
        seen += 1
        if seen >= 8:
            break
    cancel()

    # A lease: granted, kept alive once, a key on it, then left to expire.
    lease = c.lease(3)
    print("grant ttl", lease.granted_ttl)
    c.put("/app/leased", "x", lease=lease)
    ka = list(c.refresh_lease(lease.id))
    print("keepalive ttl", ka[0].TTL)
    info = c.get_lease_info(lease.id)
    print("timetolive granted", info.grantedTTL, "keys", len(info.keys))
    deadline = time.time() + 15
    while True:
        value, _ = c.get("/app/leased")
        if value is None:
            print("lease expired, key gone")
            break
        if time.time() > deadline:
            print("lease did not expire")
            break
        time.sleep(0.2)
    print("timetolive after", c.get_lease_info(lease.id).TTL)

    # A snapshot: streamed, saved, its trailer checked.
    with open(snap, "wb") as f:
        c.snapshot(f)
    data = open(snap, "rb").read()
    body, trailer = data[:-32], data[-32:]
    print("snapshot bytes%512", len(data) % 512, "trailer ok", hashlib.sha256(body).digest() == trailer)

    # A status call answers (its version is the API the server implements).
    print("status version", c.status().version)

    g = c.get_prefix_response("/app/")
    print("final", g.count, kvs(g.kvs))
    # The raw request type is reachable as clients use it.
    r = c.kvstub.Range(rpc_pb2.RangeRequest(key=b"/app/k00"), 10)
    print("raw range", r.count)


if __name__ == "__main__":
    main()
