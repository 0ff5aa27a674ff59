"""Waiting in tests without bare sleeps: poll a condition with a deadline, and pick a free loopback port."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it), never one this process handed out
    before: a test asks for two in a row (heartbeat and command endpoints), and the config refuses equal ones."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
