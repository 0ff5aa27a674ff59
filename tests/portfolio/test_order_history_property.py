"""``OrderHistory`` (bisection and an identical-order index) answers exactly as a plain scan of the kept records.

The reference below is the history as it was before it was made fast: a bounded deque pruned by retention,
scanned newest first. Random sequences of accepted orders (times that may repeat or go backwards, few symbols and
quantities so identical orders are common, a small record bound so the bound drops records) are fed to both;
every query the pre-trade checks make (window counts, the newest identical order) agrees.
"""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from core.events import Side
from portfolio.pre_trade import AcceptedOrder, OrderHistory
from testkit.orders import make_order


class ScanHistory:
    """The oracle: every query is a scan of the kept records."""

    def __init__(self, retention_ns: int, max_records: int) -> None:
        self.retention_ns = retention_ns
        self.records: deque[AcceptedOrder] = deque(maxlen=max_records)

    def record(self, coid: str, symbol: str, side: Side, quantity: int, now_ns: int) -> None:
        if self.records and now_ns < self.records[-1].ts_ns:
            now_ns = self.records[-1].ts_ns
        self.records.append(AcceptedOrder(coid, symbol, side, quantity, now_ns))
        while self.records and self.records[0].ts_ns <= now_ns - self.retention_ns:
            self.records.popleft()

    def recent(self, now_ns: int, window_ns: int) -> list[AcceptedOrder]:
        return [r for r in reversed(self.records) if r.ts_ns > now_ns - window_ns]

    def newest_identical(
        self, symbol: str, side: Side, quantity: int, now_ns: int, window_ns: int
    ) -> AcceptedOrder | None:
        return next(
            (r for r in self.recent(now_ns, window_ns) if (r.symbol, r.side, r.quantity) == (symbol, side, quantity)),
            None,
        )


step = st.tuples(
    st.integers(min_value=-3, max_value=40),  # time step (negative: the clock went backwards)
    st.sampled_from(["AAA", "BBB", "CCC"]),
    st.sampled_from([Side.BUY, Side.SELL]),
    st.integers(min_value=1, max_value=3),
    st.integers(min_value=1, max_value=60),  # a query window
)


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(step, max_size=2_500), retention=st.integers(1, 120), max_records=st.integers(1, 50))
def test_history_answers_as_a_scan_of_its_records(steps: list, retention: int, max_records: int) -> None:
    fast, scan = OrderHistory(retention, max_records), ScanHistory(retention, max_records)
    now = 1_000
    for dt, symbol, side, quantity, window in steps:
        now += dt
        order = make_order(symbol=symbol, side=side, quantity=quantity)
        # the gate checks before it accepts: query at ``now`` first, then record
        assert fast.count_recent(now, window) == len(scan.recent(now, window))
        assert fast.newest_identical(order, now, window) == scan.newest_identical(symbol, side, quantity, now, window)
        fast.record(order, now)
        scan.record(order.client_order_id, symbol, side, quantity, now)
        assert len(fast) == len(scan.records)


def test_a_long_run_compacts_and_still_finds_the_newest_identical_order() -> None:
    """Past 1,024 dropped records the list is compacted: the index must still point at the right records."""
    fast, scan = OrderHistory(retention_ns=50, max_records=20), ScanHistory(50, 20)
    for t in range(5_000):
        order = make_order(symbol="AAA" if t % 3 else "BBB", quantity=1 + t % 4)
        fast.record(order, t)
        scan.record(order.client_order_id, order.symbol, order.side, order.quantity, t)
        probe = make_order(symbol="BBB", quantity=1 + t % 4)
        assert fast.newest_identical(probe, t, 40) == scan.newest_identical("BBB", Side.BUY, probe.quantity, t, 40)
    assert len(fast._records) < 2_100  # compacted: not all 5,000 kept
