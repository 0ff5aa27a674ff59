"""One backtest job end to end: data -> engine -> metrics -> results folder. Called by ``run_backtest.py``."""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from backtester.benchmark import panel_closes, run_benchmark
from backtester.cli_common import jsonable, write_json
from backtester.engine import Backtest, BacktestResult, build_backtest
from backtester.performance import compute_metrics, round_trips_from_fills
from backtester.report import write_report
from backtester.run_warnings import run_warnings
from backtester.sweep import state_history_iso
from backtester.tca_rows import backtest_run_id, tca_records, write_backtest_tca
from backtester.trade_stats import trade_statistics
from backtester.veto_ab import disabled, job_veto, veto_ab
from core.config_loader import config_id
from core.config_models import AppConfig
from data.calendar import TradingCalendar
from data.loading import LoadedData, load_panel
from strategy.registry import build_strategy
from tca.records import TcaRecord

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
    "veto",
    "benchmark",
    "adjust_prices",
    "commission_model",
    "slippage",
    "sizing",
    "trade_stats",
    "stops",
    "stop",
    "warnings",
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
    tca_db: Path | None = None  # the shared TCA log the run's rows go to (source=backtest); None: report only
    benchmark: str | None = None  # the report's benchmark symbol (--benchmark); None: buy-and-hold of the universe


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
    closes = panel_closes(loaded.panel)
    benchmark = run_benchmark(closes, request.benchmark, config.portfolio.initial_capital)  # checked before the run
    strategy = build_strategy(request.strategy, config.strategies)
    veto = job_veto(config, request.strategy, loaded.panel)  # None unless the strategy's veto is enabled
    backtest = build_backtest(config, loaded.panel, [strategy], calendar, veto=None if veto is None else veto.veto)
    result = backtest.run()
    trades = round_trips_from_fills(result.fills, sessions=result.equity.index)
    metrics = compute_metrics(
        result.equity,
        trades,
        result.fills,
        config.portfolio.initial_capital,
        gross_exposure=result.gross_exposure,
        risk_free_rate_pct=config.backtest.risk_free_rate_pct,
    )
    summary = _summary(config, request, loaded, result, metrics)
    summary["trade_stats"] = jsonable(trade_statistics(trades, result.equity, benchmark=benchmark,
                                                       gross_exposure=result.gross_exposure))
    summary["warnings"] = run_warnings(config, request.strategy, loaded)  # the entry point prints them too
    summary["veto"] = disabled() if veto is None else veto_ab(config, request.strategy, loaded.panel, veto, result,
                                                              metrics)  # fmt: skip
    records = _costs(backtest, result, request, summary)
    _write_outputs(out_dir, summary, result, trades, records, closes, benchmark)
    return JobOutput(out_dir, summary, result, trades)


def _summary(
    config: AppConfig, request: JobRequest, loaded: LoadedData, result: BacktestResult, metrics: dict[str, float | int]
) -> dict[str, Any]:
    """The run's ``summary.json``: what ran (strategy, config, data), its metrics, and how the engine got there."""
    strategy_cfg = getattr(config.strategies, request.strategy)
    return {
        "strategy": request.strategy,
        "mode": "backtest",
        "params": strategy_cfg.params.model_dump(mode="json"),
        "order_type": strategy_cfg.order_type,
        "stop": strategy_cfg.stop,
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
        "missing_sessions": loaded.missing_sessions,
        "missing_sessions_total": sum(int(str(v["count"])) for v in loaded.missing_sessions.values()),
        "rejections": result.rejections,
        "ignored_signals": result.ignored_signals,
        "clipped_orders": result.clipped,
        "trading_state_changes": state_history_iso(result.state_history),
        "final_trading_state": result.final_state,
        "stops": stop_counts(result.stops),
        "overrides": list(request.overrides),
        "seed": request.seed,
        "commission_model": config.costs.commission_model,
        "slippage": config.costs.slippage.model_dump(mode="json"),
        "sizing": _sizing_summary(config),
        "risk_limits": {k: v for k, v in config.portfolio.risk.model_dump(mode="json").items()
                        if k in ("drawdown_throttle_start_pct", "reducing_drawdown_pct", "halt_drawdown_pct")},
        "adjust_prices": config.backtest.adjust_prices,
        "benchmark": request.benchmark or "buy-and-hold of the run's symbols, equal weight",
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 - wall time of the report
        "python": platform.python_version(),
    }


def _sizing_summary(config: AppConfig) -> dict[str, Any]:
    """The sizing method and only the settings that method reads (the report's Run table shows them)."""
    sizing = config.portfolio.sizing.model_dump(mode="json")
    used = {"fixed_shares": "fixed_shares", "fixed_fraction": "fixed_fraction_pct"}.get(sizing["method"])
    return {k: v for k, v in sizing.items() if k in ("method", "min_quantity", used)}


def stop_counts(stops: pd.DataFrame) -> dict[str, int]:
    """``summary.json``'s ``stops``: protective stops placed, filled and cancelled (``stops.csv`` has each one)."""
    outcomes = stops["outcome"].value_counts() if len(stops) else pd.Series(dtype=int)
    return {"placed": len(stops), "filled": int(outcomes.get("filled", 0)),
            "cancelled": int(outcomes.get("cancelled", 0))}  # fmt: skip


def _write_outputs(
    out_dir: Path, summary: dict[str, Any], result: BacktestResult, trades: pd.DataFrame, records: list[TcaRecord],
    closes: pd.DataFrame, benchmark: pd.Series,
) -> None:
    """The results folder: summary, trades, fills, protective stops and equity as files, and the HTML report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "summary.json", summary)
    trades.to_csv(out_dir / "trades.csv", index=False)
    result.fills.to_csv(out_dir / "fills.csv", index=False)
    result.stops.to_csv(out_dir / "stops.csv", index=False)
    equity_frame = pd.DataFrame({"equity": result.equity, "gross_exposure": result.gross_exposure})
    equity_frame.index.name = "date"
    equity_frame.to_csv(out_dir / "equity.csv")
    write_report(out_dir / "report.html", summary, result.equity, trades, benchmark, tca_records=records,
                 closes=closes, fills=result.fills, stops=result.stops, gross_exposure=result.gross_exposure)


def _costs(backtest: Backtest, result: BacktestResult, request: JobRequest, summary: dict[str, Any]) -> list[TcaRecord]:
    """The run's TCA rows (the report's costs section) and, with ``request.tca_db``, into the shared TCA log; the
    summary says under which run id and how many were new (a rerun of the same config and data adds none)."""
    run_id = backtest_run_id(request.strategy, summary["config_id"], summary["data_fingerprint"])
    records = tca_records(backtest, result, run_id)
    summary["tca"] = {"run_id": run_id, "rows": len(records), "db": None, "inserted": None}
    if request.tca_db is not None:
        report = write_backtest_tca(records, request.tca_db)
        summary["tca"].update(db=str(request.tca_db), inserted=report.inserted)
    return records


def default_out_dir(results_dir: str, mode: str, strategy: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(results_dir) / f"{mode}-{strategy}-{stamp}"
