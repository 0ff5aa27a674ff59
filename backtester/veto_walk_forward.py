"""Walk-forward validation of a signal veto: the same out-of-sample runs with and without it, per threshold.

What promotion of a veto model must show (``validation_mandate.yaml``, ``veto`` rules): that the *procedure*
(label, train, calibrate, veto below a threshold) does not make the strategy worse out of sample. For each window
of ``backtest.walk_forward`` (train/test/step sessions, rolling or anchored):

1. a model is trained on the signals decided in the train window whose labels were known before the test window
   opened (``t1 < test_start``: no label reaches into the test window, the walk-forward form of purging);
2. the test window is backtested by the event-driven engine (``build_backtest``, the strategy's configured
   params, ``warmup_bars`` of earlier sessions for indicators only) once without the veto and once per threshold
   tried, the veto scoring each signal with that window's model (``HistoricalVetoScorer``);
3. a window with too few labelled signals (``min_events``) or one class has no model: its veto runs equal the
   run without (a veto cannot act without a model) and it is counted as such.

The test windows' daily returns are chained into one out-of-sample equity per run (as ``walk_forward.stitch``).
Overfitting over the thresholds tried (``research.overfitting_stats``, the parameters' definitions): PBO by
CSCV over the thresholds' out-of-sample daily returns, and the DSR of the configured threshold's returns given
every threshold's Sharpe (n_trials = thresholds tried).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backtester.engine import build_backtest
from backtester.performance import compute_metrics, round_trips_from_fills
from backtester.research import overfitting_stats
from backtester.sweep import window
from backtester.veto_scorer import HistoricalVetoScorer
from backtester.walk_forward import Window, walk_forward_windows
from core.config_models import AppConfig
from core.errors import DataError
from data.calendar import TradingCalendar
from data.panel import BarPanel
from ml.veto_training import TrainingSet, fit_veto_model
from portfolio.veto import SignalVeto
from strategy.registry import build_strategy

log = logging.getLogger(__name__)

BASELINE = "without_veto"


@dataclass(slots=True)
class _Segment:
    """One run of one test window: its traded equity, round trips and vetoes."""

    dates: np.ndarray
    equity: np.ndarray
    n_trades: int
    vetoes: int


@dataclass(frozen=True, slots=True)
class VetoWalkForward:
    thresholds: tuple[float, ...]
    chosen: float
    runs: dict[str, dict[str, Any]]  # BASELINE and "threshold_<t>": metrics of the stitched out-of-sample run
    windows: list[dict[str, Any]]
    overfitting: dict[str, Any]
    returns: dict[str, np.ndarray] = field(repr=False)

    def mandate_metrics(self) -> dict[str, float | None]:
        """The values the ``veto`` rules of the mandate judge (``backtester.mandate.VETO_RULES``)."""
        chosen, base = self.runs[run_key(self.chosen)], self.runs[BASELINE]
        return {
            "veto_oos_sharpe_gain": _difference(chosen["sharpe"], base["sharpe"]),
            "veto_oos_drawdown_increase_pct": _difference(chosen["max_drawdown"], base["max_drawdown"], scale=100.0),
            "veto_oos_trades": chosen["n_trades"],
            "veto_pbo": self.overfitting.get("pbo"),
            "veto_dsr": self.overfitting.get("dsr"),
        }


def run_key(threshold: float) -> str:
    return f"threshold_{threshold:.2f}"


def veto_walk_forward(
    config: AppConfig, strategy: str, panel: BarPanel, features: pd.DataFrame, data: TrainingSet, seed: int
) -> VetoWalkForward:
    """Walk-forward A/B of the veto over ``panel`` (``features``: ``ml.panel_features`` rows of it; ``data``: its
    labelled signals). Raises ValueError when the data is too short for one window."""
    veto_cfg = getattr(config.strategies, strategy).veto
    thresholds = tuple(sorted({*veto_cfg.training.thresholds_tried, veto_cfg.threshold}))
    windows = walk_forward_windows(len(panel.dates), config.backtest.walk_forward)
    if not windows:
        raise ValueError(f"veto walk-forward needs more than train_bars={config.backtest.walk_forward.train_bars} "
                         f"sessions plus a test window; the data has {len(panel.dates)}")  # fmt: skip
    segments: dict[str, list[_Segment]] = {BASELINE: [], **{run_key(t): [] for t in thresholds}}
    rows = []
    for w in windows:
        model, n_train = _window_model(config, strategy, data, w, seed)
        results = _window_runs(config, strategy, panel, features, w, model, thresholds)
        for key, segment in results.items():
            segments[key].append(segment)
        rows.append(_window_row(panel, w, n_train, model is not None, results))
    returns = {key: _chained_returns(parts) for key, parts in segments.items()}
    runs = {key: _run_metrics(config, parts) for key, parts in segments.items()}
    matrix = np.column_stack([returns[run_key(t)] for t in thresholds])
    overfitting = overfitting_stats(matrix, returns[run_key(veto_cfg.threshold)], len(thresholds))
    overfitting["basis"] = "CSCV (PBO) and DSR over the out-of-sample daily returns of every threshold tried"
    log.info("event=veto_walk_forward strategy=%s windows=%d thresholds=%s", strategy, len(windows), thresholds)
    return VetoWalkForward(thresholds, veto_cfg.threshold, runs, rows, overfitting, returns)


def _window_model(config: AppConfig, strategy: str, data: TrainingSet, w: Window, seed: int) -> tuple[Any, int]:
    """The window's model (None when it cannot be trained) and how many signals it had."""
    cfg = getattr(config.strategies, strategy).veto.training
    rows = np.flatnonzero((data.t0 >= w.train_start) & (data.t0 < w.test_start) & (data.t1 < w.test_start))
    if len(rows) < cfg.min_events:
        return None, len(rows)
    try:
        return fit_veto_model(data.subset(rows), cfg, seed), len(rows)
    except DataError as exc:  # one class in the window (or a calibration fold): no model here
        log.info("event=veto_window_without_model window=%d reason=%s", w.index, exc)
        return None, len(rows)


def _window_runs(
    config: AppConfig, strategy: str, panel: BarPanel, features: pd.DataFrame, w: Window, model: Any,
    thresholds: tuple[float, ...],
) -> dict[str, _Segment]:  # fmt: skip
    veto_cfg = getattr(config.strategies, strategy).veto
    row_start = max(0, w.test_start - config.backtest.walk_forward.warmup_bars)
    sub = window(panel, row_start, w.test_end)
    trade_from = w.test_start - row_start
    base = _run(config, strategy, sub, trade_from, None)
    out = {BASELINE: base}
    if model is None:
        return out | {run_key(t): base for t in thresholds}
    span = (int(panel.ts_event_ns[w.test_start]), int(panel.ts_event_ns[w.test_end - 1]))
    scorer = HistoricalVetoScorer.from_features(model, veto_cfg.training.features, features, ts_range_ns=span)
    for t in thresholds:
        veto = SignalVeto({strategy: t}, scorer, {strategy: veto_cfg.on_missing_features})
        out[run_key(t)] = _run(config, strategy, sub, trade_from, veto)
    return out


def _run(config: AppConfig, strategy: str, panel: BarPanel, trade_from: int, veto: SignalVeto | None) -> _Segment:
    result = build_backtest(config, panel, [build_strategy(strategy, config.strategies)], TradingCalendar(),
                            trade_from_index=trade_from, veto=veto).run()  # fmt: skip
    equity = result.equity.iloc[trade_from:]
    fills = result.fills
    if trade_from and len(equity):
        fills = fills[fills["date"] >= equity.index[0]]
    trades = round_trips_from_fills(fills, sessions=result.equity.index)
    return _Segment(equity.index.to_numpy(dtype="datetime64[ns]"), equity.to_numpy(dtype=float), len(trades),
                    int(result.ignored_signals.get("veto", 0)))  # fmt: skip


def _chained_returns(parts: list[_Segment]) -> np.ndarray:
    pieces = [np.diff(p.equity) / p.equity[:-1] for p in parts if len(p.equity) > 1]
    return np.concatenate(pieces) if pieces else np.zeros(0)


def _run_metrics(config: AppConfig, parts: list[_Segment]) -> dict[str, Any]:
    """Metrics of the stitched out-of-sample equity, with the run's round trips and vetoes summed over windows."""
    initial = config.portfolio.initial_capital
    dates = [parts[0].dates[0]] if parts and len(parts[0].dates) else []
    for p in parts:
        dates.extend(p.dates[1:])
    equity = pd.Series(initial * np.cumprod(np.r_[1.0, 1.0 + _chained_returns(parts)]), index=pd.DatetimeIndex(dates))
    empty = pd.DataFrame(columns=["date", "symbol", "side", "quantity", "price", "commission", "slippage_cost"])
    metrics = compute_metrics(equity, pd.DataFrame(), empty, initial,
                              risk_free_rate_pct=config.backtest.risk_free_rate_pct)  # fmt: skip
    keep = ("total_return", "cagr", "sharpe", "max_drawdown", "annual_volatility", "final_equity")
    return {**{k: float(metrics[k]) for k in keep}, "n_trades": sum(p.n_trades for p in parts),
            "vetoes": sum(p.vetoes for p in parts)}  # fmt: skip


def _window_row(panel: BarPanel, w: Window, n_train: int, has_model: bool, runs: dict[str, _Segment]) -> dict:
    return {
        "window": w.index,
        "test_start": str(panel.dates[w.test_start].date()),
        "test_end": str(panel.dates[w.test_end - 1].date()),
        "train_signals": n_train,
        "model": has_model,
        **{f"{key}_trades": seg.n_trades for key, seg in runs.items()},
        **{f"{key}_vetoes": seg.vetoes for key, seg in runs.items() if key != BASELINE},
    }


def _difference(a: float, b: float, scale: float = 1.0) -> float | None:
    value = (a - b) * scale
    return float(value) if np.isfinite(value) else None
