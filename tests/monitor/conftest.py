"""Monitor tests: fixtures (an in-process ibsim, a trading client, the monitor's broker link) and the real-process
harness (``monitor_harness.py``, which builds on the engine's e2e harness).

Both folders go on ``sys.path`` (the suite runs with ``--import-mode=importlib`` and ``tests`` is no package), and
so does the repository root: ``monitor`` is a new package that an older editable install does not map yet.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for folder in (HERE.parents[1], HERE.parent / "e2e", HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import threading  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402

import pytest  # noqa: E402
from monitor_harness import make_system  # noqa: E402, F401  (fixture registered for every monitor test module)

from core.clock import WallClock  # noqa: E402
from core.config_models import IbConnectionConfig  # noqa: E402
from core.events import OrderEvent, OrderType, Side  # noqa: E402
from core.ib_messages import IbConnected  # noqa: E402
from core.ib_wrapper import IbConnection  # noqa: E402
from execution.ib_translate import to_ib_contract, to_ib_order  # noqa: E402
from ibsim import IbSim, SimConfig  # noqa: E402
from monitor.broker import BrokerLink  # noqa: E402
from testkit.waiting import eventually  # noqa: E402


@pytest.fixture
def sim() -> Iterator[IbSim]:
    server = IbSim(SimConfig(speed=60.0, tick_interval_s=0.02))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def trader(sim: IbSim) -> Iterator[Callable[..., None]]:
    """``trade(symbol, side, qty, limit=None)`` from another client (id 1), as the engine would."""
    ready = threading.Event()
    conn = IbConnection(
        IbConnectionConfig(port=sim.port, connect_timeout_s=3.0),
        1,
        lambda m: ready.set() if isinstance(m, IbConnected) else None,
        WallClock(),
    )
    conn.start()
    assert ready.wait(10)

    def trade(symbol: str, side: Side, qty: int, limit: float | None = None) -> None:
        order = OrderEvent(
            ts_event_ns=0,
            ts_init_ns=0,
            client_order_id=f"t{qty}{symbol}",
            strategy_id="t",
            symbol=symbol,
            side=side,
            quantity=qty,
            order_type=OrderType.LMT if limit else OrderType.MKT,
            limit_price=limit,
            reference_price=100.0,
        )
        order_id = conn.next_order_id()
        contract, ib_order = to_ib_contract(symbol), to_ib_order(order, order_id)
        assert conn.send(lambda c: c.placeOrder(order_id, contract, ib_order), "placeOrder")

    yield trade
    conn.stop()


@pytest.fixture
def broker(sim: IbSim) -> Iterator[BrokerLink]:
    link = BrokerLink(IbConnectionConfig(port=sim.port, connect_timeout_s=3.0), 2, WallClock(), refresh_s=0.1)
    link.start()
    ticking = threading.Event()

    def loop() -> None:  # the monitor loop's part: subscriptions and refreshes
        while not ticking.is_set():
            link.tick(WallClock().now_ns())
            ticking.wait(0.02)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    def subscribed() -> bool:  # positions and the account summary answer separately, in either order
        snapshot = link.snapshot()
        return snapshot.ready and snapshot.positions_generation >= 1 and snapshot.net_liquidation is not None

    eventually(subscribed, 10)
    yield link
    ticking.set()
    thread.join(5)
    link.stop()
