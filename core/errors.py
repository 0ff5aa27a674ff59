"""Error classes grouped by how the system handles them, not by where they arise.

Each class names a handling policy, so a caller decides what to do from the type alone:

- ``ConfigError``: the operator's settings are wrong; CLIs exit 2 with the full list of problems.
- ``DataError``: a bar or file is unusable; the bar is quarantined, never traded on.
- ``BrokerTemporaryError``: the broker is briefly unavailable; retried with capped backoff.
- ``OrderRejected``: one order cannot go out; it becomes an ``OrderFailedEvent``.
- ``StrategyError``: one strategy misbehaved; that strategy is switched off, the engine runs on.
- ``InvariantViolation``: our own books are inconsistent; the trading state moves to HALTED.
- ``StateCorruptError``: a persisted state file cannot be trusted; the engine stops with a message.
- ``StateInUseError`` (a ``ConfigError``): another engine holds the state dir; this one exits 2.
"""

from __future__ import annotations


class TradingSystemError(Exception):
    """Base class so entry points can catch everything the project raises on purpose."""


class ConfigError(TradingSystemError):
    """Invalid configuration. ``problems`` lists every problem found, one line each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        header = f"{source}: {count} configuration problem{'s' if count != 1 else ''}"
        super().__init__(header + "\n" + "\n".join(f"  - {p}" for p in self.problems))


class DataError(TradingSystemError):
    """Market data that must not be traded on (bad bar, unreadable file, wrong columns)."""


class BrokerTemporaryError(TradingSystemError):
    """The broker connection is down or pacing us; retry with capped exponential backoff."""


class OrderRejected(TradingSystemError):
    """An order refused by a pre-trade check, the risk manager or the broker."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        self.reason = reason
        self.code = code
        super().__init__(reason if code is None else f"[{code}] {reason}")


class StrategyError(TradingSystemError):
    """A strategy raised or produced nonsense; it is disabled, other strategies continue."""

    def __init__(self, strategy_id: str, message: str) -> None:
        self.strategy_id = strategy_id
        super().__init__(f"strategy {strategy_id}: {message}")


class InvariantViolation(TradingSystemError):
    """Our own accounting or order books disagree with themselves; trading must halt."""


class StateCorruptError(TradingSystemError):
    """A persisted state file is unreadable or inconsistent; never silently replaced."""


class StateInUseError(ConfigError):
    """Another engine holds the state dir's lock; this one must not start (exit 2, like any configuration error).

    A ``ConfigError`` because the fix is a setting: two engines on one state dir would replay the same journal,
    each believe it owns every order in it, and send and book them twice. ``holder_pid`` is None when the holder
    had not yet written its pid.
    """

    def __init__(self, lock_path: str, holder_pid: int | None) -> None:
        self.lock_path = lock_path
        self.holder_pid = holder_pid
        holder = f"pid {holder_pid}" if holder_pid is not None else "a process whose pid is not written yet"
        super().__init__(lock_path, [
            f"another engine ({holder}) holds this lock on its state dir: one state dir serves one engine; stop "
            "that engine first, or give this one its own system.state_dir"
        ])  # fmt: skip
