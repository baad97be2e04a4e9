#!/usr/bin/env python3
"""Turns bench/compare.sh's JSON lines into the summary of docs/BENCHMARKS.md and a chart.

Usage: bench/summarize.py RESULTS.jsonl META.json DOC.md CHART.svg

The part of DOC.md between the lines `<!-- summary:start -->` and `<!-- summary:end -->` is
replaced (added at the top if the markers are missing); CHART.svg is written anew. META.json
holds what the script knew about the run: machine, versions, commands, date.
"""
import html
import json
import sys

BROKERS = ["junction", "rabbitmq", "mosquitto", "activemq"]
NAMES = {"junction": "Junction", "rabbitmq": "RabbitMQ", "mosquitto": "Mosquitto",
         "activemq": "ActiveMQ"}
COLORS = {"junction": "#2b6cb0", "rabbitmq": "#dd6b20", "mosquitto": "#38a169",
          "activemq": "#805ad5"}


def kind(row):
    if "idle" in row.split():
        return "idle"
    if "1000/s" in row:
        return "latency"
    return "throughput"


def value(r):
    """The figure a row is judged by: deliveries/s, p99 in ms, or KiB per idle connection."""
    if r.get("error"):
        return None
    k = kind(r["row"])
    if k == "idle":
        return (r.get("broker") or {}).get("rss_per_connection_kib")
    if k == "latency":
        p99 = (r.get("latency_us") or {}).get("p99")
        return None if p99 is None else p99 / 1000.0
    return r.get("end_to_end_rate")


def fmt(k, v):
    if v is None:
        return "-"
    if k == "throughput":
        return f"{v:,.0f}"
    if k == "latency":
        return f"{v:.2f} ms"
    return f"{v:.1f} KiB"


def main():
    results, meta, doc, chart = sys.argv[1:5]
    rows = [json.loads(l) for l in open(results) if l.strip()]
    meta = json.load(open(meta))
    order, table = [], {}
    for r in rows:
        if r["row"] not in table:
            order.append(r["row"])
            table[r["row"]] = {}
        table[r["row"]][r["broker_name"]] = r
    present = [b for b in BROKERS if any(b in t for t in table.values())]
    targets = meta.get("targets", {})

    out = ["<!-- summary:start -->", "", "## Summary: every broker, one matrix", ""]
    out.append(f"Produced by `{meta['command']}` on {meta['date']} (the script rewrites this "
               "section and the chart). One run per row; the load average before each run is "
               "in the last column (1-minute, two cores: above ~1 something else was running).")
    out.append("")
    out.append(f"- Machine: {meta['machine']}. **Broker and generator share the same two cores.**")
    for v in meta["versions"]:
        out.append(f"- {v}")
    out.append("")
    head = "| scenario | " + " | ".join(NAMES[b] for b in present)
    head += " | Junction / best peer | target | lost or dup (Junction / peers) | load before (Junction / peers) |"
    out.append(head)
    out.append("|---|" + "---:|" * len(present) + "---:|---|---|---|")
    for row in order:
        k = kind(row)
        cells = table[row]
        vals = {b: value(cells[b]) if b in cells else None for b in present}
        j = vals.get("junction")
        peers = [v for b, v in vals.items() if b != "junction" and v is not None]
        ratio = "-"
        if j is not None and peers:
            if k == "throughput":
                ratio = f"{j / max(peers):.1f}x"
            elif j > 0:
                # Lower is better: how many times smaller (or larger) Junction's figure is.
                best = min(peers)
                ratio = f"{best / j:.1f}x lower" if j <= best else f"{j / best:.1f}x higher"
        def lost(b):
            r = cells.get(b)
            if not r or k == "idle":
                return "-" if not r else f"{r.get('failed', 0)} failed"
            return f"{r.get('lost')}/{r.get('duplicates')}"
        lostcol = " / ".join(lost(b) for b in present if b in cells)
        loadcol = " / ".join(cells[b].get("loadavg_before", "?").split()[0]
                             for b in present if b in cells)
        out.append(f"| {row} | " + " | ".join(fmt(k, vals[b]) for b in present)
                   + f" | {ratio} | {targets.get(row, '')} | {lostcol} | {loadcol} |")
    out.append("")
    out.append("Throughput rows are deliveries per second (every subscriber counted in a "
               "fan-out); latency rows are the 99th percentile from publish to delivery at a "
               "fixed 1,000 msg/s; idle rows are the growth of the broker's resident memory per "
               "idle connection. `lost/dup` counts messages by sequence number (QoS 0 may lose "
               "by design).")
    out.append("")
    out.append("![throughput and p99 per scenario](bench-summary.svg)")
    out.append("")
    out.append("Commands, one per broker start (each broker started fresh, one after the other):")
    out.append("")
    out.append("```sh")
    out.extend(meta["commands"])
    out.append("```")
    out.append("")
    out.append("<!-- summary:end -->")

    text = open(doc).read()
    start, end = "<!-- summary:start -->", "<!-- summary:end -->"
    block = "\n".join(out)
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        first_nl = text.index("\n") + 1
        text = text[:first_nl] + "\n" + block + "\n" + text[first_nl:]
    open(doc, "w").write(text)
    open(chart, "w").write(svg(order, table, present))


def svg(order, table, present):
    """Horizontal grouped bars: one panel per kind of row, one bar per broker, linear scale."""
    bar, gap, left, width = 14, 10, 230, 420
    panels = [("throughput", "Deliveries per second (higher is better)"),
              ("latency", "p99 latency at 1,000 msg/s, ms (lower is better)"),
              ("idle", "Broker memory per idle connection, KiB (lower is better)")]
    parts, y = [], 30
    for k, title in panels:
        rows = [r for r in order if kind(r) == k]
        if not rows:
            continue
        vmax = max([value(table[r][b]) or 0 for r in rows for b in table[r]] + [1e-9])
        parts.append(f'<text x="10" y="{y}" font-weight="bold">{html.escape(title)}</text>')
        y += 14
        for r in rows:
            brokers = [b for b in present if b in table[r]]
            h = len(brokers) * bar
            parts.append(f'<text x="{left - 8}" y="{y + h / 2 + 4}" text-anchor="end">'
                         f'{html.escape(r)}</text>')
            for b in brokers:
                v = value(table[r][b])
                w = 0 if v is None else max(1, width * v / vmax)
                parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar - 2}" '
                             f'fill="{COLORS[b]}"/>')
                parts.append(f'<text x="{left + w + 4:.1f}" y="{y + bar - 4}" font-size="10">'
                             f'{html.escape(fmt(k, v))}</text>')
                y += bar
            y += gap
        y += 16
    legend = []
    for i, b in enumerate(present):
        x = 10 + i * 110
        legend.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{COLORS[b]}"/>'
                      f'<text x="{x + 16}" y="{y + 10}">{NAMES[b]}</text>')
    y += 24
    total_w = left + width + 120
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{y}" '
            f'font-family="sans-serif" font-size="11">'
            f'<rect width="100%" height="100%" fill="white"/>'
            + "".join(parts) + "".join(legend) + "</svg>\n")


if __name__ == "__main__":
    main()
