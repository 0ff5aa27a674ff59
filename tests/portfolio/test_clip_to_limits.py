"""Issue 15: an entry above a size limit is cut to the limit (risk.on_limit: clip, the default) and refused only
when nothing is left or when the config says reject; the same code runs in the backtester and the engine."""

from __future__ import annotations

import pytest

from backtester.engine import build_backtest
from core.config_models import AppConfig
from data.calendar import TradingCalendar
from data.panel import BarPanel
from testkit.bars import make_bar_frame
from testkit.strategies import ScriptedStrategy

CAL = TradingCalendar()
CLOSES = [50.0] * 30


def run(overrides: dict, shares: int = 1_000) -> tuple[list[int], dict, dict]:
    config = AppConfig.model_validate({
        "portfolio": {"initial_capital": 100_000, "sizing": {"method": "fixed_shares", "fixed_shares": shares},
                      **overrides.get("portfolio", {})},
        "costs": {"slippage": {"half_spread_bps": 0, "impact_coefficient_bps": 0}},
        "pre_trade": {"max_adv_participation_pct": 100, **overrides.get("pre_trade", {})},
    })  # fmt: skip
    panel = BarPanel.from_frames({"AAA": make_bar_frame(CLOSES, calendar=CAL, volume=1_000_000)}, CAL)
    bt = build_backtest(config, panel, [ScriptedStrategy({(25, "AAA"): 1})], CAL)
    result = bt.run()
    buys = [int(q) for q, side in zip(result.fills["quantity"], result.fills["side"], strict=True) if side == "BUY"]
    return buys, result.rejections, result.clipped


def test_an_entry_over_the_position_weight_is_cut_to_the_limit() -> None:
    buys, rejections, clipped = run({})  # 1,000 x $50 = 50 % of equity; the default weight limit is 20 %
    assert buys == [400] and clipped == {"max_position_weight": 1} and rejections == {}


def test_the_tightest_size_limit_binds_notional_here() -> None:
    buys, _, clipped = run({"pre_trade": {"max_order_notional_usd": 12_345}})
    assert buys == [246] and clipped == {"max_order_notional": 1}  # floor(12,345 / 50)


@pytest.mark.parametrize(("overrides", "check"), [
    ({"portfolio": {"risk": {"on_limit": "reject"}}}, "max_position_weight"),
    # not one share fits the notional limit: nothing is cut, the order meets the checks in their order
    ({"pre_trade": {"max_order_notional_usd": 40}}, "max_position_weight"),
])  # fmt: skip
def test_reject_or_nothing_left_refuses_the_entry_with_the_limits_reason(overrides: dict, check: str) -> None:
    buys, rejections, clipped = run(overrides)
    assert buys == [] and rejections == {check: 1} and clipped == {}
