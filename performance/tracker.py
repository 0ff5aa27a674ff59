"""Live performance: equity at each session close, daily returns and the backtester's metric set.

``metrics()`` calls ``backtester.performance.compute_metrics`` (and ``round_trips_from_fills`` for the trades)
exactly as a backtest job does, so a live tear sheet and a backtest of the same period agree on what every
number means. The series is indexed like the backtester's equity: tz-naive session labels (New York dates).

Persistence: the daily series lives in one small CSV (``session_date,equity,gross_exposure``; equity and
exposure in USD at full float precision, an unknown exposure is an empty field), rewritten atomically after each
close and reloaded on construction, so a restart continues the same series. A file that cannot be parsed raises
``StateCorruptError`` naming the file and line; it is never replaced silently. Intraday marks are optional and
kept in memory only (bounded), for a live chart; they do not enter the metrics.

Threading: owned by the dispatcher thread (the engine calls ``record_session_close`` from a session-close timer).
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections import deque
from datetime import date
from pathlib import Path

import pandas as pd

from backtester.performance import FILL_COLUMNS, compute_metrics, round_trips_from_fills
from core.errors import StateCorruptError
from utils.atomic_files import atomic_write_bytes

log = logging.getLogger(__name__)

DEFAULT_DAILY_EQUITY_PATH = Path("state/daily_equity.csv")
COLUMNS: tuple[str, ...] = ("session_date", "equity", "gross_exposure")


class PerformanceTracker:
    """Daily equity of the live account; ``initial_capital`` (USD) is the base of total return and CAGR."""

    def __init__(
        self, path: Path | str = DEFAULT_DAILY_EQUITY_PATH, *, initial_capital: float, max_intraday_marks: int = 10_000
    ) -> None:
        if not (math.isfinite(initial_capital) and initial_capital > 0):
            raise ValueError(f"initial_capital must be a positive number of USD (got {initial_capital})")
        self.path = Path(path)
        self.initial_capital = float(initial_capital)
        self._daily: dict[pd.Timestamp, tuple[float, float]] = _load(self.path)
        self._intraday: deque[tuple[int, float]] = deque(maxlen=max_intraday_marks)
        if self._daily:
            log.info("event=daily_equity_loaded path=%s sessions=%d", self.path, len(self._daily))

    def record_session_close(
        self, session_date: date | str | pd.Timestamp, equity: float, gross_exposure: float | None = None
    ) -> bool:
        """Store equity (and gross exposure) at the close of ``session_date`` and persist the series.

        Recording a session again replaces it (a restart may close the same day twice). A non-finite or
        non-positive equity (an unpriced position) is not recorded: it is logged and False is returned.
        """
        label = pd.Timestamp(session_date).normalize()
        if label.tzinfo is not None:
            raise ValueError(f"session_date must be a session label without time zone (got {session_date!r})")
        if not (math.isfinite(equity) and equity > 0):
            log.warning("event=daily_equity_skipped session_date=%s equity=%s reason=not_positive_finite",
                        label.date(), equity)  # fmt: skip
            return False
        exposure = math.nan if gross_exposure is None else float(gross_exposure)
        self._daily[label] = (float(equity), exposure)
        self._save()
        log.info("event=daily_equity_recorded session_date=%s equity=%.2f gross_exposure=%s path=%s",
                 label.date(), equity, exposure, self.path)  # fmt: skip
        return True

    def mark_intraday(self, ts_ns: int, equity: float) -> None:
        """Remember an intraday equity mark (memory only, the oldest dropped past ``max_intraday_marks``)."""
        self._intraday.append((int(ts_ns), float(equity)))

    def daily_equity(self) -> pd.Series:
        """Equity at each recorded session close (USD), ascending tz-naive session labels."""
        labels = sorted(self._daily)
        return pd.Series([self._daily[d][0] for d in labels], index=pd.DatetimeIndex(labels), name="equity",
                         dtype=float)  # fmt: skip

    def gross_exposure(self) -> pd.Series:
        labels = sorted(self._daily)
        return pd.Series([self._daily[d][1] for d in labels], index=pd.DatetimeIndex(labels),
                         name="gross_exposure", dtype=float)  # fmt: skip

    def daily_returns(self) -> pd.Series:
        """Simple returns between consecutive session closes (fractions), as the metrics measure them."""
        return self.daily_equity().pct_change().iloc[1:].rename("return")

    def intraday_marks(self) -> pd.Series:
        """Intraday marks indexed by UTC timestamp."""
        ts = pd.to_datetime([t for t, _ in self._intraday], utc=True)
        return pd.Series([e for _, e in self._intraday], index=ts, name="equity", dtype=float)

    def metrics(self, fills: pd.DataFrame | None = None, *, risk_free_rate_pct: float = 0.0) -> dict[str, float | int]:
        """``compute_metrics`` over the daily series, called as the backtester calls it.

        ``fills`` has ``backtester.performance.FILL_COLUMNS`` (``date`` is the session label); without it the
        trade and cost figures are those of no trades.
        """
        equity = self.daily_equity()
        fills = pd.DataFrame(columns=list(FILL_COLUMNS)) if fills is None else fills
        trades = round_trips_from_fills(fills, sessions=equity.index)
        exposure = self.gross_exposure()
        return compute_metrics(
            equity,
            trades,
            fills,
            self.initial_capital,
            gross_exposure=exposure if exposure.notna().any() else None,
            risk_free_rate_pct=risk_free_rate_pct,
        )

    def _save(self) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for label in sorted(self._daily):
            equity, exposure = self._daily[label]
            writer.writerow([label.date().isoformat(), repr(equity), repr(exposure) if math.isfinite(exposure) else ""])
        atomic_write_bytes(self.path, buffer.getvalue().encode("utf-8"))


def _load(path: Path) -> dict[pd.Timestamp, tuple[float, float]]:
    """The series stored at ``path`` (empty when there is no file); StateCorruptError naming file and line."""
    if not path.exists():
        return {}
    advice = "fix or move the file aside; it is never replaced automatically"
    try:
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise StateCorruptError(f"{path}: unreadable ({exc}); {advice}") from exc
    if not rows or tuple(rows[0]) != COLUMNS:
        raise StateCorruptError(f"{path}: header {rows[0] if rows else []} is not {list(COLUMNS)}; {advice}")
    daily: dict[pd.Timestamp, tuple[float, float]] = {}
    for line_number, row in enumerate(rows[1:], start=2):
        try:
            session_date, equity_text, exposure_text = row
            label = pd.Timestamp(date.fromisoformat(session_date))
            equity = float(equity_text)
            exposure = float(exposure_text) if exposure_text else math.nan
        except ValueError as exc:
            raise StateCorruptError(f"{path}:{line_number}: bad row {row} ({exc}); {advice}") from exc
        if not (math.isfinite(equity) and equity > 0) or label in daily:
            raise StateCorruptError(
                f"{path}:{line_number}: equity must be positive and each session appear once (row {row}); {advice}"
            )
        daily[label] = (equity, exposure)
    return daily
