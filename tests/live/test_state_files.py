"""Issue 12, state files: private modes, one engine per state dir, journal and snapshot cross-checked, clear refusals.

The engine is built in this process (``build_engine`` with every file under ``tmp_path``); building it never
connects, so no broker is needed. Real files throughout; the lock-holder test uses a real second process, since
only a process can show that ``flock`` is released when its holder is SIGKILLed.
"""

from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from core.clock import WallClock
from core.config_loader import validate_config
from core.errors import ConfigError, StateCorruptError, StateInUseError
from core.events import OrderEvent, OrderType, Side
from core.ib_wrapper import IbConnection
from execution.order_state import OrderEventKind
from live.engine import Engine
from live.ports import EngineFiles, EnginePorts
from live.state_lock import LOCK_NAME
from live.wiring import build_engine
from testkit.crash_cycles import fast_trading_config
from testkit.fills import make_fill
from testkit.waiting import free_port
from utils.append_csv import AppendOnlyCsv
from utils.atomic_files import atomic_write_bytes
from utils.logger import setup_logging, shutdown_logging

REPO = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 000 while the test runs: a file mode that still comes out right does not depend on the umask."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def files_under(root: Path, config: Any) -> EngineFiles:
    return EngineFiles(**{name: root / path for name, path in asdict(EngineFiles.from_config(config)).items()})


def build(root: Path, files: EngineFiles | None = None) -> Engine:
    """The engine ``main.py`` builds, every file under ``root``; its connection is never started."""
    config = validate_config(fast_trading_config(free_port(), f"tcp://127.0.0.1:{free_port()}",
                                                 f"tcp://127.0.0.1:{free_port()}"), "state files test")  # fmt: skip
    ib = config.ib_connection

    def connect(put: Callable[[object], None], clock: WallClock) -> IbConnection:
        return IbConnection(ib, ib.main_client_id, put, clock, port=free_port())

    return build_engine(config, EnginePorts(files or files_under(root, config), WallClock(), connect))


def order(coid: str) -> OrderEvent:
    return OrderEvent(ts_event_ns=1, ts_init_ns=1, client_order_id=coid, strategy_id="sma_crossover", symbol="SPY",
                      side=Side.BUY, quantity=5, order_type=OrderType.MKT, reference_price=100.0)  # fmt: skip


def traded_state(root: Path, exec_ids: list[str], journaled: int) -> None:
    """A state dir whose snapshot has booked ``exec_ids`` and whose journal holds the first ``journaled`` of them."""
    engine = build(root)
    try:
        for i, exec_id in enumerate(exec_ids):
            coid = f"o{i}"
            if i < journaled:
                engine.parts.journal.record_intent(order(coid), 1000 + i)
                engine.parts.journal.record_event(coid, OrderEventKind.FILL, exec_id=exec_id, quantity=5, price=100.0)
            engine.parts.live.on_fill(make_fill("SPY", Side.BUY, 5, 100.0, exec_id=exec_id, client_order_id=coid,
                                          ts_event_ns=engine.clock.now_ns()))  # fmt: skip
    finally:
        engine.close()  # writes the last snapshot


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ========================================================================================================= (1) modes
def test_state_files_are_created_0600_in_0700_dirs_and_logs_0640_in_0750_whatever_the_umask(
    tmp_path: Path, open_umask: None
) -> None:
    engine = build(tmp_path)
    engine.close()
    state, logs = tmp_path / "state", tmp_path / "logs"
    assert mode_of(state) == 0o700
    for name in ("order_journal.jsonl", "portfolio_snapshot.json", LOCK_NAME):
        assert mode_of(state / name) == 0o600, name
    assert mode_of(logs) == 0o750
    for name in ("order_submissions.csv", "risk_log.csv", "heartbeat.csv"):
        assert mode_of(logs / name) == 0o640, name


def test_loose_existing_state_and_log_files_are_tightened_on_start(tmp_path: Path) -> None:
    build(tmp_path).close()
    state, logs = tmp_path / "state", tmp_path / "logs"
    (state / "approved_params").mkdir()
    (state / "approved_params" / "sma_crossover.yaml").write_text("params: {}\n")
    loosened = [state, state / "approved_params", state / "approved_params" / "sma_crossover.yaml",
                state / "order_journal.jsonl", state / "portfolio_snapshot.json", logs, logs / "order_submissions.csv",
                logs / "risk_log.csv", logs / "heartbeat.csv"]  # fmt: skip
    for path in loosened:
        path.chmod(0o777 if path.is_dir() else 0o666)
    engine = build(tmp_path)
    try:
        assert [mode_of(p) for p in loosened[:5]] == [0o700, 0o700, 0o600, 0o600, 0o600]
        assert [mode_of(p) for p in loosened[5:8]] == [0o750, 0o640, 0o640]
    finally:
        engine.close()
    assert mode_of(logs / "heartbeat.csv") == 0o640  # rewritten by every beat: stays 0640


def test_a_stricter_mode_chosen_by_the_operator_is_kept(tmp_path: Path) -> None:
    build(tmp_path).close()
    (tmp_path / "logs" / "order_submissions.csv").chmod(0o600)
    build(tmp_path).close()
    assert mode_of(tmp_path / "logs" / "order_submissions.csv") == 0o600


def test_record_writers_set_their_mode_whatever_the_umask(tmp_path: Path, open_umask: None) -> None:
    atomic_write_bytes(tmp_path / "private.json", b"{}", mode=0o600)
    assert mode_of(tmp_path / "private.json") == 0o600
    csv_file = AppendOnlyCsv(tmp_path / "new" / "audit.csv", ["a", "b"], "audit log")
    csv_file.close()
    assert mode_of(tmp_path / "new" / "audit.csv") == 0o640 and mode_of(tmp_path / "new") == 0o750


def test_engine_log_and_its_rotated_files_are_0640(tmp_path: Path, open_umask: None) -> None:
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o777)
    logs.chmod(0o777)
    try:
        path = setup_logging(logs, "engine", "INFO", console=False, max_bytes=200, backups=2)
        for i in range(20):
            logging.getLogger("test").info("event=filler i=%d text=%s", i, "x" * 40)
    finally:
        shutdown_logging()
    assert mode_of(logs) == 0o750
    assert {p.name: mode_of(p) for p in logs.iterdir()} == {path.name: 0o640, f"{path.name}.1": 0o640,
                                                            f"{path.name}.2": 0o640}  # fmt: skip


# ========================================================================================================== (2) lock
def test_a_second_engine_on_the_same_state_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = build(tmp_path)
    journal_before = (tmp_path / "state" / "order_journal.jsonl").read_bytes()
    try:
        with pytest.raises(StateInUseError) as refused:
            build(tmp_path)
        assert isinstance(refused.value, ConfigError)  # main.py: exit 2
        assert refused.value.holder_pid == os.getpid()
        assert f"pid {os.getpid()}" in str(refused.value) and LOCK_NAME in str(refused.value)
        assert (tmp_path / "state" / LOCK_NAME).read_text().strip() == str(os.getpid())
        assert (tmp_path / "state" / "order_journal.jsonl").read_bytes() == journal_before
    finally:
        first.close()
    build(tmp_path).close()  # released by close: the next engine starts


def test_the_lock_dies_with_its_holder_even_on_sigkill(tmp_path: Path) -> None:
    state = tmp_path / "state"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from live.state_lock import open_state_dir
        lock = open_state_dir(Path({str(state)!r}))
        print("locked", flush=True)
        time.sleep(60)
    """)], cwd=REPO, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(StateInUseError, match=f"pid {holder.pid}"):
            build(tmp_path)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        build(tmp_path).close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)


# =================================================================================================== (3) cross-check
def test_a_journal_holding_every_booked_execution_starts(tmp_path: Path) -> None:
    traded_state(tmp_path, ["e-1", "e-2"], journaled=2)
    engine = build(tmp_path)
    try:
        assert engine.parts.portfolio.ledger.applied_exec_ids() == ("e-1", "e-2")
    finally:
        engine.close()


@pytest.mark.parametrize("damage", ["cut_at_a_line", "emptied", "deleted"])
def test_a_snapshot_naming_executions_the_journal_lacks_stops_and_changes_nothing(tmp_path: Path,
                                                                                 damage: str) -> None:  # fmt: skip
    traded_state(tmp_path, ["e-1", "e-2", "e-3"], journaled=3)
    journal = tmp_path / "state" / "order_journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    if damage == "cut_at_a_line":
        journal.write_bytes(b"".join(lines[:-2]))  # e-3's intent and fill gone: a valid, shorter journal
    elif damage == "emptied":
        journal.write_bytes(b"")
    else:
        journal.unlink()
    before = contents(tmp_path / "state")
    with pytest.raises(StateCorruptError) as refused:
        build(tmp_path)
    message = str(refused.value)
    assert "order_journal.jsonl" in message and "portfolio_snapshot.json" in message
    assert "e-3" in message
    if damage == "emptied":
        assert "e-1" in message
    assert contents(tmp_path / "state") == before
    with pytest.raises(StateCorruptError):
        build(tmp_path)  # a second try fails the same way, not on a lock left behind by the first


# ============================================================================================== (4) unusable paths
@pytest.mark.skipif(IS_ROOT, reason="root ignores file permissions, so a read-only dir is writable for root")
def test_a_read_only_state_dir_stops_with_its_path(tmp_path: Path) -> None:
    traded_state(tmp_path, ["e-1"], journaled=1)
    state = tmp_path / "state"
    before = contents(state)
    state.chmod(0o500)
    try:
        with pytest.raises(StateCorruptError, match="not writable") as refused:
            build(tmp_path)
        assert str(state) in str(refused.value)
        assert mode_of(state) == 0o500
    finally:
        state.chmod(0o700)
    assert contents(state) == before


def test_a_state_path_that_is_a_file_stops_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "state").write_bytes(b"not a folder\n")
    with pytest.raises(StateCorruptError, match="not a directory") as refused:
        build(tmp_path)
    assert str(tmp_path / "state") in str(refused.value)
    assert (tmp_path / "state").read_bytes() == b"not a folder\n"


@pytest.mark.parametrize("name", ["portfolio_snapshot.json", "order_journal.jsonl", LOCK_NAME])
def test_a_state_file_path_that_is_a_directory_stops_with_its_path(tmp_path: Path, name: str) -> None:
    (tmp_path / "state" / name).mkdir(parents=True)
    with pytest.raises(StateCorruptError, match="directory") as refused:
        build(tmp_path)
    assert str(tmp_path / "state" / name) in str(refused.value)
    assert (tmp_path / "state" / name).is_dir()
