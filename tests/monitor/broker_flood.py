"""A rogue API client for the broker-side flood tests: resting orders straight to ibsim, no order log, no kill flag.

``python broker_flood.py --port P --client-id C --count N --rate-hz R --sent PATH``

Unlike ``flood_orders.py`` (a runaway engine, which logs every order first and stops at the kill flag) this is
someone else on the account: another program with its own client id, or a person at TWS. It writes nothing the
monitor reads, so only the monitor's own broker connection can see it. Orders are non-marketable limit buys (a limit
far below the market), so they stay working until someone cancels them. For each order it appends
``<n> <ib order id> <ns before placeOrder was sent>`` to ``--sent`` (flushed per line: a test can time the order
that crossed a limit). Stops after ``--count`` orders, then stays connected until SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from core.clock import NS_PER_SECOND, WallClock
from core.config_models import IbConnectionConfig
from core.events import OrderEvent, OrderType, Side
from core.ib_messages import IbConnected
from core.ib_wrapper import IbConnection
from execution.ib_translate import to_ib_contract, to_ib_order


def resting_buy(n: int, now_ns: int) -> OrderEvent:
    return OrderEvent(
        ts_event_ns=now_ns,
        ts_init_ns=now_ns,
        client_order_id=f"rogue-{n}",
        strategy_id="rogue",
        symbol="SPY",
        side=Side.BUY,
        quantity=n,
        order_type=OrderType.LMT,
        limit_price=1.0,
        reference_price=400.0,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate-hz", type=float, required=True)
    parser.add_argument("--sent", required=True)
    args = parser.parse_args()
    clock, ready, stop = WallClock(), threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    connection = IbConnection(
        IbConnectionConfig(port=args.port, connect_timeout_s=3.0),
        args.client_id,
        lambda m: ready.set() if isinstance(m, IbConnected) else None,
        clock,
    )
    connection.start()
    if not ready.wait(15):
        print("broker_flood: ibsim not ready", file=sys.stderr)
        return 1
    interval_ns = int(NS_PER_SECOND / args.rate_hz)
    next_ns = clock.now_ns()
    with open(args.sent, "w", encoding="utf-8") as sent:
        for n in range(1, args.count + 1):
            if stop.is_set():
                break
            while (wait_ns := next_ns - clock.now_ns()) > 0:
                clock.sleep(min(0.002, wait_ns / NS_PER_SECOND))
            next_ns += interval_ns
            order_id = connection.next_order_id()
            contract, ib_order = to_ib_contract("SPY"), to_ib_order(resting_buy(n, clock.now_ns()), order_id)
            sent.write(f"{n} {order_id} {clock.now_ns()}\n")
            sent.flush()
            connection.send(lambda c, i=order_id, k=contract, o=ib_order: c.placeOrder(i, k, o), "placeOrder")
    print("broker_flood: done submitting", flush=True)
    stop.wait()
    connection.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
