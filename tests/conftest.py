"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ibsim import IbSim, SimConfig


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``e2e`` on every test that runs real engine/monitor/ibsim processes (tests/e2e, tests/monitor/*e2e*), so
    ``-m "not e2e"`` is a quick subset for a contributor; CI runs everything."""
    for item in items:
        path = item.path.as_posix()
        if "/tests/e2e/" in path or ("/tests/monitor/" in path and "e2e" in item.path.name):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def fast_sim() -> Iterator[IbSim]:
    """ibsim in this process replaying as fast as the engine e2e tests do (a session in ~4 s), seed 3."""
    server = IbSim(SimConfig(speed=6000.0, seed=3))
    server.start()
    try:
        yield server
    finally:
        server.stop()
