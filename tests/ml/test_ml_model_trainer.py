"""The veto trainer end to end on the synthetic market, real Feast: labels, purged CV, the model and its card, the
walk-forward A/B, and promotion only through the mandate's ``veto:`` rules. Marked e2e (about half a minute: three
full trainings); ``tests/ml/test_veto_leakage.py`` covers the leakage checks quickly."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from core.config_models import AppConfig
from data.calendar import TradingCalendar
from data.synthetic import generate_panel
from ml import veto_model_store as store
from ml.ml_model_trainer import format_report, main, train_veto_model
from ml.panel_features import TS_COLUMN
from ml.veto_training import FeatureLeakError

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
SHIPPED = yaml.safe_load((REPO / "validation_mandate.yaml").read_text())
LENIENT_VETO = {"min_oos_sharpe_gain": -100.0, "max_oos_drawdown_increase_pct": 100.0, "min_oos_trades": 0,
                "max_pbo": 1.0, "min_dsr": 0.0}  # fmt: skip


def raw_config(tmp: Path) -> dict:
    raw = AppConfig().model_dump(mode="json")
    raw["symbols"] = SYMBOLS
    raw["features"]["repo_path"] = str(REPO / "feature_repo")
    raw["backtest"]["synthetic"].update(start="2016-01-04", end="2021-12-31")
    raw["backtest"]["walk_forward"] = {"train_bars": 504, "test_bars": 252, "step_bars": 252, "anchored": False,
                                       "warmup_bars": 150}  # fmt: skip
    momentum = raw["strategies"]["momentum"]
    momentum["params"].update(roc_period=20, trend_sma_period=50)
    momentum["veto"].update(models_dir=str(tmp / "models"), threshold=0.5)
    momentum["veto"]["training"].update(n_estimators=50, calibration_folds=2, min_events=40,
                                        thresholds_tried=[0.45, 0.5, 0.55])  # fmt: skip
    return raw


def mandate_file(tmp: Path, name: str, veto: dict | None) -> Path:
    rules = {k: v for k, v in SHIPPED.items() if k != "veto"} | ({"veto": veto} if veto is not None else {})
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(rules))
    return path


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("trainer")


@pytest.fixture(scope="module")
def config(tmp: Path) -> AppConfig:
    return AppConfig.model_validate(raw_config(tmp))


@pytest.fixture(scope="module")
def promoted(config: AppConfig, tmp: Path):
    return train_veto_model(config, "momentum", mandate_path=mandate_file(tmp, "lenient", LENIENT_VETO))


def test_a_model_passing_every_veto_rule_is_written_with_its_card_and_promoted(promoted, tmp: Path) -> None:
    print("\n" + format_report(promoted))
    assert promoted.promoted and promoted.reason.startswith("promoted: every veto rule")
    models = tmp / "models" / "veto" / "momentum"
    assert (models / "CURRENT").read_text().strip() == promoted.model_id
    estimator, card = store.read_current(tmp / "models", "momentum")
    artifact = (models / promoted.model_id / "model.joblib").read_bytes()
    assert card["sha256"] == hashlib.sha256(artifact).hexdigest() and card["sklearn_version"]
    for key in ("features", "label_rule", "data_fingerprint", "config_id", "threshold_tried", "cv", "walk_forward",
                "mandate", "training_set", "model_id", "strategy", "feature_deciles", "data_period"):
        assert key in card, key
    assert all(len(card["feature_deciles"][f]) == 11 for f in card["features"])
    assert card["label_rule"]["kind"] == "triple_barrier" and card["threshold_tried"] == [0.45, 0.5, 0.55]
    assert card["cv"]["n_splits"] == 5 and len(card["cv"]["folds"]) == 5
    for fold in card["cv"]["folds"]:
        assert 0.0 <= fold["auc"] <= 1.0 and 0.0 < fold["brier"] < 1.0 and fold["log_loss"] > 0.0
        assert fold["n_train"] + fold["n_test"] + fold["n_purged"] == card["training_set"]["signals"]
    runs = card["walk_forward"]["runs"]
    assert set(runs) == {"without_veto", "threshold_0.45", "threshold_0.50", "threshold_0.55"}
    assert runs["without_veto"]["vetoes"] == 0 and runs["threshold_0.55"]["vetoes"] >= runs["threshold_0.45"]["vetoes"]
    assert runs["threshold_0.50"]["n_trades"] <= runs["without_veto"]["n_trades"]
    overfitting = card["walk_forward"]["overfitting"]
    assert overfitting["n_trials"] == 3 and 0 <= overfitting["pbo"] <= 1 and 0 <= overfitting["dsr"] <= 1
    assert [v["rule"] for v in card["mandate"]["verdicts"]] == [f"veto.{r}" for r in LENIENT_VETO]
    probabilities = store.probabilities(estimator, card, {"row": dict.fromkeys(card["features"], 0.01)})
    assert 0.0 < probabilities["row"] < 1.0


def test_a_failed_rule_writes_the_candidate_but_keeps_current(promoted, config: AppConfig, tmp: Path) -> None:
    strict = mandate_file(tmp, "strict", {**LENIENT_VETO, "min_oos_sharpe_gain": 50.0})
    report = train_veto_model(config, "momentum", seed=1, mandate_path=strict)
    assert not report.promoted and report.model_id != promoted.model_id
    assert "veto.min_oos_sharpe_gain" in report.reason and "CURRENT unchanged" in report.reason
    models = tmp / "models" / "veto" / "momentum"
    assert (models / "CURRENT").read_text().strip() == promoted.model_id
    assert (models / report.model_id / "model_card.json").is_file()  # the audit trail keeps every candidate
    assert not json.loads((models / report.model_id / "model_card.json").read_text())["mandate"]["passed"]


def test_a_leaking_feature_is_refused_before_anything_is_trained(config: AppConfig, tmp: Path) -> None:
    panel = generate_panel(SYMBOLS, "2016-01-04", "2021-12-31", config.backtest.seed, TradingCalendar())
    planted = pd.DataFrame({  # each decision close gets the next session's close: knowable one session later
        "symbol": np.repeat(SYMBOLS, len(panel.dates) - 1),
        TS_COLUMN: np.tile(panel.ts_event_ns[:-1], len(SYMBOLS)),
        "event_timestamp": pd.to_datetime(np.tile(panel.ts_event_ns[1:], len(SYMBOLS)), utc=True),
        "next_close": panel.close[1:].T.ravel(),
    })  # fmt: skip
    raw = raw_config(tmp / "leak")
    raw["strategies"]["momentum"]["veto"]["training"]["features"] = ["ret_1d", "next_close"]
    with pytest.raises(FeatureLeakError, match=r"next_close: .* have a value from after the decision"):
        train_veto_model(AppConfig.model_validate(raw), "momentum", extra_features=planted,
                         mandate_path=mandate_file(tmp, "lenient2", LENIENT_VETO))  # fmt: skip
    assert not (tmp / "leak" / "models").exists()


def test_the_cli_dry_run_writes_nothing_and_a_mandate_without_veto_rules_promotes_nothing(
    promoted, tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = tmp / "config.yaml"
    config_path.write_text(yaml.safe_dump(raw_config(tmp)))
    before = sorted(p.name for p in (tmp / "models" / "veto" / "momentum").iterdir())
    no_veto = mandate_file(tmp, "no_veto", None)
    code = main(["--strategy", "momentum", "--config", str(config_path), "--mandate", str(no_veto), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0 and "dry run, nothing written" in out and "no veto: section" in out and "purged CV" in out
    assert sorted(p.name for p in (tmp / "models" / "veto" / "momentum").iterdir()) == before
    bad = tmp / "bad.yaml"
    bad.write_text(yaml.safe_dump({**SHIPPED, "veto": {**LENIENT_VETO, "max_pbo": 2}}))
    assert main(["--strategy", "momentum", "--config", str(config_path), "--mandate", str(bad)]) == 2
    assert "veto.max_pbo" in capsys.readouterr().err
