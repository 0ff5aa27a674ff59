"""The live engine built and run inside the test process, against ibsim's real TCP server in this process too.

``build_engine`` wires the very engine ``main.py`` runs (here with every file under ``tmp_path``); ``Engine.run``
drives it on a thread of this process. Checked: it starts in STARTING and sends nothing until the broker sync
has reconciled, trades once ACTIVE, and a KILL_NOW flag ends it flat with exit code 0 and a ``kill`` last beat;
while it runs, the heap it started with is frozen (``core.frozen_heap``), and nothing is once it stopped.
"""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from core.clock import WallClock
from core.config_loader import validate_config
from core.events import TradingState
from core.ib_wrapper import IbConnection
from core.ipc_heartbeat import read_heartbeat_csv
from ibsim import IbSim
from live.engine import Engine
from live.exit_codes import ExitCode
from live.ports import EngineFiles, EnginePorts
from live.wiring import build_engine
from testkit.crash_cycles import fast_trading_config
from testkit.waiting import free_port


def engine_config(ib_port: int, intraday_marks: str = "bars") -> Any:
    """The e2e test config: fast sma_crossover on ibsim's symbols (its files are not used: see ``in_process``)."""
    raw = fast_trading_config(ib_port, f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}")
    raw["ib_connection"]["intraday_marks"] = intraday_marks
    if intraday_marks == "ticks":
        raw["ib_connection"]["mode"] = "tws"  # ibsim speaks TWS; ticks are refused with mode sim (its clock runs ahead)
    return validate_config(raw, "in-process engine test")


def in_process(root: Path, config: Any, sim: IbSim) -> Engine:
    """The engine ``main.py`` runs, with its ports handed in: every file under ``root``, the wall clock, and a
    connection this test builds to the in-process ibsim."""
    files = EngineFiles.from_config(config)
    under_root = {name: root / path for name, path in asdict(files).items()}
    ib = config.ib_connection

    def connect(put: Callable[[object], None], clock: WallClock) -> IbConnection:
        return IbConnection(ib, ib.main_client_id, put, clock, port=sim.port)

    return build_engine(config, EnginePorts(EngineFiles(**under_root), WallClock(), connect))


def eventually(cond: Callable[[], Any], timeout_s: float, what: str, thread: threading.Thread) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if not thread.is_alive():
            pytest.fail(f"{what}: the engine stopped first")
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s} s: {what}")
        time.sleep(0.01)


def engine_positions_at(sim: IbSim) -> dict[str, float]:
    with sim.lock:
        return {s: p.quantity for s, p in sim.book.positions.items() if p.quantity}


def test_engine_in_process_starts_synced_trades_and_ends_flat_on_kill_now(tmp_path: Path, fast_sim: IbSim) -> None:
    sim = fast_sim
    config = engine_config(sim.port)
    engine = in_process(tmp_path, config, sim)
    assert engine.files.journal == tmp_path / "state" / "order_journal.jsonl"
    assert engine.trading.state is TradingState.STARTING and not engine.reconciled
    exit_codes: list[int] = []
    thread = threading.Thread(target=lambda: exit_codes.append(engine.run(duration_s=120, install_signals=False)),
                              name="engine-under-test", daemon=True)  # fmt: skip
    thread.start()
    try:
        eventually(lambda: engine.reconciled, 30, "the broker sync reconciled", thread)
        assert engine.parts.sync.generation == 1
        eventually(lambda: engine.trading.state is TradingState.ACTIVE, 10, "ACTIVE after the sync", thread)
        assert gc.get_freeze_count() > 10_000  # the start-up heap is out of the collector's scans while it runs
        eventually(lambda: engine_positions_at(sim), 90, "the engine trades", thread)
        kill_now = engine.files.kill_now_flag
        kill_now.parent.mkdir(parents=True, exist_ok=True)
        kill_now.touch()
        thread.join(60)
        assert not thread.is_alive(), "the engine did not stop after KILL_NOW"
    finally:
        if thread.is_alive():
            engine.request_stop("test teardown")
            thread.join(30)
    assert exit_codes == [ExitCode.OK]
    assert gc.get_freeze_count() == 0  # and back in the collector's care once it stopped
    assert engine.trading.state is TradingState.HALTED
    assert engine_positions_at(sim) == {}
    with sim.lock:
        assert not sim.book.working_orders()
    last = read_heartbeat_csv(engine.files.heartbeat_csv)
    assert last is not None and last.extra["stopping"] == "kill"
    [(synced_ns, _, after, _)] = [t for t in engine.trading.transitions if t[1] is TradingState.STARTING]
    assert after is TradingState.ACTIVE
    journal = engine.files.journal
    intents = [json.loads(line) for line in journal.read_text().splitlines()]
    intents = [row for row in intents if row["kind"] == "intent"]
    assert intents and all(row["ts_ns"] >= synced_ns for row in intents)  # nothing journaled while STARTING
    assert engine.parts.market_data.published > 0  # the intraday source delivered marks


def test_engine_marks_the_book_from_ticks_when_configured(tmp_path: Path, fast_sim: IbSim) -> None:
    """``intraday_marks: ticks`` subscribes to market data ticks and builds the intraday marks from them (for an
    account without real-time bar permissions); the sync and STARTING rules are the same."""
    engine = in_process(tmp_path, engine_config(fast_sim.port, "ticks"), fast_sim)
    thread = threading.Thread(target=lambda: engine.run(duration_s=60, install_signals=False), daemon=True)
    thread.start()
    try:
        eventually(lambda: engine.reconciled, 30, "the broker sync reconciled", thread)
        eventually(lambda: engine.parts.market_data.published >= 3, 30, "marks built from ticks", thread)
        with fast_sim.lock:
            assert fast_sim.gateway.sessions[1].mkt_subs and not fast_sim.gateway.sessions[1].bar_subs
    finally:
        engine.request_stop("test done")
        thread.join(30)
    assert not thread.is_alive() and engine.trading.state is TradingState.ACTIVE


def test_ticks_with_the_simulated_gateway_are_refused_with_a_reason(tmp_path: Path) -> None:
    from core.errors import ConfigError

    raw = fast_trading_config(4002, "tcp://127.0.0.1:1", "tcp://127.0.0.1:2")
    raw["ib_connection"].update(mode="sim", intraday_marks="ticks")
    with pytest.raises(ConfigError, match="intraday_marks 'ticks' needs mode 'tws'"):
        validate_config(raw, "test")


def test_issue_13_a_wheel_strategy_sends_real_ib_algo_orders_and_its_tca_rows_say_which(tmp_path: Path,
                                                                                       fast_sim: IbSim) -> None:
    """``order_type: WHEEL``: the engine's orders are what the AlgoWheel chose (MOC/LOC types, Adaptive and TWAP
    as IB algos with their parameters), ibsim receives them as such, and the TCA rows derived from the journal
    carry the algo, the policy id, the propensity and the decision."""
    from tca.from_journal import records_from_journal
    from tca.records import ExecutionRecord

    raw = fast_trading_config(fast_sim.port, f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}")
    raw["strategies"]["sma_crossover"]["order_type"] = "WHEEL"
    raw["algo_wheel"] = {"seed": 2, "epsilon": 1.0, "models_dir": str(tmp_path / "models")}  # uniform: every arm
    engine = in_process(tmp_path, validate_config(raw, "wheel engine test"), fast_sim)
    thread = threading.Thread(target=lambda: engine.run(duration_s=120, install_signals=False), daemon=True)
    thread.start()

    def algo_orders_filled() -> bool:
        with fast_sim.lock:
            done = [o for o in fast_sim.book.orders.values() if o.client_id == 1 and o.status == "Filled"]
        return len({o.algo_strategy or o.order_type for o in done}) >= 3

    try:
        eventually(algo_orders_filled, 90, "filled orders of three kinds (MOC/LOC, Adaptive, Twap)", thread)
    finally:
        engine.request_stop("test done")
        thread.join(30)
    intents = [json.loads(line) for line in engine.files.journal.read_text().splitlines()
               if json.loads(line)["kind"] == "intent"]  # fmt: skip
    with fast_sim.lock:
        at_broker = {o.order_ref: o for o in fast_sim.book.orders.values() if o.client_id == 1}
    assert intents and all("execution" in row["order"] for row in intents)
    for row in intents:
        choice, sent = row["order"]["execution"], at_broker[row["client_order_id"]]
        assert sent.algo_strategy == (choice["algo"] or "") and dict(sent.algo_params) == dict(choice["algo_params"])
        assert sent.order_type == row["order"]["order_type"]
    rows = [r for r in records_from_journal(engine.files.journal, "sim") if isinstance(r, ExecutionRecord)]
    assert rows and all(r.policy_id and r.propensity and r.wheel_decision for r in rows)
    assert len({r.algo for r in rows}) >= 2
