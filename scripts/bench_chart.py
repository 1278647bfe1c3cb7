"""The chart of docs/benchmarks.md: median throughput and p99 latency per
configuration, one group of bars per workload, written as plain SVG (no
plotting library needed). Bars are scaled within each workload, because the
workloads' rates differ by two orders of magnitude."""

from xml.sax.saxutils import escape

WIDTH = 1000
LABEL_W = 330  # configuration names
OPS_X, OPS_W = 340, 290  # throughput panel (value labels right of the bars)
P99_X, P99_W = 720, 230  # p99 panel
ROW_H, HEAD_H, TOP = 20, 28, 64
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
           "#9c755f", "#bab0ac"]


def text(x, y, s, size=12, anchor="start", weight="normal", fill="#222"):
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{fill}">{escape(s)}</text>')


def bar(x, y, w, color):
    return f'<rect x="{x}" y="{y}" width="{max(w, 1):.1f}" height="{ROW_H - 6}" fill="{color}"/>'


def svg(res):
    """The chart as an SVG document string."""
    colors = {}
    for _, config in res.order:
        colors.setdefault(config, PALETTE[len(colors) % len(PALETTE)])
    groups = {}
    for workload, config in res.order:
        groups.setdefault(workload, []).append((config, res.get(workload, config)))
    body, y = [], TOP
    for workload, rows in groups.items():
        body.append(text(10, y + 18, workload, 13, weight="bold"))
        y += HEAD_H
        max_ops = max(g["ops"] for _, g in rows) or 1
        max_p99 = max(g["p99"] for _, g in rows) or 1
        for config, g in rows:
            mid = y + ROW_H / 2 + 4
            body.append(text(LABEL_W, mid, config, 12, anchor="end"))
            w = OPS_W * g["ops"] / max_ops
            body.append(bar(OPS_X, y + 3, w, colors[config]))
            body.append(text(OPS_X + w + 4, mid, f"{g['ops']:,.0f}", 11))
            w = P99_W * g["p99"] / max_p99
            body.append(bar(P99_X, y + 3, w, colors[config]))
            body.append(text(P99_X + w + 4, mid, f"{g['p99']:.2f}", 11))
            y += ROW_H
        y += 6
    height = y + 16
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        text(10, 24, "spillway and its baselines: median over rounds, same run", 15, weight="bold"),
        text(OPS_X, 50, "throughput, ops/s (bars scaled within each workload)", 12, weight="bold"),
        text(P99_X, 50, "p99 latency, ms", 12, weight="bold"),
        f'<line x1="{OPS_X}" y1="{TOP}" x2="{OPS_X}" y2="{y}" stroke="#999"/>',
        f'<line x1="{P99_X}" y1="{TOP}" x2="{P99_X}" y2="{y}" stroke="#999"/>',
    ]
    return "\n".join(head + body + ["</svg>"]) + "\n"


def write(path, res):
    with open(path, "w") as f:
        f.write(svg(res))
