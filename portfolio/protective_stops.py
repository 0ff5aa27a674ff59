"""Protective stops: an entry of a ``stop: atr`` strategy, once it fills, is protected by a real STP order.

Part of the decision core, so the backtester and the live engine run the very same rules (only the router
differs: the simulated venue or IB).

- Placing: each execution of such an entry places one stop for that execution's shares (so the stops follow
  partial fills and always add up to the filled quantity), on the opposite side, at the execution's price minus
  (long) or plus (short) the stop distance the strategy gave at the entry decision (the entry order carries it as
  ``protective_stop_distance``, so it is journaled and survives a restart), rounded to the cent, GTC. Its client
  order id derives from the execution id, so a repeated execution never places a second stop. Stops only reduce
  exposure: they are sent straight to the router, past the size limits, the monthly cap and the pre-trade gate
  (none of which may cut or refuse protection), in ACTIVE and REDUCING alike. While STARTING (live, not yet
  reconciled: no order may leave) a stop waits and is placed at the first market event after; when HALTED none is
  placed (the halt cancels and flattens).
- No overshoot (an exit and a stop both filling would reverse the position): a strategy's exit (or cover) on a
  symbol with open stops first cancels them and is **held**; it is decided again only once the books have
  received every stop's end (its cancel, or its fill). If a stop filled meanwhile, the position it decides on is
  what the stop left (flat: nothing is sent, counted as ``exit_while_flat``). In the backtest the cancel is
  immediate, so the exit is sent at the same close as without stops. A halt or a flatten cancels everything
  (``cancel_all`` reaches the stops like any order); a flatten from the broker's positions also counts the shares
  of stops the broker has not yet confirmed cancelled as covered (``PortfolioManager.flatten``), so a stop that
  fills in that window is not doubled by the flatten's sale; once such a stop's end is booked after a halt, the
  halt flattens again (idempotent), so what it covered is closed then.
- After an engine restart the stops are journaled orders like any other: adopted from the broker by the
  reconciliation, never placed again. An exit held when the process died is not remembered (the strategy
  decides again on its next bar; the stop stays at the broker meanwhile).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from core.events import FillEvent, OrderEvent, OrderType, Side, SignalEvent, TimeInForce, TradingState
from execution.router import OrderRouter, WorkingOrders

log = logging.getLogger(__name__)


def stop_client_order_id(entry: OrderEvent, exec_id: str) -> str:
    """The stop of one entry execution: the same execution always yields the same id (idempotent)."""
    digest = hashlib.sha1(exec_id.encode()).hexdigest()[:12]
    return f"{entry.client_order_id}.STP.{digest}"


def stop_price_for(entry_side: Side, fill_price: float, distance: float) -> float:
    """Below a long's entry price, above a short's, rounded to the cent."""
    return round(fill_price - distance if entry_side is Side.BUY else fill_price + distance, 2)


class ProtectiveStops:
    """Places the stops of filled entries and holds exits until their stops are gone (see the module doc)."""

    def __init__(
        self,
        router: OrderRouter,
        working: WorkingOrders,
        now_ns: Callable[[], int],
        trading_state: Callable[[], TradingState],
    ) -> None:
        self._router = router
        self._orders = working
        self._now_ns = now_ns
        self._state = trading_state
        self._held_exits: dict[str, SignalEvent] = {}  # symbol -> the exit waiting for its stops' ends
        self._deferred: list[OrderEvent] = []  # stops of fills booked while STARTING

    # -- placing --------------------------------------------------------------------------------------------------
    def on_entry_fill(self, fill: FillEvent) -> None:
        """A new execution booked: if it belongs to a protected entry, place (or, while STARTING, defer) its stop."""
        entry = self._orders.order_event(fill.client_order_id)
        if entry is None or entry.protective_stop_distance is None or entry.order_type is OrderType.STP:
            return
        stop = self._stop_order(entry, fill)
        if stop is None:
            return
        state = self._state()
        if state is TradingState.HALTED:
            log.warning("event=protective_stop_not_placed reason=halted client_order_id=%s symbol=%s",
                        stop.client_order_id, stop.symbol)  # fmt: skip
        elif state is TradingState.STARTING:
            self._deferred.append(stop)
        else:
            self._place(stop)

    def has_deferred(self) -> bool:
        return bool(self._deferred)

    def place_deferred(self) -> None:
        """Send the stops held back while STARTING, once orders may leave (called on every market event)."""
        if not self._deferred or self._state() in (TradingState.STARTING, TradingState.HALTED):
            return
        deferred, self._deferred = self._deferred, []
        for stop in deferred:
            self._place(stop)

    def _stop_order(self, entry: OrderEvent, fill: FillEvent) -> OrderEvent | None:
        distance = float(entry.protective_stop_distance or 0.0)
        price = stop_price_for(entry.side, fill.price, distance)
        if not price > 0:
            log.warning("event=protective_stop_not_placed reason=nonpositive_price client_order_id=%s price=%s",
                        entry.client_order_id, price)  # fmt: skip
            return None
        side = Side.SELL if entry.side is Side.BUY else Side.BUY
        return OrderEvent(
            ts_event_ns=fill.ts_event_ns,  # the entry's execution: the simulated venue matches the stop from then on
            ts_init_ns=self._now_ns(),
            client_order_id=stop_client_order_id(entry, fill.exec_id),
            strategy_id=entry.strategy_id,
            symbol=entry.symbol,
            side=side,
            quantity=fill.quantity,
            order_type=OrderType.STP,
            stop_price=price,
            time_in_force=TimeInForce.GTC,
            reference_price=price,  # the price it decides at once triggered: TCA measures the gap past it
            reduce_only=True,
            reason=f"protective stop {price:.2f} of {entry.client_order_id}",
        )

    def _place(self, stop: OrderEvent) -> None:
        log.info("event=protective_stop_placed client_order_id=%s symbol=%s side=%s qty=%d stop_price=%.2f",
                 stop.client_order_id, stop.symbol, stop.side, stop.quantity, stop.stop_price)  # fmt: skip
        self._router.submit(stop)

    # -- exits ----------------------------------------------------------------------------------------------------
    def hold_exit(self, signal: SignalEvent) -> bool:
        """An exit is about to be decided on ``signal.symbol``: with open stops, cancel them and hold the exit
        (True: the caller sends nothing now); without, False."""
        stops = self._orders.open_stops(signal.symbol)
        if not stops:
            return False
        self._held_exits[signal.symbol] = signal
        log.info("event=exit_held_for_stop_cancel strategy_id=%s symbol=%s stops=%s", signal.strategy_id,
                 signal.symbol, ",".join(stops))  # fmt: skip
        for client_order_id in stops:
            self._router.cancel(client_order_id, f"exit of {signal.strategy_id}: protective stop cancelled first")
        return True

    def released_exit(self, symbol: str) -> SignalEvent | None:
        """After an order's end was booked: the held exit of ``symbol`` once none of its stops is open, else None."""
        if symbol not in self._held_exits or self._orders.open_stops(symbol):
            return None
        return self._held_exits.pop(symbol)
