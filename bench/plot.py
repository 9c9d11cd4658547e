"""Plain SVG charts for the benchmark reports (no third-party packages): a horizontal
bar chart with p50 bars and p90 whiskers, a line chart, and a stacked bar chart.

    import plot
    plot.bars("x.svg", "title", "ms", ["cnet", "docker"], {"attach": [(p50, p90), ...]})
    plot.lines("y.svg", "title", "N", "ms", {"cnet": [(x, y), ...]}, log_x=True)
    plot.stacked("z.svg", "title", "ms", [("label", [("part", value), ...])])
"""

import math
from html import escape

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
FONT = 'font-family="DejaVu Sans, Arial, sans-serif"'


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values covering [low, high]."""
    if high <= low:
        high = low + 1
    raw = (high - low) / max(1, count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks, value = [round(start, 10)], start
    while value < high - step * 1e-9:
        value += step
        ticks.append(round(value, 10))
    return ticks


def label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10 or float(value).is_integer():
        return f"{value:g}"
    return f"{value:.2g}" if abs(value) < 1 else f"{value:.1f}"


class Svg:
    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.items = [f'<rect width="{width}" height="{height}" fill="white"/>']

    def text(self, x, y, content, size=12, anchor="start", weight="normal", fill="#222", rotate=None):
        transform = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate else ""
        self.items.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{fill}" {FONT}{transform}>{escape(str(content))}</text>')

    def line(self, x1, y1, x2, y2, stroke="#222", width=1.0, dash=None):
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        self.items.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                          f'stroke="{stroke}" stroke-width="{width}"{dashes}/>')

    def rect(self, x, y, w, h, fill, title=None):
        tip = f"<title>{escape(title)}</title>" if title else ""
        self.items.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(0, w):.1f}" '
                          f'height="{max(0, h):.1f}" fill="{fill}">{tip}</rect>')

    def polyline(self, points, stroke, width=2.0):
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        self.items.append(f'<polyline points="{coords}" fill="none" stroke="{stroke}" '
                          f'stroke-width="{width}" stroke-linejoin="round"/>')

    def circle(self, x, y, r, fill, title=None):
        tip = f"<title>{escape(title)}</title>" if title else ""
        self.items.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{fill}">{tip}</circle>')

    def save(self, path):
        with open(path, "w") as out:
            out.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" '
                      f'height="{self.height}" viewBox="0 0 {self.width} {self.height}">\n')
            out.write("\n".join(self.items))
            out.write("\n</svg>\n")


def bars(path, title, unit, categories, series, note=None):
    """Horizontal grouped bars: for each category, one bar per series to its p50, with a
    whisker to its p90. series: {name: [(p50, p90) or None per category]}."""
    names = list(series)
    bar_h, gap = 14, 10
    group_h = bar_h * len(names) + gap
    left, right, top = 240, 40, 50
    height = top + group_h * len(categories) + 60 + (16 if note else 0)
    width = 820
    svg = Svg(width, height)
    svg.text(width / 2, 24, title, size=15, anchor="middle", weight="bold")
    high = max((v[1] or v[0]) for s in series.values() for v in s if v) or 1
    ticks = nice_ticks(0, high)
    plot_w = width - left - right
    x_of = lambda v: left + plot_w * v / ticks[-1]
    bottom = top + group_h * len(categories)
    for t in ticks:
        svg.line(x_of(t), top - 4, x_of(t), bottom, stroke="#ddd")
        svg.text(x_of(t), bottom + 16, label(t), size=11, anchor="middle")
    svg.text(left + plot_w / 2, bottom + 34, f"{unit} (bar: p50, whisker: p90)", size=12, anchor="middle")
    for ci, category in enumerate(categories):
        y0 = top + ci * group_h
        svg.text(left - 8, y0 + group_h / 2, category, size=12, anchor="end")
        for si, name in enumerate(names):
            value = series[name][ci]
            if not value:
                continue
            p50, p90 = value
            y = y0 + si * bar_h
            svg.rect(left, y, x_of(p50) - left, bar_h - 2, color(si), f"{category} {name}: p50 {p50:.1f}, p90 {p90:.1f} {unit}")
            if p90 is not None:
                mid = y + (bar_h - 2) / 2
                svg.line(x_of(p50), mid, x_of(p90), mid, stroke="#222")
                svg.line(x_of(p90), mid - 4, x_of(p90), mid + 4, stroke="#222")
            svg.text(x_of(p90 if p90 is not None else p50) + 4, y + bar_h - 4, f"{p50:.1f}", size=10, fill="#444")
    legend(svg, names, left, height - 18 - (16 if note else 0))
    if note:
        svg.text(left, height - 8, note, size=10, fill="#555")
    svg.save(path)


def legend(svg, names, x, y):
    for i, name in enumerate(names):
        svg.rect(x, y - 10, 12, 12, color(i))
        svg.text(x + 16, y, name, size=12)
        x += 24 + 7.5 * len(name)


def lines(path, title, xlabel, ylabel, series, log_x=False, note=None, y_from_zero=True, markers=True):
    """A line chart: series {name: [(x, y), ...]}."""
    width, height = 760, 440
    left, right, top, bottom_margin = 70, 30, 46, 90 + (14 if note else 0)
    svg = Svg(width, height)
    svg.text(width / 2, 24, title, size=15, anchor="middle", weight="bold")
    points = [p for s in series.values() for p in s if p[1] is not None]
    xs = [p[0] for p in points] or [1]
    ys = [p[1] for p in points] or [1]
    fx = (lambda v: math.log10(v)) if log_x else (lambda v: v)
    x_low, x_high = fx(min(xs)), fx(max(xs))
    if x_high == x_low:
        x_high = x_low + 1
    y_ticks = nice_ticks(0 if y_from_zero else min(ys), max(ys))
    plot_w, plot_h = width - left - right, height - top - bottom_margin
    x_of = lambda v: left + plot_w * (fx(v) - x_low) / (x_high - x_low)
    y_of = lambda v: top + plot_h * (1 - (v - y_ticks[0]) / (y_ticks[-1] - y_ticks[0]))
    for t in y_ticks:
        svg.line(left, y_of(t), left + plot_w, y_of(t), stroke="#ddd")
        svg.text(left - 6, y_of(t) + 4, label(t), size=11, anchor="end")
    if log_x:
        x_ticks = [10 ** e * m for e in range(int(math.floor(x_low)), int(math.ceil(x_high)) + 1)
                   for m in (1, 2, 5) if x_low - 1e-9 <= math.log10(10 ** e * m) <= x_high + 1e-9]
    else:
        x_ticks = [t for t in nice_ticks(min(xs), max(xs)) if min(xs) <= t <= max(xs)]
    for t in x_ticks:
        svg.line(x_of(t), top, x_of(t), top + plot_h, stroke="#eee")
        svg.text(x_of(t), top + plot_h + 16, label(t), size=11, anchor="middle")
    svg.line(left, top + plot_h, left + plot_w, top + plot_h)
    svg.line(left, top, left, top + plot_h)
    svg.text(left + plot_w / 2, top + plot_h + 36, xlabel, size=12, anchor="middle")
    svg.text(18, top + plot_h / 2, ylabel, size=12, anchor="middle", rotate=-90)
    for i, (name, pts) in enumerate(series.items()):
        pts = [p for p in pts if p[1] is not None]
        if not pts:
            continue
        svg.polyline([(x_of(x), y_of(y)) for x, y in pts], color(i))
        if markers:
            for x, y in pts:
                svg.circle(x_of(x), y_of(y), 2.5, color(i), f"{name}: {x:g} -> {y:.2f}")
    legend(svg, list(series), left, height - 22 - (14 if note else 0))
    if note:
        svg.text(left, height - 8, note, size=10, fill="#555")
    svg.save(path)


def stacked(path, title, unit, rows, note=None):
    """Horizontal stacked bars: rows [(label, [(part, value), ...])]; parts share colors
    by name across rows."""
    parts = []
    for _, segments in rows:
        for name, _ in segments:
            if name not in parts:
                parts.append(name)
    bar_h, gap = 22, 12
    left, right, top = 150, 40, 50
    legend_rows = math.ceil(len(parts) / 3)
    height = top + (bar_h + gap) * len(rows) + 50 + 18 * legend_rows + (16 if note else 0)
    width = 860
    svg = Svg(width, height)
    svg.text(width / 2, 24, title, size=15, anchor="middle", weight="bold")
    high = max(sum(v for _, v in segments) for _, segments in rows) or 1
    ticks = nice_ticks(0, high)
    plot_w = width - left - right
    x_of = lambda v: left + plot_w * v / ticks[-1]
    bottom = top + (bar_h + gap) * len(rows)
    for t in ticks:
        svg.line(x_of(t), top - 4, x_of(t), bottom, stroke="#ddd")
        svg.text(x_of(t), bottom + 14, label(t), size=11, anchor="middle")
    svg.text(left + plot_w / 2, bottom + 32, unit, size=12, anchor="middle")
    for ri, (row_label, segments) in enumerate(rows):
        y = top + ri * (bar_h + gap)
        svg.text(left - 8, y + bar_h * 0.7, row_label, size=12, anchor="end")
        x = 0.0
        for name, value in segments:
            svg.rect(x_of(x), y, x_of(x + value) - x_of(x), bar_h, color(parts.index(name)),
                     f"{row_label} / {name}: {value:.2f} {unit}")
            x += value
        svg.text(x_of(x) + 4, y + bar_h * 0.7, f"{x:.1f}", size=10, fill="#444")
    y = bottom + 52
    for i, name in enumerate(parts):
        col, row = i % 3, i // 3
        svg.rect(left + col * 230, y + row * 18 - 10, 12, 12, color(i))
        svg.text(left + col * 230 + 16, y + row * 18, name, size=11)
    if note:
        svg.text(left, height - 8, note, size=10, fill="#555")
    svg.save(path)
