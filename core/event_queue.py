"""The single-threaded dispatcher every process runs, backtest and live alike.

Any thread may ``put`` (``collections.deque.append`` is atomic in CPython); only the owning thread calls
``run_until_empty`` / ``dispatch_one``. Routing (event type -> handlers, in order) is one literal table handed
in by the wiring code, so the flow of an event can be read in one place.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Handler = Callable[[Any], None]


class EventQueue:
    def __init__(self, routes: Mapping[type, Sequence[Handler]] | None = None) -> None:
        self._queue: deque[Any] = deque()
        self._routes: dict[type, tuple[Handler, ...]] = {}
        self._wakeup = threading.Event()
        self._waiting = False  # only a loop blocked in wait() needs the (costly) Event.set on put
        for event_type, handlers in (routes or {}).items():
            self.route(event_type, handlers)

    def route(self, event_type: type, handlers: Sequence[Handler]) -> None:
        """Set the ordered handlers of one event type (replaces any previous list)."""
        self._routes[event_type] = tuple(handlers)

    def put(self, event: Any) -> None:
        """Thread-safe; wakes a loop blocked in ``wait``."""
        self._queue.append(event)
        if self._waiting:
            self._wakeup.set()

    def __len__(self) -> int:
        return len(self._queue)

    def dispatch_one(self) -> bool:
        """Dispatch the oldest event; False when the queue was empty."""
        try:
            event = self._queue.popleft()
        except IndexError:
            return False
        handlers = self._routes.get(type(event))
        if handlers is None:
            raise TypeError(
                f"no route for event type {type(event).__name__}; routes: {sorted(t.__name__ for t in self._routes)}"
            )
        for handler in handlers:
            handler(event)
        return True

    def run_until_empty(self) -> int:
        """Dispatch until nothing is left, including events the handlers put; returns the count."""
        queue, routes = self._queue, self._routes
        count = 0
        while queue:
            event = queue.popleft()
            handlers = routes.get(type(event))
            if handlers is None:
                raise TypeError(f"no route for event type {type(event).__name__}")
            for handler in handlers:
                handler(event)
            count += 1
        return count

    def wait(self, timeout_s: float) -> bool:
        """Block until something is put or the timeout passes (live loop only)."""
        if self._queue:
            return True
        self._wakeup.clear()
        self._waiting = True  # set before re-checking: a put that misses the flag appended before our check
        try:
            if self._queue:
                return True
            return self._wakeup.wait(timeout_s)
        finally:
            self._waiting = False
