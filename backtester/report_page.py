"""The page every HTML report is written into: one self-contained file with plotly.js inline, once.

A results folder must open offline, years later, on any machine: so the page carries plotly.js itself (no CDN, no
other script or stylesheet fetched), the CSS inline, and each chart as a ``<div>`` plus the JSON plotly draws it
from. Text from callers is HTML-escaped here (``section``, ``header_html``) or by the caller before it reaches a
table cell. The number formats are the ones every report uses, so a percent reads the same on every page.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

PLOTLY_CONFIG: dict[str, object] = {"displaylogo": False, "responsive": True,
                                    "modeBarButtonsToRemove": ["lasso2d", "select2d"]}  # fmt: skip
FONT = '-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Liberation Sans",sans-serif'
STRATEGY_COLOR = "#1f4e9c"
BENCHMARK_COLOR = "#8a94a3"
LOSS_COLOR = "#c0392b"
GAIN_COLOR = "#15803d"
_PLAIN_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def write_page(path: Path, title: str, body: str) -> None:
    """A self-contained HTML page in the report style, written to a temp file and renamed into place."""
    document = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n"
                f'<script type="text/javascript">{get_plotlyjs()}</script>\n</head>\n<body>\n<main>\n{body}\n</main>\n'
                "</body>\n</html>\n")  # fmt: skip
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_name(path.name + ".tmp")
    tmp_path.write_text(document, encoding="utf-8")
    os.replace(tmp_path, path)


def figure_html(fig: go.Figure, div_id: str, height_px: int = 360, hovermode: str = "x unified") -> str:
    """One chart as a ``<div id=div_id>`` and the script that draws it (plotly.js itself is in the page head).

    plotly writes ``div_id`` into the markup and the script as is, so it must be a plain id (ValueError
    otherwise); text inside the figure (titles, names, hover) is JSON that plotly escapes (``<`` as ``\\u003c``).
    """
    if not _PLAIN_ID.fullmatch(div_id):
        raise ValueError(f"chart id must be letters, digits, '-' or '_'; got {div_id!r}")
    fig.update_layout(height=height_px, template="plotly_white", font={"family": FONT, "size": 12.5},
                      margin={"l": 64, "r": 24, "t": fig.layout.margin.t or 40, "b": 40}, hovermode=hovermode,
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1})
    return '<div class="chart">' + pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id,
                                               config=PLOTLY_CONFIG) + "</div>"  # fmt: skip


def no_data_html(div_id: str, what: str) -> str:
    return f'<div id="{html.escape(div_id)}" class="no-data">No data: {html.escape(what)}</div>'


def section(title: str, content: str, section_id: str = "") -> str:
    id_attr = f' id="{html.escape(section_id)}"' if section_id else ""
    return f"<section{id_attr}><h2>{html.escape(title)}</h2>{content}</section>"


def header_html(summary: Mapping[str, object], equity: pd.Series, kicker: str = "Backtest report") -> str:
    """Strategy name, period, symbols, params and the run's identity (config id, data fingerprint)."""
    start = summary.get("start", equity.index[0] if len(equity) else None)
    end = summary.get("end", equity.index[-1] if len(equity) else None)
    facts = [("Period", f"{fmt_date(start)} → {fmt_date(end)}")]
    if "symbols" in summary:
        facts.append(("Symbols", fmt_symbols(summary["symbols"])))
    if "params" in summary:
        facts.append(("Params", fmt_params(summary["params"])))
    for key, label in (("config_id", "Config id"), ("data_fingerprint", "Data fingerprint")):
        if key in summary:
            facts.append((label, f"<code>{html.escape(str(summary[key]))}</code>"))
    rows = "".join(f"<div><dt>{label}</dt><dd>{value}</dd></div>" for label, value in facts)
    strategy = html.escape(str(summary.get("strategy", "Backtest")))
    return (f'<header><div class="kicker">{html.escape(kicker)}</div><h1>{strategy}</h1>'
            f'<dl class="facts">{rows}</dl></header>')


def kv_table(rows: Iterable[tuple[str, str]], table_id: str = "") -> str:
    """Two columns, label and an already formatted (escaped) value."""
    id_attr = f' id="{html.escape(table_id)}"' if table_id else ""
    body = "".join(f"<tr><th>{html.escape(label)}</th><td>{value}</td></tr>" for label, value in rows)
    return f'<table class="kv"{id_attr}>{body}</table>'


# --- formatting -------------------------------------------------------------------------------------------------


def num(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def fmt_pct(value: float, decimals: int = 2) -> str:
    """A fraction as a percent; a tiny negative prints 0.00%, not -0.00%."""
    return f"{round(value * 100, decimals) + 0.0:,.{decimals}f}%" if math.isfinite(value) else "—"


def fmt_ratio(value: float) -> str:
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:,.2f}" if math.isfinite(value) else "—"


def fmt_money(value: float) -> str:
    return f"{value:,.2f}" if math.isfinite(value) else "—"


def fmt_int(value: float) -> str:
    return f"{value:,.0f}" if math.isfinite(value) else "—"


def fmt_date(value: object) -> str:
    try:
        stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return html.escape(str(value))
    return "—" if pd.isna(stamp) else stamp.strftime("%Y-%m-%d")


def fmt_symbols(symbols: object, limit: int = 30) -> str:
    if isinstance(symbols, str) or not isinstance(symbols, Iterable):
        names = [str(symbols)]
    else:
        names = [str(symbol) for symbol in symbols]
    shown = ", ".join(html.escape(name) for name in names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f'{shown}{more} <span class="muted">({len(names)})</span>'


def fmt_params(params: object) -> str:
    if not isinstance(params, Mapping):
        return html.escape(str(params))
    chips = (f'<span class="chip">{html.escape(str(k))}=<b>{html.escape(json.dumps(v, default=str))}</b></span>'
             for k, v in params.items())
    return " ".join(chips) or '<span class="muted">none</span>'


_CSS = """
:root{--ink:#17202b;--muted:#5f6b7a;--line:#e2e6ec;--soft:#f6f8fb;--pos:#15803d;--neg:#b91c1c}
*{box-sizing:border-box}
body{margin:0;background:#eef1f5;color:var(--ink);
 font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Liberation Sans",sans-serif}
main{max-width:1240px;margin:0 auto;padding:28px 28px 48px}
header{background:#fff;border:1px solid var(--line);border-radius:10px;padding:20px 24px}
.kicker{font-size:11px;letter-spacing:.12em;text-transform:uppercase;color:var(--muted)}
h1{font-size:26px;margin:2px 0 12px;font-weight:650}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:0}
.facts div{display:contents}.facts dt{color:var(--muted)}.facts dd{margin:0;overflow-wrap:anywhere}
code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;color:#334}
.chip{display:inline-block;background:var(--soft);border:1px solid var(--line);border-radius:4px;
 padding:0 6px;margin:1px 2px 1px 0;font-size:12.5px}
section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:16px 22px 18px;margin-top:16px}
h2{font-size:12px;letter-spacing:.1em;text-transform:uppercase;color:var(--muted);margin:0 0 10px;font-weight:600}
h3{font-size:13px;margin:14px 0 6px;font-weight:600}
.attention{background:#fff7e6;border:1px solid #f0b429;border-left:6px solid #d97706;border-radius:10px;
 padding:12px 20px;margin-top:16px}
.attention.halted{background:#fdecec;border-color:#e5a3a3;border-left-color:#b91c1c}
.attention h2{color:#8a4b00;margin-bottom:6px}.attention.halted h2{color:#8b1a1a}
.attention ul{margin:0;padding-left:20px}.attention li{margin:2px 0}
.metric-grid{display:grid;grid-template-columns:repeat(4,1fr);gap:0 28px;align-items:start}
@media (max-width:900px){.metric-grid{grid-template-columns:repeat(2,1fr)}}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
table.metrics{width:100%;margin-bottom:12px}
table.metrics caption{text-align:left;font-weight:600;padding:0 0 4px;border-bottom:2px solid var(--ink)}
table.metrics td{padding:5px 0;border-bottom:1px solid var(--line)}
table.metrics td.value{text-align:right;font-weight:600}
table.kv{font-size:13px}
table.kv th{text-align:left;color:var(--muted);font-weight:500;padding:4px 18px 4px 0;vertical-align:top;
 white-space:nowrap}
table.kv td{padding:4px 0;overflow-wrap:anywhere}
.chart{width:100%}.chart .plotly-graph-div{width:100%}
.no-data{color:var(--muted);padding:24px;text-align:center;background:var(--soft);border-radius:6px}
table.heatmap{width:100%;font-size:12.5px;table-layout:fixed}
table.heatmap th{font-weight:600;color:var(--muted);padding:5px 2px;text-align:center}
table.heatmap tbody th{text-align:left}
table.heatmap td{text-align:center;padding:5px 2px;border:2px solid #fff;border-radius:3px}
table.heatmap .total{font-weight:700;border-left:6px solid #fff}
.scroll{overflow:auto;max-height:520px;border:1px solid var(--line);border-radius:6px}
.scroll table{width:100%}
.scroll thead th{position:sticky;top:0;background:#fff;z-index:1}
table.data{width:100%;font-size:12.5px}
table.data th{text-align:right;color:var(--muted);font-weight:600;border-bottom:2px solid var(--ink);padding:5px 8px;
 white-space:nowrap}
table.data td{text-align:right;padding:4px 8px;border-bottom:1px solid var(--line);white-space:nowrap}
table.data th:nth-child(-n+2),table.data td:nth-child(-n+2){text-align:left}
table.data tbody tr:nth-child(even){background:var(--soft)}
tr.halted td{background:#fdecec}
.pos{color:var(--pos)}.neg{color:var(--neg)}.muted{color:var(--muted)}p.muted{margin:0 0 8px}
.meaning{color:var(--muted);font-size:12.5px}
table.facts-table{width:100%}table.facts-table th{width:250px}
table.facts-table td:nth-child(2){width:300px;padding-right:24px}
"""
