"""``main.py`` with a test-only signal source: ``python signal_injecting_engine.py --config FILE``.

The real engine, built by the real ``build_engine``, with one handler added after the others on ``MarketEvent``
(the intraday bars): when a file ``INJECT.json`` exists in the working folder, it is renamed to
``INJECT.<n>.done`` and each signal in it (``[{"strategy_id", "symbol", "direction", "price_factor"}]``) goes
through the engine's own signal path (``LiveManager.on_signal``: trading state, portfolio, sizing, pre-trade
checks, the executor), as a strategy's signal at a session close does. ``reference_price`` is the symbol's last
price times ``price_factor``, so a test can make a limit order rest at the broker. The test decides what and
when; nothing in the engine knows about it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import live.wiring as engine_module  # noqa: E402
import main  # noqa: E402
from core.events import MarketEvent, SignalDirection, SignalEvent  # noqa: E402

INBOX = Path("INJECT.json")
real_build_engine = engine_module.build_engine


def build_with_injector(config, **kwargs):  # type: ignore[no-untyped-def]
    engine = real_build_engine(config, **kwargs)
    done = [0]

    def inject(_event: MarketEvent) -> None:
        if not INBOX.exists():
            return
        done[0] += 1
        taken = INBOX.rename(f"INJECT.{done[0]}.done")
        now = engine.clock.now_ns()
        for item in json.loads(taken.read_text()):
            price = engine.parts.portfolio.last_price(item["symbol"]) * float(item.get("price_factor", 1.0))
            engine.parts.live.on_signal(SignalEvent(
                ts_event_ns=now, ts_init_ns=now, strategy_id=item["strategy_id"], symbol=item["symbol"],
                direction=SignalDirection[item["direction"]], reference_price=round(price, 2),
                stop_distance=max(0.01, round(price * 0.02, 2)),
            ))

    engine.queue.route(MarketEvent, [*engine.queue.handlers(MarketEvent), inject])
    return engine


engine_module.build_engine = build_with_injector

if __name__ == "__main__":
    sys.exit(main.main(sys.argv[1:]))
