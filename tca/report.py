"""``python -m tca.report``: implementation shortfall per algo from the TCA log, in the terminal and as HTML.

Reads ``results/tca_log.duckdb`` (or ``--db``) read-only and only for the moment of the query, so it never blocks
a load for long; a log another process is writing is exit 1 with that process named, not a wait. The HTML file
is self-contained (inline CSS and SVG, no script, no network): no charting library is installed in the venv, so
the per-algo distributions are histograms drawn here as inline SVG.

Exit codes: 0 ok (an empty log prints ``no executions``), 1 the log cannot be read, 2 bad arguments (one line on
stderr).
"""

from __future__ import annotations

import argparse
import html
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from core.errors import StateCorruptError
from tca.calculator import aggregate, order_shortfalls
from tca.logger import DEFAULT_DB_PATH, TcaDatabaseBusy, read_frames
from tca.records import Source

PROG = "tca.report"
GROUPINGS = (("algo", "By algo"), ("symbol", "By symbol"), ("size_bucket", "By size (% of ADV)"),
             ("minutes_to_close_bucket", "By minutes to the close"))  # fmt: skip


class UsageError(Exception):
    """A bad command line; ``main`` prints it on one line and exits 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # argparse's would print usage and exit
        raise UsageError(message)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a date YYYY-MM-DD (got {text!r})") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a whole number > 0 (got {text!r})")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=f"python -m {PROG}", description=__doc__.splitlines()[0],
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--db", type=Path, default=DEFAULT_DB_PATH, help="the TCA log (DuckDB)")
    parser.add_argument("--since", type=_date, default=None, help="orders decided on or after DATE 00:00 UTC")
    parser.add_argument("--source", choices=[s.value for s in Source], default=None, help="only this source")
    parser.add_argument("--html", type=Path, default=None, help="also write a self-contained HTML report here")
    parser.add_argument("--resamples", type=_positive_int, default=2000, help="bootstrap resamples per group")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    return parser


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """Print the per-algo table; write the HTML report if asked. See the module doc for exit codes."""
    out = out if out is not None else sys.stdout
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if not args.db.exists():
        print(f"{PROG}: error: --db {args.db}: no TCA log there (load the staging file or run a backtest first)",
              file=sys.stderr)  # fmt: skip
        return 2
    since_ns = None
    if args.since is not None:
        since_ns = int(datetime(args.since.year, args.since.month, args.since.day, tzinfo=UTC).timestamp()) * 10**9
    try:
        frames = read_frames(args.db, since_ns=since_ns, source=args.source)
    except (TcaDatabaseBusy, StateCorruptError) as exc:
        print(f"{PROG}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    shortfalls = order_shortfalls(frames.executions, frames.unfilled)
    if shortfalls.empty:
        print("no executions", file=out)
        return 0
    tables = {by: aggregate(shortfalls, by=by, n_resamples=args.resamples, seed=args.seed) for by, _ in GROUPINGS}
    print(format_table(tables["algo"], "algo"), file=out)
    if args.html is not None:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(render_html(shortfalls, tables, title=_title(args)), encoding="utf-8")
        print(f"html report: {args.html}", file=out)
    return 0


def _title(args: argparse.Namespace) -> str:
    scope = [f"source {args.source}" if args.source else "all sources"]
    if args.since is not None:
        scope.append(f"since {args.since.isoformat()}")
    return f"Implementation shortfall — {args.db.name} ({', '.join(scope)})"


def _bps(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"


def _ci(row: pd.Series) -> str:
    if not np.isfinite(row["ci_low_bps"]):
        return "n/a"
    return f"[{row['ci_low_bps']:.2f}, {row['ci_high_bps']:.2f}]"


_COLUMNS = ("count", "mean bps", "95% CI", "delay", "execution", "opportunity", "fees", "wtd bps")


def _cells(row: pd.Series) -> list[str]:
    return [str(int(row["count"])), _bps(row["mean_total_bps"]), _ci(row), _bps(row["mean_delay_bps"]),
            _bps(row["mean_execution_bps"]), _bps(row["mean_opportunity_bps"]), _bps(row["mean_fees_bps"]),
            _bps(row["weighted_total_bps"])]  # fmt: skip


def format_table(table: pd.DataFrame, by: str) -> str:
    """A fixed-width text table: one row per group, costs in bps of decision notional (positive = cost)."""
    rows = [[by, *_COLUMNS]] + [[str(row[by]), *_cells(row)] for _, row in table.iterrows()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths,
             strict=True))) for r in rows]  # fmt: skip
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def _html_table(table: pd.DataFrame, by: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in (by, *_COLUMNS))
    body = "".join(
        "<tr>" + f"<td>{html.escape(str(row[by]))}</td>" + "".join(f"<td class=n>{html.escape(c)}</td>"
        for c in _cells(row)) + "</tr>"
        for _, row in table.iterrows()
    )  # fmt: skip
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def svg_histogram(values: Sequence[float], edges: np.ndarray, title: str, width: int = 560, height: int = 200) -> str:
    """An inline SVG histogram of ``values`` over ``edges`` (shared by every algo, so charts compare), mean dashed."""
    counts, _ = np.histogram(np.asarray(values, dtype=float), bins=edges)
    pad_l, pad_b, pad_t = 40, 28, 20
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t
    top = max(int(counts.max()), 1)
    lo, hi = float(edges[0]), float(edges[-1])

    def x(v: float) -> float:
        return pad_l + (v - lo) / (hi - lo) * plot_w

    bars = "".join(
        f'<rect x="{x(a):.1f}" y="{pad_t + plot_h * (1 - c / top):.1f}" width="{max(x(b) - x(a) - 1, 1):.1f}" '
        f'height="{plot_h * c / top:.1f}" fill="#4a78b5"><title>{a:.1f} to {b:.1f} bps: {c}</title></rect>'
        for a, b, c in zip(edges[:-1], edges[1:], counts, strict=True) if c
    )  # fmt: skip
    mean = float(np.mean(values))
    axis_y = pad_t + plot_h
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}"><text x="{pad_l}" y="14" font-size="12">{html.escape(title)}</text>'
        f'{bars}<line x1="{pad_l}" y1="{axis_y}" x2="{pad_l + plot_w}" y2="{axis_y}" stroke="#333"/>'
        f'<line x1="{x(mean):.1f}" y1="{pad_t}" x2="{x(mean):.1f}" y2="{axis_y}" stroke="#c0392b" '
        f'stroke-dasharray="4 3"><title>mean {mean:.2f} bps</title></line>'
        f'<text x="{pad_l}" y="{height - 8}" font-size="11">{lo:.1f} bps</text>'
        f'<text x="{pad_l + plot_w}" y="{height - 8}" font-size="11" text-anchor="end">{hi:.1f} bps</text>'
        f'<text x="4" y="{pad_t + 10}" font-size="11">{top}</text></svg>'
    )


def _shared_edges(totals: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(totals)), float(np.max(totals))
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    bins = int(min(30, max(5, np.sqrt(len(totals)))))
    return np.linspace(lo, hi, bins + 1)


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0 "
        "1.5em}th,td{border:1px solid #ccc;padding:3px 8px}td.n{text-align:right;font-variant-numeric:tabular-nums}"
        "th{background:#f0f0f0}")  # fmt: skip


def render_html(shortfalls: pd.DataFrame, tables: dict[str, pd.DataFrame], *, title: str) -> str:
    """The whole report as one HTML document: the grouped tables, then one distribution chart per algo."""
    edges = _shared_edges(shortfalls["total_bps"].to_numpy(dtype=float))
    sections = [f"<h2>{html.escape(name)}</h2>{_html_table(tables[by], by)}" for by, name in GROUPINGS]
    charts = [
        svg_histogram(group["total_bps"].to_list(), edges, f"{algo}: total shortfall per order (n={len(group)})")
        for algo, group in shortfalls.groupby("algo", sort=True)
    ]
    note = ("Implementation shortfall after Perold (1988), in basis points of the decision notional "
            "(order quantity × decision price); positive is a cost for buys and sells alike. Intervals: percentile "
            "bootstrap of the mean total; n/a for a single order. Delay averages only orders with a known arrival "
            "price (without one, execution is measured from the decision price).")  # fmt: skip
    return (
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1><p>{html.escape(note)}</p>"
        f"<p>{len(shortfalls)} orders.</p>{''.join(sections)}<h2>Distribution per algo</h2>"
        f"{''.join(f'<div>{chart}</div>' for chart in charts)}</body></html>\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
