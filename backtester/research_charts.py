"""The research reports' charts (plotly): Monte Carlo fans, parameter heatmaps, histograms, bar charts, and the
walk-forward's in-sample against out-of-sample returns and parameter path.

Each function returns the chart's HTML (``report_page.figure_html``: a div and its data, plotly.js is in the page
head). Degenerate input (empty, all NaN) never raises: it gives a "No data" box. Programming errors (a fan frame
without its percentile columns, labels and values of different lengths) raise ValueError.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from backtester.report_page import LOSS_COLOR, STRATEGY_COLOR, figure_html, no_data_html

FAN_COLUMNS: tuple[str, ...] = ("p5", "p25", "p50", "p75", "p95")
_IS_COLOR = "#9aa3ae"


def fan_chart(percentiles: pd.DataFrame, *, div_id: str, title: str, x_title: str = "",
              actual: pd.Series | None = None) -> str:
    """Monte Carlo fan: 5-95 % and 25-75 % bands shaded, the median line, and the backtest's own path if given.

    ``percentiles`` has columns p5..p95 and an index of dates (or step numbers); rows with any NaN are dropped.
    """
    missing = [c for c in FAN_COLUMNS if c not in percentiles.columns]
    if missing:
        raise ValueError(f"fan chart needs columns {list(FAN_COLUMNS)}; missing {missing}")
    frame = percentiles.loc[:, list(FAN_COLUMNS)].apply(pd.to_numeric, errors="coerce").astype(float)
    frame = frame[np.isfinite(frame.to_numpy()).all(axis=1) & frame.index.notna()]
    if frame.empty:
        return no_data_html(div_id, title)
    x = frame.index
    fig = go.Figure()
    for upper, lower, label, alpha in (("p95", "p5", "5–95 % of paths", 0.15), ("p75", "p25", "25–75 % of paths",
                                                                                0.32)):
        fig.add_trace(go.Scatter(x=x, y=frame[upper], mode="lines", line={"width": 0}, showlegend=False,
                                 name=f"{upper}", hovertemplate=f"{upper} %{{y:,.0f}}<extra></extra>"))
        fig.add_trace(go.Scatter(x=x, y=frame[lower], mode="lines", line={"width": 0}, fill="tonexty",
                                 fillcolor=f"rgba(31,78,156,{alpha})", name=label,
                                 hovertemplate=f"{lower} %{{y:,.0f}}<extra></extra>"))
    fig.add_trace(go.Scatter(x=x, y=frame["p50"], mode="lines", name="median path",
                             line={"color": STRATEGY_COLOR, "width": 2},
                             hovertemplate="median %{y:,.0f}<extra></extra>"))
    if actual is not None and len(actual):
        fig.add_trace(go.Scatter(x=actual.index, y=actual.to_numpy(dtype=float), mode="lines", name="the backtest",
                                 line={"color": "#111827", "width": 1.3, "dash": "dot"},
                                 hovertemplate="backtest %{y:,.0f}<extra></extra>"))
    fig.update_layout(title={"text": title, "x": 0.01, "font": {"size": 13.5}}, margin={"t": 70})
    fig.update_yaxes(title_text="equity", tickformat=",.4~s")
    fig.update_xaxes(title_text=x_title)
    return figure_html(fig, div_id, 400)


def heatmap_chart(table: pd.DataFrame, *, div_id: str, title: str, metric_label: str, percent: bool = False) -> str:
    """Parameter heatmap: rows are values of one parameter, columns of another, cells the metric (diverging colours
    around 0, every cell labelled), so a robust plateau reads as a broad patch and a lone spike as one cell."""
    values = table.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float) if not table.empty else np.zeros((0, 0))
    if values.size == 0 or not np.isfinite(values).any():
        return no_data_html(div_id, title)
    scale = float(np.nanmax(np.abs(values))) or 1.0
    text_format = ".1%" if percent else ".2f"
    fig = go.Figure(go.Heatmap(
        z=values, x=[str(c) for c in table.columns], y=[str(i) for i in table.index], zmid=0, zmin=-scale,
        zmax=scale, colorscale="RdYlGn", texttemplate=f"%{{z:{text_format}}}", textfont={"size": 12.5},
        colorbar={"title": {"text": metric_label}, "tickformat": text_format},
        hovertemplate=f"{table.index.name}=%{{y}}<br>{table.columns.name}=%{{x}}<br>{metric_label} "
                      f"%{{z:{text_format}}}<extra></extra>"))
    fig.update_xaxes(title_text=str(table.columns.name or ""), type="category")
    fig.update_yaxes(title_text=str(table.index.name or ""), type="category")
    fig.update_layout(title={"text": title, "x": 0.01, "font": {"size": 13.5}}, margin={"t": 56})
    return figure_html(fig, div_id, max(260, 110 + 42 * len(table.index)), hovermode="closest")


def histogram_chart(values: np.ndarray, *, div_id: str, title: str, marker: float | None = None,
                    marker_label: str = "", x_title: str = "", bins: int = 40) -> str:
    """Histogram of the finite ``values``; ``marker`` (e.g. the point a statistic is measured at) a dashed line."""
    data = np.asarray(values, dtype=float).ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        return no_data_html(div_id, title)
    fig = go.Figure(go.Histogram(x=data, nbinsx=bins, marker={"color": STRATEGY_COLOR, "opacity": 0.75},
                                 name="count"))
    if marker is not None and np.isfinite(marker):
        fig.add_vline(x=float(marker), line={"color": LOSS_COLOR, "width": 2, "dash": "dash"},
                      annotation_text=marker_label, annotation_font_color=LOSS_COLOR)
    fig.update_layout(title={"text": title, "x": 0.01, "font": {"size": 13.5}}, margin={"t": 56}, bargap=0.03)
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text="count")
    return figure_html(fig, div_id, 300, hovermode="closest")


def bar_chart(labels: Sequence[object], values: Sequence[float] | np.ndarray, *, div_id: str, title: str,
              value_suffix: str = "") -> str:
    """Horizontal bars from zero, one row per label, losses red; NaN values keep their row without a bar."""
    numbers = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(dtype=float)
    names = [str(label) for label in labels]
    if len(names) != len(numbers):
        raise ValueError(f"labels and values must have the same length; got {len(names)} and {len(numbers)}")
    if not np.isfinite(numbers).any():
        return no_data_html(div_id, title)
    colors = [LOSS_COLOR if v < 0 else STRATEGY_COLOR for v in np.nan_to_num(numbers)]
    fig = go.Figure(go.Bar(y=names, x=numbers, orientation="h", marker={"color": colors}, name=title,
                           text=[f"{v:,.2f}{value_suffix}" if np.isfinite(v) else "—" for v in numbers],
                           textposition="outside", cliponaxis=False,
                           hovertemplate=f"%{{y}}: %{{x:,.2f}}{value_suffix}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(ticksuffix=value_suffix)
    fig.update_layout(title={"text": title, "x": 0.01, "font": {"size": 13.5}}, margin={"t": 56, "l": 180})
    return figure_html(fig, div_id, 90 + 30 * len(names), hovermode="closest")


def in_vs_out_of_sample_chart(windows: pd.DataFrame) -> str:
    """Per walk-forward window: annual return and Sharpe in sample (the chosen params on the training window)
    next to out of sample (the same params on the following test window)."""
    if windows.empty:
        return no_data_html("wf-is-oos", "no walk-forward windows")
    labels = [f"#{w} · test {s}" for w, s in zip(windows["window"], windows["test_start"], strict=True)]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("Annual return", "Sharpe"))
    for column, name, color, row, show in (
            ("is_annual_return", "in sample (train)", _IS_COLOR, 1, True),
            ("oos_annual_return", "out of sample (test)", STRATEGY_COLOR, 1, True),
            ("is_sharpe", "in sample (train)", _IS_COLOR, 2, False),
            ("oos_sharpe", "out of sample (test)", STRATEGY_COLOR, 2, False)):
        fig.add_trace(go.Bar(x=labels, y=pd.to_numeric(windows[column], errors="coerce"), name=name,
                             marker={"color": color}, legendgroup=name, showlegend=show,
                             hovertemplate=f"{name}: %{{y:{'.1%' if row == 1 else '.2f'}}}<extra></extra>"),
                      row=row, col=1)
    fig.update_yaxes(tickformat=".0%", row=1, col=1)
    fig.update_layout(barmode="group", margin={"t": 56})
    return figure_html(fig, "wf-is-oos", 460)


def parameter_path_chart(windows: pd.DataFrame) -> str:
    """The parameters each window chose, one panel per parameter, window after window (a stable strategy draws
    flat lines; one that jumps around was fitted to noise)."""
    params = [c for c in windows.columns if c.startswith("param_")]
    if windows.empty or not params:
        return no_data_html("wf-param-path", "no chosen parameters")
    fig = make_subplots(rows=len(params), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[p.removeprefix("param_") for p in params])
    x = pd.to_datetime(windows["test_start"])
    for row, column in enumerate(params, start=1):
        fig.add_trace(go.Scatter(x=x, y=windows[column], mode="lines+markers", line={"shape": "hv", "width": 1.6,
                                                                                       "color": STRATEGY_COLOR},
                                 name=column.removeprefix("param_"), showlegend=False,
                                 customdata=windows["window"],
                                 hovertemplate="window %{customdata}, test from %{x|%Y-%m-%d}: %{y}<extra></extra>"),
                      row=row, col=1)
    fig.update_xaxes(title_text="first session of the test window", row=len(params), col=1)
    return figure_html(fig, "wf-param-path", 90 + 150 * len(params), hovermode="closest")

