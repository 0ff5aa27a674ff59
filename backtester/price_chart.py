"""Trades on price: one chart, a dropdown to pick the symbol, its close with entries, exits and stops on it.

Per symbol the chart holds up to six traces: the close, entries (triangle up for a long, down for a short), exits
(coloured by the round trip's P&L), stop levels (a dashed segment from the day the stop was placed to the day it
filled, was cancelled, or the end of the run while still open), stop fills, and exits that filled as stop orders
(fills with ``order_type`` STP) when no stops frame is given. The dropdown (plotly ``updatemenus``) shows one
symbol's traces at a time. Symbols are ordered by number of round trips; past ``MAX_SYMBOLS`` the rest are named
under the chart and left to trades.csv, so a 500-symbol run does not write a 50 MB page.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from backtester.report_charts import shade_state_periods, state_periods
from backtester.report_page import GAIN_COLOR, LOSS_COLOR, figure_html, no_data_html

MAX_SYMBOLS = 40
STOP_COLUMNS: tuple[str, ...] = ("symbol", "strategy_id", "side", "quantity", "stop_price", "placed_date",
                                 "closed_date", "outcome", "fill_price")  # fmt: skip
_STOP_COLOR = "#d97706"


def trades_on_price_html(closes: pd.DataFrame | None, trades: pd.DataFrame, fills: pd.DataFrame | None = None,
                         stops: pd.DataFrame | None = None,
                         state_changes: Sequence[Mapping[str, str]] = ()) -> str:
    """The chart with its symbol picker, or a "No data" box when there are no closes. ``state_changes`` (the
    summary's ``trading_state_changes``) shade the REDUCING and HALTED periods, as on the equity chart."""
    if closes is None or closes.empty:
        return no_data_html("price-chart", "closes were not given to the report")
    symbols = _symbols_to_show(closes, trades, stops)
    fig, groups = go.Figure(), []
    for symbol in symbols[:MAX_SYMBOLS]:
        traces = _symbol_traces(symbol, closes[symbol], trades, fills, stops)
        groups.append(len(traces))
        for trace in traces:
            trace.visible = not groups[:-1]
            fig.add_trace(trace)
    _add_picker(fig, symbols[:MAX_SYMBOLS], groups)
    shade_state_periods(fig, state_periods(state_changes, closes.index[-1]))
    fig.update_yaxes(title_text="close", tickformat=",.2f")
    fig.add_annotation(text="Symbol", x=0, xref="paper", xanchor="left", y=1.13, yref="paper", yanchor="middle",
                       showarrow=False, font={"size": 12.5, "color": "#5f6b7a"})
    more = ""
    if len(symbols) > MAX_SYMBOLS:
        rest = ", ".join(html.escape(s) for s in symbols[MAX_SYMBOLS:])
        more = f'<p class="muted">{len(symbols) - MAX_SYMBOLS} more symbols (fewest trades) not drawn: {rest}</p>'
    return figure_html(fig, "price-chart", 460, hovermode="closest") + more


def _symbols_to_show(closes: pd.DataFrame, trades: pd.DataFrame, stops: pd.DataFrame | None) -> list[str]:
    """Symbols with the most round trips first, then those with only stops, then the untraded (by name)."""
    counts = trades["symbol"].astype(str).value_counts() if not trades.empty and "symbol" in trades else pd.Series()
    stop_names = set(stops["symbol"].astype(str)) if stops is not None and not stops.empty else set()
    names = [str(c) for c in closes.columns]
    return sorted(names, key=lambda s: (-int(counts.get(s, 0)), s not in stop_names, s))


def _symbol_traces(symbol: str, close: pd.Series, trades: pd.DataFrame, fills: pd.DataFrame | None,
                   stops: pd.DataFrame | None) -> list[go.Scatter]:
    close = pd.Series(close, dtype=float).dropna()
    traces = [go.Scatter(x=close.index, y=np.round(close.to_numpy(), 4), name=f"{symbol} close", mode="lines",
                         line={"color": "#4b5563", "width": 1.2}, hovertemplate="%{x|%Y-%m-%d} close %{y:,.2f}"
                                                                                "<extra></extra>")]
    mine = trades[trades["symbol"].astype(str) == symbol] if not trades.empty and "symbol" in trades else trades
    if not mine.empty:
        traces += [_entries(mine), _exits(mine)]
    symbol_stops = None if stops is None or stops.empty else stops[stops["symbol"].astype(str) == symbol]
    if symbol_stops is not None and not symbol_stops.empty:
        traces += _stop_traces(symbol_stops, close.index[-1] if len(close) else None)
    elif fills is not None and not fills.empty and "order_type" in fills:
        stop_fills = fills[(fills["symbol"].astype(str) == symbol) & (fills["order_type"].astype(str) == "STP")]
        if not stop_fills.empty:
            traces.append(go.Scatter(
                x=pd.to_datetime(stop_fills["date"]), y=stop_fills["price"], name="Stop exits", mode="markers",
                marker={"symbol": "x", "size": 11, "color": _STOP_COLOR, "line": {"width": 1}},
                customdata=np.c_[stop_fills["side"].astype(str), stop_fills["quantity"]],
                hovertemplate="stop fill %{customdata[0]} %{customdata[1]:,.0f} @ %{y:,.2f}<extra></extra>"))
    return traces


def _entries(trades: pd.DataFrame) -> go.Scatter:
    quantity = trades["quantity"].astype(float)
    side = np.where(quantity > 0, "Buy", "Sell short")
    return go.Scatter(
        x=pd.to_datetime(trades["entry_date"]), y=trades["entry_price"], name="Entries", mode="markers",
        marker={"symbol": np.where(quantity > 0, "triangle-up", "triangle-down"), "size": 11, "color": "#1f4e9c",
                "line": {"color": "white", "width": 1}},
        customdata=np.c_[side, quantity.abs()],
        hovertemplate="%{x|%Y-%m-%d} entry: %{customdata[0]} %{customdata[1]:,.0f} @ %{y:,.2f}<extra></extra>")


def _exits(trades: pd.DataFrame) -> go.Scatter:
    quantity = trades["quantity"].astype(float)
    pnl = trades["pnl"].astype(float)
    side = np.where(quantity > 0, "Sell", "Buy to cover")
    return go.Scatter(
        x=pd.to_datetime(trades["exit_date"]), y=trades["exit_price"], name="Exits", mode="markers",
        marker={"symbol": np.where(quantity > 0, "triangle-down", "triangle-up"), "size": 11,
                "color": np.where(pnl >= 0, GAIN_COLOR, LOSS_COLOR), "line": {"color": "white", "width": 1}},
        customdata=np.c_[side, quantity.abs(), pnl, trades["return_pct"].astype(float), trades["bars_held"]],
        hovertemplate="%{x|%Y-%m-%d} exit: %{customdata[0]} %{customdata[1]:,.0f} @ %{y:,.2f}<br>"
                      "P&L %{customdata[2]:,.2f} (%{customdata[3]:.2f}%), held %{customdata[4]} sessions"
                      "<extra></extra>")


def _stop_traces(stops: pd.DataFrame, last_date: pd.Timestamp | None) -> list[go.Scatter]:
    """Dashed stop levels (None-separated segments in one trace) and the fills of the stops that triggered."""
    xs: list[object] = []
    ys: list[object] = []
    texts: list[str] = []
    for row in stops.itertuples(index=False):
        placed = pd.Timestamp(row.placed_date)
        closed = pd.Timestamp(row.closed_date) if pd.notna(row.closed_date) else (last_date or placed)
        label = f"stop {row.side} {float(row.quantity):,.0f} @ {float(row.stop_price):,.2f} ({row.outcome})"
        xs += [placed, closed, None]
        ys += [float(row.stop_price), float(row.stop_price), None]
        texts += [label, label, ""]
    traces = [go.Scatter(x=xs, y=ys, name="Stop levels", mode="lines", line={"color": _STOP_COLOR, "width": 1.6,
                                                                               "dash": "dash"},
                         text=texts, hovertemplate="%{x|%Y-%m-%d} %{text}<extra></extra>")]
    filled = stops[stops["outcome"].astype(str) == "filled"]
    if not filled.empty:
        traces.append(go.Scatter(
            x=pd.to_datetime(filled["closed_date"]), y=filled["fill_price"].astype(float), name="Stop fills",
            mode="markers", marker={"symbol": "x", "size": 12, "color": _STOP_COLOR, "line": {"width": 1}},
            customdata=np.c_[filled["side"].astype(str), filled["quantity"].astype(float),
                             filled["stop_price"].astype(float)],
            hovertemplate="%{x|%Y-%m-%d} stop filled: %{customdata[0]} %{customdata[1]:,.0f} @ %{y:,.2f} "
                          "(stop %{customdata[2]:,.2f})<extra></extra>"))
    return traces


def _add_picker(fig: go.Figure, symbols: list[str], groups: list[int]) -> None:
    total = sum(groups)
    buttons = []
    start = 0
    for symbol, size in zip(symbols, groups, strict=True):
        visible = [start <= i < start + size for i in range(total)]
        buttons.append({"label": symbol, "method": "restyle", "args": [{"visible": visible}]})
        start += size
    fig.update_layout(updatemenus=[{"buttons": buttons, "direction": "down", "showactive": True, "x": 0.055,
                                    "xanchor": "left", "y": 1.13, "yanchor": "middle", "bgcolor": "#ffffff",
                                    "bordercolor": "#9aa3ae", "font": {"size": 12.5}}],
                      margin={"t": 70})
