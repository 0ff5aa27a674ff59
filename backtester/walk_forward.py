"""Walk-forward analysis: optimize on each train window, trade the choice on the window that follows.

Windows are in sessions (rows of the panel). Each train window's grid sees only rows [train_start, train_end);
the chosen params then trade rows [test_start, test_end), with up to ``warmup_bars`` earlier rows used only to
warm up indicators (they are in the past of the test window, so no information from the future is used). The
out-of-sample equity is the chain of the test windows' daily returns.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtester.distributed_runner import SweepRunner
from backtester.grid_search import plan_grid, rank
from backtester.sweep import DataRef, TrialResult, TrialSpec
from core.config_models import AppConfig, GridValue, WalkForwardConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Window:
    index: int
    train_start: int
    train_end: int  # exclusive
    test_start: int
    test_end: int  # exclusive


@dataclass(frozen=True, slots=True)
class WindowOutcome:
    window: Window
    chosen: TrialResult  # best train trial
    test: TrialResult  # the chosen params on the test window
    n_trials: int


@dataclass(frozen=True, slots=True)
class WalkForwardOutcome:
    strategy: str
    metric: str
    windows: list[WindowOutcome]
    all_train_results: list[TrialResult]
    oos_equity: pd.Series  # stitched, starting at initial capital
    refused: list[str]

    @property
    def n_trials(self) -> int:
        """Every configuration the optimizer ran across all train windows."""
        return sum(1 for r in self.all_train_results if r.ok)

    def oos_returns(self) -> np.ndarray:
        equity = self.oos_equity.to_numpy()
        return np.diff(equity) / equity[:-1] if len(equity) > 1 else np.zeros(0)


def walk_forward_windows(n_rows: int, cfg: WalkForwardConfig) -> list[Window]:
    """Rolling (or anchored) windows covering the data; the last test window may be shorter, never empty."""
    windows = []
    start = 0
    while True:
        train_start = 0 if cfg.anchored else start
        train_end = start + cfg.train_bars
        test_end = min(train_end + cfg.test_bars, n_rows)
        if train_end >= n_rows or test_end - train_end < 2:
            break
        windows.append(Window(len(windows), train_start, train_end, train_end, test_end))
        start += cfg.step_bars
    return windows


def run_walk_forward(
    config: AppConfig,
    payload: str,
    data: DataRef,
    strategy: str,
    runner: SweepRunner,
    n_rows: int,
    overrides: Mapping[str, Sequence[GridValue]] | None = None,
) -> WalkForwardOutcome:
    cfg = config.backtest.walk_forward
    windows = walk_forward_windows(n_rows, cfg)
    if not windows:
        raise ValueError(
            f"walk-forward needs more than train_bars={cfg.train_bars} sessions plus a test window; the data has "
            f"{n_rows} sessions (shorten backtest.walk_forward.train_bars or use more data)"
        )
    combos, refused = plan_grid(config, strategy, overrides)
    metric = config.backtest.optimize_metric
    train_specs: list[TrialSpec] = []
    for w in windows:
        for c in combos:
            train_specs.append(
                TrialSpec(len(train_specs), strategy, tuple(sorted(c.items())), w.train_start, w.train_end, 0)
            )
    train_results = runner.run(payload, data, train_specs, description=f"walk-forward train x{len(windows)}")
    per_window = len(combos)
    chosen: list[TrialResult] = []
    for k, w in enumerate(windows):
        candidates = [r for r in train_results[k * per_window : (k + 1) * per_window] if r.ok]
        if not candidates:
            raise RuntimeError(f"walk-forward window {w.index}: every train trial failed")
        chosen.append(rank(candidates, metric, halted_eligible=config.backtest.halted_trials_eligible)[0])
    test_specs = []
    for k, w in enumerate(windows):
        row_start = max(0, w.test_start - cfg.warmup_bars)
        test_specs.append(
            TrialSpec(
                k, strategy, tuple(sorted(chosen[k].params.items())), row_start, w.test_end, w.test_start - row_start
            )
        )
    test_results = runner.run(payload, data, test_specs, description="walk-forward test")
    failed = [r for r in test_results if not r.ok]
    if failed:
        raise RuntimeError(f"walk-forward test trials failed: {[r.error for r in failed]}")
    outcomes = [WindowOutcome(w, chosen[k], test_results[k], per_window) for k, w in enumerate(windows)]
    return WalkForwardOutcome(
        strategy, metric, outcomes, train_results, stitch(outcomes, config.portfolio.initial_capital), refused
    )


def stitch(outcomes: Sequence[WindowOutcome], initial_capital: float) -> pd.Series:
    """Chain the test windows' daily returns into one out-of-sample equity curve."""
    dates: list[np.datetime64] = []
    returns: list[np.ndarray] = []
    for o in outcomes:
        equity = o.test.equity
        if len(equity) < 2:
            continue
        if not dates:
            dates.append(o.test.dates[0])
        dates.extend(o.test.dates[1:])
        returns.append(np.diff(equity) / equity[:-1])
    if not dates:
        return pd.Series([initial_capital], dtype=float)
    chained = initial_capital * np.cumprod(np.concatenate([[1.0], *(1.0 + r for r in returns)]))
    return pd.Series(chained, index=pd.DatetimeIndex(dates, name="date"), name="oos_equity")


def annualized_return(equity: np.ndarray, periods_per_year: int = 252) -> float:
    if len(equity) < 2 or equity[0] <= 0 or equity[-1] <= 0:
        return float("nan")
    return float((equity[-1] / equity[0]) ** (periods_per_year / (len(equity) - 1)) - 1.0)


def efficiency(outcomes: Sequence[WindowOutcome]) -> dict[str, float]:
    """Walk-forward efficiency: annualized OOS return / annualized IS return of the chosen params (Pardo)."""
    is_returns = np.array([annualized_return(o.chosen.equity) for o in outcomes])
    oos_returns = np.array([annualized_return(o.test.equity) for o in outcomes])
    is_mean, oos_mean = float(np.nanmean(is_returns)), float(np.nanmean(oos_returns))
    return {
        "is_annual_return_mean": is_mean,
        "oos_annual_return_mean": oos_mean,
        "walk_forward_efficiency": oos_mean / is_mean if is_mean > 0 else float("nan"),
    }


def parameter_stability(outcomes: Sequence[WindowOutcome]) -> dict[str, dict[str, float]]:
    """Per param: share of windows choosing the most common value, distinct values, and (numeric) CV."""
    stability: dict[str, dict[str, float]] = {}
    names = sorted({k for o in outcomes for k in o.chosen.params})
    for name in names:
        values = [o.chosen.params.get(name) for o in outcomes]
        _, count = Counter(values).most_common(1)[0]
        entry: dict[str, float] = {"modal_share": count / len(values), "distinct": float(len(set(values)))}
        numeric = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numeric) == len(values) and np.mean(numeric) != 0:
            entry["coefficient_of_variation"] = float(np.std(numeric) / abs(np.mean(numeric)))
        stability[name] = entry
    return stability


def windows_table(outcomes: Sequence[WindowOutcome], dates: pd.DatetimeIndex) -> pd.DataFrame:
    rows = []
    for o in outcomes:
        w = o.window
        rows.append(
            {
                "window": w.index,
                "train_start": dates[w.train_start].date(),
                "train_end": dates[w.train_end - 1].date(),
                "test_start": dates[w.test_start].date(),
                "test_end": dates[w.test_end - 1].date(),
                **{f"param_{k}": v for k, v in o.chosen.params.items()},
                "is_sharpe": o.chosen.metrics.get("sharpe"),
                "is_annual_return": annualized_return(o.chosen.equity),
                "oos_sharpe": o.test.metrics.get("sharpe"),
                "oos_annual_return": annualized_return(o.test.equity),
                "oos_total_return": o.test.metrics.get("total_return"),
                "oos_max_drawdown": o.test.metrics.get("max_drawdown"),
                "oos_trades": o.test.n_trades,
            }
        )
    return pd.DataFrame(rows)
