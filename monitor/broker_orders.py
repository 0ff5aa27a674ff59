"""Orders of every client as the broker lists them: how many work now, and how many are new within the window.

Why: the order log (``order_tail.py``) counts only what the engine writes. A flood that bypasses it (another program
on the account with its own client id, a person at TWS, an engine bug that sends before it logs) is visible only at
the broker. The monitor's own connection reads every client's open orders (``broker.py``: ``reqAllOpenOrders`` once
per check interval); this counter turns those lists into two numbers the checks judge:

- **working orders**: the newest list's count of orders not yet done;
- **submissions in the window**: ``(client id, order id)`` keys first seen within ``window_s``, stamped with the time
  of the list that first held them (so a key is counted once, however many lists it stays in).

What a list cannot show: an order placed and done (filled, cancelled) between two lists is never seen, so the
submission count is a lower bound; a flood of resting orders is seen in full. The first list of each connection is
the baseline (its orders are remembered, not counted): the monitor cannot tell when orders it had not yet seen were
placed, and a monitor (re)started next to an engine with working orders must not call them a burst. A key is
forgotten once it is older than the window and gone from the newest list.

Monitor loop thread only (``observe`` and ``status`` take what ``BrokerLink.snapshot`` returned).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from core.clock import NS_PER_SECOND
from monitor.broker import BrokerSnapshot, OrderKey


@dataclass(frozen=True, slots=True)
class BrokerOrdersStatus:
    """What the newest open-order list says (``list_ts_ns``: when it was read; None before the first one)."""

    list_ts_ns: int | None
    open_orders: int
    submissions_in_window: int
    busiest_client_id: int | None  # the client with most submissions in the window
    busiest_client_submissions: int

    def age_s(self, now_ns: int) -> float | None:
        return None if self.list_ts_ns is None else (now_ns - self.list_ts_ns) / NS_PER_SECOND


class BrokerOrderCounter:
    """Working orders and new orders per window from the broker's open-order lists (see the module docstring)."""

    def __init__(self, window_s: float) -> None:
        self.window_ns = int(window_s * NS_PER_SECOND)
        self._first_seen_ns: dict[OrderKey, int | None] = {}  # None: in a baseline list, never counted
        self._generation = 0
        self._connection = 0
        self._list_ts_ns: int | None = None
        self._open_orders = 0

    def observe(self, snapshot: BrokerSnapshot) -> None:
        """Fold in the newest complete list, if it is one not seen yet."""
        if snapshot.open_orders_generation == self._generation or snapshot.open_orders_ts_ns is None:
            return
        if snapshot.order_keys_connection == 0:  # a list from before any connection: cannot happen, judge nothing
            return
        self._generation = snapshot.open_orders_generation
        ts_ns = snapshot.open_orders_ts_ns
        baseline = snapshot.order_keys_connection != self._connection
        self._connection = snapshot.order_keys_connection
        for key in snapshot.order_keys:
            if key not in self._first_seen_ns:
                self._first_seen_ns[key] = None if baseline else ts_ns
        self._forget(snapshot.order_keys, ts_ns)
        self._list_ts_ns, self._open_orders = ts_ns, snapshot.open_orders

    def status(self, now_ns: int) -> BrokerOrdersStatus:
        since_ns = now_ns - self.window_ns
        recent = Counter(key[0] for key, ts in self._first_seen_ns.items() if ts is not None and ts >= since_ns)
        busiest = recent.most_common(1)
        return BrokerOrdersStatus(
            list_ts_ns=self._list_ts_ns,
            open_orders=self._open_orders,
            submissions_in_window=sum(recent.values()),
            busiest_client_id=busiest[0][0] if busiest else None,
            busiest_client_submissions=busiest[0][1] if busiest else 0,
        )

    def _forget(self, listed: frozenset[OrderKey], now_ns: int) -> None:
        since_ns = now_ns - self.window_ns
        old = [k for k, ts in self._first_seen_ns.items() if k not in listed and (ts is None or ts < since_ns)]
        for key in old:
            del self._first_seen_ns[key]
