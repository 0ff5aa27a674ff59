"""Real-process e2e of protective stops (issue 15): the live engine against ibsim over loopback.

ibsim runs in this process (the test reads its book and moves its market with ``price_shock``); the engine is a
real ``main.py`` process wrapped by ``signal_injecting_engine.py`` (the test decides the signals; each injected
signal carries a stop distance of 2 % of the price). sma_crossover runs with ``stop: atr``, 5 shares an order.

1. A LONG of SPY buys 5 and places a SELL STP of 5 at ibsim: GTC, ``auxPrice`` = fill price - distance,
   journaled and in the order log before it was sent.
2. SIGKILL, restart: the stop at ibsim is adopted (one working order for the engine), never sent again.
3. The strategy's EXIT cancels the stop first; only then the sale of 5 goes out: flat, never short, one sale.
4. A LONG of AAPL places its stop; the market falls 10 % through it: ibsim fills the stop, the engine is flat and
   the strategy's later EXIT sends nothing.
"""

from __future__ import annotations

import csv
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

from ibsim import IbSim
from testkit.crash_cycles import EngineWorkDir


@pytest.fixture
def work(tmp_path: Path, sim: IbSim, make_workdir: Callable[[Path, IbSim], EngineWorkDir]) -> EngineWorkDir:
    made = make_workdir(tmp_path / "engine", sim)
    made.update(lambda raw: raw["strategies"]["sma_crossover"].update(stop="atr"))
    return made


def executions(sim: IbSim, symbol: str, side: str) -> float:
    with sim.lock:
        return sum(e.shares for e in sim.book.executions if e.stock.symbol == symbol and e.side == side)


def journal(work: EngineWorkDir) -> list[dict[str, Any]]:
    return [json.loads(line) for line in work.journal_path.read_text().splitlines()]


def test_issue_15_live_stops_are_placed_adopted_after_a_restart_cancelled_by_the_exit_and_filled_by_ibsim(
    work: EngineWorkDir, sim: IbSim
) -> None:
    # -- 1: the entry's fill places a GTC stop at ibsim
    first = start_active(work, "first")
    inject(work, {"strategy_id": "sma_crossover", "symbol": "SPY", "direction": "LONG"})
    [stop] = wait(lambda: orders_of(sim, "SPY", "STP", working=True), 30, "a working STP of SPY", first)
    [buy] = orders_of(sim, "SPY", "MKT")
    distance = max(0.01, round(buy.avg_fill_price * 0.02, 2))  # what the injector gave (of the last price)
    assert (stop.action, stop.quantity, stop.tif) == ("SELL", 5.0, "GTC") and position(sim, "SPY") == 5
    assert stop.aux_price == pytest.approx(buy.avg_fill_price - distance, abs=0.02)
    [intent] = [r for r in journal(work) if r["kind"] == "intent" and r["order"]["order_type"] == "STP"]
    assert intent["order"]["client_order_id"] == stop.order_ref and intent["order"]["stop_price"] == stop.aux_price
    rows = list(csv.DictReader(work.order_log_path.open()))
    assert next(r["event"] for r in rows if r["client_order_id"] == stop.order_ref) == "submit"

    # -- 2: after a crash and restart the stop is adopted, not sent again
    crash(first)
    second = start_active(work, "second")
    wait(lambda: work.status()["open_orders"] == 1, 30, "the stop adopted as the one working order", second)
    assert len(orders_of(sim, "SPY", "STP")) == 1
    assert sum(r["kind"] == "intent" for r in journal(work)) == 2  # the buy and its stop, nothing new

    # -- 3: the exit cancels the stop first, then sells once
    inject(work, {"strategy_id": "sma_crossover", "symbol": "SPY", "direction": "EXIT"})
    wait(lambda: position(sim, "SPY") == 0 and not orders_of(sim, "SPY", working=True), 30, "SPY flat", second)
    assert stop.status == "Cancelled"
    [sale] = orders_of(sim, "SPY", "MKT")[1:]
    assert (sale.action, sale.quantity, sale.status) == ("SELL", 5.0, "Filled")
    assert executions(sim, "SPY", "SLD") == executions(sim, "SPY", "BOT") == 5  # never short
    rows = list(csv.DictReader(work.order_log_path.open()))
    events = [(r["client_order_id"], r["event"]) for r in rows]
    cancelled_at, sale_sent_at = events.index((stop.order_ref, "cancel")), events.index((sale.order_ref, "submit"))
    assert cancelled_at < sale_sent_at  # the sale left only once ibsim had confirmed the stop's cancel

    # -- 4: a stop filled by ibsim when the market falls through it; the later exit sends nothing
    inject(work, {"strategy_id": "sma_crossover", "symbol": "AAPL", "direction": "LONG"})
    [aapl_stop] = wait(lambda: orders_of(sim, "AAPL", "STP", working=True), 30, "a working STP of AAPL", second)
    sim.price_shock(-10.0)
    wait(lambda: aapl_stop.status == "Filled" and position(sim, "AAPL") == 0, 30, "the stop filled", second)
    wait(lambda: work.status()["position_by_symbol"].get("AAPL", 0) == 0, 30, "the engine's books flat", second)
    inject(work, {"strategy_id": "sma_crossover", "symbol": "AAPL", "direction": "EXIT"})
    wait(lambda: work.status()["ignored_signals"].get("exit_while_flat") == 1, 30, "the exit ignored", second)
    assert len(orders_of(sim, "AAPL")) == 2  # the buy and its stop: no sale after the stop
    assert executions(sim, "AAPL", "SLD") == executions(sim, "AAPL", "BOT") == 5
    crash(second)
