"""Risk manager: drawdown-driven states (hysteresis, one-way HALTED), the size-scale curve, the exposure rules
and reduce-only verification against positions."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.config_models import RiskConfig
from core.events import Side, TradingState
from portfolio.pre_trade import Rejection
from portfolio.risk_manager import RiskManager
from testkit.orders import make_order

ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
CFG = RiskConfig(
    max_positions=2,
    max_gross_exposure_pct=100.0,
    max_position_weight_pct=20.0,
    drawdown_throttle_start_pct=5.0,
    reducing_drawdown_pct=10.0,
    halt_drawdown_pct=20.0,
    min_size_scale=0.25,
)


def _manager_at(drawdown_pct: float, cfg: RiskConfig = CFG) -> RiskManager:
    manager = RiskManager(cfg)
    manager.update(100_000.0, 0)
    manager.update(100_000.0 * (1 - drawdown_pct / 100.0), 1)
    return manager


# --- states ------------------------------------------------------------------------------------------------------


def test_drawdown_moves_active_to_reducing_and_back_only_below_the_throttle_start() -> None:
    manager = RiskManager(CFG)
    path = [(100.0, ACTIVE), (95.0, ACTIVE), (90.01, ACTIVE), (90.0, REDUCING), (94.0, REDUCING), (95.0, REDUCING)]
    path += [(95.01, ACTIVE), (91.0, ACTIVE)]  # 9% is under the reducing threshold again
    for ts, (equity, expected) in enumerate(path):
        assert manager.update(equity, ts) is expected, f"equity {equity}"
    assert [(ts, a, b) for ts, a, b, _ in manager.transitions] == [(3, ACTIVE, REDUCING), (6, REDUCING, ACTIVE)]
    assert "10.00%" in manager.transitions[0][3] and "reducing_drawdown_pct" in manager.transitions[0][3]


def test_drawdown_is_measured_from_the_peak() -> None:
    manager = RiskManager(CFG)
    for ts, equity in enumerate([100.0, 120.0, 110.0]):
        manager.update(equity, ts)
    assert manager.peak_equity == 120.0
    assert manager.drawdown_pct == pytest.approx(100 * 10 / 120)


def test_halt_threshold_from_active_and_halted_is_one_way() -> None:
    manager = RiskManager(CFG)
    manager.update(100.0, 0)
    assert manager.update(80.0, 1) is HALTED
    assert manager.update(200.0, 2) is HALTED
    assert manager.update(50.0, 3) is HALTED  # a deeper drawdown is not a second transition
    assert manager.transitions == [(1, ACTIVE, HALTED, manager.halt_reason)]
    assert manager.halt_reason is not None and "halt_drawdown_pct" in manager.halt_reason


def test_halt_from_reducing() -> None:
    manager = _manager_at(12.0)
    assert manager.state is REDUCING
    assert manager.update(79.0 * 1_000, 2) is HALTED
    assert [(a, b) for _, a, b, _ in manager.transitions] == [(ACTIVE, REDUCING), (REDUCING, HALTED)]


def test_kill_switch_halt_keeps_the_first_reason() -> None:
    manager = RiskManager(CFG)
    manager.halt("kill switch: flags/KILL.flag present", 5)
    manager.halt("second reason", 6)
    assert manager.state is HALTED and manager.halt_reason == "kill switch: flags/KILL.flag present"
    assert manager.transitions == [(5, ACTIVE, HALTED, "kill switch: flags/KILL.flag present")]
    manager.update(1e9, 7)
    assert manager.state is HALTED


@pytest.mark.parametrize("equity", [math.nan, math.inf, 0.0, -1.0])
def test_unusable_equity_halts(equity: float) -> None:
    manager = RiskManager(CFG)
    manager.update(100.0, 0)
    assert manager.update(equity, 1) is HALTED
    assert manager.halt_reason is not None and str(equity) in manager.halt_reason


def test_zero_throttle_start_recovers_at_a_new_peak() -> None:
    cfg = RiskConfig(drawdown_throttle_start_pct=0.0, reducing_drawdown_pct=10.0, halt_drawdown_pct=20.0)
    manager = _manager_at(10.0, cfg)
    assert manager.state is REDUCING
    assert manager.update(99_999.0, 2) is REDUCING
    assert manager.update(100_000.0, 3) is ACTIVE


def test_initial_peak_survives_a_restart() -> None:
    manager = RiskManager(CFG, initial_peak_equity=100_000.0)
    assert manager.update(89_000.0, 0) is REDUCING


# --- size scale --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("drawdown_pct", "scale"), [(0.0, 1.0), (4.0, 1.0), (5.0, 1.0), (7.5, 0.625), (10.0, 0.25), (15.0, 0.25)]
)
def test_size_scale_curve(drawdown_pct: float, scale: float) -> None:
    assert _manager_at(drawdown_pct).size_scale() == pytest.approx(scale)


def test_size_scale_is_zero_when_halted_and_one_before_any_update() -> None:
    assert RiskManager(CFG).size_scale() == 1.0
    assert _manager_at(25.0).size_scale() == 0.0


def test_size_scale_is_a_step_when_throttle_start_equals_reducing() -> None:
    cfg = RiskConfig(drawdown_throttle_start_pct=10.0, reducing_drawdown_pct=10.0, halt_drawdown_pct=20.0)
    assert _manager_at(9.99, cfg).size_scale() == 1.0
    assert _manager_at(10.0, cfg).size_scale() == cfg.min_size_scale


@given(st.floats(0.0, 19.99), st.floats(0.0, 19.99))
def test_size_scale_never_increases_with_drawdown(dd_a: float, dd_b: float) -> None:
    low, high = sorted((dd_a, dd_b))
    scale_low, scale_high = _manager_at(low).size_scale(), _manager_at(high).size_scale()
    assert CFG.min_size_scale <= scale_high <= scale_low + 1e-12 <= 1.0 + 1e-12


# --- check_order -------------------------------------------------------------------------------------------------


def _check(
    manager: RiskManager, order_kwargs: dict[str, Any], positions: dict[str, int], gross: float = 0.0
) -> Rejection | None:
    """The order priced at $10 against $100,000 of equity."""
    return manager.check_order(make_order(**order_kwargs), 10.0, 100_000.0, gross, positions)


def test_halted_rejects_everything_even_exits() -> None:
    manager = RiskManager(CFG)
    manager.halt("kill switch", 0)
    rejection = _check(manager, dict(side=Side.SELL, quantity=100, reduce_only=True), {"AAA": 100})
    assert rejection is not None and rejection.check == "trading_state" and "kill switch" in rejection.reason


def test_reducing_accepts_only_orders_that_shrink_a_position() -> None:
    manager = _manager_at(12.0)
    assert _check(manager, dict(side=Side.SELL, quantity=100, reduce_only=True), {"AAA": 100}) is None
    assert _check(manager, dict(side=Side.BUY, quantity=40), {"AAA": -50}) is None  # unflagged but it reduces
    opening = _check(manager, dict(side=Side.BUY, quantity=100), {})
    assert opening is not None and opening.check == "trading_state" and "REDUCING" in opening.reason


def test_reducing_verifies_the_reduce_only_flag_against_positions() -> None:
    manager = _manager_at(12.0)
    crossing = _check(manager, dict(side=Side.SELL, quantity=150, reduce_only=True), {"AAA": 100})
    assert crossing is not None and "marked reduce-only" in crossing.reason and "to -50" in crossing.reason
    wrong_way = _check(manager, dict(side=Side.BUY, quantity=10, reduce_only=True), {"AAA": 100})
    assert wrong_way is not None


def test_max_positions_refuses_a_new_symbol_at_the_limit_but_not_adding_to_one_held() -> None:
    manager = RiskManager(CFG)
    held = {"AAA": 100, "BBB": 100, "CCC": 0}
    rejection = _check(manager, dict(symbol="DDD", quantity=10), held)
    assert rejection is not None and rejection.check == "max_positions"
    assert "3 open positions" in rejection.reason and "limit of 2" in rejection.reason
    assert _check(manager, dict(symbol="AAA", quantity=10), held) is None
    assert _check(manager, dict(symbol="DDD", quantity=10), {"AAA": 100, "BBB": 0}) is None


def test_max_gross_exposure_passes_at_the_limit_and_fires_above_it() -> None:
    manager = RiskManager(CFG.model_copy(update={"max_position_weight_pct": 100.0}))
    assert _check(manager, dict(quantity=1_000), {"BBB": 100}, gross=90_000.0) is None
    rejection = _check(manager, dict(quantity=1_001), {"BBB": 100}, gross=90_000.0)
    assert rejection is not None and rejection.check == "max_gross_exposure"
    assert "100.01%" in rejection.reason and "$100,010.00" in rejection.reason and "limit of 100%" in rejection.reason


def test_max_position_weight_passes_at_the_limit_and_fires_above_it() -> None:
    manager = RiskManager(CFG)
    assert _check(manager, dict(quantity=1_000), {"AAA": 1_000}, gross=10_000.0) is None
    rejection = _check(manager, dict(quantity=1_001), {"AAA": 1_000}, gross=10_000.0)
    assert rejection is not None and rejection.check == "max_position_weight"
    assert "20.01%" in rejection.reason and "2,001 shares" in rejection.reason and "limit of 20%" in rejection.reason


def test_short_side_weight_counts_the_absolute_position() -> None:
    manager = RiskManager(CFG)
    rejection = _check(manager, dict(side=Side.SELL, quantity=2_001), {})
    assert rejection is not None and rejection.check == "max_position_weight" and "-2,001 shares" in rejection.reason


def test_reducing_orders_skip_the_exposure_rules() -> None:
    manager = RiskManager(CFG)
    over_everything = {"AAA": 5_000, "BBB": 100, "CCC": 100}
    assert _check(manager, dict(side=Side.SELL, quantity=100), over_everything, gross=500_000.0) is None


def test_gross_exposure_counts_the_position_after_the_order_not_the_order_size() -> None:
    manager = RiskManager(CFG)
    # long 1,000 -> short 500: gross falls by $5,000 although $15,000 of shares trade
    assert _check(manager, dict(side=Side.SELL, quantity=1_500), {"AAA": 1_000}, gross=95_000.0) is None


def test_crossing_through_zero_is_exposure_increasing() -> None:
    manager = RiskManager(CFG)
    rejection = _check(manager, dict(side=Side.SELL, quantity=3_100, reduce_only=True), {"AAA": 1_000}, 10_000.0)
    assert rejection is not None and rejection.check == "max_position_weight"


@pytest.mark.parametrize(("price", "equity"), [(math.nan, 100_000.0), (0.0, 100_000.0), (10.0, -5.0)])
def test_unusable_inputs_refuse_an_exposure_increasing_order(price: float, equity: float) -> None:
    rejection = RiskManager(CFG).check_order(make_order(), price, equity, 0.0, {})
    assert rejection is not None and rejection.check == "risk_inputs"


def test_check_order_does_not_change_the_state() -> None:
    manager = _manager_at(12.0)
    before = (manager.state, list(manager.transitions), manager.drawdown_pct)
    _check(manager, dict(quantity=100), {})
    assert (manager.state, manager.transitions, manager.drawdown_pct) == before


def test_rearm_after_flat_sessions_rebases_throttle_but_not_the_halt_limit() -> None:
    from core.config_models import RiskConfig
    from core.events import TradingState
    from portfolio.risk_manager import RiskManager

    cfg = RiskConfig(
        drawdown_throttle_start_pct=5, reducing_drawdown_pct=10, halt_drawdown_pct=20, rearm_after_flat_sessions=3
    )
    risk = RiskManager(cfg)
    risk.update(100.0, 0)
    assert risk.update(89.0, 1) is TradingState.REDUCING
    assert risk.update(89.0, 2, flat=False) is TradingState.REDUCING  # holding: no re-arm
    for ts in (3, 4):
        assert risk.update(89.0, ts, flat=True) is TradingState.REDUCING
    assert risk.update(89.0, 5, flat=True) is TradingState.ACTIVE
    assert risk.size_scale() == 1.0
    # a further 9% loss is 20.1% from the high-water mark of 100: HALT, though only 9% from the re-based peak
    assert risk.update(79.9, 6) is TradingState.HALTED


def test_without_rearm_a_flat_book_stays_reducing() -> None:
    from core.config_models import RiskConfig
    from core.events import TradingState
    from portfolio.risk_manager import RiskManager

    risk = RiskManager(RiskConfig())
    risk.update(100.0, 0)
    risk.update(89.0, 1)
    for ts in range(2, 100):
        assert risk.update(89.0, ts, flat=True) is TradingState.REDUCING
