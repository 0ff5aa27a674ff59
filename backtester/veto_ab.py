"""A backtest with the signal veto enabled, and the same run without it: the A/B a researcher reads first.

When ``strategies.<name>.veto.enabled`` is true the backtest job trades *with* the veto (what the live engine
would do: the run's trades, equity, report and TCA rows are those) and runs the same config, data and strategy a
second time without it. ``summary.json["veto"]`` holds both sides (round trips, Sharpe, max drawdown, total
return, vetoes by kind) and their differences; the report's "Veto" section and the console show them.

The model is the promoted one (``ml.veto_model_store.read_current``), as live. None promoted is a ``ConfigError``
naming the strategy and the trainer command (exit 2), never a silent run without the veto.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from backtester.engine import BacktestResult, build_backtest
from backtester.performance import compute_metrics, round_trips_from_fills
from backtester.veto_scorer import HistoricalVetoScorer
from core.config_models import AppConfig
from core.errors import ConfigError
from data.calendar import TradingCalendar
from data.panel import BarPanel
from ml.veto_model_store import read_current, strategy_dir
from portfolio.veto import SignalVeto
from strategy.registry import build_strategy

log = logging.getLogger(__name__)

AB_METRICS = ("n_trades", "sharpe", "max_drawdown", "total_return", "final_equity", "win_rate")
FEATURE_SOURCE = "per-run temporary Feast repository filled from this run's bars (ml.panel_features says why)"


@dataclass(frozen=True, slots=True)
class JobVeto:
    veto: SignalVeto
    scorer: HistoricalVetoScorer
    card: dict[str, Any]


def job_veto(config: AppConfig, strategy: str, panel: BarPanel) -> JobVeto | None:
    """The run's veto with the promoted model, or None when the strategy's veto is not enabled."""
    veto_cfg = getattr(config.strategies, strategy).veto
    if not veto_cfg.enabled:
        return None
    current = read_current(veto_cfg.models_dir, strategy)
    if current is None:
        raise ConfigError(f"strategies.{strategy}.veto", [
            f"enabled: true, but no veto model is promoted ({strategy_dir(veto_cfg.models_dir, strategy)}/CURRENT "
            f"is missing); train one: python -m ml.ml_model_trainer --strategy {strategy}, or set enabled: false"
        ])  # fmt: skip
    estimator, card = current
    scorer = HistoricalVetoScorer.for_panel(estimator, card, panel, config.features.repo_path)
    veto = SignalVeto({strategy: veto_cfg.threshold}, scorer, {strategy: veto_cfg.on_missing_features})
    return JobVeto(veto, scorer, card)


def veto_ab(
    config: AppConfig, strategy: str, panel: BarPanel, job: JobVeto, with_result: BacktestResult,
    with_metrics: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Run the same backtest without the veto and return ``summary["veto"]``."""
    without = build_backtest(config, panel, [build_strategy(strategy, config.strategies)], TradingCalendar()).run()
    trades = round_trips_from_fills(without.fills, sessions=without.equity.index)
    without_metrics = compute_metrics(without.equity, trades, without.fills, config.portfolio.initial_capital,
                                      gross_exposure=without.gross_exposure,
                                      risk_free_rate_pct=config.backtest.risk_free_rate_pct)  # fmt: skip
    veto_cfg = getattr(config.strategies, strategy).veto
    side_a = {k: with_metrics.get(k) for k in AB_METRICS} | {"vetoes": with_result.ignored_signals.get("veto", 0)}
    side_b = {k: without_metrics.get(k) for k in AB_METRICS} | {"vetoes": 0}
    return {
        "enabled": True,
        "model_id": job.card.get("model_id"),
        "threshold": veto_cfg.threshold,
        "on_missing_features": veto_cfg.on_missing_features,
        "features": list(job.card.get("features", [])),
        "feature_source": FEATURE_SOURCE,
        "model_data_period": job.card.get("data_period"),
        "in_sample": _overlaps(job.card.get("data_period"), panel),
        "counts": dict(job.veto.counts),
        "rows_scored": job.scorer.rows_scored,
        "rows_missing_features": job.scorer.rows_missing,
        "with_veto": side_a,
        "without_veto": side_b,
        "difference": {k: _diff(side_a.get(k), side_b.get(k)) for k in (*AB_METRICS, "vetoes")},
    }


def _overlaps(period: Any, panel: BarPanel) -> bool | None:
    """Whether this run's sessions overlap the model's training data (then the A/B is in-sample), None if unknown."""
    if not (isinstance(period, list | tuple) and len(period) == 2) or not len(panel.dates):
        return None
    start, end = str(panel.dates[0].date()), str(panel.dates[-1].date())
    return not (end < str(period[0]) or start > str(period[1]))


def disabled() -> dict[str, Any]:
    return {"enabled": False}


def _diff(a: Any, b: Any) -> float | None:
    try:
        value = float(a) - float(b)
    except (TypeError, ValueError):
        return None
    return value if value == value else None
