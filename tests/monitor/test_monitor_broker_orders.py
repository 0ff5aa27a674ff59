"""``monitor.broker_orders`` and the ``broker_order_flood`` check: every client's orders as the broker lists them.

The counter is fed the very ``BrokerSnapshot`` values ``BrokerLink.snapshot`` returns; the last test takes them from
a real ``BrokerLink`` on ibsim while another client (id 1) places resting orders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from core.clock import NS_PER_SECOND
from core.events import Side
from monitor.broker import BrokerLink, BrokerSnapshot, OrderKey, order_key
from monitor.broker_orders import BrokerOrderCounter, BrokerOrdersStatus
from monitor.checks import BrokerOrderLimits, Kind, broker_order_findings
from testkit.waiting import eventually

S = NS_PER_SECOND
T0 = 1_700_000_000 * S
LIMITS = BrokerOrderLimits(max_open_orders=3, max_submissions_per_window=4, submission_window_s=10.0)


class Lists:
    """Successive complete open-order lists, as ``BrokerLink`` publishes them (generation + 1 each)."""

    def __init__(self) -> None:
        self.generation = 0

    def __call__(
        self, keys: Iterable[OrderKey], ts_ns: int, *, connection: int = 1, working: int | None = None
    ) -> BrokerSnapshot:
        self.generation += 1
        listed = frozenset(keys)
        return BrokerSnapshot(
            ready=True,
            account="DU1",
            net_liquidation=100_000.0,
            net_liquidation_ts_ns=ts_ns,
            positions={},
            positions_generation=1,
            open_orders=len(listed) if working is None else working,
            open_orders_generation=self.generation,
            open_orders_ts_ns=ts_ns,
            order_keys=listed,
            order_keys_connection=connection,
        )


def keys(client_id: int, first: int, last: int) -> set[OrderKey]:
    return {(client_id, order_id) for order_id in range(first, last + 1)}


def test_the_first_list_is_the_baseline_and_each_new_order_counts_once() -> None:
    lists, counter = Lists(), BrokerOrderCounter(window_s=10.0)
    counter.observe(lists(keys(1, 1, 5), T0))  # working when the monitor started: not a burst
    assert counter.status(T0).submissions_in_window == 0 and counter.status(T0).open_orders == 5
    counter.observe(lists(keys(1, 1, 5) | keys(7, 100, 102), T0 + S))
    again = lists(keys(1, 1, 5) | keys(7, 100, 102), T0 + 2 * S)
    counter.observe(again)
    counter.observe(again)  # the same list read twice is one list
    status = counter.status(T0 + 2 * S)
    assert (status.submissions_in_window, status.busiest_client_id, status.busiest_client_submissions) == (3, 7, 3)
    assert status.open_orders == 8 and status.age_s(T0 + 3 * S) == 1.0


def test_submissions_leave_the_window_and_done_orders_are_forgotten_after_it() -> None:
    lists, counter = Lists(), BrokerOrderCounter(window_s=10.0)
    counter.observe(lists(set(), T0))
    counter.observe(lists(keys(1, 1, 4), T0 + S))
    assert counter.status(T0 + 11 * S).submissions_in_window == 4  # first seen at T0 + 1 s: still inside
    assert counter.status(T0 + 11 * S + 1).submissions_in_window == 0
    counter.observe(lists(keys(1, 3, 4), T0 + 12 * S))  # 1 and 2 done and old: forgotten; 3 and 4 still listed
    counter.observe(lists(keys(1, 1, 4), T0 + 13 * S))  # 1 and 2 listed again (a new order reusing the key)
    assert counter.status(T0 + 13 * S).submissions_in_window == 2


def test_orders_first_seen_on_a_new_connection_are_its_baseline() -> None:
    lists, counter = Lists(), BrokerOrderCounter(window_s=10.0)
    counter.observe(lists(set(), T0))
    counter.observe(lists(keys(1, 1, 2), T0 + S))
    counter.observe(lists(keys(1, 1, 2) | keys(1, 3, 50), T0 + 5 * S, connection=2))  # placed while disconnected
    status = counter.status(T0 + 5 * S)
    assert status.submissions_in_window == 2 and status.open_orders == 50
    counter.observe(lists(keys(1, 1, 51), T0 + 6 * S, connection=2))
    assert counter.status(T0 + 6 * S).submissions_in_window == 3


def test_orders_placed_by_hand_are_told_apart_by_perm_id() -> None:
    assert order_key(0, 0, 111) != order_key(0, 0, 222)
    assert order_key(3, 17, 111) == (3, 17)


def orders_status(working: int, submitted: int, ts_ns: int | None = T0) -> BrokerOrdersStatus:
    return BrokerOrdersStatus(
        list_ts_ns=ts_ns,
        open_orders=working,
        submissions_in_window=submitted,
        busiest_client_id=7 if submitted else None,
        busiest_client_submissions=submitted,
    )


def test_the_flood_check_at_its_limits() -> None:
    assert broker_order_findings(orders_status(3, 4), T0 + S, 3.0, LIMITS) == []
    (working,) = broker_order_findings(orders_status(4, 4), T0 + S, 3.0, LIMITS)
    assert (working.kind, working.breach) == (Kind.BROKER_ORDER_FLOOD, True)
    assert working.detail == "4 working orders at the broker, every client (allowed 3)"
    (both,) = broker_order_findings(orders_status(4, 5), T0 + S, 3.0, LIMITS)
    assert both.breach and "5 new orders at the broker in 10 s (allowed 4; 5 of them from client 7)" in both.detail


def test_only_a_fresh_list_is_judged() -> None:
    assert broker_order_findings(orders_status(999, 999, ts_ns=None), T0, 3.0, LIMITS) == []
    (stale,) = broker_order_findings(orders_status(999, 999), T0 + 4 * S, 3.0, LIMITS)
    assert (stale.kind, stale.breach) == (Kind.BROKER_DATA_STALE, False)


def test_the_links_lists_name_every_clients_orders(broker: BrokerLink, trader: Callable[..., None]) -> None:
    counter = BrokerOrderCounter(window_s=60.0)
    baseline = eventually(lambda: (s := broker.snapshot()).open_orders_generation >= 1 and s, 5)
    counter.observe(baseline)
    for qty in (1, 2, 3):
        trader("SPY", Side.BUY, qty, limit=1.0)  # client 1, resting far below the market

    def three_listed() -> BrokerSnapshot | None:
        snapshot = broker.snapshot()
        counter.observe(snapshot)
        return snapshot if snapshot.open_orders == 3 else None

    seen = eventually(three_listed, 5)
    assert {client for client, _order_id in seen.order_keys} == {1} and len(seen.order_keys) == 3
    assert counter.status(seen.open_orders_ts_ns or 0).submissions_in_window == 3
