"""The features of the session that just closed, computed by the engine from its own daily bars and put in the online
store before the strategies decide on that close (only when a strategy has the signal veto enabled).

Why the engine writes them itself: the veto needs session t's features right after t's close, before the decision,
and nothing else has them then (the nightly pipeline runs later; in sim mode a session lasts seconds). So:

- **one feature function**: ``data.bar_features.bar_features`` over the engine's window of the broker's daily bars
  (``DailyBarFeed``: the very bars the strategies decide on), the function the pipeline, the backtests and the
  training use. The window (``FEATURE_WINDOW_SESSIONS``) is long enough that TA-Lib's smoothed RSI/ATR agree with a
  full-history computation to ~1e-8. Only the rows stamped at the closing session are written (a symbol without
  a valid bar today writes nothing and stays stale).
- **no trade on stale features**: the veto reads them back through ``ml.feature_store.OnlineFeatures`` (the one
  reader, which checks each value's event timestamp against ``last_close_ns``); a write that failed or came too
  late leaves the previous session's value there, which is stale, so the entry is vetoed (and logged).
- **the loop never blocks on it**: computing (~10-20 ms) and writing (SQLite, ~5 ms, but up to SQLite's 5-s busy
  timeout if another process holds the store) run on one worker thread. The session's decision
  (``SessionStep.on_close``) is deferred until the worker's ``SessionFeaturesWritten`` comes back through the
  queue, or ``FEATURE_WAIT_S`` has passed (a clock timer), whichever is first. Intraday marks that arrive
  meanwhile are handled as usual, and the decision re-marks the book at the close, so the order is still sized
  on the close; to the rest of the engine the daily bar simply arrived a few ms later.

``FeatureRepo.publish`` is not used here: it replaces the whole offline history with what it is given (the
engine's window is not the history) and costs ~50 ms to ~1 s (materialization through DuckDB, apply).

Threads: ``on_history``, ``on_close``, ``on_written`` and the timer run on the dispatcher thread; the worker only
computes, writes and ``put``s. The writer must not be used by another thread (its own SQLite connection).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from core.clock import NS_PER_SECOND, Clock
from core.events import MarketEvent
from data.bar_features import bar_features
from data.panel import BarPanel

log = logging.getLogger(__name__)

FEATURE_WINDOW_SESSIONS = 256  # RSI/ATR (Wilder smoothing) forget their seed as (13/14)^n: 1e-8 after ~250 bars
FEATURE_WAIT_S = 2.0  # longest a decision waits for its session's features (then: stale, vetoed)
NEW_YORK = "America/New_York"


class OnlineFeatureWriter(Protocol):
    """``ml.feature_store.FeatureRepo.write_online``: rows of ``bar_features`` output into the online store."""

    def write_online(self, features: pd.DataFrame) -> int: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionFeaturesWritten:
    """The worker's report for one close (put on the engine queue)."""

    close_ns: int
    rows: int
    elapsed_ms: float
    error: str | None = None


class SessionFeatures:
    """Keeps the daily-bar window, publishes each close's features off the loop, then lets the decision run."""

    def __init__(
        self,
        symbols: Sequence[str],
        writer: OnlineFeatureWriter,
        clock: Clock,
        put: Callable[[Any], None],
        on_close: Callable[[MarketEvent], None],
        *,
        window_sessions: int = FEATURE_WINDOW_SESSIONS,
        wait_s: float = FEATURE_WAIT_S,
    ) -> None:
        self.symbols = tuple(symbols)
        self._writer = writer
        self._clock = clock
        self._put = put
        self._on_close = on_close
        self._wait_ns = int(wait_s * NS_PER_SECOND)
        self._window: deque[tuple[int, np.ndarray]] = deque(maxlen=window_sessions)  # (close ns, (5, N) bars)
        self._pending: dict[int, MarketEvent] = {}  # close ns -> the decision bar waiting for its features
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="session-features")
        self.last_close_ns = 0  # newest session close seen: features older than this are stale
        self.written = 0
        self.failed = 0
        self.late = 0
        self.last_write_ms: float | None = None

    # ------------------------------------------------------------------ DailyBarFeed callbacks (dispatcher)
    def on_history(self, event: MarketEvent) -> None:
        self._append(event)

    def on_close(self, event: MarketEvent) -> None:
        """Hand the window to the worker; the decision on ``event`` runs when its features are written (or late)."""
        self._append(event)
        close_ns = event.ts_event_ns
        self._pending[close_ns] = event
        try:
            self._worker.submit(self._compute_and_write, self._panel(), close_ns)
        except Exception:  # no features for this close: its entries are vetoed as stale; exits still go out
            self.failed += 1
            log.exception("event=session_features_failed session=%s action=decide_without", _session_text(close_ns))
            self._release(close_ns, late=False)
            return
        self._clock.call_at(self._clock.now_ns() + self._wait_ns, lambda _due: self._release(close_ns, late=True))

    def on_written(self, report: SessionFeaturesWritten) -> None:
        """The worker's report, through the queue: log it and run the decision if it is still waiting."""
        self.last_write_ms = report.elapsed_ms
        session = _session_text(report.close_ns)
        if report.error is None:
            self.written += 1
            log.info("event=session_features_written session=%s rows=%d elapsed_ms=%.1f", session, report.rows,
                     report.elapsed_ms)  # fmt: skip
        else:
            self.failed += 1
            log.error("event=session_features_failed session=%s error=%r elapsed_ms=%.1f "
                      "action=entries_vetoed_as_stale", session, report.error, report.elapsed_ms)  # fmt: skip
        self._release(report.close_ns, late=False)

    def status(self) -> dict[str, Any]:
        """For STATUS: what the online store got from this engine."""
        return {"sessions_written": self.written, "write_failures": self.failed, "late": self.late,
                "last_write_ms": None if self.last_write_ms is None else round(self.last_write_ms, 1),
                "last_close": None if not self.last_close_ns else _session_text(self.last_close_ns)}  # fmt: skip

    def close(self) -> None:
        """At shutdown: drop queued work (a write already running finishes on its own; its report is never read)."""
        self._worker.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ internals
    def _append(self, event: MarketEvent) -> None:
        if self._window and event.ts_event_ns <= self._window[-1][0]:
            log.warning("event=session_features_bar_ignored ts_ns=%d reason=not_newer_than_window", event.ts_event_ns)
            return
        bars = np.vstack([event.open, event.high, event.low, event.close, event.volume]).astype(np.float64)
        self._window.append((event.ts_event_ns, bars))
        self.last_close_ns = max(self.last_close_ns, event.ts_event_ns)

    def _panel(self) -> BarPanel:
        """The window as a ``BarPanel`` (fresh arrays: the worker owns them)."""
        ts = np.fromiter((t for t, _ in self._window), dtype=np.int64, count=len(self._window))
        stack = np.stack([bars for _, bars in self._window])  # (T, 5, N)
        dates = pd.DatetimeIndex(pd.to_datetime(ts, utc=True).tz_convert(NEW_YORK).normalize().tz_localize(None),
                                 name="date")  # fmt: skip
        arrays = {name: np.ascontiguousarray(stack[:, k, :]) for k, name in
                  enumerate(("open", "high", "low", "close", "volume"))}  # fmt: skip
        return BarPanel(self.symbols, dates, ts, **arrays)

    def _compute_and_write(self, panel: BarPanel, close_ns: int) -> None:
        """Worker thread: the closing session's rows of ``bar_features``, written online; the report is queued."""
        started_ns = self._clock.now_ns()
        rows, error = 0, None
        try:
            features = bar_features(panel, created_ns=started_ns)
            today = features[features["event_timestamp"] == pd.Timestamp(close_ns, tz="UTC")]
            rows = self._writer.write_online(today)
        except Exception as exc:  # reported on the dispatcher thread; the entries of this close are vetoed as stale
            error = f"{type(exc).__name__}: {exc}"
            log.debug("event=session_features_worker_error", exc_info=True)
        elapsed_ms = (self._clock.now_ns() - started_ns) / 1e6
        self._put(SessionFeaturesWritten(close_ns=close_ns, rows=rows, elapsed_ms=elapsed_ms, error=error))

    def _release(self, close_ns: int, *, late: bool) -> None:
        """Run the waiting decisions up to ``close_ns``, oldest first; each runs once."""
        for ts in sorted(t for t in self._pending if t <= close_ns):
            event = self._pending.pop(ts)
            if late:
                self.late += 1
                log.warning("event=session_features_late session=%s wait_s=%.1f action=decide_now (entries without "
                            "fresh features are vetoed)", _session_text(ts), self._wait_ns / NS_PER_SECOND)  # fmt: skip
            self._on_close(event)


def _session_text(close_ns: int) -> str:
    return str(pd.Timestamp(close_ns, tz="UTC").tz_convert(NEW_YORK).date())
