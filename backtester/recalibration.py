"""Recalibration: walk-forward -> Monte Carlo -> scenarios -> mandate -> (maybe) promotion, always audited.

The parameters promoted are the ones the latest walk-forward window chose (what would be traded next). They are
written to ``state/approved_params/<strategy>.yaml`` only when every mandate rule passes and this is not a dry
run; otherwise the previously approved file is left exactly as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from backtester import research
from backtester.mandate import Mandate, RuleVerdict, check_mandate
from backtester.monte_carlo import MonteCarloResult, simulate
from backtester.promotion import append_audit, approved_params_path, read_approved_params, write_approved_params
from backtester.research import ResearchContext

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecalibrationOutcome:
    strategy: str
    params: dict[str, Any]
    metrics: dict[str, float | None]
    verdicts: list[RuleVerdict]
    passed: bool
    promoted: bool
    dry_run: bool
    previous_approved: dict[str, Any] | None
    summary: dict[str, Any]
    outputs: dict[str, research.ModeOutput]


def recalibrate(
    ctx: ResearchContext,
    mandate: Mandate,
    *,
    dry_run: bool,
    state_dir: Path,
    audit_db: Path,
    git_commit: str,
    results_dir: Path,
) -> RecalibrationOutcome:
    approved_path = approved_params_path(state_dir, ctx.strategy)
    previous = read_approved_params(approved_path)  # a corrupt file stops us here, before any work
    wf = research.walk_forward(ctx)
    params = dict(wf.summary["latest_params"])
    mc_stats = _monte_carlo_on_oos(ctx, wf, params)
    scenarios = research.scenario_analysis(ctx, params)
    metrics = collect_metrics(wf.summary, mc_stats, scenarios.summary)
    verdicts = check_mandate(mandate, metrics)
    passed = all(v.passed for v in verdicts)
    promoted = passed and not dry_run
    base = wf.summary
    now = datetime.now(UTC)
    if promoted:
        _promote(ctx, approved_path, params, metrics, base, now, git_commit)
    verdict_fields = {  # the same facts go to the audit row and to summary.json
        "git_commit": git_commit,
        "params": params,
        "metrics": metrics,
        "verdicts": [v.to_dict() for v in verdicts],
        "passed": passed,
        "promoted": promoted,
        "dry_run": dry_run,
    }
    append_audit(
        audit_db,
        {
            "ts_utc": now.replace(tzinfo=None),
            "strategy": ctx.strategy,
            "data_fingerprint": base["data_fingerprint"],
            "config_id": base["config_id"],
            **verdict_fields,
            "results_dir": str(results_dir),
        },
    )
    summary = _summary(base, verdict_fields, approved_path, previous, mc_stats)
    outputs = {"walk_forward": wf, "scenario_analysis": scenarios}
    return RecalibrationOutcome(
        ctx.strategy, params, metrics, verdicts, passed, promoted, dry_run, previous, summary, outputs
    )


def _promote(
    ctx: ResearchContext,
    approved_path: Path,
    params: dict[str, Any],
    metrics: dict[str, float | None],
    base: dict[str, Any],
    now: datetime,
    git_commit: str,
) -> None:
    """Write the approved-params file (the strategy's full params: config defaults overlaid with the chosen ones)
    with the provenance an operator needs to trust it, and log the promotion loudly."""
    full_params = {**getattr(ctx.config.strategies, ctx.strategy).params.model_dump(), **params}
    write_approved_params(
        approved_path,
        {
            "strategy": ctx.strategy,
            "params": full_params,
            "approved_at_utc": now.isoformat(timespec="seconds"),
            "git_commit": git_commit,
            "config_id": base["config_id"],
            "data_fingerprint": base["data_fingerprint"],
            "data_period": [base["start"], base["end"]],
            "metrics": {k: v for k, v in metrics.items()},
        },
    )
    log.warning("event=params_promoted strategy=%s path=%s params=%s", ctx.strategy, approved_path, full_params)


def _summary(
    base: dict[str, Any],
    verdict_fields: dict[str, Any],
    approved_path: Path,
    previous: dict[str, Any] | None,
    mc_stats: dict[str, Any],
) -> dict[str, Any]:
    """The recalibration's ``summary.json``: the walk-forward's provenance, the verdict, and what it replaced."""
    return {
        **{k: base[k] for k in ("strategy", "config_id", "data_fingerprint", "data_source", "start", "end", "symbols")},
        "mode": "recalibration",
        **verdict_fields,
        "approved_params_path": str(approved_path),
        "previous_approved_params": previous.get("params") if previous else None,
        "monte_carlo_on_oos": mc_stats,
    }


def _monte_carlo_on_oos(ctx: ResearchContext, wf: research.ModeOutput, params: dict[str, Any]) -> dict[str, Any]:
    """Block-bootstrap the stitched out-of-sample returns (and the chosen params' trade returns)."""
    oos = wf.extras["walk_forward"]
    returns = oos.oos_returns()
    trade_returns, _ = research._trade_returns(ctx, params)
    cfg = ctx.config.backtest.monte_carlo
    initial = float(oos.oos_equity.iloc[0])
    result = simulate(
        returns,
        trade_returns,
        initial_equity=initial,
        n_paths=cfg.n_paths,
        mean_block=cfg.block_length_days,
        seed=cfg.seed,
        kill_drawdown_pct=ctx.config.risk_monitor.kill_drawdown_pct,
    )
    stats = result.to_dict()
    stats.pop("fan_chart", None)
    stats.pop("trade_fan_chart", None)
    stats["p5_final_equity_pct"] = p5_final_equity_pct(result)
    return stats


def p5_final_equity_pct(result: MonteCarloResult) -> float | None:
    """5th percentile of block-bootstrap final equity, as % of the initial equity (the mandate's floor)."""
    value = result.block_bootstrap.final_equity.p5
    return float(value / result.initial_equity * 100.0) if np.isfinite(value) else None


def collect_metrics(wf: dict[str, Any], mc: dict[str, Any], scenarios: dict[str, Any]) -> dict[str, float | None]:
    oos = wf.get("oos_metrics", {})
    over = wf.get("overfitting", {})
    max_dd = oos.get("max_drawdown")
    return {
        "oos_sharpe": oos.get("sharpe"),
        "oos_max_drawdown_pct": None if max_dd is None else float(max_dd) * 100.0,
        "oos_trades": wf.get("oos_trades"),
        "pbo": over.get("pbo"),
        "dsr": over.get("dsr"),
        "walk_forward_efficiency": wf.get("walk_forward_efficiency"),
        "mc_p5_final_equity_pct": mc.get("p5_final_equity_pct"),
        "worst_scenario_loss_pct": scenarios.get("worst_scenario_loss_pct"),
    }
