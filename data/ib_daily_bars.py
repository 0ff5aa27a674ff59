"""Daily bars for the live strategies: the broker's own daily history, fetched once a session has closed.

Why: the strategies are researched and backtested on daily bars, one decision per completed session. For the
engine to trade what was backtested it must decide on the same bar, so the bar a live strategy sees is the
broker's official daily bar (``reqHistoricalData``, "1 day", TRADES, regular hours), not one rebuilt from 5-s
bars (their volume and extremes differ from the consolidated day). Intraday bars still mark the book.

Flow (dispatcher thread; the wiring routes ``IbConnected``/``IbDisconnected``/``IbBar``/``IbHistoricalEnd``/
``IbError`` here and every intraday ``MarketEvent`` to ``on_intraday``):

1. on (re)connect: one request per symbol for ``history_sessions`` sessions. The first batch is the **warm-up**:
   every date goes to ``on_history`` (indicators and ADV only, never a decision).
2. each intraday bar's time is compared with the calendar; once a session newer than the newest daily bar has
   closed, a short request ("5 D") per symbol fetches it.
3. when every request of a batch has ended (bars, or an error such as 162 "no data"), the dates newer than the
   last one handed on are merged, each bar checked by the bad-bar rules (a bad bar is NaN for that symbol, logged,
   never traded on), and handed on in date order: older dates to ``on_history``; the newest one, if the batch is
   not the warm-up, to ``on_close`` (the decision bar). A date missed while disconnected is history, not a late
   decision, once the session after it has closed: acting on it then would not be what the backtest did.
4. ``on_clock`` (an engine timer) also notices closes by the wall clock: with regular-hours real-time bars the
   first bar after a close is the next morning's, and a real trader decides in the evening.

A bar dated after the last completed session (IB sends today's bar while the session runs) is dropped.
``MarketEvent.ts_event_ns`` of a daily bar is its session close (the ``BarPanel`` convention) and ``bar_index``
counts the daily events handed on (history and decisions alike).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.clock import NS_PER_SECOND, WallClock
from core.errors import DataError
from core.events import MarketEvent
from core.ib_errors import classify
from core.ib_messages import IbBar, IbConnected, IbDisconnected, IbError, IbHistoricalEnd
from core.ib_wrapper import IbConnection
from data.bar_guard import BAR_COLUMNS, value_reason
from data.calendar import TradingCalendar
from data.ib_handler import ib_bar_time_ns, market_event_from_arrays, stock_contract

log = logging.getLogger(__name__)

DEFAULT_REQ_ID_BASE = 70_000  # daily history req ids: base + batch * 1000 + index of the symbol
REFRESH_SESSIONS = 5  # after a close: enough to cover a long weekend of holidays
CLOSE_GRACE_S = 120.0  # on_clock: ask this long after a close (IB's daily bar settles in the minutes after 16:00)
BATCH_TIMEOUT_S = 60.0  # a batch without every end within this is abandoned (logged) and asked again


def history_duration(sessions: int) -> str:
    """An IB duration string covering at least ``sessions`` trading sessions ("N D" up to a year, else "N Y")."""
    calendar_days = math.ceil(sessions * 7 / 5) + 10  # weekends, plus room for holidays
    if calendar_days <= 365:
        return f"{calendar_days} D"
    return f"{math.ceil(calendar_days / 365)} Y"


def request_daily_history(connection: IbConnection, req_id: int, symbol: str, duration: str) -> bool:
    """Send one daily-history request (1 day, TRADES, regular hours, ``YYYYMMDD`` dates); False if not sent.

    One definition of "the daily bar" for the bar store (``etl/fetch_daily_bars.py``) and the live strategies, so
    research and trading read the same bars.
    """
    contract = stock_contract(symbol)
    return connection.send(
        lambda c: c.reqHistoricalData(req_id, contract, "", duration, "1 day", "TRADES", 1, 1, False, []),
        what=f"reqHistoricalData:{symbol}",
    )


def daily_bars_frame(rows: Sequence[IbBar]) -> pd.DataFrame:
    """Daily IbBars (``YYYYMMDD`` dates) to a bar frame: tz-naive midnight "date" index, float columns."""
    try:
        stamps = [ib_bar_time_ns(r.time) for r in rows]  # the one IB bar-time parser (daily: UTC midnight)
    except ValueError as exc:
        raise DataError(f"daily bars not usable: {exc}") from exc  # quarantined by the error policy, never traded
    index = pd.DatetimeIndex(pd.to_datetime(stamps, unit="ns"), name="date").normalize()
    data = {c: [float(getattr(r, c)) for r in rows] for c in BAR_COLUMNS}
    return pd.DataFrame(data, index=index)


@dataclass(slots=True)
class _Batch:
    warmup: bool
    pending: dict[int, str]  # req id -> symbol, until its end or error
    rows: dict[str, list[IbBar]]
    sent_ns: int


class DailyBarFeed:
    """Fetches daily bars from the broker and hands them on as ``MarketEvent``s (see the module docstring)."""

    def __init__(
        self,
        symbols: Sequence[str],
        connection: IbConnection,
        calendar: TradingCalendar,
        clock: WallClock,
        *,
        history_sessions: int,
        on_history: Callable[[MarketEvent], None],
        on_close: Callable[[MarketEvent], None],
        req_id_base: int = DEFAULT_REQ_ID_BASE,
    ) -> None:
        if history_sessions < 1:
            raise ValueError(f"history_sessions must be >= 1 (got {history_sessions})")
        self.symbols = tuple(symbols)
        self._connection = connection
        self._calendar = calendar
        self._clock = clock
        self._history_sessions = history_sessions
        self._on_history = on_history
        self._on_close = on_close
        self._req_id_base = req_id_base
        self._batch: _Batch | None = None
        self._batches_sent = 0
        self._last_date: pd.Timestamp | None = None  # newest daily bar handed on
        self._asked_for: pd.Timestamp | None = None  # newest completed session a refresh was sent for
        self._latest_intraday_ns: int | None = None
        self._clock_hint_ns: int | None = None  # the last on_clock time (minus the grace)
        self._completed_cache: tuple[int, int, pd.Timestamp | None] | None = None  # (from_ns, until_ns, session)
        self.bar_index = 0
        self.decisions = 0

    @property
    def last_date(self) -> pd.Timestamp | None:
        return self._last_date

    def market_clock(self) -> tuple[int | None, int | None]:
        """(the newest 5-s bar's time, the next session close after it), UTC epoch ns; None while unknown.

        The market's clock as the engine sees it: against ibsim the sim clock (running ``ibsim.speed`` times the
        wall clock), against a real gateway the exchange's. For the operator's view (STATUS, the dashboard).
        """
        latest = self._latest_intraday_ns
        if latest is None or self._last_completed_session(latest) is None or self._completed_cache is None:
            return latest, None
        return latest, self._completed_cache[1]

    # ---------------------------------------------------------------- routing targets
    def on_connected(self, _msg: IbConnected) -> None:
        """Every session (first or reconnect) starts with a history request: it also fills any gap."""
        self._batch = None  # requests of a dead session never end
        self._request(warmup=self._last_date is None)

    def on_disconnected(self, _msg: IbDisconnected) -> None:
        if self._batch is not None:
            log.warning("event=daily_bars_batch_dropped reason=disconnected pending=%s",
                        sorted(self._batch.pending.values()))  # fmt: skip
        self._batch = None

    def on_intraday(self, event: MarketEvent) -> None:
        """A 5-s bar: when a session newer than the newest daily bar has closed, ask for its daily bar."""
        ts = event.ts_event_ns
        self._latest_intraday_ns = ts if self._latest_intraday_ns is None else max(self._latest_intraday_ns, ts)
        self._refresh_if_closed(ts)

    def on_clock(self, now_ns: int) -> None:
        """A timer tick with the wall clock: with regular-hours bars the first bar after a close is the next
        morning's, so against a real gateway the close is noticed by the clock (``CLOSE_GRACE_S`` after it, when the
        daily bar is final). Against ibsim the sim clock runs ahead and this finds nothing new."""
        settled_ns = now_ns - int(CLOSE_GRACE_S * NS_PER_SECOND)
        self._clock_hint_ns = settled_ns
        self._refresh_if_closed(settled_ns)

    def _refresh_if_closed(self, ts: int) -> None:
        completed = self._last_completed_session(ts)
        if completed is None or (self._last_date is not None and completed <= self._last_date):
            return
        if self._batch is not None:
            if self._clock.now_ns() - self._batch.sent_ns < BATCH_TIMEOUT_S * NS_PER_SECOND:
                return
            log.error("event=daily_bars_batch_timeout pending=%s timeout_s=%s action=ask_again",
                      sorted(self._batch.pending.values()), BATCH_TIMEOUT_S)  # fmt: skip
            self._batch = None
        elif completed == self._asked_for:
            return  # asked already and the answer held no newer bar (e.g. a data gap at the broker)
        self._asked_for = completed
        self._request(warmup=self._last_date is None)

    def on_bar(self, msg: IbBar) -> None:
        batch = self._batch
        if batch is None or not msg.historical:
            return
        symbol = batch.pending.get(msg.req_id)
        if symbol is not None:
            batch.rows[symbol].append(msg)

    def on_end(self, msg: IbHistoricalEnd) -> None:
        self._request_done(msg.req_id)

    def on_error(self, msg: IbError) -> None:
        batch = self._batch
        if batch is None or msg.req_id not in batch.pending:
            return
        info = classify(msg.code, msg.message)
        log.warning("event=daily_bars_request_failed symbol=%s req_id=%d code=%d action=%s message=%r",
                    batch.pending[msg.req_id], msg.req_id, msg.code, info.action, msg.message)  # fmt: skip
        self._request_done(msg.req_id)

    # ---------------------------------------------------------------- internals
    def _request(self, *, warmup: bool) -> None:
        sessions = self._history_sessions if warmup else REFRESH_SESSIONS
        duration = history_duration(sessions)
        base = self._req_id_base + (self._batches_sent % 10) * 1000
        self._batches_sent += 1
        batch = _Batch(warmup=warmup, pending={}, rows={s: [] for s in self.symbols}, sent_ns=self._clock.now_ns())
        self._batch = batch
        for i, symbol in enumerate(self.symbols):
            req_id = base + i
            batch.pending[req_id] = symbol
            if not request_daily_history(self._connection, req_id, symbol, duration):
                batch.pending.pop(req_id, None)
        log.info("event=daily_bars_requested warmup=%s duration=%r symbols=%d", warmup, duration,
                 len(batch.pending))  # fmt: skip
        if not batch.pending:
            self._batch = None  # not connected: the next IbConnected asks again

    def _request_done(self, req_id: int) -> None:
        batch = self._batch
        if batch is None or batch.pending.pop(req_id, None) is None:
            return
        if not batch.pending:
            self._batch = None
            self._hand_on(batch)

    def _hand_on(self, batch: _Batch) -> None:
        frames = {s: daily_bars_frame(rows) for s, rows in batch.rows.items() if rows}
        dates = self._new_dates(frames)
        if not dates:
            log.info("event=daily_bars_no_new_date warmup=%s last_date=%s", batch.warmup, self._date_text())
            return
        for k, day in enumerate(dates):
            event = self._event(day, frames)
            self._last_date = day
            self.bar_index += 1
            if batch.warmup or k < len(dates) - 1 or self._too_late_to_decide(day):
                self._on_history(event)
            else:
                self.decisions += 1
                log.info("event=daily_bar_close date=%s symbols_priced=%d", day.date(),
                         int(np.count_nonzero(~np.isnan(event.close))))  # fmt: skip
                self._on_close(event)
        log.info("event=daily_bars_handed_on warmup=%s dates=%d first=%s last=%s", batch.warmup, len(dates),
                 dates[0].date(), dates[-1].date())  # fmt: skip

    def _too_late_to_decide(self, day: pd.Timestamp) -> bool:
        """True when the market has already reached the close of the session after ``day`` (known from the
        intraday bars): a decision on ``day`` would trade a session later than the backtest does, so it is skipped
        (logged) and the bar only warms the indicators."""
        now = self._latest_intraday_ns
        if now is None:
            return False
        try:
            following = self._calendar.next_session(day)
        except ValueError:
            return False
        deadline = int(self._calendar.session_close_ns(pd.DatetimeIndex([following]))[0])
        if now < deadline:
            return False
        log.warning("event=daily_decision_skipped date=%s reason=next_session_already_closed (the bar came too late, "
                    "e.g. after a long disconnect): history only", day.date())  # fmt: skip
        return True

    def _new_dates(self, frames: dict[str, pd.DataFrame]) -> list[pd.Timestamp]:
        if not frames:
            return []
        dates = pd.DatetimeIndex(sorted(set().union(*(f.index for f in frames.values()))))
        hints = [t for t in (self._latest_intraday_ns, self._clock_hint_ns) if t is not None]
        completed = self._last_completed_session(max(hints) if hints else self._clock.now_ns())
        keep = []
        for day in dates:
            if self._last_date is not None and day <= self._last_date:
                continue
            if not self._calendar.session_mask(pd.DatetimeIndex([day]))[0]:
                log.warning("event=daily_bar_quarantined date=%s reason=not_a_session", day.date())
                continue
            if completed is not None and day > completed:
                log.info("event=daily_bar_dropped date=%s reason=session_not_closed", day.date())
                continue
            keep.append(day)
        return keep

    def _event(self, day: pd.Timestamp, frames: dict[str, pd.DataFrame]) -> MarketEvent:
        values = np.full((5, len(self.symbols)), np.nan)
        for j, symbol in enumerate(self.symbols):
            frame = frames.get(symbol)
            if frame is None or day not in frame.index:
                continue
            row = frame.loc[day]
            if isinstance(row, pd.DataFrame):  # a duplicated date: keep the last, as the bar store does
                log.warning("event=daily_bar_duplicate symbol=%s date=%s action=keep_last", symbol, day.date())
                row = row.iloc[-1]
            bar = tuple(float(row[c]) for c in BAR_COLUMNS)
            reason = value_reason(*bar)
            if reason is not None:
                log.warning("event=daily_bar_quarantined symbol=%s date=%s reason=%s bar=%s", symbol, day.date(),
                            reason, bar)  # fmt: skip
                continue
            values[:, j] = bar
        close_ns = int(self._calendar.session_close_ns(pd.DatetimeIndex([day]))[0])
        return market_event_from_arrays(close_ns, self._clock.now_ns(), self.bar_index, self.symbols, *values)

    def _last_completed_session(self, ts_ns: int) -> pd.Timestamp | None:
        """The newest session whose close is <= ``ts_ns`` (cached: the answer changes once per session)."""
        cache = self._completed_cache
        if cache is not None and cache[0] <= ts_ns < cache[1]:
            return cache[2]
        cal = self._calendar
        local = pd.Timestamp(ts_ns, unit="ns", tz="UTC").tz_convert(cal.tz)
        day = pd.Timestamp(local.date())
        try:
            if cal.session_mask(pd.DatetimeIndex([day]))[0]:
                close_ns = int(cal.session_close_ns(pd.DatetimeIndex([day]))[0])
                if ts_ns >= close_ns:
                    completed, until = day, int(cal.session_close_ns(pd.DatetimeIndex([cal.next_session(day)]))[0])
                else:
                    completed, until = cal.previous_session(day), close_ns
            else:
                completed = cal.previous_session(day)
                until = int(cal.session_close_ns(pd.DatetimeIndex([cal.next_session(day)]))[0])
            since = int(cal.session_close_ns(pd.DatetimeIndex([completed]))[0])
        except ValueError:  # outside the calendar's range: no answer rather than a crash in the live loop
            return None
        self._completed_cache = (since, until, completed)
        return completed

    def _date_text(self) -> str:
        return "none" if self._last_date is None else str(self._last_date.date())
