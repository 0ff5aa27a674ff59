"""Real-process e2e: a restart with a working BUY and a working flatten order at the broker.

After a restart the engine's decision core must see the orders that are working at the broker since before it,
exactly as if it had sent them itself: a new signal for a symbol with a working order is ignored, the cash the
working buy needs stays reserved, and a flatten sends only what closes the broker's position (never a second
sale of the same shares, never short).

ibsim runs in this process (so the test can read its book and arm a partial fill); the engine is a real
``main.py`` process, wrapped by ``signal_injecting_engine.py`` so the test decides which signals it gets. The
state is made by the engine itself over three lives, each ended by SIGKILL (a crash: nothing cancelled):
1. buy SPY at market; FLATTEN with ibsim's partial-fill fault armed: 2 of 5 sold, the flatten SELL of the other 3
   keeps working;
2. after a restart that adopts it, a BUY LMT of AAPL at 70% of the market price, which rests;
3. the restart under test, with both working at ibsim.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from injected_engine import (
    crash,
    inject,
    one_session_sim,  # noqa: F401  (the sim fixture)
    orders_of,
    position,
    start_active,
    wait,
)

from core.clock import WallClock
from core.ipc_commands import CommandClient
from execution.order_store import CASH_BUFFER
from ibsim import IbSim
from testkit.crash_cycles import EngineWorkDir

HELD, RESTING = "SPY", "AAPL"


@pytest.fixture
def work(tmp_path: Path, sim: IbSim, make_workdir: Callable[[Path, IbSim], EngineWorkDir]) -> EngineWorkDir:
    return make_workdir(tmp_path / "engine", sim)


def command(work: EngineWorkDir, verb: str) -> dict[str, Any]:
    with CommandClient(work.cmd_endpoint, work.root / "state" / "keys", "operator", WallClock()) as client:
        reply = client.send(verb, 3.0, retries=1, reason="e2e")
    assert reply.ok, f"{verb}: {reply.code} {reply.message}"
    return dict(reply.data)


def test_restart_counts_adopted_orders_for_signals_cash_and_flatten(work: EngineWorkDir, sim: IbSim) -> None:
    def resting_limit_orders(raw: dict[str, Any]) -> None:
        raw["strategies"]["sma_crossover"].update(order_type="LMT", limit_offset_bps=0.0)
        raw["pre_trade"]["price_collar_pct"] = 60.0  # a limit 30% under the market is a decision here

    work.update(resting_limit_orders)

    # -- life 1: a position, then a flatten that only partly fills
    first = start_active(work, "first")
    inject(work, {"strategy_id": "manual", "symbol": HELD, "direction": "LONG"})  # unconfigured strategy: MKT
    wait(lambda: position(sim, HELD) == 5, 30, "bought 5 SPY", first)
    sim.partial_fill_next_order(0.5)
    command(work, "FLATTEN")
    wait(lambda: position(sim, HELD) == 3 and orders_of(sim, HELD, working=True), 30, "2 sold, 3 working", first)
    crash(first)

    # -- life 2: the flatten remainder is adopted; a buy that rests at the broker
    second = start_active(work, "second")
    assert HELD in work.status()["working_symbols"]
    inject(work, {"strategy_id": "sma_crossover", "symbol": RESTING, "direction": "LONG", "price_factor": 0.7})
    [buy] = wait(lambda: orders_of(sim, RESTING, working=True), 30, "a resting BUY LMT of AAPL", second)
    assert buy.action == "BUY" and buy.order_type == "LMT"
    crash(second)
    working_at_restart = {(o.stock.symbol, o.action, o.remaining) for o in
                          orders_of(sim, HELD, working=True) + orders_of(sim, RESTING, working=True)}  # fmt: skip
    assert working_at_restart == {(HELD, "SELL", 3.0), (RESTING, "BUY", 5.0)}
    intents = [json.loads(line) for line in work.journal_path.read_text().splitlines()]
    [buy_intent] = [r for r in intents if r["kind"] == "intent" and r["order"]["symbol"] == RESTING]
    orders_before = {symbol: len(orders_of(sim, symbol)) for symbol in (HELD, RESTING)}

    # -- life 3, the restart under test
    third = start_active(work, "third")
    st = work.status()
    assert {HELD, RESTING} <= set(st["working_symbols"])
    assert st["reserved_cash"] == pytest.approx(5 * buy_intent["order"]["reference_price"] * (1 + CASH_BUFFER),
                                                abs=0.01)  # fmt: skip

    inject(work, {"strategy_id": "sma_crossover", "symbol": RESTING, "direction": "LONG"})
    wait(lambda: work.status()["ignored_signals"].get("order_working") == 1, 30, "the signal ignored", third)
    assert len(orders_of(sim, RESTING)) == orders_before[RESTING]  # nothing new for AAPL
    assert work.status()["reserved_cash"] == pytest.approx(st["reserved_cash"])

    command(work, "FLATTEN")  # cancel all, then close what the broker holds net of what it may still fill
    wait(lambda: position(sim, HELD) == 0 and not orders_of(sim, HELD, working=True)
         and not orders_of(sim, RESTING, working=True), 30, "flat, nothing working", third)  # fmt: skip
    new_sells = orders_of(sim, HELD)[orders_before[HELD]:]
    assert sum(o.quantity for o in new_sells) == 3  # the 3 shares held, once: no second sale of covered shares
    with sim.lock:
        sold = sum(e.shares for e in sim.book.executions if e.stock.symbol == HELD and e.side == "SLD")
        bought = sum(e.shares for e in sim.book.executions if e.stock.symbol == HELD and e.side == "BOT")
    assert sold == bought == 5  # never short
    assert position(sim, RESTING) == 0
    crash(third)
