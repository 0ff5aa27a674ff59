"""Waiting in tests without bare sleeps: poll a condition with a deadline, and pick a free loopback port."""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def eventually(
    cond: Callable[[], Any], timeout_s: float = 5.0, what: str = "condition", *, interval_s: float = 0.01
) -> Any:
    """Poll ``cond`` until it returns something truthy (which is returned); fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s} s")
        time.sleep(interval_s)


_handed_out: set[int] = set()

# Ports the tests hand out lie below the kernel's ephemeral range: a port the OS picks for ``bind(0)`` (ibsim) or for
# an outgoing connection (every API client) comes from that range and could take a port handed out a moment earlier,
# between the check here and the engine's bind. Each pytest-xdist worker draws from its own slice, so two workers
# never hand out the same port either.
_TEST_PORTS = range(20_000, 32_000)


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _worker_ports() -> range:
    """This process's slice of ``_TEST_PORTS`` (all of it outside xdist), cut off below the ephemeral range."""
    top = min(_TEST_PORTS.stop, _ephemeral_start())
    if top - _TEST_PORTS.start < 1_000:  # an unusual ephemeral range: fall back to the whole band
        top = _TEST_PORTS.stop
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1), 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    width = (top - _TEST_PORTS.start) // count
    start = _TEST_PORTS.start + index % count * width
    return range(start, start + width)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, never one this process handed out before: a test asks
    for two in a row (heartbeat and command endpoints), and the config refuses equal ones. Drawn at random from
    this worker's slice below the ephemeral range (see ``_TEST_PORTS``)."""
    ports = _worker_ports()
    for _ in range(10_000):
        port = random.choice(ports)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {ports.start}..{ports.stop - 1}")
