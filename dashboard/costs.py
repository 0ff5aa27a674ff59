"""The costs panel: implementation shortfall per algo and per symbol from the TCA log, once it exists.

The TCA log (``<results_dir>/tca_log.duckdb``) is written by the nightly ETL or at the engine's stop, never held
open by the engine; the dashboard opens it read-only for one query now and then (``COSTS_REFRESH_S``) and closes
it, so it never stands in a loader's way for long. A loader holding the file makes the read fail at once
(``TcaDatabaseBusy``): the previous panel stays, marked with the time it was read. The numbers are those of
``python -m tca.report`` (the same ``order_shortfalls`` and ``aggregate``), with fewer bootstrap resamples.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from core.errors import StateCorruptError, TradingSystemError

log = logging.getLogger(__name__)

COSTS_REFRESH_S = 30.0
RESAMPLES = 200
COLUMNS = ("count", "mean_total_bps", "ci_low_bps", "ci_high_bps", "mean_fees_bps", "weighted_total_bps", "notional")


def read_costs(db_path: Path) -> dict[str, Any]:
    """``{"available": bool, "detail": str, "by_algo": [...], "by_symbol": [...]}``; never raises."""
    if not Path(db_path).exists():
        return {"available": False, "detail": f"no TCA log yet at {db_path} (loaded nightly or at the engine's stop)"}
    from tca.calculator import aggregate, order_shortfalls
    from tca.logger import TcaStore

    try:
        frames = TcaStore(db_path).read()
        shortfalls = order_shortfalls(frames.executions, frames.unfilled)
    except (TradingSystemError, StateCorruptError, OSError, ValueError) as exc:
        return {"available": False, "detail": f"{db_path}: {' '.join(str(exc).split())}"}
    if shortfalls.empty:
        return {"available": True, "detail": "no executions in the TCA log yet", "by_algo": [], "by_symbol": []}
    tables = {by: aggregate(shortfalls, by=by, n_resamples=RESAMPLES) for by in ("algo", "symbol")}
    return {"available": True, "detail": f"{len(shortfalls)} orders in {db_path}",
            **{f"by_{by}": _rows(table, by) for by, table in tables.items()}}  # fmt: skip


def _rows(table: Any, by: str) -> list[dict[str, Any]]:
    rows = []
    for record in table.to_dict("records"):
        row = {"key": str(record[by])}
        for column in COLUMNS:
            value = record.get(column)
            row[column] = None if isinstance(value, float) and not math.isfinite(value) else value
        rows.append(row)
    return rows
