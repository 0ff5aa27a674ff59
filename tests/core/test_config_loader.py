"""Config: every problem reported at once, with key path, value, rule and suggestions; CLIs exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.config_loader import config_id, load_config
from core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_shipped_config_is_valid() -> None:
    config = load_config(REPO / "config.yaml")
    assert config.ib_connection.mode == "sim"
    assert config.ib_connection.main_client_id != config.risk_monitor.risk_monitor_client_id
    assert config.costs.commission_model == "ib_fixed"


def test_several_errors_are_all_reported_with_path_value_and_rule(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "ib_connection": {"mode": "paper", "port": 70000},
            "portfolio": {"risk_per_trade_pct": -1, "account_type": "cash", "sizing": {"method": "kelly"}},
            "costs": {"commission_model": "ib_flat"},
        },
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert str(path) in text
    assert len(info.value.problems) == 5
    assert "ib_connection.mode" in text and "'paper'" in text and "'sim' or 'tws'" in text
    assert "ib_connection.port" in text and "70000" in text
    assert "portfolio.risk_per_trade_pct" in text and "-1" in text
    assert "portfolio.sizing.method" in text and "'kelly'" in text
    assert "costs.commission_model" in text and "ib_fixed" in text


def test_unknown_key_suggests_the_closest_name(tmp_path: Path) -> None:
    path = write(tmp_path, {"portfolio": {"initial_capitl": 5000}, "sytem": {}})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "portfolio.initial_capitl: unknown key" in text
    assert "did you mean 'portfolio.initial_capital'?" in text
    assert "did you mean 'system'?" in text


def test_client_ids_must_differ(tmp_path: Path) -> None:
    path = write(tmp_path, {"ib_connection": {"main_client_id": 7}, "risk_monitor": {"risk_monitor_client_id": 7}})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert any("risk_monitor.risk_monitor_client_id" in p and "7" in p for p in info.value.problems)


def test_cross_section_rule_reported_alongside_field_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"ib_connection": {"main_client_id": 3, "port": 0}, "risk_monitor": {"risk_monitor_client_id": 3}},
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.problems) == 2


def test_cross_field_rules_inside_sections(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "portfolio": {"allow_short": True, "account_type": "cash", "risk": {"halt_drawdown_pct": 2}},
            "strategies": {"sma_crossover": {"params": {"fast_period": 30, "slow_period": 10}}},
        },
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "allow_short" in text and "margin" in text
    assert "halt_drawdown_pct" in text
    assert "fast_period must be below slow_period" in text


def test_set_overrides_are_validated_like_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, {})
    config = load_config(path, ["portfolio.initial_capital=50000", "backtest.start=2020-01-02"])
    assert config.portfolio.initial_capital == 50000
    assert config.backtest.start == "2020-01-02"
    with pytest.raises(ConfigError) as info:
        load_config(path, ["portfolio.initial_capital=-5", "portfolio.risk.max_positons=3", "nonsense"])
    text = str(info.value)
    assert "portfolio.initial_capital" in text and "-5" in text
    assert "did you mean 'portfolio.risk.max_positions'?" in text
    assert "KEY.PATH=VALUE" in text
    assert len(info.value.problems) == 3


def test_dates_are_checked(tmp_path: Path) -> None:
    path = write(tmp_path, "backtest:\n  start: 2020-13-01\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "backtest.start" in str(info.value) and "2020-13-01" in str(info.value)


def test_unreadable_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="YAML"):
        load_config(write(tmp_path, "a: [unclosed\n"))


def test_config_id_changes_with_any_value(tmp_path: Path) -> None:
    path = write(tmp_path, {})
    base = config_id(load_config(path))
    assert base == config_id(load_config(path))
    assert base != config_id(load_config(path, ["costs.slippage.half_spread_bps=3"]))


def test_config_is_frozen() -> None:
    config = load_config(REPO / "config.yaml")
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises its own ValidationError subclass
        config.portfolio.initial_capital = 1.0  # type: ignore[misc]


def test_cli_exits_2_on_a_bad_config(tmp_path: Path) -> None:
    path = write(tmp_path, {"portfolio": {"initial_capital": 0}, "costs": {"commission_model": "x"}})
    proc = subprocess.run(
        [sys.executable, str(REPO / "run_backtest.py"), "--strategy", "momentum", "--config", str(path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 2
    assert "portfolio.initial_capital" in proc.stderr and "costs.commission_model" in proc.stderr
