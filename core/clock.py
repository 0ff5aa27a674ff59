"""The one source of time for every component.

Nothing else in the project calls ``time.time()``, ``datetime.now()`` or sleeps: the backtester drives a
``SimClock`` bar by bar and the live engine uses a ``WallClock``, so the same decision code sees the same
notion of "now" in both. Timers registered with ``call_at`` fire from ``advance_to`` (simulated) or from
the engine loop's ``fire_due`` (wall), always on the dispatcher thread.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol

NS_PER_SECOND = 1_000_000_000


class Clock(Protocol):
    def now_ns(self) -> int: ...

    def call_at(self, ts_ns: int, callback: Callable[[int], None]) -> None: ...


class _TimerHeap:
    """Timers ordered by due time, ties broken by registration order (deterministic)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Callable[[int], None]]] = []
        self._seq = itertools.count()

    def push(self, ts_ns: int, callback: Callable[[int], None]) -> None:
        heapq.heappush(self._heap, (ts_ns, next(self._seq), callback))

    def pop_due(self, now_ns: int) -> list[tuple[int, Callable[[int], None]]]:
        due = []
        while self._heap and self._heap[0][0] <= now_ns:
            ts_ns, _, callback = heapq.heappop(self._heap)
            due.append((ts_ns, callback))
        return due

    def next_due_ns(self) -> int | None:
        return self._heap[0][0] if self._heap else None


class SimClock:
    """Simulated time, moved forward only by the backtester (never backwards)."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = start_ns
        self._timers = _TimerHeap()

    def now_ns(self) -> int:
        return self._now_ns

    def call_at(self, ts_ns: int, callback: Callable[[int], None]) -> None:
        self._timers.push(ts_ns, callback)

    def next_timer_ns(self) -> int | None:
        """When the earliest pending timer is due (None: no timer)."""
        return self._timers.next_due_ns()

    def advance_to(self, ts_ns: int) -> None:
        """Move time forward, firing due timers at their own due time, in order."""
        if ts_ns < self._now_ns:
            raise ValueError(f"SimClock cannot go backwards: now={self._now_ns} requested={ts_ns}")
        for due_ns, callback in self._timers.pop_due(ts_ns):
            self._now_ns = max(self._now_ns, due_ns)
            callback(due_ns)
        self._now_ns = ts_ns


class WallClock:
    """Real time (UTC epoch nanoseconds); timers fire when the engine loop calls ``fire_due``."""

    def __init__(self) -> None:
        self._timers = _TimerHeap()

    def now_ns(self) -> int:
        return time.time_ns()

    def call_at(self, ts_ns: int, callback: Callable[[int], None]) -> None:
        self._timers.push(ts_ns, callback)

    def fire_due(self, run: Callable[[Callable[[int], None], int], None] | None = None) -> int:
        """Run every timer that is due now; returns how many fired.

        ``run(callback, due_ns)``, when given, calls each callback (the live engine passes ``EventQueue.call``, so
        a timer that raises meets the same error policy as a handler).
        """
        due = self._timers.pop_due(self.now_ns())
        for due_ns, callback in due:
            if run is None:
                callback(due_ns)
            else:
                run(callback, due_ns)
        return len(due)

    def seconds_until_next_timer(self, default_s: float) -> float:
        nxt = self._timers.next_due_ns()
        if nxt is None:
            return default_s
        return max(0.0, min(default_s, (nxt - self.now_ns()) / NS_PER_SECOND))

    @staticmethod
    def sleep(seconds: float) -> None:
        """The only sleep in the project; live loops wait through the clock so tests can see it."""
        time.sleep(seconds)
