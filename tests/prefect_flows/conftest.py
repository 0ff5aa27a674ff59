"""Fixtures of the nightly pipeline's tests; the builders are in ``pipeline_builders.py`` (this folder goes on
``sys.path``: the suite runs with ``--import-mode=importlib`` and ``tests`` is no package)."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest

_FOLDER = str(Path(__file__).resolve().parent)
if _FOLDER not in sys.path:
    sys.path.insert(0, _FOLDER)

from pipeline_builders import StandInTrainer  # noqa: E402  (after the sys.path line)


@pytest.fixture
def stand_in_trainer(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], StandInTrainer]:
    """Install ``ml.ml_model_trainer`` as a module holding a ``StandInTrainer`` (the real one is part 2's)."""

    def install(window: dict[str, str]) -> StandInTrainer:
        trainer = StandInTrainer(window)
        module = types.ModuleType("ml.ml_model_trainer")
        module.train_veto_model = trainer  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "ml.ml_model_trainer", module)
        return trainer

    return install
