"""``monitor.broker``: the monitor's own view of the account through a real ibsim (in this process, over TCP)."""

from __future__ import annotations

from monitor_harness import sim_book

from core.events import Side
from ibsim import IbSim
from monitor.broker import BrokerLink
from testkit.waiting import eventually


def test_positions_net_liquidation_and_other_clients_orders_are_seen_and_acted_on(
    sim: IbSim, trader, broker: BrokerLink
) -> None:
    assert broker.snapshot().net_liquidation is not None and broker.snapshot().flat
    trader("SPY", Side.BUY, 10)
    trader("QQQ", Side.BUY, 2, limit=1.0)  # another client's resting order: visible only through reqAllOpenOrders
    eventually(lambda: sim_book(sim) == (1, {"SPY": 10.0}), 5)
    seen = eventually(lambda: (s := broker.snapshot()).positions == {"SPY": 10.0} and s.open_orders == 1 and s, 5)
    with sim.lock:
        cash = sim.book.cash
    eventually(lambda: abs((broker.snapshot().net_liquidation or 0) - cash) > 100, 5)  # marks the position
    assert seen.account == "DU111111" and not seen.flat

    positions_gen, orders_gen = broker.request_snapshot()
    eventually(
        lambda: (
            (s := broker.snapshot()).positions_generation >= positions_gen and s.open_orders_generation >= orders_gen
        ),
        5,
    )
    assert broker.global_cancel()
    eventually(lambda: sim_book(sim)[0] == 0, 5)
    assert broker.place_market("SPY", 10.0, "test") is not None
    eventually(lambda: sim_book(sim) == (0, {}), 5)
    broker.request_snapshot()
    eventually(lambda: broker.snapshot().flat, 5)
    assert broker.place_market("SPY", 0.2, "rounds to no share") is None
