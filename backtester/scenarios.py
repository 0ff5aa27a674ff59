"""Stress scenarios: shocked copies of the bars (and config) run through the full backtest, next to the baseline.

A scenario is either *historical* (a window of real stress found in the data, replayed on the unmodified panel)
or *synthetic* (one of the panel shocks below applied from a chosen bar). Each run covers the whole panel, so the
strategy's positions are in place when the shock hits; the report compares the scenario window's P&L with the
same window of the unshocked baseline run, so the shock's own effect is visible, and says when the risk rules
(drawdown throttle, REDUCING, HALTED) reacted.

Index conventions every caller must know: a shock "at bar ``at``" leaves rows ``< at`` bit-identical; a window
``[start_index, end_index]`` is inclusive, and its P&L runs from the close of ``start_index - 1`` to the close of
``end_index``. Prices are never rounded to the cent grid (a shock is exact, not quantised).

The shocks are pure functions ``BarPanel -> BarPanel`` that build new arrays; OHLC relations (low <= open,
close <= high) and positivity hold wherever the input held them.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from backtester.engine import BacktestResult, build_backtest
from backtester.performance import drawdown_series
from backtester.shocks import (
    correlation_to_one,
    halt_symbol,
    historical_stress_windows,
    liquidity_drought,
    overnight_gap,
    volatility_spike,
    with_costs_scaled,
)
from backtester.sweep import with_params
from core.config_models import AppConfig, GridValue, RiskConfig
from core.errors import InvariantViolation
from data.calendar import TradingCalendar
from data.panel import BarPanel
from strategy.base import Strategy
from strategy.registry import build_strategy

log = logging.getLogger(__name__)

ScenarioKind = Literal["historical", "synthetic"]
ShockName = Literal[
    "overnight_gap", "volatility_spike", "correlation_to_one", "liquidity_drought", "halt_symbol", "broker_outage"
]
ParamValue = int | float | str




@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """One stress case. The window ``[start_index, end_index]`` is inclusive. A synthetic scenario names its
    ``shock`` and the shock's arguments in ``params`` (build it with ``synthetic_scenario``); a historical one
    has neither and runs on the unmodified panel."""

    name: str
    kind: ScenarioKind
    description: str
    start_index: int
    end_index: int
    shock: ShockName | None = None
    params: tuple[tuple[str, ParamValue], ...] = ()

    @property
    def params_dict(self) -> dict[str, ParamValue]:
        return dict(self.params)


# shock -> (default days or None when the shock has no duration, description template)
_SYNTHETIC: dict[str, tuple[int | None, str]] = {
    "overnight_gap": (None, "every symbol gaps {gap_pct:+g}% at the open of bar {at}, a permanent level shift"),
    "volatility_spike": (20, "close-to-close returns and bar ranges x{factor:g} for {days} bars from bar {at}"),
    "correlation_to_one": (20, "every symbol follows the market (correlation 1) for {days} bars from bar {at}"),
    "liquidity_drought": (
        20,
        "volume / {volume_divisor:g} for {days} bars from bar {at}; "
        "spread and impact x{cost_factor:g} for the whole run",
    ),
    "halt_symbol": (5, "{symbol} halted (no bars) for {days} bars from bar {at}"),
    "broker_outage": (1, "the broker fills nothing for {days} bar(s) from bar {at}; window adds the bar after"),
}
_SHOCK_DEFAULTS: dict[str, dict[str, ParamValue]] = {
    "overnight_gap": {"gap_pct": -10.0},
    "volatility_spike": {"factor": 3.0},
    "correlation_to_one": {"vol_lookback_days": 60},
    "liquidity_drought": {"volume_divisor": 5.0},
}


def synthetic_scenario(shock: ShockName, at: int, *, days: int | None = None, **params: ParamValue) -> Scenario:
    """A synthetic scenario for ``shock`` starting at bar ``at``; ``params`` are the shock's own arguments.

    Windows: the gap bar alone for ``overnight_gap``; ``[at, at + days)`` for the others, plus the first bar after
    the outage for ``broker_outage`` (where the orders that waited fill). ``liquidity_drought`` also takes
    ``cost_factor`` (default: ``volume_divisor``) for the slippage config; ``halt_symbol`` needs ``symbol``.
    """
    if shock not in _SYNTHETIC:
        raise ValueError(f"unknown shock {shock!r}; choose one of {', '.join(_SYNTHETIC)}")
    default_days, template = _SYNTHETIC[shock]
    args: dict[str, ParamValue] = {"at": at, **_SHOCK_DEFAULTS.get(shock, {}), **params}
    if default_days is not None:
        args["days"] = default_days if days is None else days
    elif days is not None:
        raise ValueError(f"{shock} has no duration (got days={days})")
    if shock == "liquidity_drought":
        args.setdefault("cost_factor", args["volume_divisor"])
    if shock == "halt_symbol" and "symbol" not in args:
        raise ValueError("halt_symbol needs symbol=<ticker>")
    span = int(args.get("days", 1))
    end = at + span if shock == "broker_outage" else at + span - 1
    return Scenario(
        name=shock if shock != "halt_symbol" else f"halt_symbol_{args['symbol']}",
        kind="synthetic",
        description=template.format(**args),
        start_index=at,
        end_index=end,
        shock=shock,
        params=tuple(sorted(args.items())),
    )


def default_scenarios(
    panel: BarPanel,
    at: int | None = None,
    *,
    warmup_bars: int = 250,
    days: int = 20,
    halted_symbol: str | None = None,
    top_k_historical: int = 3,
) -> list[Scenario]:
    """The six synthetic shocks at bar ``at`` plus the ``top_k_historical`` worst historical windows.

    ``at`` defaults to 60 % into the data but never inside the warm-up (at least ``warmup_bars + 1``). The halted
    symbol defaults to the first symbol with a bar at ``at``. Historical windows are searched after the warm-up.
    """
    n_bars = len(panel.dates)
    if at is None:
        at = max(round(0.6 * n_bars), warmup_bars + 1)
    if at <= warmup_bars or at + days >= n_bars:
        raise ValueError(
            f"shock bar at={at} with days={days} must lie after the warm-up ({warmup_bars} bars) and end before the "
            f"last of the {n_bars} bars; use a longer history or a shorter warm-up"
        )
    if halted_symbol is None:
        trading = np.flatnonzero(~np.isnan(panel.close[at]))
        if not len(trading):
            raise ValueError(f"no symbol has a bar at bar {at}; choose another `at`")
        halted_symbol = panel.symbols[int(trading[0])]
    scenarios = [
        synthetic_scenario("overnight_gap", at),
        synthetic_scenario("volatility_spike", at, days=days),
        synthetic_scenario("correlation_to_one", at, days=days),
        synthetic_scenario("liquidity_drought", at, days=days),
        synthetic_scenario("halt_symbol", at, symbol=halted_symbol),
        synthetic_scenario("broker_outage", at),
    ]
    for window in historical_stress_windows(panel, days, top_k_historical, from_index=warmup_bars + 1):
        scenarios.append(
            Scenario(
                name=f"historical_{window.start_date:%Y-%m-%d}",
                kind="historical",
                description=(
                    f"equal-weight market {window.market_return:+.1%} from {window.start_date:%Y-%m-%d} to "
                    f"{window.end_date:%Y-%m-%d} ({days} bars), replayed as it happened"
                ),
                start_index=window.start_index,
                end_index=window.end_index,
            )
        )
    return scenarios


_PANEL_SHOCKS: dict[str, Callable[..., BarPanel]] = {
    "overnight_gap": overnight_gap,
    "volatility_spike": volatility_spike,
    "correlation_to_one": correlation_to_one,
    "liquidity_drought": liquidity_drought,
    "halt_symbol": halt_symbol,
}


def apply_scenario(
    config: AppConfig, panel: BarPanel, scenario: Scenario
) -> tuple[AppConfig, BarPanel, frozenset[int]]:
    """The (config, panel, outage bars) one scenario runs with; the inputs are returned as they are for a
    historical scenario."""
    if scenario.shock is None:
        return config, panel, frozenset()
    args = scenario.params_dict
    if scenario.shock == "broker_outage":
        at, days = int(args["at"]), int(args["days"])
        if days < 1 or at < 1 or at + days >= len(panel.dates):
            raise ValueError(f"broker_outage: need 1 <= at, days >= 1, at + days < {len(panel.dates)} bars")
        return config, panel, frozenset(range(at, at + days))
    cost_factor = args.pop("cost_factor", None)
    shocked = _PANEL_SHOCKS[scenario.shock](panel, **args)
    if cost_factor is not None:
        config = with_costs_scaled(config, float(cost_factor))
    return config, shocked, frozenset()


# -- running and reporting -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ScenarioResult:
    """What one scenario did. ``_pct`` values are percent; P&L is measured from the close before the window
    (``equity_before_usd``) to the window's last close. Drawdowns are positive numbers. Risk-rule dates are the
    first onset from the window's first bar to ``reaction_end_date`` (``reaction_bars`` after the window; None:
    none): the drawdown throttle switching on (size scale below 1), the first transition to REDUCING, to HALTED.
    ``throttle_active_before_window`` and
    ``state_before_window`` say what was already in force at the close before the window. Rejection counts are
    whole-run totals (the engine does not time-stamp them); compare them with the baseline's."""

    name: str
    kind: ScenarioKind
    description: str
    start_index: int
    end_index: int
    start_date: str
    end_date: str
    equity_before_usd: float
    gross_exposure_before_pct: float
    window_pnl_usd: float
    window_pnl_pct: float
    baseline_window_pnl_usd: float
    baseline_window_pnl_pct: float
    window_max_drawdown_pct: float
    run_max_drawdown_pct: float
    baseline_run_max_drawdown_pct: float
    fills_in_window: int
    state_before_window: str
    throttle_active_before_window: bool
    throttle_first_date: str | None
    reducing_first_date: str | None
    halted_date: str | None
    reaction_end_date: str
    final_state: str
    rejections: dict[str, int]
    baseline_rejections: dict[str, int]

    @property
    def shock_effect_pct(self) -> float:
        """Window P&L minus the baseline's, in percentage points: what the shock itself did."""
        return self.window_pnl_pct - self.baseline_window_pnl_pct

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable values (NaN becomes None)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["shock_effect_pct"] = self.shock_effect_pct
        return {k: _plain(v) for k, v in out.items()}


def run_scenarios(
    config: AppConfig,
    panel: BarPanel,
    strategy_name: str,
    params: Mapping[str, GridValue],
    calendar: TradingCalendar,
    scenarios: Sequence[Scenario],
    warmup_bars: int = 250,
    *,
    make_strategy: Callable[[AppConfig], Strategy] | None = None,
    reaction_bars: int = 20,
) -> list[ScenarioResult]:
    """Run the baseline and every scenario over the whole panel, trading from ``warmup_bars`` on.

    The strategy is built fresh for each run from the registry (``strategy_name`` with ``params`` applied to the
    config), or by ``make_strategy(config)`` when given (e.g. a scripted strategy in tests). The risk rules'
    reaction is looked for from the window's first bar to ``reaction_bars`` after its last. Historical scenarios
    reuse the baseline run (same data). Raises ValueError, listing every problem, if a scenario window is not
    inside the traded part of the panel or names repeat.
    """
    _check_scenarios(panel, scenarios, warmup_bars)
    if reaction_bars < 0:
        raise ValueError(f"reaction_bars must be >= 0 (got {reaction_bars})")
    if not scenarios:
        return []
    base_config = with_params(config, strategy_name, params) if params else config
    make = make_strategy or functools.partial(_registry_strategy, strategy_name)
    needed = make(base_config).warmup_bars
    if needed > warmup_bars:
        log.warning("event=short_warmup strategy=%s warmup_bars=%d needed=%d", strategy_name, warmup_bars, needed)
    baseline = _run(base_config, panel, make, calendar, warmup_bars, frozenset())
    results = []
    for scenario in scenarios:
        if scenario.shock is None:
            run = baseline
        else:
            run_config, shocked, outage = apply_scenario(base_config, panel, scenario)
            run = _run(run_config, shocked, make, calendar, warmup_bars, outage)
        result = _summarise(scenario, run, baseline, panel, base_config.portfolio.risk, reaction_bars)
        log.info(
            "event=scenario_done name=%s window_pnl_pct=%.3f baseline_window_pnl_pct=%.3f run_max_drawdown_pct=%.3f "
            "halted_date=%s",
            result.name,
            result.window_pnl_pct,
            result.baseline_window_pnl_pct,
            result.run_max_drawdown_pct,
            result.halted_date,
        )
        results.append(result)
    return results


def worst_scenario_loss_pct(results: Sequence[ScenarioResult]) -> float:
    """The most negative window P&L in percent, as a positive loss (0.0 when no window lost money)."""
    values = [r.window_pnl_pct for r in results if math.isfinite(r.window_pnl_pct)]
    if not values:
        raise ValueError("no scenario result with a finite window P&L; run at least one scenario")
    return max(0.0, -min(values))


def risk_drawdown_pct(
    equity: np.ndarray,
    gross_exposure: np.ndarray,
    state_history: Sequence[str],
    ts_event_ns: np.ndarray,
    risk: RiskConfig,
) -> np.ndarray:
    """The risk manager's throttle drawdown (percent) after each bar, rebuilt from a run's records.

    It is the drawdown from the running peak of equity, except that when the manager re-armed (REDUCING ->
    ACTIVE after ``rearm_after_flat_sessions`` flat bars, which it checks before recovery) the peak is re-based to
    that bar's equity, as ``RiskManager.update`` does. A re-arm is recognised from the state history and the
    flat book (gross exposure 0) over the bars since REDUCING was entered.
    """
    rearm_bars = _rearm_bars(gross_exposure, _transitions(state_history, ts_event_ns), risk)
    out = np.empty(len(equity))
    peak = math.nan
    for t, value in enumerate(equity):
        if math.isfinite(value) and value > 0.0 and not value <= peak:
            peak = value
        if t in rearm_bars:
            peak = value
        out[t] = (peak - value) / peak * 100.0
    return out


def throttle_active(drawdown_pct: np.ndarray, risk: RiskConfig) -> np.ndarray:
    """True where ``RiskManager.size_scale`` (outside HALTED) would be below 1 at that drawdown: the scale is 1.0
    up to ``drawdown_throttle_start_pct``, linear down to ``min_size_scale`` at ``reducing_drawdown_pct``."""
    start, end = risk.drawdown_throttle_start_pct, risk.reducing_drawdown_pct
    drawdown = np.asarray(drawdown_pct, dtype=np.float64)
    scale = np.ones_like(drawdown)
    at_min = drawdown >= end
    middle = (drawdown > start) & ~at_min  # only possible when start < end
    scale[at_min] = risk.min_size_scale
    scale[middle] = 1.0 - (1.0 - risk.min_size_scale) * (drawdown[middle] - start) / (end - start)
    return scale < 1.0


def _run(
    config: AppConfig,
    panel: BarPanel,
    make_strategy: Callable[[AppConfig], Strategy],
    calendar: TradingCalendar,
    warmup_bars: int,
    outage_bars: frozenset[int],
) -> BacktestResult:
    strategy = make_strategy(config)
    backtest = build_backtest(
        config, panel, [strategy], calendar, trade_from_index=warmup_bars, outage_bars=outage_bars
    )
    result = backtest.run()
    if len(result.equity) != len(panel.dates):
        raise InvariantViolation(f"backtest recorded {len(result.equity)} equity points for {len(panel.dates)} bars")
    return result


def _registry_strategy(name: str, config: AppConfig) -> Strategy:
    return build_strategy(name, config.strategies)


def _summarise(
    scenario: Scenario,
    run: BacktestResult,
    baseline: BacktestResult,
    panel: BarPanel,
    risk: RiskConfig,
    reaction_bars: int,
) -> ScenarioResult:
    start, end = scenario.start_index, scenario.end_index
    equity = run.equity.to_numpy(dtype=np.float64)
    gross = run.gross_exposure.to_numpy(dtype=np.float64)
    before = float(equity[start - 1])
    pnl, pnl_pct = _window_pnl(equity, start, end)
    base_pnl, base_pnl_pct = _window_pnl(baseline.equity.to_numpy(dtype=np.float64), start, end)
    window_dd = -float(drawdown_series(run.equity.iloc[start - 1 : end + 1]).min()) * 100.0
    transitions = _transitions(run.state_history, panel.ts_event_ns)
    throttle = throttle_active(risk_drawdown_pct(equity, gross, run.state_history, panel.ts_event_ns, risk), risk)
    horizon = min(end + reaction_bars, len(panel.dates) - 1)
    onsets = np.flatnonzero(throttle[start : horizon + 1] & ~throttle[start - 1 : horizon]) + start
    fill_dates = pd.DatetimeIndex(run.fills["date"]) if len(run.fills) else pd.DatetimeIndex([])
    in_window = (fill_dates >= panel.dates[start]) & (fill_dates <= panel.dates[end])
    return ScenarioResult(
        name=scenario.name,
        kind=scenario.kind,
        description=scenario.description,
        start_index=start,
        end_index=end,
        start_date=_iso(panel, start),
        end_date=_iso(panel, end),
        equity_before_usd=before,
        gross_exposure_before_pct=float(gross[start - 1]) / before * 100.0,
        window_pnl_usd=pnl,
        window_pnl_pct=pnl_pct,
        baseline_window_pnl_usd=base_pnl,
        baseline_window_pnl_pct=base_pnl_pct,
        window_max_drawdown_pct=window_dd,
        run_max_drawdown_pct=-float(drawdown_series(run.equity).min()) * 100.0,
        baseline_run_max_drawdown_pct=-float(drawdown_series(baseline.equity).min()) * 100.0,
        fills_in_window=int(np.count_nonzero(in_window)),
        state_before_window=_state_before(transitions, start),
        throttle_active_before_window=bool(throttle[start - 1]),
        throttle_first_date=_iso(panel, int(onsets[0])) if len(onsets) else None,
        reducing_first_date=_first_transition(panel, transitions, "REDUCING", start, horizon),
        halted_date=_first_transition(panel, transitions, "HALTED", start, horizon),
        reaction_end_date=_iso(panel, horizon),
        final_state=run.final_state,
        rejections=dict(run.rejections),
        baseline_rejections=dict(baseline.rejections),
    )


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _window_pnl(equity: np.ndarray, start: int, end: int) -> tuple[float, float]:
    before = float(equity[start - 1])
    pnl = float(equity[end]) - before
    return pnl, pnl / before * 100.0


def _transitions(state_history: Sequence[str], ts_event_ns: np.ndarray) -> list[tuple[int, str, str]]:
    """``"ts_ns:FROM->TO"`` records as (bar index, from, to); the ts is the close of the bar that moved."""
    out = []
    for record in state_history:
        ts, _, move = record.partition(":")
        previous, _, state = move.partition("->")
        out.append((int(np.searchsorted(ts_event_ns, int(ts), side="left")), previous, state))
    return out


def _rearm_bars(gross: np.ndarray, transitions: list[tuple[int, str, str]], risk: RiskConfig) -> set[int]:
    if risk.rearm_after_flat_sessions is None:
        return set()
    need = risk.rearm_after_flat_sessions
    bars, entered = set(), None
    for t, previous, state in transitions:
        if state == "REDUCING":
            entered = t
        elif previous == "REDUCING" and state == "ACTIVE" and entered is not None:
            if t - need >= entered and not np.any(gross[t - need + 1 : t + 1]):
                bars.add(t)
            entered = None
    return bars


def _state_before(transitions: list[tuple[int, str, str]], start: int) -> str:
    state = "ACTIVE"
    for t, _, to in transitions:
        if t < start:
            state = to
    return state


def _first_transition(
    panel: BarPanel, transitions: list[tuple[int, str, str]], to: str, start: int, horizon: int
) -> str | None:
    return next((_iso(panel, t) for t, _, state in transitions if state == to and start <= t <= horizon), None)


def _iso(panel: BarPanel, t: int) -> str:
    return f"{panel.dates[t]:%Y-%m-%d}"


def _check_scenarios(panel: BarPanel, scenarios: Sequence[Scenario], warmup_bars: int) -> None:
    n_bars = len(panel.dates)
    problems = []
    if not 0 <= warmup_bars < n_bars - 1:
        problems.append(f"warmup_bars must be in [0, {n_bars - 1}) for a panel of {n_bars} bars (got {warmup_bars})")
    names = [s.name for s in scenarios]
    problems += [
        f"scenario name {n!r} is used more than once" for n in sorted({n for n in names if names.count(n) > 1})
    ]
    for s in scenarios:
        if not warmup_bars < s.start_index <= s.end_index < n_bars:
            problems.append(
                f"scenario {s.name}: window [{s.start_index}, {s.end_index}] must satisfy warmup_bars ({warmup_bars}) "
                f"< start <= end < {n_bars} bars"
            )
    if problems:
        raise ValueError("invalid scenarios:\n" + "\n".join(f"  - {p}" for p in problems))


# -- array helpers -------------------------------------------------------------------------------------------------
