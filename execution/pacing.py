"""Client-side pacing of messages to TWS: at most ``max_messages`` in any sliding one-second window.

The 9.81 client has no throttle (``ib-protocol.md`` section 6): TWS accepts 50 messages/s per connection and
answers the excess with error 100, and may disconnect a client that keeps going. A token bucket with rate r
and burst b lets b + r messages through in one second, so it would need a tiny burst to stay under 50; a
sliding window admits a full burst of ``max_messages`` and still never exceeds the limit in any second.

Pure bookkeeping over timestamps handed in by the caller (no clock, no sleep, no threads): the owner (the
dispatcher thread) asks ``try_acquire(now_ns)`` and, when refused, schedules a timer for ``next_free_ns``.
"""

from __future__ import annotations

from collections import deque

NS_PER_SECOND = 1_000_000_000


class SlidingWindowPacer:
    """Admits at most ``max_messages`` sends in any window of ``window_ns``; not thread-safe (one owner)."""

    def __init__(self, max_messages: int, window_ns: int = NS_PER_SECOND) -> None:
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1 per window (got {max_messages})")
        if window_ns <= 0:
            raise ValueError(f"window_ns must be positive (got {window_ns})")
        self.max_messages = max_messages
        self._window_ns = window_ns
        self._sent: deque[int] = deque()

    def _expire(self, now_ns: int) -> None:
        sent, horizon = self._sent, now_ns - self._window_ns
        while sent and sent[0] <= horizon:
            sent.popleft()

    def try_acquire(self, now_ns: int) -> bool:
        """Count one message sent at ``now_ns`` and return True, or return False (nothing counted)."""
        self._expire(now_ns)
        if len(self._sent) >= self.max_messages:
            return False
        self._sent.append(now_ns)
        return True

    def next_free_ns(self, now_ns: int) -> int:
        """The earliest time a message will be admitted (``now_ns`` when one would be admitted now)."""
        self._expire(now_ns)
        if len(self._sent) < self.max_messages:
            return now_ns
        return self._sent[0] + self._window_ns + 1

    def in_window(self, now_ns: int) -> int:
        """Messages counted in the window ending at ``now_ns``."""
        self._expire(now_ns)
        return len(self._sent)


def messages_per_window(max_messages_per_s: float) -> int:
    """Whole messages per one-second window for a configured rate (at least one)."""
    if not max_messages_per_s > 0:
        raise ValueError(f"max_messages_per_s must be positive (got {max_messages_per_s})")
    return max(1, int(max_messages_per_s))
