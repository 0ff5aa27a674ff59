"""``strategies.<name>.stop`` (issue 15): ``atr`` or ``none`` (the default); anything else is a config error that
names the key, the value and what is allowed, and the entry points exit 2 on it."""

from __future__ import annotations

from pathlib import Path

import pytest

import run_backtest
from core.config_loader import load_config
from core.errors import ConfigError


def test_stop_defaults_to_none_and_accepts_atr(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("strategies:\n  mean_reversion:\n    stop: atr\n", encoding="utf-8")
    config = load_config(path)
    assert config.strategies.mean_reversion.stop == "atr"
    assert config.strategies.momentum.stop == "none" and config.strategies.sma_crossover.stop == "none"


@pytest.mark.parametrize(("value", "shown"), [("trailing", "'trailing'"), ("null", "None"), ("2.0", "2.0")])
def test_a_bad_stop_value_names_the_key_the_value_and_the_choices(tmp_path: Path, value: str, shown: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"strategies:\n  momentum:\n    stop: {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [problem] = info.value.problems
    assert problem.startswith("strategies.momentum.stop: ")
    assert "'atr'" in problem and "'none'" in problem and f"(got {shown})" in problem


def test_run_backtest_exits_2_on_a_bad_stop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_backtest.main(["--strategy", "momentum", "--set", "strategies.momentum.stop=sometimes",
                              "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 2
    assert "strategies.momentum.stop" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
