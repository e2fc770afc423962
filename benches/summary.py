#!/usr/bin/env python3
"""One table from the sections of benches/anchors.sh (target/anchors-*.json).

Every row: section, case, unit, etcdkit's figure, one anchor and its figure,
the ratio (always "how many times better etcdkit is": > 1 = etcdkit ahead),
and the issue's target with met / missed. Printed as text and Markdown
(target/anchors.md) and written as JSON (target/anchors.json).
usage: summary.py [ELAPSED_SECONDS]
"""
import json
import os
import sys

T = "target"


def load(name):
    p = os.path.join(T, f"anchors-{name}.json")
    return json.load(open(p)) if os.path.exists(p) else None


rows = []


def row(section, case, unit, ours, anchor, theirs, ratio, target=None, met=None, note=""):
    rows.append({"section": section, "case": case, "unit": unit, "etcdkit": ours, "anchor": anchor,
                 "anchor_value": theirs, "ratio": None if ratio is None else round(ratio, 2),
                 "target": target, "met": met, "note": note})


ps = load("pagestore")
if ps:
    floors = ps["floors"]
    by = {c["case"]: c for c in ps["cases"]}
    for c in ps["cases"]:
        name = c["case"]
        ours = c["ops_per_sec"].get("etcdkit")
        batched = name.startswith("put") and not name.endswith("batch=1")
        for eng, v in c["ops_per_sec"].items():
            if eng == "etcdkit":
                continue
            r = ours / v
            tgt = met = None
            if eng == "bbolt-go" and (batched or name == "random get"):
                tgt, met = "≥ 2", r >= 2
            elif eng == "bbolt-go" and name in ("full scan", "prefix range"):
                tgt, met = "≥ 1 (time ≤ bbolt's)", r >= 1
            row("page store", name, "ops/s", round(ours), eng, round(v), r, tgt, met)
    single, group = by.get("durable single commit"), by.get("group commit, 16 writers")
    if single:
        p50 = single["p50_us"]["etcdkit"]
        f = floors["fsync_p50_us"]
        row("page store", "durable single commit p50", "µs", p50, "one 4 KiB write + fdatasync", f,
            2 * f / p50, "commit ≤ 2 × one fsync (ratio ≥ 1)", p50 <= 2 * f,
            "bbolt's protocol is two fdatasyncs per commit (pages, then meta)")
        if "bbolt-go" in single["p99_us"] and single["p99_us"]["bbolt-go"]:
            row("page store", "durable single commit p99", "µs", single["p99_us"]["etcdkit"], "bbolt-go",
                single["p99_us"]["bbolt-go"], single["p99_us"]["bbolt-go"] / single["p99_us"]["etcdkit"])
    if single and group:
        g, s = group["ops_per_sec"]["etcdkit"], single["ops_per_sec"]["etcdkit"]
        row("page store", "group commit ÷ single commit", "commits/s", round(g), "etcdkit single commit", round(s),
            g / s, "≥ 5", g / s >= 5)

wal = load("wal")
if wal:
    for c in wal:
        row("WAL", c["case"], "ns/op", c["etcdkit_ns"], "etcd 3.4", c["etcd_ns"], c["ratio"], "≥ 2", c["ratio"] >= 2)
    big = next((c for c in wal if c["case"] == "Write1000EntryBatch1000"), None)
    if big and ps:
        bps = 1000 / big["etcdkit_ns"] * 1e9
        floor = ps["floors"]["bandwidth_bytes_per_sec"]
        row("WAL", "large batches: Write1000EntryBatch1000 payload", "MB/s", round(bps / 1e6), "sequential 1 MiB write + fdatasync",
            round(floor / 1e6), bps / floor, "≥ 0.9 of the disk", bps >= 0.9 * floor)

mvcc = load("mvcc")
if mvcc:
    for c in mvcc:
        name = c["case"]
        tgt = "≥ 5" if name.startswith("StoreRestoreRevs") else (
            "≥ 3" if name in ("StorePut", "StoreTxnPut") or name.startswith("StoreRangeKey") else None)
        met = None if tgt is None else c["ratio"] >= float(tgt.split()[-1])
        row("MVCC", name, "ns/op", c["etcdkit_ns"], "etcd 3.4", c["etcd_ns"], c["ratio"], tgt, met)

mem = load("index-mem")
if mem:
    for c in mem:
        name = f"index memory, {c['keys']:,} keys × {c['key_len']} B, {c['revs']} rev/key"
        row("MVCC", name, "B/key", round(c["etcdkit_bytes_per_key"], 1), "etcd 3.4 treeIndex",
            round(c["etcd_bytes_per_key"], 1), 1 / c["ratio"], "≤ ½ (ratio ≥ 2)", c["ratio"] <= 0.5)

snap = load("snapshot")
if snap:
    for c in snap:
        size, case, k = c["size_mb"], c["case"], c["etcdkit_s"]
        name = f"{case} {size} MB"
        row("snapshot", name, "s", k, "etcdctl 3.4", c["etcdctl_s"], c["etcdctl_s"] / k, "≥ 5", c["etcdctl_s"] / k >= 5)
        if "cp_s" in c:
            tgt = "≤ 1.5 × cp (ratio ≥ 0.67)" if case == "restore" else None
            r = c["cp_s"] / k
            row("snapshot", name, "s", k, "cp", c["cp_s"], r, tgt, None if tgt is None else k <= 1.5 * c["cp_s"])
            row("snapshot", name, "s", k, "cp + sync (durable copy)", c["cp+sync_s"], c["cp+sync_s"] / k)
        if case == "status" and size >= 1000:
            row("snapshot", f"status {size} MB, absolute", "s", k, "target", 1.0, 1.0 / k, "≤ 1 s", k <= 1.0)

node = load("node")
if node:
    for c in node:
        a, b = c["etcdkit"], c["etcd"]
        ok = c["ratio"] >= 3 and a["p99_us"] <= b["p99_us"]
        row("raft-node", f"durable put, {c['writers']} writer" + ("s" if c["writers"] > 1 else ""), "ops/s", round(a["ops_per_sec"]), "etcd 3.4 on loopback",
            round(b["ops_per_sec"]), c["ratio"], "≥ 3 at ≤ p99", ok,
            f"p99 {a['p99_us']:.0f} µs vs {b['p99_us']:.0f} µs")


def fmt(x):
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.3f}" if abs(x) < 10 else (f"{x:,.1f}" if abs(x) < 1000 else f"{x:,.0f}")
    return f"{x:,}" if isinstance(x, int) else str(x)


def verdict(r):
    return "" if r["met"] is None else ("met" if r["met"] else "MISSED")


hdr = ["section", "case", "unit", "etcdkit", "anchor", "anchor value", "ratio", "target", ""]
lines = [[r["section"], r["case"], r["unit"], fmt(r["etcdkit"]), r["anchor"], fmt(r["anchor_value"]),
          "" if r["ratio"] is None else f"{r['ratio']:.2f}", r["target"] or "", verdict(r)] for r in rows]
w = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(hdr)]
print("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
for l in lines:
    print("  ".join(v.ljust(w[i]) for i, v in enumerate(l)))
with open(os.path.join(T, "anchors.md"), "w") as f:
    f.write("| " + " | ".join(hdr[:-1] + ["verdict"]) + " |\n")
    f.write("| " + " | ".join(["---"] * 3 + ["---:", "---", "---:", "---:", "---", "---"]) + " |\n")
    for l in lines:
        f.write("| " + " | ".join(l) + " |\n")
met = sum(1 for r in rows if r["met"] is True)
missed = [r for r in rows if r["met"] is False]
elapsed = int(sys.argv[1]) if len(sys.argv) > 1 else None
json.dump({"rows": rows, "elapsed_seconds": elapsed, "cores": os.cpu_count()}, open(os.path.join(T, "anchors.json"), "w"), indent=1)
print(f"\n{len(rows)} rows; targets met {met}, missed {len(missed)}"
      + (f"; whole run {elapsed} s" if elapsed else "") + f"; {os.cpu_count()} cores")
print("ratio: how many times better etcdkit is (> 1 = ahead); JSON in target/anchors.json, Markdown in target/anchors.md")
