"""The "Veto" section of the backtest report and its console table: the same run with and without the veto.

Both read ``summary["veto"]`` (``backtester.veto_ab``), so the page, the console and ``summary.json`` show the
same numbers. A summary whose veto is not enabled has no section.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

# (key, label, kind); kinds: int, ratio, pct, money
VETO_ROWS: tuple[tuple[str, str, str], ...] = (
    ("n_trades", "Round trips", "int"),
    ("sharpe", "Sharpe", "ratio"),
    ("max_drawdown", "Max drawdown", "pct"),
    ("total_return", "Total return", "pct"),
    ("final_equity", "Final equity", "money"),
    ("win_rate", "Win rate", "pct"),
    ("vetoes", "Vetoed entries", "int"),
)


def veto_enabled(summary: Mapping[str, Any]) -> bool:
    veto = summary.get("veto")
    return isinstance(veto, Mapping) and bool(veto.get("enabled"))


def veto_html(summary: Mapping[str, Any]) -> str:
    """The section's content ("" when the veto was not enabled): the A/B table and what decided the vetoes."""
    if not veto_enabled(summary):
        return ""
    veto = summary["veto"]
    a, b, d = veto.get("with_veto", {}), veto.get("without_veto", {}), veto.get("difference", {})
    rows = "".join(
        f"<tr><td>{label}</td><td>{fmt(a.get(key), kind)}</td><td>{fmt(b.get(key), kind)}</td>"
        f"<td>{fmt(d.get(key), kind, signed=True)}</td></tr>"
        for key, label, kind in VETO_ROWS
    )
    counts = ", ".join(f"{html.escape(str(k))} {int(v):,}" for k, v in sorted(veto.get("counts", {}).items()))
    note = (f"Model <code>{html.escape(str(veto.get('model_id')))}</code>, threshold "
            f"{float(veto.get('threshold', math.nan)):.2f}, missing features: "
            f"{html.escape(str(veto.get('on_missing_features')))}. Entries checked: {counts or 'none'}. The run "
            f"above is the one with the veto; the other column is the same config and data without it.")  # fmt: skip
    if veto.get("in_sample"):
        note += (" <b>In sample</b>: the model was trained on data overlapping this run "
                 f"({html.escape(str(veto.get('model_data_period')))}), so this A/B flatters it; the out-of-sample "
                 "A/B is the trainer's walk-forward, in the model card.")  # fmt: skip
    return (f'<p class="muted">{note}</p><table id="veto-ab" class="data"><thead><tr><th>Metric</th>'
            f"<th>With veto</th><th>Without veto</th><th>Difference</th></tr></thead><tbody>{rows}</tbody></table>")


def print_veto_ab(summary: Mapping[str, Any], console: Console) -> None:
    """The A/B as a console table (nothing when the veto was not enabled)."""
    if not veto_enabled(summary):
        return
    veto = summary["veto"]
    sample = ", in sample: the model saw this data" if veto.get("in_sample") else ""
    table = Table(title=f"veto A/B (threshold {veto.get('threshold')}, model {veto.get('model_id')}{sample})")
    for column in ("", "with veto", "without veto", "difference"):
        table.add_column(column)
    a, b, d = veto.get("with_veto", {}), veto.get("without_veto", {}), veto.get("difference", {})
    for key, label, kind in VETO_ROWS:
        table.add_row(label, fmt(a.get(key), kind), fmt(b.get(key), kind), fmt(d.get(key), kind, signed=True))
    console.print(table)


def fmt(value: Any, kind: str, *, signed: bool = False) -> str:
    """A number for a person: percent, money, integer or ratio; "—" when unknown."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(number):
        return "—"
    sign = "+" if signed and number > 0 else ""
    if kind == "pct":
        return f"{sign}{number * 100:,.2f}%"
    if kind == "int":
        return f"{sign}{number:,.0f}"
    return f"{sign}{number:,.2f}"
