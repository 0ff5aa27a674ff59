"""``--set`` keys are checked against the settings' real paths, and a wrong one gets the full key it meant."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config_loader import load_config, unknown_override_key
from core.errors import ConfigError

CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


@pytest.mark.parametrize(("key", "meant"), [
    ("roc_period", "strategies.momentum.params.roc_period"),  # a setting without its sections
    ("portfolio.initial_captial", "portfolio.initial_capital"),  # a typo in the last name
    ("strategies.momentum.params.roc_perod", "strategies.momentum.params.roc_period"),
])  # fmt: skip
def test_issue_15_unknown_key_suggests_the_full_path(key: str, meant: str) -> None:
    assert f"did you mean {meant!r}" in (unknown_override_key(key) or "")


@pytest.mark.parametrize("key", ["portfolio.initial_capital", "strategies.momentum.grid.roc_period",
                                 "backtest.walk_forward.train_bars"])  # fmt: skip
def test_real_keys_and_free_form_mappings_pass(key: str) -> None:
    assert unknown_override_key(key) is None


def test_unknown_set_key_is_one_problem_naming_set() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(CONFIG, ["roc_period=20", "portfolio.initial_capital=50000"])
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("--set 'roc_period=20': unknown key 'roc_period'")
