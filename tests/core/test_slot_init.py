"""``core.events.slot_init``: the faster ``__init__`` of the hot frozen dataclasses builds exactly what the
``__init__`` that ``dataclasses`` wrote would, takes the same arguments, and leaves the objects frozen."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from dataclasses import MISSING, dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.events import (
    SLOT_INIT_ORIGINALS,
    FillEvent,
    MarketEvent,
    OrderEvent,
    OrderFailedEvent,
    SignalEvent,
    slot_init,
)
from execution.order_state import OrderFill
from portfolio.pre_trade import AcceptedOrder, Rejection

HOT_CLASSES = (MarketEvent, SignalEvent, OrderEvent, FillEvent, OrderFailedEvent, OrderFill, AcceptedOrder, Rejection)
ANY_VALUE = st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5), st.booleans())


def build_with_original(cls: type, kwargs: dict[str, object]) -> object:
    """An instance built by the ``__init__`` that ``dataclasses`` generated (kept by ``slot_init``)."""
    instance = object.__new__(cls)
    SLOT_INIT_ORIGINALS[cls](instance, **kwargs)
    return instance


def test_every_hot_class_has_the_slot_init() -> None:
    assert set(HOT_CLASSES) <= set(SLOT_INIT_ORIGINALS)
    for cls in HOT_CLASSES:
        assert cls.__init__ is not SLOT_INIT_ORIGINALS[cls]


@pytest.mark.parametrize("cls", HOT_CLASSES, ids=lambda c: c.__name__)
def test_signature_is_the_dataclass_one(cls: type) -> None:
    assert inspect.signature(cls.__init__) == inspect.signature(SLOT_INIT_ORIGINALS[cls])


@settings(max_examples=60, deadline=None)
@given(cls=st.sampled_from(HOT_CLASSES), data=st.data())
def test_builds_what_the_dataclass_init_builds(cls: type, data: st.DataObject) -> None:
    """Every field given, or only the required ones (defaults then fill the rest): equal objects, field by field."""
    fields = dataclasses.fields(cls)
    required = [f for f in fields if f.default is MISSING]
    chosen = fields if data.draw(st.booleans(), label="all fields") else required
    kwargs = {f.name: data.draw(ANY_VALUE, label=f.name) for f in chosen}
    fast, reference = cls(**kwargs), build_with_original(cls, kwargs)
    for f in fields:
        assert getattr(fast, f.name) is getattr(reference, f.name), f.name
    assert pickle.loads(pickle.dumps(fast)) == reference


@pytest.mark.parametrize("cls", HOT_CLASSES, ids=lambda c: c.__name__)
def test_still_frozen_and_still_strict(cls: type) -> None:
    fields = dataclasses.fields(cls)
    kwargs = {f.name: 1 for f in fields if f.default is MISSING}
    instance = cls(**kwargs)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(instance, fields[0].name, 2)
    with pytest.raises(TypeError):
        cls(**{**kwargs, "no_such_field": 1})
    if kwargs:
        missing = dict(kwargs)
        missing.pop(next(iter(missing)))
        with pytest.raises(TypeError):
            cls(**missing)
    assert dataclasses.replace(instance, **{fields[0].name: 7}) == build_with_original(
        cls, {**kwargs, fields[0].name: 7}
    )


def test_positional_and_keyword_only_fields_and_post_init_as_dataclasses_has_them() -> None:
    seen: list[tuple[int, int, int]] = []

    @slot_init
    @dataclass(frozen=True, slots=True)
    class Mixed:
        a: int
        b: int = 2
        c: int = dataclasses.field(default=3, kw_only=True)

        def __post_init__(self) -> None:
            seen.append((self.a, self.b, self.c))

    assert Mixed(1) == Mixed(1, 2, c=3)
    assert inspect.signature(Mixed.__init__) == inspect.signature(SLOT_INIT_ORIGINALS[Mixed])
    with pytest.raises(TypeError):
        Mixed(1, 2, 3)  # c is keyword-only
    assert seen == [(1, 2, 3), (1, 2, 3)]


def test_refuses_what_it_cannot_reproduce() -> None:
    with pytest.raises(TypeError, match="plain init fields"):

        @slot_init
        @dataclass(frozen=True, slots=True)
        class WithFactory:
            items: list[int] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match="slotted"):

        @slot_init
        @dataclass(frozen=True)
        class NotSlotted:
            a: int
