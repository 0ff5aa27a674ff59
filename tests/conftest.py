"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ibsim import IbSim, SimConfig


@pytest.fixture
def fast_sim() -> Iterator[IbSim]:
    """ibsim in this process replaying as fast as the engine e2e tests do (a session in ~4 s), seed 3."""
    server = IbSim(SimConfig(speed=6000.0, seed=3))
    server.start()
    try:
        yield server
    finally:
        server.stop()
