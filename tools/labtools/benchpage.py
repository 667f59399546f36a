"""The benchmark as a page: every workload of a results file (``make bench`` writes
``bench/results/latest.json``) as a chart with its min-max spread, the method and the machine,
the targets; or two results files side by side, with the change of each median.

    python -m labtools bench-page bench/results/latest.json > bench.html
    python -m labtools bench-page OLD.json NEW.json > compare.html
    scripts/bench.py --report OLD.json --report NEW.json     (the same, from make bench's script)

Like the ladders (``labtools.ladder``), one self-contained HTML file with hand-written SVG:
nothing is fetched when it is viewed. The charts are drawn from whatever workloads the file
holds, so a run with ``--only`` or a quick run makes a page too.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

Row = dict[str, Any]
COLOURS = ("#1f6feb", "#8250df", "#2da44e", "#bf8700", "#cf222e", "#0a7e8c", "#6e7781")
W, H = 560, 300  # a chart
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 34, 60  # its margins
STEP_NAMES = {"project": "lab"}


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _median(row: Row | None, figure: str) -> tuple[float, float, float] | None:
    """(median, min, max) of ``figure`` in a summary row."""
    if not row or row.get(figure) is None:
        return None
    value = float(row[figure])
    low, high = row.get("spread", {}).get(figure, (value, value))
    return value, float(low), float(high)


def _scale(values: list[float]) -> tuple[float, list[float]]:
    """A top for the y axis and its ticks (0 and four more, on round numbers)."""
    top = max(values, default=1.0) or 1.0
    step = 10 ** math.floor(math.log10(top / 4))
    for nice in (1, 2, 2.5, 5, 10):
        if top / (step * nice) <= 4:
            step *= nice
            break
    ticks = [step * i for i in range(0, 6) if step * i <= top * 1.0001 + step]
    return ticks[-1], ticks


def bar_chart(
    title: str,
    groups: list[str],
    series: dict[str, list[tuple[float, float, float] | None]],
    unit: str,
) -> str:
    """Grouped bars of medians, with min-max whiskers; a value label on each bar."""
    values = [v[2] for points in series.values() for v in points if v]
    top, ticks = _scale(values)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    parts = _axes(title, unit, ticks, top)
    slot = plot_w / max(1, len(groups))
    width = slot * 0.8 / max(1, len(series))
    for g, group in enumerate(groups):
        x0 = LEFT + g * slot + slot * 0.1
        parts.append(
            f'<text class="tick" x="{LEFT + (g + 0.5) * slot:.1f}" y="{TOP + plot_h + 16}" '
            f'text-anchor="middle">{_esc(group)}</text>'
        )
        for s, (name, points) in enumerate(series.items()):
            point = points[g]
            if point is None:
                continue
            median, low, high = point
            x = x0 + s * width
            y = TOP + plot_h * (1 - median / top)
            colour = COLOURS[s % len(COLOURS)]
            parts.append(
                f'<g class="bar" data-series="{_esc(name)}"><title>{_esc(name)}, {_esc(group)}: '
                f"{_fmt(median)} {_esc(unit)} (min {_fmt(low)}, max {_fmt(high)})</title>"
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{width * 0.9:.1f}" '
                f'height="{TOP + plot_h - y:.1f}" fill="{colour}"/>'
                + _whisker(x + width * 0.45, low, high, top, plot_h)
                + "</g>"
            )
    parts.append(_legend(list(series)))
    return _svg(parts)


def line_chart(
    title: str,
    xs: list[int],
    series: dict[str, list[tuple[float, float, float] | None]],
    unit: str,
    x_label: str,
) -> str:
    """Medians against ``xs`` (spaced by their logarithm: 1 to 1,024 connections read evenly),
    a line per series, min-max whiskers at each point."""
    values = [v[2] for points in series.values() for v in points if v]
    top, ticks = _scale(values)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    parts = _axes(title, unit, ticks, top)
    logs = [math.log2(max(1, x)) for x in xs]
    span = (max(logs) - min(logs)) or 1.0

    def x_of(i: int) -> float:
        if len(xs) == 1:
            return LEFT + plot_w / 2
        return LEFT + 20 + (plot_w - 40) * (logs[i] - min(logs)) / span

    for i, x in enumerate(xs):
        parts.append(
            f'<text class="tick" x="{x_of(i):.1f}" y="{TOP + plot_h + 16}" '
            f'text-anchor="middle">{x:,}</text>'
        )
    parts.append(
        f'<text class="axis" x="{LEFT + plot_w / 2}" y="{TOP + plot_h + 34}" '
        f'text-anchor="middle">{_esc(x_label)}</text>'
    )
    for s, (name, points) in enumerate(series.items()):
        colour = COLOURS[s % len(COLOURS)]
        placed = [(x_of(i), TOP + plot_h * (1 - p[0] / top), p) for i, p in enumerate(points) if p]
        if len(placed) > 1:
            path = " ".join(
                f"{'M' if j == 0 else 'L'}{x:.1f} {y:.1f}" for j, (x, y, _) in enumerate(placed)
            )
            parts.append(f'<path class="line" d="{path}" stroke="{colour}"/>')
        for px, py, (median, low, high) in placed:
            parts.append(
                f'<g class="point" data-series="{_esc(name)}"><title>{_esc(name)}: '
                f"{_fmt(median)} {_esc(unit)} (min {_fmt(low)}, max {_fmt(high)})</title>"
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{colour}"/>'
                + _whisker(px, low, high, top, plot_h)
                + "</g>"
            )
    parts.append(_legend(list(series)))
    return _svg(parts)


def _whisker(x: float, low: float, high: float, top: float, plot_h: float) -> str:
    if high <= low:
        return ""
    y1, y2 = TOP + plot_h * (1 - low / top), TOP + plot_h * (1 - high / top)
    return (
        f'<path class="whisker" d="M{x:.1f} {y1:.1f} V{y2:.1f} M{x - 4:.1f} {y1:.1f} '
        f'h8 M{x - 4:.1f} {y2:.1f} h8"/>'
    )


def _axes(title: str, unit: str, ticks: list[float], top: float) -> list[str]:
    plot_h = H - TOP - BOTTOM
    parts = [f'<text class="title" x="{LEFT}" y="18">{_esc(title)}</text>']
    for tick in ticks:
        y = TOP + plot_h * (1 - tick / top)
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_fmt(tick)}</text>"
        )
    parts.append(
        f'<text class="axis" x="12" y="{TOP + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {TOP + plot_h / 2})">{_esc(unit)}</text>'
    )
    return parts


def _legend(names: list[str]) -> str:
    out, x = [], LEFT
    for s, name in enumerate(names):
        colour = COLOURS[s % len(COLOURS)]
        label = STEP_NAMES.get(name, name)
        out.append(
            f'<rect x="{x}" y="{H - 16}" width="10" height="10" fill="{colour}"/>'
            f'<text class="legend" x="{x + 14}" y="{H - 7}">{_esc(label)}</text>'
        )
        x += 24 + 7 * len(label)
    return "".join(out)


def _svg(parts: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" '
        f'height="{H}" role="img">{"".join(parts)}</svg>'
    )


# -- the report's charts -----------------------------------------------------------------------
def _find(rows: list[Row], **match: Any) -> Row | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def _servers(rows: list[Row], **match: Any) -> list[str]:
    seen: list[str] = []
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()) and row["server"] not in seen:
            seen.append(row["server"])
    return seen


Chart = tuple[str, str]  # (a stable id, the SVG)


def charts(report: dict[str, Any]) -> list[Chart]:
    """Every chart the report's workloads allow, in the page's order."""
    summary = report["summary"]
    main = [r for r in summary if r.get("table") is None]
    steps = [r for r in summary if r.get("table") == "steps"]
    out: list[Chart] = []
    for size in sorted({r["size_bytes"] for r in main if r["workload"] == "rr"}):
        rows = [r for r in main if r["workload"] == "rr" and r["size_bytes"] == size]
        conns = sorted({r["conns"] for r in rows})
        servers = _servers(rows)

        def series(
            figure: str,
            rows: list[Row] = rows,
            conns: list[int] = conns,
            servers: list[str] = servers,
        ) -> dict[str, list[Any]]:
            return {
                s: [_median(_find(rows, server=s, conns=c), figure) for c in conns] for s in servers
            }

        kib = f"{size // 1024} KiB" if size >= 1024 else f"{size} B"
        chart: Callable[..., str] = line_chart if len(conns) > 1 else _bars_by_conns
        out.append(
            (
                f"rr-{size}",
                chart(
                    f"request/response, {kib}: requests/s",
                    conns,
                    series("req_per_s"),
                    "requests/s",
                    "connections",
                ),
            )
        )
        out.append(
            (
                f"rr-cpu-{size}",
                chart(
                    f"server CPU per request, {kib} (lower is better)",
                    conns,
                    series("server_cpu_us_per_req"),
                    "µs of CPU",
                    "connections",
                ),
            )
        )
    simple = (
        ("bulk", "bulk echo, one connection (iperf3: the ceiling)", "mb_per_s", "MB/s"),
        ("udp", "UDP echo: datagrams/s", "req_per_s", "datagrams/s"),
        ("app", "framed app protocol: requests/s", "req_per_s", "requests/s"),
    )
    for workload, title, figure, unit in simple:
        rows = [r for r in main if r["workload"] == workload]
        if rows:
            groups = sorted({r["conns"] for r in rows})
            out.append(
                (
                    workload,
                    bar_chart(
                        title,
                        [f"{c} conn{'s' if c != 1 else ''}" for c in groups],
                        {
                            s: [_median(_find(rows, server=s, conns=c), figure) for c in groups]
                            for s in _servers(rows)
                        },
                        unit,
                    ),
                )
            )
    idle = [r for r in main if r["workload"] == "idle"]
    if idle:
        conns = sorted({r["conns"] for r in idle})
        out.append(
            (
                "idle",
                _bars_by_conns(
                    "idle connections held: server memory",
                    conns,
                    {
                        s: [_median(_find(idle, server=s, conns=c), "server_rss_mb") for c in conns]
                        for s in _servers(idle)
                    },
                    "RSS (MB)",
                    "idle connections",
                ),
            )
        )
    held = [r for r in main if r["workload"] == "hold"]
    if held:
        counts = sorted({r["conns"] for r in held})
        for key, title, figure, unit in (
            (
                "hold-rss",
                "idle connections held: user-space bytes per connection",
                "rss_per_conn_b",
                "bytes",
            ),
            ("hold-p99", "fresh request p99 while they are held", "p99_us", "µs"),
            ("hold-setup", "set-up rate while opening", "setup_per_s", "connections/s"),
        ):
            out.append(
                (
                    key,
                    line_chart(
                        title,
                        counts,
                        {
                            s: [_median(_find(held, server=s, conns=c), figure) for c in counts]
                            for s in _servers(held)
                        },
                        unit,
                        "connections held",
                    ),
                )
            )
    if steps:
        names = _servers(steps)
        for workload, title, figure, unit in (
            ("idle", "the tutorial's steps: idle clients held", "held", "connections held"),
            ("rr", "the tutorial's steps: requests/s (rr 1 KiB)", "req_per_s", "requests/s"),
        ):
            rows = [r for r in steps if r["workload"] == workload]
            if rows:
                out.append(
                    (
                        f"steps-{workload}",
                        bar_chart(
                            title,
                            [STEP_NAMES.get(s, s) for s in names],
                            {
                                "median": [
                                    _median(_find(rows, server=s), figure)
                                    or _plain(_find(rows, server=s), figure)
                                    for s in names
                                ]
                            },
                            unit,
                        ),
                    )
                )
    return out


def _plain(row: Row | None, figure: str) -> tuple[float, float, float] | None:
    if not row or row.get(figure) is None:
        return None
    value = float(row[figure])
    return value, value, value


def _bars_by_conns(
    title: str, conns: list[int], series: dict[str, list[Any]], unit: str, _x: str = ""
) -> str:
    return bar_chart(title, [f"{c:,} conns" for c in conns], series, unit)


def method(report: dict[str, Any]) -> str:
    machine, cpus = report["machine"], report.get("cpus")
    pinned = (
        f"servers pinned to core {cpus['server']}, the load generator to core {cpus['loadgen']}"
        if cpus
        else "not pinned to cores"
    )
    missing = "".join(
        f"<li>{_esc(peer)}: not measured ({_esc(why)})</li>"
        for peer, why in report.get("unavailable", {}).items()
    )
    quick = {
        "smoke": " A smoke run: its figures are not meaningful.",
        "quick": " A quick run (BENCH_QUICK=1): fewer points, one run each.",
    }.get(report.get("mode") or ("smoke" if report.get("quick") else "full"), "")
    return (
        f"<p>Started {_esc(report['started'])}; {report['repeats']} interleaved runs of "
        f"{report['duration_s']} s per workload and server; the median is drawn, the whiskers "
        f"are min and max; {pinned}.{quick}</p>"
        f"<p>Machine: {machine['cores']} cores, kernel {_esc(machine['kernel'])}, Docker "
        f"{_esc(machine['docker'])}; {report.get('wall_s', '?')} s in all.</p>"
        + (f"<ul>{missing}</ul>" if missing else "")
    )


def targets(report: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_esc(t['target'])}</td><td>{_esc(t['value'])}</td>"
        f'<td class="{"met" if t["met"] else "missed"}">{"met" if t["met"] else "not met"}'
        + (f" ({_esc(t['note'])})" if t.get("note") else "")
        + "</td></tr>"
        for t in report.get("targets", [])
    )
    return (
        "<table><thead><tr><th>target (medians)</th><th>this run</th><th></th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        if rows
        else ""
    )


def table(report: dict[str, Any]) -> str:
    """Every summary row: the medians with their spread."""
    figures = ("req_per_s", "mb_per_s", "p99_us", "server_cpu_us_per_req", "server_rss_mb")
    head = "".join(f"<th>{f}</th>" for f in figures)
    body = []
    for row in report["summary"]:
        cells = []
        for figure in figures:
            point = _median(row, figure)
            cells.append(
                "<td></td>"
                if point is None
                else f"<td>{_fmt(point[0])}"
                + (
                    f" <small>({_fmt(point[1])}-{_fmt(point[2])})</small>"
                    if point[2] > point[1]
                    else ""
                )
                + "</td>"
            )
        name = row["workload"] + (" (steps)" if row.get("table") else "")
        body.append(
            f"<tr><td>{_esc(name)}</td><td>{_esc(STEP_NAMES.get(row['server'], row['server']))}"
            f"</td><td>{row['conns']:,}</td><td>{row.get('size_bytes') or ''}</td>"
            + "".join(cells)
            + "</tr>"
        )
    return (
        "<table><thead><tr><th>workload</th><th>server</th><th>conns</th><th>size</th>"
        f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def comparison(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Each row both runs have: old and new medians of the main figures, and new/old."""
    figures = ("req_per_s", "mb_per_s", "server_cpu_us_per_req")
    body = []
    for row in new["summary"]:
        key = {k: row.get(k) for k in ("workload", "server", "conns", "size_bytes", "table")}
        before = _find(old["summary"], **key)
        if before is None:
            continue
        for figure in figures:
            a, b = before.get(figure), row.get(figure)
            if a is None or b is None:
                continue
            change = b / a if a else float("nan")
            body.append(
                f"<tr><td>{_esc(row['workload'])}</td><td>{_esc(row['server'])}</td>"
                f"<td>{row['conns']:,}</td><td>{figure}</td><td>{_fmt(a)}</td><td>{_fmt(b)}"
                f"</td><td>{change:.2f}\N{MULTIPLICATION SIGN}</td></tr>"
            )
    return (
        "<table><thead><tr><th>workload</th><th>server</th><th>conns</th><th>figure</th>"
        "<th>A</th><th>B</th><th>B/A</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1rem; color: #1b1b1b; }
h1 { font-size: 1.3rem; } h2 { font-size: 1.05rem; margin-top: 1.6rem; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr));
  gap: 1rem; }
.compare { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
figure { margin: 0; } figure svg { width: 100%; height: auto; max-width: 560px; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
svg text.title { font-size: 13px; font-weight: 600; }
svg .grid { stroke: #e5e5e5; } svg .whisker { stroke: #111; stroke-width: 1.2; fill: none; }
svg .line { fill: none; stroke-width: 2; }
table { border-collapse: collapse; margin: .5rem 0; font-size: 13px; display: block;
  overflow-x: auto; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: right; white-space: nowrap; }
td:first-child, th:first-child { text-align: left; }
td.met { color: #1a7f37; } td.missed { color: #cf222e; }
"""


def _figures(report: dict[str, Any]) -> str:
    return "".join(
        f'<figure class="chart" id="{_esc(name)}">{svg}</figure>' for name, svg in charts(report)
    )


def page(reports: list[dict[str, Any]], names: list[str]) -> str:
    """One report's page, or two side by side (A, then B)."""
    if len(reports) == 1:
        (report,) = reports
        title = f"Sockets lab benchmark, {report['started']}"
        body = (
            f"<h1>{_esc(title)}</h1>{method(report)}"
            f'<h2>Charts</h2><div class="charts">{_figures(report)}</div>'
            f"<h2>Targets</h2>{targets(report)}<h2>Every measurement</h2>{table(report)}"
        )
    else:
        old, new = reports
        title = f"Sockets lab benchmark: {old['started']} (A) and {new['started']} (B)"
        columns = "".join(
            f"<div><h2>{label}: {_esc(name)}</h2>{method(r)}"
            f'<div class="stack">{_figures(r)}</div>{targets(r)}</div>'
            for label, name, r in (("A", names[0], old), ("B", names[1], new))
        )
        body = (
            f"<h1>{_esc(title)}</h1><h2>Medians, B against A</h2>{comparison(old, new)}"
            f'<div class="compare">{columns}</div>'
        )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n"
    )


def render_files(paths: list[Path]) -> str:
    reports = []
    for path in paths:
        try:
            reports.append(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not a results file ({exc})") from None
    for path, report in zip(paths, reports, strict=True):
        if "summary" not in report or "started" not in report:
            raise ValueError(f"{path}: not a results file of make bench (no summary)")
    return page(reports, [p.name for p in paths])
