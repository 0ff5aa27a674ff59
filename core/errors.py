"""Error classes grouped by how the system handles them, not by where they arise.

Each class names a handling policy, so a caller decides what to do from the type alone:

- ``ConfigError``: the operator's settings are wrong; CLIs exit 2 with the full list of problems.
- ``DataError``: a bar or file is unusable; the bar is quarantined, never traded on.
- ``BrokerTemporaryError``: the broker is briefly unavailable; retried with capped backoff.
- ``OrderRejected``: one order cannot go out; it becomes an ``OrderFailedEvent``.
- ``StrategyError``: one strategy misbehaved; that strategy is switched off, the engine runs on.
- ``InvariantViolation``: our own books are inconsistent; the trading state moves to HALTED.
- ``StateCorruptError``: a persisted state file cannot be trusted; the engine stops with a message.
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
