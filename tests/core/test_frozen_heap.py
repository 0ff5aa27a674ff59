"""A backtest leaves the heap it started with out of the collector's scans while it runs, and undoes that after
(the live engine's run does the same: ``tests/live/test_engine_in_process.py``).

The freeze must never outlive the run (objects frozen for good would escape every later collection of the
process), must be undone when the run raises, and must not undo a freeze the caller made itself.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from backtester.engine import Backtest, build_backtest
from core.config_loader import load_config
from core.frozen_heap import frozen_heap
from data.calendar import TradingCalendar
from data.panel import BarPanel
from data.synthetic import generate_market
from strategy.base import BarArrays
from strategy.sma_crossover import SmaCrossover

REPO = Path(__file__).resolve().parents[2]
CALENDAR = TradingCalendar()


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


class FreezeWatchingSma(SmaCrossover):
    """The real SMA crossover, noting how many objects were frozen when the run prepared it."""

    frozen_at_prepare: int | None = None

    def prepare(self, bars: BarArrays) -> None:
        self.frozen_at_prepare = gc.get_freeze_count()
        super().prepare(bars)


def _backtest(strategy: SmaCrossover) -> Backtest:
    config = load_config(REPO / "config.yaml", ())
    panel = BarPanel.from_frames(generate_market(3, "2015-01-02", "2016-12-30", 7, CALENDAR), CALENDAR)
    return build_backtest(config, panel, [strategy], CALENDAR)


def test_a_run_freezes_the_earlier_heap_and_leaves_nothing_frozen() -> None:
    config = load_config(REPO / "config.yaml", ())
    strategy = FreezeWatchingSma(config.strategies.sma_crossover.params)
    backtest = _backtest(strategy)
    assert gc.get_freeze_count() == 0
    result = backtest.run()
    assert strategy.frozen_at_prepare is not None and strategy.frozen_at_prepare > 10_000  # modules, config, panel
    assert gc.get_freeze_count() == 0
    assert len(result.equity) == len(backtest.panel.dates)


def test_a_run_that_raises_leaves_nothing_frozen() -> None:
    config = load_config(REPO / "config.yaml", ())

    class Broken(SmaCrossover):
        def prepare(self, bars: BarArrays) -> None:
            raise RuntimeError("strategy bug")

    backtest = _backtest(Broken(config.strategies.sma_crossover.params))
    with pytest.raises(RuntimeError, match="strategy bug"):
        backtest.run()
    assert gc.get_freeze_count() == 0


def test_a_freeze_made_by_the_caller_is_left_alone() -> None:
    """The count is compared with bounds, not for equality: a frozen object that dies leaves the count."""
    gc.freeze()
    frozen = gc.get_freeze_count()
    _made_since = [[] for _ in range(1_000)]  # tracked after the caller's freeze: a second freeze would take them
    with frozen_heap():
        assert gc.get_freeze_count() <= frozen, "froze again over the caller's freeze"
    assert 0 < gc.get_freeze_count() <= frozen, "undid the caller's freeze"


def test_collect_first_frees_the_garbage_already_made_before_freezing() -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self  # a cycle: only the collector frees it

    gc.collect()
    gc.disable()
    try:
        cyclic = Node()
        alive = weakref.ref(cyclic)
        del cyclic
        with frozen_heap(collect_first=True):
            assert alive() is None, "frozen with the garbage in it"
    finally:
        gc.enable()
