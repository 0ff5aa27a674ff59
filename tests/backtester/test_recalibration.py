"""run_recalibration.py end to end: mandate verdicts, promotion only on a full pass, audit on every run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from backtester.mandate import RULES, check_mandate, load_mandate
from backtester.promotion import read_audit
from core.errors import ConfigError
from data.bar_store import BarStore
from data.calendar import TradingCalendar
from data.synthetic import generate_market

REPO = Path(__file__).resolve().parents[2]
CAL = TradingCalendar()
LENIENT = {
    "min_oos_sharpe": -100.0, "max_oos_drawdown_pct": 100.0, "min_oos_trades": 0, "max_pbo": 1.0, "min_dsr": 0.0,
    "min_walk_forward_efficiency": -1e9, "min_mc_p5_final_equity_pct": 1e-9, "max_worst_scenario_loss_pct": 100.0,
}


def test_shipped_mandate_is_valid_and_names_every_rule() -> None:
    mandate = load_mandate(REPO / "validation_mandate.yaml")
    assert set(mandate.model_dump()) == {*RULES, "veto"}  # veto: the signal-veto rules (test_veto_mandate.py)


def test_corrupt_mandate_is_a_clear_error_listing_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({**LENIENT, "max_pbo": 3, "min_sharp": 1}))
    with pytest.raises(ConfigError) as info:
        load_mandate(path)
    text = str(info.value)
    assert "max_pbo" in text and "3" in text and "min_sharp: unknown rule" in text
    path.write_text("min_oos_sharpe: [unclosed\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_mandate(path)


def test_every_rule_is_checked_and_an_unmeasured_metric_fails() -> None:
    mandate = load_mandate(REPO / "validation_mandate.yaml")
    metrics = {"oos_sharpe": 1.0, "oos_max_drawdown_pct": 30.0, "oos_trades": 50, "pbo": 0.2, "dsr": float("nan"),
               "walk_forward_efficiency": 0.8, "mc_p5_final_equity_pct": 95.0, "worst_scenario_loss_pct": 5.0}
    verdicts = {v.rule: v for v in check_mandate(mandate, metrics)}
    assert set(verdicts) == set(RULES)
    assert not verdicts["max_oos_drawdown_pct"].passed and "30" in verdicts["max_oos_drawdown_pct"].message
    assert not verdicts["min_dsr"].passed and verdicts["min_dsr"].value is None
    assert verdicts["min_oos_sharpe"].passed and verdicts["max_pbo"].passed


@pytest.fixture(scope="module")
def trending_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four symbols with a steady up-drift, so every walk-forward number is measurable."""
    root = tmp_path_factory.mktemp("store")
    frames = generate_market(["AAA", "BBB", "CCC", "DDD"], "2017-01-03", "2020-12-31", 5, CAL)
    store = BarStore(root, CAL)
    for symbol, frame in frames.items():
        f = frame.copy()
        drift = 1.0015 ** np.arange(len(f))
        for col in ("open", "high", "low", "close"):
            f[col] = (f[col].to_numpy() * drift).round(2)
        f["high"] = f[["open", "high", "close"]].max(axis=1)
        f["low"] = f[["open", "low", "close"]].min(axis=1)
        store.write(symbol, f)
    return root


def setup_run(tmp_path: Path, mandate: dict) -> tuple[Path, Path]:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["system"].update(state_dir=str(tmp_path / "state"), results_dir=str(tmp_path / "results"))
    config["strategies"]["momentum"]["grid"] = {"roc_period": [20, 60], "entry_roc_pct": [2.0, 5.0]}
    config["backtest"]["walk_forward"] = {"train_bars": 400, "test_bars": 150, "step_bars": 150, "warmup_bars": 120}
    config["backtest"]["monte_carlo"] = {"n_paths": 500, "block_length_days": 10, "seed": 3}
    config["portfolio"]["risk"].update(halt_drawdown_pct=60, reducing_drawdown_pct=50, drawdown_throttle_start_pct=40)
    config_path, mandate_path = tmp_path / "config.yaml", tmp_path / "mandate.yaml"
    config_path.write_text(yaml.safe_dump(config))
    mandate_path.write_text(yaml.safe_dump(mandate))
    return config_path, mandate_path


def recalibrate(tmp_path: Path, config: Path, mandate: Path, data: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "run_recalibration.py"), "--strategy", "momentum", "--config", str(config),
         "--mandate", str(mandate), "--data", str(data), "--serial", "--out", str(tmp_path / "out"), *extra],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )


def test_full_pass_promotes_and_audits(tmp_path: Path, trending_store: Path) -> None:
    config, mandate = setup_run(tmp_path, LENIENT)
    proc = recalibrate(tmp_path, config, mandate, trending_store)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    approved = yaml.safe_load((tmp_path / "state" / "approved_params" / "momentum.yaml").read_text())
    assert set(approved["params"]) >= {"roc_period", "entry_roc_pct", "trend_sma_period"}
    assert approved["data_fingerprint"] and approved["git_commit"]
    [row] = read_audit(tmp_path / "results" / "recalibration_audit.duckdb")
    assert row["passed"] and row["promoted"] and not row["dry_run"]
    assert "PASS" in proc.stdout


def test_mandate_failure_keeps_the_old_params_and_names_the_failed_rules(tmp_path: Path, trending_store: Path) -> None:
    config, mandate = setup_run(tmp_path, {**LENIENT, "min_oos_sharpe": 50.0, "min_oos_trades": 100000})
    approved = tmp_path / "state" / "approved_params" / "momentum.yaml"
    approved.parent.mkdir(parents=True)
    approved.write_text(yaml.safe_dump({"strategy": "momentum", "params": {"roc_period": 99}}))
    before = approved.read_bytes()
    proc = recalibrate(tmp_path, config, mandate, trending_store)
    assert proc.returncode == 1
    assert approved.read_bytes() == before
    assert "min_oos_sharpe" in proc.stdout and "min_oos_trades" in proc.stdout and "FAIL" in proc.stdout
    assert "previously approved params are kept" in proc.stdout
    [row] = read_audit(tmp_path / "results" / "recalibration_audit.duckdb")
    assert not row["passed"] and not row["promoted"]


def test_dry_run_promotes_nothing_but_is_audited(tmp_path: Path, trending_store: Path) -> None:
    config, mandate = setup_run(tmp_path, LENIENT)
    proc = recalibrate(tmp_path, config, mandate, trending_store, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "state" / "approved_params" / "momentum.yaml").exists()
    [row] = read_audit(tmp_path / "results" / "recalibration_audit.duckdb")
    assert row["passed"] and row["dry_run"] and not row["promoted"]


def test_bad_mandate_file_exits_2(tmp_path: Path, trending_store: Path) -> None:
    config, mandate = setup_run(tmp_path, {"min_oos_sharpe": "high"})
    proc = recalibrate(tmp_path, config, mandate, trending_store)
    assert proc.returncode == 2
    assert "min_oos_sharpe" in proc.stderr and "max_pbo: required rule is missing" in proc.stderr
