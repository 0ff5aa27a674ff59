"""``strategies.<name>.veto``: the signal veto's settings, strict like every other section (a threshold can be
neither 0, 1, text nor true, so the veto can never be switched off or made absolute by a typo)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config_loader import load_config
from core.config_models import VETO_DEFAULT_FEATURES, AppConfig
from core.errors import ConfigError
from data.bar_features import BAR_FEATURE_NAMES

REPO = Path(__file__).resolve().parents[2]


def test_defaults_and_the_shipped_config() -> None:
    veto = AppConfig().strategies.momentum.veto
    assert (veto.enabled, veto.threshold, veto.models_dir, veto.on_missing_features) == (
        False, 0.5, "state/models", "veto")  # fmt: skip
    assert VETO_DEFAULT_FEATURES == BAR_FEATURE_NAMES  # config_models imports nothing, so the names are copied
    shipped = load_config(REPO / "config.yaml").strategies
    assert not shipped.momentum.veto.enabled and not shipped.mean_reversion.veto.enabled
    assert shipped.momentum.veto.training.label == "triple_barrier"


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("threshold: 0", "strategies.momentum.veto.threshold"),
        ("threshold: 1.0", "strategies.momentum.veto.threshold"),
        ("threshold: '0.5'", "strategies.momentum.veto.threshold"),
        ("threshold: true", "strategies.momentum.veto.threshold"),
        ("threshold: .nan", "strategies.momentum.veto.threshold"),
        ("enabled: 1", "strategies.momentum.veto.enabled"),
        ("on_missing_features: ignore", "strategies.momentum.veto.on_missing_features"),
        ("treshold: 0.5", "strategies.momentum.veto.treshold"),
        ("training: {label: peek}", "strategies.momentum.veto.training.label"),
        ("training: {thresholds_tried: [0.5, 0.5]}", "strategies.momentum.veto.training.thresholds_tried"),
        ("training: {thresholds_tried: [1.5]}", "strategies.momentum.veto.training.thresholds_tried.0"),
        ("training: {features: []}", "strategies.momentum.veto.training.features"),
    ],
)
def test_a_bad_veto_setting_is_refused_naming_it(tmp_path: Path, value: str, key: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"strategies:\n  momentum:\n    veto:\n      {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.problems) == 1 and info.value.problems[0].startswith(f"{key}: "), info.value.problems


def test_a_misspelt_key_gets_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("strategies:\n  momentum:\n    veto:\n      treshold: 0.5\n")
    with pytest.raises(ConfigError, match=r"did you mean 'strategies\.momentum\.veto\.threshold'"):
        load_config(path)
