"""Grid search: every combination of a strategy's research grid through the same engine, ranked by one metric.

The number of trials actually run is recorded with the results: the Deflated Sharpe Ratio and the Probability
of Backtest Overfitting are only honest when they know how many configurations were tried.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtester.distributed_runner import SweepRunner
from backtester.performance import METRIC_KEYS
from backtester.sweep import DataRef, TrialResult, TrialSpec, expand_grid, results_frame, valid_combinations
from core.config_models import AppConfig, GridValue
from core.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GridOutcome:
    strategy: str
    metric: str
    results: list[TrialResult]
    table: pd.DataFrame  # one row per trial, ranked best first by ``metric`` (failed trials last)
    refused: list[str]  # combinations the params rules refused (never run, not counted as trials)
    halted_eligible: bool = False  # backtest.halted_trials_eligible: a halted trial may be best

    @property
    def ok_results(self) -> list[TrialResult]:
        return [r for r in self.results if r.ok]

    @property
    def n_trials(self) -> int:
        """Trials that ran to completion: the N of the Deflated Sharpe Ratio."""
        return len(self.ok_results)

    @property
    def best(self) -> TrialResult:
        ranked = rank(self.ok_results, self.metric, halted_eligible=self.halted_eligible)
        if not ranked:
            raise RuntimeError(f"grid search of {self.strategy}: every trial failed; see the failures in grid.csv")
        return ranked[0]

    def returns_matrix(self) -> np.ndarray:
        """T x N daily returns of the successful trials (columns in trial order), for PBO."""
        ok = sorted(self.ok_results, key=lambda r: r.trial_id)
        return np.column_stack([r.returns for r in ok]) if ok else np.zeros((0, 0))


def parse_grid_overrides(items: Sequence[str]) -> dict[str, tuple[GridValue, ...]]:
    """``--grid name=v1,v2,...`` into a grid mapping; values parse as int, float, bool or text."""
    grid: dict[str, tuple[GridValue, ...]] = {}
    problems = []
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name.strip() or not values.strip():
            problems.append(f"--grid {item!r}: expected NAME=V1,V2,... (e.g. roc_period=20,60,120)")
            continue
        grid[name.strip()] = tuple(_parse_value(v.strip()) for v in values.split(",") if v.strip())
    if problems:
        raise ConfigError("--grid", problems)
    return grid


def _parse_value(text: str) -> GridValue:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def plan_grid(
    config: AppConfig, strategy: str, overrides: Mapping[str, Sequence[GridValue]] | None = None
) -> tuple[list[dict[str, GridValue]], list[str]]:
    """The combinations to run: config grid with ``--grid`` entries replacing whole dimensions."""
    strategy_cfg = getattr(config.strategies, strategy)
    grid = {**strategy_cfg.grid, **(overrides or {})}
    known = set(type(strategy_cfg.params).model_fields)
    unknown = sorted(set(grid) - known)
    if unknown:
        raise ConfigError("--grid", [f"{strategy} has no params {unknown}; its params are {sorted(known)}"])
    if not grid:
        raise ConfigError(
            "config.yaml",
            [f"strategies.{strategy}.grid: empty; give values to search in the config or with --grid NAME=V1,V2"],
        )
    base = strategy_cfg.params.model_dump()
    combos = [{**base, **combo} for combo in expand_grid(grid)]
    good, refused = valid_combinations(config, strategy, combos)
    searched = sorted(grid)
    return [{k: c[k] for k in searched} for c in good], refused


def trial_specs(strategy: str, combos: Sequence[Mapping[str, GridValue]], **window: int | None) -> list[TrialSpec]:
    return [
        TrialSpec(trial_id=i, strategy=strategy, params=tuple(sorted(c.items())), **window)  # type: ignore[arg-type]
        for i, c in enumerate(combos)
    ]


def run_grid(
    config: AppConfig,
    payload: str,
    data: DataRef,
    strategy: str,
    runner: SweepRunner,
    overrides: Mapping[str, Sequence[GridValue]] | None = None,
) -> GridOutcome:
    combos, refused = plan_grid(config, strategy, overrides)
    for line in refused:
        log.info("event=grid_combination_refused strategy=%s detail=%s", strategy, line)
    results = runner.run(payload, data, trial_specs(strategy, combos), description=f"grid {strategy}")
    metric, halted_ok = config.backtest.optimize_metric, config.backtest.halted_trials_eligible
    return GridOutcome(strategy, metric, results, ranked_table(results, metric, halted_eligible=halted_ok), refused,
                       halted_ok)  # fmt: skip


def rank(results: Sequence[TrialResult], metric: str, *, halted_eligible: bool = False) -> list[TrialResult]:
    """Best first; NaN metrics rank last; ties keep the lower trial id (deterministic).

    A trial that went HALTED ranks after every one that did not, unless ``halted_eligible``
    (``backtest.halted_trials_eligible``): its metric describes years spent in cash after the halt, not the
    strategy, and "best" must not be a strategy the kill switch stopped.
    """
    def key(r: TrialResult) -> tuple[bool, float, int]:
        return (not halted_eligible and r.halted_on is not None, -_score(r.metrics.get(metric, math.nan)), r.trial_id)

    return sorted(results, key=key)


def _score(value: float) -> float:
    return -math.inf if value is None or math.isnan(value) else value


def ranked_table(results: Sequence[TrialResult], metric: str, *, halted_eligible: bool = False) -> pd.DataFrame:
    table = results_frame(results, METRIC_KEYS)
    table["n_trades_run"] = [r.n_trades for r in sorted(results, key=lambda r: r.trial_id)]
    ranked = rank([r for r in results if r.ok], metric, halted_eligible=halted_eligible)
    order = {r.trial_id: i for i, r in enumerate(ranked)}
    table["rank"] = [order.get(t, np.nan) + 1 if t in order else np.nan for t in table["trial_id"]]
    return table.sort_values(["rank", "trial_id"], na_position="last").reset_index(drop=True)
