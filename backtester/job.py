"""One backtest job end to end: data -> engine -> metrics -> results folder. Called by ``run_backtest.py``."""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from backtester.cli_common import jsonable, write_json
from backtester.engine import BacktestResult, build_backtest
from backtester.performance import compute_metrics, round_trips_from_fills
from backtester.report import write_report
from core.config_loader import config_id
from core.config_models import AppConfig
from data.calendar import TradingCalendar
from data.loading import load_panel
from strategy.registry import build_strategy

log = logging.getLogger(__name__)

SUMMARY_KEYS: tuple[str, ...] = (
    "strategy",
    "mode",
    "params",
    "config_id",
    "data_fingerprint",
    "data_source",
    "start",
    "end",
    "symbols",
    "initial_capital",
    "final_equity",
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_duration_days",
    "n_trades",
    "win_rate",
    "profit_factor",
    "exposure",
    "turnover",
    "commissions",
    "slippage_cost",
    "bars_processed",
    "wall_seconds",
    "overrides",
    "seed",
)


@dataclass(frozen=True, slots=True)
class JobRequest:
    strategy: str
    data: str
    symbols: tuple[str, ...] | None
    start: str | None
    end: str | None
    seed: int
    overrides: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class JobOutput:
    out_dir: Path
    summary: dict[str, Any]
    result: BacktestResult
    trades: pd.DataFrame


def run_backtest_job(config: AppConfig, request: JobRequest, out_dir: Path) -> JobOutput:
    calendar = TradingCalendar()
    loaded = load_panel(
        request.data,
        calendar=calendar,
        symbols=request.symbols,
        start=request.start,
        end=request.end,
        seed=request.seed,
        synthetic=config.backtest.synthetic,
        adjust=config.backtest.adjust_prices,
    )
    strategy = build_strategy(request.strategy, config.strategies)
    result = build_backtest(config, loaded.panel, [strategy], calendar).run()
    trades = round_trips_from_fills(result.fills, sessions=result.equity.index)
    metrics = compute_metrics(
        result.equity,
        trades,
        result.fills,
        config.portfolio.initial_capital,
        gross_exposure=result.gross_exposure,
        risk_free_rate_pct=config.backtest.risk_free_rate_pct,
    )
    strategy_cfg = getattr(config.strategies, request.strategy)
    summary: dict[str, Any] = {
        "strategy": request.strategy,
        "mode": "backtest",
        "params": strategy_cfg.params.model_dump(mode="json"),
        "order_type": strategy_cfg.order_type,
        "config_id": config_id(config),
        "data_fingerprint": loaded.panel.fingerprint(),
        "data_source": loaded.description,
        "start": str(loaded.panel.dates[0].date()) if len(loaded.panel.dates) else None,
        "end": str(loaded.panel.dates[-1].date()) if len(loaded.panel.dates) else None,
        "symbols": list(loaded.panel.symbols),
        **jsonable(metrics),
        "bars_processed": result.bars_processed,
        "timestamps": result.timestamps,
        "wall_seconds": round(result.wall_seconds, 4),
        "bars_per_second": round(result.bars_processed / result.wall_seconds, 1) if result.wall_seconds else None,
        "quarantined_bars": loaded.quarantined,
        "rejections": result.rejections,
        "ignored_signals": result.ignored_signals,
        "trading_state_changes": result.state_history,
        "final_trading_state": result.final_state,
        "overrides": list(request.overrides),
        "seed": request.seed,
        "commission_model": config.costs.commission_model,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 - wall time of the report
        "python": platform.python_version(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "summary.json", summary)
    trades.to_csv(out_dir / "trades.csv", index=False)
    result.fills.to_csv(out_dir / "fills.csv", index=False)
    equity_frame = pd.DataFrame({"equity": result.equity, "gross_exposure": result.gross_exposure})
    equity_frame.index.name = "date"
    equity_frame.to_csv(out_dir / "equity.csv")
    write_report(out_dir / "report.html", summary, result.equity, trades)
    return JobOutput(out_dir, summary, result, trades)


def default_out_dir(results_dir: str, mode: str, strategy: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(results_dir) / f"{mode}-{strategy}-{stamp}"
