"""IB live market data into ``MarketEvent``s: subscribe, guard, assemble one event per timestamp, resubscribe.

Everything here runs on the **dispatcher thread**: the wiring routes ``IbConnected``, ``IbBar``, ``IbTick``,
``IbError`` and ``IbDataStale`` to the ``on_*`` methods, and requests go out through ``IbConnection.send``.
The socket, reconnects and staleness detection belong to ``core/ib_wrapper.py``; this module decides what the
data means.

Bars are keyed by their **start** time, as IB labels them (a 5 s real-time bar stamped 09:30:05 covers
09:30:05-09:30:10); ``ts_event_ns`` of the MarketEvent is that label in UTC epoch ns, the same convention as the
daily bar store. Each bar goes through the streaming ``BarGuard``; a rejected bar is logged by the guard and its
symbol is NaN at that timestamp, never published.

The translation is pure and socket-free (``ib_bar_time_ns``, ``bars_to_arrays``, ``BarAssembler``,
``TickBarBuilder``), so it is unit-tested without a gateway.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from ibapi.contract import Contract

from core.clock import NS_PER_SECOND, WallClock
from core.events import MarketEvent
from core.ib_errors import IbErrorAction, classify
from core.ib_messages import IbBar, IbConnected, IbDataStale, IbDisconnected, IbError, IbTick
from core.ib_wrapper import IbConnection
from data.bar_guard import BarGuard

log = logging.getLogger(__name__)

REAL_TIME_BAR_S = 5  # the only size reqRealTimeBars accepts
DEFAULT_REQ_ID_BASE = 90_000  # market data req ids: base + index of the symbol (stable across reconnects)
_TICK_LAST, _TICK_LAST_SIZE, _TICK_DELAYED_LAST, _TICK_DELAYED_LAST_SIZE = 4, 5, 68, 71


# ==================================================================== pure translation
@dataclass(frozen=True, slots=True)
class BarValues:
    """One accepted bar of one symbol (prices in the instrument's currency, volume in shares)."""

    open: float
    high: float
    low: float
    close: float
    volume: float


def ib_bar_time_ns(time_text: str) -> int:
    """IB bar time to UTC epoch ns: epoch seconds (real-time bars, formatDate=2), ``YYYYMMDD`` (daily, midnight
    UTC as the bar store labels sessions) or ``YYYYMMDD  HH:MM:SS`` (read as UTC). Raises ValueError otherwise."""
    text = time_text.strip()
    if text.isdigit() and len(text) != 8:
        return int(text) * NS_PER_SECOND
    parts = text.split()
    if len(parts[0]) == 8 and parts[0].isdigit():
        day = dt.datetime.strptime(parts[0], "%Y%m%d").replace(tzinfo=dt.UTC)
        if len(parts) >= 2:
            clock_time = dt.datetime.strptime(parts[1], "%H:%M:%S")
            day = day.replace(hour=clock_time.hour, minute=clock_time.minute, second=clock_time.second)
        return int(day.timestamp()) * NS_PER_SECOND
    raise ValueError(f"unrecognised IB bar time {time_text!r}: expected epoch seconds or YYYYMMDD[  HH:MM:SS]")


def bars_to_arrays(
    symbols: Sequence[str], bars: Mapping[str, BarValues | None]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(open, high, low, close, volume) float64 arrays in ``symbols`` order; NaN where a symbol has no bar."""
    out = np.full((5, len(symbols)), np.nan, dtype=np.float64)
    for i, symbol in enumerate(symbols):
        bar = bars.get(symbol)
        if bar is not None:
            out[:, i] = (bar.open, bar.high, bar.low, bar.close, bar.volume)
    return out[0], out[1], out[2], out[3], out[4]


def market_event(
    ts_event_ns: int, ts_init_ns: int, bar_index: int, symbols: tuple[str, ...], bars: Mapping[str, BarValues | None]
) -> MarketEvent:
    return market_event_from_arrays(ts_event_ns, ts_init_ns, bar_index, symbols, *bars_to_arrays(symbols, bars))


def market_event_from_arrays(
    ts_event_ns: int, ts_init_ns: int, bar_index: int, symbols: tuple[str, ...],
    o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray,
) -> MarketEvent:  # fmt: skip
    """The one translation of IB bars (intraday and daily alike) into a ``MarketEvent``: arrays in symbol order."""
    return MarketEvent(
        ts_event_ns=ts_event_ns,
        ts_init_ns=ts_init_ns,
        bar_index=bar_index,
        symbols=symbols,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=v,
    )


class BarAssembler:
    """Groups per-symbol bars by timestamp; a timestamp is complete when every expected symbol has reported
    (a rejected bar reports ``None``) or when any symbol reports a later timestamp. Pure state, no I/O.

    A bar for a timestamp already emitted is dropped (returned nothing): the event went out without it.
    """

    def __init__(self, symbols: Sequence[str]) -> None:
        self.expected: set[str] = set(symbols)
        self._pending: dict[int, dict[str, BarValues | None]] = {}
        self._last_emitted_ns: int | None = None

    def add(self, symbol: str, ts_ns: int, bar: BarValues | None) -> list[tuple[int, dict[str, BarValues | None]]]:
        if self._last_emitted_ns is not None and ts_ns <= self._last_emitted_ns:
            log.warning("event=late_bar_dropped symbol=%s ts_ns=%d last_emitted_ns=%d", symbol, ts_ns,
                        self._last_emitted_ns)  # fmt: skip
            return []
        self._pending.setdefault(ts_ns, {})[symbol] = bar
        return self._complete()

    def forget(self, symbol: str) -> list[tuple[int, dict[str, BarValues | None]]]:
        """Stop waiting for ``symbol`` (its subscription failed for good); returns what that completes."""
        self.expected.discard(symbol)
        return self._complete()

    def _complete(self) -> list[tuple[int, dict[str, BarValues | None]]]:
        done: list[tuple[int, dict[str, BarValues | None]]] = []
        newest = max(self._pending, default=0)
        for ts_ns in sorted(self._pending):
            bars = self._pending[ts_ns]
            if ts_ns < newest or self.expected <= bars.keys():
                done.append((ts_ns, self._pending.pop(ts_ns)))
                self._last_emitted_ns = ts_ns
            else:
                break
        return done


class TickBarBuilder:
    """Builds ``bar_s`` bars of one symbol from last-trade ticks, bucketed by arrival time (``ts_init_ns``).

    A bar is finished when the first tick of a later bucket arrives. Pure state, no I/O.
    """

    def __init__(self, bar_s: int = REAL_TIME_BAR_S) -> None:
        self._bar_ns = bar_s * NS_PER_SECOND
        self._bucket_ns: int | None = None
        self._bar: list[float] | None = None  # open, high, low, close, volume

    def add(self, ts_ns: int, price: float | None, size: float | None) -> tuple[int, BarValues] | None:
        bucket = ts_ns - ts_ns % self._bar_ns
        finished = None
        if self._bucket_ns is not None and bucket > self._bucket_ns and self._bar is not None:
            finished = (self._bucket_ns, BarValues(*self._bar))
            self._bar = None
        if self._bucket_ns is None or bucket > self._bucket_ns:
            self._bucket_ns = bucket
        if price is not None and price > 0:
            if self._bar is None:
                self._bar = [price, price, price, price, 0.0]
            else:
                self._bar[1], self._bar[2], self._bar[3] = max(self._bar[1], price), min(self._bar[2], price), price
        if size is not None and self._bar is not None:
            self._bar[4] += size
        return finished


def stock_contract(symbol: str) -> Contract:
    contract = Contract()
    contract.symbol, contract.secType, contract.exchange, contract.currency = symbol, "STK", "SMART", "USD"
    return contract


# ==================================================================== the handler (dispatcher thread)
class IbMarketDataHandler:
    """Subscribes every symbol on each ``IbConnected`` and publishes guarded ``MarketEvent``s through ``put``.

    ``source="bars"`` uses ``reqRealTimeBars`` (5 s, TRADES, ``use_rth``); ``source="ticks"`` uses
    ``reqMktData`` and builds 5 s bars from last-trade ticks. Request ids are ``req_id_base + i`` for the
    i-th symbol, the same after every reconnect. A symbol whose request fails for good (e.g. error 200) is
    quarantined: not resubscribed, NaN in every event. ``bar_index`` counts the events this handler published.
    Not thread-safe: dispatcher thread only.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        connection: IbConnection,
        put: Callable[[object], None],
        clock: WallClock,
        guard: BarGuard,
        *,
        source: Literal["bars", "ticks"] = "bars",
        use_rth: bool = True,
        req_id_base: int = DEFAULT_REQ_ID_BASE,
    ) -> None:
        if len(set(symbols)) != len(symbols) or not symbols:
            raise ValueError(f"symbols must be a non-empty list without duplicates (got {list(symbols)})")
        self.symbols = tuple(symbols)
        self._connection = connection
        self._put = put
        self._clock = clock
        self._guard = guard
        self._source = source
        self._use_rth = use_rth
        self._symbol_by_req = {req_id_base + i: s for i, s in enumerate(self.symbols)}
        self._req_by_symbol = {s: r for r, s in self._symbol_by_req.items()}
        self._assembler = BarAssembler(self.symbols)
        self._tick_bars = {s: TickBarBuilder() for s in self.symbols}
        self._failed: set[str] = set()
        self._subscribed: set[int] = set()
        self._bar_index = 0
        self.published = 0
        self.rejected = 0

    # ---------------------------------------------------------------- routing targets
    def on_connected(self, msg: IbConnected) -> None:
        """New session (first or reconnect): its subscriptions are gone, so request them all again."""
        self._subscribed.clear()
        self._subscribe_all(reason="reconnect" if msg.reconnect else "connect")

    def on_disconnected(self, msg: IbDisconnected) -> None:
        self._subscribed.clear()
        log.warning("event=market_data_down client_id=%d reason=%s", msg.client_id, msg.reason)

    def on_data_stale(self, msg: IbDataStale) -> None:
        """Silence while subscribed: cancel and subscribe again (the cheap cure for a farm that lost us)."""
        log.warning("event=market_data_resubscribe reason=stale silent_for_s=%.1f", msg.silent_for_s)
        self._cancel_all()
        self._subscribe_all(reason="stale")

    def on_error(self, msg: IbError) -> None:
        symbol = self._symbol_by_req.get(msg.req_id)
        action = classify(msg.code, msg.message).action
        if symbol is None:
            if msg.req_id == -1 and msg.code == 1101:  # connectivity restored, data lost
                self._subscribed.clear()
                self._subscribe_all(reason="ib_1101")
            return
        if action in (IbErrorAction.FAIL_REQUEST, IbErrorAction.FAIL_ORDER):
            log.error("event=market_data_failed symbol=%s req_id=%d code=%d message=%r action=quarantine_symbol",
                      symbol, msg.req_id, msg.code, msg.message)  # fmt: skip
            self._failed.add(symbol)
            self._subscribed.discard(msg.req_id)
            self._connection.market_data_cancelled(msg.req_id)
            self._publish(self._assembler.forget(symbol), msg.ts_init_ns)
        else:
            log.warning("event=market_data_error symbol=%s req_id=%d code=%d action=%s message=%r",
                        symbol, msg.req_id, msg.code, action, msg.message)  # fmt: skip

    def on_bar(self, msg: IbBar) -> None:
        symbol = self._symbol_by_req.get(msg.req_id)
        if symbol is None or msg.historical or symbol in self._failed:
            return
        try:
            ts_ns = ib_bar_time_ns(msg.time)
        except ValueError as exc:
            log.warning("event=bar_unreadable symbol=%s time=%r error=%s", symbol, msg.time, exc)
            return
        bar = BarValues(msg.open, msg.high, msg.low, msg.close, msg.volume)
        self._accept(symbol, ts_ns, bar, msg.ts_init_ns)

    def on_tick(self, msg: IbTick) -> None:
        symbol = self._symbol_by_req.get(msg.req_id)
        if symbol is None or self._source != "ticks" or symbol in self._failed:
            return
        price = msg.value if not msg.is_size and msg.tick_type in (_TICK_LAST, _TICK_DELAYED_LAST) else None
        size = msg.value if msg.is_size and msg.tick_type in (_TICK_LAST_SIZE, _TICK_DELAYED_LAST_SIZE) else None
        if price is None and size is None:
            return
        finished = self._tick_bars[symbol].add(msg.ts_init_ns, price, size)
        if finished is not None:
            self._accept(symbol, finished[0], finished[1], msg.ts_init_ns)

    # ---------------------------------------------------------------- internals
    def _accept(self, symbol: str, ts_ns: int, bar: BarValues, ts_init_ns: int) -> None:
        reason = self._guard.check(symbol, ts_ns, bar.open, bar.high, bar.low, bar.close, bar.volume)
        if reason is not None:
            self.rejected += 1
        self._publish(self._assembler.add(symbol, ts_ns, bar if reason is None else None), ts_init_ns)

    def _publish(self, completed: list[tuple[int, dict[str, BarValues | None]]], ts_init_ns: int) -> None:
        for ts_ns, bars in completed:
            if not any(b is not None for b in bars.values()):
                continue  # every bar at this time was rejected: nothing to trade on
            self._put(market_event(ts_ns, self._clock.now_ns(), self._bar_index, self.symbols, bars))
            self._bar_index += 1
            self.published += 1

    def _subscribe_all(self, reason: str) -> None:
        for symbol in self.symbols:
            if symbol in self._failed:
                continue
            req_id = self._req_by_symbol[symbol]
            contract = stock_contract(symbol)
            if self._source == "bars":
                ok = self._connection.send(
                    lambda c, r=req_id, k=contract: c.reqRealTimeBars(
                        r, k, REAL_TIME_BAR_S, "TRADES", self._use_rth, []
                    ),
                    what=f"reqRealTimeBars:{symbol}",
                )
            else:
                ok = self._connection.send(
                    lambda c, r=req_id, k=contract: c.reqMktData(r, k, "", False, False, []),
                    what=f"reqMktData:{symbol}",
                )
            if ok:
                self._subscribed.add(req_id)
                self._connection.market_data_subscribed(req_id)
        log.info("event=market_data_subscribed reason=%s source=%s subscribed=%d failed=%d",
                 reason, self._source, len(self._subscribed), len(self._failed))  # fmt: skip

    def _cancel_all(self) -> None:
        for req_id in sorted(self._subscribed):
            if self._source == "bars":
                self._connection.send(lambda c, r=req_id: c.cancelRealTimeBars(r), what="cancelRealTimeBars")
            else:
                self._connection.send(lambda c, r=req_id: c.cancelMktData(r), what="cancelMktData")
            self._connection.market_data_cancelled(req_id)
        self._subscribed.clear()
