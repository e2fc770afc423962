#!/usr/bin/env python3
"""benches/serve-ops.sh's results as one Markdown table per part, with
etcdkit's ratio to each etcd (> 1: etcdkit better)."""
import json
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out = []
big = {r["system"]: r for r in rows if r["part"] == "big"}
keys = {r["system"]: r for r in rows if r["part"] == "keys"}


def ms(us):
    return f"{us / 1000:.1f}"


def ratio(a, b):
    return f"{b / a:.2f}×" if a else "–"


def catch_up(r):
    return f"{r['catch_up']['secs']:.2f}" if "catch_up" in r else "–"


def hwm(r):
    c = r.get("catch_up")
    return f"{c['leader_hwm_kib_before'] / 1024:.0f} → {c['leader_hwm_kib_after'] / 1024:.0f}" if c else "–"


if big:
    out += ["| system | db | snapshot save s | defrag s | idle put p99 ms | put p99 during defrag ms "
            "| longest put during defrag ms | puts during defrag | failed puts | new member caught up s "
            "| leader peak RSS MiB (before → after) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s, r in big.items():
        d = r["defrag"]
        dur = d["during"]
        out.append(f"| {s} | {r['db_size'] / 2**20:.0f} MiB | {r['snapshot_secs']:.2f} | {d['defrag_secs']:.2f} "
                   f"| {ms(d['idle']['p99_us'])} | {ms(dur.get('p99_us', 0))} | {ms(dur.get('max_us', 0))} "
                   f"| {dur['ops']} | {d['errors']} | {catch_up(r)} | {hwm(r)} |")
    if "etcdkit" in big:
        k = big["etcdkit"]
        kd = k["defrag"]
        out.append("")
        out.append(f"etcdkit: put p99 during defrag / idle p99 = "
                   f"{kd['during'].get('p99_us', 0) / kd['idle']['p99_us']:.2f} (target ≤ 2)")
        for s, r in big.items():
            if s != "etcdkit":
                out.append(f"- vs {s}: snapshot save {ratio(k['snapshot_secs'], r['snapshot_secs'])} faster; "
                           f"longest put during defrag {ratio(kd['during'].get('max_us', 0), r['defrag']['during'].get('max_us', 0))} shorter"
                           + (f"; new member's catch-up {k['catch_up']['secs'] / r['catch_up']['secs']:.2f} of etcd's time (target ≤ 0.5)"
                              if "catch_up" in k and "catch_up" in r else ""))
    out.append("")
if keys:
    out += ["| system | keys | db | RSS loaded MiB | restart s | RSS restarted MiB |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for s, r in keys.items():
        out.append(f"| {s} | {r['keys']:,} | {r['db_size'] / 2**20:.0f} MiB | {r['rss_kib_loaded'] / 1024:.0f} "
                   f"| {r['restart_secs']:.2f} | {r['rss_kib_restarted'] / 1024:.0f} |")
    if "etcdkit" in keys:
        k = keys["etcdkit"]
        out.append("")
        for s, r in keys.items():
            if s != "etcdkit":
                out.append(f"- vs {s}: RSS loaded {k['rss_kib_loaded'] / r['rss_kib_loaded']:.2f} of etcd's "
                           f"(target ≤ 0.5), restarted {k['rss_kib_restarted'] / r['rss_kib_restarted']:.2f}; "
                           f"restart {k['restart_secs'] / r['restart_secs']:.2f} of etcd's time (target ≤ 0.2)")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
