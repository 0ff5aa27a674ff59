"""Execution-cost features per symbol and session from the TCA log, for the feature store (Feast offline Parquet).

For every symbol, one row per XNYS session from the session of its first TCA order through the last session
with any order in the log (the log's "as of" date), so a point-in-time join on any of those dates sees the window
as it was then (a row with ``tca_orders_20d == 0`` says "no recent orders" rather than leaving a stale row):

- ``tca_shortfall_20d_bps_<algo>`` (algo in ``ALGOS``, lower case): mean implementation shortfall (bps, positive
  = cost, ``tca.calculator``'s total) of the symbol's orders of that algo whose cost became known in the last
  ``WINDOW_SESSIONS`` exchange sessions up to and including this one; NaN when there were none;
- ``tca_orders_20d``: how many of the symbol's orders (every algo, LMT included) fell in that window;
- ``event_timestamp``: the session's close in UTC from ``data.calendar.TradingCalendar`` (21:00 UTC in winter,
  20:00 in summer, earlier on half days): the features include that session's MOC fills, known at the close;
- ``created_timestamp``: equal to ``event_timestamp``. The file is rewritten whole on every run, so no two
  versions of a row ever coexist for Feast to tell apart, and a wall-clock value would make two runs differ.

An order's session is the New York date of the moment its cost became known (its last fill, or its end when
shares ended unfilled), moved to the next session if that date is none. Orders still working are left out.
Running twice on the same log writes byte-identical Parquet (written atomically).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import TradingSystemError
from data.calendar import TradingCalendar
from tca.calculator import order_shortfalls
from tca.logger import DEFAULT_DB_PATH, SESSION_TZ, TcaFrames, read_frames
from utils.atomic_files import PRIVATE_FILE_MODE, atomic_write_bytes

ALGOS = ("MOC", "LOC", "ADAPTIVE", "TWAP", "MKT")
WINDOW_SESSIONS = 20
DEFAULT_OUT = Path("feature_repo/data/tca_cost_features.parquet")
FEATURE_COLUMNS = (*(f"tca_shortfall_20d_bps_{a.lower()}" for a in ALGOS), "tca_orders_20d")
ORDER_COLUMNS = ("client_order_id", "symbol", "session_date", "algo", "shortfall_bps")
SCHEMA = pa.schema(
    [("symbol", pa.string()), ("session_date", pa.date32())]
    + [(name, pa.float64()) for name in FEATURE_COLUMNS[:-1]]
    + [
        ("tca_orders_20d", pa.int64()),
        ("event_timestamp", pa.timestamp("ns", tz="UTC")),
        ("created_timestamp", pa.timestamp("ns", tz="UTC")),
    ]
)


def order_frame(frames: TcaFrames) -> pd.DataFrame:
    """One row per finished order (``ORDER_COLUMNS``): its shortfall and the New York date its cost was known."""
    orders = order_shortfalls(frames.executions, frames.unfilled)
    if orders.empty:
        return pd.DataFrame(columns=list(ORDER_COLUMNS))
    known = pd.Series(-1, index=orders["client_order_id"], dtype="int64")
    for frame, column in ((frames.executions, "fill_ts"), (frames.unfilled, "end_ts")):
        if not frame.empty:
            last = frame.groupby("client_order_id")[column].max().astype("int64")
            known = np.maximum(known, last.reindex(known.index).fillna(-1).astype("int64"))
    finished = orders[orders["unaccounted_quantity"].to_numpy() == 0]
    stamps = pd.to_datetime(known.loc[finished["client_order_id"]].to_numpy(), utc=True)
    return pd.DataFrame(
        {
            "client_order_id": finished["client_order_id"].to_numpy(),
            "symbol": finished["symbol"].to_numpy(),
            "session_date": stamps.tz_convert(SESSION_TZ).tz_localize(None).normalize(),
            "algo": finished["algo"].to_numpy(),
            "shortfall_bps": finished["total_bps"].to_numpy(dtype=float),
        }
    )


def _session_positions(days: pd.DatetimeIndex, calendar: TradingCalendar) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """The sessions from the first order's session to the last one's, and each order's position among them
    (a date that is no session counts for the next session)."""
    snapped = pd.DatetimeIndex([d if calendar.is_session(d) else calendar.next_session(d) for d in days.unique()])
    lookup = dict(zip(days.unique(), snapped, strict=True))
    sessions = calendar.sessions(snapped.min(), snapped.max())
    positions = sessions.get_indexer(pd.DatetimeIndex([lookup[d] for d in days]))
    return sessions, positions


def _windowed(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing sums over ``window`` rows (axis 0), the current row included."""
    total = np.cumsum(values, axis=0)
    shifted = np.zeros_like(total)
    shifted[window:] = total[:-window]
    return total - shifted


def _symbol_rows(positions: np.ndarray, algos: np.ndarray, costs: np.ndarray, n_sessions: int) -> dict:
    """Window counts and per-algo mean shortfalls of one symbol at every session from its first order on."""
    counts = np.zeros((n_sessions, len(ALGOS) + 1))
    sums = np.zeros((n_sessions, len(ALGOS)))
    np.add.at(counts[:, -1], positions, 1.0)
    for k, algo in enumerate(ALGOS):
        mine = algos == algo
        np.add.at(counts[:, k], positions[mine], 1.0)
        np.add.at(sums[:, k], positions[mine], costs[mine])
    start = int(positions.min())
    counts, sums = _windowed(counts, WINDOW_SESSIONS)[start:], _windowed(sums, WINDOW_SESSIONS)[start:]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts[:, :-1] > 0, sums / counts[:, :-1], np.nan)
    columns = {name: means[:, k] for k, name in enumerate(FEATURE_COLUMNS[:-1])}
    return {"start": start, "tca_orders_20d": np.rint(counts[:, -1]).astype("int64"), **columns}


def cost_features(orders: pd.DataFrame, calendar: TradingCalendar | None = None) -> pd.DataFrame:
    """The feature rows (columns of ``SCHEMA``) of ``orders`` (``order_frame``'s columns), sorted by symbol and
    session. Pure: no I/O, no clock; ``calendar`` defaults to XNYS."""
    if orders.empty:
        return SCHEMA.empty_table().to_pandas()
    calendar = calendar or TradingCalendar()
    sessions, positions = _session_positions(pd.DatetimeIndex(orders["session_date"]), calendar)
    closes = pd.to_datetime(calendar.session_close_ns(sessions), utc=True).as_unit("ns")
    parts = []
    for symbol in sorted(orders["symbol"].unique()):
        mine = (orders["symbol"] == symbol).to_numpy()
        rows = _symbol_rows(
            positions[mine],
            orders["algo"].to_numpy()[mine],
            orders["shortfall_bps"].to_numpy(dtype=float)[mine],
            len(sessions),
        )
        start = rows.pop("start")
        part = pd.DataFrame({"symbol": symbol, "session_date": sessions[start:].date, **rows})
        part["event_timestamp"] = closes[start:]
        part["created_timestamp"] = closes[start:]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)[SCHEMA.names]


def parquet_bytes(features: pd.DataFrame) -> bytes:
    """The features as Parquet with the fixed ``SCHEMA`` (deterministic bytes for the same rows)."""
    table = pa.Table.from_pandas(features[SCHEMA.names], schema=SCHEMA, preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def run(db_path: Path | str = DEFAULT_DB_PATH, out: Path | str = DEFAULT_OUT) -> pd.DataFrame:
    """Read the TCA log, compute the features and replace ``out`` atomically (``PRIVATE_FILE_MODE``: it shows
    what the account traded). Raises FileNotFoundError for a missing log, ``StateCorruptError`` for a bad one."""
    features = cost_features(order_frame(read_frames(db_path)))
    atomic_write_bytes(Path(out), parquet_bytes(features), mode=PRIVATE_FILE_MODE)
    return features


def main(argv: list[str] | None = None) -> int:
    """CLI: exit 0 written (the output path is printed last), 1 log missing/corrupt/busy, 2 bad arguments."""
    from core.config_loader import ArgumentParser

    parser = ArgumentParser(
        prog="python -m etl.tca_feature_etl",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--db", type=Path, default=DEFAULT_DB_PATH, help="the TCA log")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the Parquet file to (re)write")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        features = run(args.db, args.out)
    except (FileNotFoundError, TradingSystemError, ValueError) as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 1
    print(f"{len(features)} rows, {features['symbol'].nunique()} symbols")
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
