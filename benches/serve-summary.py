#!/usr/bin/env python3
"""Summarises benches/serve-anchors.sh's results.jsonl.

usage: serve-summary.py RESULTS.jsonl OUTDIR

Writes OUTDIR/anchors-serve.json (every run, plus the ratios),
OUTDIR/anchors-serve.md (one table per cluster size: throughput and p99 per
system, etcdkit's throughput ratio to each etcd) and
OUTDIR/serve-plots/<members>m-<mode>.svg: p99 latency against throughput,
one curve per system through its connection x client shapes (log-log axes),
drawn here without a plotting library.

The "no-op" system is benches' grpc-floor: etcd's KV and Watch services
answering every call at once, storing nothing. Driven by the same client, it
is the most that client, gRPC and the loopback carry on this machine: no
server of the API can do better. Its rows (KV and watch modes) say what fraction of that
etcdkit reaches, and how far above etcd the floor itself is (when the no-op
server is not 3x etcd, 3x etcd is out of any server's reach here).
"""
import json
import math
import os
import sys

SYSTEMS = ["etcdkit", "etcd-3.4", "etcd-3.5"]
NOOP = "no-op"
COLOURS = {"etcdkit": "#c0392b", "etcd-3.4": "#2471a3", "etcd-3.5": "#229954", NOOP: "#7f8c8d"}


def load(path):
    runs, floor = [], None
    for line in open(path):
        r = json.loads(line)
        if r["system"] == "floor":
            floor = r["result"]
        else:
            runs.append(r)
    return runs, floor


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def table(runs, floor):
    """Rows keyed by (members, mode, shape), one cell per system."""
    rows = {}
    for r in runs:
        k = (r["members"], r["name"], f'{r["conns"]}x{r["clients"]}')
        rows.setdefault(k, {})[r["system"]] = r
    out = []
    for (members, name, shape), cells in rows.items():
        row = {"members": members, "mode": name, "shape": shape}
        for s in SYSTEMS + [NOOP]:
            if s in cells:
                res = cells[s]["result"]
                row[s] = {k: res[k] for k in ("ops_per_sec", "p50_us", "p99_us", "p999_us", "errors")}
                row[s]["rss_kib"] = cells[s]["rss_kib"]
        kit = row.get("etcdkit", {}).get("ops_per_sec")
        for s in SYSTEMS[1:]:
            if s in row:
                row[f"x_{s}"] = ratio(kit, row[s]["ops_per_sec"])
                row[f"p99_x_{s}"] = ratio(row.get("etcdkit", {}).get("p99_us"), row[s]["p99_us"])
        if NOOP in row:
            noop = row[NOOP]["ops_per_sec"]
            row["of_noop"] = ratio(kit, noop)
            for s in SYSTEMS[1:]:
                row[f"noop_x_{s}"] = ratio(noop, row.get(s, {}).get("ops_per_sec"))
        out.append(row)
    return out


def markdown(rows, floor):
    lines = []
    if floor:
        lines.append(
            f"Floor (one 4 KiB write + fdatasync on this disk): {floor['ops_per_sec']:.0f}/s, "
            f"p50 {floor['p50_us']} us, p99 {floor['p99_us']} us.\n"
        )
    for members in sorted({r["members"] for r in rows}):
        lines.append(f"### {members} member{'s' if members > 1 else ''}\n")
        head = "| mode | conns×clients |"
        rule = "| --- | --- |"
        for s in SYSTEMS:
            head += f" {s} ops/s | p99 ms |"
            rule += " ---: | ---: |"
        head += " ×3.4 | ×3.5 |"
        rule += " ---: | ---: |"
        noop = any(NOOP in r for r in rows if r["members"] == members)
        if noop:
            head += " no-op ops/s | etcdkit ÷ no-op | no-op ÷ 3.4 | no-op ÷ 3.5 |"
            rule += " ---: | ---: | ---: | ---: |"
        lines += [head, rule]
        for r in rows:
            if r["members"] != members:
                continue
            line = f"| {r['mode']} | {r['shape'].replace('x', '×')} |"
            for s in SYSTEMS:
                c = r.get(s)
                line += f" {c['ops_per_sec']:.0f} | {c['p99_us'] / 1000:.2f} |" if c else " – | – |"
            for s in SYSTEMS[1:]:
                x = r.get(f"x_{s}")
                line += f" {x:.2f} |" if x else " – |"
            if noop:
                n = r.get(NOOP)
                line += f" {n['ops_per_sec']:.0f} |" if n else " – |"
                for k in ("of_noop", "noop_x_etcd-3.4", "noop_x_etcd-3.5"):
                    line += f" {r[k]:.2f} |" if r.get(k) else " – |"
            lines.append(line)
        lines.append("")
    return "\n".join(lines)


def svg(points_by_system, title):
    """A log-log plot: x throughput (ops/s), y p99 (ms)."""
    w, h, left, bottom, top, right = 520, 340, 64, 44, 28, 120
    xs = [x for pts in points_by_system.values() for x, _ in pts]
    ys = [y for pts in points_by_system.values() for _, y in pts]
    if not xs:
        return None
    lx0, lx1 = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)))
    ly0, ly1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    lx1, ly1 = max(lx1, lx0 + 1), max(ly1, ly0 + 1)

    def px(x):
        return left + (math.log10(x) - lx0) / (lx1 - lx0) * (w - left - right)

    def py(y):
        return h - bottom - (math.log10(y) - ly0) / (ly1 - ly0) * (h - bottom - top)

    e = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">']
    e.append(f'<rect width="{w}" height="{h}" fill="white"/>')
    e.append(f'<text x="{w / 2}" y="16" text-anchor="middle" font-size="13">{title}</text>')
    for d in range(lx0, lx1 + 1):
        x = px(10**d)
        e.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{h - bottom}" stroke="#ddd"/>')
        e.append(f'<text x="{x:.1f}" y="{h - bottom + 14}" text-anchor="middle">{10**d:g}</text>')
    for d in range(ly0, ly1 + 1):
        y = py(10**d)
        e.append(f'<line x1="{left}" y1="{y:.1f}" x2="{w - right}" y2="{y:.1f}" stroke="#ddd"/>')
        e.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{10**d:g}</text>')
    e.append(f'<text x="{(left + w - right) / 2}" y="{h - 8}" text-anchor="middle">throughput (ops/s)</text>')
    e.append(f'<text x="14" y="{(top + h - bottom) / 2}" transform="rotate(-90 14 {(top + h - bottom) / 2})" '
             'text-anchor="middle">p99 latency (ms)</text>')
    for i, (s, pts) in enumerate(points_by_system.items()):
        pts = sorted(pts)
        c = COLOURS.get(s, "black")
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        e.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="2"/>')
        for x, y in pts:
            e.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{c}"/>')
        ly = top + 14 + 16 * i
        e.append(f'<line x1="{w - right + 10}" y1="{ly - 4}" x2="{w - right + 30}" y2="{ly - 4}" stroke="{c}" stroke-width="2"/>')
        e.append(f'<text x="{w - right + 36}" y="{ly}">{s}</text>')
    e.append("</svg>")
    return "\n".join(e)


def main():
    runs, floor = load(sys.argv[1])
    outdir = sys.argv[2]
    rows = table(runs, floor)
    json.dump({"floor": floor, "rows": rows}, open(os.path.join(outdir, "anchors-serve.json"), "w"), indent=1)
    md = markdown(rows, floor)
    open(os.path.join(outdir, "anchors-serve.md"), "w").write(md + "\n")
    print(md)
    plots = os.path.join(outdir, "serve-plots")
    os.makedirs(plots, exist_ok=True)
    for members in sorted({r["members"] for r in runs}):
        for mode in dict.fromkeys(r["name"] for r in runs):
            pts = {}
            for r in runs:
                if r["members"] == members and r["name"] == mode:
                    res = r["result"]
                    pts.setdefault(r["system"], []).append((res["ops_per_sec"], max(res["p99_us"], 1) / 1000))
            s = svg(pts, f"{mode}, {members} member{'s' if members > 1 else ''}")
            if s:
                open(os.path.join(plots, f"{members}m-{mode}.svg"), "w").write(s)


if __name__ == "__main__":
    main()
