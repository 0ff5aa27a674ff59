"""What a reader of a backtest report must see first: the attention banner, and the "Run" table of how it ran.

The banner lists, only when they happened, the trading-state periods (REDUCING, HALTED), orders refused by a
pre-trade check, entries cut to a limit, signals ignored, bars quarantined and sessions missing from the data
(the console's ``summary_table.attention_rows`` plus the state changes). The Run table says what was run on what:
the ``--set`` overrides, data source and price adjustment, costs, sizing, seed, config id and data fingerprint.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from backtester.report_charts import state_periods
from backtester.report_page import kv_table
from backtester.summary_table import attention_rows


def attention_banner(summary: Mapping[str, Any], last_date: pd.Timestamp | None) -> str:
    """The banner's HTML, "" when nothing needs attention."""
    items = _state_items(summary, last_date) + [
        f"<b>{html.escape(label.capitalize())}</b>: {html.escape(value)}" for label, value in attention_rows(summary)
    ] + [f"<b>Warning</b>: {html.escape(str(text))}" for text in summary.get("warnings") or ()]
    if not items:
        return ""
    halted = str(summary.get("final_trading_state")) == "HALTED"
    title = "Attention: the run went HALTED" if halted else "Attention"
    css = "attention halted" if halted else "attention"
    rows = "".join(f"<li>{item}</li>" for item in items)
    return f'<div id="attention" class="{css}" role="alert"><h2>{html.escape(title)}</h2><ul>{rows}</ul></div>'


def _state_items(summary: Mapping[str, Any], last_date: pd.Timestamp | None) -> list[str]:
    changes: Sequence[Mapping[str, str]] = summary.get("trading_state_changes") or []
    end = last_date if last_date is not None else pd.Timestamp(str(summary.get("end") or "2100-01-01"))
    items = []
    for state, start, stop in state_periods(changes, end):
        if state == "HALTED":
            items.append(f"<b>HALTED</b> on {start.date()}: no new orders from then on (one-way for the run)")
        else:
            items.append(f"<b>REDUCING</b> from {start.date()} to {stop.date()}: only orders that shrink exposure")
    final = summary.get("final_trading_state")
    if final and final not in ("ACTIVE", "HALTED"):
        items.append(f"<b>Final trading state</b>: {html.escape(str(final))}")
    return items


def run_table(summary: Mapping[str, Any]) -> str:
    """How the run was set up, from the summary (keys it lacks are left out)."""
    overrides = summary.get("overrides") or []
    rows = [("Overrides (--set)", "<br>".join(f"<code>{html.escape(str(o))}</code>" for o in overrides)
             if overrides else '<span class="muted">none</span>')]
    for key, label in (("data_source", "Data source"), ("adjust_prices", "Prices back-adjusted"),
                       ("benchmark", "Benchmark"), ("order_type", "Order type"),
                       ("stop", "Protective stop"), ("stops", "Stops placed / filled / cancelled"),
                       ("commission_model", "Commission model"), ("slippage", "Slippage model"),
                       ("sizing", "Sizing"), ("risk_limits", "Risk limits"), ("seed", "Seed"),
                       ("config_id", "Config id"), ("data_fingerprint", "Data fingerprint")):
        if key in summary and summary[key] is not None:
            rows.append((label, _value(summary[key], code=key in ("config_id", "data_fingerprint"))))
    return kv_table(rows, table_id="run-table")


def _value(value: object, *, code: bool) -> str:
    if isinstance(value, Mapping):
        return " ".join(f'<span class="chip">{html.escape(str(k))}=<b>{html.escape(json.dumps(v, default=str))}'
                        f"</b></span>" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = html.escape(str(value))
    return f"<code>{text}</code>" if code else text
