"""Issue 13: a backtest with ``order_type: WHEEL`` runs, works its orders with the AlgoWheel's arms, reports costs
per algo and is deterministic for a seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from backtester.engine import build_backtest
from backtester.report import costs_html
from backtester.tca_rows import tca_records
from core.config_models import AppConfig
from data.calendar import TradingCalendar
from data.panel import BarPanel
from tca.calculator import aggregate, order_shortfalls, records_frame
from tca.records import Algo, ExecutionRecord, UnfilledRecord
from testkit.bars import make_bar_frame
from testkit.strategies import ScriptedStrategy

CAL = TradingCalendar()
SESSIONS = 160
WARMUP = 25  # the wheel needs 20 daily returns of volatility before its first decision


def random_walk_panel(seed: int = 4) -> BarPanel:
    rng = np.random.default_rng(seed)
    closes = 50.0 * np.cumprod(1.0 + rng.normal(0.0005, 0.015, SESSIONS))
    frame = make_bar_frame(closes.round(2).tolist(), calendar=CAL, volume=200_000)
    return BarPanel.from_frames({"AAA": frame}, CAL)


def script() -> dict[tuple[int, str], int]:
    """Enter every 6 sessions after the warm-up, exit 3 sessions later: about 22 round trips."""
    steps: dict[tuple[int, str], int] = {}
    for t in range(WARMUP, SESSIONS - 4, 6):
        steps[(t, "AAA")], steps[(t + 3, "AAA")] = 1, 2
    return steps


def run(seed: int, tmp_path: Path) -> tuple[object, object]:
    config = AppConfig.model_validate({
        "portfolio": {"sizing": {"method": "fixed_shares", "fixed_shares": 1_000}, "max_trades_per_month": 100,
                      "risk": {"max_position_weight_pct": 100, "max_gross_exposure_pct": 200}},
        "pre_trade": {"max_adv_participation_pct": 100},
        "strategies": {"momentum": {"order_type": "WHEEL"}},
        "algo_wheel": {"seed": seed, "models_dir": str(tmp_path / "no_models"), "epsilon": 0.5},
    })  # fmt: skip
    bt = build_backtest(config, random_walk_panel(), [ScriptedStrategy(script())], CAL)
    return bt, bt.run()


def test_issue_13_wheel_backtest_works_orders_with_every_arm_and_reports_costs_per_algo(tmp_path: Path) -> None:
    bt, result = run(3, tmp_path)
    orders = [m.order for m in bt.executor.store.all()]  # type: ignore[attr-defined]
    assert len(orders) >= 30
    arms = {o.execution.arm for o in orders if o.execution is not None}
    assert arms == {"MOC", "LOC", "ADAPTIVE_URGENT", "ADAPTIVE_NORMAL", "ADAPTIVE_PATIENT", "TWAP"}
    records = tca_records(bt, result, "wheel-run")  # type: ignore[arg-type]
    executions = [r for r in records if isinstance(r, ExecutionRecord)]
    assert {r.algo for r in executions} >= {Algo.MOC, Algo.ADAPTIVE, Algo.TWAP}
    for row in executions:
        assert row.wheel_decision is not None and row.policy_id and 0 < (row.propensity or 0) <= 1
        assert row.wheel_decision["arm"].startswith(row.algo.value) or row.algo is Algo.MKT
        assert row.minutes_to_close == 390.0 or row.minutes_to_close == 210.0  # the next session, from its open
    unfilled = [r for r in records if isinstance(r, UnfilledRecord)]
    shortfalls = order_shortfalls(records_frame(executions), records_frame(unfilled))
    by_algo = aggregate(shortfalls, "algo", n_resamples=200, seed=1)
    assert set(by_algo["algo"]) >= {"MOC", "ADAPTIVE", "TWAP"}
    assert (by_algo["count"] > 0).all()
    html = costs_html(records)
    assert all(f"<td>{name}</td>" in html for name in ("MOC", "ADAPTIVE", "TWAP"))


def test_issue_13_wheel_backtest_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    (_, first), (_, again), (_, other) = run(3, tmp_path), run(3, tmp_path), run(4, tmp_path)
    columns = ["client_order_id", "side", "quantity", "price", "ts_event_ns"]
    pd.testing.assert_frame_equal(first.fills[columns], again.fills[columns])  # type: ignore[attr-defined]
    assert not first.fills[columns].equals(other.fills[columns])  # type: ignore[attr-defined]
