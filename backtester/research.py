"""The research modes behind ``run_backtest.py --mode ...``: grid search, walk-forward, Monte Carlo, scenarios.

Every mode runs the event-driven engine of the backtest mode (through ``backtester.sweep.run_trial``), so no
research number comes from a second, simplified engine. Each mode returns a ``ModeOutput`` (summary dict plus
tables); ``write_outputs`` puts them in the results folder with the report.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backtester.cli_common import jsonable
from backtester.distributed_runner import SweepRunner
from backtester.grid_search import GridOutcome, run_grid
from backtester.monte_carlo import MonteCarloResult, account_trade_returns, simulate
from backtester.performance import compute_metrics, round_trips_from_fills
from backtester.scenarios import default_scenarios, run_scenarios, worst_scenario_loss_pct
from backtester.sweep import DataRef, TrialResult, TrialSpec, config_payload, with_params
from backtester.validation import deflated_sharpe_ratio, probability_of_backtest_overfitting, sharpe_ratio
from backtester.walk_forward import (
    WalkForwardOutcome,
    efficiency,
    parameter_stability,
    run_walk_forward,
    windows_table,
)
from core.config_loader import config_id
from core.config_models import AppConfig, GridValue
from data.calendar import TradingCalendar

log = logging.getLogger(__name__)

PBO_PARTITIONS = 16


@dataclass(slots=True)
class ModeOutput:
    summary: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    series: dict[str, pd.Series] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ResearchContext:
    config: AppConfig
    strategy: str
    data: DataRef
    runner: SweepRunner
    grid_overrides: Mapping[str, Sequence[GridValue]]

    @property
    def payload(self) -> str:
        return config_payload(self.config)

    def base_summary(self, mode: str) -> dict[str, Any]:
        loaded = self.data.load()
        panel = loaded.panel
        return {
            "strategy": self.strategy,
            "mode": mode,
            "config_id": config_id(self.config),
            "data_fingerprint": panel.fingerprint(),
            "data_source": loaded.description,
            "start": str(panel.dates[0].date()),
            "end": str(panel.dates[-1].date()),
            "symbols": list(panel.symbols),
            "seed": self.data.seed,
            "metric": self.config.backtest.optimize_metric,
        }


def overfitting_stats(returns_matrix: np.ndarray, chosen_returns: np.ndarray, n_trials: int) -> dict[str, Any]:
    """PBO (CSCV over the trials' daily returns) and DSR of the chosen returns given every trial's Sharpe."""
    stats: dict[str, Any] = {"n_trials": n_trials}
    if returns_matrix.ndim != 2 or returns_matrix.shape[1] < 2:
        stats["pbo"] = None
        stats["pbo_note"] = "PBO needs at least 2 trials"
    else:
        try:
            pbo = probability_of_backtest_overfitting(returns_matrix, n_partitions=PBO_PARTITIONS)
            stats["pbo"] = float(pbo.pbo)
            stats["pbo_probability_of_loss"] = float(pbo.probability_of_loss)
            stats["pbo_logits"] = [float(x) for x in pbo.logits]
        except ValueError as exc:
            stats["pbo"] = None
            stats["pbo_note"] = str(exc)
    trial_sharpes = np.array([sharpe_ratio(returns_matrix[:, j]) for j in range(returns_matrix.shape[1])])
    if len(chosen_returns) > 2 and len(trial_sharpes) >= 1:
        dsr = deflated_sharpe_ratio(chosen_returns, max(n_trials, 1), trial_sharpes)
        stats.update(
            dsr=float(dsr.dsr),
            psr=float(dsr.psr_vs_zero),
            sharpe_per_period=float(dsr.sharpe),
            dsr_benchmark_sharpe=float(dsr.sr0),
            trial_sharpe_variance=float(dsr.sr_variance),
        )
    return stats


def grid_search(ctx: ResearchContext) -> ModeOutput:
    outcome = run_grid(ctx.config, ctx.payload, ctx.data, ctx.strategy, ctx.runner, ctx.grid_overrides)
    best = outcome.best
    summary = ctx.base_summary("grid_search")
    summary.update(
        grid={k: list(v) for k, v in _grid_of(ctx).items()},
        n_trials=outcome.n_trials,
        n_failed=sum(1 for r in outcome.results if not r.ok),
        n_refused=len(outcome.refused),
        refused=outcome.refused,
        best_params=best.params,
        best_metrics=jsonable(best.metrics),
        best_trades=best.n_trades,
        best_halted_on=best.halted_on,
        n_halted=sum(1 for r in outcome.results if r.ok and r.halted_on is not None),
        halted_trials_eligible=outcome.halted_eligible,
        runner=dict(getattr(ctx.runner, "last_run_info", {})),
        failures=[{"trial_id": r.trial_id, "params": r.params, "error": r.error} for r in outcome.results if not r.ok],
    )
    summary["overfitting"] = overfitting_stats(outcome.returns_matrix(), best.returns, outcome.n_trials)
    summary["metric_table"] = _metric_table(outcome)
    return ModeOutput(
        summary,
        tables={"grid": outcome.table},
        series={"best_equity": _equity_series(best)},
        extras={"grid_outcome": outcome},
    )


def walk_forward(ctx: ResearchContext) -> ModeOutput:
    panel = ctx.data.load().panel
    outcome = run_walk_forward(
        ctx.config, ctx.payload, ctx.data, ctx.strategy, ctx.runner, len(panel.dates), ctx.grid_overrides
    )
    full_grid = run_grid(ctx.config, ctx.payload, ctx.data, ctx.strategy, ctx.runner, ctx.grid_overrides)
    oos_equity = outcome.oos_equity
    oos_metrics = _oos_metrics(ctx.config, outcome)
    summary = ctx.base_summary("walk_forward")
    wf_cfg = ctx.config.backtest.walk_forward
    summary.update(
        walk_forward=wf_cfg.model_dump(),
        n_windows=len(outcome.windows),
        n_trials=outcome.n_trials + full_grid.n_trials,
        n_trials_walk_forward=outcome.n_trials,
        n_trials_full_grid=full_grid.n_trials,
        oos_metrics=jsonable(oos_metrics),
        **efficiency(outcome.windows),
        parameter_stability=parameter_stability(outcome.windows),
        latest_params=outcome.windows[-1].chosen.params,
        oos_trades=sum(o.test.n_trades for o in outcome.windows),
        runner=dict(getattr(ctx.runner, "last_run_info", {})),
    )
    summary["overfitting"] = overfitting_stats(
        full_grid.returns_matrix(), outcome.oos_returns(), outcome.n_trials + full_grid.n_trials
    )
    summary["overfitting"]["pbo_basis"] = "CSCV over the full-period grid's daily returns"
    summary["overfitting"]["dsr_basis"] = "stitched out-of-sample returns vs every configuration tried"
    return ModeOutput(
        summary,
        tables={"windows": windows_table(outcome.windows, panel.dates), "grid": full_grid.table},
        series={"oos_equity": oos_equity},
        extras={"walk_forward": outcome, "grid_outcome": full_grid},
    )


def single_run(ctx: ResearchContext, params: Mapping[str, GridValue] | None = None) -> TrialResult:
    """The strategy with its configured (or given) params over the whole data, through the sweep task."""
    cfg_params = getattr(ctx.config.strategies, ctx.strategy).params.model_dump()
    chosen = {**cfg_params, **(params or {})}
    spec = TrialSpec(0, ctx.strategy, tuple(sorted(chosen.items())))
    [result] = ctx.runner.run(ctx.payload, ctx.data, [spec], description=f"{ctx.strategy} full run")
    if not result.ok:
        raise RuntimeError(f"{ctx.strategy} run failed: {result.error}")
    return result


def monte_carlo(ctx: ResearchContext, params: Mapping[str, GridValue] | None = None) -> ModeOutput:
    result = single_run(ctx, params)
    trade_returns, trade_dates = _trade_returns(ctx, result.params)
    mc_cfg = ctx.config.backtest.monte_carlo
    mc: MonteCarloResult = simulate(
        result.returns,
        trade_returns,
        initial_equity=float(result.equity[0]),
        n_paths=mc_cfg.n_paths,
        mean_block=mc_cfg.block_length_days,
        seed=mc_cfg.seed,
        kill_drawdown_pct=ctx.config.risk_monitor.kill_drawdown_pct,
    )
    summary = ctx.base_summary("monte_carlo")
    summary.update(
        params=result.params,
        backtest_metrics=jsonable(result.metrics),
        n_paths=mc_cfg.n_paths,
        block_length_days=mc_cfg.block_length_days,
        mc_seed=mc_cfg.seed,
        kill_drawdown_pct=ctx.config.risk_monitor.kill_drawdown_pct,
        n_trade_returns=len(trade_returns),
        monte_carlo={k: v for k, v in mc.to_dict().items() if k not in ("fan_chart", "trade_fan_chart")},
    )
    return ModeOutput(summary, series={"equity": _equity_series(result)},
                      extras={"monte_carlo": mc, "trade_exit_dates": trade_dates})


def scenario_analysis(ctx: ResearchContext, params: Mapping[str, GridValue] | None = None) -> ModeOutput:
    cfg_params = getattr(ctx.config.strategies, ctx.strategy).params.model_dump()
    chosen = {**cfg_params, **(params or {})}
    panel = ctx.data.load().panel
    warmup = ctx.config.backtest.walk_forward.warmup_bars
    at, symbol = _shock_point(ctx, chosen, warmup)
    scenarios = default_scenarios(panel, at, warmup_bars=warmup, halted_symbol=symbol)
    results = run_scenarios(ctx.config, panel, ctx.strategy, chosen, TradingCalendar(), scenarios, warmup_bars=warmup)
    summary = ctx.base_summary("scenario_analysis")
    rows = [r.to_dict() for r in results]
    summary.update(
        params=chosen,
        shock_bar=at,
        shock_date=str(panel.dates[at].date()) if at is not None else None,
        shock_point_rule="the session of the baseline's largest gross exposure (shocks hit real positions)",
        halted_symbol=symbol,
        scenarios=rows,
        worst_scenario_loss_pct=worst_scenario_loss_pct(results),
    )
    return ModeOutput(summary, tables={"scenarios": pd.DataFrame(rows)}, extras={"scenarios": results})


def _shock_point(
    ctx: ResearchContext, params: Mapping[str, GridValue], warmup: int, days: int = 20
) -> tuple[int | None, str | None]:
    """Where synthetic shocks land: the session (after warm-up, with room for the window) of the baseline run's
    largest gross exposure, and its largest holding as the symbol to halt. A shock that lands on a flat book
    tests nothing; with no position ever held, the scenario module's default point is used."""
    from backtester.engine import build_backtest
    from strategy.registry import build_strategy

    config = with_params(ctx.config, ctx.strategy, params)
    panel = ctx.data.load().panel
    base = build_backtest(
        config, panel, [build_strategy(ctx.strategy, config.strategies)], TradingCalendar(), trade_from_index=warmup
    ).run()
    exposure = base.gross_exposure.to_numpy()
    lo, hi = warmup + 1, len(exposure) - days - 1
    if hi <= lo or not np.any(exposure[lo:hi] > 0):
        return None, None
    at = lo + int(np.argmax(exposure[lo:hi]))
    fills = base.fills[base.fills["date"] < panel.dates[at]]
    signed = np.where(fills["side"] == "BUY", 1, -1) * fills["quantity"]
    held = signed.groupby(fills["symbol"]).sum()
    held = held[held != 0]
    if not len(held):
        return at, None
    prices = {s: panel.close[at - 1, panel.symbols.index(s)] for s in held.index}
    value = {s: abs(q) * prices[s] for s, q in held.items() if np.isfinite(prices[s])}
    return at, (max(value, key=value.__getitem__) if value else None)


def _trade_returns(ctx: ResearchContext, params: Mapping[str, GridValue]) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Each round trip's P&L as a fraction of account equity at its entry, for the trade bootstrap
    (``monte_carlo.account_trade_returns``: the bootstrap compounds them into account equity), and the exit dates
    of those round trips (the report dates the trade bootstrap's fan by them)."""
    from backtester.engine import build_backtest
    from strategy.registry import build_strategy

    config = with_params(ctx.config, ctx.strategy, params)
    panel = ctx.data.load().panel
    result = build_backtest(config, panel, [build_strategy(ctx.strategy, config.strategies)], TradingCalendar()).run()
    trades = round_trips_from_fills(result.fills, sessions=result.equity.index)
    returns = account_trade_returns(trades, result.equity, config.portfolio.initial_capital)
    return returns, pd.DatetimeIndex(trades["exit_date"]) if len(trades) else pd.DatetimeIndex([])


def _oos_metrics(config: AppConfig, outcome: WalkForwardOutcome) -> dict[str, float]:
    empty = pd.DataFrame(columns=["date", "symbol", "side", "quantity", "price", "commission", "slippage_cost"])
    metrics = compute_metrics(
        outcome.oos_equity,
        pd.DataFrame(),
        empty,
        config.portfolio.initial_capital,
        risk_free_rate_pct=config.backtest.risk_free_rate_pct,
    )
    metrics["n_trades"] = sum(o.test.n_trades for o in outcome.windows)
    return metrics


def _metric_table(outcome: GridOutcome) -> list[dict[str, Any]]:
    keep = [c for c in outcome.table.columns if c.startswith("param_")] + [
        "rank",
        "status",
        "halted_on",
        "sharpe",
        "cagr",
        "max_drawdown",
        "n_trades_run",
    ]
    return [jsonable(row) for row in outcome.table[keep].to_dict(orient="records")]


def _grid_of(ctx: ResearchContext) -> dict[str, Sequence[GridValue]]:
    return {**getattr(ctx.config.strategies, ctx.strategy).grid, **ctx.grid_overrides}


def _equity_series(result: TrialResult) -> pd.Series:
    return pd.Series(result.equity, index=pd.DatetimeIndex(result.dates, name="date"), name="equity")
