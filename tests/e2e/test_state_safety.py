"""Issue 12, state files, with real ``python main.py`` processes: one engine per state dir, and a state the engine
cannot trust or use stops it with a message (exit 1) and is left byte for byte as it was.

The damaged-journal cases start from one real state (``traded_state``: an engine traded against ``python -m
ibsim`` until its snapshot booked a few executions, then was stopped with SIGTERM); each test damages a copy and
starts the engine on it. They need no broker: the engine must stop before it connects.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_harness import EngineDir, wait_for

from portfolio.snapshot import read_snapshot
from testkit.crash_cycles import EngineWorkDir, poll_until, start_ibsim, stop_group
from testkit.waiting import free_port

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
IS_ROOT = os.geteuid() == 0
SECOND_ENGINE_TIMEOUT_S = 30.0  # python start-up and imports on a busy 2-core machine; the refusal itself is instant
MIN_EXECUTIONS = 3


def run_main(work: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, str(REPO / "main.py"), "--config", "config.yaml"], cwd=work,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def booked_exec_ids(state: Path) -> list[str]:
    snapshot = read_snapshot(state / "portfolio_snapshot.json")
    return list(snapshot["ledger"]["exec_ids"]) if snapshot else []


@pytest.fixture(scope="module")
def traded_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working dir (config, state, logs) whose snapshot books at least ``MIN_EXECUTIONS`` executions, all in
    its journal: an engine traded on ibsim and was stopped cleanly. Tests copy it; it is never changed."""
    root = tmp_path_factory.mktemp("traded")
    ibsim, port = start_ibsim(root / "ibsim.log", 6000.0, 3)
    try:
        work = EngineWorkDir(root / "work", port)
        work.start("first")
        assert work.wait_reconciled("first") == "ok", work.output_path("first").read_text()[-3000:]
        journal = work.journal_path
        filled = poll_until(lambda: journal.exists()
                            and journal.read_text().count('"kind":"fill"') >= MIN_EXECUTIONS, 120)  # fmt: skip
        assert filled, "the engine did not trade: " + work.output_path("first").read_text()[-3000:]
        assert work.proc is not None and stop_group(work.proc) == 0
    finally:
        stop_group(ibsim)
    assert len(booked_exec_ids(work.root / "state")) >= MIN_EXECUTIONS
    return work.root


@pytest.fixture
def damaged(traded_state: Path, tmp_path: Path) -> Iterator[Path]:
    work = tmp_path / "work"
    shutil.copytree(traded_state, work)
    yield work


def fill_lines(journal: Path) -> list[int]:
    return [i for i, line in enumerate(journal.read_bytes().splitlines()) if json.loads(line)["kind"] == "fill"]


# =========================================================================================================== one engine
def test_a_second_engine_on_the_same_state_exits_2_naming_the_first_which_keeps_running(
    engine_dir: EngineDir,
) -> None:
    ed = engine_dir
    first = ed.start()
    wait_for(lambda: "event=reconcile_positions_ok" in ed.output, 60, "the first engine reconciled", first)
    assert (ed.root / "state" / "engine.lock").read_text().strip() == str(first.pid)
    started = time.monotonic()
    second = subprocess.run([PYTHON, str(REPO / "main.py"), "--config", "config.yaml"], cwd=ed.root,
                            capture_output=True, text=True, timeout=SECOND_ENGINE_TIMEOUT_S)  # fmt: skip
    assert second.returncode == 2, second.stderr[-3000:]
    assert time.monotonic() - started < SECOND_ENGINE_TIMEOUT_S
    assert f"pid {first.pid}" in second.stderr and "engine.lock" in second.stderr
    beat = ed.root / "logs" / "heartbeat.csv"
    seen = beat.read_bytes()
    wait_for(lambda: beat.read_bytes() != seen, 10, "the first engine still beats", first)
    assert first.poll() is None


# ================================================================================================== journal vs snapshot
@pytest.mark.parametrize("damage", ["cut_at_a_line_boundary", "emptied", "deleted"])
def test_a_journal_lacking_executions_of_the_snapshot_exits_1_and_changes_nothing(damaged: Path,
                                                                                 damage: str) -> None:  # fmt: skip
    state = damaged / "state"
    journal = state / "order_journal.jsonl"
    booked = booked_exec_ids(state)
    if damage == "cut_at_a_line_boundary":
        last_fill = fill_lines(journal)[-1]
        lines = journal.read_bytes().splitlines(keepends=True)
        journal.write_bytes(b"".join(lines[:last_fill]))  # a valid journal, one fill short
        expected_missing = booked[-1]
    elif damage == "emptied":
        journal.write_bytes(b"")
        expected_missing = booked[0]
    else:
        journal.unlink()
        expected_missing = booked[0]
    before = contents(state)
    result = run_main(damaged)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "corrupt state" in result.stderr and "Traceback" not in result.stderr
    assert "order_journal.jsonl" in result.stderr and "portfolio_snapshot.json" in result.stderr
    assert expected_missing in result.stderr
    assert contents(state) == before
    assert journal.exists() == (damage != "deleted")


def test_the_untouched_traded_state_is_accepted_by_the_cross_check(damaged: Path) -> None:
    """The same state, undamaged, passes the start-up checks: the engine gets as far as the broker (which is gone,
    so it keeps retrying until stopped) instead of refusing its state."""
    with (damaged / "engine.out").open("w") as out:
        proc = subprocess.Popen([PYTHON, str(REPO / "main.py"), "--config", "config.yaml", "--duration", "60"],
                                cwd=damaged, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        wait_for(lambda: "event=state_loaded" in (damaged / "engine.out").read_text(), 60, "state loaded", proc)
    finally:
        stop_group(proc)


# ======================================================================================================= unusable paths
@pytest.mark.skipif(IS_ROOT, reason="runs as root, and root ignores file permissions: a read-only dir stays writable "
                                    "for root (the state-path-is-a-file case below fails for root too)")  # fmt: skip
def test_a_read_only_state_dir_exits_1_naming_it(damaged: Path) -> None:
    state = damaged / "state"
    before = contents(state)
    state.chmod(0o500)
    try:
        result = run_main(damaged)
    finally:
        state.chmod(0o700)
    assert result.returncode == 1, result.stderr[-3000:]
    assert str(Path("state")) in result.stderr and "not writable" in result.stderr
    assert "Traceback" not in result.stderr
    assert contents(state) == before


def test_a_state_path_that_is_a_file_exits_1_naming_it(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    EngineDir(work, free_port())  # writes the config; no broker needed: the engine stops before connecting
    (work / "state").write_bytes(b"not a folder\n")
    result = run_main(work)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "state" in result.stderr and "not a directory" in result.stderr and "Traceback" not in result.stderr
    assert (work / "state").read_bytes() == b"not a folder\n"


def test_a_snapshot_path_that_is_a_directory_exits_1_naming_it(damaged: Path) -> None:
    snapshot = damaged / "state" / "portfolio_snapshot.json"
    snapshot.unlink()
    snapshot.mkdir()
    (snapshot / "inside.txt").write_text("left alone\n")
    before = contents(damaged / "state")
    result = run_main(damaged)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "portfolio_snapshot.json" in result.stderr and "directory" in result.stderr
    assert "Traceback" not in result.stderr
    assert contents(damaged / "state") == before
