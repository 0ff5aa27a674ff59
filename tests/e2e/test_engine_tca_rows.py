"""Real-process e2e (issue 13): the live engine's TCA log holds one row per execution, none lost, none twice,
across a SIGKILL restart and a reconnect.

The engine (``main.py``) trades against ibsim in this process; it is SIGKILLed once it has fills (no stop, so no
TCA load then), restarted, cut off by ibsim dropping every connection (it reconnects and re-syncs), and stopped
with SIGTERM, which loads the journal's TCA rows into ``results/tca_log.duckdb``. The rows' exec ids must be exactly
the engine's executions at ibsim, each once, with the decision context and the arrival price filled in; loading
the journal again by hand inserts nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from ibsim import IbSim
from testkit.crash_cycles import EngineWorkDir, poll_until

REPO = Path(__file__).resolve().parents[2]
CLIENT_ID = 1


@pytest.fixture
def work(tmp_path: Path, fast_sim: IbSim, make_workdir: Callable[[Path, IbSim], EngineWorkDir]) -> EngineWorkDir:
    return make_workdir(tmp_path / "engine", fast_sim)


def broker_exec_ids(sim: IbSim) -> set[str]:
    with sim.lock:
        return {e.exec_id for e in sim.book.executions if e.client_id == CLIENT_ID}


def journal_fills(work: EngineWorkDir) -> int:
    if not work.journal_path.exists():
        return 0
    return sum(json.loads(line).get("kind") == "fill" for line in work.journal_path.read_text().splitlines())


def test_one_tca_row_per_execution_across_a_sigkill_restart_and_a_reconnect(work: EngineWorkDir,
                                                                              fast_sim: IbSim) -> None:  # fmt: skip
    sim = fast_sim
    first = work.start("first")
    assert work.wait_reconciled("first") == "ok"
    assert poll_until(lambda: journal_fills(work) >= 2, 90), "the engine trades"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    assert not (work.root / "results" / "tca_log.duckdb").exists()  # a crash loads nothing: the journal keeps it

    second = work.start("second")
    assert work.wait_reconciled("second") == "ok"
    fills_before = journal_fills(work)
    sim.drop_all_connections()  # the engine must reconnect and re-sync to trade again
    assert poll_until(lambda: journal_fills(work) > fills_before, 90), "the engine trades after the reconnect"
    status = work.status()
    assert status is not None and status["connected"] and status["reconciled"]
    os.killpg(second.pid, signal.SIGTERM)
    assert second.wait(30) == 0
    stopped = work.output_path("second").read_text()
    assert "event=tca_loaded" in stopped and "Traceback" not in stopped, stopped[-3000:]

    db = work.root / "results" / "tca_log.duckdb"
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT exec_id, decision_price, arrival_price, source, quantity FROM executions").fetchall()
    exec_ids = [row[0] for row in rows]
    assert len(exec_ids) == len(set(exec_ids))
    assert set(exec_ids) == broker_exec_ids(sim)  # none lost, none foreign
    assert all(row[1] > 0 and row[2] is not None and row[3] == "sim" and row[4] > 0 for row in rows)

    again = subprocess.run([sys.executable, "-m", "tca.from_journal", "--journal", str(work.journal_path),
                            "--db", str(db)], cwd=REPO, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("inserted 0,"), again.stdout
