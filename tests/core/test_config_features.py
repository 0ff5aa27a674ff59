"""The ``features:`` section: where the Feast repository is, strict like every other section."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config_loader import load_config
from core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_default_and_shipped_repo_path() -> None:
    assert load_config(REPO / "config.yaml").features.repo_path == "feature_repo"
    assert (REPO / load_config(REPO / "config.yaml").features.repo_path / "feature_store.yaml").is_file()


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("features:\n  repo_path: 5\n", "features.repo_path"),
        ('features:\n  repo_path: ""\n', "features.repo_path"),
        ("features:\n  repo_pth: feature_repo\n", "features.repo_pth"),
    ],
)
def test_a_bad_features_section_is_refused(tmp_path: Path, yaml_text: str, key: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.problems) == 1 and info.value.problems[0].startswith(f"{key}: "), info.value.problems
