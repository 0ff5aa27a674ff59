"""``RiskManager.absorb_quiet`` against ``update`` called session by session, on random runs and random states.

The backtester's quiet runs hand the drawdown rules a block of session equities at once; the rules must take as
many of them as ``update`` would take without a transition, and end with the same peak, high-water mark, both
drawdowns and flat-sessions count, bit for bit. The runs are drawn close to the thresholds (a drawdown a few ulps
either side of a limit), with flat and held sessions, unusable equities, and states that were re-based by a re-arm,
REDUCING or HALTED, so both the bound that clears a whole run at once and the element-wise path are exercised.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.config_models import RiskConfig
from portfolio.risk_manager import RiskManager

CFG = RiskConfig(drawdown_throttle_start_pct=2.0, reducing_drawdown_pct=5.0, halt_drawdown_pct=12.0,
                 rearm_after_flat_sessions=3)  # fmt: skip
NO_REARM = RiskConfig(drawdown_throttle_start_pct=2.0, reducing_drawdown_pct=5.0, halt_drawdown_pct=12.0)
ZERO_START = RiskConfig(drawdown_throttle_start_pct=0.0, reducing_drawdown_pct=5.0, halt_drawdown_pct=12.0,
                        rearm_after_flat_sessions=2)  # fmt: skip


def _state(manager: RiskManager) -> tuple[object, ...]:
    return (manager.peak_equity, manager.high_water_mark, manager.drawdown_pct, manager.hard_drawdown_pct,
            manager._flat_updates, manager.state)  # fmt: skip


THRESHOLDS = (0.0, 2.0, 5.0, 12.0)  # a new peak, the throttle start, REDUCING and HALT (0.0: ZERO_START's start)


@st.composite
def _equity(draw: st.DrawFn, peak: float, last: float) -> float:
    """A session equity against the running ``peak``: a drawdown of a threshold give or take a few ulps (the
    edges where ``>=`` and ``<`` decide), the ``last`` one again (a flat book's equity does not move), any value
    around the peak, or one the rules cannot use."""
    kind = draw(st.sampled_from(["edge"] * 6 + ["same"] * 3 + ["any"] * 3 + ["unusable"]))
    if kind == "same":
        return last
    if kind == "unusable":
        return draw(st.sampled_from([math.nan, math.inf, 0.0, -1.0]))
    if kind == "any":
        return draw(st.floats(peak * 0.85, peak * 1.05))
    value = peak * (1.0 - draw(st.sampled_from(THRESHOLDS)) / 100.0)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):  # half of them exactly at the threshold
        value = float(np.nextafter(value, math.inf if draw(st.booleans()) else -math.inf))
    return value


@st.composite
def runs(draw: st.DrawFn) -> tuple[RiskConfig, list[tuple[float, bool]], list[tuple[float, bool]]]:
    """A config, a history that brings the rules into some state, and the run to absorb after it."""
    peak = draw(st.integers(10, 100_000)) * 100.0
    sessions: list[tuple[float, bool]] = []
    if draw(st.booleans()):  # start in REDUCING, from where the recovery and the re-arm are reached
        sessions += [(peak, False), (peak * 0.94, draw(st.booleans()))]
    for _ in range(draw(st.integers(0, 12))):
        sessions.append((draw(_equity(peak, sessions[-1][0] if sessions else peak)), draw(st.booleans())))
        peak = max(peak, sessions[-1][0]) if math.isfinite(sessions[-1][0]) else peak
    flat, flips_at = draw(st.booleans()), draw(st.integers(0, 60))  # the book's flatness may change in the run
    run: list[tuple[float, bool]] = []
    for i in range(draw(st.integers(1, 40))):
        last = run[-1][0] if run else sessions[-1][0] if sessions else peak
        run.append((draw(_equity(peak, last)), flat != (i >= flips_at)))
        peak = max(peak, run[-1][0]) if math.isfinite(run[-1][0]) else peak
    return draw(st.sampled_from([CFG, NO_REARM, ZERO_START])), sessions, run


P = 100_000.0
RECOVERED_FLAT = [(P, False), (P * 0.94, True), (P, True)]  # ACTIVE again, with a flat session counted
REARMED = [(P, False), (P * 0.9, True), (P * 0.9, True), (P * 0.9, True), (P * 0.9, True)]  # peak re-based to 0.9 P


@settings(max_examples=400, deadline=None)
@given(case=runs())
@example(case=(CFG, [(P, False), (P * 0.94, True)], [(P * 0.94, True)] * 5))  # REDUCING, re-armed by its third flat
@example(case=(CFG, RECOVERED_FLAT, [(P, True)] * 5))
@example(case=(CFG, REARMED, [(P * 0.89, True), (P * 0.879, True)]))  # under REDUCING from the new peak, HALT from P
def test_absorb_quiet_takes_what_update_takes_and_ends_where_it_ends(
    case: tuple[RiskConfig, list[tuple[float, bool]], list[tuple[float, bool]]],
) -> None:
    cfg, history, run = case
    bulk, stepwise = RiskManager(cfg), RiskManager(cfg)
    for ts, (equity, flat) in enumerate(history):
        bulk.update(equity, ts, flat=flat)
        stepwise.update(equity, ts, flat=flat)
    equity = np.array([e for e, _ in run], dtype=np.float64)
    flat = np.array([f for _, f in run], dtype=bool)
    absorbed = bulk.absorb_quiet(equity, flat)
    taken = 0
    for i, (value, is_flat) in enumerate(run):
        if not (math.isfinite(value) and value > 0.0) or is_flat != run[0][1]:
            break
        snapshot, transitions = _state(stepwise), len(stepwise.transitions)
        stepwise.update(value, len(history) + i, flat=is_flat)
        if len(stepwise.transitions) != transitions:
            assert absorbed == taken, f"absorbed {absorbed}, but session {i} moves the state"
            assert _state(bulk) == snapshot
            return
        taken += 1
    assert absorbed == taken
    assert _state(bulk) == _state(stepwise)
