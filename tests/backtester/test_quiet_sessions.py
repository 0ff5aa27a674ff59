"""Quiet sessions absorbed in bulk give the same backtest, to the bit, as every session through the event path.

Each case runs one backtest twice, ``skip_quiet_sessions`` on and off, and compares every output: the equity and
exposure series (exactly, as floats), the fills, the stops, the rejections, clips and ignored signals, the state
history and the final state. The cases are built to reach the bulk path's edges: several symbols held at once
(the row-by-row dot products), symbols listed late and bars removed (NaN closes carried forward, a flat
symbol's unknown price), a cash account (sales settling inside absorbed runs), protective stops, volatility targeting,
drawdown thresholds low enough to go REDUCING, re-arm after flat sessions and HALT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtester.engine import Backtest, BacktestResult, build_backtest
from backtester.quiet_sessions import MIN_RUN_SESSIONS, QuietSessions, carried_forward
from core.config_loader import load_config
from data.calendar import TradingCalendar
from data.panel import BarPanel
from data.synthetic import generate_market
from strategy.registry import build_strategy

REPO = Path(__file__).resolve().parents[2]
CALENDAR = TradingCalendar()

TIGHT_RISK = ("portfolio.risk.drawdown_throttle_start_pct=0.5", "portfolio.risk.reducing_drawdown_pct=1.0",
              "portfolio.risk.halt_drawdown_pct=4", "portfolio.risk.rearm_after_flat_sessions=3")  # fmt: skip
CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "momentum default": ("momentum", ()),
    "momentum stops, targeting": ("momentum", ("strategies.momentum.stop=atr", "portfolio.optimizer.enabled=true")),
    "mean reversion stops, tight risk": ("mean_reversion", ("strategies.mean_reversion.stop=atr", *TIGHT_RISK)),
    "sma margin, tight risk": ("sma_crossover", ("portfolio.account_type=margin", *TIGHT_RISK)),
    "sma halts early": ("sma_crossover", ("portfolio.risk.halt_drawdown_pct=0.3",
                                          "portfolio.risk.reducing_drawdown_pct=0.2",
                                          "portfolio.risk.drawdown_throttle_start_pct=0.1")),
}  # fmt: skip


def market(n_symbols: int, seed: int, holes: bool) -> dict[str, pd.DataFrame]:
    frames = generate_market(n_symbols, "2012-01-03", "2019-12-31", seed, CALENDAR)
    if holes:
        rng = np.random.default_rng(seed)
        for i, (symbol, frame) in enumerate(sorted(frames.items())):
            frame = frame.iloc[60 * i :]  # listed later, one symbol after another
            keep = rng.random(len(frame)) > 0.03  # and about 3% of the sessions missing
            frames[symbol] = frame[keep]
    return frames


def run(strategy: str, overrides: tuple[str, ...], frames: dict[str, pd.DataFrame], skip: bool,
        min_run: int = 1) -> BacktestResult:  # fmt: skip
    """``min_run=1``: every quiet run in bulk, however short, so the bulk path meets as many edges as it can."""
    config = load_config(REPO / "config.yaml", overrides)
    panel = BarPanel.from_frames(frames, CALENDAR)
    backtest = build_backtest(config, panel, [build_strategy(strategy, config.strategies)], CALENDAR)
    backtest.skip_quiet_sessions = skip
    backtest.quiet_min_run = min_run
    result = backtest.run()
    FINAL_STATE[id(result)] = final_state(backtest)
    return result


FINAL_STATE: dict[int, dict[str, Any]] = {}


def final_state(backtest: Backtest) -> dict[str, Any]:
    """What the run leaves behind that the outputs may not show: the history rings (ADV, the 20-day volatility),
    the optimizer's returns, the drawdown rules' peak and counts, the ledger's last prices."""
    pm = backtest.portfolio
    targeter = pm._targeter
    return {"volume_ring": pm._volume_hist.copy(), "close_ring": pm._close_hist.copy(), "bars_seen": pm._bars_seen,
            "returns": list(targeter._returns), "last_equity": targeter._last_equity,
            "vol": targeter.realized_vol_pct(), "peak": pm.risk.peak_equity, "hwm": pm.risk.high_water_mark,
            "drawdown": pm.risk.drawdown_pct, "hard": pm.risk.hard_drawdown_pct, "flat": pm.risk._flat_updates,
            "last_prices": pm.ledger.last_prices.copy(), "settled": pm.ledger.settled_cash,
            "unsettled": pm.ledger.unsettled_cash, "next_settlement": pm.ledger.next_settlement_ns(),
            "adv": [pm.average_daily_volume(s) for s in pm.symbols],
            "vol_20d": [pm.volatility_20d(s) for s in pm.symbols]}  # fmt: skip


def assert_same(bulk: BacktestResult, stepwise: BacktestResult) -> None:
    a_state, b_state = FINAL_STATE.pop(id(bulk)), FINAL_STATE.pop(id(stepwise))
    for key, value in a_state.items():  # None (not known yet) compares as NaN
        a_value, b_value = np.asarray(value, dtype=float), np.asarray(b_state[key], dtype=float)
        assert np.array_equal(a_value, b_value, equal_nan=True), key
    for series in ("equity", "gross_exposure"):
        a, b = getattr(bulk, series), getattr(stepwise, series)
        assert a.index.equals(b.index), series
        assert np.array_equal(a.to_numpy(), b.to_numpy()), (series, _first_difference(a, b))
    pd.testing.assert_frame_equal(bulk.fills, stepwise.fills, check_exact=True)
    pd.testing.assert_frame_equal(bulk.stops, stepwise.stops, check_exact=True)
    fields: tuple[str, ...] = ("rejections", "ignored_signals", "clipped", "state_history", "final_state")
    for name in fields:
        assert getattr(bulk, name) == getattr(stepwise, name), name


def _first_difference(a: pd.Series, b: pd.Series) -> Any:
    differs = np.flatnonzero(a.to_numpy() != b.to_numpy())
    return None if not len(differs) else (a.index[differs[0]], a.iloc[differs[0]], b.iloc[differs[0]])


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("holes", [False, True], ids=["full", "holes"])
def test_bulk_quiet_sessions_equal_the_event_path(case: str, holes: bool) -> None:
    strategy, overrides = CASES[case]
    frames = market(6, 11, holes)
    bulk, stepwise = run(strategy, overrides, frames, True), run(strategy, overrides, frames, False)
    assert len(stepwise.fills) >= 2, "the case must trade to test anything"
    assert_same(bulk, stepwise)


@pytest.mark.parametrize("case", ["momentum stops, targeting", "mean reversion stops, tight risk"])
def test_the_default_minimum_run_gives_the_same_backtest(case: str) -> None:
    """The engine's default leaves runs shorter than ``MIN_RUN_SESSIONS`` to the event path: the mix of both
    paths must give the same outputs as either alone."""
    strategy, overrides = CASES[case]
    frames = market(6, 11, True)
    mixed = run(strategy, overrides, frames, True, min_run=MIN_RUN_SESSIONS)
    assert_same(mixed, run(strategy, overrides, frames, False))


def test_the_cases_reach_the_edges_they_are_there_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without these the equality above could hold for want of anything to differ on."""
    frames = market(6, 11, True)
    runs: list[tuple[int, int, bool]] = []  # (first session, sessions, signals on the last)
    absorb_from = QuietSessions.absorb_from

    def recording(self: QuietSessions, t: int) -> int:
        absorbed = absorb_from(self, t)
        if absorbed:
            runs.append((t, absorbed, self.signals_on(t + absorbed - 1)))
        return absorbed

    monkeypatch.setattr(QuietSessions, "absorb_from", recording)
    traded = run(*CASES["momentum default"], frames, True)
    dates = BarPanel.from_frames(frames, CALENDAR).dates
    starts = [t for t, _, _ in runs]
    assert set(dates[starts]) & set(traded.fills["date"]), "no run starts at the close of a session that filled"
    assert any(signals for _, _, signals in runs), "no run ends with a session on which the strategy signals"
    tight = run(*CASES["mean reversion stops, tight risk"], frames, True)
    assert any("REDUCING" in change for change in tight.state_history)
    assert any("REDUCING->ACTIVE" in change for change in tight.state_history)
    assert run(*CASES["sma halts early"], frames, True).final_state == "HALTED"
    assert len(run(*CASES["momentum stops, targeting"], frames, True).stops) > 0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_symbols=st.integers(1, 8), seed=st.integers(0, 10_000), holes=st.booleans(),
       case=st.sampled_from(sorted(CASES)))  # fmt: skip
def test_bulk_equals_event_path_on_random_markets(n_symbols: int, seed: int, holes: bool, case: str) -> None:
    strategy, overrides = CASES[case]
    frames = market(n_symbols, seed, holes)
    assert_same(run(strategy, overrides, frames, True), run(strategy, overrides, frames, False))


def test_carried_forward_keeps_the_last_price_over_nan() -> None:
    nan = np.nan
    block = np.array([[nan, 2.0, nan], [1.5, nan, nan], [nan, nan, 7.0]])
    expected = np.array([[1.0, 2.0, nan], [1.5, 2.0, nan], [1.5, 2.0, 7.0]])
    got = carried_forward(block, np.array([1.0, nan, nan]))
    assert np.array_equal(got, expected, equal_nan=True) and got.flags.c_contiguous


def test_many_symbols_held_at_once() -> None:
    """Dozens of positions valued per session: the row sums of the bulk path against valuation's own sums."""
    frames = market(40, 5, True)
    overrides = ("portfolio.account_type=margin", "portfolio.risk.max_positions=40",
                 "portfolio.risk.max_position_weight_pct=5", "portfolio.risk.max_gross_exposure_pct=200")  # fmt: skip
    bulk, stepwise = run("sma_crossover", overrides, frames, True), run("sma_crossover", overrides, frames, False)
    assert len(stepwise.fills) > 100
    assert_same(bulk, stepwise)
