"""The AlgoWheel's bootstrap prior from backtest/ibsim TCA rows: features, arm mapping, skips and promotion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.config_models import AlgoWheelConfig
from ml import algowheel_store as store
from ml.bootstrap_algowheel_model import arm_of, bootstrap_prior, main, row_features
from portfolio.algo_wheel import Arm
from tca.logger import write_records
from tca.records import ExecutionRecord, UnfilledRecord

CONFIG = AlgoWheelConfig()
DECISION_TS = 1_714_570_200_000_000_000  # 2024-05-01 13:30 UTC
NOW_NS = 1_717_243_200_000_000_000
PLANTED_BPS = {("MOC", None): 3.0, ("LOC", None): 8.0, ("ADAPTIVE", "Normal"): 10.0, ("TWAP", None): 12.0}


def execution(i: int, algo: str, cost_bps: float, priority: str | None = None, **changes: Any) -> ExecutionRecord:
    """A backtest BUY of 100 at the price that costs ``cost_bps`` against a decision and arrival of 50.0."""
    values: dict[str, Any] = {
        "exec_id": f"E{i}",
        "client_order_id": f"O{i}",
        "strategy_id": "momentum",
        "symbol": "AAA",
        "side": "BUY",
        "order_quantity": 100,
        "quantity": 100,
        "price": 50.0 * (1 + cost_bps / 1e4),
        "commission": 0.0,
        "algo": algo,
        "algo_params": {} if priority is None else {"adaptivePriority": priority},
        "decision_ts": DECISION_TS + i,
        "decision_price": 50.0,
        "arrival_price": 50.0,
        "fill_ts": DECISION_TS + i,
        "spread_bps_at_arrival": 4.0,
        "adv_participation": 0.01,
        "vol_20d": 0.25,
        "minutes_to_close": 200.0,
        "source": "backtest",
        "run_id": "bt-1",
    }
    values.update(changes)
    return ExecutionRecord(**values)


def backtest_rows() -> list[ExecutionRecord | UnfilledRecord]:
    rng = np.random.default_rng(0)
    rows: list[ExecutionRecord | UnfilledRecord] = []
    for (algo, priority), cost in PLANTED_BPS.items():
        for _ in range(30):
            rows.append(
                execution(
                    len(rows),
                    algo,
                    cost + float(rng.normal(0, 1)),
                    priority,
                    adv_participation=float(rng.uniform(0.001, 0.03)),
                    vol_20d=float(rng.uniform(0.15, 0.45)),
                    spread_bps_at_arrival=float(rng.uniform(1, 9)),
                    minutes_to_close=float(rng.uniform(60, 380)),
                    source=str(rng.choice(["backtest", "sim"])),
                )
            )
    n = len(rows)
    rows += [execution(n + k, "MKT", 5.0) for k in range(3)]
    rows += [execution(n + 3, "LMT", 1.0), execution(n + 4, "MOC", 3.0, vol_20d=None)]
    rows += [execution(n + 5, "ADAPTIVE", 3.0, "Sometimes"), execution(n + 6, "MOC", 3.0, source="paper")]
    rows.append(execution(n + 7, "MOC", 40.0, source="sim", wheel_decision={"arm": "MOC"}))
    rows.append(
        UnfilledRecord(
            client_order_id=f"O{n + 8}",
            unfilled_quantity=100,
            end_ts=DECISION_TS,
            end_price=51.0,
            symbol="AAA",
            side="BUY",
            strategy_id="momentum",
            order_quantity=100,
            decision_ts=DECISION_TS,
            decision_price=50.0,
            algo="LOC",
            source="backtest",
            run_id="bt-1",
            adv_participation=0.01,
            minutes_to_close=5.0,
        )
    )
    return rows


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bootstrap") / "tca_log.duckdb"
    write_records(backtest_rows(), path)
    return path


def test_row_features_convert_the_log_units_to_the_wheels() -> None:
    row = {
        "side": "SELL",
        "decision_price": 20.0,
        "adv_participation": 0.01,
        "vol_20d": 0.25,
        "spread_bps_at_arrival": 10.0,
        "minutes_to_close": 195.0,
    }
    np.testing.assert_allclose(row_features(row), [1.0, 1.0, 1.0, 1.0, 0.5, 1.0])
    assert row_features({**row, "spread_bps_at_arrival": None})[3] == 0.0
    assert row_features({**row, "vol_20d": None}) is None
    assert row_features({**row, "adv_participation": 0.0}) is None  # no shares: unusable context


def test_arm_of_maps_algos_and_adaptive_priorities() -> None:
    assert arm_of("MOC", {}) is Arm.MOC and arm_of("LOC", None) is Arm.LOC and arm_of("TWAP", {}) is Arm.TWAP
    assert arm_of("ADAPTIVE", {"adaptivePriority": "Urgent"}) is Arm.ADAPTIVE_URGENT
    assert arm_of("ADAPTIVE", {"adaptivePriority": "Patient"}) is Arm.ADAPTIVE_PATIENT
    assert arm_of("ADAPTIVE", {}) is None and arm_of("MKT", {}) is None and arm_of("LMT", {}) is None


def test_prior_learns_the_planted_costs_and_counts_the_skips(db: Path, tmp_path: Path) -> None:
    report = bootstrap_prior(db, tmp_path, CONFIG, now_ns=NOW_NS)
    assert report.promoted and store.current_model_id(tmp_path) == report.model_id
    assert report.used == {"ADAPTIVE_NORMAL": 30, "LOC": 30, "MOC": 30, "TWAP": 30}
    assert report.skipped == {
        "ADAPTIVE without a known adaptivePriority": 1,
        "algo LMT is not an arm": 1,
        "algo MKT is not an arm": 3,
        "has a wheel decision (the trainer learns from it)": 1,
        "missing or unusable adv_participation, vol_20d or minutes_to_close": 2,  # no vol; unfilled-only LOC
        "source paper (the prior uses backtest, sim)": 1,
    }
    wheel = store.load_current_wheel(tmp_path, CONFIG)
    assert wheel is not None
    means = wheel.posterior_mean_reward(
        row_features(
            {
                "side": "BUY",
                "decision_price": 50.0,
                "adv_participation": 0.01,
                "vol_20d": 0.3,
                "spread_bps_at_arrival": 5.0,
                "minutes_to_close": 200.0,
            }
        )
    )
    learned = sorted((a for a in means if a.value in report.used), key=means.get, reverse=True)
    assert learned == [Arm.MOC, Arm.LOC, Arm.ADAPTIVE_NORMAL, Arm.TWAP]
    assert means[Arm.MOC] == pytest.approx(-3.0, abs=1.0)
    _, card = store.read_current(tmp_path)
    assert card["kind"] == "bootstrap_prior" and card["data"]["counts"]["orders_used"] == 120
    assert sum(card["data"]["counts"]["by_source"].values()) == 120
    assert len(card["data"]["fingerprint"]) == 64 and card["decision"]["promote"] is True


def test_an_existing_model_is_replaced_only_with_force(db: Path, tmp_path: Path) -> None:
    first = bootstrap_prior(db, tmp_path, CONFIG, now_ns=NOW_NS)
    kept = bootstrap_prior(db, tmp_path, CONFIG, now_ns=NOW_NS + 10**9)
    assert not kept.promoted and "use --force" in kept.reason
    assert store.current_model_id(tmp_path) == first.model_id
    assert kept.card["data"]["fingerprint"] == first.card["data"]["fingerprint"]
    forced = bootstrap_prior(db, tmp_path, CONFIG, force=True, now_ns=NOW_NS + 2 * 10**9)
    assert forced.promoted and store.current_model_id(tmp_path) == forced.model_id


def test_dry_run_writes_nothing(db: Path, tmp_path: Path) -> None:
    report = bootstrap_prior(db, tmp_path / "models", CONFIG, dry_run=True)
    assert report.model_id is None and not report.promoted and not (tmp_path / "models").exists()


def test_cli_exit_codes(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = tmp_path / "models"
    assert main(["--db", str(db), "--models", str(models)]) == 0
    assert "promoted: yes" in capsys.readouterr().out
    assert main(["--db", str(tmp_path / "nope.duckdb"), "--models", str(models)]) == 1
    assert "no TCA log here" in capsys.readouterr().err
    assert main(["--db", str(db), "--since", "yesterday"]) == 2
    assert "--since" in capsys.readouterr().err
    (tmp_path / "not_a_db.duckdb").write_text("hello")
    assert main(["--db", str(tmp_path / "not_a_db.duckdb"), "--models", str(models)]) == 1
    assert capsys.readouterr().err.strip()
