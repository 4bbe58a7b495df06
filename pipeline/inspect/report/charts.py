"""Inline SVG charts for the report (bar charts, histograms with a threshold marker); no JavaScript,
no external resources, every label HTML-escaped."""
from __future__ import annotations

import html
import math

import numpy as np

KEPT_COLOUR = "#2b7bba"
REJECTED_COLOUR = "#e8743b"
MARKER_COLOUR = "#c0392b"


def _esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


_CHART_WIDTH = 540


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) >= 10000 or abs(value) < 0.01):
            return f"{value:.3g}"
        return f"{value:.3f}".rstrip("0").rstrip(".") if not value.is_integer() else f"{int(value):,}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _tick(value: float) -> str:
    """An axis label: three significant figures, no exponent below 10^5."""
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return text
    return f"{value:.2e}"


def _figure(svg_body: str, height: int, title: str, caption: str) -> str:
    return (f'<figure><svg class="chart" viewBox="0 0 {_CHART_WIDTH} {height}" width="{_CHART_WIDTH}" '
            f'height="{height}" role="img" aria-label="{_esc(title)}"><title>{_esc(title)}</title>'
            f'{svg_body}</svg><figcaption><b>{_esc(title)}</b> {_esc(caption)}</figcaption></figure>')


def no_data_chart(title: str, caption: str = "") -> str:
    body = (f'<rect x="0" y="0" width="{_CHART_WIDTH}" height="60" fill="#f6f6f6"/>'
            f'<text x="{_CHART_WIDTH // 2}" y="35" text-anchor="middle" class="muted">no data</text>')
    return _figure(body, 60, title, caption or "no data")


def _legend(series: list[tuple[str, str]], x: float, y: float) -> str:
    parts = []
    for name, colour in series:
        parts.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14:.1f}" y="{y:.1f}">{_esc(name)}</text>')
        x += 24 + 7 * len(name)
    return "".join(parts)


def bar_chart(title: str, rows: list[tuple[str, list[float]]], series: list[tuple[str, str]],
              caption: str = "", max_bars: int = 24) -> str:
    """Horizontal stacked bars: one row per label, one segment per series (name, colour)."""
    rows = [(label, [float(v or 0) for v in values]) for label, values in rows]
    if not rows or not any(sum(v) for _, v in rows):
        return no_data_chart(title, caption)
    if len(rows) > max_bars:
        rest = rows[max_bars - 1:]
        other = [sum(v[i] for _, v in rest) for i in range(len(series))]
        rows = rows[:max_bars - 1] + [(f"other ({len(rest)})", other)]
    label_w, right_pad, bar_h, gap, top = 170, 70, 16, 5, 28
    height = top + len(rows) * (bar_h + gap) + 10
    total_max = max(sum(v) for _, v in rows)
    scale = (_CHART_WIDTH - label_w - right_pad) / total_max
    parts = [_legend(series, label_w, 16)] if len(series) > 1 else []
    for i, (label, values) in enumerate(rows):
        y = top + i * (bar_h + gap)
        short = label if len(label) <= 28 else label[:27] + "\u2026"
        parts.append(f'<text x="{label_w - 6}" y="{y + bar_h - 4}" text-anchor="end">'
                     f'<title>{_esc(label)}</title>{_esc(short)}</text>')
        x = float(label_w)
        for value, (name, colour) in zip(values, series):
            w = value * scale
            if w > 0:
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{max(w, 1):.1f}" height="{bar_h}" fill="{colour}">'
                             f'<title>{_esc(label)}: {_esc(name)} {_esc(_fmt(value))}</title></rect>')
            x += w
        text = " / ".join(_fmt(int(v) if float(v).is_integer() else v) for v in values)
        parts.append(f'<text x="{x + 5:.1f}" y="{y + bar_h - 4}">{_esc(text)}</text>')
    return _figure("".join(parts), height, title, caption)


def finite_range(values: np.ndarray) -> tuple[float, float] | None:
    """The smallest and largest finite value, or None when there is none."""
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else None


def histogram_edges(value_range: tuple[float, float] | None, bins: int, log: bool,
                    marker: float | None) -> np.ndarray | None:
    """Shared bin edges over ``value_range`` (the finite min and max of every series) and the marker;
    log-spaced when ``log`` and the range spans more than a factor 20; None when there are no values."""
    if value_range is None:
        return None
    lo, hi = value_range
    if marker is not None and math.isfinite(marker):
        lo, hi = min(lo, marker), max(hi, marker)
    if log and lo > 0 and hi / lo > 20:
        return np.geomspace(lo, hi * 1.0001, bins + 1)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def histogram_counts_chart(title: str, series: list[tuple[str, str, np.ndarray]], edges: np.ndarray | None,
                           caption: str = "", marker: tuple[float, str] | None = None, log_x: bool = False,
                           x_label: str = "") -> str:
    """Overlaid histograms from counts already binned on the shared ``edges`` (``histogram_edges``):
    (name, colour, counts per bin) each, with an optional vertical marker; ``edges`` None: no data."""
    if edges is None:
        return no_data_chart(title, caption)
    marker_value = marker[0] if marker and marker[0] is not None else None
    counts = [c for _, _, c in series]
    left, right, top, bottom = 50, 15, 28, 36
    height = 230
    plot_w, plot_h = _CHART_WIDTH - left - right, height - top - bottom
    ymax = max(int(c.max()) for c in counts) or 1
    n = len(edges) - 1
    bar_w = plot_w / n
    logs = log_x and edges[0] > 0 and not np.allclose(np.diff(edges), edges[1] - edges[0])

    def x_of(value: float) -> float:
        if logs:
            pos = (math.log(value) - math.log(edges[0])) / (math.log(edges[-1]) - math.log(edges[0]))
        else:
            pos = (value - edges[0]) / (edges[-1] - edges[0])
        return left + pos * plot_w

    parts = [_legend([(name, colour) for name, colour, _ in series], left, 16),
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#999"/>',
             f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{ymax:,}</text>',
             f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>']
    for (name, colour, _), c in zip(series, counts):
        for i, count in enumerate(c):
            if count:
                h = plot_h * count / ymax
                parts.append(f'<rect x="{left + i * bar_w:.1f}" y="{top + plot_h - h:.1f}" '
                             f'width="{max(bar_w - 1, 1):.1f}" height="{h:.1f}" fill="{colour}" fill-opacity="0.6">'
                             f'<title>{_esc(name)}: {count:,} in [{_esc(_fmt(float(edges[i])))}, '
                             f'{_esc(_fmt(float(edges[i + 1])))})</title></rect>')
    for i in np.linspace(0, n, 6).round().astype(int):
        x = left + i * bar_w
        parts.append(f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 4}" stroke="#999"/>'
                     f'<text x="{x:.1f}" y="{top + plot_h + 15}" text-anchor="middle">'
                     f'{_esc(_tick(float(edges[i])))}</text>')
    if x_label:
        parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle" class="muted">'
                     f'{_esc(x_label)}</text>')
    if marker_value is not None:
        x = x_of(marker_value)
        parts.append(f'<line class="marker" x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{top + plot_h}" '
                     f'stroke="{MARKER_COLOUR}" stroke-width="2" stroke-dasharray="5,3"/>'
                     f'<text x="{x + 4:.1f}" y="{top + 8}" fill="{MARKER_COLOUR}">'
                     f'{_esc(marker[1])} {_esc(_fmt(float(marker_value)))}</text>')
    return _figure("".join(parts), height, title, caption)
