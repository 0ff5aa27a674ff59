"""Real-process e2e, the attack of issue 12: another local user floods the engine's command endpoint.

On main the command port was TCP: ~20,000 idle connections from processes run as ``nobody`` exhausted the
engine's file descriptors within ~10 s, and the engine halted, sold at market and crashed. With the default
local-only endpoints (Unix sockets in a 0700 folder) the same flood cannot open a single connection: the engine
keeps trading and answers its operator. Needs root (to run the flood as ``nobody`` with ``runuser``); skipped
with that reason elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ibsim import IbSim
from testkit.crash_cycles import EngineWorkDir, poll_until, stop_group

SYSTEM_PYTHON = "/usr/bin/python3"  # nobody cannot read our venv; the flood needs only the standard library
FLOOD = textwrap.dedent("""
    import json, socket, sys
    path, attempts = sys.argv[1], int(sys.argv[2])
    held, errors = [], {}
    for _ in range(attempts):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            held.append(s)  # idle: never speaks, never closes
        except OSError as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            s.close()
    print(json.dumps({"connected": len(held), "errors": errors}))
""")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None or not Path(SYSTEM_PYTHON).exists(),
    reason="the flood must run as a second OS user: needs root, runuser and /usr/bin/python3",
)


@pytest.fixture
def work(fast_sim: IbSim, make_workdir: Callable[[Path, IbSim], EngineWorkDir]) -> Iterator[EngineWorkDir]:
    """The engine in a short, world-traversable folder (as a user's checkout is), with the shipped default of
    local-only endpoints: so the only barrier the flood meets is the engine's own."""
    root = Path("/tmp") / f"flood-{os.getpid()}"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    folder = make_workdir(root, fast_sim)
    folder.cmd_endpoint = f"ipc://{root}/state/run/command.sock"

    def local_only(raw: dict[str, Any]) -> None:
        raw["operational_risk"].update(heartbeat_endpoint=f"ipc://{root}/state/run/heartbeat.sock",
                                       command_endpoint=folder.cmd_endpoint)  # fmt: skip

    folder.update(local_only)
    try:
        yield folder
    finally:
        if folder.proc is not None and folder.proc.poll() is None:
            stop_group(folder.proc)  # before its folder goes
        shutil.rmtree(root, ignore_errors=True)


def fills(work: EngineWorkDir) -> int:
    if not work.journal_path.exists():
        return 0
    return sum(json.loads(line).get("kind") == "fill" for line in work.journal_path.read_text().splitlines())


def test_a_connection_flood_from_another_user_leaves_the_engine_trading(work: EngineWorkDir) -> None:
    proc = work.start("engine")
    assert work.wait_reconciled("engine") == "ok", work.output_path("engine").read_text()[-3000:]
    assert poll_until(lambda: fills(work) > 0, 60), "the engine trades before the flood"
    socket_path = work.cmd_endpoint[len("ipc://"):]
    floods = [subprocess.Popen(["runuser", "-u", "nobody", "--", SYSTEM_PYTHON, "-c", FLOOD, socket_path, "2000"],
                               stdout=subprocess.PIPE, text=True) for _ in range(10)]  # fmt: skip
    results = [json.loads(f.communicate(timeout=120)[0]) for f in floods]
    assert sum(r["connected"] for r in results) == 0, results  # 20,000 attempts, not one connection
    assert all(set(r["errors"]) == {"PermissionError"} for r in results), results
    assert proc.poll() is None, "the engine died under the flood"
    status = work.status()
    assert status is not None and status["state"] == "ACTIVE" and status["accepting_orders"]
    before = fills(work)
    assert poll_until(lambda: fills(work) > before, 60), "the engine kept trading after the flood"
