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
_PRICE_COLUMNS = ("open", "high", "low", "close")
_BAR_COLUMNS = (*_PRICE_COLUMNS, "volume")


# -- panel shocks ------------------------------------------------------------------------------------------------


def overnight_gap(panel: BarPanel, at: int, gap_pct: float = -10.0) -> BarPanel:
    """A permanent level shift that starts with a gap: every price from bar ``at`` on is scaled by
    ``f = 1 + gap_pct / 100``, and the gap bar opens at exactly ``f x`` the previous close.

    Per symbol the gap bar is its first bar at or after ``at`` (normally ``at`` itself); its open is set to
    ``f x`` the symbol's last close before ``at`` (so the original overnight move of that bar becomes part of its
    intraday move), and its high/low are widened to contain that open. Volume is unchanged. A symbol without
    any close before ``at`` only gets the level shift.
    """
    _check_window(panel, at, 1, "overnight_gap")
    if not gap_pct > -100.0:
        raise ValueError(f"overnight_gap: gap_pct must be above -100 so prices stay positive (got {gap_pct})")
    factor = 1.0 + gap_pct / 100.0
    arrays = _copies(panel)
    for name in _PRICE_COLUMNS:
        arrays[name][at:] *= factor
    previous_close = _last_valid_before(panel.close, at)
    gap_rows, has_bar = _first_valid_from(panel.close, at)
    columns = np.flatnonzero(has_bar & np.isfinite(previous_close))
    rows = gap_rows[columns]
    gap_open = factor * previous_close[columns]
    arrays["open"][rows, columns] = gap_open
    arrays["high"][rows, columns] = np.maximum(arrays["high"][rows, columns], gap_open)
    arrays["low"][rows, columns] = np.minimum(arrays["low"][rows, columns], gap_open)
    return _replace(panel, arrays)


def volatility_spike(panel: BarPanel, at: int, days: int = 20, factor: float = 3.0) -> BarPanel:
    """Rows ``[at, at + days)`` move ``factor`` times as much: each bar's close-to-close log return (from the
    symbol's last close) and the log distances of its open, high and low from its close are multiplied by
    ``factor``; closes are chained from the last unshocked close. Later bars are scaled by the ratio of shocked to
    original close at the window's end, so their returns are unchanged and the series stays continuous.
    """
    _check_window(panel, at, days, "volatility_spike")
    if not factor > 0.0:
        raise ValueError(f"volatility_spike: factor must be > 0 (got {factor})")
    returns, distances = _log_bars(panel, at, at + days)
    return _rechain(panel, at, at + days, factor * returns, {k: factor * v for k, v in distances.items()})


def correlation_to_one(panel: BarPanel, at: int, days: int = 20, vol_lookback_days: int = 60) -> BarPanel:
    """Rows ``[at, at + days)``: every symbol's close-to-close log return is replaced by the cross-sectional
    mean log return ``m_t`` times ``sigma_j / sigma_m``, so all pairwise correlations are 1 while each symbol
    keeps its own volatility level.

    ``sigma_j`` is the symbol's standard deviation of daily log returns over the ``vol_lookback_days`` bars
    before ``at``, ``sigma_m`` that of the cross-sectional mean over the same bars (a symbol without two trailing
    returns gets scale 1). Each bar keeps its shape: open, high and low keep their log distance from the close.
    Later bars are re-chained as in ``volatility_spike``.
    """
    _check_window(panel, at, days, "correlation_to_one")
    if vol_lookback_days < 2:
        raise ValueError(f"correlation_to_one: vol_lookback_days must be >= 2 (got {vol_lookback_days})")
    trailing, _ = _log_bars(panel, max(1, at - vol_lookback_days), at)
    common_vol = _nanstd(_nanmean_rows(trailing)[:, None])[0]
    if not (math.isfinite(common_vol) and common_vol > 0.0):
        raise ValueError(
            f"correlation_to_one: the market's trailing volatility before bar {at} is {common_vol} (need at least "
            "two bars of returns with some variation); choose a later `at` or a longer vol_lookback_days"
        )
    scale = _nanstd(trailing) / common_vol
    scale = np.where(np.isfinite(scale), scale, 1.0)
    returns, distances = _log_bars(panel, at, at + days)
    common = _nanmean_rows(returns)[:, None] * scale[None, :]
    return _rechain(panel, at, at + days, np.where(np.isnan(returns), np.nan, common), distances)


def liquidity_drought(panel: BarPanel, at: int, days: int = 20, volume_divisor: float = 5.0) -> BarPanel:
    """Volume of rows ``[at, at + days)`` divided by ``volume_divisor`` (not rounded); prices untouched.

    The venue's volume cap and the impact model react to it; the wider spread of a drought is a config change
    (``with_costs_scaled``), which ``run_scenarios`` applies for the ``liquidity_drought`` scenario.
    """
    _check_window(panel, at, days, "liquidity_drought")
    if not volume_divisor > 0.0:
        raise ValueError(f"liquidity_drought: volume_divisor must be > 0 (got {volume_divisor})")
    volume = np.array(panel.volume, dtype=np.float64, order="C")
    volume[at : at + days] /= volume_divisor
    return dataclasses.replace(panel, volume=volume)


def halt_symbol(panel: BarPanel, symbol: str, at: int, days: int = 5) -> BarPanel:
    """``symbol`` has no bar (all five columns NaN) in rows ``[at, at + days)``: nothing trades in it, working
    orders wait for the first bar after the halt, and it is valued at its last close meanwhile."""
    _check_window(panel, at, days, "halt_symbol")
    if symbol not in panel.symbols:
        raise ValueError(f"halt_symbol: unknown symbol {symbol!r}; the panel has {list(panel.symbols)[:10]}")
    j = panel.symbols.index(symbol)
    arrays = _copies(panel, _BAR_COLUMNS)
    for name in _BAR_COLUMNS:
        arrays[name][at : at + days, j] = np.nan
    return _replace(panel, arrays)


def with_costs_scaled(config: AppConfig, factor: float) -> AppConfig:
    """A copy of ``config`` whose slippage half-spread and impact coefficient are multiplied by ``factor``;
    validated like the file (raises ValueError). The costs apply to the whole run: the engine has no
    time-varying cost model."""
    if not factor >= 0.0:
        raise ValueError(f"cost factor must be >= 0 (got {factor})")
    slippage = config.costs.slippage
    raw = config.model_dump(mode="python")
    raw["costs"]["slippage"]["half_spread_bps"] = slippage.half_spread_bps * factor
    raw["costs"]["slippage"]["impact_coefficient_bps"] = slippage.impact_coefficient_bps * factor
    return AppConfig.model_validate(raw)


# -- historical windows --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StressWindow:
    """Bars ``[start_index, end_index]`` (inclusive); ``market_return`` is a fraction (-0.2 is -20 %)."""

    start_index: int
    end_index: int
    start_date: pd.Timestamp
    end_date: pd.Timestamp
    market_return: float


def equal_weight_market_returns(panel: BarPanel) -> np.ndarray:
    """Daily simple return of the equal-weight market: the mean of the symbols' close-to-close returns over the
    symbols with a close on both days (0.0 on the first bar and where no symbol has one)."""
    close = panel.close
    with np.errstate(invalid="ignore", divide="ignore"):
        returns = close[1:] / close[:-1] - 1.0
    market = np.zeros(len(close))
    market[1:] = np.nan_to_num(_nanmean_rows(returns), nan=0.0)
    return market


def historical_stress_windows(
    panel: BarPanel, window_days: int = 20, top_k: int = 3, min_separation_days: int = 60, *, from_index: int = 1
) -> list[StressWindow]:
    """The ``top_k`` worst windows of ``window_days`` bars by the equal-weight market's compounded return, worst
    first, picked greedily so that any two start at least ``max(window_days, min_separation_days)`` bars apart
    (never overlapping). Windows start at or after ``max(1, from_index)`` (pass the warm-up to keep them out of
    it). They are the worst windows whatever their sign: a calm history yields mild, even positive, ones.
    """
    if window_days < 1 or top_k < 1 or min_separation_days < 0:
        raise ValueError(
            f"need window_days >= 1, top_k >= 1, min_separation_days >= 0 (got {window_days}, {top_k}, "
            f"{min_separation_days})"
        )
    first = max(1, from_index)
    n_bars = len(panel.dates)
    if first + window_days > n_bars:
        log.info("event=no_stress_windows bars=%d window_days=%d from_index=%d", n_bars, window_days, first)
        return []
    growth = np.concatenate(([0.0], np.cumsum(np.log1p(equal_weight_market_returns(panel)))))
    starts = np.arange(first, n_bars - window_days + 1)
    window_log = growth[starts + window_days] - growth[starts]
    separation = max(window_days, min_separation_days)
    chosen: list[int] = []
    for k in np.argsort(window_log, kind="stable"):
        start = int(starts[k])
        if all(abs(start - other) >= separation for other in chosen):
            chosen.append(start)
            if len(chosen) == top_k:
                break
    return [
        StressWindow(
            start_index=s,
            end_index=s + window_days - 1,
            start_date=panel.dates[s],
            end_date=panel.dates[s + window_days - 1],
            market_return=float(np.expm1(growth[s + window_days] - growth[s])),
        )
        for s in chosen
    ]


# -- scenarios -----------------------------------------------------------------------------------------------------


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


def _check_window(panel: BarPanel, at: int, days: int, what: str) -> None:
    n_bars = len(panel.dates)
    if days < 1 or at < 1 or at + days > n_bars:
        raise ValueError(
            f"{what}: need at >= 1 (a previous close), days >= 1 and at + days <= {n_bars} bars (got at={at}, "
            f"days={days})"
        )


def _copies(panel: BarPanel, names: Sequence[str] = _PRICE_COLUMNS) -> dict[str, np.ndarray]:
    return {name: np.array(getattr(panel, name), dtype=np.float64, order="C") for name in names}


def _replace(panel: BarPanel, arrays: dict[str, np.ndarray]) -> BarPanel:
    return dataclasses.replace(panel, **arrays)


def _last_valid_before(values: np.ndarray, at: int) -> np.ndarray:
    """Per column, the last non-NaN value in rows ``< at`` (NaN if none)."""
    return _ffill(values[:at])[-1] if at > 0 else np.full(values.shape[1], np.nan)


def _first_valid_from(values: np.ndarray, at: int) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the first row ``>= at`` with a value, and whether there is one."""
    valid = ~np.isnan(values[at:])
    return at + np.argmax(valid, axis=0), valid.any(axis=0)


def _ffill(values: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(values)
    rows = np.where(valid, np.arange(len(values))[:, None], 0)
    np.maximum.accumulate(rows, axis=0, out=rows)
    filled = np.take_along_axis(values, rows, axis=0)
    return np.where(np.cumsum(valid, axis=0) > 0, filled, np.nan)


def _log_bars(panel: BarPanel, start: int, end: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rows ``[start, end)``: log return of each close from the symbol's previous close (NaN where no bar or no
    earlier close), and the log distance of open, high and low from the bar's own close."""
    log_close = np.log(panel.close[:end])
    previous = _ffill(log_close)[start - 1 : end - 1]
    window = log_close[start:end]
    distances = {name: np.log(getattr(panel, name)[start:end]) - window for name in ("open", "high", "low")}
    return window - previous, distances


def _rechain(panel: BarPanel, at: int, end: int, returns: np.ndarray, distances: dict[str, np.ndarray]) -> BarPanel:
    """Rebuild rows ``[at, end)`` from new log returns and bar shapes, chained from the last close before ``at``;
    scale rows ``>= end`` by the shocked/original close ratio at the window's end. Symbols without a close before
    ``at`` are left as they are."""
    log_close = np.log(panel.close)
    anchor = _last_valid_before(log_close, at)
    chained = anchor[None, :] + np.cumsum(np.nan_to_num(returns, nan=0.0), axis=0)  # carried across missing bars
    anchored = np.isfinite(anchor)
    no_bar = np.isnan(panel.close[at:end])
    arrays = _copies(panel)
    new_close = np.where(no_bar, np.nan, chained)
    for name, distance in distances.items():
        window = np.exp(new_close + distance)
        arrays[name][at:end] = np.where(anchored, window, arrays[name][at:end])
    arrays["close"][at:end] = np.where(anchored, np.exp(new_close), arrays["close"][at:end])
    block = {name: arrays[name][at:end] for name in _PRICE_COLUMNS}
    arrays["high"][at:end] = np.fmax.reduce([block["high"], block["open"], block["close"]])
    arrays["low"][at:end] = np.fmin.reduce([block["low"], block["open"], block["close"]])
    ratio = np.where(anchored, np.exp(chained[-1] - _ffill(log_close[:end])[-1]), 1.0)
    for name in _PRICE_COLUMNS:
        arrays[name][end:] *= ratio
    return _replace(panel, arrays)


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(values)
    counts = valid.sum(axis=1)
    sums = np.where(valid, values, 0.0).sum(axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _nanstd(values: np.ndarray) -> np.ndarray:
    """Per column sample standard deviation (ddof 1) over non-NaN rows; NaN with fewer than two values."""
    valid = ~np.isnan(values)
    counts = valid.sum(axis=0)
    means = np.where(valid, values, 0.0).sum(axis=0) / np.maximum(counts, 1)
    squares = np.where(valid, (values - means) ** 2, 0.0).sum(axis=0)
    return np.where(counts > 1, np.sqrt(squares / np.maximum(counts - 1, 1)), np.nan)
