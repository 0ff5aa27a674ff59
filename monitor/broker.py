"""The monitor's own IB connection: the account as the broker sees it, and the actions of last resort.

Why its own connection (client id ``risk_monitor.risk_monitor_client_id``): the monitor must be able to check the
drawdown and to stop trading when the engine is frozen, dead or wrong, so it cannot borrow anything of the engine.
It reads three things, each independent of the engine's books:

- **NetLiquidation** from the account summary, re-requested every refresh (IB pushes account-summary updates only
  every few minutes; a new request answers at once). The previous request is cancelled first: IB allows two.
- **positions** of the account: ``reqPositions`` subscribes once per connection; the broker pushes every change,
  and ``request_snapshot`` asks for the full list again when the kill flow needs a proof of flatness.
- **open orders of every client**: ``reqAllOpenOrders`` snapshots (changes of other clients' orders are not
  pushed to us), collected between the request and ``openOrderEnd``; when requests overlap, only the answer to
  the newest counts (an older answer's end must not close the newer list half-read). Each complete list gives the
  number of working orders and the set of ``(client id, order id)`` keys it held (``order_key``), from which
  ``broker_orders.py`` counts the new orders of every client: the engine's, another program's, a person's.

Actions (used by the kill flow): ``global_cancel`` (``reqGlobalCancel``: every working order of the account,
whoever placed it) and ``place_market`` (a market order closing one position; built by the pure
``execution.ib_translate`` helpers, so this module never imports ``ibapi``).

Threads: ``IbConnection``'s run thread calls ``_on_message``, which only updates the state below under a lock.
The monitor loop calls ``tick``; the kill flow's thread calls ``request_snapshot``, ``global_cancel`` and
``place_market``. ``IbConnection.send`` from two threads is safe: ibapi writes each message whole under its lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from core.clock import NS_PER_SECOND, WallClock
from core.config_models import IbConnectionConfig
from core.errors import InvariantViolation, OrderRejected
from core.events import OrderEvent, OrderType, Side
from core.ib_messages import (
    IbAccountValue,
    IbConnected,
    IbDisconnected,
    IbOpenOrder,
    IbOpenOrderEnd,
    IbPosition,
    IbPositionEnd,
)
from core.ib_wrapper import IbConnection
from execution.ib_translate import to_ib_contract, to_ib_order

log = logging.getLogger(__name__)

TERMINAL_ORDER_STATUSES = frozenset({"Cancelled", "ApiCancelled", "Filled", "Inactive"})
ACCOUNT_SUMMARY_REQ_ID_BASE = 7_000_000
SNAPSHOT_RETRY_S = 2.0  # a snapshot request unanswered this long may be sent again
MONITOR_ORDER_PREFIX = "risk_monitor"

OrderKey = tuple[int, int]  # (client id, order id) as the broker reports it


def order_key(client_id: int, order_id: int, perm_id: int) -> OrderKey:
    """The key of one order of the account. An order placed by hand at TWS has order id 0 until an API client
    binds it, so two of them would share ``(0, 0)``: those are told apart by their permId (negated, so it can never
    equal an API order id)."""
    return (client_id, order_id) if order_id > 0 else (client_id, -perm_id)


@dataclass(frozen=True, slots=True)
class BrokerSnapshot:
    """A consistent copy of what the broker told us (positions non-zero only, shares; NetLiquidation in USD).

    ``*_generation`` counts completed answers; wait for one at or above the value ``request_snapshot`` returned
    to know the answer reflects the state after your request. ``order_keys`` are the orders of the newest complete
    open-order list (any status), read on connection number ``order_keys_connection`` (1 = the first connect).
    """

    ready: bool
    account: str
    net_liquidation: float | None
    net_liquidation_ts_ns: int | None
    positions: Mapping[str, float]
    positions_generation: int
    open_orders: int
    open_orders_generation: int
    open_orders_ts_ns: int | None
    order_keys: frozenset[OrderKey] = frozenset()
    order_keys_connection: int = 0

    @property
    def flat(self) -> bool:
        return not self.positions and self.open_orders == 0


@dataclass(slots=True)
class _State:
    ready: bool = False
    account: str = ""
    net_liquidation: float | None = None
    net_liquidation_ts_ns: int | None = None
    positions: dict[str, float] = field(default_factory=dict)
    positions_requested: int = 0
    positions_done: int = 0
    positions_requested_ns: int = 0
    open_orders: int = 0
    open_orders_requested: int = 0
    open_orders_done: int = 0
    open_orders_requested_ns: int = 0
    open_orders_ts_ns: int | None = None
    open_orders_pending: int = 0  # requests sent whose openOrderEnd has not arrived
    collecting: dict[Any, tuple[OrderKey, str]] | None = None
    order_keys: frozenset[OrderKey] = frozenset()
    order_keys_connection: int = 0
    connections: int = 0
    subscribe_needed: bool = False


class BrokerLink:
    """Owns the monitor's ``IbConnection``; see the module docstring for what it reads and does."""

    def __init__(
        self,
        cfg: IbConnectionConfig,
        client_id: int,
        clock: WallClock,
        *,
        port: int | None = None,
        refresh_s: float = 0.5,
    ) -> None:
        self._cfg = cfg
        self._clock = clock
        self.refresh_ns = int(refresh_s * NS_PER_SECOND)
        self._lock = threading.Lock()
        self._state = _State()
        self._summary_req_id = ACCOUNT_SUMMARY_REQ_ID_BASE
        self._summary_active: int | None = None
        self._next_refresh_ns = 0
        self._connection = IbConnection(
            cfg, client_id, self._on_message, clock, port=port, backoff_initial_s=0.2, backoff_max_s=5.0
        )

    # ------------------------------------------------------------------ lifecycle (monitor loop)
    def start(self) -> None:
        self._connection.start()

    def stop(self) -> None:
        self._connection.stop()

    @property
    def client_id(self) -> int:
        return self._connection.client_id

    def tick(self, now_ns: int) -> None:
        """Subscribe after a (re)connect; refresh NetLiquidation and the open-order snapshot every ``refresh_s``."""
        with self._lock:
            ready, subscribe = self._state.ready, self._state.subscribe_needed
            self._state.subscribe_needed = False
        if not ready:
            return
        if subscribe:
            self._request_positions(now_ns)
        if now_ns >= self._next_refresh_ns or subscribe:
            self._next_refresh_ns = now_ns + self.refresh_ns
            self._refresh_account_summary()
            self._request_open_orders(now_ns)

    # ------------------------------------------------------------------ reads (any thread)
    def snapshot(self) -> BrokerSnapshot:
        with self._lock:
            s = self._state
            return BrokerSnapshot(
                ready=s.ready,
                account=s.account,
                net_liquidation=s.net_liquidation,
                net_liquidation_ts_ns=s.net_liquidation_ts_ns,
                positions=MappingProxyType({k: v for k, v in s.positions.items() if abs(v) > 1e-9}),
                positions_generation=s.positions_done,
                open_orders=s.open_orders,
                open_orders_generation=s.open_orders_done,
                open_orders_ts_ns=s.open_orders_ts_ns,
                order_keys=s.order_keys,
                order_keys_connection=s.order_keys_connection,
            )

    # ------------------------------------------------------------------ requests and actions (any thread)
    def request_snapshot(self) -> tuple[int, int]:
        """Ask again for every position and every open order; returns the (positions, open orders) generations
        whose completion proves an answer newer than this call."""
        now_ns = self._clock.now_ns()
        positions_gen = self._request_positions(now_ns)
        orders_gen = self._request_open_orders(now_ns, force=True)
        return positions_gen, orders_gen

    def global_cancel(self) -> bool:
        """``reqGlobalCancel``: every working order of the account, of every client. False if not sent."""
        sent = self._send(lambda c: c.reqGlobalCancel(), "reqGlobalCancel")
        log.warning("event=broker_global_cancel sent=%s client_id=%d", sent, self.client_id)
        return sent

    def place_market(self, symbol: str, position: float, reason: str) -> int | None:
        """Send the market order that closes ``position`` shares of ``symbol``; its IB order id, or None."""
        quantity = round(abs(position))
        if quantity <= 0:
            return None
        with self._lock:
            account = self._state.account
        try:
            order_id = self._connection.next_order_id()
        except RuntimeError as exc:
            log.error("event=flatten_order_not_sent symbol=%s reason=no_order_id error=%s", symbol, exc)
            return None
        now_ns = self._clock.now_ns()
        event = OrderEvent(
            ts_event_ns=now_ns,
            ts_init_ns=now_ns,
            client_order_id=f"{MONITOR_ORDER_PREFIX}-{order_id}",
            strategy_id=MONITOR_ORDER_PREFIX,
            symbol=symbol,
            side=Side.SELL if position > 0 else Side.BUY,
            quantity=quantity,
            order_type=OrderType.MKT,
            reference_price=0.0,
            reduce_only=True,
            reason=reason,
        )
        try:
            contract, order = to_ib_contract(symbol), to_ib_order(event, order_id, account=account)
        except (OrderRejected, InvariantViolation, ValueError) as exc:
            log.error("event=flatten_order_not_sent symbol=%s reason=%r", symbol, str(exc))
            return None
        sent = self._send(lambda c: c.placeOrder(order_id, contract, order), f"placeOrder {symbol}")
        log.warning(
            "event=flatten_order_sent symbol=%s side=%s qty=%d order_id=%d sent=%s reason=%r",
            symbol,
            event.side,
            quantity,
            order_id,
            sent,
            reason,
        )
        return order_id if sent else None

    # ------------------------------------------------------------------ internals
    def _send(self, request: Any, what: str) -> bool:
        return self._connection.send(request, what=what)

    def _refresh_account_summary(self) -> None:
        previous = self._summary_active
        if previous is not None:
            self._send(lambda c: c.cancelAccountSummary(previous), "cancelAccountSummary")
        self._summary_req_id += 1
        req_id = self._summary_req_id
        if self._send(lambda c: c.reqAccountSummary(req_id, "All", "NetLiquidation"), "reqAccountSummary"):
            self._summary_active = req_id

    def _request_positions(self, now_ns: int) -> int:
        """Count the request *before* sending it: the answer may arrive before ``send`` returns."""
        with self._lock:
            self._state.positions_requested += 1
            self._state.positions_requested_ns = now_ns
            generation = self._state.positions_requested
        self._send(lambda c: c.reqPositions(), "reqPositions")
        return generation

    def _request_open_orders(self, now_ns: int, *, force: bool = False) -> int:
        with self._lock:
            s = self._state
            pending = s.collecting is not None
            if pending and not force and now_ns - s.open_orders_requested_ns < SNAPSHOT_RETRY_S * NS_PER_SECOND:
                return s.open_orders_requested
            s.open_orders_requested += 1
            s.open_orders_requested_ns = now_ns
            s.open_orders_pending += 1
            s.collecting = {}
            generation = s.open_orders_requested
        self._send(lambda c: c.reqAllOpenOrders(), "reqAllOpenOrders")
        return generation

    def _on_message(self, message: object) -> None:
        """``put`` of the IbConnection (run or supervisor thread): update the state, nothing else."""
        with self._lock:
            s = self._state
            if isinstance(message, IbConnected):
                s.ready, s.subscribe_needed = True, True
                s.connections += 1
                s.account = self._cfg.account or (message.accounts[0] if message.accounts else "")
                s.collecting, s.open_orders_pending = None, 0
                self._summary_active = None
            elif isinstance(message, IbDisconnected):
                s.ready, s.collecting, s.open_orders_pending = False, None, 0
            elif isinstance(message, IbAccountValue):
                if message.tag == "NetLiquidation" and (not s.account or message.account == s.account):
                    try:
                        s.net_liquidation, s.net_liquidation_ts_ns = float(message.value), message.ts_init_ns
                    except ValueError:
                        log.warning("event=net_liquidation_unparsable value=%r", message.value)
            elif isinstance(message, IbPosition):
                if not s.account or message.account == s.account:
                    s.positions[message.symbol] = message.position
            elif isinstance(message, IbPositionEnd):
                s.positions_done = s.positions_requested
            elif isinstance(message, IbOpenOrder):
                if s.collecting is not None:
                    order = message.order
                    client_id, perm_id = int(getattr(order, "clientId", 0)), int(getattr(order, "permId", 0))
                    key = perm_id or (client_id, message.order_id)
                    status = str(getattr(message.order_state, "status", ""))
                    s.collecting[key] = (order_key(client_id, message.order_id, perm_id), status)
            elif isinstance(message, IbOpenOrderEnd) and s.collecting is not None:
                _close_open_order_list(s, message.ts_init_ns)


def _close_open_order_list(s: _State, ts_ns: int) -> None:
    """An ``openOrderEnd``: publish the list if it answers the newest request (caller holds the lock)."""
    if s.collecting is None:
        return
    s.open_orders_pending = max(0, s.open_orders_pending - 1)
    if s.open_orders_pending > 0:  # the end of an older answer: the newest full list is still coming
        s.collecting = {}
        return
    listed = s.collecting.values()
    s.open_orders = sum(1 for _key, status in listed if status not in TERMINAL_ORDER_STATUSES)
    s.order_keys, s.order_keys_connection = frozenset(key for key, _status in listed), s.connections
    s.open_orders_done, s.open_orders_ts_ns = s.open_orders_requested, ts_ns
    s.collecting = None
