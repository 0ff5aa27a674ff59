"""``core.ib_messages.IB_MESSAGE_TYPES`` lists every message class the module defines (the engine routes them all)."""

from __future__ import annotations

import inspect

import core.ib_messages as messages


def test_every_ib_message_class_is_listed_once() -> None:
    base = messages.IbMessage
    classes = [obj for obj in vars(messages).values() if inspect.isclass(obj)]
    defined = {cls for cls in classes if issubclass(cls, base) and cls is not base}
    assert set(messages.IB_MESSAGE_TYPES) == defined
    assert len(messages.IB_MESSAGE_TYPES) == len(defined)
