"""The AlgoWheel trainer on simulated wheel logs: a planted cheapest arm gets promoted, noise and thin data do not.

The logging policy is a real ``AlgoWheel`` learning online; each order's shortfall is its arm's planted mean cost
plus Gaussian noise, written to a real DuckDB TCA log as ``ExecutionRecord``s carrying ``decision.to_record()``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from core.config_models import AlgoWheelConfig
from core.events import Side
from ml import algowheel_store as store
from ml.algowheel_model_trainer import PROMOTION_RULE, main, train_and_maybe_promote
from portfolio.algo_wheel import AlgoWheel, Arm, SessionClock, WheelContext, WheelDecision
from tca.logger import write_records
from tca.records import ExecutionRecord

CONFIG = AlgoWheelConfig()
CHEAP = Arm.ADAPTIVE_NORMAL
START_NS = 1_704_983_400_000_000_000  # 2024-01-11 14:30 UTC, the open in New York
MINUTE_NS = 60_000_000_000
NOW_NS = 1_717_243_200_000_000_000  # 2024-06-01 12:00 UTC, names the models
_ALGO = {Arm.MOC: "MOC", Arm.LOC: "LOC", Arm.TWAP: "TWAP"}


def planted(arm: Arm) -> float:
    return 2.0 if arm is CHEAP else 12.0


def flat(arm: Arm) -> float:
    return 7.0


def record_of(
    i: int, decision: WheelDecision, context: WheelContext, minutes: float, cost_bps: float
) -> ExecutionRecord:
    """A BUY of 100 decided and arrived at 100.0 and filled at the price that costs exactly ``cost_bps``."""
    assert decision.arm is not None
    return ExecutionRecord(
        exec_id=f"E{i}", client_order_id=f"O{i}", strategy_id="momentum", symbol="AAA", side="BUY",
        order_quantity=100, quantity=100, price=100.0 * (1.0 + cost_bps / 1e4), commission=0.0,
        algo=_ALGO.get(decision.arm, "ADAPTIVE"), algo_params=dict(decision.algo_params),
        decision_ts=decision.ts_decision_ns, decision_price=100.0, arrival_ts=decision.ts_decision_ns,
        arrival_price=100.0, fill_ts=decision.ts_decision_ns + MINUTE_NS,
        spread_bps_at_arrival=context.spread_bps, adv_participation=context.quantity_shares / context.adv_shares,
        vol_20d=context.volatility_20d_pct / 100.0, minutes_to_close=minutes, policy_id=decision.policy_id,
        propensity=decision.propensity, source="sim", run_id="run-1", wheel_decision=decision.to_record(),
    )  # fmt: skip


def simulate(n: int, seed: int, cost: Callable[[Arm], float] = planted) -> list[ExecutionRecord]:
    """``n`` orders chosen by an online-learning wheel, shortfall = ``cost(arm)`` + N(0, 3²) bps."""
    rng = np.random.default_rng(seed)
    wheel = AlgoWheel(CONFIG, rng_seed=seed)
    records = []
    for i in range(n):
        context = WheelContext(
            side=Side.BUY, quantity_shares=float(rng.uniform(100, 20_000)), adv_shares=1e6,
            volatility_20d_pct=float(rng.uniform(15, 40)), spread_bps=float(rng.uniform(1, 10)),
            reference_price=100.0, collar_pct=2.0,
        )  # fmt: skip
        minutes = float(rng.uniform(60, 300))
        session = SessionClock(
            minutes_to_auction_cutoff=minutes - 10, minutes_to_close=minutes, regular_hours=True, half_day=False
        )
        decision = wheel.decide(context, START_NS + i * MINUTE_NS, session)
        assert decision.arm is not None
        shortfall = cost(decision.arm) + float(rng.normal(0.0, 3.0))
        wheel.update(decision, shortfall)
        records.append(record_of(i, decision, context, minutes, shortfall))
    return records


@pytest.fixture(scope="module")
def planted_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("planted") / "tca_log.duckdb"
    write_records(simulate(600, seed=1), db)
    return db


def test_candidate_with_the_planted_cheapest_arm_is_promoted_over_a_fresh_prior(
    planted_db: Path, tmp_path: Path
) -> None:
    report = train_and_maybe_promote(planted_db, tmp_path, CONFIG, seed=0, now_ns=NOW_NS)
    assert report.promoted, report.reason
    assert report.model_id is not None and store.current_model_id(tmp_path) == report.model_id
    assert report.incumbent_model_id is None
    point, low, _ = report.difference
    assert low > 0.0 and point > 3.0  # a near-uniform prior pays ~10 bps on 5 of 6 arms
    assert report.candidate["dr"].value > report.incumbent["dr"].value
    wheel = store.load_current_wheel(tmp_path, CONFIG)
    assert wheel is not None
    means = wheel.posterior_mean_reward(np.array([1.0, 1.0, 1.0, 0.5, 0.5, 1.0]))
    assert max(means, key=means.get) is CHEAP


def test_the_card_records_the_data_estimates_and_decision(planted_db: Path, tmp_path: Path) -> None:
    report = train_and_maybe_promote(planted_db, tmp_path, CONFIG, seed=0, now_ns=NOW_NS)
    _, card = store.read_current(tmp_path)
    assert card["model_id"] == report.model_id and card["created_at"] == "2024-06-01T12:00:00+00:00"
    counts = card["data"]["counts"]
    assert (counts["execution_rows"], counts["unfilled_rows"], counts["orders"], counts["decisions"]) == (
        600,
        0,
        600,
        600,
    )
    assert counts["by_source"] == {"sim": 600} and sum(counts["by_arm"].values()) == 600
    assert counts["by_arm"][CHEAP.value] > 300 and counts["skipped"] == {}
    assert len(card["data"]["fingerprint"]) == 64 and card["data"]["since"] is None
    assert set(card["estimates"]["candidate"]) == {"ips", "snips", "dr"} == set(card["estimates"]["incumbent"])
    assert card["estimates"]["candidate"]["dr"]["n"] == 600
    assert card["decision"] == {"rule": PROMOTION_RULE, "promote": True, "reason": report.reason}
    assert card["kind"] == "trained" and card["config"] == CONFIG.model_dump(mode="json")
    assert card["incumbent_model_id"] is None


def test_retraining_on_the_same_data_keeps_the_fingerprint_and_the_incumbent(planted_db: Path, tmp_path: Path) -> None:
    first = train_and_maybe_promote(planted_db, tmp_path, CONFIG, seed=0, now_ns=NOW_NS)
    again = train_and_maybe_promote(planted_db, tmp_path, CONFIG, seed=0, now_ns=NOW_NS + 10**9)
    dry = train_and_maybe_promote(planted_db, tmp_path, CONFIG, seed=0, dry_run=True)
    fingerprints = {r.card["data"]["fingerprint"] for r in (first, again, dry)}
    assert len(fingerprints) == 1
    assert again.incumbent_model_id == first.model_id
    assert not again.promoted and "only 0 logged decisions the incumbent was not trained on" in again.reason
    assert again.model_id is None  # not promoted: nothing written (the report says why)
    assert store.current_model_id(tmp_path) == first.model_id
    assert dry.model_id is None and not dry.promoted


def test_the_incumbent_is_judged_only_on_decisions_it_was_not_trained_on(tmp_path: Path) -> None:
    records = simulate(600, seed=4)
    db = tmp_path / "tca.duckdb"
    write_records(records[:300], db)
    first = train_and_maybe_promote(db, tmp_path / "models", CONFIG, now_ns=NOW_NS)
    assert first.promoted and first.card["data"]["last_decision_ts"] == records[299].decision_ts
    write_records(records[300:], db)
    second = train_and_maybe_promote(db, tmp_path / "models", CONFIG, now_ns=NOW_NS + 10**9)
    assert second.incumbent_model_id == first.model_id
    assert second.card["data"]["evaluated_after_ts"] == records[299].decision_ts
    assert second.candidate["dr"].n == 300 == second.card["estimates"]["dr_difference"]["n"]
    assert second.card["data"]["counts"]["decisions"] == 600


def test_since_filter_changes_the_rows_and_the_fingerprint(planted_db: Path, tmp_path: Path) -> None:
    full = train_and_maybe_promote(planted_db, tmp_path, CONFIG, dry_run=True)
    later = train_and_maybe_promote(planted_db, tmp_path, CONFIG, since=date(2024, 1, 12), dry_run=True)
    assert later.n_decisions == 0 and later.card["data"]["since"] == "2024-01-12"
    assert later.card["data"]["fingerprint"] != full.card["data"]["fingerprint"]


def test_equal_costs_do_not_promote(tmp_path: Path) -> None:
    db = tmp_path / "tca.duckdb"
    write_records(simulate(400, seed=5, cost=flat), db)
    report = train_and_maybe_promote(db, tmp_path / "models", CONFIG, seed=0, n_boot=500)
    assert not report.promoted, report.reason
    assert report.model_id is None and store.current_model_id(tmp_path / "models") is None
    assert not (tmp_path / "models" / "algowheel").exists() or not any((tmp_path / "models" / "algowheel").iterdir())


def test_too_few_decisions_never_promote_and_say_so(tmp_path: Path) -> None:
    db = tmp_path / "tca.duckdb"
    write_records(simulate(20, seed=2), db)
    report = train_and_maybe_promote(db, tmp_path / "models", CONFIG)
    assert not report.promoted and report.n_decisions == 20
    assert "only 20 logged decisions; at least 30" in report.reason
    assert report.candidate == {} and report.difference is None
    assert store.current_model_id(tmp_path / "models") is None
    assert report.card["decision"]["promote"] is False


def test_orders_without_a_wheel_decision_are_counted_not_used(planted_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "tca.duckdb"
    shutil.copy(planted_db, db)
    fixed = record_of(999, _fixed_decision(), _context(), 120.0, 5.0)
    write_records([replace(fixed, wheel_decision=None, policy_id=None, propensity=None)], db)
    report = train_and_maybe_promote(db, tmp_path / "models", CONFIG, dry_run=True)
    assert report.n_decisions == 600
    assert report.card["data"]["counts"]["skipped"] == {"no wheel decision": 1}


def _context() -> WheelContext:
    return WheelContext(side=Side.BUY, quantity_shares=1000.0, adv_shares=1e6, volatility_20d_pct=25.0,
                        spread_bps=5.0, reference_price=100.0, collar_pct=2.0)  # fmt: skip


def _fixed_decision() -> WheelDecision:
    session = SessionClock(minutes_to_auction_cutoff=110, minutes_to_close=120, regular_hours=True, half_day=False)
    return AlgoWheel(AlgoWheelConfig(arms=(Arm.MOC,)), rng_seed=0).decide(_context(), START_NS, session)


def test_cli_exit_codes(planted_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = tmp_path / "models"
    assert main(["--db", str(planted_db), "--models", str(models), "--n-boot", "200"]) == 0
    out = capsys.readouterr().out
    assert "promoted: yes" in out and "dr" in out
    assert main(["--db", str(tmp_path / "missing.duckdb"), "--models", str(models)]) == 1
    assert "no TCA log here" in capsys.readouterr().err
    assert main(["--db", str(planted_db), "--since", "2024-13-01"]) == 2
    assert "--since" in capsys.readouterr().err
    (models / "algowheel" / "CURRENT").write_text("not-a-model\n")
    assert main(["--db", str(planted_db), "--models", str(models), "--dry-run"]) == 1
    assert "CURRENT" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("algo_wheel:\n  epsilon: 2\n")
    assert main(["--db", str(planted_db), "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "algo_wheel.epsilon" in capsys.readouterr().err
