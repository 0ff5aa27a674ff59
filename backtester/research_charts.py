"""Inline SVG charts for the research reports: Monte Carlo fan chart, parameter heatmap, histogram, bar chart.

Same contract as the tear sheet's charts in ``backtester.report``: each function returns one self-contained
``<svg>`` string (no JavaScript, no external assets, no dependencies) that opens identically years later. Every
element carries presentation attributes (colours, font sizes), so a chart renders correctly on its own; the class
names (``grid``, ``axis``, ``tick``, ``legend``) let a page stylesheet restyle it, since page CSS outranks
presentation attributes. Text from the caller (titles, labels, ids) is escaped. Degenerate input (empty, all nan)
never raises: it renders a "No data" chart; nan cells are drawn as blank cells or skipped bars. Tick placement and
number labels come from ``backtester.report`` so research and backtest charts read the same way.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from backtester.report import MAX_SVG_POINTS, _compact_labels, _date_ticks, _nice_ticks, _Plot, _svg

log = logging.getLogger(__name__)

FAN_COLUMNS: tuple[str, ...] = ("p5", "p25", "p50", "p75", "p95")
_BLUE = "#1f4e9c"
_RED = "#c0392b"
_MUTED = "#5f6b7a"
_INK = "#17202b"
_GRID = "#e8ebf0"
_AXIS = "#9aa3ae"
_POSITIVE_RGB = "22,140,72"
_NEGATIVE_RGB = "200,40,40"


def svg_fan_chart(
    percentiles: pd.DataFrame, *, chart_id: str, title: str, width: int = 1200, height: int = 360,
) -> str:
    """Monte Carlo fan: 5-95 % and 25-75 % bands shaded, median line, value and time ticks.

    ``percentiles`` has columns p5, p25, p50, p75, p95 (``monte_carlo.FanChart.to_frame()``) and an index of day
    numbers or dates. Rows with any nan are dropped; long frames are thinned to ~``MAX_SVG_POINTS`` evenly spaced
    rows (bands are smooth, so nothing visible is lost). Missing columns are a programming error (ValueError).
    """
    if percentiles.empty:
        return _no_data(chart_id, title, width, height)
    missing = [c for c in FAN_COLUMNS if c not in percentiles.columns]
    if missing:
        raise ValueError(f"fan chart needs columns {list(FAN_COLUMNS)}; missing {missing}")
    frame = percentiles.loc[:, list(FAN_COLUMNS)].apply(pd.to_numeric, errors="coerce").astype(float)
    frame = frame[np.isfinite(frame.to_numpy()).all(axis=1) & frame.index.notna()]
    if frame.empty:
        return _no_data(chart_id, title, width, height)
    if len(frame) > MAX_SVG_POINTS:
        frame = frame.iloc[np.unique(np.linspace(0, len(frame) - 1, MAX_SVG_POINTS).astype(int))]
    x_values, x_ticks = _x_axis(frame.index)
    ticks = _nice_ticks(float(frame.to_numpy().min()), float(frame.to_numpy().max()))
    plot = _Plot(width, height, float(x_values[0]), float(x_values[-1]), ticks[0], ticks[-1], top=34)
    xs = [plot.x(v) for v in x_values]

    def band(upper: str, lower: str, opacity: float) -> str:
        top = [f"{x:.1f},{plot.y(v):.1f}" for x, v in zip(xs, frame[upper], strict=True)]
        bottom = [f"{x:.1f},{plot.y(v):.1f}" for x, v in zip(xs, frame[lower], strict=True)]
        return (f'<polygon points="{" ".join(top + bottom[::-1])}" fill="{_BLUE}" fill-opacity="{opacity}" '
                f'stroke="none"/>')

    median = " ".join(f"{x:.1f},{plot.y(v):.1f}" for x, v in zip(xs, frame["p50"], strict=True))
    parts = [
        _value_axis(plot, ticks, _compact_labels(ticks)),
        _x_tick_marks(plot, x_ticks, axis_label=str(frame.index.name or "")),
        band("p95", "p5", 0.14),
        band("p75", "p25", 0.30),
        f'<polyline points="{median}" fill="none" stroke="{_BLUE}" stroke-width="1.8" stroke-linejoin="round"/>',
        _legend(plot, [("5–95 %", 0.14), ("25–75 %", 0.30), ("median", 1.0)]),
    ]
    return _svg(chart_id, title, width, height, parts)


def svg_heatmap(
    table: pd.DataFrame, *, chart_id: str, title: str, metric_name: str, decimals: int = 2,
) -> str:
    """Parameter-sweep heatmap: rows are values of parameter A, columns of parameter B, cells the metric.

    Colours diverge around 0 (green above, red below, intensity by |value| over the largest |value|), so a robust
    plateau reads as a broad patch and a lone spike as one dark cell. Every cell prints its value with
    ``decimals`` decimals; nan or non-numeric cells are grey and show "—". Axis titles are the index and column
    names (parameter names), the metric name is the legend.
    """
    cell_w, cell_h, left, top, bottom = 76, 30, 130, 58, 44
    if table.empty:
        return _no_data(chart_id, title, 600, 200)
    values = table.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    scale = float(np.max(np.abs(finite))) if finite.size else 0.0
    n_rows, n_cols = values.shape
    width, height = left + n_cols * cell_w + 24, top + n_rows * cell_h + bottom
    parts = [
        _text(left + n_cols * cell_w / 2, 16, str(table.columns.name or ""), anchor="middle", size=12.5,
              fill=_INK, css="legend"),
        _text(18, top + n_rows * cell_h / 2, str(table.index.name or ""), anchor="middle", size=12.5, fill=_INK,
              css="legend", extra=f'transform="rotate(-90 18 {top + n_rows * cell_h / 2:.1f})"'),
    ]
    for j, column in enumerate(table.columns):
        parts.append(_text(left + (j + 0.5) * cell_w, top - 10, _label(column), anchor="middle"))
    for i, row in enumerate(table.index):
        y = top + i * cell_h
        parts.append(_text(left - 8, y + cell_h / 2 + 4, _label(row), anchor="end"))
        for j in range(n_cols):
            parts.append(_heat_cell(left + j * cell_w, y, cell_w, cell_h, values[i, j], scale, decimals))
    parts.append(_text(left, height - 16, f"Colour: {metric_name} (green > 0 > red)", size=12.5, fill=_INK,
                       css="legend"))
    return _svg(chart_id, title, width, height, parts)


def svg_histogram(
    values: np.ndarray,
    *,
    chart_id: str,
    title: str,
    bins: int = 40,
    marker: float | None = None,
    width: int = 900,
    height: int = 300,
) -> str:
    """Histogram of the finite ``values`` with count ticks; ``marker`` (e.g. the observed statistic) is a red line.

    The range is widened to include the marker, so a value far outside the resampled distribution stays visible.
    """
    data = np.asarray(values, dtype=float).ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        return _no_data(chart_id, title, width, height)
    show_marker = marker is not None and math.isfinite(marker)
    low, high = float(data.min()), float(data.max())
    if show_marker:
        low, high = min(low, float(marker)), max(high, float(marker))
    if high <= low:
        pad = abs(low) * 0.01 or 0.5
        low, high = low - pad, high + pad
    counts, edges = np.histogram(data, bins=max(1, int(bins)), range=(low, high))
    count_ticks = _nice_ticks(0.0, float(counts.max()), max_ticks=5)
    plot = _Plot(width, height, low, high, 0.0, count_ticks[-1], left=56, top=28)
    x_ticks = [t for t in _nice_ticks(low, high, max_ticks=8) if low <= t <= high]
    parts = [
        _value_axis(plot, count_ticks, [f"{t:,.0f}" for t in count_ticks]),
        _x_tick_marks(plot, list(zip(x_ticks, _compact_labels(x_ticks) if x_ticks else [], strict=True))),
    ]
    base = plot.y(0.0)
    for count, lo, hi in zip(counts, edges[:-1], edges[1:], strict=True):
        if count:
            x0, x1, y = plot.x(lo), plot.x(hi), plot.y(float(count))
            parts.append(f'<rect x="{x0 + 0.5:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 1, 0.5):.1f}" '
                         f'height="{base - y:.1f}" fill="{_BLUE}" fill-opacity="0.75"/>')
    if show_marker:
        x = plot.x(float(marker))
        parts.append(f'<line x1="{x:.1f}" y1="{plot.top}" x2="{x:.1f}" y2="{base:.1f}" stroke="{_RED}" '
                     f'stroke-width="2" stroke-dasharray="5 3"/>')
        anchor = "end" if x > width * 0.8 else "start"
        parts.append(_text(x + (-6 if anchor == "end" else 6), plot.top + 2, _label(float(marker)), anchor=anchor,
                           fill=_RED, css="legend"))
    return _svg(chart_id, title, width, height, parts)


def svg_bar_chart(
    labels: Sequence[object], values: Sequence[float] | np.ndarray, *, chart_id: str, title: str, width: int = 900,
) -> str:
    """Horizontal bars from zero, one row per label (long labels stay readable), value printed at each bar's end.

    Negative values are red. A nan value keeps its row with "—" and no bar. ``labels`` and ``values`` must have
    the same length (ValueError otherwise).
    """
    numbers = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(dtype=float)
    names = [str(label) for label in labels]
    if len(names) != len(numbers):
        raise ValueError(f"labels and values must have the same length; got {len(names)} and {len(numbers)}")
    row_h, top, bottom = 26, 14, 34
    height = top + max(len(names), 1) * row_h + bottom
    finite = numbers[np.isfinite(numbers)]
    if finite.size == 0:
        return _no_data(chart_id, title, width, height)
    left = min(260, 16 + 7 * max(len(n) for n in names))
    ticks = _nice_ticks(min(0.0, float(finite.min())), max(0.0, float(finite.max())), max_ticks=6)
    plot = _Plot(width, height, ticks[0], ticks[-1], 0.0, 1.0, left=left, right=70, top=top, bottom=bottom)
    parts = [_vertical_grid(plot, ticks), _x_tick_marks(plot, list(zip(ticks, _compact_labels(ticks), strict=True)))]
    zero = plot.x(0.0)
    for i, (name, value) in enumerate(zip(names, numbers, strict=True)):
        y = top + i * row_h
        parts.append(_text(left - 8, y + row_h / 2 + 4, name, anchor="end", fill=_INK))
        if not math.isfinite(value):
            parts.append(_text(zero + 6, y + row_h / 2 + 4, "—"))
            continue
        x = plot.x(value)
        color = _BLUE if value >= 0 else _RED
        parts.append(f'<rect x="{min(x, zero):.1f}" y="{y + 4}" width="{abs(x - zero):.1f}" height="{row_h - 8}" '
                     f'fill="{color}" fill-opacity="0.8"/>')
        anchor, offset = ("start", 6) if value >= 0 else ("end", -6)
        parts.append(_text(x + offset, y + row_h / 2 + 4, _label(float(value)), anchor=anchor, fill=_INK))
    parts.append(f'<line class="axis" x1="{zero:.1f}" y1="{top}" x2="{zero:.1f}" y2="{height - bottom}" '
                 f'stroke="{_AXIS}"/>')
    return _svg(chart_id, title, width, height, parts)


# --- pieces ------------------------------------------------------------------------------------------------------


def _no_data(chart_id: str, title: str, width: int, height: int) -> str:
    return _svg(chart_id, title, width, height,
                [_text(width / 2, height / 2, "No data", anchor="middle", size=14, css="empty")])


def _text(x: float, y: float, content: str, *, anchor: str = "start", size: float = 12, fill: str = _MUTED,
          css: str = "tick", extra: str = "") -> str:
    extra_attr = f" {extra}" if extra else ""
    return (f'<text class="{css}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
            f'fill="{fill}"{extra_attr}>{html.escape(content)}</text>')


def _value_axis(plot: _Plot, ticks: list[float], labels: list[str]) -> str:
    """Horizontal grid lines with value labels on the left."""
    x_left, x_right = plot.left, plot.width - plot.right
    parts = []
    for value, label in zip(ticks, labels, strict=True):
        y = plot.y(value)
        parts.append(f'<line class="grid" x1="{x_left}" y1="{y:.1f}" x2="{x_right}" y2="{y:.1f}" '
                     f'stroke="{_GRID}"/>')
        parts.append(_text(x_left - 8, y + 4, label, anchor="end"))
    return "".join(parts)


def _vertical_grid(plot: _Plot, ticks: list[float]) -> str:
    y0, y1 = plot.top, plot.height - plot.bottom
    return "".join(f'<line class="grid" x1="{plot.x(t):.1f}" y1="{y0}" x2="{plot.x(t):.1f}" y2="{y1}" '
                   f'stroke="{_GRID}"/>' for t in ticks)


def _x_tick_marks(plot: _Plot, ticks: list[tuple[float, str]], axis_label: str = "") -> str:
    """Bottom axis line with tick marks and labels at (position in plot units, label) pairs."""
    y_axis = plot.height - plot.bottom
    parts = [f'<line class="axis" x1="{plot.left}" y1="{y_axis}" x2="{plot.width - plot.right}" y2="{y_axis}" '
             f'stroke="{_AXIS}"/>']
    for value, label in ticks:
        x = plot.x(value)
        parts.append(f'<line class="axis" x1="{x:.1f}" y1="{y_axis}" x2="{x:.1f}" y2="{y_axis + 5}" '
                     f'stroke="{_AXIS}"/>')
        parts.append(_text(x, y_axis + 19, label, anchor="middle"))
    if axis_label:
        parts.append(_text(plot.width - plot.right, y_axis - 6, axis_label, anchor="end"))
    return "".join(parts)


def _x_axis(index: pd.Index) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Plot positions of the index and its ticks: calendar ticks for dates, round numbers for day counts."""
    if isinstance(index, pd.DatetimeIndex):
        stamps = index.asi8.astype(float)
        ticks = _date_ticks(index[0], index[-1]) if len(index) > 1 else []
        return stamps, [(float(stamp.value), label) for stamp, label in ticks]
    numeric = pd.to_numeric(pd.Series(index), errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(numeric)) or np.any(np.diff(numeric) <= 0):
        numeric = np.arange(len(index), dtype=float)  # labels that are not increasing numbers: plot by position
    low, high = float(numeric[0]), float(numeric[-1])
    ticks = [t for t in _nice_ticks(low, high, max_ticks=11) if low <= t <= high]
    return numeric, list(zip(ticks, _compact_labels(ticks) if ticks else [], strict=True))


def _legend(plot: _Plot, entries: list[tuple[str, float]]) -> str:
    """Swatches in the top margin, right-aligned, so they never cover the fan."""
    widths = [34 + 7 * len(name) for name, _ in entries]
    x = plot.width - plot.right - sum(widths)
    parts = []
    for (name, opacity), entry_width in zip(entries, widths, strict=True):
        if opacity >= 1.0:
            parts.append(f'<line x1="{x}" y1="12" x2="{x + 20}" y2="12" stroke="{_BLUE}" stroke-width="2.5"/>')
        else:
            parts.append(f'<rect x="{x}" y="6" width="20" height="12" fill="{_BLUE}" fill-opacity="{opacity}"/>')
        parts.append(_text(x + 26, 16, name, size=12.5, fill=_INK, css="legend"))
        x += entry_width
    return "".join(parts)


def _heat_cell(x: float, y: float, w: float, h: float, value: float, scale: float, decimals: int) -> str:
    if not math.isfinite(value):
        fill, alpha, shown, ink = "#f1f3f6", 1.0, "—", _MUTED
    elif value == 0 or scale <= 0:
        fill, alpha, shown, ink = "#f1f3f6", 1.0, f"{value:,.{decimals}f}", _INK
    else:
        alpha = 0.08 + 0.72 * min(1.0, abs(value) / scale)
        fill = f"rgb({_POSITIVE_RGB if value > 0 else _NEGATIVE_RGB})"
        shown = f"{round(value, decimals) + 0.0:,.{decimals}f}"  # + 0.0: a tiny negative prints 0.00, not -0.00
        ink = "#ffffff" if alpha > 0.55 else _INK
    return (f'<rect x="{x + 1:.1f}" y="{y + 1:.1f}" width="{w - 2:.1f}" height="{h - 2:.1f}" rx="3" '
            f'fill="{fill}" fill-opacity="{alpha:.2f}"/>'
            + _text(x + w / 2, y + h / 2 + 4, shown, anchor="middle", fill=ink, css="cell"))


def _label(value: object) -> str:
    """Axis or value label: integers as is, floats to 4 significant digits (no float noise like 0.30000000004)."""
    if isinstance(value, bool | np.bool_):
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            return "—"
        return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4g}"
    return str(value)
