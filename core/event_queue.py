"""The single-threaded dispatcher every process runs, backtest and live alike.

Any thread may ``put`` (``collections.deque.append`` is atomic in CPython); only the owning thread calls
``run_until_empty`` / ``dispatch_one``. Routing (event type -> handlers, in order) is one literal table handed
in by the wiring code, so the flow of an event can be read in one place.

What happens when a handler raises is decided here, once, for every handler: ``on_error(error, event, handler)``
(the live engine's, applying ``core.error_policy``) is called with the exception; if it returns, the queue goes on
with the next handler; if it raises (a crash), that propagates to the loop's owner. Without ``on_error`` (the
backtester) an exception propagates unchanged. ``call`` runs a nested step (one strategy inside a session close)
under the same rule.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Handler = Callable[[Any], None]
ErrorHandler = Callable[[Exception, Any, Handler], None]


class EventQueue:
    def __init__(
        self, routes: Mapping[type, Sequence[Handler]] | None = None, *, on_error: ErrorHandler | None = None
    ) -> None:
        self._queue: deque[Any] = deque()
        self._routes: dict[type, tuple[Handler, ...]] = {}
        self._wakeup = threading.Event()
        self._waiting = False  # only a loop blocked in wait() needs the (costly) Event.set on put
        self._on_error = on_error
        for event_type, handlers in (routes or {}).items():
            self.route(event_type, handlers)

    def route(self, event_type: type, handlers: Sequence[Handler]) -> None:
        """Set the ordered handlers of one event type (replaces any previous list)."""
        self._routes[event_type] = tuple(handlers)

    def handlers(self, event_type: type) -> tuple[Handler, ...]:
        """The handlers routed for ``event_type`` (empty when none)."""
        return self._routes.get(event_type, ())

    def call(self, handler: Handler, event: Any) -> None:
        """Run one handler under the queue's error rule (see the module docstring)."""
        if self._on_error is None:
            handler(event)
            return
        try:
            handler(event)
        except Exception as error:
            self._on_error(error, event, handler)

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
        if self._on_error is None:
            for handler in handlers:
                handler(event)
        else:
            for handler in handlers:
                self.call(handler, event)
        return True

    def run_until_empty(self) -> int:
        """Dispatch until nothing is left, including events the handlers put; returns the count."""
        if self._on_error is not None:
            count = 0
            while self.dispatch_one():
                count += 1
            return count
        queue, routes = self._queue, self._routes  # the backtester's hot path: no error rule to apply
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
