"""uvicorn's server, made to end the page's event streams when it is asked to stop.

Why: on SIGTERM uvicorn waits for open responses to finish, and an event stream to an open page never does; the
stop (``run_system.sh stop``) would wait out its timeout and end in SIGKILL. ``handle_exit`` (uvicorn's signal
handler) also sets the ``stop`` event the streams watch, so they end at their next turn.
"""

from __future__ import annotations

import threading
from types import FrameType

import uvicorn


class StoppingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, stop: threading.Event) -> None:
        super().__init__(config)
        self._stop = stop

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._stop.set()
        super().handle_exit(sig, frame)
