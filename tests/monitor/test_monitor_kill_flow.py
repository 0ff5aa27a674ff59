"""``monitor.kill``: the confirmation counter, and the kill flow against a real ibsim (in this process, over TCP)
with the monitor's real ``BrokerLink`` and a real CURVE command server standing in for the engine's channel."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from monitor_harness import sim_book

from core.clock import WallClock
from core.events import Side
from core.ipc_commands import Command, CommandClient, CommandReply, CommandServer
from core.ipc_keys import ensure_keys
from ibsim import IbSim
from monitor.broker import BrokerLink
from monitor.checks import Finding, Kind, breach
from monitor.flags import write_kill_flag
from monitor.kill import ConfirmationCounter, KillFlow, KillReason, KillSettings, KillState
from testkit.waiting import eventually


def test_confirmation_needs_consecutive_checks_except_for_immediate_kinds() -> None:
    counter = ConfirmationCounter(3)
    drawdown: list[Finding] = [breach(Kind.DRAWDOWN_BROKER, "dd")]
    assert counter.update(drawdown, 1) is None
    assert counter.update(drawdown, 2) is None
    assert counter.update([], 3) is None  # one clean check starts the count again
    assert counter.update(drawdown, 4) is None and counter.update(drawdown, 5) is None
    confirmed = counter.update([*drawdown, breach(Kind.ORDER_RATE, "r")], 6)
    assert (
        confirmed is not None and confirmed.kind is Kind.DRAWDOWN_BROKER and counter.since_ns[Kind.DRAWDOWN_BROKER] == 4
    )
    gone = counter.update([breach(Kind.ORDER_RATE, "r"), breach(Kind.ENGINE_GONE, "pid 1 gone")], 7)
    assert gone is not None and gone.kind is Kind.ENGINE_GONE  # immediate, and first among several
    with pytest.raises(ValueError):
        ConfirmationCounter(0)


def test_kill_flag_lines_are_appended_never_replaced(tmp_path: Path) -> None:
    flag = tmp_path / "flags" / "KILL.flag"
    flag.parent.mkdir()
    flag.write_text("operator was here")
    write_kill_flag(flag, {"kind": "order_rate", "reason": "51 orders in 60 s"})
    assert flag.read_text() == 'operator was here\nkind=order_rate reason="51 orders in 60 s"\n'


class Engine:
    """The engine's end of the command channel: a real CommandServer whose handler records and acknowledges."""

    def __init__(self, keys_dir: Path, on_command: Callable[[Command], None] = lambda c: None) -> None:
        self.seen: list[str] = []
        self._on_command = on_command
        self.server = CommandServer("tcp://127.0.0.1:*", keys_dir, self._handle, WallClock())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _handle(self, command: Command) -> CommandReply:
        self.seen.append(command.verb.value)
        self._on_command(command)
        return CommandReply.accepted(f"{command.verb} done")

    def _serve(self) -> None:
        while not self._stop.is_set():
            self.server.serve_once(0.02)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.server.close()


@pytest.fixture
def make_flow(tmp_path: Path, broker: BrokerLink) -> Iterator[Callable[..., KillFlow]]:
    """``make_flow(endpoint, gone=False, action="flatten")``: a KillFlow on the real broker link, stopped at
    teardown (its guard runs until then)."""
    made: list[KillFlow] = []
    keys = tmp_path / "keys"
    ensure_keys(keys)

    def make(
        endpoint: str | None, *, gone: bool = False, action: Literal["flatten", "cancel_only"] = "flatten"
    ) -> KillFlow:
        settings = KillSettings(
            kill_flag_path=tmp_path / "flags" / "KILL.flag",
            command_timeout_s=0.3,
            fallback_action=action,
            verify_timeout_s=5.0,
            cancel_wait_s=1.0,
            settle_s=0.5,
        )
        client = CommandClient(endpoint or "tcp://127.0.0.1:1", keys, "risk_monitor", WallClock())
        made.append(KillFlow(settings, broker, lambda: client, lambda: gone, WallClock()))
        return made[-1]

    yield make
    for kill in made:
        kill.stop(5)


def run(kill: KillFlow, kind: Kind = Kind.DRAWDOWN_BROKER) -> dict[str, Any]:
    assert kill.trigger(KillReason(kind, "test breach", 1, 2))
    assert not kill.trigger(KillReason(Kind.ORDER_RATE, "later", 3, 4))  # one kill per process
    assert kill.wait_finished(20)
    record = kill.record()
    assert record is not None
    return record


def names(record: dict[str, Any]) -> list[str]:
    return [s["step"] for s in record["steps"]]


def test_silent_engine_falls_back_to_cancel_and_flatten(sim: IbSim, trader, make_flow, tmp_path: Path) -> None:
    trader("SPY", Side.BUY, 100)
    trader("QQQ", Side.BUY, 7, limit=1.0)  # rests: a working order of another client
    eventually(lambda: sim_book(sim) == (1, {"SPY": 100.0}), 5)
    record = run(make_flow(None))
    assert record["state"] == KillState.DONE
    assert names(record)[:5] == [
        "kill_started",
        "kill_flag_written",
        "engine_halt_sent",
        "engine_halt_reply",
        "fallback_started",
    ]
    assert "NO_REPLY" in record["steps"][3]["detail"]
    assert {"global_cancel_sent", "no_working_orders", "flatten_orders_sent", "verified_flat"} <= set(names(record))
    assert sim_book(sim) == (0, {})
    assert "kind=drawdown_broker" in (tmp_path / "flags" / "KILL.flag").read_text()


def test_engine_that_acknowledges_and_flattens_is_left_to_do_it(sim: IbSim, trader, make_flow, tmp_path: Path) -> None:
    trader("SPY", Side.BUY, 10)
    eventually(lambda: sim_book(sim) == (0, {"SPY": 10.0}), 5)
    engine = Engine(tmp_path / "keys", lambda c: trader("SPY", Side.SELL, 10) if c.verb == "FLATTEN" else None)
    try:
        record = run(make_flow(engine.server.endpoint))
    finally:
        engine.close()
    assert engine.seen == ["HALT", "FLATTEN"]
    assert record["state"] == KillState.DONE and "fallback_started" not in names(record)
    assert sim_book(sim) == (0, {})


def test_acknowledged_but_not_flat_in_time_is_taken_over(sim: IbSim, trader, make_flow, tmp_path: Path) -> None:
    trader("IWM", Side.BUY, 20)
    eventually(lambda: sim_book(sim) == (0, {"IWM": 20.0}), 5)
    engine = Engine(tmp_path / "keys")  # says yes, does nothing
    try:
        record = run(make_flow(engine.server.endpoint))
    finally:
        engine.close()
    steps = names(record)
    assert record["state"] == KillState.DONE
    assert steps.index("engine_flatten_reply") < steps.index("engine_left_positions") < steps.index("verified_flat")
    taken_over_s = (record["steps"][steps.index("engine_left_positions")]["ts_ns"] - record["started_ns"]) / 1e9
    assert taken_over_s < 2.0  # settle_s (0.5 s) after the replies, well before verify_timeout_s (5 s)
    assert sim_book(sim) == (0, {})


def test_gone_engine_is_not_asked_and_cancel_only_keeps_positions(
    sim: IbSim, trader, make_flow, tmp_path: Path
) -> None:
    trader("TLT", Side.BUY, 5)
    trader("GLD", Side.BUY, 3, limit=1.0)
    eventually(lambda: sim_book(sim) == (1, {"TLT": 5.0}), 5)
    record = run(make_flow(None, gone=True, action="cancel_only"), Kind.ENGINE_GONE)
    assert record["state"] == KillState.DONE and "engine_commands_skipped" in names(record)
    assert "engine_halt_sent" not in names(record) and "flatten_orders_sent" not in names(record)
    assert sim_book(sim) == (0, {"TLT": 5.0})


def test_kill_now_cancels_before_writing_the_flag(sim: IbSim, trader, make_flow, tmp_path: Path) -> None:
    trader("XLF", Side.BUY, 4, limit=1.0)
    eventually(lambda: sim_book(sim)[0] == 1, 5)
    record = run(make_flow(None), Kind.KILL_NOW)
    steps = names(record)
    assert steps.index("global_cancel_sent") < steps.index("kill_flag_written")
    assert record["global_cancel_ns"] <= record["steps"][steps.index("kill_flag_written")]["ts_ns"]
    assert record["state"] == KillState.DONE and sim_book(sim) == (0, {})


def test_after_the_kill_the_guard_flattens_what_comes_back(sim: IbSim, trader, make_flow) -> None:
    kill = make_flow(None)
    record = run(kill)
    assert record["state"] == KillState.DONE and sim_book(sim) == (0, {})
    trader("SPY", Side.BUY, 3)  # a frozen engine wakes up and trades, or an order in flight at the kill fills
    eventually(lambda: sim_book(sim) == (0, {"SPY": 3.0}), 5)
    eventually(lambda: sim_book(sim) == (0, {}), 10)
    wanted = {"guard_started", "guard_not_flat", "guard_round_done"}
    eventually(lambda: wanted <= set(names(kill.record() or {"steps": []})), 5)
