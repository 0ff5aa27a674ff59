"""Flatten from the broker's truth: every flatten first asks the broker what the account holds.

Why: the engine's books can be wrong exactly when a flatten matters. The risk monitor may have flattened the
account through its own connection while the engine was frozen (SIGSTOP), and a kill flag can be present before
the engine has even connected. Flattening "from our books" then sells shares the account no longer holds: a
cash account goes short. So a flatten here is a round trip: once connected and reconciled, ask for the
positions (``reqPositions`` ... ``positionEnd``; the answers are kept by ``live.broker_sync``, the one keeper of
the broker's positions) and our open orders (``reqOpenOrders`` ... ``openOrderEnd``, which bring the executor's
book up to date), then send only what closes the broker's position net of the working flatten orders
(``PortfolioManager.flatten(reason, positions)``). Nothing is sent, or journaled, before connect and reconcile: a
request made earlier waits for them.

A round trip that gets no answer within ``ROUND_TRIP_TIMEOUT_S`` is asked again (a flatten must not be dropped;
nor may it fall back to our books). Dispatcher thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from core.clock import NS_PER_SECOND, WallClock
from core.events import FillEvent
from core.ib_messages import IbConnected, IbDisconnected, IbOpenOrderEnd, IbPositionEnd

log = logging.getLogger(__name__)

ROUND_TRIP_TIMEOUT_S = 5.0


class BrokerFlatten:
    """``request(reason)`` a flatten; it is sent once the broker has told what it holds (see the module doc)."""

    def __init__(
        self,
        clock: WallClock,
        *,
        request_positions: Callable[[], None],
        request_open_orders: Callable[[], None],
        broker_positions: Callable[[], Mapping[str, float]],
        flatten: Callable[[str, Mapping[str, float]], None],
        ready: Callable[[], bool],
    ) -> None:
        self._clock = clock
        self._request_positions = request_positions
        self._request_open_orders = request_open_orders
        self._broker_positions = broker_positions  # the one keeper of the broker's word (live.broker_sync)
        self._flatten = flatten
        self._ready = ready
        self._pending: str | None = None  # the reason of a flatten not yet sent
        self._in_flight: str | None = None  # the reason of the round trip under way
        self._positions_done = self._orders_done = False
        self._round_trip = 0
        self.last_broker_positions: dict[str, float] | None = None  # what the last completed round trip learned

    @property
    def busy(self) -> bool:
        return self._pending is not None or self._in_flight is not None

    def broker_flat(self) -> bool:
        """The last completed round trip found no position and no flatten is waiting or under way."""
        return not self.busy and self.last_broker_positions == {}

    def request(self, reason: str) -> None:
        """Ask for a flatten; one already waiting or under way serves this one too (its answer comes later)."""
        if self._in_flight is not None or self._pending is not None:
            log.info("event=flatten_request_joined reason=%r", reason)
            return
        log.warning("event=flatten_requested reason=%r ready=%s", reason, self._ready())
        self._pending = reason
        self.try_start()

    def try_start(self) -> None:
        """Start the round trip if a flatten waits and the engine is connected and reconciled (call on changes)."""
        if self._pending is None or self._in_flight is not None or not self._ready():
            return
        self._in_flight, self._pending = self._pending, None
        self._positions_done = self._orders_done = False
        self._round_trip += 1
        trip = self._round_trip
        self._request_positions()
        self._request_open_orders()
        self._clock.call_at(self._clock.now_ns() + int(ROUND_TRIP_TIMEOUT_S * NS_PER_SECOND),
                            lambda _due: self._timed_out(trip))  # fmt: skip

    # -- routed IB messages ------------------------------------------------------------------------------------
    def on_position_end(self, _message: IbPositionEnd) -> None:
        if self._in_flight is not None:
            self._positions_done = True
            self._maybe_send()

    def on_open_order_end(self, _message: IbOpenOrderEnd) -> None:
        if self._in_flight is not None:
            self._orders_done = True
            self._maybe_send()

    def on_fill(self, _fill: FillEvent) -> None:
        """A fill after the last round trip makes its answer stale (an order in flight at a kill may have filled):
        ``broker_flat`` is unknown again until the next round trip."""
        self.last_broker_positions = None

    def on_connected(self, _message: IbConnected) -> None:
        self._abandon("reconnected")

    def on_disconnected(self, _message: IbDisconnected) -> None:
        self._abandon("disconnected")

    # -- internals ---------------------------------------------------------------------------------------------
    def _maybe_send(self) -> None:
        if self._in_flight is None or not (self._positions_done and self._orders_done):
            return
        reason, self._in_flight = self._in_flight, None
        broker = {symbol: quantity for symbol, quantity in self._broker_positions().items() if quantity}
        self.last_broker_positions = broker
        log.warning("event=flatten_from_broker reason=%r broker_positions=%s", reason, broker)
        self._flatten(reason, broker)

    def _abandon(self, why: str) -> None:
        """A round trip cut by the link: ask again once connected and reconciled."""
        if self._in_flight is not None:
            log.warning("event=flatten_round_trip_abandoned reason=%r why=%s (asked again when ready)",
                        self._in_flight, why)  # fmt: skip
            self._pending = self._pending or self._in_flight
            self._in_flight = None

    def _timed_out(self, trip: int) -> None:
        if trip == self._round_trip and self._in_flight is not None:
            log.error("event=flatten_round_trip_timeout timeout_s=%s (the broker did not answer: asking again)",
                      ROUND_TRIP_TIMEOUT_S)  # fmt: skip
            self._abandon("timeout")
            self.try_start()
