"""The tear sheet's time-series charts (plotly): equity against the benchmark with the trading-state periods,
drawdown, exposure, rolling Sharpe and the distribution of trade P&L.

Each function returns the chart's HTML (``report_page.figure_html``) or a "No data" box, never raises on empty or
all-NaN input. Dates come in as a DatetimeIndex and are drawn as dates; values are drawn as they are and formatted
by the axes (percent axes for fractions), so hovering shows the exact number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from backtester.performance import drawdown_series
from backtester.report_page import (
    BENCHMARK_COLOR,
    GAIN_COLOR,
    LOSS_COLOR,
    STRATEGY_COLOR,
    figure_html,
    no_data_html,
)

ROLLING_SHARPE_SESSIONS = 126
_STATE_STYLE = {"REDUCING": ("#d97706", 0.12), "HALTED": (LOSS_COLOR, 0.10)}


def line_chart(series: pd.Series, *, div_id: str, name: str, benchmark: pd.Series | None = None,
               height_px: int = 360) -> str:
    """One equity-like line (and an optional benchmark rebased to its first value) over dates."""
    clean = pd.Series(series, dtype=float).dropna().sort_index()
    if clean.empty:
        return no_data_html(div_id, name)
    fig = go.Figure()
    rebased = rebase(benchmark, clean)
    if rebased is not None:
        fig.add_trace(go.Scatter(x=rebased.index, y=rebased.to_numpy(), name=str(rebased.name or "Benchmark"),
                                 mode="lines", line={"color": BENCHMARK_COLOR, "width": 1.4}))
    fig.add_trace(go.Scatter(x=clean.index, y=clean.to_numpy(), name=name, mode="lines",
                             line={"color": STRATEGY_COLOR, "width": 1.8}))
    fig.update_yaxes(tickformat=",.4~s", title_text="equity")
    return figure_html(fig, div_id, height_px)


def equity_chart(equity: pd.Series, benchmark: pd.Series | None,
                 state_changes: Sequence[Mapping[str, str]] = ()) -> str:
    """Strategy equity over the benchmark, with REDUCING periods shaded amber and the HALTED period red."""
    eq = pd.Series(equity, dtype=float).dropna().sort_index()
    if eq.empty:
        return no_data_html("equity-chart", "equity")
    fig = go.Figure()
    rebased = rebase(benchmark, eq)
    if rebased is not None:
        fig.add_trace(go.Scatter(x=rebased.index, y=rebased.to_numpy(), name=str(rebased.name or "Benchmark"),
                                 mode="lines", line={"color": BENCHMARK_COLOR, "width": 1.4}))
    fig.add_trace(go.Scatter(x=eq.index, y=eq.to_numpy(), name="Strategy", mode="lines",
                             line={"color": STRATEGY_COLOR, "width": 1.8}))
    _add_state_periods(fig, eq, state_changes)
    fig.update_yaxes(tickformat=",.4~s", title_text="equity")
    return figure_html(fig, "equity-chart", 420)


def state_periods(state_changes: Sequence[Mapping[str, str]], last_date: pd.Timestamp
                  ) -> list[tuple[str, pd.Timestamp, pd.Timestamp]]:
    """(state, first day, last day) of every REDUCING or HALTED stretch; an open stretch runs to ``last_date``."""
    periods = []
    changes = sorted(state_changes, key=lambda c: str(c.get("date")))
    for i, change in enumerate(changes):
        state = str(change.get("to"))
        if state not in _STATE_STYLE:
            continue
        start = pd.Timestamp(str(change["date"]))
        end = pd.Timestamp(str(changes[i + 1]["date"])) if i + 1 < len(changes) else pd.Timestamp(last_date)
        periods.append((state, start, max(start, end)))
    return periods


def shade_state_periods(fig: go.Figure, periods: Sequence[tuple[str, pd.Timestamp, pd.Timestamp]]) -> None:
    """REDUCING amber and HALTED red behind the lines, a dotted line and the state's name where each begins."""
    for i, (state, start, end) in enumerate(periods):
        color, opacity = _STATE_STYLE[state]
        fig.add_vrect(x0=start, x1=end, fillcolor=color, opacity=opacity, layer="below", line_width=0)
        fig.add_vline(x=start, line={"color": color, "width": 1.5, "dash": "dot"})
        fig.add_annotation(x=start, y=1.0 - 0.07 * (i % 2), yref="paper", text=state, showarrow=False,
                           xanchor="left", yanchor="top", font={"color": color, "size": 11.5},
                           bgcolor="rgba(255,255,255,0.85)")  # alternate rows: periods close together stay legible


def _add_state_periods(fig: go.Figure, eq: pd.Series, state_changes: Sequence[Mapping[str, str]]) -> None:
    periods = state_periods(state_changes, eq.index[-1])
    shade_state_periods(fig, periods)
    for state in _STATE_STYLE:
        starts = [start for s, start, _ in periods if s == state]
        if not starts:
            continue
        at = eq.index.searchsorted(pd.DatetimeIndex(starts)).clip(0, len(eq) - 1)
        fig.add_trace(go.Scatter(
            x=starts, y=eq.to_numpy()[at], mode="markers", name=f"{state} (trading state)",
            marker={"symbol": "x" if state == "HALTED" else "diamond", "size": 11, "color": _STATE_STYLE[state][0]},
            hovertemplate=f"{state} from %{{x|%Y-%m-%d}}<extra></extra>"))


def drawdown_chart(equity: pd.Series) -> str:
    dd = drawdown_series(pd.Series(equity, dtype=float))
    if dd.empty:
        return no_data_html("drawdown-chart", "drawdown")
    fig = go.Figure(go.Scatter(x=dd.index, y=dd.to_numpy(), name="Drawdown", mode="lines", fill="tozeroy",
                               line={"color": LOSS_COLOR, "width": 1.1}, fillcolor="rgba(192,57,43,0.25)"))
    fig.update_yaxes(tickformat=".1%", rangemode="tozero", title_text="below peak")
    return figure_html(fig, "drawdown-chart", 230)


def exposure_chart(equity: pd.Series, gross_exposure: pd.Series | None) -> str:
    """Gross exposure as a fraction of equity at each close (1.0 = fully invested, above 1 = leverage)."""
    eq = pd.Series(equity, dtype=float).dropna().sort_index()
    if gross_exposure is None or eq.empty:
        return no_data_html("exposure-chart", "gross exposure was not recorded")
    ratio = (pd.Series(gross_exposure, dtype=float).reindex(eq.index).abs() / eq).replace([np.inf, -np.inf], np.nan)
    fig = go.Figure(go.Scatter(x=ratio.index, y=ratio.to_numpy(), name="Gross exposure / equity", mode="lines",
                               fill="tozeroy", line={"color": "#6b4fbb", "width": 1.1},
                               fillcolor="rgba(107,79,187,0.18)"))
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", title_text="of equity")
    return figure_html(fig, "exposure-chart", 230)


def rolling_sharpe(equity: pd.Series, window: int = ROLLING_SHARPE_SESSIONS, periods_per_year: int = 252
                   ) -> pd.Series:
    """Annualised Sharpe (risk-free 0) of the last ``window`` daily returns at each session; NaN until full."""
    returns = pd.Series(equity, dtype=float).dropna().sort_index().pct_change()
    mean = returns.rolling(window, min_periods=window).mean()
    std = returns.rolling(window, min_periods=window).std(ddof=1)
    return (mean / std.where(std > 1e-12) * np.sqrt(periods_per_year)).rename("rolling_sharpe")


def rolling_sharpe_chart(equity: pd.Series, window: int = ROLLING_SHARPE_SESSIONS) -> str:
    sharpe = rolling_sharpe(equity, window).dropna()
    if sharpe.empty:
        return no_data_html("rolling-sharpe-chart", f"fewer than {window} sessions")
    fig = go.Figure(go.Scatter(x=sharpe.index, y=sharpe.to_numpy(), name=f"Sharpe, last {window} sessions",
                               mode="lines", line={"color": STRATEGY_COLOR, "width": 1.3}))
    fig.add_hline(y=0, line={"color": "#9aa3ae", "width": 1})
    fig.update_yaxes(title_text="annualised")
    return figure_html(fig, "rolling-sharpe-chart", 230)


def trade_pnl_chart(trades: pd.DataFrame, bins: int = 40) -> str:
    """Histogram of round-trip P&L in money: losing bins red, winning bins green, a line at zero."""
    pnl = pd.to_numeric(trades.get("pnl", pd.Series(dtype=float)), errors="coerce").dropna().to_numpy(dtype=float)
    if pnl.size == 0:
        return no_data_html("trade-pnl-chart", "no closed trades")
    edges = _edges_through_zero(float(pnl.min()), float(pnl.max()), min(bins, max(5, pnl.size)))
    counts, _ = np.histogram(pnl, bins=edges)
    centers, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    colors = [GAIN_COLOR if c > 0 else LOSS_COLOR for c in centers]
    fig = go.Figure(go.Bar(x=centers, y=counts, width=widths, marker={"color": colors, "opacity": 0.8},
                           name="Round trips", customdata=np.c_[edges[:-1], edges[1:]],
                           hovertemplate="P&L %{customdata[0]:,.0f} to %{customdata[1]:,.0f}: %{y} trades"
                                         "<extra></extra>"))
    fig.add_vline(x=0, line={"color": "#17202b", "width": 1, "dash": "dot"})
    fig.update_layout(bargap=0.02)
    fig.update_xaxes(title_text="P&L per round trip (net of commissions)", tickformat=",.0f")
    fig.update_yaxes(title_text="round trips")
    return figure_html(fig, "trade-pnl-chart", 280, hovermode="closest")


def _edges_through_zero(low: float, high: float, bins: int) -> np.ndarray:
    """About ``bins`` equal bins covering [low, high] and 0, with 0 on an edge: no bin mixes wins and losses."""
    low, high = min(low, 0.0), max(high, 0.0)
    width = (high - low) / bins if high > low else 1.0
    return np.arange(np.floor(low / width), np.ceil(high / width) + 1) * width


def rebase(benchmark: pd.Series | None, equity: pd.Series) -> pd.Series | None:
    """The benchmark over the equity's dates, scaled to start at the equity's first value."""
    if benchmark is None or equity.empty:
        return None
    clean = pd.Series(benchmark, dtype=float).dropna().sort_index()
    clean = clean[(clean.index >= equity.index[0]) & (clean.index <= equity.index[-1])]
    if clean.empty or clean.iloc[0] == 0:
        return None
    return (clean / clean.iloc[0] * float(equity.iloc[0])).rename(benchmark.name)
