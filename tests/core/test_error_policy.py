"""The dispatcher's one error rule: the table from error class to action, and how the queue applies it."""

from __future__ import annotations

import pytest

from core.error_policy import LIVE_ERROR_POLICY, ErrorAction, action_for
from core.errors import (
    BrokerTemporaryError,
    ConfigError,
    DataError,
    InvariantViolation,
    OrderRejected,
    StateCorruptError,
    StrategyError,
)
from core.event_queue import EventQueue
from core.ipc_commands import CommandReply, ReplyCode, decode_command


@pytest.mark.parametrize(
    ("error", "action"),
    [
        (DataError("bad bar"), ErrorAction.SKIP),
        (OrderRejected("no"), ErrorAction.SKIP),
        (BrokerTemporaryError("down"), ErrorAction.SKIP),
        (StrategyError("momentum", "boom"), ErrorAction.DISABLE_STRATEGY),
        (InvariantViolation("books"), ErrorAction.HALT),
        (StateCorruptError("journal"), ErrorAction.STOP_CORRUPT),
        (ConfigError("x", ["y"]), ErrorAction.CRASH),  # never raised by a handler: nothing expects it there
        (RuntimeError("bug"), ErrorAction.CRASH),
        (RecursionError(), ErrorAction.CRASH),
        (OSError(28, "No space left on device"), ErrorAction.CRASH),
        (KeyError("x"), ErrorAction.CRASH),
    ],
)
def test_every_error_class_has_one_action_and_anything_unexpected_is_a_crash(error: Exception, action: str) -> None:
    assert action_for(error, LIVE_ERROR_POLICY) is action


def test_the_most_specific_class_wins() -> None:
    class PartialFillMismatch(InvariantViolation):
        pass

    policy = {InvariantViolation: ErrorAction.HALT, PartialFillMismatch: ErrorAction.SKIP}
    assert action_for(PartialFillMismatch("x"), policy) is ErrorAction.SKIP
    assert action_for(PartialFillMismatch("x"), LIVE_ERROR_POLICY) is ErrorAction.HALT


class Crash(Exception):
    pass


def test_queue_applies_the_rule_to_every_handler_and_goes_on_after_a_skip() -> None:
    seen: list[tuple[str, object]] = []

    def on_error(error: Exception, event: object, handler: object) -> None:
        seen.append((type(error).__name__, event))
        if action_for(error, LIVE_ERROR_POLICY) is ErrorAction.CRASH:
            raise Crash(str(error)) from error

    def bad_bar(event: int) -> None:
        raise DataError(f"bar {event}")

    def after(event: int) -> None:
        seen.append(("after", event))

    queue = EventQueue({int: [bad_bar, after]}, on_error=on_error)
    queue.put(1)
    queue.put(2)
    assert queue.run_until_empty() == 2
    assert seen == [("DataError", 1), ("after", 1), ("DataError", 2), ("after", 2)]

    def bug(event: str) -> None:
        raise RuntimeError("bug")

    queue.route(str, [bug, after])
    queue.put("x")
    with pytest.raises(Crash):
        queue.run_until_empty()
    assert ("after", "x") not in seen  # a crash stops at once


def test_without_a_rule_errors_propagate_unchanged_as_in_the_backtester() -> None:
    def bad(event: int) -> None:
        raise DataError("x")

    queue = EventQueue({int: [bad]})
    queue.put(1)
    with pytest.raises(DataError):
        queue.run_until_empty()
    with pytest.raises(DataError):
        queue.call(bad, 1)


def test_a_deeply_nested_command_is_refused_not_raised() -> None:
    reply = decode_command(b"[" * 100_000 + b"]" * 100_000)
    assert isinstance(reply, CommandReply) and reply.code is ReplyCode.MALFORMED and "nested" in reply.message
