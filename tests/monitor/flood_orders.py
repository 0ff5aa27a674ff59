"""A runaway "engine" for the order-flood tests: submits orders to ibsim in a loop and logs each one first.

``python flood_orders.py --port P --order-log PATH --kill-flag PATH --count N --rate-hz R [--identical]``

Like the engine it writes the ``submit`` row to the order log (the real ``execution.order_log`` writer, so the
format is the engine's) and flushes it *before* sending the order. Orders are non-marketable limit buys (a limit
far below the market), so they stay working at ibsim until someone cancels them. ``--identical`` repeats one order;
otherwise each order differs (quantity 1, 2, 3, ...). It stops submitting after ``--count`` orders or as soon as
the kill flag appears (as the engine would), then stays connected until SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from core.clock import NS_PER_SECOND, WallClock
from core.config_models import IbConnectionConfig
from core.events import OrderEvent, OrderStatus, OrderType, Side
from core.ib_messages import IbConnected
from core.ib_wrapper import IbConnection
from execution.ib_translate import to_ib_contract, to_ib_order
from execution.order_log import OrderLogEvent, OrderLogRow, OrderSubmissionLog


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", type=int, default=1)
    parser.add_argument("--order-log", required=True)
    parser.add_argument("--kill-flag", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate-hz", type=float, required=True)
    parser.add_argument("--identical", action="store_true")
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
        print("flood: ibsim not ready", file=sys.stderr)
        return 1
    kill_flag = Path(args.kill_flag)
    order_log = OrderSubmissionLog(args.order_log)
    interval_ns = int(NS_PER_SECOND / args.rate_hz)
    next_ns = clock.now_ns()
    for n in range(1, args.count + 1):
        if kill_flag.exists() or stop.is_set():
            break
        while clock.now_ns() < next_ns:
            clock.sleep(min(0.002, (next_ns - clock.now_ns()) / NS_PER_SECOND))
        next_ns += interval_ns
        now = clock.now_ns()
        order = OrderEvent(
            ts_event_ns=now,
            ts_init_ns=now,
            client_order_id=f"flood-{n}",
            strategy_id="flood",
            symbol="SPY",
            side=Side.BUY,
            quantity=1 if args.identical else n,
            order_type=OrderType.LMT,
            limit_price=1.0,
            reference_price=400.0,
        )
        ib_order_id = connection.next_order_id()
        order_log.write(
            OrderLogRow(
                ts_ns=now,
                event=OrderLogEvent.SUBMIT,
                order=order,
                ib_order_id=ib_order_id,
                filled_quantity=0,
                status=OrderStatus.PENDING_SUBMIT,
            )
        )
        contract, ib_order = to_ib_contract("SPY"), to_ib_order(order, ib_order_id)
        connection.send(lambda c, i=ib_order_id, k=contract, o=ib_order: c.placeOrder(i, k, o), "placeOrder")
    print("flood: done submitting", flush=True)
    stop.wait()
    order_log.close()
    connection.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
