"""E2E fixtures: the real-process harness lives in ``engine_harness.py`` (importable: this folder is on the path)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from collections.abc import Callable, Iterator

import pytest
from engine_harness import engine_dir, ibsim_port  # noqa: F401  (fixtures registered for every e2e module)

from ibsim import IbSim
from testkit.crash_cycles import EngineWorkDir, stop_group


@pytest.fixture
def make_workdir() -> Iterator[Callable[[Path, IbSim], EngineWorkDir]]:
    """``make_workdir(root, sim)``: an engine folder (``testkit.crash_cycles.EngineWorkDir``) trading on ``sim``;
    whichever engine process is still running at the end (a failed step) is stopped."""
    made: list[EngineWorkDir] = []

    def make(root: Path, sim: IbSim) -> EngineWorkDir:
        made.append(EngineWorkDir(root, sim.port))
        return made[-1]

    try:
        yield make
    finally:
        for folder in made:
            if folder.proc is not None and folder.proc.poll() is None:
                stop_group(folder.proc)
